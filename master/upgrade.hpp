// Binary upgrade on SIGUSR2 (master only). The running master forks a launcher, which forks and
// execs the executable now at the path the master was started from, passing the listening
// sockets; the new master starts its workers and, once they serve, says so through a pipe. Only
// then does the old master end the launcher (so the new master becomes the service manager's
// child), hand over (systemd's MAINPID) and drain. A new image that cannot be executed, exits,
// or stays silent past upgrade_timeout is killed: the old master never stopped serving.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
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

// The old master's side: the launcher (our child, the new master's parent until the hand-over,
// exiting as the new master does), and the pipe both report on.
class UpgradeInProgress {
 public:
  // Forks the launcher, which forks and execs `exe` with `listeners` passed; throws
  // common::SysError when that fails here (pipe, fork). An exec failure shows as the launcher
  // exiting with kExitExecFailed.
  UpgradeInProgress(const Executable& exe, const std::vector<common::Listener>& listeners,
                    Millis deadline);

  [[nodiscard]] pid_t launcher() const { return launcher_; }
  // 0 until the launcher has reported it.
  [[nodiscard]] pid_t new_master() const { return new_master_; }
  // SIGKILL to the new master (when known) and the launcher.
  void kill_all() const;
  [[nodiscard]] int report_fd() const { return report_.get(); }
  [[nodiscard]] bool report_fd_open() const { return static_cast<bool>(report_); }
  // Closing it also takes it out of the epoll set.
  void close_report() { report_.reset(); }
  [[nodiscard]] Millis deadline() const { return deadline_; }
  void shorten_deadline(Millis to) { deadline_ = std::min(deadline_, to); }
  // Reads what the new master said: true once it reported "serving"; nullopt while it has not
  // said anything yet; false when it closed the pipe without saying it (it failed).
  std::optional<bool> read_report();

 private:
  bool take_report_lines();

  pid_t launcher_ = -1;
  pid_t new_master_ = 0;
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
  [[nodiscard]] bool handed_over() const { return stage_ == Stage::kHandedOver; }

  // SIGUSR2: starts the new master, which has until `deadline` to report serving.
  void begin(const std::vector<common::Listener>& listeners, Millis deadline, Millis timeout);
  // True once, when the new master serves and its launcher is gone: it is the master from then.
  bool follow(Millis now);
  // Kills a new master that has not taken over (its launcher is reaped through on_child_exit).
  void abandon(const std::string& why);
  // True when `pid` was the launcher (its exit before the hand-over ends the attempt).
  bool on_child_exit(pid_t pid, int status);
  // In a forked child: no descriptor of ours stays open there.
  void drop_in_child();

  // The new master's side: true when an upgrade started us; then, once our workers serve:
  [[nodiscard]] bool started_by_upgrade() const { return static_cast<bool>(old_master_); }
  // False when the old master did not take it (it gave up on us): then we must stop.
  [[nodiscard]] bool tell_old_master_we_serve();

 private:
  // Where the attempt under way stands; every transition is in upgrade.cpp.
  enum class Stage : std::uint8_t {
    kIdle,            // none under way (or the last one failed): this master goes on
    kStarting,        // the new master starts; its report is awaited until the deadline
    kReleased,        // it serves; its launcher was killed and its exit is awaited
    kLauncherReaped,  // ... and came: follow() hands over
    kAbandoned,       // it failed and was killed; its launcher's exit ends the attempt
    kHandedOver,      // the new master is the master: this one only drains
  };

  void release();
  void hand_over();

  Executable executable_;
  int epoll_fd_;
  std::optional<UpgradeInProgress> child_;
  Millis timeout_ = 0;      // of the attempt under way, for its log line
  ControlReplies replies_;  // answered when the new master serves, or failed
  Stage stage_ = Stage::kIdle;
  common::UniqueFd old_master_ = take_upgrade_report_fd();
};

inline constexpr int kExitExecFailed = 127;  // as a shell reports "cannot execute"
// How long a new master's launcher has, once the report pipe closed without "serving", to
// report how the new master ended before the attempt is abandoned anyway.
inline constexpr Millis kExitReportGrace = 1000;
// How long the old master waits for systemd to confirm it read the hand-over (sd_notify_barrier's
// own default is 5 s).
inline constexpr int kHandOverBarrierMs = 5000;

}  // namespace prefork::master
