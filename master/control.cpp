#include "master/control.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <spdlog/spdlog.h>

#include "common/exit_codes.hpp"
#include "common/signals.hpp"
#include "common/sys_error.hpp"

// pidfd_open(2) and pidfd_send_signal(2) through syscall(2): glibc 2.36's <sys/pidfd.h>
// declares them without C linkage for C++.
namespace prefork::master {
namespace {

constexpr common::Millis kReloadAnswerTimeout = 60'000;
constexpr common::Millis kUpgradeAnswerMargin = 5'000;  // beyond upgrade_timeout
constexpr common::Millis kLivenessCheckInterval = 200;  // how often we check the master lives
constexpr std::size_t kMaxWaiting = 64;                 // answers owed per kind of request

struct Action {
  int signo;
  bool waits;  // for the master's answer
};

std::optional<pid_t> pid_from_pidfile(const std::string& pidfile) {
  if (pidfile.empty()) {
    (void)std::fprintf(stderr, "prefork-httpd: --signal needs --pid or a configured pidfile\n");
    return std::nullopt;
  }
  std::ifstream in(pidfile);
  pid_t pid = 0;
  if (!(in >> pid) || pid <= 0) {
    (void)std::fprintf(stderr, "prefork-httpd: %s: no master pid in it (is the server running?)\n",
                       pidfile.c_str());
    return std::nullopt;
  }
  return pid;
}

// The effective uid `pid` runs as (the "Uid:" line of /proc/PID/status: real, effective, ...).
std::optional<uid_t> effective_uid_of(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (!line.starts_with("Uid:")) continue;
    std::istringstream fields(line.substr(4));
    uid_t real = 0;
    uid_t effective = 0;
    if (fields >> real >> effective) return effective;
  }
  return std::nullopt;
}

// The kernel lets the master signal us only when its uid matches our real or saved uid. Root
// asking a master that runs as a service user (sudo prefork-httpd --signal reload) takes that
// uid as its saved uid, keeping its real and effective uid (and so its capabilities).
void make_answerable_by(pid_t pid) {
  if (::geteuid() != 0) return;
  const auto uid = effective_uid_of(pid);
  if (!uid || *uid == 0) return;
  if (::setresuid(static_cast<uid_t>(-1), static_cast<uid_t>(-1), *uid) != 0) {
    (void)std::fprintf(stderr,
                       "prefork-httpd: setresuid: %s; the master may not be able to answer\n",
                       common::errno_text(errno).c_str());
  }
}

bool send_request(const std::string& action, pid_t pid, const Action& what) {
  int rc = 0;
  if (what.waits) {
    sigval value{};
    value.sival_int = kControlMagic;
    rc = ::sigqueue(pid, what.signo, value);
  } else {
    rc = ::kill(pid, what.signo);
  }
  if (rc != 0) {
    (void)std::fprintf(stderr, "prefork-httpd: signalling pid %d (%s): %s\n", pid, action.c_str(),
                       common::errno_text(errno).c_str());
    return false;
  }
  return true;
}

// The master's answer, or nullopt when it exited or the timeout passed first (said on stderr).
std::optional<ControlOutcome> wait_for_answer(const std::string& action, pid_t pid,
                                              common::Millis timeout) {
  const sigset_t reply = common::make_sigset({control_reply_signal()});
  const common::Millis deadline = common::monotonic_ms() + timeout;
  for (common::Millis now = common::monotonic_ms(); now < deadline; now = common::monotonic_ms()) {
    const common::Millis slice = std::min(kLivenessCheckInterval, deadline - now);
    const timespec wait{.tv_sec = slice / 1000, .tv_nsec = (slice % 1000) * 1'000'000};
    siginfo_t info{};
    if (::sigtimedwait(&reply, &info, &wait) == control_reply_signal()) {
      if (info.si_code == SI_QUEUE && info.si_pid == pid) {
        return static_cast<ControlOutcome>(info.si_value.sival_int);
      }
      continue;  // not from our master
    }
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
      (void)std::fprintf(stderr, "prefork-httpd: %s: the master (pid %d) exited before answering\n",
                         action.c_str(), pid);
      return std::nullopt;
    }
  }
  (void)std::fprintf(stderr,
                     "prefork-httpd: %s: no answer from the master (pid %d) within %lld ms; its "
                     "log says what became of the request\n",
                     action.c_str(), pid, static_cast<long long>(timeout));
  return std::nullopt;
}

