#include "worker/connection.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "common/listeners.hpp"
#include "common/log.hpp"
#include "worker/access_log.hpp"
#include "worker/backend.hpp"
#include "worker/forwarded.hpp"
#include "worker/observability.hpp"

namespace prefork::worker {
namespace {

bool equals_lower(std::string_view name, std::string_view lower) {
  return name.size() == lower.size() &&
         std::equal(name.begin(), name.end(), lower.begin(), [](char a, char b) {
           return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
         });
}

// A worker counts in its slot; a per-connection child, which has none, in the header.
common::ServedCounters* served_counters(const common::ChildContext& ctx) {
  if (ctx.slot != nullptr) return &ctx.slot->served;
  return ctx.scoreboard != nullptr ? &ctx.scoreboard->header().retired : nullptr;
}

// Who answers, when something shows it (identity_header, ?echo): it costs a gethostname() and
// a few allocations, per connection in per-connection mode.
std::string shown_identity(const common::ChildContext& ctx) {
  return shows_identity(ctx.config) ? identity_of(ctx) : std::string();
}

constexpr int kReadsPerBatch = 8;    // recv() calls between two flushes
constexpr int kBatchesPerPass = 4;   // then other connections get their turn
constexpr int kMaxLingerReads = 64;  // per pass: then other connections get their turn
// The shared batch shrinks above this.
constexpr std::size_t kMaxBatchCapacity = std::size_t{256} * 1024;

}  // namespace

bool shows_identity(const common::Config& config) {
  return !config.identity_header.empty() || config.switches;
}

PreparedConfig::PreparedConfig(const common::Config& config, std::string identity)
    : limits(Limits::from(config)),
      router(limits),
      responses(static_cast<std::time_t>(common::wall_ms() / 1000),
                ResponseSettings::from(config, std::move(identity))) {}

// read_buffer is left uninitialized on purpose (see its declaration).
// NOLINTNEXTLINE(cppcoreguidelines-pro-type-member-init)
[[gnu::hot]] WorkerShared::WorkerShared(const common::ChildContext& ctx, PreparedConfig* given)
    : config(ctx.config),
      own_prepared(given != nullptr
                       ? nullptr
                       : std::make_unique<PreparedConfig>(ctx.config, shown_identity(ctx))),
      prepared(given != nullptr ? *given : *own_prepared),
      header_timers(ctx.config.header_timeout),
      body_timers(ctx.config.body_timeout),
      keepalive_timers(ctx.config.keepalive_timeout),
      send_timers(ctx.config.send_timeout),
      linger_timers(ctx.config.lingering_timeout),
      drain_timers(std::min(ctx.config.drain_idle_grace, ctx.config.graceful_timeout)),
      lingering_time(ctx.config.lingering_time),
      body_min_rate(ctx.config.body_min_rate),
      served(served_counters(ctx)) {}

[[gnu::hot]] WorkerShared::~WorkerShared() = default;

std::optional<common::Millis> WorkerShared::next_deadline() const noexcept {
  std::optional<common::Millis> first;
  for (const TimerList* list : timer_lists()) {
    if (const auto next = list->next_deadline()) first = first ? std::min(*first, *next) : *next;
  }
  return first;
}

[[gnu::hot]] Connection::Connection(common::UniqueFd fd, WorkerShared& shared, const sockaddr* peer,
                                    bool proxy_protocol)
    : EpollSource(Kind::kConnection),
      fd_(std::move(fd)),
      shared_(shared),
      parser_(shared.prepared.limits, shared.prepared.responses, &shared.prepared.router) {
  if (shared_.observability != nullptr || shared_.access_log != nullptr ||
      shared_.prepared.limits.switches) {
    parser_.set_handler(this, shared_.access_log != nullptr);
  }
  if (shared_.access_log != nullptr) {
    client_address_ = std::make_unique<std::string>(peer != nullptr ? common::format_ip(peer)
                                                                    : peer_address_text(fd_.get()));
  }
  if (proxy_protocol) {
    proxy_ = std::make_unique<ProxyHeaderParser>();  // trust is decided once the header is in
  } else if (shared_.trusted_proxies != nullptr) {
    decide_forwarding_trust(peer);
  }
  if (shared_.draining) parser_.drain();
  update_state();
}

[[gnu::hot]] Connection::~Connection() {
  close();
}

[[gnu::hot]] void Connection::close() noexcept {
  shared_.batch.clear();  // only ever this connection's: every other one flushed its own
  read_timer_.cancel();
  send_timer_.cancel();
  delay_timer_.cancel();
  if (busy_) --shared_.busy;
  busy_ = false;
  fd_.reset();
}

bool Connection::on_ready(std::uint32_t events) {
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) input_pending_ = true;
  if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) eof_pending_ = true;
  return service();
}

