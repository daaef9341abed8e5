#include "master/upgrade.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include <spdlog/spdlog.h>

#include "common/config.hpp"
#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "common/sys_error.hpp"
#include "common/version.hpp"
#include "common/wait_status.hpp"
#include "master/spawn.hpp"
#include "master/systemd_notify.hpp"

namespace prefork::master {
namespace {

constexpr const char* kReportFdVariable = common::kUpgradeFdVariable;
// The report pipe's lines: the launcher's "launched PID", then the new master's "serving".
constexpr std::string_view kServing = "serving\n";
constexpr std::string_view kLaunched = "launched ";

[[noreturn]] void exec_new_image(const Executable& exe,
                                 const std::vector<common::Listener>& listeners, int report_fd) {
  // The new image sets up its own signal handling; it must not inherit our blocked set.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Above the descriptors the listeners are about to take (3, 4, …), before they take them.
  const int passed_report = ::fcntl(report_fd, F_DUPFD, 3 + static_cast<int>(listeners.size()));
  common::pass_listeners_across_exec(listeners);
  ::setenv(kReportFdVariable, std::to_string(passed_report).c_str(), 1);
  std::vector<char*> argv;
  for (const auto& arg : exe.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  ::execv(exe.path.c_str(), argv.data());
  const int err = errno;
  spdlog::error("upgrade: pid {}: execv({}): {}", ::getpid(), exe.path, common::errno_text(err));
  common::flush_logging();
  ::_exit(kExitExecFailed);
}

// Ends the launcher the way the new master ended, so that the old master reads the new master's
// exit status from its own child's: "exited with code 2", "killed by SIGSEGV".
[[noreturn]] void exit_as(int status) {
  if (WIFSIGNALED(status)) {
    const int signo = WTERMSIG(status);
    ::prctl(PR_SET_DUMPABLE, 0);     // no core file of the launcher (a copy of the old master)
    (void)::signal(signo, SIG_DFL);  // should it fail, the exit code below still says "failed"
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signo);
    ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
    (void)::raise(signo);
  }
  ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : common::kExitBoot);
}

// The launcher: the new master's parent until the hand-over, a child of the old master. It
// exists for the service manager: when the old master hands over, the launcher is killed first,
// so the kernel has re-parented the new master to init (or to a subreaper such as
// `systemd --user`) before the old master sends MAINPID=. A main process that is not its own
// child is "alien" to systemd, which cannot wait for it: a stop then goes from SIGTERM straight
// to SIGKILL, cutting the drain (systemd 252; seen in tests/packaging/test-systemd.sh). The new
// master dies with the launcher (PR_SET_PDEATHSIG) until it says it serves, and the launcher
// dies with the old master, so an abandoned attempt leaves nothing behind.
[[noreturn]] void run_launcher(const Executable& exe,
                               const std::vector<common::Listener>& listeners,
                               common::UniqueFd report, pid_t old_master) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != old_master) {
    ::_exit(common::kExitBoot);
  }
  const pid_t launcher = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != launcher) {
      ::_exit(common::kExitBoot);
    }
    exec_new_image(exe, listeners, report.get());
  }
  if (pid < 0) {
    spdlog::error("upgrade: launcher pid {}: fork: {}", launcher, common::errno_text(errno));
    common::flush_logging();
    ::_exit(kExitExecFailed);
  }
  const std::string line = std::string(kLaunched) + std::to_string(pid) + "\n";
  if (::write(report.get(), line.data(), line.size()) < 0) {
    // The old master then knows the launcher's pid only, which is enough to end the attempt.
  }
  report.reset();  // the new master's copy alone keeps the pipe open: its exit is EOF
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) ::_exit(common::kExitBoot);
  }
  exit_as(status);
}

}  // namespace

