// The shared-memory scoreboard: one slot per worker, mapped MAP_SHARED before any fork.
// Workers write their own slot (heartbeat, state, counters); the master only reads, except when
// it claims or clears a slot. Lock-free: every field is an independent relaxed atomic.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/clock.hpp"

namespace prefork::common {

enum class WorkerState : std::uint8_t { kEmpty, kStarting, kIdle, kBusy, kDraining };

const char* worker_state_name(WorkerState state);

struct alignas(64) ScoreboardSlot {
  std::atomic<std::int32_t> pid{0};
  std::atomic<std::uint32_t> generation{0};
  std::atomic<WorkerState> state{WorkerState::kEmpty};
  std::atomic<Millis> heartbeat_ms{0};  // monotonic_ms() of the worker's last loop pass
  std::atomic<Millis> started_ms{0};    // wall_ms() when the worker started
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint32_t> connections{0};
  // Written by the master: how often this slot's worker was replaced, and how the last one
  // ended (a waitpid status; -1 = never), for the status page.
  std::atomic<std::uint32_t> restarts{0};
  std::atomic<int> last_exit_status{-1};

  void beat() noexcept { heartbeat_ms.store(monotonic_ms(), std::memory_order_relaxed); }
  void set_state(WorkerState s) noexcept { state.store(s, std::memory_order_relaxed); }
};

static_assert(std::atomic<Millis>::is_always_lock_free);

// Server-wide facts, written by the master only, read by workers for /healthz and status.
struct alignas(64) ScoreboardHeader {
  std::atomic<bool> draining{false};  // a graceful stop has begun: /healthz answers 503
  std::atomic<std::int32_t> master_pid{0};
  std::atomic<Millis> master_started_ms{0};  // wall_ms()
  std::atomic<Millis> upgraded_ms{0};        // wall_ms() this binary took over (SIGUSR2); 0 never
  std::atomic<std::uint32_t> generation{0};
  std::atomic<std::uint32_t> live_children{0};    // per-connection mode
  std::atomic<std::uint64_t> children_forked{0};  // per-connection mode, since start
  std::atomic<std::uint64_t> cap_hits{0};         // times max_children was reached
  std::atomic<std::uint64_t> fork_failures{0};
};

class Scoreboard {
 public:
  // Maps `slots` slots of shared anonymous memory (master, before forking).
  explicit Scoreboard(std::size_t slots);
  Scoreboard(const Scoreboard&) = delete;
  Scoreboard& operator=(const Scoreboard&) = delete;
  ~Scoreboard();

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] ScoreboardSlot& slot(std::size_t index) const noexcept { return slots_[index]; }
  [[nodiscard]] ScoreboardHeader& header() const noexcept { return *header_; }

 private:
  [[nodiscard]] std::size_t bytes() const noexcept;

  ScoreboardHeader* header_ = nullptr;
  ScoreboardSlot* slots_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace prefork::common