[[gnu::hot]] bool Connection::resume() {
  want_resume_ = false;
  return service();
}

bool Connection::on_timer(const TimerList& list) {
  if (&list == &shared_.delay_timers) return release_delayed();
  if (lingering_) return false;  // the lingering close is over
  if (&list == &shared_.drain_timers) {
    // Draining, and no request came within the grace: close, still lingering a moment in
    // case one crosses our FIN, so that it meets an orderly end rather than a reset.
    return start_linger(shared_.drain_timers, shared_.drain_timers.duration());
  }
  if (awaiting_proxy_header()) {
    proxy_header_failed("no complete PROXY protocol header within header_timeout");
    return false;
  }
  if (&list == &shared_.header_timers || &list == &shared_.body_timers) {
    // A request in progress gets its 408; an idle connection just ends.
    if (parser_.time_out(shared_.batch)) {
      count_responses(1);
      input_pending_ = false;
      return service();
    }
  }
  return false;  // keep-alive, send and discard timeouts: drop the connection
}

bool Connection::release_delayed() {
  const std::uint64_t before = parser_.responses();
  parser_.release(shared_.batch);
  if (parser_.responses() != before) count_responses(parser_.responses() - before);
  input_pending_ = true;  // reading stopped during the delay: look again
  return service();
}

bool Connection::on_drain() {
  parser_.drain();
  input_pending_ = true;  // look once more: a request may be waiting in the socket
  return service();
}

bool Connection::can_read() const noexcept {
  // A delayed request holds what follows it in the socket, where the kernel keeps it.
  return input_pending_ && !peer_closed_ && !parser_.closing() &&
         parser_.phase() != Phase::kDelayed && backlog() <= kMaxBacklog;
}

// Alternates flushing and reading until the socket has nothing more for us, the client has to
// catch up with our output, or this connection's share of the pass is used up.
[[gnu::hot]] bool Connection::service() {
  for (int batch = 0;; ++batch) {
    if (!flush()) return false;
    if (lingering_) return linger();
    if (backlog() == 0) {
      if (parser_.closing()) {
        // A clean end (whole request read, nothing after it) needs no lingering. When we chose
        // to close (keepalive_requests, drain), a pipelined request may be in flight: look at
        // the socket once. A client that said close sends nothing more, so that look (a
        // syscall per connection-per-request client) is skipped, as nginx skips it.
        if (parser_.unread_input() || (!parser_.client_closes() && input_waiting())) {
          return start_linger(shared_.linger_timers, shared_.lingering_time);
        }
        return false;
      }
      if (peer_closed_) return false;
      // Draining, an idle connection stays for drain_idle_grace (update_state): a request may
      // be on its way, and closing under it would reset it.
    }
    if (parser_.discarding_body() && shared_.now >= linger_deadline_) return false;
    if (!input_pending_ && parser_.refused_body_pending()) {
      // All the socket had is read and the body of a request we refuse is still to come: answer
      // now rather than after a body that may be trickled; the rest of it is then discarded
      // for at most lingering_time.
      parser_.answer_refused(shared_.batch);
      linger_deadline_ = shared_.now + shared_.lingering_time;
      continue;
    }
    if (!can_read()) break;
    if (batch == kBatchesPerPass) {
      want_resume_ = true;
      break;
    }
    if (!read_batch()) return false;
  }
  update_state();
  return true;
}

[[gnu::hot]] bool Connection::read_batch() {
  for (int i = 0; i < kReadsPerBatch && can_read(); ++i) {
    const ssize_t n = ::recv(fd_.get(), shared_.read_buffer.data(), shared_.read_buffer.size(), 0);
    if (n > 0) {
      const auto got = static_cast<std::size_t>(n);
      if (!feed(shared_.read_buffer.data(), got)) return false;
      // A short read drained the socket: another recv() would only say EAGAIN. More data, or
      // the FIN, raises a new edge (EPOLLRDHUP already seen means the EOF is still to read).
      if (got < shared_.read_buffer.size() && !eof_pending_) input_pending_ = false;
    } else if (n == 0) {
      // A probe that connects and closes sent nothing: only a cut-off header counts as an error.
      if (awaiting_proxy_header() && proxy_->received() != 0) {
        proxy_header_failed("connection closed inside the PROXY protocol header");
      }
      peer_closed_ = true;
      input_pending_ = false;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      input_pending_ = false;
    } else if (errno != EINTR) {
      return false;  // ECONNRESET and the like: nobody left to answer
    }
  }
  return true;
}