Executable resolve_executable(int argc, const char* const* argv) {
  Executable exe;
  std::string path(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", path.data(), path.size());
  if (n > 0) {
    path.resize(static_cast<std::size_t>(n));
    exe.path = path;
  }
  for (int i = 0; i < argc; ++i) exe.argv.emplace_back(argv[i]);
  return exe;
}

UpgradeInProgress::UpgradeInProgress(const Executable& exe,
                                     const std::vector<common::Listener>& listeners,
                                     Millis deadline)
    : deadline_(deadline) {
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw common::SysError("pipe2");
  report_.reset(fds[0]);
  common::UniqueFd write_end(fds[1]);
  common::flush_logging();  // nothing buffered may be written twice
  const pid_t old_master = ::getpid();
  launcher_ = ::fork();
  if (launcher_ < 0) throw common::SysError("fork");
  if (launcher_ == 0) run_launcher(exe, listeners, std::move(write_end), old_master);
}

std::optional<bool> UpgradeInProgress::read_report() {
  char buffer[64];
  for (;;) {
    const ssize_t n = ::read(report_.get(), buffer, sizeof buffer);
    if (n > 0) {
      received_.append(buffer, static_cast<std::size_t>(n));
      if (take_report_lines()) return true;
      continue;
    }
    if (n == 0) return false;  // closed without saying it serves
    if (errno == EINTR) continue;
    return std::nullopt;  // EAGAIN: nothing yet
  }
}

// Consumes the complete lines received; true at "serving".
bool UpgradeInProgress::take_report_lines() {
  for (auto end = received_.find('\n'); end != std::string::npos; end = received_.find('\n')) {
    const std::string line = received_.substr(0, end + 1);
    received_.erase(0, end + 1);
    if (line == kServing) return true;
    if (line.starts_with(kLaunched)) new_master_ = std::atoi(line.c_str() + kLaunched.size());
  }
  return false;
}

void UpgradeInProgress::kill_all() const {
  if (new_master_ > 0) send_signal(new_master_, SIGKILL);  // whether or not it still depends on
  send_signal(launcher_, SIGKILL);                         // the launcher: see run_launcher
}

common::UniqueFd take_upgrade_report_fd() {
  const char* text = std::getenv(kReportFdVariable);
  if (text == nullptr) return {};
  const int fd = std::atoi(text);
  ::unsetenv(kReportFdVariable);
  if (fd < 3 || ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return {};
  return common::UniqueFd(fd);
}

Upgrader::Upgrader(Executable executable, int epoll_fd)
    : executable_(std::move(executable)), epoll_fd_(epoll_fd) {}

void Upgrader::begin(const std::vector<common::Listener>& listeners, Millis deadline,
                     Millis timeout) {
  if (child_) {
    spdlog::warn("SIGUSR2 ignored: an upgrade (launcher pid {}) is under way", child_->launcher());
    return;
  }
  if (executable_.path.empty()) {
    spdlog::warn("SIGUSR2 ignored: the executable's path is unknown");
    replies_.answer(ControlOutcome::kRejected);
    return;
  }
  systemd_notify(reloading_message() + "\nSTATUS=upgrading");
  try {
    child_.emplace(executable_, listeners, deadline);
    stage_ = Stage::kStarting;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = child_->report_fd();
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, ev.data.fd, &ev) != 0) {
      throw common::SysError("epoll_ctl");
    }
  } catch (const std::exception& err) {
    // A child already forked learns of it through its closed pipe and is reaped as ours.
    if (child_) abandon(err.what());
    spdlog::error("upgrade failed, still serving: {}", err.what());
    systemd_notify("READY=1\nSTATUS=upgrade failed; still serving");
    replies_.answer(ControlOutcome::kRejected);
    return;
  }
  timeout_ = timeout;
  spdlog::info("SIGUSR2: upgrading: started {} (launcher pid {}); it has {} ms to serve",
               executable_.path, child_->launcher(), timeout);
}

// The new master serves once it says so; a pipe closed first, or silence past the deadline,
// means it failed: it is killed, and its launcher's exit (reaped as our child) ends the attempt.
// Once it serves, its launcher is killed, and the hand-over waits until that one is reaped.
bool Upgrader::follow(Millis now) {
  if (!child_ || stage_ == Stage::kHandedOver) return false;
  if (stage_ == Stage::kStarting && child_->report_fd_open()) {
    const auto report = child_->read_report();
    if (report == true) {
      release();
    } else if (report == false) {
      // Most likely it exited: its launcher reports how, unless this grace runs out first.
      child_->close_report();
      child_->shorten_deadline(now + kExitReportGrace);
    }
  }
  if (stage_ == Stage::kStarting && now >= child_->deadline()) {
    abandon(child_->report_fd_open() ? "it did not report serving within upgrade_timeout (" +
                                           std::to_string(timeout_) + " ms)"
                                     : "it closed its report pipe before serving");
  }
  if (stage_ != Stage::kLauncherReaped) return false;
  hand_over();
  return true;
}

