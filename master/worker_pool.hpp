// The prefork pool (master only): forks workers into the WorkerTable's slots, keeps their
// scoreboard slots, respawns the dead with back-off, kills hung workers, recycles after
// max_requests, and retires an old generation once the new one serves. The Supervisor says
// when; the pool knows how. It never knows what a worker does (the entry function does).
#pragma once

#include <sys/types.h>

#include <functional>
#include <vector>

#include "common/child_context.hpp"
#include "common/config.hpp"
#include "common/listeners.hpp"
#include "common/rate_limiter.hpp"
#include "common/scoreboard.hpp"
#include "master/spawn.hpp"
#include "master/worker_table.hpp"

namespace prefork::master {

class WorkerPool {
 public:
  // What the pool borrows from the Supervisor; every reference outlives it.
  struct Context {
    const common::Config& config;
    const std::vector<common::Listener>& listeners;
    common::Scoreboard& scoreboard;
    common::WorkerEntry entry;
    std::function<void()> drop_master_fds;  // runs in each worker before its entry
    ForkFunction fork;
    RespawnPolicy respawn;
  };
  enum class Exit { kNotOurs, kHandled, kFatal };

  explicit WorkerPool(Context context);

  // The first generation: config.worker_count() workers, spawned by the next maintain().
  void start(Millis now);
  // A reload: a new generation starts; the old one drains once the new one serves.
  unsigned start_generation(Millis now);
  // A reload in per-connection mode: children forked from now on carry the next generation
  // (there are no workers to start).
  unsigned advance_generation();
  // Spawns what is due; once per interval checks for hung workers and recycling; retires the
  // old generation when the new one serves.
  void maintain(Millis now);
  // TTIN (+1) / TTOU (-1), one worker at a time; the last worker stays.
  void resize(int delta, Millis now);
  // A reaped child: kNotOurs when it is no worker; kFatal when it exited with the config code.
  Exit on_exit(pid_t pid, int status, Millis now);
  // Graceful stop: every worker drains.
  void drain_all(Millis now);
  // Fast stop: no respawns, every worker gets `signo`.
  void stop_all(int signo, Millis now);
  void signal_all(int signo) const;

  // The current generation serves and no older one waits to be retired.
  [[nodiscard]] bool ready() const { return !retire_pending_ && generation_serving(); }
  [[nodiscard]] bool failed() const { return table_.pool_failed(); }
  [[nodiscard]] unsigned serving_count() const { return table_.count_current(SlotState::kRunning); }
  [[nodiscard]] std::size_t live() const { return table_.live_count(); }
  [[nodiscard]] unsigned generation() const { return table_.generation(); }
  [[nodiscard]] Millis next_wakeup(Millis next, Millis now) const;

 private:
  static constexpr Millis kCheckInterval = 1'000;  // hung checks and recycling

  void spawn_due_workers(Millis now);
  void spawn_worker(std::size_t slot);
  void kill_hung_workers(Millis now);
  void recycle_workers(Millis now);
  void retire_old_generation_when_ready(Millis now);
  [[nodiscard]] bool generation_serving() const;

  Context context_;
  WorkerTable table_;
  common::RateLimiter fork_failure_log_{5'000};
  bool retire_pending_ = false;
  Millis last_check_ = 0;
};

}  // namespace prefork::master
