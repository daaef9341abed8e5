// Soak-test load: keep-alive clients that send back to back and connection-per-request clients,
// each in its own thread, every request bounded by a timeout. A failed request is recorded with
// what is needed to explain it afterwards: which server process held the connection (when known)
// and when the request was in flight.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/server_process.hpp"

namespace prefork::testing::soak {

using Clock = std::chrono::steady_clock;

struct Failure {
  bool keep_alive = false;      // on a kept-alive connection (false: a fresh connection)
  bool is_retry = false;        // this request was the one retry of an earlier failure
  bool retried = false;         // a retry of this request followed
  pid_t owner = 0;              // server process holding the connection; 0 when unknown
  unsigned served_before = 0;   // responses received earlier on the same connection
  bool bytes_received = false;  // part of a response arrived before the failure
  bool timed_out = false;
  // Since when the connection's fate decided this request: its last response (keep-alive) or
  // the connect. A server close or kill after that and before `failed` reaches this request.
  Clock::time_point since;
  Clock::time_point sent;
  Clock::time_point failed;
  std::string what;
};

struct LoadOptions {
  std::uint16_t port = 0;
  pid_t master = 0;  // its children are searched for the owner of each keep-alive connection
  unsigned keep_alive_clients = 3;
  unsigned per_request_clients = 2;
  Duration timeout = std::chrono::seconds(10);  // per request; longer than any SIGSTOP pause
  Duration per_request_pause = std::chrono::milliseconds(5);  // bounds the connection rate
};

class Load {
 public:
  explicit Load(LoadOptions options);
  Load(const Load&) = delete;
  Load& operator=(const Load&) = delete;
  ~Load();
  // Asks every client to finish its request in flight and joins them (bounded by the timeout).
  void stop();
  [[nodiscard]] std::uint64_t served() const { return served_.load(); }
  [[nodiscard]] std::vector<Failure> failures() const;

 private:
  void keep_alive_client();
  void per_request_client();
  void record(Failure failure);

  LoadOptions options_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> served_{0};
  mutable std::mutex mutex_;
  std::vector<Failure> failures_;
  std::vector<std::thread> threads_;
};

}  // namespace prefork::testing::soak
