// Accepting connections, for both processes that do it: the prefork worker's event loop and the
// per-connection master. One accept call, one triage of its errors, the spare descriptor that lets
// a client be shed when we are out of descriptors, and one rate-limited log line for all of it.
#pragma once

#include <sys/socket.h>

#include "common/clock.hpp"
#include "common/rate_limiter.hpp"
#include "common/unique_fd.hpp"

namespace prefork::common {

struct Accepted {
  UniqueFd fd;
  sockaddr_storage peer{};
  socklen_t peer_length = 0;
  [[nodiscard]] const sockaddr* peer_address() const {
    return reinterpret_cast<const sockaddr*>(&peer);
  }
};

enum class AcceptResult {
  kAccepted,    // a client is in Accepted
  kEmpty,       // nothing waiting (EAGAIN): wait for the listener to be readable again
  kClientGone,  // that client failed before we took it (ECONNABORTED, EPROTO, …): try the next
  kPaused,      // out of descriptors or kernel memory: stop accepting until paused_until()
};

class Acceptor {
 public:
  static constexpr Millis kPause = 100;          // after EMFILE/ENFILE/ENOBUFS/ENOMEM
  static constexpr Millis kLogInterval = 5'000;  // one log line per interval at most

  Acceptor();

  // Takes one client from `listener_fd` (non-blocking, close-on-exec).
  AcceptResult accept(int listener_fd, Millis now, Accepted& out);

  [[nodiscard]] bool paused(Millis now) const { return now < paused_until_; }
  [[nodiscard]] Millis paused_until() const { return paused_until_; }

  // For a child that never accepts: the spare descriptor is the parent's business.
  void release_spare() { spare_.reset(); }

 private:
  void shed_one(int listener_fd);
  void pause(int err, Millis now);

  UniqueFd spare_;
  RateLimiter log_{kLogInterval};
  Millis paused_until_ = 0;
};

}  // namespace prefork::common
