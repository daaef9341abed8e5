#include "common/config.hpp"

#include <unistd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "common/listeners.hpp"

namespace prefork::common {
namespace {

constexpr std::string_view kCommandLine = "command line";
// A value from the environment is reported as "environment variable NAME".
constexpr std::string_view kEnvironmentSource = "environment variable ";

// A command-line or environment value has no line to name.
bool has_lines(std::string_view source) {
  return source != kCommandLine && !source.starts_with(kEnvironmentSource);
}

std::string where(const toml::node& node) {
  const auto& src = node.source();
  std::string text = src.path ? *src.path : std::string("<unknown>");
  if (has_lines(text) && src.begin.line > 0) {
    // Appended piece by piece: `"literal" + std::string` trips GCC 12's -Wrestrict false
    // positive at -O3 (GCC bug 105651), and warnings are errors.
    text += ':';
    text += std::to_string(src.begin.line);
  }
  return text;
}

std::string describe(const toml::node& node) {
  std::ostringstream out;
  out << node.type() << " ";
  node.visit([&out](const auto& value) { out << value; });
  return out.str();
}

[[noreturn]] void fail(const toml::node& node, std::string_view key, std::string_view expected) {
  throw ConfigError(where(node) + ": key '" + std::string(key) + "': expected " +
                    std::string(expected) + ", got " + describe(node));
}

std::int64_t integer_in(const toml::node& node, std::string_view key, std::int64_t lo,
                        std::int64_t hi) {
  // Only an integer node is read as one: toml++ converts a float such as 1e91 to int64 without
  // a range check (undefined behaviour).
  const auto value = node.is_integer() ? node.value<std::int64_t>() : std::nullopt;
  if (!value || *value < lo || *value > hi) {
    fail(node, key, "an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  return *value;
}

unsigned count_in(const toml::node& node, std::string_view key, unsigned lo, unsigned hi) {
  return static_cast<unsigned>(integer_in(node, key, lo, hi));
}

// Durations are seconds, integer or fractional, so "0.5" and "30" both read naturally.
Millis seconds(const toml::node& node, std::string_view key) {
  const auto value = node.value<double>();
  // Written so that nan fails too (every comparison with it is false).
  if (!(node.is_integer() || node.is_floating_point()) || !value ||
      !(*value >= 0.001 && *value <= 86400.0 * 365)) {
    fail(node, key, "a duration in seconds (a number from 0.001 to 31536000)");
  }
  return static_cast<Millis>(*value * 1000.0);
}

Millis seconds_or_zero(const toml::node& node, std::string_view key) {
  const auto value = node.value<double>();
  if (value && *value == 0.0 && (node.is_integer() || node.is_floating_point())) return 0;
  return seconds(node, key);
}

std::string one_of(const toml::node& node, std::string_view key,
                   std::initializer_list<std::string_view> allowed) {
  std::string expected = "one of";
  for (auto choice : allowed) expected += std::string(" \"") + std::string(choice) + "\"";
  const auto* text = node.as_string();
  if (text == nullptr) fail(node, key, expected);
  for (auto choice : allowed) {
    if (text->get() == choice) return text->get();
  }
  fail(node, key, expected);
}

std::string nonempty_string(const toml::node& node, std::string_view key) {
  const auto* text = node.as_string();
  if (text == nullptr || text->get().empty()) fail(node, key, "a non-empty string");
  return text->get();
}

std::vector<std::string> string_list(const toml::node& node, std::string_view key) {
  std::vector<std::string> out;
  if (const auto* text = node.as_string()) {
    out.push_back(text->get());
  } else if (const auto* array = node.as_array()) {
    for (const auto& item : *array) out.push_back(nonempty_string(item, key));
  } else {
    fail(node, key, "a string or an array of strings");
  }
  if (out.empty()) fail(node, key, "at least one entry");
  return out;
}

// The listen entries read so far, by the address each binds, so a second entry for the same
// address (however it is spelled) is rejected where it stands: it would bind one socket twice,
// and a reload could not tell which running socket each entry means.
class ListenAddresses {
 public:
  // Checks `spec` (the value of `node`) and records it; throws ConfigError naming file:line.
  void add(const toml::node& node, const std::string& spec) {
    std::string address;
    try {
      address = canonical_listen_address(spec);
    } catch (const ConfigError& err) {
      throw ConfigError(where(node) + ": " + err.what());
    }
    // Port 0 asks for a fresh ephemeral port per entry: differently spelled ones are distinct
    // sockets. The same text twice still cannot be told apart.
    if (!spec.starts_with("unix:") && address.ends_with(":0")) address = spec;
    for (const auto& [seen, first] : seen_) {
      if (seen != address) continue;
      std::string message = where(node) + ": key 'listen': '" + spec + "' ";
      if (address != spec) {  // piece by piece: see where() (GCC 12 -Wrestrict)
        message += '(';
        message += address;
        message += ") ";
      }
      throw ConfigError(message + "is already listed at " + where(*first) +
                        "; each address may appear once");
    }
    seen_.emplace_back(std::move(address), &node);
  }

 private:
  std::vector<std::pair<std::string, const toml::node*>> seen_;
};

// listen = "ADDR" | ["ADDR", { address = "ADDR", proxy_protocol = true }, ...]
void read_listen(const toml::node& node, std::string_view key, Config& c) {
  c.listen.clear();
  c.proxy_protocol_listen.clear();
  ListenAddresses addresses;
  const auto* array = node.as_array();
  if (array == nullptr) {
    c.listen = string_list(node, key);
    addresses.add(node, c.listen.front());
    return;
  }
  constexpr std::string_view kExpected =
      "a string or an array of addresses and { address = \"...\", proxy_protocol = true } tables";
  for (const auto& item : *array) {
    if (item.is_string()) {
      c.listen.push_back(nonempty_string(item, key));
      addresses.add(item, c.listen.back());
      continue;
    }
    const auto* table = item.as_table();
    if (table == nullptr) fail(item, key, kExpected);
    const toml::node* address = table->get("address");
    if (address == nullptr) fail(item, key, "an 'address' in every listen table");
    bool proxy = false;
    for (auto&& [name, value] : *table) {
      if (name == "address") continue;
      if (name != "proxy_protocol" || !value.is_boolean()) {
        fail(value, key,
             "only 'address' (string) and 'proxy_protocol' (true/false) in a listen table");
      }
      proxy = value.as_boolean()->get();
    }
    c.listen.push_back(nonempty_string(*address, key));
    addresses.add(*address, c.listen.back());
    if (proxy) c.proxy_protocol_listen.push_back(c.listen.back());
  }
  if (c.listen.empty()) fail(node, key, "at least one entry");
}

std::string any_string(const toml::node& node, std::string_view key) {
  const auto* text = node.as_string();
  if (text == nullptr) fail(node, key, "a string");
  return text->get();
}

// "" (switched off) or an absolute path such as "/healthz".
std::string url_path(const toml::node& node, std::string_view key) {
  std::string path = any_string(node, key);
  if (!path.empty() && (path[0] != '/' || path.find_first_of(" ?#\t") != std::string::npos)) {
    fail(node, key, "\"\" (off) or a path starting with '/' (no spaces, '?' or '#')");
  }
  return path;
}

std::vector<Cidr> cidr_list(const toml::node& node, std::string_view key) {
  std::vector<Cidr> out;
  const auto* array = node.as_array();
  if (array == nullptr) fail(node, key, "an array of addresses or CIDR ranges");
  for (const auto& item : *array) {
    const auto* text = item.as_string();
    auto range = text ? Cidr::parse(text->get()) : std::nullopt;
    if (!range) fail(item, key, "an address or CIDR range such as \"10.0.0.0/8\" or \"::1/128\"");
    out.push_back(*range);
  }
  return out;
}

// Octal permissions as a string ("0660"), the way chmod spells them.
unsigned file_mode(const toml::node& node, std::string_view key) {
  const auto* text = node.as_string();
  unsigned mode = 0;
  if (text != nullptr) {
    const std::string& s = text->get();
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), mode, 8);
    if (!s.empty() && ec == std::errc{} && ptr == s.data() + s.size() && mode <= 0777) return mode;
  }
  fail(node, key, "octal permissions as a string, e.g. \"0660\"");
}

// A header field name (RFC 9110 §5.1: a token), or "" (off).
std::string header_name(const toml::node& node, std::string_view key) {
  std::string name = any_string(node, key);
  const bool token = std::all_of(name.begin(), name.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) != 0 ||
           std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
  });
  if (!token) fail(node, key, "\"\" (off) or a header name such as \"X-Served-By\"");
  return name;
}

