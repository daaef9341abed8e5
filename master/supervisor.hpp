// The master's supervision loop (master only): spawns children through injected entry functions,
// reaps every child, respawns with backoff, kills hung workers, reloads, drains and stops.
// It never serves HTTP and does not know what its children do.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/child_context.hpp"
#include "common/config.hpp"
#include "common/listeners.hpp"
#include "common/scoreboard.hpp"
#include "common/unique_fd.hpp"
#include "master/connection_forker.hpp"
#include "master/control.hpp"
#include "master/master_only_memory.hpp"
#include "master/spawn.hpp"
#include "master/upgrade.hpp"
#include "master/worker_pool.hpp"

namespace prefork::master {

struct ChildEntries {
  common::WorkerEntry worker;                    // prefork mode
  common::ConnectionEntry connection;            // per-connection mode
  common::ConnectionPrepare prepare_connection;  // per-connection mode; may be empty
};

// Re-reads the configuration for a reload; throws common::ConfigError when it is invalid.
using ConfigLoader = std::function<common::Config()>;

struct SupervisorOptions {
  RespawnPolicy respawn;
  Millis fast_stop_timeout = 5'000;  // INT: how long children get after SIGTERM
  std::size_t scoreboard_slots = 2048;
  ForkFunction fork;      // empty: ::fork (tests inject failures here)
  Executable executable;  // what SIGUSR2 execs; empty path: upgrades are refused
  // Started by an upgrade: what to do just before telling the old master that we serve
  // (write the pidfile: it names us only once we are the master).
  std::function<void()> before_taking_over;
};

class Supervisor {
 public:
  Supervisor(common::Config config, std::vector<common::Listener> listeners, ChildEntries entries,
             ConfigLoader reload_config, SupervisorOptions options = {});
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor();

  // Runs until stopped; returns the process exit code.
  int run();

 private:
  // kAnnouncing: still serving, but /healthz answers 503 (drain_delay) so load balancers move
  // traffic away before the listeners close.
  enum class Phase { kServing, kAnnouncing, kDraining, kFastStopping, kDone };

  // The loop's steps, in order.
  void wait_for_events();
  void drain_signals();
  void note_control_request(const signalfd_siginfo& info);
  void reap_children();
  void progress_stop();
  void reload();
  void begin_upgrade();
  void hand_over();
  void reopen_logs();
  void resize_pool();
  void maintain_pool();
  void accept_connections();
  void publish_listen_queues();

  // Listeners across a reload (master/listener_reload.hpp).
  void apply_listeners(const std::vector<std::string>& specs, std::vector<common::Listener> added);

  // Stopping.
  void begin_graceful_stop(int exit_code, const char* why);
  void start_draining(const char* why);
  [[nodiscard]] bool serving() const {
    return phase_ == Phase::kServing || phase_ == Phase::kAnnouncing;
  }
  void begin_fast_stop(int exit_code, const char* why);
  void signal_all_children(int signo);
  void close_listeners();
  [[nodiscard]] std::size_t live_children() const { return pool_.live() + forker_.live(); }

  void watch(int fd, std::uint32_t events);
  void drop_master_fds();
  void notify_ready_once();
  // Answers `prefork-httpd --signal` processes still waiting: the server no longer serves.
  void answer_waiting_as_stopping();
  // systemd_notify, until we handed the service over to a new master.
  void notify(const std::string& message) const;
  [[nodiscard]] Millis next_wakeup(Millis now) const;

  common::Config config_;
  std::vector<common::Listener> listeners_;
  ChildEntries entries_;
  ConfigLoader reload_config_;
  SupervisorOptions options_;
  std::unique_ptr<common::Scoreboard> scoreboard_;
  common::UniqueFd epoll_;
  common::UniqueFd signal_fd_;
  WorkerPool pool_;          // prefork mode; idle in per-connection mode
  ConnectionForker forker_;  // per-connection mode; idle in prefork mode
  Upgrader upgrader_;
  std::vector<int, MasterOnlyAllocator<int>> readable_listeners_;  // written after every fork

  Phase phase_ = Phase::kServing;
  Millis stop_deadline_ = 0;
  Millis drain_at_ = 0;  // kAnnouncing: when the real drain starts
  Millis queues_published_at_ = 0;
  int exit_code_ = 0;
  bool reload_requested_ = false;
  ControlReplies reload_replies_;   // asked; answered when rejected, else moved on to:
  ControlReplies reload_starting_;  // accepted; answered when its workers serve
  bool upgrade_requested_ = false;
  bool reopen_requested_ = false;
  int resize_delta_ = 0;
  bool ready_notified_ = false;
};

}  // namespace prefork::master
