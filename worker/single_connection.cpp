#include "worker/single_connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>

#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "common/signals.hpp"
#include "common/sys_error.hpp"
#include "worker/child_services.hpp"
#include "worker/connection.hpp"

namespace prefork::worker {
namespace {

constexpr common::Millis kHeartbeatMs = 1000;  // only with a scoreboard slot (tests)

// Connection is written for edge-triggered epoll: it reads until the socket is drained and then
// waits for a new edge. poll() is level-triggered, so the loop asks only for what the connection
// waits for (Connection::wants_input / wants_output), which makes a level the same news an edge
// would have been; revents become the epoll bits Connection::on_ready understands.
std::uint32_t as_epoll_events(short revents) {
  std::uint32_t events = 0;
  if ((revents & POLLIN) != 0) events |= EPOLLIN;
  if ((revents & POLLOUT) != 0) events |= EPOLLOUT;
  if ((revents & POLLRDHUP) != 0) events |= EPOLLRDHUP;
  if ((revents & POLLHUP) != 0) events |= EPOLLHUP;
  if ((revents & POLLERR) != 0) events |= EPOLLERR;
  return events;
}

class SingleConnection {
 public:
  SingleConnection(const common::ChildContext& ctx, common::UniqueFd client,
                   PreparedConfig* prepared)
      : slot_(ctx.slot),
        blocked_(common::child_signals()),
        signal_fd_(common::open_signalfd(common::child_signals())),
        shared_(ctx, prepared),
        services_(ctx, shared_) {
    common::ignore_sigpipe();
    // The master accepts with SOCK_NONBLOCK: usually there is nothing to change.
    const int flags = ::fcntl(client.get(), F_GETFL);
    if (flags < 0 ||
        ((flags & O_NONBLOCK) == 0 && ::fcntl(client.get(), F_SETFL, flags | O_NONBLOCK) != 0)) {
      throw common::SysError("fcntl(O_NONBLOCK)");
    }
    connection_.emplace(std::move(client), shared_, nullptr, ctx.client_proxy_protocol);
    if (shared_.served != nullptr) {
      shared_.served->connections.fetch_add(1, std::memory_order_relaxed);
    }
  }
  SingleConnection(const SingleConnection&) = delete;
  SingleConnection& operator=(const SingleConnection&) = delete;
  ~SingleConnection() { connection_->close(); }

  int run() {
    publish_state();
    // TCP_DEFER_ACCEPT: the request is usually there already; the first pass often serves it.
    open_ = connection_->resume();
    while (open_ && !stopping_) {
      std::array<pollfd, 2> fds{};
      fds[0] = {signal_fd_.get(), POLLIN, 0};
      fds[1] = {connection_->fd(), interest(), 0};
      if (fds[1].events == 0) fds[1].fd = -1;  // waits only for a timer (a ?delay)
      const int n = ::poll(fds.data(), fds.size(), next_timeout());
      if (n < 0) {
        // As in EventLoop::run: stopped and continued; look at the socket before the timers.
        if (errno == EINTR) continue;
        spdlog::error("poll: {}", common::errno_text(errno));
        return common::kExitFailure;
      }
      shared_.now = common::monotonic_ms();
      shared_.prepared.responses.set_date(static_cast<std::time_t>(common::wall_ms() / 1000));
      if (n > 0 && fds[0].revents != 0) read_signals();
      if (stopping_) break;
      if (n > 0 && fds[1].revents != 0 && open_) {
        open_ = connection_->on_ready(as_epoll_events(fds[1].revents));
      }
      if (open_ && connection_->wants_resume()) open_ = connection_->resume();
      expire_timers();
      services_.tick(shared_.now);
      publish_state();
    }
    connection_->close();  // the client sees the end before we tidy up
    services_.flush();
    spdlog::debug("connection child exiting ({})", open_ ? "stopped" : "done");
    return common::kExitOk;
  }

 private:
  [[nodiscard]] short interest() const {
    short events = 0;
    if (connection_->wants_input()) events |= POLLIN | POLLRDHUP;
    if (connection_->wants_output()) events |= POLLOUT;
    return events;
  }

  [[nodiscard]] int next_timeout() const {
    if (connection_->wants_resume()) return 0;
    const common::Millis now = common::monotonic_ms();
    std::optional<common::Millis> deadline;
    if (slot_ != nullptr) deadline = now + kHeartbeatMs;
    if (const auto next = shared_.next_deadline()) {
      deadline = deadline ? std::min(*deadline, *next) : *next;
    }
    if (!deadline) return -1;  // every state of a connection has a timer: only signals remain
    return static_cast<int>(std::max<common::Millis>(0, *deadline - now));
  }

  void read_signals() {
    const bool stop = services_.read_signals(signal_fd_.get(), [this] {
      if (shared_.draining) return;
      spdlog::debug("SIGQUIT: draining the connection");
      shared_.draining = true;
      if (open_) open_ = connection_->on_drain();
    });
    if (stop) stopping_ = true;
  }

  void expire_timers() {
    for (TimerList* list : shared_.timer_lists()) {
      while (TimerNode* node = list->pop_expired(shared_.now)) {
        if (open_) open_ = connection_->on_timer(*list);
        (void)node;
      }
    }
  }

  // Only with a scoreboard slot (a test's); production's per-connection children have none.
  void publish_state() {
    if (slot_ == nullptr) return;
    slot_->beat();
    const common::WorkerState state = shared_.draining   ? common::WorkerState::kDraining
                                      : shared_.busy > 0 ? common::WorkerState::kBusy
                                                         : common::WorkerState::kIdle;
    slot_->set_state(state);
    slot_->connections.store(open_ ? 1U : 0U, std::memory_order_relaxed);
  }

  common::ScoreboardSlot* const slot_;
  common::BlockedSignals blocked_;
  common::UniqueFd signal_fd_;
  WorkerShared shared_;
  ChildServices services_;  // after shared_, which it wires up; before the connection using it
  std::optional<Connection> connection_;
  bool open_ = true;
  bool stopping_ = false;
};

}  // namespace

// [[gnu::hot]] marks what a per-connection child runs between fork() and _exit(), here and in
// master/ and common/ (the list: callgrind with --toggle-collect=spawn_child). GCC places it all
// in .text.hot, so a fresh child, which maps its code in again 64 KiB at a time (the kernel's
// fault-around), faults on fewer windows of our text. A worker's per-request path is the same code.
[[gnu::hot]] int serve_single_connection(const common::ChildContext& ctx, common::UniqueFd client,
                                         PreparedConfig* prepared) {
  SingleConnection child(ctx, std::move(client), prepared);
  return child.run();
}

}  // namespace prefork::worker
