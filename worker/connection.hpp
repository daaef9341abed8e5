// One client connection (worker, after fork): non-blocking socket I/O around a RequestParser,
// the connection's output buffer and its timers. Owned and driven by the EventLoop; everything
// all connections of a worker share (read buffer, responses, timer lists) is in WorkerShared.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/child_context.hpp"
#include "common/clock.hpp"
#include "common/config.hpp"
#include "common/rate_limiter.hpp"
#include "common/scoreboard.hpp"
#include "common/unique_fd.hpp"
#include "worker/proxy_protocol.hpp"
#include "worker/request_parser.hpp"
#include "worker/response.hpp"
#include "worker/timer_list.hpp"

namespace prefork::worker {

class AccessLog;
class Observability;

// What an epoll event's data.ptr points at.
struct EpollSource {
  enum class Kind : std::uint8_t { kSignal, kListener, kConnection };
  explicit EpollSource(Kind k) : kind(k) {}
  const Kind kind;
};

// A lingering close (after the last response, the server half-closes and reads and discards
// until the client closes, so that unread request bytes do not turn our close into a reset
// that destroys the responses in flight) reads at most this much; lingering_time and
// lingering_timeout bound it in time.
inline constexpr std::uint64_t kMaxLingerBytes = 16ULL * 1024 * 1024;

// Whether responses name the server that answers (identity_header, ?echo). The name holds the
// pid, so then each process builds its own responses.
bool shows_identity(const common::Config& config);

// What one configuration makes of the limits, the routes and the responses: built before the
// first connection, then only read (and re-dated). A prefork worker builds its own. A
// per-connection child reads the one its master built before fork (ConnectionPrototype), so
// that it allocates none of it: a fresh child's first allocations write malloc's state and
// heap pages shared with the master, a copy-on-write fault each.
struct PreparedConfig {
  PreparedConfig(const common::Config& config, std::string identity);
  PreparedConfig(const PreparedConfig&) = delete;
  PreparedConfig& operator=(const PreparedConfig&) = delete;
  ~PreparedConfig() = default;

  const Limits limits;
  const Router router;  // built once: every connection's parser asks it
  Responses responses;
};

struct WorkerShared {
  // `given`: prepared by the master for this configuration (per-connection children), or null
  // to build one here.
  WorkerShared(const common::ChildContext& ctx, PreparedConfig* given);
  WorkerShared(const WorkerShared&) = delete;
  WorkerShared& operator=(const WorkerShared&) = delete;
  ~WorkerShared();  // out of line: with the rest of the child's code (see connection.cpp)

  static constexpr std::size_t kReadBufferSize = std::size_t{16} * 1024;

  const common::Config& config;
  const std::unique_ptr<PreparedConfig> own_prepared;  // null when given one
  PreparedConfig& prepared;  // limits, router and responses of this configuration
  TimerList header_timers;
  TimerList body_timers;
  TimerList keepalive_timers;
  TimerList send_timers;
  TimerList linger_timers;    // lingering_timeout: each read of a lingering close or a discard
  TimerList drain_timers;     // drain_idle_grace (at most graceful_timeout): idle while draining
  TimerList delay_timers{0};  // ?delay: each its own deadline (arm_at)
  // Every list above: the loop expires them and sleeps until the first deadline among them.
  [[nodiscard]] std::array<TimerList*, 7> timer_lists() noexcept {
    return {&header_timers, &body_timers,  &keepalive_timers, &send_timers,
            &linger_timers, &drain_timers, &delay_timers};
  }
  [[nodiscard]] std::array<const TimerList*, 7> timer_lists() const noexcept {
    return {&header_timers, &body_timers,  &keepalive_timers, &send_timers,
            &linger_timers, &drain_timers, &delay_timers};
  }
  // The first deadline among the timer lists, if any timer is armed.
  [[nodiscard]] std::optional<common::Millis> next_deadline() const noexcept;
  const common::Millis lingering_time;
  const std::uint64_t body_min_rate;
  // The worker's scoreboard slot's counters, or for a per-connection child the header's.
  common::ServedCounters* const served;
  common::Millis now = common::monotonic_ms();
  bool draining = false;
  unsigned busy = 0;  // connections with a request in progress or a response not yet sent
  // Responses produced in one service pass of one connection, sent from here when that
  // connection has no backlog (only what a partial write left is copied to its own buffer).
  std::string batch;
  AccessLog* access_log = nullptr;  // null: access log off
  // Non-null (and non-empty) only while the access log is on: peers whose X-Forwarded-For or
  // Forwarded header names the client for the log.
  const std::vector<common::Cidr>* trusted_proxies = nullptr;
  // Connections on proxy_protocol listeners closed for a missing or invalid header (this
  // worker only; shown in the /metrics it answers).
  std::uint64_t proxy_protocol_errors = 0;
  // Connections closed because they could not be set up (epoll_ctl failed), this worker only.
  std::uint64_t connection_setup_errors = 0;
  // Lines about one client (a bad PROXY header, a failed setup): a flood costs one a second.
  common::RateLimiter client_log{1000};
  Observability* observability = nullptr;  // answers the internal endpoints
  // llhttp streams: nothing is kept in it. Not zero-filled: recv() writes what is read, and
  // filling 16 KiB would touch four fresh pages in every per-connection child.
  std::array<char, kReadBufferSize> read_buffer;
};

class Connection final : public EpollSource, private RequestHandler {
 public:
  // Unsent output above which the connection stops reading until the client catches up.
  static constexpr std::size_t kMaxBacklog = std::size_t{64} * 1024;

