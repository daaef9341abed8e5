// The worker side's public entry points (worker, after fork): the master hands one of these to
// its spawner as the child's entry function and _exit()s with the returned code.
#pragma once

#include <memory>

#include "common/child_context.hpp"
#include "common/config.hpp"
#include "common/unique_fd.hpp"

namespace prefork::worker {

// Prefork worker entry: serves ctx.listeners until drained (SIGQUIT) or stopped (SIGTERM/SIGINT);
// returns the exit code.
int run(const common::ChildContext& ctx);

// Per-connection child entry: serves the one client (keep-alive included), then returns.
int serve_connection(const common::ChildContext& ctx, common::UniqueFd client);

struct PreparedConfig;

// Per-connection mode, both sides of fork: in the master, prepare() builds before each fork what
// the children of a configuration generation read alike (PreparedConfig: limits, routes, the
// hello responses, kept dated); after fork, serve() is the child's entry and uses that copy
// instead of allocating its own. master/main.cpp composes the two into the master's forker.
class ConnectionPrototype {
 public:
  ConnectionPrototype();
  ConnectionPrototype(const ConnectionPrototype&) = delete;
  ConnectionPrototype& operator=(const ConnectionPrototype&) = delete;
  ~ConnectionPrototype();

  // In the master, before fork: rebuilds for a new generation, re-dates in a new second.
  void prepare(const common::Config& config, unsigned generation);
  // The child's entry, as serve_connection.
  int serve(const common::ChildContext& ctx, common::UniqueFd client);

 private:
  std::unique_ptr<PreparedConfig> prepared_;  // null: children build their own
  unsigned generation_ = 0;
};

}  // namespace prefork::worker
