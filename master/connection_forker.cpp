#include "master/connection_forker.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include <algorithm>
#include <ctime>

#include <spdlog/spdlog.h>

#include "common/signals.hpp"
#include "common/sys_error.hpp"
#include "common/wait_status.hpp"

namespace prefork::master {
namespace {

constexpr Millis kMaxForkBackoff = 2'000;

}  // namespace

ConnectionForker::ConnectionForker(Context context) : context_(std::move(context)) {
  // libc loads the time zone (/etc/localtime: six syscalls, a parse, heap blocks) on first use of
  // gmtime_r/localtime_r. Done once here, every child inherits it instead of loading it again
  // for its Date header; the master itself may never format a time (log_level above info).
  ::tzset();
}

void ConnectionForker::accept_from(const std::vector<int>& readable, unsigned generation,
                                   Millis now) {
  if (held_.fd) retry_held(generation, now);
  for (const int fd : readable) {
    while (below_cap() && !held_.fd && !acceptor_.paused(now)) {
      common::Accepted client;
      const auto result = acceptor_.accept(fd, now, client);
      if (result == common::AcceptResult::kClientGone) continue;
      if (result != common::AcceptResult::kAccepted) break;
      std::string ip = common::format_ip(client.peer_address());
      // Closing is the answer: the master never speaks HTTP itself.
      if (ip_at_cap(ip)) continue;
      fork_child({std::move(client.fd), std::move(ip), proxy_protocol_of(fd)}, generation, now);
    }
  }
  update_interest(true, now);
}

bool ConnectionForker::ip_at_cap(const std::string& ip) {
  const unsigned cap = context_.config.max_children_per_ip;
  if (cap == 0 || per_ip_[ip] < cap) return false;
  // One line per interval: a client hammering the cap must not fill the log.
  if (const Millis now = common::monotonic_ms(); ip_cap_log_.allow(now)) {
    spdlog::warn("client {} is at max_children_per_ip ({}); connection closed ({} more suppressed)",
                 ip, cap, ip_cap_log_.suppressed());
  }
  return true;
}

bool ConnectionForker::proxy_protocol_of(int listener_fd) const {
  for (const auto& l : context_.listeners) {
    if (l.fd.get() == listener_fd) return l.proxy_protocol;
  }
  return false;
}

void ConnectionForker::retry_held(unsigned generation, Millis now) {
  if (now < fork_retry_at_) return;
  fork_child(std::move(held_), generation, now);
}

void ConnectionForker::fork_child(Held client, unsigned generation, Millis now) {
  ChildSetup setup{"connection", &context_.config, context_.drop_master_fds, context_.fork,
                   /*keep_master_logger=*/true};
  const pid_t pid = spawn_child(setup, [&] {
    const common::ChildContext ctx{
        context_.config, {}, nullptr, 0, generation, &context_.scoreboard, client.proxy_protocol};
    return context_.entry(ctx, std::move(client.fd));
  });
  if (pid < 0) {
    const int err = errno;
    // Keep the client and try again after a back-off: it waits rather than being dropped.
    fork_backoff_ = std::clamp<Millis>(fork_backoff_ * 2, 50, kMaxForkBackoff);
    fork_retry_at_ = now + fork_backoff_;
    if (fork_failure_log_.allow(now)) {
      spdlog::error(
          "fork for connection from {}: {}; holding it, retrying in {} ms ({} more failures "
          "suppressed)",
          client.ip, common::errno_text(err), fork_backoff_, fork_failure_log_.suppressed());
    }
    held_ = std::move(client);
    context_.scoreboard.header().fork_failures.fetch_add(1);
    return;
  }
  fork_backoff_ = 0;
  ++per_ip_[client.ip];
  children_.emplace(pid, std::move(client.ip));
  publish_counts();
  common::ScoreboardHeader& header = context_.scoreboard.header();
  header.children_forked.fetch_add(1);
  if (!below_cap()) header.cap_hits.fetch_add(1);
}

bool ConnectionForker::on_child_exit(pid_t pid, int status, bool serving) {
  const auto it = children_.find(pid);
  if (it == children_.end()) return false;
  if (auto count = per_ip_.find(it->second); count != per_ip_.end() && --count->second == 0) {
    per_ip_.erase(count);
  }
  children_.erase(it);
  publish_counts();
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    spdlog::warn("connection child pid {} {}", pid, common::describe_wait_status(status));
  }
  if (serving) update_interest(serving, common::monotonic_ms());
  return true;
}

void ConnectionForker::publish_counts() {
  context_.scoreboard.header().live_children.store(static_cast<std::uint32_t>(children_.size()));
}

void ConnectionForker::update_interest(bool serving, Millis now) {
  set_interest(serving && context_.config.mode == common::Mode::kPerConnection &&
               !acceptor_.paused(now) && below_cap() && !held_.fd);
}

void ConnectionForker::stop_accepting() {
  set_interest(false);
}

void ConnectionForker::forget_listeners() {
  accepting_ = false;  // closing a descriptor takes it out of the epoll set
  held_ = {};
}

// At the cap the listeners leave the epoll set: connections wait in the kernel backlog.
void ConnectionForker::set_interest(bool want) {
  if (want == accepting_) return;
  for (const auto& l : context_.listeners) {
    if (want) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = l.fd.get();
      // Not fatal: the master must outlive this; the listener is tried again on the next change.
      if (::epoll_ctl(context_.epoll_fd, EPOLL_CTL_ADD, l.fd.get(), &ev) != 0 && errno != EEXIST) {
        spdlog::error("epoll_ctl(ADD listener {}): {}", l.bound, common::errno_text(errno));
      }
    } else {
      ::epoll_ctl(context_.epoll_fd, EPOLL_CTL_DEL, l.fd.get(), nullptr);
    }
  }
  accepting_ = want;
}

void ConnectionForker::signal_all(int signo) const {
  for (const auto& [pid, ip] : children_) send_signal(pid, signo);
}

void ConnectionForker::drop_fds_in_child() {
  held_.fd.reset();
  acceptor_.release_spare();
}

Millis ConnectionForker::next_wakeup(Millis next, Millis now) const {
  if (held_.fd) next = std::min(next, fork_retry_at_);
  if (acceptor_.paused(now)) next = std::min(next, acceptor_.paused_until());
  return next;
}

}  // namespace prefork::master
