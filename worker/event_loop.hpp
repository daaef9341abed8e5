// The worker's epoll loop (worker, after fork): signals via signalfd, the shared listening
// sockets (EPOLLEXCLUSIVE accept), every connection, the timer lists and the scoreboard slot.
// A prefork worker runs it over the listeners (a per-connection child has its own lean loop:
// worker/single_connection).
#pragma once

#include <sys/epoll.h>

#include <array>
#include <memory>
#include <vector>

#include "common/acceptor.hpp"
#include "common/child_context.hpp"
#include "common/signals.hpp"
#include "common/unique_fd.hpp"
#include "worker/child_services.hpp"
#include "worker/connection.hpp"

namespace prefork::worker {

class EventLoop {
 public:
  // Serves ctx.listeners. Throws common::SysError when epoll or the signalfd cannot be set up.
  explicit EventLoop(const common::ChildContext& ctx);
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  ~EventLoop();

  // Serves until SIGTERM/SIGINT, or until drained after SIGQUIT. Returns the exit code.
  int run();

 private:
  struct ListenerEntry : EpollSource {
    ListenerEntry(int listen_fd, bool proxy)
        : EpollSource(Kind::kListener), fd(listen_fd), proxy_protocol(proxy) {}
    int fd;
    bool proxy_protocol;  // connections start with a PROXY protocol header
    bool registered = false;
  };
  static constexpr int kMaxEvents = 256;

  void handle(const epoll_event& event);
  void read_signals();
  void start_drain();
  void accept_from(ListenerEntry& listener);
  void set_accepting(bool on);
  void stop_accepting_at_capacity();
  void update_accepting();
  void add_connection(common::UniqueFd fd, const sockaddr* peer, bool proxy_protocol);
  void setup_failed(const char* what, int err);
  void after_service(Connection& connection, bool keep);
  void close_connection(Connection& connection);
  void run_ready_list();
  void expire_timers();
  void expire(TimerList& list);
  int next_timeout() const;
  void publish_state();
  [[nodiscard]] bool finished() const;

  const common::Config& config_;
  common::ScoreboardSlot* const slot_;
  common::BlockedSignals blocked_;
  common::UniqueFd epoll_;
  common::UniqueFd signal_fd_;
  EpollSource signal_source_{EpollSource::Kind::kSignal};
  common::Acceptor acceptor_;
  std::vector<std::unique_ptr<ListenerEntry>> listeners_;
  WorkerShared shared_;
  ChildServices services_;  // after shared_, which it wires up; before the connections using it
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<std::unique_ptr<Connection>> closed_;  // freed at the end of the pass
  std::vector<Connection*> ready_;
  std::array<epoll_event, kMaxEvents> events_{};
  bool stopping_ = false;
  common::WorkerState published_state_ = common::WorkerState::kStarting;
  std::size_t published_connections_ = 0;
};

}  // namespace prefork::worker
