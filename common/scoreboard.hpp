// The shared-memory scoreboard: one slot per worker, mapped MAP_SHARED before any fork.
// Workers write their own slot (heartbeat, state, counters); the master only reads, except when
// it claims or clears a slot. Lock-free: every field is an independent relaxed atomic.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/clock.hpp"

namespace prefork::common {

enum class WorkerState : std::uint8_t { kEmpty, kStarting, kIdle, kBusy, kDraining };

const char* worker_state_name(WorkerState state);

// Upper bounds of the request-duration histogram's buckets, in microseconds; one more bucket
// holds everything above the last (Prometheus' +Inf).
inline constexpr std::array<std::uint64_t, 12> kDurationBoundsUs{
    100, 250, 500, 1'000, 2'500, 5'000, 10'000, 25'000, 100'000, 250'000, 1'000'000, 10'000'000};

// What a process served: counted by the worker in its slot, by a per-connection child in the
// header's `retired`, where the master also folds a worker's counts when it exits, so that
// server-wide totals survive worker replacement.
struct ServedCounters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> connections{0};  // accepted
  std::atomic<std::uint64_t> at_capacity{0};  // times accepting stopped at max_connections
  std::atomic<std::uint64_t> duration_sum_us{0};
  std::array<std::atomic<std::uint64_t>, kDurationBoundsUs.size() + 1> duration_buckets{};

  void record_duration(std::uint64_t us, std::uint64_t count = 1) noexcept;
  void add(const ServedCounters& other) noexcept;
  void clear() noexcept;
};

// A plain copy of ServedCounters, summed for the status page and the metrics.
struct ServedTotals {
  std::uint64_t requests = 0;
  std::uint64_t connections = 0;
  std::uint64_t at_capacity = 0;
  std::uint64_t duration_sum_us = 0;
  std::array<std::uint64_t, kDurationBoundsUs.size() + 1> duration_buckets{};

  void add(const ServedCounters& counters) noexcept;
};

struct alignas(64) ScoreboardSlot {
  std::atomic<std::int32_t> pid{0};
  std::atomic<std::uint32_t> generation{0};
  std::atomic<WorkerState> state{WorkerState::kEmpty};
  std::atomic<Millis> heartbeat_ms{0};        // monotonic_ms() of the worker's last loop pass
  std::atomic<Millis> started_ms{0};          // wall_ms() when the worker started
  ServedCounters served;                      // by the worker now in the slot
  std::atomic<std::uint32_t> connections{0};  // open now
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
  // Workers that exited (folded in by the master) and per-connection children (added by each).
  ServedCounters retired;
  // Odd while the master moves an exited worker's counts into `retired`: a reader that sees it
  // change reads again, so a total never counts them twice or not at all.
  std::atomic<std::uint32_t> fold_seq{0};
  // Per-connection mode: the accept queue of each listener, in the order of the configuration's
  // `listen`, as the master last saw it (its children hold no listening socket to ask). Packed
  // so that a reader never sees the count of one look with the limit of another.
  static constexpr std::size_t kPublishedListeners = 16;
  std::array<std::atomic<std::uint64_t>, kPublishedListeners> listen_queues{};

  static constexpr std::uint64_t kQueueKnown = std::uint64_t{1} << 63;
  static std::uint64_t pack_queue(std::uint32_t queued, std::uint32_t limit) noexcept {
    return kQueueKnown | (std::uint64_t{limit & 0x7fffffffU} << 32) | queued;
  }
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

  // Master: moves the counts of the slot's exited worker into the header's `retired`.
  void fold_served(std::size_t index) const noexcept;
  // Server-wide: `retired` plus every slot with a live worker.
  [[nodiscard]] ServedTotals served_totals() const noexcept;

 private:
  [[nodiscard]] std::size_t bytes() const noexcept;

  ScoreboardHeader* header_ = nullptr;
  ScoreboardSlot* slots_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace prefork::common
