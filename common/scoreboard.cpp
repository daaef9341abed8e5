#include "common/scoreboard.hpp"

#include <sys/mman.h>

#include <new>

#include "common/sys_error.hpp"

namespace prefork::common {

const char* worker_state_name(WorkerState state) {
  switch (state) {
    case WorkerState::kEmpty: return "empty";
    case WorkerState::kStarting: return "starting";
    case WorkerState::kIdle: return "idle";
    case WorkerState::kBusy: return "busy";
    case WorkerState::kDraining: return "draining";
  }
  return "unknown";
}

// [[gnu::hot]]: what a per-connection child runs (why: above worker::serve_single_connection).
[[gnu::hot]] void ServedCounters::record_duration(std::uint64_t us, std::uint64_t count) noexcept {
  std::size_t bucket = 0;
  while (bucket < kDurationBoundsUs.size() && us > kDurationBoundsUs[bucket]) ++bucket;
  duration_buckets[bucket].fetch_add(count, std::memory_order_relaxed);
  duration_sum_us.fetch_add(us * count, std::memory_order_relaxed);
}

void ServedCounters::add(const ServedCounters& other) noexcept {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  requests.fetch_add(other.requests.load(kRelaxed), kRelaxed);
  connections.fetch_add(other.connections.load(kRelaxed), kRelaxed);
  at_capacity.fetch_add(other.at_capacity.load(kRelaxed), kRelaxed);
  duration_sum_us.fetch_add(other.duration_sum_us.load(kRelaxed), kRelaxed);
  for (std::size_t i = 0; i < duration_buckets.size(); ++i) {
    duration_buckets[i].fetch_add(other.duration_buckets[i].load(kRelaxed), kRelaxed);
  }
}

void ServedCounters::clear() noexcept {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  requests.store(0, kRelaxed);
  connections.store(0, kRelaxed);
  at_capacity.store(0, kRelaxed);
  duration_sum_us.store(0, kRelaxed);
  for (auto& bucket : duration_buckets) bucket.store(0, kRelaxed);
}

void ServedTotals::add(const ServedCounters& c) noexcept {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  requests += c.requests.load(kRelaxed);
  connections += c.connections.load(kRelaxed);
  at_capacity += c.at_capacity.load(kRelaxed);
  duration_sum_us += c.duration_sum_us.load(kRelaxed);
  for (std::size_t i = 0; i < duration_buckets.size(); ++i) {
    duration_buckets[i] += c.duration_buckets[i].load(kRelaxed);
  }
}

Scoreboard::Scoreboard(std::size_t slots) : size_(slots) {
  void* memory =
      ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw SysError("mmap(scoreboard)");
  header_ = new (memory) ScoreboardHeader;
  slots_ = new (static_cast<char*>(memory) + sizeof(ScoreboardHeader)) ScoreboardSlot[slots];
}

Scoreboard::~Scoreboard() {
  if (header_ != nullptr) ::munmap(header_, bytes());
}

// A seqlock with the master as the only writer: readers (workers rendering a status page)
// retry while a fold is under way or happened while they read.
void Scoreboard::fold_served(std::size_t index) const noexcept {
  ScoreboardHeader& h = header();
  ScoreboardSlot& s = slot(index);
  const std::uint32_t seq = h.fold_seq.load(std::memory_order_relaxed);
  h.fold_seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  h.retired.add(s.served);
  s.pid.store(0, std::memory_order_relaxed);
  s.served.clear();
  h.fold_seq.store(seq + 2, std::memory_order_release);
}

ServedTotals Scoreboard::served_totals() const noexcept {
  const ScoreboardHeader& h = header();
  ServedTotals totals;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const std::uint32_t before = h.fold_seq.load(std::memory_order_acquire);
    if ((before & 1U) != 0) continue;
    totals = {};
    totals.add(h.retired);
    for (std::size_t i = 0; i < size(); ++i) {
      if (slot(i).pid.load(std::memory_order_relaxed) != 0) totals.add(slot(i).served);
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (h.fold_seq.load(std::memory_order_relaxed) == before) break;
  }
  return totals;
}

std::size_t Scoreboard::bytes() const noexcept {
  return sizeof(ScoreboardHeader) + size_ * sizeof(ScoreboardSlot);
}

}  // namespace prefork::common
