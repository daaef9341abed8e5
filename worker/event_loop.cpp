#include "worker/event_loop.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>

#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "common/sys_error.hpp"

namespace prefork::worker {
namespace {

constexpr common::Millis kHeartbeatMs = 1000;  // the master watches the heartbeat
constexpr int kAcceptsPerWake = 64;

void epoll_add(int epoll_fd, int fd, std::uint32_t events, EpollSource* source) {
  epoll_event event{};
  event.events = events;
  event.data.ptr = source;
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0)
    throw common::SysError("epoll_ctl(ADD)");
}

}  // namespace

EventLoop::EventLoop(const common::ChildContext& ctx)
    : config_(ctx.config),
      slot_(ctx.slot),
      blocked_(common::child_signals()),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      shared_(ctx, nullptr),
      services_(ctx, shared_) {
  if (!epoll_) throw common::SysError("epoll_create1");
  shared_.batch.reserve(WorkerShared::kReadBufferSize);
  common::ignore_sigpipe();
  signal_fd_ = common::open_signalfd(common::child_signals());
  epoll_add(epoll_.get(), signal_fd_.get(), EPOLLIN, &signal_source_);
  for (const common::Listener& listener : ctx.listeners) {
    listeners_.push_back(
        std::make_unique<ListenerEntry>(listener.fd.get(), listener.proxy_protocol));
  }
  set_accepting(true);
}

EventLoop::~EventLoop() {
  for (auto& connection : connections_) connection->close();
}

int EventLoop::run() {
  publish_state();
  while (!finished()) {
    const int n = ::epoll_wait(epoll_.get(), events_.data(), kMaxEvents, next_timeout());
    if (n < 0) {
      // Our signals come through the signalfd, so EINTR means this process was stopped and
      // continued (SIGSTOP/SIGCONT, signal(7)). Look again before the timers: a request that
      // came in while we could not run is in a socket, and expiring the connection's
      // keep-alive or drain timer first would close it under that request.
      if (errno == EINTR) continue;
      spdlog::error("epoll_wait: {}", common::errno_text(errno));
      return common::kExitFailure;
    }
    shared_.now = common::monotonic_ms();
    shared_.prepared.responses.set_date(static_cast<std::time_t>(common::wall_ms() / 1000));
    for (int i = 0; i < n && !stopping_; ++i) handle(events_[static_cast<std::size_t>(i)]);
    if (stopping_) break;
    run_ready_list();
    expire_timers();
    services_.tick(shared_.now);
    update_accepting();
    closed_.clear();
    publish_state();
  }
  services_.flush();
  spdlog::info("worker exiting ({} connections open)", connections_.size());
  return common::kExitOk;
}

bool EventLoop::finished() const {
  if (stopping_) return true;
  if (!shared_.draining) return false;
  return connections_.empty();
}

void EventLoop::handle(const epoll_event& event) {
  auto* source = static_cast<EpollSource*>(event.data.ptr);
  switch (source->kind) {
    case EpollSource::Kind::kSignal: read_signals(); break;
    case EpollSource::Kind::kListener: accept_from(*static_cast<ListenerEntry*>(source)); break;
    case EpollSource::Kind::kConnection: {
      auto& connection = *static_cast<Connection*>(source);
      if (!connection.closed()) after_service(connection, connection.on_ready(event.events));
      break;
    }
  }
}

void EventLoop::read_signals() {
  if (services_.read_signals(signal_fd_.get(), [this] { start_drain(); })) stopping_ = true;
}

void EventLoop::start_drain() {
  if (shared_.draining) return;
  spdlog::info("SIGQUIT: draining {} connections", connections_.size());
  shared_.draining = true;
  set_accepting(false);
  std::vector<Connection*> open;
  open.reserve(connections_.size());
  for (auto& connection : connections_) open.push_back(connection.get());
  for (Connection* connection : open) after_service(*connection, connection->on_drain());
}

void EventLoop::accept_from(ListenerEntry& listener) {
  for (int i = 0; i < kAcceptsPerWake && listener.registered; ++i) {
    if (connections_.size() >= config_.max_connections) {
      // At the cap, clients wait in the kernel backlog; we never accept only to close.
      stop_accepting_at_capacity();
      return;
    }
    common::Accepted client;
    switch (acceptor_.accept(listener.fd, shared_.now, client)) {
      case common::AcceptResult::kAccepted:
        add_connection(std::move(client.fd), client.peer_address(), listener.proxy_protocol);
        break;
      case common::AcceptResult::kClientGone: break;  // the next one may be fine
      case common::AcceptResult::kEmpty: return;
      case common::AcceptResult::kPaused: set_accepting(false); return;
    }
  }
}

// Counted once each time the worker fills up, for the saturation metrics.
void EventLoop::stop_accepting_at_capacity() {
  const bool accepting = std::any_of(listeners_.begin(), listeners_.end(),
                                     [](const auto& listener) { return listener->registered; });
  if (accepting && shared_.served != nullptr) {
    shared_.served->at_capacity.fetch_add(1, std::memory_order_relaxed);
  }
  set_accepting(false);
}

