// The server configuration: built-in defaults, the TOML file, the environment and command-line
// overrides (master; children receive a copy across fork). Every error names file, line, key and
// what was expected, so a bad file is rejected before anything changes.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/cidr.hpp"
#include "common/clock.hpp"

namespace prefork::common {

enum class Mode { kPrefork, kPerConnection };

std::string_view mode_name(Mode mode);

struct Config {
  std::string source = "<built-in defaults>";  // the file it came from

  // Processes.
  std::vector<std::string> listen{"[::]:8888"};
  // The listen addresses whose connections start with a PROXY protocol header (v1 or v2).
  std::vector<std::string> proxy_protocol_listen;
  Mode mode = Mode::kPrefork;
  unsigned workers = 0;  // 0 = "auto": one per online CPU
  unsigned max_children = 256;
  unsigned max_children_per_ip = 0;  // 0 = no per-client cap
  std::uint64_t max_requests = 0;    // recycle a worker after this many requests; 0 = never
  Millis graceful_timeout = 30'000;
  Millis drain_delay = 0;  // on TERM, keep serving with /healthz 503 this long first
  Millis worker_timeout = 30'000;
  Millis upgrade_timeout = 60'000;  // SIGUSR2: how long the new binary has to serve

  // Per-connection timeouts (worker).
  Millis header_timeout = 10'000;
  Millis body_timeout = 30'000;
  Millis keepalive_timeout = 75'000;
  Millis send_timeout = 30'000;
  unsigned keepalive_requests = 1000;
  unsigned max_connections = 4096;
  std::uint64_t body_min_rate = 500;  // bytes/s a body must average (after body_timeout); 0 = off
  // A close the server chooses, with input still coming, reads and discards it this long in
  // all, and waits at most lingering_timeout for each read, so the answers sent stay intact.
  Millis lingering_time = 30'000;
  Millis lingering_timeout = 5'000;
  // A draining worker keeps an idle keep-alive connection this long for a request on its way
  // (never longer than graceful_timeout).
  Millis drain_idle_grace = 1'000;

  // Request limits (worker).
  std::size_t max_request_line = 8192;
  std::size_t max_header_bytes = 16384;
  unsigned max_headers = 100;
  std::uint64_t max_body_bytes = 10ULL * 1024 * 1024;

  // Logging.
  std::string error_log = "stderr";
  std::string log_level = "info";
  std::string access_log = "off";              // "off", "stderr" or a file path
  std::string access_log_format = "combined";  // "combined" or "json"

  // Internal endpoints ("" switches one off) and who may see status and metrics.
  std::string healthz_path = "/healthz";
  std::string status_path = "/server-status";
  std::string metrics_path = "/metrics";
  std::vector<Cidr> status_allow{*Cidr::parse("127.0.0.0/8"), *Cidr::parse("::1/128")};
  // Peers whose X-Forwarded-For / Forwarded headers name the client in the access log.
  std::vector<Cidr> trusted_proxies;

  // What every GET/HEAD on a path that is no internal endpoint answers (prebuilt per worker).
  std::string body = "Hello, World!";
  std::string content_type = "text/plain; charset=utf-8";
  unsigned status = 200;  // 200-599; 204 and 304 carry no body
  // A header naming who answered (host, master pid, slot, pid, generation); "" = off.
  std::string identity_header;
  // Test switches in the query (?status=NNN, ?delay=SECONDS, ?echo); off by default.
  bool switches = false;
  Millis max_delay = 10'000;  // the cap of ?delay

  // Privileges: when started as root, children run as this user ("root" is an explicit,
  // logged opt-in) and group ("" = the user's primary group).
  std::string user = "nobody";
  std::string group;

  // Files.
  std::string pidfile;          // "" = none
  unsigned socket_mode = 0660;  // permissions of unix-domain listening sockets

  [[nodiscard]] bool proxy_protocol_on(const std::string& spec) const;

  // Resolved value of `workers` (auto -> CPUs).
  [[nodiscard]] unsigned worker_count() const;

  // Every field: the documentation test compares a documented default with the built-in one.
  bool operator==(const Config&) const = default;
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One `key=value` from the command line; the value is TOML ("5", "\"x\"", "[\"a\"]") or, when
// it does not parse as TOML, a plain string.
struct Override {
  std::string key;
  std::string value;
};

// One variable of the process environment.
struct EnvironmentVariable {
  std::string name;
  std::string value;
};
using Environment = std::vector<EnvironmentVariable>;

// Every key can be set as PREFORK_HTTPD_<KEY> (the key in upper case); PORT, when no layer
// sets `listen`, means listen = "[::]:$PORT". Variables a master sets for the executable it
// starts on a binary upgrade share the prefix but are not configuration.
inline constexpr std::string_view kEnvironmentPrefix = "PREFORK_HTTPD_";
inline constexpr std::string_view kPortVariable = "PORT";
inline constexpr const char* kUpgradeFdVariable = "PREFORK_HTTPD_UPGRADE_FD";
inline constexpr const char* kUpgradeListenersVariable = "PREFORK_HTTPD_LISTENERS";

// The variables of `envp` (NAME=VALUE strings, as `environ`) that configure the server: those
// with the prefix (upgrade variables aside) and PORT.
Environment configuration_environment(const char* const* envp);

// The configuration keys, in the order the setters know them.
std::vector<std::string_view> config_keys();

// Reads `path` (empty: defaults only), then applies `environment` (its PREFORK_HTTPD_ variables,
// then PORT) and the command-line overrides in order: file < environment < command line.
// Throws ConfigError.
Config load_config(const std::string& path, const std::vector<Override>& overrides = {},
                   const Environment& environment = {});

// Same, from text already in memory (tests); `source_name` is used in messages.
Config parse_config(std::string_view text, const std::string& source_name,
                    const std::vector<Override>& overrides = {},
                    const Environment& environment = {});

}  // namespace prefork::common
