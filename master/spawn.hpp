// Forking a child with a given entry function (master only; the child side runs after fork).
// The child gets default signal handling, dies with the master (PR_SET_PDEATHSIG), drops the
// master's own descriptors, gets a fresh logger (or, a per-connection child, keeps the master's
// under its own name), runs the entry and _exit()s with its result.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "common/config.hpp"

namespace prefork::master {

// fork() itself, replaceable so tests can make it fail like EAGAIN under RLIMIT_NPROC would.
using ForkFunction = std::function<pid_t()>;

struct ChildSetup {
  std::string log_tag;                     // "worker 3", "connection"
  const common::Config* config = nullptr;  // for the logger
  std::function<void()> drop_master_fds;   // runs in the child: closes what only the master owns
  ForkFunction fork;                       // empty: ::fork
  // A per-connection child lives for one connection: rebuilding the logger (allocations, the
  // pattern compiled again, pages copied from the master) would cost more than its request.
  // The master's logger writes to the same sink; the child only renames itself in it.
  bool keep_master_logger = false;
};

// Returns the child's pid, or -1 with errno set (EAGAIN, ENOMEM) when fork failed.
pid_t spawn_child(const ChildSetup& setup, const std::function<int()>& body);

// Signals a child of ours; one that is already gone (exited, not reaped yet) is no error.
void send_signal(pid_t pid, int signo);

}  // namespace prefork::master