void EventLoop::set_accepting(bool on) {
  for (auto& listener : listeners_) {
    if (listener->registered == on) continue;
    if (on) {
      // EPOLLEXCLUSIVE: one waiting worker wakes per new connection, not all of them.
      epoll_event event{};
      event.events = EPOLLIN | EPOLLEXCLUSIVE;
      event.data.ptr = listener.get();
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener->fd, &event) != 0) {
        spdlog::error("epoll_ctl(ADD listener): {}", common::errno_text(errno));
        continue;
      }
    } else {
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener->fd, nullptr);
    }
    listener->registered = on;
  }
}

void EventLoop::update_accepting() {
  if (shared_.draining) return;
  if (connections_.size() >= config_.max_connections) return stop_accepting_at_capacity();
  set_accepting(!acceptor_.paused(shared_.now));
}

void EventLoop::add_connection(common::UniqueFd fd, const sockaddr* peer, bool proxy_protocol) {
  std::unique_ptr<Connection> connection;
  try {
    connection = std::make_unique<Connection>(std::move(fd), shared_, peer, proxy_protocol);
    connections_.reserve(connections_.size() + 1);
  } catch (const std::bad_alloc&) {
    return setup_failed("allocating a connection", ENOMEM);  // the socket closed with it
  }
  connection->index = connections_.size();
  if (shared_.served != nullptr)
    shared_.served->connections.fetch_add(1, std::memory_order_relaxed);
  Connection& added = *connection;
  connections_.push_back(std::move(connection));
  // TCP_DEFER_ACCEPT: the request is usually there already, and a connection-per-request client
  // is often served completely (read, answered, closed) in this first pass. Only a connection
  // that outlives it is registered with epoll, which saves two epoll updates per such client.
  // Registering late loses no wake-up: EPOLL_CTL_ADD reports readiness that is already there,
  // edge-triggered or not.
  bool keep = added.resume();
  if (keep) {
    epoll_event event{};
    event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    event.data.ptr = static_cast<EpollSource*>(&added);  // what handle() casts back
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, added.fd(), &event) != 0) {
      setup_failed("epoll_ctl(ADD)", errno);
      keep = false;
    }
  }
  after_service(added, keep);
}

// One connection could not be set up (ENOMEM, ENOSPC from epoll's per-user watch limit): that
// one is closed and counted; the worker and its other connections go on.
void EventLoop::setup_failed(const char* what, int err) {
  ++shared_.connection_setup_errors;
  if (shared_.client_log.allow(shared_.now)) {
    spdlog::warn("{}: {}; closed that connection ({} such so far in this worker)", what,
                 common::errno_text(err), shared_.connection_setup_errors);
  }
}

void EventLoop::after_service(Connection& connection, bool keep) {
  if (!keep) return close_connection(connection);
  if (connection.wants_resume() && !connection.in_ready_list) {
    connection.in_ready_list = true;
    ready_.push_back(&connection);
  }
}

void EventLoop::close_connection(Connection& connection) {
  connection.close();
  if (connection.in_ready_list) {
    // Not in ready_ while run_ready_list() holds it in its batch: that batch skips closed ones.
    if (auto it = std::find(ready_.begin(), ready_.end(), &connection); it != ready_.end()) {
      ready_.erase(it);
    }
    connection.in_ready_list = false;
  }
  const std::size_t index = connection.index;
  std::swap(connections_[index], connections_.back());
  connections_[index]->index = index;
  closed_.push_back(std::move(connections_.back()));  // events of this pass may still name it
  connections_.pop_back();
}

void EventLoop::run_ready_list() {
  std::vector<Connection*> batch;
  batch.swap(ready_);
  for (Connection* connection : batch) {
    if (connection->closed()) continue;
    connection->in_ready_list = false;
    after_service(*connection, connection->resume());
  }
  // Keep the larger buffer for the next pass, emptied: its entries were all just served.
  if (ready_.empty() && ready_.capacity() < batch.capacity()) {
    batch.clear();
    batch.swap(ready_);
  }
}

void EventLoop::expire_timers() {
  for (TimerList* list : shared_.timer_lists()) expire(*list);
}

void EventLoop::expire(TimerList& list) {
  while (TimerNode* node = list.pop_expired(shared_.now)) {
    auto& connection = *static_cast<Connection*>(node->owner);
    if (!connection.closed()) after_service(connection, connection.on_timer(list));
  }
}

int EventLoop::next_timeout() const {
  if (!ready_.empty()) return 0;
  const common::Millis now = common::monotonic_ms();
  common::Millis deadline = now + kHeartbeatMs;
  if (const auto next = shared_.next_deadline()) deadline = std::min(deadline, *next);
  if (!shared_.draining && acceptor_.paused(now)) {
    deadline = std::min(deadline, acceptor_.paused_until());
  }
  return static_cast<int>(std::max<common::Millis>(0, deadline - now));
}

void EventLoop::publish_state() {
  if (slot_ == nullptr) return;
  slot_->beat();
  const common::WorkerState state = shared_.draining   ? common::WorkerState::kDraining
                                    : shared_.busy > 0 ? common::WorkerState::kBusy
                                                       : common::WorkerState::kIdle;
  if (state != published_state_) {
    published_state_ = state;
    slot_->set_state(state);
  }
  if (connections_.size() != published_connections_) {
    published_connections_ = connections_.size();
    slot_->connections.store(static_cast<std::uint32_t>(published_connections_),
                             std::memory_order_relaxed);
  }
}

}  // namespace prefork::worker
