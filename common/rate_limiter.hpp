// Lets an event through at most once per interval and counts what it held back, so a flood
// (EMFILE, fork failures) costs one log line per interval (any process).
#pragma once

#include "common/clock.hpp"

namespace prefork::common {

class RateLimiter {
 public:
  explicit RateLimiter(Millis interval) : interval_(interval) {}

  // True when this event should be reported; suppressed() then says how many were skipped.
  bool allow(Millis now) {
    if (now - last_ < interval_ && last_ != kNever) {
      ++pending_;
      return false;
    }
    last_ = now;
    suppressed_ = pending_;
    pending_ = 0;
    return true;
  }
  [[nodiscard]] unsigned suppressed() const { return suppressed_; }

 private:
  static constexpr Millis kNever = -1;
  Millis interval_;
  Millis last_ = kNever;
  unsigned pending_ = 0;
  unsigned suppressed_ = 0;
};

}  // namespace prefork::common
