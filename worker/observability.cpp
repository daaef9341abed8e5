#include "worker/observability.hpp"

#include <sys/socket.h>

#include <array>
#include <cinttypes>
#include <cstdio>

#include "common/build_id.hpp"
#include "common/cidr.hpp"
#include "common/version.hpp"
#include "common/wait_status.hpp"

namespace prefork::worker {
namespace {

constexpr std::array<common::WorkerState, 4> kLiveStates{
    common::WorkerState::kStarting, common::WorkerState::kIdle, common::WorkerState::kBusy,
    common::WorkerState::kDraining};

std::string last_exit_text(int status) {
  return status < 0 ? std::string() : common::describe_wait_status(status);
}

double seconds(common::Millis ms) {
  return static_cast<double>(ms) / 1000.0;
}

common::Millis uptime_ms(common::Millis now, common::Millis started) {
  return started > 0 && now > started ? now - started : 0;
}

// "3d 04:05:06", "04:05:06".
std::string duration_text(common::Millis ms) {
  const auto total = ms / 1000;
  const auto days = total / 86400;
  char text[48];
  if (days > 0) {
    (void)std::snprintf(text, sizeof text, "%" PRId64 "d %02d:%02d:%02d", days,
                        static_cast<int>(total / 3600 % 24), static_cast<int>(total / 60 % 60),
                        static_cast<int>(total % 60));
  } else {
    (void)std::snprintf(text, sizeof text, "%02d:%02d:%02d", static_cast<int>(total / 3600),
                        static_cast<int>(total / 60 % 60), static_cast<int>(total % 60));
  }
  return text;
}

void append_html_escaped(std::string& out, std::string_view text) {
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
}

void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20) {
      char escaped[8];
      (void)std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

std::string fixed3(double value) {
  char text[48];
  (void)std::snprintf(text, sizeof text, "%.3f", value);
  return text;
}

struct Totals {
  std::uint64_t requests = 0;
  std::uint64_t connections = 0;
};

Totals totals(const StatusSnapshot& s) {
  Totals t;
  for (const WorkerRow& row : s.rows) {
    t.requests += row.requests;
    t.connections += row.connections;
  }
  return t;
}

double mean_request_ms(const common::ServedTotals& served) {
  std::uint64_t count = 0;
  for (const std::uint64_t bucket : served.duration_buckets) count += bucket;
  return count == 0
             ? 0.0
             : static_cast<double>(served.duration_sum_us) / 1000.0 / static_cast<double>(count);
}

// "Is this backend full?": what waits in each listen queue, and what was served in all.
void append_saturation_html(std::string& out, const StatusSnapshot& s) {
  out +=
      "<h2>Saturation</h2>\n<table id=\"listeners\">\n<thead><tr><th class=\"l\">Listener</th>"
      "<th>Waiting to be accepted</th><th>Queue limit</th></tr></thead>\n<tbody>\n";
  for (const ListenerRow& l : s.listeners) {
    out += "<tr class=\"listener\"><td class=\"l\">";
    append_html_escaped(out, l.address);
    out += "</td><td>" + (l.known ? std::to_string(l.queued) : std::string("&mdash;")) +
           "</td><td>" + (l.known ? std::to_string(l.limit) : std::string("&mdash;")) +
           "</td></tr>\n";
  }
  out += "</tbody>\n</table>\n<dl id=\"served\">\n";
  out += "<dt>Requests served since start</dt><dd>" + std::to_string(s.served.requests) + "</dd>\n";
  out += "<dt>Connections accepted</dt><dd>" + std::to_string(s.served.connections) + "</dd>\n";
  out += "<dt>Workers filled up to max_connections</dt><dd>" +
         std::to_string(s.served.at_capacity) + " times</dd>\n";
  out += "<dt>Mean request time</dt><dd>" + fixed3(mean_request_ms(s.served)) + " ms</dd>\n";
  out += "</dl>\n";
}

void append_saturation_json(std::string& out, const StatusSnapshot& s) {
  out += ",\"listeners\":[";
  for (std::size_t i = 0; i < s.listeners.size(); ++i) {
    const ListenerRow& l = s.listeners[i];
    if (i > 0) out += ',';
    out += "{\"address\":";
    append_json_string(out, l.address);
    out += ",\"queue\":" + (l.known ? std::to_string(l.queued) : std::string("null"));
    out += ",\"queue_limit\":" + (l.known ? std::to_string(l.limit) : std::string("null")) + "}";
  }
  out += "],\"served\":{\"requests\":" + std::to_string(s.served.requests) +
         ",\"connections\":" + std::to_string(s.served.connections) +
         ",\"max_connections_reached\":" + std::to_string(s.served.at_capacity) +
         ",\"request_time_seconds_sum\":" +
         std::to_string(static_cast<double>(s.served.duration_sum_us) / 1e6) + "}";
}

// Prometheus label values escape backslash, double quote and newline.
std::string label_value(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

// Bucket bounds in seconds, as Prometheus writes them ("0.0001", "10").
std::string bound_seconds(std::uint64_t us) {
  char text[32];
  (void)std::snprintf(text, sizeof text, "%g", static_cast<double>(us) / 1e6);
  return text;
}

}  // namespace

StatusSnapshot take_snapshot(const common::Config& config, const common::Scoreboard* scoreboard,
                             const std::vector<std::string>& listeners, bool worker_draining,
                             common::Millis now_ms) {
  StatusSnapshot s;
  s.mode = config.mode;
  s.workers = config.worker_count();
  s.max_children = config.max_children;
  s.max_connections = config.max_connections;
  s.now_ms = now_ms;
  s.draining = worker_draining;
  if (scoreboard == nullptr) return s;
  const common::ScoreboardHeader& h = scoreboard->header();
  constexpr auto kRelaxed = std::memory_order_relaxed;
  s.draining = s.draining || h.draining.load(kRelaxed);
  s.master_pid = h.master_pid.load(kRelaxed);
  s.master_started_ms = h.master_started_ms.load(kRelaxed);
  s.upgraded_ms = h.upgraded_ms.load(kRelaxed);
  s.generation = h.generation.load(kRelaxed);
  s.live_children = h.live_children.load(kRelaxed);
  s.children_forked = h.children_forked.load(kRelaxed);
  s.cap_hits = h.cap_hits.load(kRelaxed);
  s.fork_failures = h.fork_failures.load(kRelaxed);
  s.served = scoreboard->served_totals();
  for (std::size_t i = 0; i < listeners.size() && i < h.listen_queues.size(); ++i) {
    const std::uint64_t packed = h.listen_queues[i].load(kRelaxed);
    const bool known = (packed & common::ScoreboardHeader::kQueueKnown) != 0;
    s.listeners.push_back({listeners[i], known, static_cast<std::uint32_t>(packed & 0xffffffffU),
                           static_cast<std::uint32_t>((packed >> 32) & 0x7fffffffU)});
  }
  for (std::size_t i = 0; i < scoreboard->size(); ++i) {
    const common::ScoreboardSlot& slot = scoreboard->slot(i);
    const std::uint32_t restarts = slot.restarts.load(kRelaxed);
    s.total_restarts += restarts;
    const std::int32_t pid = slot.pid.load(kRelaxed);
    if (pid == 0) continue;
    WorkerRow row;
    row.slot = static_cast<unsigned>(i);
    row.pid = pid;
    row.generation = slot.generation.load(kRelaxed);
    row.state = slot.state.load(kRelaxed);
    row.requests = slot.served.requests.load(kRelaxed);
    row.at_capacity = slot.served.at_capacity.load(kRelaxed);
    row.connections = slot.connections.load(kRelaxed);
    row.started_ms = slot.started_ms.load(kRelaxed);
    row.restarts = restarts;
    row.last_exit_status = slot.last_exit_status.load(kRelaxed);
    s.rows.push_back(row);
  }
  return s;
}

std::string render_status_html(const StatusSnapshot& s) {
  const Totals t = totals(s);
  const bool per_connection = s.mode == common::Mode::kPerConnection;
  std::string out;
  out.reserve(4096 + 512 * s.rows.size());
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"refresh\" content=\"5\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>prefork-httpd status</title>\n<style>\n"
      "body{font-family:system-ui,-apple-system,\"Segoe UI\",sans-serif;margin:2em;"
      "color:#1d2330;background:#f6f7f9}\n"
      "h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .5em}\n"
      ".sub{color:#5b6475;margin:0 0 1.2em}\n"
      ".badge{display:inline-block;padding:.15em .6em;border-radius:1em;font-size:.85em;"
      "font-weight:600;vertical-align:middle}\n"
      ".ok{background:#d9f2e3;color:#146c3a}.drain{background:#fde2c8;color:#8a4b08}\n"
      "table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}\n"
      "th,td{padding:.45em .9em;text-align:right;border-bottom:1px solid #e4e7ec}\n"
      "th{background:#eef1f5;font-weight:600}td.l,th.l{text-align:left}\n"
      "tfoot td{font-weight:600;background:#fafbfc}\n"
      "dl{display:grid;grid-template-columns:max-content auto;gap:.3em 1.2em;margin:0}\n"
      "dt{color:#5b6475}dd{margin:0;font-variant-numeric:tabular-nums}\n"
      ".state-idle{color:#146c3a}.state-busy{color:#1f5fbf}.state-draining{color:#8a4b08}"
      ".state-starting{color:#5b6475}\n"
      "footer{margin-top:2em;color:#8a93a3;font-size:.85em}\n"
      "</style>\n</head>\n<body>\n";
  out += "<h1>prefork-httpd <span class=\"badge ";
  out += s.draining ? "drain\">draining" : "ok\">serving";
  out += "</span></h1>\n<p class=\"sub\">";
  out += "version ";
  out += common::kVersion;
  out += " &middot; build ";
  append_html_escaped(out, common::build_id().substr(0, 12));
  if (s.upgraded_ms > 0) {
    out += " &middot; upgraded " + duration_text(uptime_ms(s.now_ms, s.upgraded_ms)) + " ago";
  }
  out += " &middot; mode <b>";
  out += common::mode_name(s.mode);
  out += "</b> &middot; master pid " + std::to_string(s.master_pid);
  out += " &middot; generation " + std::to_string(s.generation);
  out += " &middot; up " + duration_text(uptime_ms(s.now_ms, s.master_started_ms));
  out += "</p>\n";

  out +=
      "<h2>Workers</h2>\n<table id=\"workers\">\n<thead><tr><th>Slot</th><th>PID</th>"
      "<th>Generation</th><th class=\"l\">State</th><th>Requests</th>"
      "<th>Open connections</th><th>Uptime</th><th>Restarts</th>"
      "<th class=\"l\">Last exit</th></tr></thead>\n<tbody>\n";
  for (const WorkerRow& row : s.rows) {
    const std::string_view state = common::worker_state_name(row.state);
    out += "<tr class=\"worker\"><td>" + std::to_string(row.slot) + "</td><td>" +
           std::to_string(row.pid) + "</td><td>" + std::to_string(row.generation) +
           "</td><td class=\"l state-";
    out += state;
    out += "\">";
    out += state;
    out += "</td><td>" + std::to_string(row.requests) + "</td><td>" +
           std::to_string(row.connections) + "</td><td>" +
           duration_text(uptime_ms(s.now_ms, row.started_ms)) + "</td><td>" +
           std::to_string(row.restarts) + "</td><td class=\"l\">";
    const std::string exit = last_exit_text(row.last_exit_status);
    if (exit.empty()) {
      out += "&mdash;";
    } else {
      append_html_escaped(out, exit);
    }
    out += "</td></tr>\n";
  }
  out +=
      "</tbody>\n<tfoot><tr><td class=\"l\" colspan=\"4\">Total: " + std::to_string(s.rows.size()) +
      " worker" + (s.rows.size() == 1 ? "" : "s") + "</td><td>" + std::to_string(t.requests) +
      "</td><td>" + std::to_string(t.connections) + "</td><td></td><td>" +
      std::to_string(s.total_restarts) + "</td><td></td></tr></tfoot>\n</table>\n";

  append_saturation_html(out, s);
  out += "<h2>Configuration</h2>\n<dl>\n";
  out += "<dt>Mode</dt><dd>" + std::string(common::mode_name(s.mode)) + "</dd>\n";
  out += "<dt>Workers</dt><dd>" + std::to_string(s.workers) + "</dd>\n";
  out += "<dt>Max connections per worker</dt><dd>" + std::to_string(s.max_connections) + "</dd>\n";
  out += "<dt>Max children</dt><dd>" + std::to_string(s.max_children) + "</dd>\n";
  out += "</dl>\n";
  if (per_connection) {
    out += "<h2>Per-connection children</h2>\n<dl id=\"children\">\n";
    out += "<dt>Live children</dt><dd>" + std::to_string(s.live_children) + " / " +
           std::to_string(s.max_children) + "</dd>\n";
    out += "<dt>Children forked</dt><dd>" + std::to_string(s.children_forked) + "</dd>\n";
    out += "<dt>Cap reached</dt><dd>" + std::to_string(s.cap_hits) + " times</dd>\n";
    out += "<dt>Fork failures</dt><dd>" + std::to_string(s.fork_failures) + "</dd>\n";
    out += "</dl>\n";
  }
  out +=
      "<footer>Refreshes every 5 seconds &middot; <a href=\"?format=json\">JSON</a>"
      "</footer>\n</body>\n</html>\n";
  return out;
}

std::string render_status_json(const StatusSnapshot& s) {
  const Totals t = totals(s);
  std::string out;
  out.reserve(1024 + 256 * s.rows.size());
  out += "{\"version\":";
  append_json_string(out, common::kVersion);
  out += ",\"build_id\":";
  append_json_string(out, common::build_id());
  out += ",\"upgraded_at\":";
  out += s.upgraded_ms > 0 ? fixed3(seconds(s.upgraded_ms)) : "null";
  out += ",\"mode\":";
  append_json_string(out, common::mode_name(s.mode));
  out += ",\"draining\":";
  out += s.draining ? "true" : "false";
  out += ",\"master\":{\"pid\":" + std::to_string(s.master_pid) +
         ",\"generation\":" + std::to_string(s.generation) +
         ",\"start_time\":" + fixed3(seconds(s.master_started_ms)) +
         ",\"uptime_seconds\":" + fixed3(seconds(uptime_ms(s.now_ms, s.master_started_ms))) + "}";
  out += ",\"limits\":{\"workers\":" + std::to_string(s.workers) +
         ",\"max_children\":" + std::to_string(s.max_children) +
         ",\"max_connections\":" + std::to_string(s.max_connections) + "}";
  out += ",\"per_connection\":{\"live_children\":" + std::to_string(s.live_children) +
         ",\"children_forked\":" + std::to_string(s.children_forked) +
         ",\"cap_hits\":" + std::to_string(s.cap_hits) +
         ",\"fork_failures\":" + std::to_string(s.fork_failures) + "}";
  out += ",\"totals\":{\"workers\":" + std::to_string(s.rows.size()) +
         ",\"requests\":" + std::to_string(t.requests) +
         ",\"connections\":" + std::to_string(t.connections) +
         ",\"restarts\":" + std::to_string(s.total_restarts) + "}";
  append_saturation_json(out, s);
  out += ",\"workers\":[";
  bool first = true;
  for (const WorkerRow& row : s.rows) {
    if (!first) out += ',';
    first = false;
    out += "{\"slot\":" + std::to_string(row.slot) + ",\"pid\":" + std::to_string(row.pid) +
           ",\"generation\":" + std::to_string(row.generation) + ",\"state\":";
    append_json_string(out, common::worker_state_name(row.state));
    out += ",\"requests\":" + std::to_string(row.requests) +
           ",\"connections\":" + std::to_string(row.connections) +
           ",\"uptime_seconds\":" + fixed3(seconds(uptime_ms(s.now_ms, row.started_ms))) +
           ",\"restarts\":" + std::to_string(row.restarts) +
           ",\"max_connections_reached\":" + std::to_string(row.at_capacity) + ",\"last_exit\":";
    if (row.last_exit_status < 0) {
      out += "null";
    } else {
      append_json_string(out, last_exit_text(row.last_exit_status));
    }
    out += '}';
  }
  out += "]}\n";
  return out;
}

std::string render_metrics(const StatusSnapshot& s) {
  std::string out;
  out.reserve(4096 + 512 * s.rows.size());
  const auto family = [&out](std::string_view name, std::string_view type, std::string_view help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
  };
  const auto sample = [&out](std::string_view name, std::string_view labels,
                             const std::string& value) {
    out += name;
    if (!labels.empty()) {
      out += '{';
      out += labels;
      out += '}';
    }
    out += ' ';
    out += value;
    out += '\n';
  };
  const auto slot_label = [](const WorkerRow& row) {
    return "slot=\"" + std::to_string(row.slot) + "\"";
  };

  family("prefork_up", "gauge", "Whether the server answers (always 1 when scraped).");
  sample("prefork_up", "", "1");
  family("prefork_info", "gauge", "Version and mode of the server (value always 1).");
  sample("prefork_info",
         "version=\"" + std::string(common::kVersion) + "\",build_id=\"" + common::build_id() +
             "\",mode=\"" + std::string(common::mode_name(s.mode)) + "\"",
         "1");
  family("prefork_upgrade_time_seconds", "gauge",
         "When this binary took over by a binary upgrade (SIGUSR2), since the Unix epoch; 0: "
         "never.");
  sample("prefork_upgrade_time_seconds", "", fixed3(seconds(s.upgraded_ms)));
  family("prefork_start_time_seconds", "gauge",
         "Start time of the master process since the Unix epoch in seconds.");
  sample("prefork_start_time_seconds", "", fixed3(seconds(s.master_started_ms)));
  family("prefork_draining", "gauge", "1 while a graceful stop is in progress, else 0.");
  sample("prefork_draining", "", s.draining ? "1" : "0");
  family("prefork_generation", "gauge", "Configuration generation (incremented by each reload).");
  sample("prefork_generation", "", std::to_string(s.generation));
  family("prefork_configured_workers", "gauge", "Configured number of prefork workers.");
  sample("prefork_configured_workers", "", std::to_string(s.workers));
  family("prefork_max_connections", "gauge", "Configured open connections per worker at most.");
  sample("prefork_max_connections", "", std::to_string(s.max_connections));
  family("prefork_max_children", "gauge", "Configured per-connection children at most.");
  sample("prefork_max_children", "", std::to_string(s.max_children));

  family("prefork_workers", "gauge", "Live worker processes by state.");
  for (const common::WorkerState state : kLiveStates) {
    std::size_t count = 0;
    for (const WorkerRow& row : s.rows) count += row.state == state ? 1 : 0;
    sample("prefork_workers", "state=\"" + std::string(common::worker_state_name(state)) + "\"",
           std::to_string(count));
  }
  family("prefork_requests_total", "counter",
         "Requests answered by the worker now in this slot (resets when it is replaced).");
  for (const WorkerRow& row : s.rows) {
    sample("prefork_requests_total", slot_label(row), std::to_string(row.requests));
  }
  family("prefork_connections_open", "gauge", "Open client connections of the worker in a slot.");
  for (const WorkerRow& row : s.rows) {
    sample("prefork_connections_open", slot_label(row), std::to_string(row.connections));
  }
  family("prefork_worker_restarts_total", "counter",
         "Times the worker in a slot was replaced since the master started.");
  for (const WorkerRow& row : s.rows) {
    sample("prefork_worker_restarts_total", slot_label(row), std::to_string(row.restarts));
  }
  family("prefork_worker_start_time_seconds", "gauge",
         "Start time of the worker in a slot since the Unix epoch in seconds.");
  for (const WorkerRow& row : s.rows) {
    sample("prefork_worker_start_time_seconds", slot_label(row), fixed3(seconds(row.started_ms)));
  }

  family("prefork_listen_queue", "gauge",
         "Connections waiting in a listening socket's accept queue (as the master last saw it).");
  for (const ListenerRow& l : s.listeners) {
    if (l.known) {
      sample("prefork_listen_queue", "listener=\"" + label_value(l.address) + "\"",
             std::to_string(l.queued));
    }
  }
  family("prefork_listen_queue_limit", "gauge",
         "Connections a listening socket's accept queue holds before the kernel refuses more.");
  for (const ListenerRow& l : s.listeners) {
    if (l.known) {
      sample("prefork_listen_queue_limit", "listener=\"" + label_value(l.address) + "\"",
             std::to_string(l.limit));
    }
  }
  family("prefork_served_requests_total", "counter",
         "Requests answered since the master started, by every worker and child there was.");
  sample("prefork_served_requests_total", "", std::to_string(s.served.requests));
  family("prefork_accepted_connections_total", "counter",
         "Client connections accepted since the master started.");
  sample("prefork_accepted_connections_total", "", std::to_string(s.served.connections));
  family("prefork_max_connections_reached_total", "counter",
         "Times a worker filled up to max_connections and stopped accepting until one closed.");
  sample("prefork_max_connections_reached_total", "", std::to_string(s.served.at_capacity));
  family("prefork_request_duration_seconds", "histogram",
         "Time from a request's first read to its response, since the master started.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < common::kDurationBoundsUs.size(); ++i) {
    cumulative += s.served.duration_buckets[i];
    sample("prefork_request_duration_seconds_bucket",
           "le=\"" + bound_seconds(common::kDurationBoundsUs[i]) + "\"",
           std::to_string(cumulative));
  }
  cumulative += s.served.duration_buckets.back();
  sample("prefork_request_duration_seconds_bucket", "le=\"+Inf\"", std::to_string(cumulative));
  sample("prefork_request_duration_seconds_sum", "",
         std::to_string(static_cast<double>(s.served.duration_sum_us) / 1e6));
  sample("prefork_request_duration_seconds_count", "", std::to_string(cumulative));

  family("prefork_children", "gauge", "Live per-connection children (per-connection mode).");
  sample("prefork_children", "", std::to_string(s.live_children));
  family("prefork_children_forked_total", "counter",
         "Per-connection children forked since the master started.");
  sample("prefork_children_forked_total", "", std::to_string(s.children_forked));
  family("prefork_children_cap_hits_total", "counter",
         "Times a connection waited because max_children children were live.");
  sample("prefork_children_cap_hits_total", "", std::to_string(s.cap_hits));
  family("prefork_fork_failures_total", "counter", "fork() calls that failed.");
  sample("prefork_fork_failures_total", "", std::to_string(s.fork_failures));
  if (s.proxy_protocol) {
    family("prefork_proxy_protocol_errors_total", "counter",
           "Connections closed for a missing or invalid PROXY protocol header, counted by the "
           "worker in the slot that answered this scrape (resets when it is replaced).");
    sample("prefork_proxy_protocol_errors_total", "slot=\"" + std::to_string(s.self_slot) + "\"",
           std::to_string(s.proxy_protocol_errors));
  }
  return out;
}

[[gnu::hot]] Observability::Observability(const common::ChildContext& ctx,
                                          const Responses& responses, const bool& worker_draining,
                                          const std::uint64_t* proxy_protocol_errors)
    : config_(ctx.config),
      scoreboard_(ctx.scoreboard),
      responses_(responses),
      worker_draining_(worker_draining),
      proxy_protocol_errors_(proxy_protocol_errors),
      proxy_protocol_(ctx.client_proxy_protocol),
      slot_index_(ctx.slot_index) {
  for (const common::Listener& listener : ctx.listeners) {
    proxy_protocol_ = proxy_protocol_ || listener.proxy_protocol;
    listener_names_.push_back(listener.bound);
  }
}

const std::vector<std::string>& Observability::listener_names() const {
  // A per-connection child has no listener: the configuration names them, in the same order
  // (read there, not copied: a copy would be an allocation in every child).
  return listener_names_.empty() ? config_.listen : listener_names_;
}

bool Observability::draining() const {
  return worker_draining_ ||
         (scoreboard_ != nullptr && scoreboard_->header().draining.load(std::memory_order_relaxed));
}

// Conservative behind a PROXY protocol balancer: the balancer (the TCP peer) and the client it
// reports must both be in status_allow, so neither a forged header from an outside peer nor
// every client of a balancer on loopback gets in. Forwarding headers never count here.
bool Observability::allowed(int client_fd, const sockaddr* proxied) const {
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  if (::getpeername(client_fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return false;
  if (!common::any_contains(config_.status_allow, reinterpret_cast<const sockaddr*>(&peer))) {
    return false;
  }
  return proxied == nullptr || common::any_contains(config_.status_allow, proxied);
}

EndpointReply Observability::respond(const EndpointRequest& request, int client_fd,
                                     const sockaddr* proxied, std::string& out) const {
  constexpr std::string_view kText = "text/plain; charset=utf-8";
  if (request.endpoint == Endpoint::kHealthz) {
    // A load balancer takes us out on the 503; the connection closes so it reconnects elsewhere.
    if (draining()) return reply(503, kText, "draining\n", request, true, out);
    return reply(200, kText, "ok\n", request, false, out);
  }
  if (!allowed(client_fd, proxied)) return reply(403, kText, "Forbidden\n", request, false, out);
  StatusSnapshot snapshot =
      take_snapshot(config_, scoreboard_, listener_names(), worker_draining_, common::wall_ms());
  if (proxy_protocol_ && proxy_protocol_errors_ != nullptr) {
    snapshot.proxy_protocol = true;
    snapshot.self_slot = slot_index_;
    snapshot.proxy_protocol_errors = *proxy_protocol_errors_;
  }
  if (request.endpoint == Endpoint::kMetrics) {
    return reply(200, "text/plain; version=0.0.4; charset=utf-8", render_metrics(snapshot), request,
                 false, out);
  }
  if (request.json) {
    return reply(200, "application/json", render_status_json(snapshot), request, false, out);
  }
  return reply(200, "text/html; charset=utf-8", render_status_html(snapshot), request, false, out);
}

EndpointReply Observability::reply(int status, std::string_view content_type, std::string_view body,
                                   const EndpointRequest& request, bool close,
                                   std::string& out) const {
  close = close || request.connection == ConnectionHeader::kClose;
  const ConnectionHeader connection = close ? ConnectionHeader::kClose : request.connection;
  const std::uint64_t sent = responses_.append(out, status, content_type, body, request.head,
                                               connection, "Cache-Control: no-store\r\n");
  return {status, sent, close};
}

}  // namespace prefork::worker
