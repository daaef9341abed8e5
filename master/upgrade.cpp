#include "master/upgrade.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include <spdlog/spdlog.h>

#include "common/config.hpp"
#include "common/log.hpp"
#include "common/sys_error.hpp"

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

void report_serving(common::UniqueFd& report) {
  if (!report) return;
  if (::write(report.get(), kServing.data(), kServing.size()) !=
      static_cast<ssize_t>(kServing.size())) {
    spdlog::error("upgrade: cannot tell the old master we serve: {}", common::errno_text(errno));
  }
  report.reset();
}

}  // namespace prefork::master
