#include "worker/connection.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>

namespace prefork::worker {
namespace {

constexpr int kReadsPerBatch = 8;    // recv() calls between two flushes
constexpr int kBatchesPerPass = 4;   // then other connections get their turn
constexpr int kMaxLingerReads = 64;  // a client still flooding us after that is cut off
constexpr std::size_t kIdleCapacity = 64 * 1024;  // keep at most this much buffer while idle

}  // namespace

WorkerShared::WorkerShared(const common::Config& config, common::ScoreboardSlot* scoreboard_slot)
    : limits(Limits::from(config)),
      responses(static_cast<std::time_t>(common::wall_ms() / 1000)),
      header_timers(config.header_timeout),
      body_timers(config.body_timeout),
      keepalive_timers(config.keepalive_timeout),
      send_timers(config.send_timeout),
      linger_timers(kLingerMs),
      slot(scoreboard_slot) {}

Connection::Connection(common::UniqueFd fd, WorkerShared& shared)
    : EpollSource(Kind::kConnection),
      fd_(std::move(fd)),
      shared_(shared),
      parser_(shared.limits, shared.responses) {
  if (shared_.draining) parser_.drain();
  update_state();
}

Connection::~Connection() {
  close();
}

void Connection::close() noexcept {
  read_timer_.cancel();
  send_timer_.cancel();
  if (busy_) --shared_.busy;
  busy_ = false;
  fd_.reset();
}

bool Connection::on_ready(std::uint32_t events) {
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) input_pending_ = true;
  return service();
}

bool Connection::resume() {
  want_resume_ = false;
  return service();
}

bool Connection::on_timer(const TimerList& list) {
  if (&list == &shared_.header_timers || &list == &shared_.body_timers) {
    // A request in progress gets its 408; an idle connection just ends.
    if (parser_.time_out(out_)) {
      if (shared_.slot != nullptr) shared_.slot->requests.fetch_add(1, std::memory_order_relaxed);
      input_pending_ = false;
      return service();
    }
  }
  return false;  // keep-alive, send and linger timeouts: drop the connection
}

bool Connection::on_drain() {
  parser_.drain();
  input_pending_ = true;  // look once more: a request may be waiting in the socket
  return service();
}

bool Connection::can_read() const noexcept {
  return input_pending_ && !peer_closed_ && !parser_.closing() && backlog() <= kMaxBacklog;
}

// Alternates flushing and reading until the socket has nothing more for us, the client has to
// catch up with our output, or this connection's share of the pass is used up.
bool Connection::service() {
  for (int batch = 0;; ++batch) {
    if (!flush()) return false;
    if (lingering_) return linger();
    if (backlog() == 0) {
      if (parser_.closing()) {
        // A clean end (whole request read, nothing after it) needs no lingering.
        if (parser_.unread_input() || input_waiting()) return start_linger();
        return false;
      }
      if (peer_closed_) return false;
      if (shared_.draining && parser_.phase() == Phase::kIdle && !input_pending_) return false;
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

bool Connection::read_batch() {
  for (int i = 0; i < kReadsPerBatch && can_read(); ++i) {
    const ssize_t n = ::recv(fd_.get(), shared_.read_buffer.data(), shared_.read_buffer.size(), 0);
    if (n > 0) {
      feed(shared_.read_buffer.data(), static_cast<std::size_t>(n));
    } else if (n == 0) {
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

void Connection::feed(const char* data, std::size_t length) {
  const std::uint64_t before = parser_.responses();
  const bool in_body = parser_.phase() == Phase::kBody;
  parser_.feed(std::string_view(data, length), out_);
  if (in_body || parser_.phase() == Phase::kBody) body_progress_ = true;
  if (shared_.slot != nullptr && parser_.responses() != before) {
    shared_.slot->requests.fetch_add(parser_.responses() - before, std::memory_order_relaxed);
  }
}

// One send() for everything queued; a partial write waits for EPOLLOUT under send_timeout.
bool Connection::flush() {
  bool progress = false;
  while (sent_ < out_.size()) {
    const ssize_t n = ::send(fd_.get(), out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL);
    if (n >= 0) {
      sent_ += static_cast<std::size_t>(n);
      progress = true;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (progress || !send_timer_.armed()) shared_.send_timers.arm(send_timer_, shared_.now);
      return true;
    } else if (errno != EINTR) {
      return false;  // EPIPE, ECONNRESET
    }
  }
  send_timer_.cancel();
  if (sent_ != 0) {
    out_.clear();
    sent_ = 0;
  }
  if (out_.capacity() > kIdleCapacity) std::string().swap(out_);
  return true;
}

bool Connection::input_waiting() const noexcept {
  char byte;
  return ::recv(fd_.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

// After the last response: stop sending, and read until the client closes or kLingerMs.
bool Connection::start_linger() {
  if (::shutdown(fd_.get(), SHUT_WR) != 0) return false;
  lingering_ = true;
  input_pending_ = true;
  shared_.linger_timers.arm(read_timer_, shared_.now);
  update_state();
  return linger();
}

bool Connection::linger() {
  for (int i = 0; i < kMaxLingerReads; ++i) {
    const ssize_t n = ::recv(fd_.get(), shared_.read_buffer.data(), shared_.read_buffer.size(), 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;  // EOF or error: done
  }
  return false;
}

// Picks the timer that governs the connection now, and keeps the worker's busy count.
void Connection::update_state() {
  if (!lingering_) {
    TimerList* want = nullptr;
    const bool reading = !parser_.closing() && !peer_closed_ && backlog() <= kMaxBacklog;
    if (reading) {
      switch (parser_.phase()) {
        case Phase::kHead: want = &shared_.header_timers; break;
        case Phase::kBody: want = &shared_.body_timers; break;
        case Phase::kIdle:
          // While a response is still going out, send_timeout governs alone.
          if (backlog() == 0) {
            want = parser_.responses() == 0 ? &shared_.header_timers : &shared_.keepalive_timers;
          }
          break;
        case Phase::kClosing: break;
      }
    }
    if (want == nullptr) {
      read_timer_.cancel();
    } else if (read_timer_.list != want || timer_request_ != parser_.responses() ||
               (want == &shared_.body_timers && body_progress_)) {
      want->arm(read_timer_, shared_.now);
      timer_request_ = parser_.responses();
    }
  }
  body_progress_ = false;
  const bool busy = !lingering_ && (parser_.phase() != Phase::kIdle || backlog() != 0);
  if (busy != busy_) {
    busy_ = busy;
    busy ? ++shared_.busy : --shared_.busy;
  }
}

}  // namespace prefork::worker
