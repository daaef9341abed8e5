// The internal endpoints (worker, after fork; design §4): /healthz for load balancers, and
// /server-status (HTML or JSON) and /metrics (Prometheus text 0.0.4) rendered from the shared
// scoreboard for clients in status_allow. Built per request: none of it is on the hot path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/child_context.hpp"
#include "common/clock.hpp"
#include "common/config.hpp"
#include "common/scoreboard.hpp"
#include "worker/request_parser.hpp"
#include "worker/response.hpp"

namespace prefork::worker {

// One scoreboard slot with a live process.
struct WorkerRow {
  unsigned slot = 0;
  std::int32_t pid = 0;
  std::uint32_t generation = 0;
  common::WorkerState state = common::WorkerState::kEmpty;
  std::uint64_t requests = 0;
  std::uint32_t connections = 0;
  common::Millis started_ms = 0;  // wall clock
  std::uint32_t restarts = 0;
  int last_exit_status = -1;
  std::uint64_t at_capacity = 0;  // times this worker filled up to max_connections
};

// One listening socket's accept queue (unknown for a unix-domain one).
struct ListenerRow {
  std::string address;
  bool known = false;
  std::uint32_t queued = 0;
  std::uint32_t limit = 0;
};

// Everything the status page and the metrics show, read once per request.
struct StatusSnapshot {
  common::Mode mode = common::Mode::kPrefork;
  unsigned workers = 0;
  unsigned max_children = 0;
  unsigned max_connections = 0;
  bool draining = false;
  std::int32_t master_pid = 0;
  common::Millis master_started_ms = 0;
  common::Millis upgraded_ms = 0;  // when this binary took over by an upgrade; 0: never
  std::uint32_t generation = 0;
  std::uint32_t live_children = 0;
  std::uint64_t children_forked = 0;
  std::uint64_t cap_hits = 0;
  std::uint64_t fork_failures = 0;
  common::Millis now_ms = 0;    // wall clock
  std::vector<WorkerRow> rows;  // live workers, by slot
  std::vector<ListenerRow> listeners;
  // Since the master started, across worker replacement (and per-connection children).
  common::ServedTotals served;
  // Restarts and last exits of slots without a live worker count in the totals too.
  std::uint64_t total_restarts = 0;
  // Some listener has proxy_protocol: the answering worker's own error count is shown (it is
  // not in the scoreboard, so each scrape sees the worker that happened to answer it).
  bool proxy_protocol = false;
  unsigned self_slot = 0;
  std::uint64_t proxy_protocol_errors = 0;
};

// `listeners`: the names of the listening sockets, in the master's order (the order of the
// queues it publishes in the scoreboard).
StatusSnapshot take_snapshot(const common::Config& config, const common::Scoreboard* scoreboard,
                             const std::vector<std::string>& listeners, bool worker_draining,
                             common::Millis now_ms);

std::string render_status_html(const StatusSnapshot& snapshot);
std::string render_status_json(const StatusSnapshot& snapshot);
std::string render_metrics(const StatusSnapshot& snapshot);

class Observability {
 public:
  // `worker_draining` is the worker's own flag (SIGQUIT), read on every /healthz.
  // `proxy_protocol_errors`: the worker's count (null: not shown).
  Observability(const common::ChildContext& ctx, const Responses& responses,
                const bool& worker_draining, const std::uint64_t* proxy_protocol_errors = nullptr);

  // Appends the whole response for `request` to `out`; `client_fd` is asked for the peer
  // address when the endpoint is restricted to status_allow. `proxied`: the client address a
  // PROXY protocol header reported (null: none); then both it and the peer must be allowed.
  EndpointReply respond(const EndpointRequest& request, int client_fd, const sockaddr* proxied,
                        std::string& out) const;

 private:
  [[nodiscard]] bool draining() const;
  [[nodiscard]] const std::vector<std::string>& listener_names() const;
  [[nodiscard]] bool allowed(int client_fd, const sockaddr* proxied) const;
  EndpointReply reply(int status, std::string_view content_type, std::string_view body,
                      const EndpointRequest& request, bool close, std::string& out) const;

  const common::Config& config_;
  const common::Scoreboard* scoreboard_;
  const Responses& responses_;
  const bool& worker_draining_;
  const std::uint64_t* proxy_protocol_errors_;
  bool proxy_protocol_ = false;  // some listener has proxy_protocol
  unsigned slot_index_ = 0;
  std::vector<std::string> listener_names_;  // empty: those of the configuration
};

}  // namespace prefork::worker