// Before the first HTTP byte on a proxy_protocol listener: consumes the header's bytes.
bool Connection::feed_proxy_header(const char*& data, std::size_t& length) {
  std::size_t used = 0;
  const ProxyHeaderParser::Status status = proxy_->feed(std::string_view(data, length), used);
  data += used;
  length -= used;
  if (status == ProxyHeaderParser::Status::kInvalid) {
    proxy_header_failed("invalid PROXY protocol header");
    return false;
  }
  if (status == ProxyHeaderParser::Status::kNeedMore) return true;
  if (proxy_->has_source()) {
    if (client_address_) *client_address_ = common::format_ip(proxy_->source());
  } else {
    proxy_.reset();  // LOCAL or UNKNOWN: the TCP peer is the client
  }
  if (shared_.trusted_proxies != nullptr) decide_forwarding_trust(proxied_source());
  return true;
}

void Connection::proxy_header_failed(const char* why) {
  ++shared_.proxy_protocol_errors;
  if (shared_.client_log.allow(shared_.now)) {
    spdlog::debug("{} from {}; closing the connection ({} such lines skipped)", why,
                  peer_address_text(fd_.get()), shared_.client_log.suppressed());
  }
  proxy_.reset();
}

// `client`: the connection's client address (nullptr: the socket's peer).
void Connection::decide_forwarding_trust(const sockaddr* client) {
  sockaddr_storage storage{};
  if (client == nullptr) {
    socklen_t length = sizeof storage;
    if (::getpeername(fd_.get(), reinterpret_cast<sockaddr*>(&storage), &length) != 0) return;
    client = reinterpret_cast<const sockaddr*>(&storage);
  }
  forwarded_trusted_ = common::any_contains(*shared_.trusted_proxies, client);
  parser_.capture_forwarded(forwarded_trusted_);
}

[[gnu::hot]] bool Connection::feed(const char* data, std::size_t length) {
  if (awaiting_proxy_header()) {
    if (!feed_proxy_header(data, length)) return false;
    if (length == 0) return true;
  }
  const std::uint64_t before = parser_.responses();
  const bool in_body = parser_.phase() == Phase::kBody;
  // A request's time runs from the read that brought its first bytes (nginx's $request_time).
  if (parser_.phase() == Phase::kIdle && length > 0) request_started_us_ = common::monotonic_us();
  parser_.feed(std::string_view(data, length), shared_.batch);
  if (in_body || parser_.phase() == Phase::kBody) body_progress_ = true;
  if (parser_.responses() != before) count_responses(parser_.responses() - before);
  return true;
}

// Counts responses just produced, each timed from its request's first read. Requests answered
// in one pass share its end; a request still in progress after it started there.
void Connection::count_responses(std::uint64_t count) {
  if (shared_.served == nullptr) return;
  const std::uint64_t now = common::monotonic_us();
  shared_.served->requests.fetch_add(count, std::memory_order_relaxed);
  shared_.served->record_duration(now - std::min(now, request_started_us_), count);
  request_started_us_ = now;
}

ssize_t Connection::send_some(const char* data, std::size_t length, int flags) {
  std::size_t done = 0;
  while (done < length) {
    const ssize_t n = ::send(fd_.get(), data + done, length - done, MSG_NOSIGNAL | flags);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else if (errno != EINTR) {
      return -1;  // EPIPE, ECONNRESET
    }
  }
  return static_cast<ssize_t>(done);
}

