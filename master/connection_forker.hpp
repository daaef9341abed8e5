// Per-connection mode (master only): accepts on the listeners, forks one child per connection,
// and keeps the books on those children: the max_children cap, per-client-IP counts, a client
// held while fork fails (retried with back-off), and accept pauses. The Supervisor drives it
// through a few verbs; it never speaks HTTP (the child's entry function does).
#pragma once

#include <sys/types.h>

#include <netinet/in.h>

#include <array>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "common/acceptor.hpp"
#include "common/child_context.hpp"
#include "common/config.hpp"
#include "common/listeners.hpp"
#include "common/rate_limiter.hpp"
#include "common/scoreboard.hpp"
#include "common/unique_fd.hpp"
#include "master/master_only_memory.hpp"
#include "master/spawn.hpp"

namespace prefork::master {

using common::Millis;

class ConnectionForker {
 public:
  // What the forker borrows from the Supervisor; every reference outlives it.
  struct Context {
    const common::Config& config;
    const std::vector<common::Listener>& listeners;
    int epoll_fd;  // listeners are in it, keyed by fd, exactly while accepting
    common::Scoreboard& scoreboard;
    common::ConnectionEntry entry;
    common::ConnectionPrepare prepare;      // before each fork; may be empty
    std::function<void()> drop_master_fds;  // runs in each child before its entry
    ForkFunction fork;
  };

  explicit ConnectionForker(Context context);

  // Takes clients from the readable listeners while below the caps, a child for each.
  void accept_from(std::span<const int> readable, unsigned generation, Millis now);
  // False when `pid` is not one of this forker's children.
  bool on_child_exit(pid_t pid, int status, bool serving);
  // Puts the listeners in the epoll set exactly when a new client could be taken now.
  void update_interest(bool serving, Millis now);
  // Before the listener set changes: no listener of ours stays in the epoll set.
  void stop_accepting();
  // The listeners are closing (stop): nothing is accepted or held any more.
  void forget_listeners();

  [[nodiscard]] std::size_t live() const { return children_.size(); }
  void signal_all(int signo) const;
  // In any child of the master: what the forker holds is not the child's.
  void drop_fds_in_child();
  [[nodiscard]] Millis next_wakeup(Millis next, Millis now) const;

 private:
  // A client's address as common::format_ip writes it, in place: the books on children allocate
  // nothing per connection, because every heap page the master writes after a fork() is a
  // copy-on-write fault (the fork made it read-only), one per page and connection.
  struct ClientIp {
    std::array<char, INET6_ADDRSTRLEN> text{};
    std::size_t length = 0;
    ClientIp() = default;
    explicit ClientIp(std::string_view ip);
    [[nodiscard]] std::string_view view() const { return {text.data(), length}; }
    bool operator==(const ClientIp& other) const { return view() == other.view(); }
  };
  struct Held {
    common::UniqueFd fd;
    ClientIp ip;
    bool proxy_protocol = false;
  };
  struct Child {
    pid_t pid = 0;
    ClientIp ip;
  };
  struct IpCount {
    ClientIp ip;
    unsigned children = 0;
  };

  [[nodiscard]] bool below_cap() const { return children_.size() < context_.config.max_children; }
  [[nodiscard]] bool ip_at_cap(const ClientIp& ip);
  [[nodiscard]] IpCount* count_of(const ClientIp& ip);
  // Room for max_children entries, made before the fork so the books never grow after it.
  void reserve_books();
  [[nodiscard]] bool proxy_protocol_of(int listener_fd) const;
  void retry_held(unsigned generation, Millis now);
  // Forks a child for `client`; on failure keeps it in held_ and backs off.
  void fork_child(Held client, unsigned generation, Millis now);
  void set_interest(bool want);
  void publish_counts();

  Context context_;
  common::Acceptor acceptor_;
  // Flat and scanned: at most max_children entries, and no node allocated per connection;
  // written after every fork, so in memory no child shares.
  std::vector<Child, MasterOnlyAllocator<Child>> children_;
  std::vector<IpCount, MasterOnlyAllocator<IpCount>> per_ip_;  // only IPs with live children
  bool accepting_ = false;
  Held held_;  // accepted, waiting for fork to succeed again
  Millis fork_retry_at_ = 0;
  Millis fork_backoff_ = 0;
  common::RateLimiter fork_failure_log_{5'000};
  common::RateLimiter ip_cap_log_{5'000};
};

}  // namespace prefork::master
