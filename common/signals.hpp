// Signal plumbing shared by the master and its children: a RAII signal mask, signalfd helpers,
// signal names, and the master-to-child protocol (which signal asks a child to do what).
#pragma once

#include <signal.h>
#include <sys/signalfd.h>

#include <initializer_list>
#include <optional>
#include <string>

#include "common/unique_fd.hpp"

namespace prefork::common {

// What the master sends a child. A hung child ignores all of these; it gets SIGKILL next.
inline constexpr int kSignalDrain = SIGQUIT;   // stop accepting, finish in-flight, exit 0
inline constexpr int kSignalStop = SIGTERM;    // exit now
inline constexpr int kSignalReopen = SIGUSR1;  // reopen log files

sigset_t make_sigset(std::initializer_list<int> signals);

// Blocks `set` for the lifetime of the object and restores the previous mask afterwards.
class BlockedSignals {
 public:
  explicit BlockedSignals(const sigset_t& set);
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;
  ~BlockedSignals();

 private:
  sigset_t previous_{};
};

// A non-blocking, close-on-exec signalfd for `set` (which must already be blocked).
UniqueFd open_signalfd(const sigset_t& set);

// Next pending signal from a signalfd, or nullopt when none is left.
std::optional<int> read_signal(int signal_fd);

// The same with what the kernel says about it (sender pid, si_code, sigqueue value).
std::optional<signalfd_siginfo> read_signal_info(int signal_fd);

// Once, at master startup: any signal our parent left ignored (nohup, some init scripts) goes
// back to its default action. Ignoring survives exec and fork; handlers do not survive exec.
// The master installs no handlers (it reads signals through a signalfd) and ignores only
// SIGPIPE, so after this its children inherit default dispositions and need not reset all 64
// signals themselves after every fork (64 syscalls per connection in per-connection mode).
void restore_default_dispositions();

// In a freshly forked child: a mask holding only the signals the master sends children (drain,
// stop, INT, reopen, HUP). They stay blocked because a child reads them through its own
// signalfd: one that arrives before the child is ready waits for it instead of killing it. A
// child that wants default actions unblocks them itself.
void reset_signals_after_fork();

// The signals a child keeps blocked after fork (see above).
sigset_t child_signals();

// Ignores SIGPIPE (writes use MSG_NOSIGNAL; this covers the rest).
void ignore_sigpipe();

// "SIGTERM", "SIGSEGV", or "signal 64".
std::string signal_name(int signo);

}  // namespace prefork::common