// One send() for everything queued; a partial write waits for EPOLLOUT under send_timeout.
[[gnu::hot]] bool Connection::flush() {
  std::string& batch = shared_.batch;
  const char* data = nullptr;
  std::size_t length = 0;
  const bool direct = !batch.empty() && out_.size() == sent_;
  if (direct) {
    // The usual case: the batch goes out where it lies.
    data = batch.data();
    length = batch.size();
  } else {
    if (!batch.empty()) out_.append(batch);
    batch.clear();
    data = out_.data() + sent_;
    length = out_.size() - sent_;
  }
  if (length == 0) return true;
  // The connection's last output (the parser is closing) is held back as MSG_MORE: the close()
  // or shutdown() that follows at once tacks its FIN onto that segment, so the client receives
  // the response and the end in one segment and one wake-up, instead of the FIN chasing the
  // data into a client that is already reading it (one packet and one ACK fewer per connection;
  // the cost of a connection per request).
  const ssize_t n = send_some(data, length, parser_.closing() ? MSG_MORE : 0);
  if (n < 0) return false;
  const auto sent = static_cast<std::size_t>(n);
  if (direct) {
    if (sent < length) out_.assign(data + sent, length - sent);  // only what is left
    sent_ = 0;
    batch.clear();
    if (batch.capacity() > kMaxBatchCapacity) std::string().swap(batch);
  } else {
    sent_ += sent;
  }
  if (out_.size() != sent_) {
    if (sent != 0 || !send_timer_.armed()) shared_.send_timers.arm(send_timer_, shared_.now);
    return true;
  }
  send_timer_.cancel();
  std::string().swap(out_);  // an idle connection keeps no output buffer
  sent_ = 0;
  return true;
}

EndpointReply Connection::respond(const EndpointRequest& request, std::string& out) {
  return shared_.observability->respond(request, fd_.get(), proxied_source(), out);
}

EndpointReply Connection::respond_backend(const BackendRequest& request, const Responses& responses,
                                          std::string& out) {
  ConnectionFacts facts;
  if (request.switches.echo) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    const auto* address = reinterpret_cast<const sockaddr*>(&peer);
    if (::getpeername(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &length) == 0) {
      facts.peer = common::format_address(address, length);
    } else {
      address = nullptr;
    }
    facts.client = echo_client(address);
  }
  return answer_backend(request, responses, facts, out);
}

// As the access log decides it (on_response), from the headers the echo captured.
std::string Connection::echo_client(const sockaddr* peer) const {
  const sockaddr* client = proxied_source() != nullptr ? proxied_source() : peer;
  if (client == nullptr) return "-";
  const std::vector<common::Cidr>& trusted = shared_.config.trusted_proxies;
  if (!trusted.empty() && common::any_contains(trusted, client)) {
    std::string x_forwarded_for;
    std::string forwarded;
    const std::vector<std::string>& headers = parser_.echo_headers();
    for (std::size_t i = 0; i + 1 < headers.size(); i += 2) {
      std::string* list = equals_lower(headers[i], "x-forwarded-for") ? &x_forwarded_for
                          : equals_lower(headers[i], "forwarded")     ? &forwarded
                                                                      : nullptr;
      if (list == nullptr) continue;
      if (!list->empty()) *list += ',';
      *list += headers[i + 1];
    }
    std::optional<sockaddr_storage> resolved;
    if (!x_forwarded_for.empty()) {
      resolved = client_from_x_forwarded_for(x_forwarded_for, trusted);
    } else if (!forwarded.empty()) {
      resolved = client_from_forwarded(forwarded, trusted);
    }
    if (resolved) return common::format_ip(reinterpret_cast<const sockaddr*>(&*resolved));
  }
  return common::format_ip(client);
}

void Connection::on_response(const RequestParser& parser, int status, std::uint64_t body_bytes) {
  if (forwarded_trusted_) {
    // X-Forwarded-For first (what nginx and HAProxy add); Forwarded only without it. A value
    // we cannot trust leaves the connection's own client address.
    std::optional<sockaddr_storage> client;
    if (!parser.x_forwarded_for().empty()) {
      client = client_from_x_forwarded_for(parser.x_forwarded_for(), *shared_.trusted_proxies);
    } else if (!parser.forwarded().empty()) {
      client = client_from_forwarded(parser.forwarded(), *shared_.trusted_proxies);
    }
    if (client) {
      const std::string text = common::format_ip(reinterpret_cast<const sockaddr*>(&*client));
      shared_.access_log->log(text, parser, status, body_bytes, request_duration_us());
      return;
    }
  }
  shared_.access_log->log(*client_address_, parser, status, body_bytes, request_duration_us());
}

