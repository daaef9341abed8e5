#include "common/signals.hpp"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cstring>

#include "common/sys_error.hpp"

namespace prefork::common {

sigset_t make_sigset(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int signo : signals) sigaddset(&set, signo);
  return set;
}

// [[gnu::hot]]: what a per-connection child runs (why: above worker::serve_single_connection).
[[gnu::hot]] BlockedSignals::BlockedSignals(const sigset_t& set) {
  if (const int err = ::pthread_sigmask(SIG_BLOCK, &set, &previous_); err != 0) {
    throw SysError("pthread_sigmask", err);
  }
}

[[gnu::hot]] BlockedSignals::~BlockedSignals() {
  ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

[[gnu::hot]] UniqueFd open_signalfd(const sigset_t& set) {
  UniqueFd fd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd) throw SysError("signalfd");
  return fd;
}

std::optional<int> read_signal(int signal_fd) {
  const auto info = read_signal_info(signal_fd);
  if (!info) return std::nullopt;
  return static_cast<int>(info->ssi_signo);
}

std::optional<signalfd_siginfo> read_signal_info(int signal_fd) {
  signalfd_siginfo info{};
  for (;;) {
    const ssize_t n = ::read(signal_fd, &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) return info;
    if (n < 0 && errno == EINTR) continue;
    return std::nullopt;  // EAGAIN: nothing pending
  }
}

void restore_default_dispositions() {
  for (int signo = 1; signo < NSIG; ++signo) {
    struct sigaction current {};
    // Fails harmlessly for SIGKILL/SIGSTOP and the reserved real-time signals.
    if (::sigaction(signo, nullptr, &current) != 0 || current.sa_handler != SIG_IGN) continue;
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(signo, &dfl, nullptr);
  }
}

[[gnu::hot]] void reset_signals_after_fork() {
  const sigset_t blocked = child_signals();
  ::pthread_sigmask(SIG_SETMASK, &blocked, nullptr);
}

[[gnu::hot]] sigset_t child_signals() {
  return make_sigset({kSignalDrain, kSignalStop, SIGINT, kSignalReopen, SIGHUP});
}

[[gnu::hot]] void ignore_sigpipe() {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ::sigaction(SIGPIPE, &ign, nullptr);
}

std::string signal_name(int signo) {
  if (const char* abbrev = ::sigabbrev_np(signo)) return std::string("SIG") + abbrev;
  return "signal " + std::to_string(signo);
}

}  // namespace prefork::common
