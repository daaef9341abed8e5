#include "master/worker_table.hpp"

#include <algorithm>

namespace prefork::master {

const char* slot_state_name(SlotState state) {
  switch (state) {
    case SlotState::kFree: return "free";
    case SlotState::kWaiting: return "waiting";
    case SlotState::kRunning: return "running";
    case SlotState::kDraining: return "draining";
    case SlotState::kTerminating: return "terminating";
    case SlotState::kKilled: return "killed";
  }
  return "unknown";
}

Millis RespawnPolicy::delay_for(unsigned quick_deaths) const {
  if (quick_deaths <= 1) return 0;
  Millis delay = base_delay;
  for (unsigned i = 2; i < quick_deaths && delay < max_delay; ++i) delay *= 2;
  return std::min(delay, max_delay);
}

WorkerTable::WorkerTable(std::size_t capacity, RespawnPolicy policy)
    : capacity_(capacity), policy_(policy) {}

unsigned WorkerTable::begin_generation() {
  return ++generation_;
}

std::optional<std::size_t> WorkerTable::claim_free(Millis now) {
  const auto free = std::find_if(slots_.begin(), slots_.end(),
                                 [](const Slot& s) { return s.state == SlotState::kFree; });
  if (free == slots_.end() && slots_.size() == capacity_) return std::nullopt;
  Slot& s = free != slots_.end() ? *free : slots_.emplace_back();
  const unsigned restarts = s.restarts;  // a slot's history outlives one worker
  s = Slot{};
  s.restarts = restarts;
  s.state = SlotState::kWaiting;
  s.generation = generation_;
  s.respawn_at = now;
  return static_cast<std::size_t>(&s - slots_.data());
}

unsigned WorkerTable::add_workers(unsigned count, Millis now) {
  unsigned added = 0;
  while (added < count && claim_free(now)) ++added;
  return added;
}

std::vector<std::size_t> WorkerTable::due_spawns(Millis now) const {
  std::vector<std::size_t> due;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].state == SlotState::kWaiting && slots_[i].respawn_at <= now) due.push_back(i);
  }
  return due;
}

void WorkerTable::on_spawned(std::size_t index, pid_t pid, Millis now) {
  Slot& s = slots_[index];
  s.state = SlotState::kRunning;
  s.pid = pid;
  s.started_at = now;
  s.recycling = false;
}

void WorkerTable::on_spawn_failed(std::size_t index, Millis now) {
  Slot& s = slots_[index];
  ++s.quick_deaths;
  s.respawn_at = now + policy_.delay_for(s.quick_deaths);
}

std::optional<std::size_t> WorkerTable::find(pid_t pid) const {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].pid == pid && pid != 0) return i;
  }
  return std::nullopt;
}

ExitOutcome WorkerTable::on_exit(pid_t pid, const std::string& how, Millis now) {
  const auto index = find(pid);
  if (!index) return {};
  Slot& s = slots_[*index];
  ExitOutcome out{ExitOutcome::Kind::kFreed, *index, s.generation, 0};
  s.pid = 0;
  s.last_exit = how;
  // Asked to go (retired, recycled, stopping) or from an older generation: the slot is free.
  // Died unasked, or killed because it hung: it is replaced, with backoff if it died young.
  const bool asked = s.state == SlotState::kDraining;
  if (asked || s.generation != generation_) {
    s.state = SlotState::kFree;
    return out;
  }
  ++s.restarts;
  s.quick_deaths = (now - s.started_at < policy_.quick_death_window) ? s.quick_deaths + 1 : 0;
  s.state = SlotState::kWaiting;
  s.respawn_at = now + policy_.delay_for(s.quick_deaths);
  out.kind = ExitOutcome::Kind::kRespawn;
  out.respawn_at = s.respawn_at;
  return out;
}

std::vector<pid_t> WorkerTable::drain_where(const std::function<bool(const Slot&)>& selected,
                                            Millis now) {
  std::vector<pid_t> pids;
  for (Slot& s : slots_) {
    if (!selected(s)) continue;
    if (s.state == SlotState::kWaiting) s.state = SlotState::kFree;
    if (s.state != SlotState::kRunning) continue;
    s.state = SlotState::kDraining;
    s.signalled_at = now;
    pids.push_back(s.pid);
  }
  return pids;
}

std::vector<pid_t> WorkerTable::retire_old_generations(Millis now) {
  return drain_where([this](const Slot& s) { return s.generation != generation_; }, now);
}

std::optional<pid_t> WorkerTable::retire_one(Millis now) {
  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
    if (it->generation == generation_ && it->state == SlotState::kWaiting) {
      it->state = SlotState::kFree;
      return pid_t{0};
    }
  }
  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
    if (it->generation == generation_ && it->state == SlotState::kRunning) {
      it->state = SlotState::kDraining;
      it->signalled_at = now;
      return it->pid;
    }
  }
  return std::nullopt;
}

std::vector<pid_t> WorkerTable::drain_all(Millis now) {
  return drain_where([](const Slot&) { return true; }, now);
}

void WorkerTable::mark_terminating(std::size_t index, Millis now) {
  slots_[index].state = SlotState::kTerminating;
  slots_[index].signalled_at = now;
}

void WorkerTable::mark_killed(std::size_t index, Millis now) {
  slots_[index].state = SlotState::kKilled;
  slots_[index].signalled_at = now;
}

void WorkerTable::mark_recycling(std::size_t index) {
  slots_[index].recycling = true;
}

pid_t WorkerTable::start_draining(std::size_t index, Millis now) {
  Slot& s = slots_[index];
  s.state = SlotState::kDraining;
  s.signalled_at = now;
  return s.pid;
}

unsigned WorkerTable::count_current(SlotState state) const {
  return static_cast<unsigned>(std::count_if(slots_.begin(), slots_.end(), [&](const Slot& s) {
    return s.generation == generation_ && s.state == state;
  }));
}

unsigned WorkerTable::live_count() const {
  return static_cast<unsigned>(
      std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.alive(); }));
}

std::vector<pid_t> WorkerTable::live_pids() const {
  std::vector<pid_t> pids;
  for (const Slot& s : slots_) {
    if (s.alive()) pids.push_back(s.pid);
  }
  return pids;
}

bool WorkerTable::pool_failed() const {
  bool any = false;
  for (const Slot& s : slots_) {
    if (s.generation != generation_ || s.state == SlotState::kFree) continue;
    if (s.state != SlotState::kWaiting || s.quick_deaths < policy_.give_up_after) return false;
    any = true;
  }
  return any;
}

}  // namespace prefork::master