// A header field value: visible ASCII, spaces and tabs inside (RFC 9110 §5.5), no CR or LF.
std::string header_value(const toml::node& node, std::string_view key) {
  std::string value = nonempty_string(node, key);
  const bool valid = std::all_of(value.begin(), value.end(),
                                 [](char ch) { return (ch >= 0x20 && ch < 0x7f) || ch == '\t'; });
  if (!valid || value.front() == ' ' || value.back() == ' ') {
    fail(node, key, "a header value (visible ASCII, no leading or trailing space)");
  }
  return value;
}

using Setter = std::function<void(const toml::node&, std::string_view, Config&)>;

const std::vector<std::pair<std::string_view, Setter>>& setters() {
  constexpr auto kUintMax = std::numeric_limits<unsigned>::max();
  static const std::vector<std::pair<std::string_view, Setter>> table = {
      {"listen", [](auto& n, auto k, Config& c) { read_listen(n, k, c); }},
      {"trusted_proxies", [](auto& n, auto k, Config& c) { c.trusted_proxies = cidr_list(n, k); }},
      {"mode",
       [](auto& n, auto k, Config& c) {
         c.mode = one_of(n, k, {"prefork", "per-connection"}) == "prefork" ? Mode::kPrefork
                                                                           : Mode::kPerConnection;
       }},
      {"workers",
       [](auto& n, auto k, Config& c) {
         const auto* text = n.as_string();
         if (text != nullptr && text->get() == "auto") {
           c.workers = 0;
         } else if (!n.is_integer()) {
           fail(n, k, "\"auto\" or an integer from 1 to 1024");
         } else {
           c.workers = count_in(n, k, 1, 1024);
         }
       }},
      {"max_children",
       [](auto& n, auto k, Config& c) { c.max_children = count_in(n, k, 1, 65536); }},
      {"max_children_per_ip",
       [](auto& n, auto k, Config& c) { c.max_children_per_ip = count_in(n, k, 0, 65536); }},
      {"max_requests",
       [](auto& n, auto k, Config& c) {
         c.max_requests = static_cast<std::uint64_t>(
             integer_in(n, k, 0, std::numeric_limits<std::int64_t>::max()));
       }},
      {"graceful_timeout", [](auto& n, auto k, Config& c) { c.graceful_timeout = seconds(n, k); }},
      {"drain_delay", [](auto& n, auto k, Config& c) { c.drain_delay = seconds_or_zero(n, k); }},
      {"upgrade_timeout", [](auto& n, auto k, Config& c) { c.upgrade_timeout = seconds(n, k); }},
      {"worker_timeout", [](auto& n, auto k, Config& c) { c.worker_timeout = seconds(n, k); }},
      {"header_timeout", [](auto& n, auto k, Config& c) { c.header_timeout = seconds(n, k); }},
      {"body_timeout", [](auto& n, auto k, Config& c) { c.body_timeout = seconds(n, k); }},
      {"keepalive_timeout",
       [](auto& n, auto k, Config& c) { c.keepalive_timeout = seconds(n, k); }},
      {"send_timeout", [](auto& n, auto k, Config& c) { c.send_timeout = seconds(n, k); }},
      {"keepalive_requests",
       [](auto& n, auto k, Config& c) { c.keepalive_requests = count_in(n, k, 1, kUintMax); }},
      {"max_connections",
       [](auto& n, auto k, Config& c) { c.max_connections = count_in(n, k, 1, 1'000'000); }},
      {"body_min_rate",
       [](auto& n, auto k, Config& c) {
         c.body_min_rate = static_cast<std::uint64_t>(integer_in(n, k, 0, 1LL << 40));
       }},
      {"lingering_time", [](auto& n, auto k, Config& c) { c.lingering_time = seconds(n, k); }},
      {"lingering_timeout",
       [](auto& n, auto k, Config& c) { c.lingering_timeout = seconds(n, k); }},
      {"drain_idle_grace", [](auto& n, auto k, Config& c) { c.drain_idle_grace = seconds(n, k); }},
      {"max_request_line",
       [](auto& n, auto k, Config& c) {
         c.max_request_line = static_cast<std::size_t>(integer_in(n, k, 64, 1 << 20));
       }},
      {"max_header_bytes",
       [](auto& n, auto k, Config& c) {
         c.max_header_bytes = static_cast<std::size_t>(integer_in(n, k, 256, 1 << 24));
       }},
      {"max_headers", [](auto& n, auto k, Config& c) { c.max_headers = count_in(n, k, 1, 10000); }},
      {"max_body_bytes",
       [](auto& n, auto k, Config& c) {
         c.max_body_bytes = static_cast<std::uint64_t>(
             integer_in(n, k, 0, std::numeric_limits<std::int64_t>::max()));
       }},
      {"error_log", [](auto& n, auto k, Config& c) { c.error_log = nonempty_string(n, k); }},
      {"access_log", [](auto& n, auto k, Config& c) { c.access_log = nonempty_string(n, k); }},
      {"access_log_format",
       [](auto& n, auto k, Config& c) {
         c.access_log_format = one_of(n, k, {"combined", "json"});
       }},
      {"healthz_path", [](auto& n, auto k, Config& c) { c.healthz_path = url_path(n, k); }},
      {"status_path", [](auto& n, auto k, Config& c) { c.status_path = url_path(n, k); }},
      {"metrics_path", [](auto& n, auto k, Config& c) { c.metrics_path = url_path(n, k); }},
      {"status_allow", [](auto& n, auto k, Config& c) { c.status_allow = cidr_list(n, k); }},
      {"body", [](auto& n, auto k, Config& c) { c.body = any_string(n, k); }},
      {"content_type",
       [](auto& n, auto k, Config& c) { c.content_type = header_value(n, k); }},
      {"status", [](auto& n, auto k, Config& c) { c.status = count_in(n, k, 200, 599); }},
      {"identity_header",
       [](auto& n, auto k, Config& c) { c.identity_header = header_name(n, k); }},
      {"switches",
       [](auto& n, auto k, Config& c) {
         if (!n.is_boolean()) fail(n, k, "true or false");
         c.switches = n.as_boolean()->get();
       }},
      {"max_delay", [](auto& n, auto k, Config& c) { c.max_delay = seconds_or_zero(n, k); }},
      {"user", [](auto& n, auto k, Config& c) { c.user = nonempty_string(n, k); }},
      {"group", [](auto& n, auto k, Config& c) { c.group = any_string(n, k); }},
      {"pidfile", [](auto& n, auto k, Config& c) { c.pidfile = any_string(n, k); }},
      {"socket_mode", [](auto& n, auto k, Config& c) { c.socket_mode = file_mode(n, k); }},
      {"log_level",
       [](auto& n, auto k, Config& c) {
         c.log_level = one_of(n, k, {"trace", "debug", "info", "warn", "error", "critical"});
       }},
  };
  return table;
}

