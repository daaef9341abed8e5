// Binary upgrade on SIGUSR2 (master only). The running master forks and execs the executable
// now at the path it was started from, passing the listening sockets; the new master starts its
// workers and, once they serve, says so through a pipe. Only then does the old master hand over
// (systemd's MAINPID) and drain. A new image that cannot be executed, exits, or stays silent
// past upgrade_timeout is killed: the old master never stopped serving.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/listeners.hpp"
#include "common/unique_fd.hpp"

namespace prefork::master {

using common::Millis;

// What to exec on an upgrade, resolved once at start: after dpkg replaces the file,
// /proc/self/exe names the deleted old image, but this path names the new one.
struct Executable {
  std::string path;  // empty: upgrades are not possible (e.g. a test harness)
  std::vector<std::string> argv;
};
Executable resolve_executable(int argc, const char* const* argv);

// The old master's side: the new master as a child, and the pipe it reports on.
class UpgradeInProgress {
 public:
  // Forks and execs `exe` with `listeners` passed; throws common::SysError when that fails in
  // the parent (pipe, fork). An exec failure shows as the child exiting with kExitExecFailed.
  UpgradeInProgress(const Executable& exe, const std::vector<common::Listener>& listeners,
                    Millis deadline);

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] int report_fd() const { return report_.get(); }
  [[nodiscard]] bool report_fd_open() const { return static_cast<bool>(report_); }
  // Closing it also takes it out of the epoll set.
  void close_report() { report_.reset(); }
  [[nodiscard]] Millis deadline() const { return deadline_; }
  // Reads what the new master said: true once it reported "serving"; nullopt while it has not
  // said anything yet; false when it closed the pipe without saying it (it failed).
  std::optional<bool> read_report();

 private:
  pid_t pid_ = -1;
  common::UniqueFd report_;
  Millis deadline_ = 0;
  std::string received_;
};

inline constexpr int kExitExecFailed = 127;  // as a shell reports "cannot execute"

// The new master's side: the pipe to the old master, when we were started by an upgrade.
common::UniqueFd take_upgrade_report_fd();
// Tells the old master that our workers serve (then closes the pipe).
void report_serving(common::UniqueFd& report);

}  // namespace prefork::master
