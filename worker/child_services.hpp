// What a prefork worker's event loop and a per-connection child's lean loop set up alike around
// their connections: the access log and the internal endpoints, wired into WorkerShared, and
// what the child signal set means for them. One place, so that the two models cannot drift.
#pragma once

#include <optional>

#include "common/child_context.hpp"
#include "common/clock.hpp"
#include "common/signals.hpp"
#include "worker/access_log.hpp"
#include "worker/connection.hpp"
#include "worker/observability.hpp"

namespace prefork::worker {

class ChildServices {
 public:
  // Opens the access log (unless "off") and sets up the internal endpoints (when any path is
  // configured); `shared` must outlive this object. Throws common::SysError when the access log
  // cannot be opened.
  ChildServices(const common::ChildContext& ctx, WorkerShared& shared);
  ChildServices(const ChildServices&) = delete;
  ChildServices& operator=(const ChildServices&) = delete;
  ~ChildServices() { flush(); }

  // Reads every pending signal from `signal_fd`. The drain signal calls `on_drain`; SIGTERM and
  // SIGINT ask to stop now (returns true); SIGUSR1 reopens the logs; SIGHUP is the master's.
  template <typename OnDrain>
  bool read_signals(int signal_fd, OnDrain&& on_drain) {
    bool stop = false;
    while (const auto signo = common::read_signal(signal_fd)) {
      if (*signo == common::kSignalDrain) {
        on_drain();
      } else if (on_signal(*signo)) {
        stop = true;
      }
    }
    return stop;
  }

  void tick(common::Millis now) {
    if (access_log_) access_log_->tick(now);
  }
  // Writes every buffered access log line: lose none, however the loop ended.
  void flush() {
    if (access_log_) access_log_->flush();
  }

 private:
  bool on_signal(int signo);

  std::optional<AccessLog> access_log_;  // empty: off
  std::optional<Observability> observability_;
};

}  // namespace prefork::worker
