// The master's table of prefork workers: stable slots (the scoreboard index), generations, and
// each slot's lifecycle. Pure bookkeeping (no syscalls), so every transition is unit-tested;
// WorkerPool does the forking and signalling the table asks for. Master only.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.hpp"

namespace prefork::master {

using common::Millis;

enum class SlotState {
  kFree,         // unused
  kWaiting,      // a worker is due to be (re)spawned at respawn_at
  kRunning,      // serving
  kDraining,     // asked to finish its connections and exit (retired, recycled or stopping)
  kTerminating,  // hung: sent SIGABRT
  kKilled,       // sent SIGKILL; waiting for the kernel to report it
};

const char* slot_state_name(SlotState state);

struct Slot {
  SlotState state = SlotState::kFree;
  pid_t pid = 0;
  unsigned generation = 0;
  Millis started_at = 0;
  Millis signalled_at = 0;  // when it was last sent drain/TERM/KILL
  Millis respawn_at = 0;
  unsigned quick_deaths = 0;  // consecutive deaths soon after starting
  unsigned restarts = 0;
  bool recycling = false;  // hit max_requests; drained once its replacement is up
  std::string last_exit;

  [[nodiscard]] bool alive() const { return pid != 0; }
};

// When and how often a dead worker is respawned.
struct RespawnPolicy {
  Millis quick_death_window = 5'000;  // dying sooner than this after start counts as a crash loop
  Millis base_delay = 100;
  Millis max_delay = 10'000;
  unsigned give_up_after = 6;  // consecutive quick deaths of every slot: the pool is dead

  // 0 for a worker that lived long or died young once (one crash is not a loop); from the
  // second consecutive quick death on: base, 2*base, 4*base, ... capped at max_delay.
  [[nodiscard]] Millis delay_for(unsigned quick_deaths) const;
};

struct ExitOutcome {
  enum class Kind { kUnknownPid, kRespawn, kFreed };
  Kind kind = Kind::kUnknownPid;
  std::size_t slot = 0;
  unsigned generation = 0;
  Millis respawn_at = 0;  // kRespawn only
};

class WorkerTable {
 public:
  WorkerTable(std::size_t capacity, RespawnPolicy policy);

  [[nodiscard]] unsigned generation() const { return generation_; }
  // Slots in use so far: the table grows up to its capacity as workers are added, so a master
  // (per-connection mode's above all) carries, and copies at every fork, only what it uses.
  [[nodiscard]] std::size_t slot_count() const { return slots_.size(); }
  [[nodiscard]] const Slot& slot(std::size_t index) const { return slots_[index]; }

  // Starts a new generation; workers added from now on belong to it.
  unsigned begin_generation();

  // Claims up to `count` free slots for the current generation, due to spawn now.
  // Returns how many it could claim (fewer when the table is full).
  unsigned add_workers(unsigned count, Millis now);

  [[nodiscard]] std::vector<std::size_t> due_spawns(Millis now) const;
  void on_spawned(std::size_t index, pid_t pid, Millis now);
  void on_spawn_failed(std::size_t index, Millis now);

  // Records a reaped child. A current-generation worker that died unasked is scheduled for
  // respawn with backoff; one that was asked to go frees its slot.
  ExitOutcome on_exit(pid_t pid, const std::string& how, Millis now);

  // Sends nothing: marks every running worker of an older generation draining and returns
  // their pids. A worker is returned exactly once, however often this is called.
  std::vector<pid_t> retire_old_generations(Millis now);

  // TTOU: retires the highest current-generation worker (a pending respawn first).
  std::optional<pid_t> retire_one(Millis now);

  // Graceful stop: running workers become draining (pids returned), pending respawns cancelled.
  std::vector<pid_t> drain_all(Millis now);

  // A worker that stopped beating: TERM first, KILL on a later pass.
  void mark_terminating(std::size_t index, Millis now);
  void mark_killed(std::size_t index, Millis now);
  void mark_recycling(std::size_t index);
  // Recycling: the worker's replacement is up; it drains now.
  pid_t start_draining(std::size_t index, Millis now);

  [[nodiscard]] unsigned count_current(SlotState state) const;
  [[nodiscard]] unsigned live_count() const;
  [[nodiscard]] std::vector<pid_t> live_pids() const;
  // Every current-generation slot keeps dying at boot and none is running.
  [[nodiscard]] bool pool_failed() const;

 private:
  std::optional<std::size_t> find(pid_t pid) const;
  // Running workers of the selected slots become draining (pids returned, each once);
  // pending respawns among them are cancelled.
  std::vector<pid_t> drain_where(const std::function<bool(const Slot&)>& selected, Millis now);
  std::optional<std::size_t> claim_free(Millis now);

  std::vector<Slot> slots_;
  std::size_t capacity_;
  RespawnPolicy policy_;
  unsigned generation_ = 1;
};

}  // namespace prefork::master