bool Connection::input_waiting() const noexcept {
  char byte = 0;
  return ::recv(fd_.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

// After the last response is with the kernel: half-close (the client reads every response,
// then EOF), and read and discard until the client closes, for at most `duration` in all,
// `timers`' duration for each read, and kMaxLingerBytes (RFC 9112 §9.6; nginx's lingering
// close). Closing at once with unread input would send a reset that destroys the responses the
// client has not read yet.
bool Connection::start_linger(TimerList& timers, common::Millis duration) {
  if (::shutdown(fd_.get(), SHUT_WR) != 0) return false;
  lingering_ = true;
  input_pending_ = true;
  linger_deadline_ = shared_.now + duration;
  linger_bytes_ = 0;
  timers.arm(read_timer_, shared_.now);
  update_state();
  return linger();
}

bool Connection::linger() {
  if (shared_.now >= linger_deadline_) return false;
  bool got = false;
  for (int i = 0; i < kMaxLingerReads; ++i) {
    const ssize_t n = ::recv(fd_.get(), shared_.read_buffer.data(), shared_.read_buffer.size(), 0);
    if (n > 0) {
      got = true;
      linger_bytes_ += static_cast<std::uint64_t>(n);
      if (linger_bytes_ > kMaxLingerBytes) return false;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (got && read_timer_.list != nullptr) rearm_within(*read_timer_.list, linger_deadline_);
      return true;
    }
    return false;  // EOF or error: done
  }
  // Still more: go on in the next pass, after the other connections had their turn.
  if (read_timer_.list != nullptr) rearm_within(*read_timer_.list, linger_deadline_);
  want_resume_ = true;
  return true;
}

void Connection::rearm_within(TimerList& list, common::Millis deadline) {
  if (!read_timer_.armed() || shared_.now + list.duration() <= deadline) {
    list.arm(read_timer_, shared_.now);
  }
}

// The body so far arrived at body_min_rate or faster: body_timeout after the body began, plus
// a second per body_min_rate bytes (Apache mod_reqtimeout's MinRate), is not over yet.
bool Connection::body_on_pace() const noexcept {
  if (shared_.body_min_rate == 0) return true;
  const auto elapsed = static_cast<double>(shared_.now - body_started_);
  return elapsed * static_cast<double>(shared_.body_min_rate) <=
         static_cast<double>(parser_.body_bytes()) * 1000.0;
}

// Picks the timer that governs the connection now, and keeps the worker's busy count.
[[gnu::hot]] void Connection::update_state() {
  if (!lingering_) {
    TimerList* want = nullptr;
    const bool reading = !parser_.closing() && !peer_closed_ && backlog() <= kMaxBacklog;
    if (reading) {
      switch (parser_.phase()) {
        case Phase::kHead: want = &shared_.header_timers; break;
        case Phase::kBody:
          want = parser_.discarding_body() ? &shared_.linger_timers : &shared_.body_timers;
          break;
        case Phase::kIdle:
          // While a response is still going out, send_timeout governs alone.
          if (backlog() == 0) {
            want = shared_.draining           ? &shared_.drain_timers
                   : parser_.responses() == 0 ? &shared_.header_timers
                                              : &shared_.keepalive_timers;
          }
          break;
        case Phase::kDelayed:
        case Phase::kClosing: break;
      }
    }
    if (want == nullptr) {
      read_timer_.cancel();
    } else if (read_timer_.list != want || timer_request_ != parser_.responses()) {
      want->arm(read_timer_, shared_.now);
      timer_request_ = parser_.responses();
      if (want == &shared_.body_timers) body_started_ = shared_.now;
    } else if (body_progress_) {
      // Progress restarts the body timer only while the body keeps to body_min_rate, and a
      // discard's only within lingering_time: a trickle cannot hold the connection for ever.
      if (want == &shared_.linger_timers) {
        rearm_within(shared_.linger_timers, linger_deadline_);
      } else if (body_on_pace()) {
        want->arm(read_timer_, shared_.now);
      }
    }
  }
  body_progress_ = false;
  if (parser_.phase() == Phase::kDelayed && !delay_timer_.armed()) {
    // One millisecond more: `now` is whole milliseconds, cut down, so without it the answer
    // could leave up to a millisecond before the delay asked for is over.
    shared_.delay_timers.arm_at(delay_timer_, shared_.now + parser_.delay() + 1);
  }
  const bool busy = !lingering_ && (parser_.phase() != Phase::kIdle || backlog() != 0);
  if (busy != busy_) {
    busy_ = busy;
    busy ? ++shared_.busy : --shared_.busy;
  }
}

}  // namespace prefork::worker
