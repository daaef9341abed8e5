#include "worker/router.hpp"

#include "worker/request_parser.hpp"

namespace prefork::worker {
namespace {

// Calls `fn(name, value, has_value)` for each '&'-separated parameter of `query`.
template <typename Fn>
void for_each_parameter(std::string_view query, Fn&& fn) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view parameter = query.substr(0, amp);
    const std::size_t eq = parameter.find('=');
    if (eq == std::string_view::npos) {
      fn(parameter, std::string_view(), false);
    } else {
      fn(parameter.substr(0, eq), parameter.substr(eq + 1), true);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Three digits from 200 to 599.
std::string_view read_status(std::string_view value, int& status) {
  if (value.size() != 3 || !is_digit(value[0]) || !is_digit(value[1]) || !is_digit(value[2])) {
    return "status: expected three digits from 200 to 599";
  }
  status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
  if (status < 200 || status > 599) return "status: expected three digits from 200 to 599";
  return {};
}

// Seconds: digits, optionally '.' and 1 to 3 more (milliseconds). Capped at max_delay.
std::string_view read_delay(std::string_view value, common::Millis max_delay,
                            common::Millis& delay) {
  constexpr std::string_view kExpected = "delay: expected seconds such as 2 or 0.5";
  const std::size_t dot = value.find('.');
  const std::string_view whole = value.substr(0, dot);
  const std::string_view fraction =
      dot == std::string_view::npos ? std::string_view() : value.substr(dot + 1);
  if (whole.empty() ||
      (dot != std::string_view::npos && (fraction.empty() || fraction.size() > 3))) {
    return kExpected;
  }
  common::Millis ms = 0;
  for (const char c : whole) {
    if (!is_digit(c)) return kExpected;
    if (ms <= max_delay)
      ms = ms * 10 + common::Millis{c - '0'} * 1000;  // stops growing once over the cap
  }
  common::Millis scale = 100;
  for (const char c : fraction) {
    if (!is_digit(c)) return kExpected;
    ms += common::Millis{c - '0'} * scale;
    scale /= 10;
  }
  delay = std::min(ms, max_delay);
  return {};
}

}  // namespace

Switches parse_switches(std::string_view query, common::Millis max_delay) {
  Switches out;
  bool seen_status = false;
  bool seen_delay = false;
  bool seen_echo = false;
  for_each_parameter(query, [&](std::string_view name, std::string_view value, bool has_value) {
    if (!out.error.empty()) return;
    if (name == "status") {
      if (seen_status) out.error = "status: given twice";
      seen_status = true;
      if (out.error.empty()) out.error = read_status(value, out.status);
    } else if (name == "delay") {
      if (seen_delay) out.error = "delay: given twice";
      seen_delay = true;
      if (out.error.empty()) out.error = read_delay(value, max_delay, out.delay);
    } else if (name == "echo") {
      if (seen_echo) out.error = "echo: given twice";
      if (has_value && !value.empty()) out.error = "echo: takes no value";
      seen_echo = true;
      out.echo = true;
    }
  });
  if (!out.error.empty()) out = Switches{.error = out.error};
  return out;
}

Router::Router(const Limits& limits) : switches_(limits.switches), max_delay_(limits.max_delay) {
  const std::string_view paths[kEndpointCount] = {limits.healthz_path, limits.status_path,
                                                  limits.metrics_path};
  for (std::size_t i = 0; i < kEndpointCount; ++i) {
    if (!paths[i].empty()) endpoints_.push_back({std::string(paths[i]), static_cast<Endpoint>(i)});
  }
}

[[gnu::hot]] Route Router::route(std::string_view target) const {
  Route route;
  const std::size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  for (const Entry& entry : endpoints_) {
    if (entry.path != path) continue;
    route.endpoint = entry.endpoint;
    for_each_parameter(query, [&](std::string_view name, std::string_view value, bool has_value) {
      route.json = route.json || (name == "format" && has_value && value == "json");
    });
    return route;  // internal endpoints know no switches
  }
  if (switches_ && !query.empty()) route.switches = parse_switches(query, max_delay_);
  return route;
}

}  // namespace prefork::worker
