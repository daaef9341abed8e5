#include "master/upgrade.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include <spdlog/spdlog.h>

#include "common/config.hpp"
#include "common/log.hpp"
#include "common/sys_error.hpp"
#include "common/version.hpp"
#include "common/wait_status.hpp"
#include "master/spawn.hpp"
#include "master/systemd_notify.hpp"

namespace prefork::master {
namespace {

constexpr const char* kReportFdVariable = common::kUpgradeFdVariable;
constexpr std::string_view kServing = "serving\n";

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
  pid_ = ::fork();
  if (pid_ < 0) throw common::SysError("fork");
  if (pid_ == 0) exec_new_image(exe, listeners, write_end.get());
}

std::optional<bool> UpgradeInProgress::read_report() {
  char buffer[64];
  for (;;) {
    const ssize_t n = ::read(report_.get(), buffer, sizeof buffer);
    if (n > 0) {
      received_.append(buffer, static_cast<std::size_t>(n));
      if (received_.starts_with(kServing)) return true;
      continue;
    }
    if (n == 0) return false;  // closed without saying it serves
    if (errno == EINTR) continue;
    return std::nullopt;  // EAGAIN: nothing yet
  }
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
    spdlog::warn("SIGUSR2 ignored: an upgrade to pid {} is under way", child_->pid());
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
  spdlog::info("SIGUSR2: upgrading: started {} as pid {}; it has {} ms to serve", executable_.path,
               child_->pid(), timeout);
}

// The new master serves once it says so; a pipe closed first, or silence past the deadline,
// means it failed: it is killed, and its exit (reaped as our child) ends the attempt.
bool Upgrader::follow(Millis now) {
  if (!child_ || handed_over_ || !child_->report_fd_open()) return false;
  const auto report = child_->read_report();
  if (report == true) {
    hand_over();
    return true;
  }
  if (report == false) {
    abandon("it exited or closed its report pipe before serving");
  } else if (now >= child_->deadline()) {
    abandon("it did not report serving within upgrade_timeout (" + std::to_string(timeout_) +
            " ms)");
  }
  return false;
}

// From here on the new master is the master: systemd follows it (MAINPID, sent while we are
// still the main process, so NotifyAccess=main suffices).
void Upgrader::hand_over() {
  const pid_t pid = child_->pid();
  spdlog::info("upgrade: new master pid {} serves; prefork-httpd {} (pid {}) hands over and drains",
               pid, common::kVersion, ::getpid());
  systemd_notify("MAINPID=" + std::to_string(pid) + "\nREADY=1\nSTATUS=upgraded; new master pid " +
                 std::to_string(pid) + " serving");
  handed_over_ = true;
  replies_.answer(ControlOutcome::kApplied);
  child_->close_report();
}

void Upgrader::abandon(const std::string& why) {
  if (!child_ || handed_over_ || !child_->report_fd_open()) return;
  spdlog::error("upgrade: new master pid {} failed: {}; killing it, still serving", child_->pid(),
                why);
  child_->close_report();
  send_signal(child_->pid(), SIGKILL);  // its workers die with it (PR_SET_PDEATHSIG)
}

bool Upgrader::on_child_exit(pid_t pid, int status) {
  if (!child_ || pid != child_->pid()) return false;
  const std::string how = common::describe_wait_status(status);
  if (handed_over_) {
    spdlog::info("new master pid {} {}", pid, how);
  } else {
    spdlog::error("upgrade failed: new master pid {} {}; still serving (prefork-httpd {})", pid,
                  how, common::kVersion);
    systemd_notify("READY=1\nSTATUS=upgrade failed; still serving");
    replies_.answer(ControlOutcome::kRejected);
  }
  child_.reset();
  return true;
}

void Upgrader::drop_in_child() {
  child_.reset();
  old_master_.reset();
  replies_.forget();
}

void Upgrader::tell_old_master_we_serve() {
  if (::write(old_master_.get(), kServing.data(), kServing.size()) !=
      static_cast<ssize_t>(kServing.size())) {
    spdlog::error("upgrade: cannot tell the old master we serve: {}", common::errno_text(errno));
  }
  old_master_.reset();
  spdlog::info("upgrade: told the old master (pid {}) that we serve", ::getppid());
}

}  // namespace prefork::master
