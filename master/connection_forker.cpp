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

ConnectionForker::ClientIp::ClientIp(std::string_view ip)
    : length(std::min(ip.size(), text.size())) {
  std::copy_n(ip.begin(), length, text.begin());
}

void ConnectionForker::reserve_books() {
  const std::size_t cap = context_.config.max_children;
  if (children_.capacity() < cap) children_.reserve(cap);
  if (per_ip_.capacity() < cap) per_ip_.reserve(cap);
}

ConnectionForker::IpCount* ConnectionForker::count_of(const ClientIp& ip) {
  const auto it = std::find_if(per_ip_.begin(), per_ip_.end(),
                               [&](const IpCount& entry) { return entry.ip == ip; });
  return it == per_ip_.end() ? nullptr : &*it;
}

void ConnectionForker::accept_from(std::span<const int> readable, unsigned generation, Millis now) {
  if (held_.fd) retry_held(generation, now);
  for (const int fd : readable) {
    while (below_cap() && !held_.fd && !acceptor_.paused(now)) {
      common::Accepted client;
      const auto result = acceptor_.accept(fd, now, client);
      if (result == common::AcceptResult::kClientGone) continue;
      if (result != common::AcceptResult::kAccepted) break;
      const ClientIp ip(common::format_ip(client.peer_address()));
      // Closing is the answer: the master never speaks HTTP itself.
      if (ip_at_cap(ip)) continue;
      fork_child({std::move(client.fd), ip, proxy_protocol_of(fd)}, generation, now);
    }
  }
  update_interest(true, now);
}

bool ConnectionForker::ip_at_cap(const ClientIp& ip) {
  const unsigned cap = context_.config.max_children_per_ip;
  if (cap == 0) return false;
  if (const IpCount* count = count_of(ip); count == nullptr || count->children < cap) return false;
  // One line per interval: a client hammering the cap must not fill the log.
  if (const Millis now = common::monotonic_ms(); ip_cap_log_.allow(now)) {
    spdlog::warn("client {} is at max_children_per_ip ({}); connection closed ({} more suppressed)",
                 ip.view(), cap, ip_cap_log_.suppressed());
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
  reserve_books();
  if (context_.prepare) context_.prepare(context_.config, generation);
  ChildSetup setup{"connection", &context_.config, context_.drop_master_fds, context_.fork,
                   /*keep_master_logger=*/true};
  const common::ChildContext ctx{
      context_.config, {}, nullptr, 0, generation, &context_.scoreboard, client.proxy_protocol};
  // One pointer captured: the std::function keeps it inline instead of allocating in the master.
  struct Start {
    const common::ConnectionEntry& entry;
    const common::ChildContext& ctx;
    common::UniqueFd& fd;
  } start{context_.entry, ctx, client.fd};
  const pid_t pid = spawn_child(setup, [s = &start] { return s->entry(s->ctx, std::move(s->fd)); });
  if (pid < 0) {
    const int err = errno;
    // Keep the client and try again after a back-off: it waits rather than being dropped.
    fork_backoff_ = std::clamp<Millis>(fork_backoff_ * 2, 50, kMaxForkBackoff);
    fork_retry_at_ = now + fork_backoff_;
    if (fork_failure_log_.allow(now)) {
      spdlog::error(
          "fork for connection from {}: {}; holding it, retrying in {} ms ({} more failures "
          "suppressed)",
          client.ip.view(), common::errno_text(err), fork_backoff_, fork_failure_log_.suppressed());
    }
    held_ = std::move(client);
    context_.scoreboard.header().fork_failures.fetch_add(1);
    return;
  }
  fork_backoff_ = 0;
  if (IpCount* count = count_of(client.ip)) {
    ++count->children;
  } else {
    per_ip_.push_back({client.ip, 1});
  }
  children_.push_back({pid, client.ip});
  publish_counts();
  common::ScoreboardHeader& header = context_.scoreboard.header();
  header.children_forked.fetch_add(1);
  if (!below_cap()) header.cap_hits.fetch_add(1);
}

bool ConnectionForker::on_child_exit(pid_t pid, int status, bool serving) {
  const auto it = std::find_if(children_.begin(), children_.end(),
                               [pid](const Child& child) { return child.pid == pid; });
  if (it == children_.end()) return false;
  if (IpCount* count = count_of(it->ip); count != nullptr && --count->children == 0) {
    *count = per_ip_.back();  // order does not matter: swap with the last, drop it
    per_ip_.pop_back();
  }
  *it = children_.back();
  children_.pop_back();
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
  for (const Child& child : children_) send_signal(child.pid, signo);
}

// [[gnu::hot]]: what a per-connection child runs (why: above worker::serve_single_connection).
[[gnu::hot]] void ConnectionForker::drop_fds_in_child() {
  held_.fd.reset();
  acceptor_.release_spare();
}

Millis ConnectionForker::next_wakeup(Millis next, Millis now) const {
  if (held_.fd) next = std::min(next, fork_retry_at_);
  if (acceptor_.paused(now)) next = std::min(next, acceptor_.paused_until());
  return next;
}

}  // namespace prefork::master