int report(const std::string& action, pid_t pid, ControlOutcome outcome) {
  const bool reload = action == "reload";
  switch (outcome) {
    case ControlOutcome::kApplied:
      (void)std::printf(
          reload ? "prefork-httpd: reload: the new configuration is in force (master pid %d)\n"
                 : "prefork-httpd: upgrade: the new master serves; the old one (pid %d) drains\n",
          pid);
      return common::kExitOk;
    case ControlOutcome::kRejected:
      (void)std::fprintf(stderr,
                         reload ? "prefork-httpd: reload rejected: the master (pid %d) keeps the "
                                  "running configuration; its error log says why\n"
                                : "prefork-httpd: upgrade failed: the master (pid %d) still serves "
                                  "the running version; its error log says why\n",
                         pid);
      return common::kExitFailure;
    case ControlOutcome::kStopping:
      (void)std::fprintf(stderr, "prefork-httpd: %s: not done: the master (pid %d) is stopping\n",
                         action.c_str(), pid);
      return common::kExitFailure;
  }
  (void)std::fprintf(stderr, "prefork-httpd: %s: unknown answer from pid %d\n", action.c_str(),
                     pid);
  return common::kExitFailure;
}

}  // namespace

int signal_master(const std::string& action, pid_t pid, const std::string& pidfile,
                  common::Millis upgrade_timeout) {
  static const std::map<std::string, Action> actions = {{"reload", {SIGHUP, true}},
                                                        {"upgrade", {SIGUSR2, true}},
                                                        {"reopen", {SIGUSR1, false}},
                                                        {"stop", {SIGTERM, false}},
                                                        {"quit", {SIGINT, false}}};
  const auto what = actions.find(action);
  if (what == actions.end()) {
    (void)std::fprintf(stderr, "prefork-httpd: --signal %s: unknown action\n", action.c_str());
    return common::kExitConfig;
  }
  if (pid <= 0) {
    const auto from_file = pid_from_pidfile(pidfile);
    if (!from_file) return pidfile.empty() ? common::kExitConfig : common::kExitFailure;
    pid = *from_file;
  }
  if (!what->second.waits) {
    return send_request(action, pid, what->second) ? common::kExitOk : common::kExitFailure;
  }
  make_answerable_by(pid);
  // Blocked before the request leaves, so an answer that comes at once waits for us.
  const common::BlockedSignals blocked(common::make_sigset({control_reply_signal()}));
  if (!send_request(action, pid, what->second)) return common::kExitFailure;
  const common::Millis timeout =
      action == "reload" ? kReloadAnswerTimeout : upgrade_timeout + kUpgradeAnswerMargin;
  const auto outcome = wait_for_answer(action, pid, timeout);
  return outcome ? report(action, pid, *outcome) : common::kExitFailure;
}

void ControlReplies::note(const signalfd_siginfo& info) {
  if (info.ssi_code != SI_QUEUE || info.ssi_int != kControlMagic) return;  // plain kill: no answer
  const auto pid = static_cast<pid_t>(info.ssi_pid);
  if (waiting_.size() >= kMaxWaiting) {
    spdlog::warn("control: {} processes already wait for an answer; pid {} will get none",
                 waiting_.size(), pid);
    return;
  }
  // A pidfd names this process, not whoever gets its pid should it exit before the answer.
  common::UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    spdlog::warn("control: pidfd_open({}): {}; it gets no answer", pid, common::errno_text(errno));
    return;
  }
  waiting_.push_back(std::move(pidfd));
}

void ControlReplies::answer(ControlOutcome outcome) {
  for (const auto& pidfd : waiting_) {
    siginfo_t info{};
    info.si_signo = control_reply_signal();
    info.si_code = SI_QUEUE;
    info.si_pid = ::getpid();
    info.si_uid = ::getuid();
    info.si_value.sival_int = static_cast<int>(outcome);
    if (::syscall(SYS_pidfd_send_signal, pidfd.get(), control_reply_signal(), &info, 0) != 0 &&
        errno != ESRCH) {
      spdlog::warn("control: answering a waiting process: {}", common::errno_text(errno));
    }
  }
  waiting_.clear();
}

void ControlReplies::take(ControlReplies& other) {
  for (auto& pidfd : other.waiting_) waiting_.push_back(std::move(pidfd));
  other.waiting_.clear();
}

}  // namespace prefork::master