void Upgrader::release() {
  stage_ = Stage::kReleased;
  child_->close_report();
  send_signal(child_->launcher(), SIGKILL);  // the new master no longer dies with it
}

// From here on the new master is the master: systemd follows it (MAINPID, sent while we are
// still the main process, so NotifyAccess=main suffices; its parent is already init's side).
void Upgrader::hand_over() {
  const pid_t pid = child_->new_master();
  spdlog::info("upgrade: new master pid {} serves; prefork-httpd {} (pid {}) hands over and drains",
               pid, common::kVersion, ::getpid());
  // Its pid comes from the launcher's first line; without it, systemd keeps the old main pid.
  const std::string main_pid = pid > 0 ? "MAINPID=" + std::to_string(pid) + "\n" : "";
  systemd_notify(main_pid + "READY=1\nSTATUS=upgraded; new master pid " + std::to_string(pid) +
                 " serving");
  // systemd reads notifications and child exits from different queues: a drain that ends
  // before it read MAINPID= would leave it naming an exited main process, which stops the
  // service. This master waits until systemd has read it before it goes on to drain.
  if (!systemd_notify_barrier(kHandOverBarrierMs)) {
    spdlog::warn("upgrade: systemd did not confirm MAINPID={} within {} ms", pid,
                 kHandOverBarrierMs);
  }
  stage_ = Stage::kHandedOver;
  replies_.answer(ControlOutcome::kApplied);
  child_.reset();
}

void Upgrader::abandon(const std::string& why) {
  if (!child_ || stage_ == Stage::kHandedOver || stage_ == Stage::kAbandoned) return;
  stage_ = Stage::kAbandoned;
  spdlog::error("upgrade: new master pid {} failed: {}; killing it, still serving",
                child_->new_master(), why);
  if (child_->report_fd_open() && child_->read_report() == true) {
    spdlog::warn("upgrade: new master pid {} said it serves just now", child_->new_master());
  }
  child_->close_report();
  child_->kill_all();  // the new master's workers die with it (PR_SET_PDEATHSIG)
}

bool Upgrader::on_child_exit(pid_t pid, int status) {
  if (!child_ || pid != child_->launcher()) return false;
  // What the new master said before its launcher went, whoever ended the launcher.
  if (stage_ == Stage::kStarting && child_->report_fd_open() && child_->read_report() == true) {
    release();
  }
  if (stage_ == Stage::kReleased) {
    stage_ = Stage::kLauncherReaped;  // follow() hands over
    return true;
  }
  const std::string how = common::describe_wait_status(status);
  spdlog::error("upgrade failed: new master pid {} {}; still serving (prefork-httpd {})",
                child_->new_master(), how, common::kVersion);
  systemd_notify("READY=1\nSTATUS=upgrade failed; still serving");
  replies_.answer(ControlOutcome::kRejected);
  child_.reset();
  stage_ = Stage::kIdle;
  return true;
}

// [[gnu::hot]]: what a per-connection child runs (why: above worker::serve_single_connection).
[[gnu::hot]] void Upgrader::drop_in_child() {
  child_.reset();
  old_master_.reset();
  replies_.forget();
}

bool Upgrader::tell_old_master_we_serve() {
  // From now on we outlive our launcher: the old master kills it to hand over (run_launcher).
  ::prctl(PR_SET_PDEATHSIG, 0);
  const bool told = ::write(old_master_.get(), kServing.data(), kServing.size()) ==
                    static_cast<ssize_t>(kServing.size());
  const int err = errno;
  old_master_.reset();
  if (!told) {
    // It gave up on us (a stop, upgrade_timeout) and closed its end: it still serves.
    spdlog::error("upgrade: the old master did not take our report ({}); stopping",
                  common::errno_text(err));
    return false;
  }
  spdlog::info("upgrade: told the old master that we serve");
  return true;
}

}  // namespace prefork::master