  // `peer`: the client's address from accept (nullptr: asked from the socket when needed).
  // `proxy_protocol`: the listener expects a PROXY protocol header before the HTTP bytes.
  Connection(common::UniqueFd fd, WorkerShared& shared, const sockaddr* peer = nullptr,
             bool proxy_protocol = false);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Each of these returns false when the connection is finished; the loop then closes it.
  // epoll readiness (edge-triggered).
  bool on_ready(std::uint32_t events);
  // Continues after the per-pass read budget ran out (see wants_resume()).
  bool resume();
  // A timer of this connection in `list` expired.
  bool on_timer(const TimerList& list);
  // Graceful drain started: idle connections end, a request in progress is answered last.
  bool on_drain();

  // Closes the socket now (it leaves epoll with it) and stops every timer.
  void close() noexcept;

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  [[nodiscard]] bool closed() const noexcept { return !fd_.valid(); }
  [[nodiscard]] bool wants_resume() const noexcept { return want_resume_; }
  // For a level-triggered poll() (a per-connection child): what the connection waits for now.
  // Asking for nothing else keeps a level from repeating news that an edge gives once.
  [[nodiscard]] bool wants_input() const noexcept {
    return lingering_ || (!peer_closed_ && !parser_.closing() &&
                          parser_.phase() != Phase::kDelayed && backlog() <= kMaxBacklog);
  }
  [[nodiscard]] bool wants_output() const noexcept { return out_.size() != sent_; }
  [[nodiscard]] const RequestParser& parser() const noexcept { return parser_; }

  std::size_t index = 0;       // position in the loop's table
  bool in_ready_list = false;  // queued for resume() on the next pass

 private:
  bool service();
  bool read_batch();
  bool flush();
  // Sends what the socket takes of [data, data + length); -1 when the peer is gone.
  ssize_t send_some(const char* data, std::size_t length, int flags);
  EndpointReply respond(const EndpointRequest& request, std::string& out) override;
  EndpointReply respond_backend(const BackendRequest& request, const Responses& responses,
                                std::string& out) override;
  // The client an echo names: PROXY protocol source, trusted forwarding headers, or the peer.
  [[nodiscard]] std::string echo_client(const sockaddr* peer) const;
  // The delay of a ?delay request is over: answer it and go on with what followed.
  bool release_delayed();
  void on_response(const RequestParser& parser, int status, std::uint64_t body_bytes) override;
  [[nodiscard]] bool input_waiting() const noexcept;
  bool start_linger(TimerList& timers, common::Millis duration);
  bool linger();
  // Restarts the read timer on `list` unless that would carry it past `deadline`; a timer
  // left alone then fires at the latest by the deadline.
  void rearm_within(TimerList& list, common::Millis deadline);
  [[nodiscard]] bool body_on_pace() const noexcept;
  // False when the connection must close now (an invalid PROXY header).
  bool feed(const char* data, std::size_t length);
  void count_responses(std::uint64_t count);
  [[nodiscard]] std::uint64_t request_duration_us() const noexcept {
    const std::uint64_t now = common::monotonic_us();
    return now - std::min(now, request_started_us_);
  }
  bool feed_proxy_header(const char*& data, std::size_t& length);
  void proxy_header_failed(const char* why);
  [[nodiscard]] bool awaiting_proxy_header() const noexcept {
    return proxy_ && proxy_->status() == ProxyHeaderParser::Status::kNeedMore;
  }
  // The PROXY header's client address, or nullptr (no header on this listener, or LOCAL).
  [[nodiscard]] const sockaddr* proxied_source() const noexcept {
    return proxy_ && proxy_->has_source() ? proxy_->source() : nullptr;
  }
  void decide_forwarding_trust(const sockaddr* client);
  void update_state();
  [[nodiscard]] std::size_t backlog() const noexcept {
    return out_.size() - sent_ + shared_.batch.size();
  }
  [[nodiscard]] bool can_read() const noexcept;

  common::UniqueFd fd_;
  WorkerShared& shared_;
  RequestParser parser_;
  std::string out_;
  std::size_t sent_ = 0;
  TimerNode read_timer_{this};
  TimerNode send_timer_{this};
  TimerNode delay_timer_{this};
  // The client address for the access log (only while it is on): the TCP peer, or the address
  // a PROXY protocol header reports.
  std::unique_ptr<std::string> client_address_;
  // Listeners with proxy_protocol: parses the header, then keeps the address it reported (freed
  // when there is none).
  std::unique_ptr<ProxyHeaderParser> proxy_;
  std::uint64_t timer_request_ = 0;  // parser_.responses() when read_timer_ was armed
  common::Millis body_started_ = 0;  // when the body of the request in progress began
  // End of a lingering close or of a refused body's discard (lingering_time after its start).
  common::Millis linger_deadline_ = 0;
  std::uint64_t linger_bytes_ = 0;
  // Edge-triggered: readable until recv() returns less than asked for (the socket is drained;
  // new data brings a new edge) or EAGAIN.
  bool input_pending_ = true;
  bool eof_pending_ = false;  // EPOLLRDHUP/HUP/ERR seen: read on until recv() reports it
  bool peer_closed_ = false;
  bool lingering_ = false;
  bool want_resume_ = false;
  bool body_progress_ = false;
  std::uint64_t request_started_us_ = 0;  // monotonic_us() of the current request's first read
  bool busy_ = false;
  bool forwarded_trusted_ = false;  // the client is a trusted proxy: forwarding headers count
};

}  // namespace prefork::worker
