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
#include "master/control.hpp"

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

// The new master's side: the pipe to the old master, when we were started by an upgrade.
common::UniqueFd take_upgrade_report_fd();

// The old master's side of an upgrade, from SIGUSR2 to the hand-over, for the supervisor: it
// starts the new master, follows its report, kills it when it fails, and tells systemd and the
// `--signal upgrade` senders (replies()) how it went. Until the hand-over this master serves.
class Upgrader {
 public:
  // `epoll_fd`: where the new master's report pipe is watched while it starts.
  Upgrader(Executable executable, int epoll_fd);

  [[nodiscard]] ControlReplies& replies() { return replies_; }
  [[nodiscard]] bool is_report(int fd) const { return child_ && fd == child_->report_fd(); }
  // A new master serves: this one only drains now, and systemd hears from it no more.
  [[nodiscard]] bool handed_over() const { return handed_over_; }

  // SIGUSR2: starts the new master, which has until `deadline` to report serving.
  void begin(const std::vector<common::Listener>& listeners, Millis deadline, Millis timeout);
  // True once, when the new master reports serving: it is the master from then on.
  bool follow(Millis now);
  // Kills a new master that does not serve yet (it is reaped through on_child_exit).
  void abandon(const std::string& why);
  // True when `pid` was the new master (its exit ends the attempt).
  bool on_child_exit(pid_t pid, int status);
  // In a forked child: no descriptor of ours stays open there.
  void drop_in_child();

  // The new master's side: true when an upgrade started us; then, once our workers serve:
  [[nodiscard]] bool started_by_upgrade() const { return static_cast<bool>(old_master_); }
  void tell_old_master_we_serve();

 private:
  void hand_over();

  Executable executable_;
  int epoll_fd_;
  std::optional<UpgradeInProgress> child_;
  Millis timeout_ = 0;      // of the attempt under way, for its log line
  ControlReplies replies_;  // answered when the new master serves, or failed
  bool handed_over_ = false;
  common::UniqueFd old_master_ = take_upgrade_report_fd();
};

inline constexpr int kExitExecFailed = 127;  // as a shell reports "cannot execute"

}  // namespace prefork::master