const Setter* find_setter(std::string_view key) {
  for (const auto& [name, setter] : setters()) {
    if (name == key) return &setter;
  }
  return nullptr;
}

toml::table parse_text(std::string_view text, std::string_view source) {
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& err) {
    const auto& src = err.source();
    throw ConfigError((src.path ? *src.path : std::string(source)) + ":" +
                      std::to_string(src.begin.line) +
                      ": invalid TOML: " + std::string(err.description()));
  }
}

// A command-line or environment value is TOML when it parses as such ("5", "[\"a\"]"), else a
// plain string. `source` names where it came from in messages.
toml::table parse_override(const Override& item, std::string_view source = kCommandLine) {
  // Only what TOML allows in a bare key: anything else ('#', a newline) would change what the
  // line below means.
  const bool bare = !item.key.empty() && std::all_of(item.key.begin(), item.key.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_' || ch == '-';
  });
  if (!bare) {
    throw ConfigError(std::string(source) + ": '" + item.key + "' is not a configuration key");
  }
  try {
    // One key only: a value such as "1\nworkers = 9" is a string, not a second setting.
    toml::table table = toml::parse(item.key + " = " + item.value, source);
    if (table.size() == 1) return table;
  } catch (const toml::parse_error&) {
  }
  std::ostringstream quoted;  // toml++ prints a string value as a valid TOML string literal
  quoted << toml::value<std::string>(item.value);
  try {
    return toml::parse(item.key + " = " + quoted.str(), source);
  } catch (const toml::parse_error& err) {
    throw ConfigError(std::string(source) + ": key '" + item.key +
                      "': cannot read the value: " + std::string(err.description()));
  }
}

