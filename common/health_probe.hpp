// `prefork-httpd --health-check [TARGET]`: one HTTP/1.1 GET of the health endpoint, for probes
// that run the binary itself (a container's HEALTHCHECK, in an image with no curl and no
// shell). Runs as its own short-lived process, never inside a running server.
#pragma once

#include <functional>
#include <string>

#include "common/clock.hpp"
#include "common/config.hpp"

namespace prefork::common {

// connect, request and answer together: a probe that waits longer than this for a server on
// this host learns nothing more, and a container runtime kills slow probes anyway.
inline constexpr Millis kHealthProbeTimeout = 2000;

struct HealthTarget {
  std::string address;  // in listen syntax: "127.0.0.1:8888", "[::1]:80", "unix:/run/h.sock"
  std::string path;     // "/healthz"
  [[nodiscard]] std::string url() const;  // for messages
};

// TARGET is "[http://]ADDRESS[/PATH]" (ADDRESS as for `listen`, or localhost:PORT) or empty;
// what it leaves out comes from `config`, called only then: the first `listen` address and
// `healthz_path`. Throws ConfigError for a target that is malformed or that the configuration
// cannot complete (port 0, healthz_path switched off).
HealthTarget health_target(const std::string& argument, const std::function<Config()>& config);

struct HealthResult {
  bool healthy = false;
  std::string reason;  // the status line, or why there was none
};

HealthResult probe_health(const HealthTarget& target, Millis timeout = kHealthProbeTimeout);

// The whole option: 0 on a 2xx answer; 1 otherwise, with one line on stderr saying why; 2 for
// a bad target or configuration (stderr too).
int run_health_check(const std::string& argument, const std::function<Config()>& config);

}  // namespace prefork::common
