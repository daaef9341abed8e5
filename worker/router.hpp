// Where a request goes (worker, after fork): built once from the configuration, the router maps
// a request-target to an internal endpoint or to the backend's answer, and reads the backend's
// test switches from the query. The parser asks it once per request, when the target is in;
// adding an endpoint or a switch touches this file, its handler and the docs, not the parser.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"

namespace prefork::worker {

struct Limits;

enum class Endpoint : std::uint8_t { kHealthz, kStatus, kMetrics };
inline constexpr std::size_t kEndpointCount = 3;

// The test switches of one request (config key `switches`): ?status=NNN, ?delay=SECONDS, ?echo.
struct Switches {
  int status = 0;            // 0: the configured status
  common::Millis delay = 0;  // already capped by max_delay
  bool echo = false;         // answer with a JSON description of the request
  std::string_view error;    // non-empty: a malformed switch, and why (the 400's body)

  [[nodiscard]] bool any() const noexcept {
    return status != 0 || delay != 0 || echo || !error.empty();
  }
};

// Reads the switches of `query` (the part after '?'). Parameters other than the switches are
// ignored (cache busters and the like); a switch given twice, without its value, or with a
// value out of bounds sets `error`. A delay above `max_delay` is capped, not refused.
Switches parse_switches(std::string_view query, common::Millis max_delay);

struct Route {
  std::optional<Endpoint> endpoint;  // an internal endpoint claims the path (GET/HEAD only)
  bool json = false;                 // the endpoint's query holds format=json
  Switches switches;                 // the backend's switches (switches on only)
};

class Router {
 public:
  // The endpoints of `limits` ("" = off) and, with limits.switches, the test switches.
  explicit Router(const Limits& limits);

  // `target`: the whole request-target as received.
  [[nodiscard]] Route route(std::string_view target) const;
  [[nodiscard]] bool switches() const noexcept { return switches_; }

 private:
  struct Entry {
    std::string path;
    Endpoint endpoint;
  };
  std::vector<Entry> endpoints_;
  bool switches_ = false;
  common::Millis max_delay_ = 0;
};

}  // namespace prefork::worker
