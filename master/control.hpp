// `prefork-httpd --signal NAME`: the binary signals its running master, as `nginx -s reload`
// does, so that a service manager needs nothing but this package (no kill(1) from procps).
//
// reload and upgrade wait for the outcome, so that `systemctl reload` fails when the new
// configuration is rejected. The request is the usual signal (SIGHUP, SIGUSR2) sent with
// sigqueue() and kControlMagic as its value; the master reads the sender's pid from its
// signalfd and, once the outcome is known, answers that process (through a pidfd, so never a
// process that reused the pid) with kControlReplySignal carrying a ControlOutcome. A plain
// `kill -HUP` carries no magic and gets no answer.
#pragma once

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/unique_fd.hpp"

namespace prefork::master {

// What a sigqueue()d SIGHUP/SIGUSR2 carries when its sender waits for an answer ("PHCT").
inline constexpr int kControlMagic = 0x50484354;

// The answer's signal: real-time, so answers to several waiters never coalesce.
inline int control_reply_signal() {
  return SIGRTMIN + 2;
}

// The answer's value.
enum class ControlOutcome : int {
  kApplied = 1,   // reload: the new configuration is in force; upgrade: the new master serves
  kRejected = 2,  // reload: the configuration is invalid; upgrade: the new binary failed
  kStopping = 3,  // the master is stopping (or handed over) and will not do it
};

// Sends the signal named by `action` (reload, upgrade, reopen, stop, quit) to `pid`, or when it
// is 0 to the pid in `pidfile`. reload and upgrade then wait for the master's answer, an upgrade
// for up to `upgrade_timeout` plus a margin. Returns the exit code (0: done; 1: rejected, failed
// or no answer); prints the outcome.
int signal_master(const std::string& action, pid_t pid, const std::string& pidfile,
                  common::Millis upgrade_timeout);

// The master's side: the processes waiting for the outcome of one kind of request.
class ControlReplies {
 public:
  // Remembers the sender of `info` when it asked for an answer.
  void note(const signalfd_siginfo& info);
  // Answers every waiting process, and forgets them.
  void answer(ControlOutcome outcome);
  // Moves `other`'s waiting processes here (their request moved on to its next stage).
  void take(ControlReplies& other);
  // In a forked child: closes the pidfds without answering.
  void forget() { waiting_.clear(); }

 private:
  std::vector<common::UniqueFd> waiting_;  // pidfds of the senders
};

}  // namespace prefork::master