void merge(toml::table& into, toml::table&& from) {
  for (auto&& [key, node] : from) into.insert_or_assign(key, std::move(node));
}

// PREFORK_HTTPD_<KEY> for `key`.
std::string variable_of(std::string_view key) {
  std::string name(kEnvironmentPrefix);
  for (const char ch : key) name += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return name;
}

bool is_upgrade_variable(std::string_view name) {
  return name == kUpgradeFdVariable || name == kUpgradeListenersVariable;
}

// The environment layer: each PREFORK_HTTPD_ variable sets its key, read as a command-line
// value is; a variable with the prefix that names no key is an error, as an unknown key is.
void apply_environment(toml::table& table, const Environment& environment) {
  const auto keys = config_keys();
  for (const auto& variable : environment) {
    if (!variable.name.starts_with(kEnvironmentPrefix) || is_upgrade_variable(variable.name)) {
      continue;
    }
    const std::string source = std::string(kEnvironmentSource) + variable.name;
    const auto key = std::find_if(keys.begin(), keys.end(), [&](std::string_view k) {
      return variable_of(k) == variable.name;
    });
    if (key == keys.end()) {
      throw ConfigError(source + ": names no configuration key (" +
                        std::string(kEnvironmentPrefix) + "KEY, the key in upper case, e.g. " +
                        variable_of("workers") + ")");
    }
    merge(table, parse_override({std::string(*key), variable.value}, source));
  }
}

