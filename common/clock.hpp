// Monotonic and wall clocks in milliseconds (all processes). Monotonic time is what every
// timeout and heartbeat uses, so wall-clock jumps never fire or stall them.
#pragma once

#include <time.h>

#include <cstdint>

namespace prefork::common {

using Millis = std::int64_t;

inline Millis monotonic_ms() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<Millis>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// Microseconds, for request durations (the millisecond clocks are too coarse for them).
inline std::uint64_t monotonic_us() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
         static_cast<std::uint64_t>(ts.tv_nsec / 1000);
}

inline Millis wall_ms() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<Millis>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace prefork::common