// PORT (the convention of platforms that choose the port) when no layer gave `listen`; an
// empty PORT counts as unset.
void apply_port(toml::table& table, const Environment& environment) {
  if (table.contains("listen")) return;
  for (const auto& variable : environment) {
    if (variable.name != kPortVariable || variable.value.empty()) continue;
    // "[::]:..." never parses as TOML, so it is read as a string and checked as an address.
    merge(table, parse_override({"listen", "[::]:" + variable.value},
                                std::string(kEnvironmentSource) + variable.name));
  }
}

Config build(toml::table table, std::string source, const std::vector<Override>& overrides,
             const Environment& environment) {
  apply_environment(table, environment);
  for (const auto& item : overrides) merge(table, parse_override(item));
  apply_port(table, environment);
  Config config;
  config.source = std::move(source);
  for (auto&& [key, node] : table) {
    const Setter* setter = find_setter(key.str());
    if (setter == nullptr) {
      throw ConfigError(where(node) + ": unknown key '" + std::string(key.str()) + "'");
    }
    (*setter)(node, key.str(), config);
  }
  return config;
}

}  // namespace

std::string_view mode_name(Mode mode) {
  return mode == Mode::kPrefork ? "prefork" : "per-connection";
}

bool Config::proxy_protocol_on(const std::string& spec) const {
  for (const auto& p : proxy_protocol_listen) {
    if (p == spec) return true;
  }
  return false;
}

unsigned Config::worker_count() const {
  if (workers != 0) return workers;
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? static_cast<unsigned>(cpus) : 1U;
}

Environment configuration_environment(const char* const* envp) {
  Environment out;
  for (; envp != nullptr && *envp != nullptr; ++envp) {
    const std::string_view entry(*envp);
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    EnvironmentVariable variable{std::string(entry.substr(0, eq)),
                                 std::string(entry.substr(eq + 1))};
    if (variable.name.starts_with(kEnvironmentPrefix) || variable.name == kPortVariable) {
      out.push_back(std::move(variable));
    }
  }
  return out;
}

std::vector<std::string_view> config_keys() {
  std::vector<std::string_view> keys;
  keys.reserve(setters().size());
  for (const auto& entry : setters()) keys.push_back(entry.first);
  return keys;
}

Config parse_config(std::string_view text, const std::string& source_name,
                    const std::vector<Override>& overrides, const Environment& environment) {
  return build(parse_text(text, source_name), source_name, overrides, environment);
}

Config load_config(const std::string& path, const std::vector<Override>& overrides,
                   const Environment& environment) {
  if (path.empty()) return build(toml::table{}, "<built-in defaults>", overrides, environment);
  // A directory opens, reads as nothing, and would pass for an empty file: the defaults.
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    throw ConfigError(path + ": cannot read: " + std::strerror(EISDIR));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides, environment);
}

}  // namespace prefork::common
