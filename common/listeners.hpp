// Listening sockets (opened by the master before any fork; inherited by children).
// Addresses are numeric: "[::]:8888", "0.0.0.0:80", "127.0.0.1:0" (ephemeral), "8888", or a
// unix-domain socket "unix:/run/prefork-httpd/http.sock"; or handed over by systemd.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"

namespace prefork::common {

// The file of a unix-domain socket the master created: removed when the master closes the
// listener (at exit or when a reload drops it). A child destroying its copy leaves it alone,
// and a socket systemd passed us is never owned, so never removed.
class OwnedSocketPath {
 public:
  OwnedSocketPath() = default;
  explicit OwnedSocketPath(std::string path);
  OwnedSocketPath(OwnedSocketPath&& other) noexcept;
  OwnedSocketPath& operator=(OwnedSocketPath&& other) noexcept;
  OwnedSocketPath(const OwnedSocketPath&) = delete;
  OwnedSocketPath& operator=(const OwnedSocketPath&) = delete;
  ~OwnedSocketPath();
  // Hands the file over (binary upgrade): the new master owns it; we never remove it.
  void release() noexcept { path_.clear(); }
  [[nodiscard]] bool owned() const noexcept { return !path_.empty(); }

 private:
  void remove() noexcept;
  std::string path_;
  pid_t owner_ = 0;
};

struct Listener {
  UniqueFd fd;
  std::string spec;      // as configured ("systemd:<address>" for an inherited socket)
  std::string bound;     // the address actually bound, with the real port ("127.0.0.1:41234")
  OwnedSocketPath path;  // unix-domain sockets we created (destroyed first: unlink, then close)
  bool proxy_protocol = false;  // connections start with a PROXY protocol header
};

// A listening socket's accept queue: connections the kernel completed that nobody accepted
// yet, and how many it keeps before refusing (the listen() backlog, capped by somaxconn).
struct ListenQueue {
  std::uint32_t queued = 0;
  std::uint32_t limit = 0;
};

// Linux reports both through TCP_INFO for a TCP socket in LISTEN state (tcpi_unacked and
// tcpi_sacked); nullopt for any other socket (a unix-domain one).
std::optional<ListenQueue> listen_queue(int fd);

struct ListenOptions {
  int backlog = 4096;           // capped by net.core.somaxconn
  int defer_accept_s = 10;      // TCP_DEFER_ACCEPT: wake a worker only once data has arrived
  unsigned socket_mode = 0660;  // permissions of unix-domain socket files
};

// Sockets passed by systemd socket activation (LISTEN_PID is us, LISTEN_FDS counts them from
// fd 3); empty when not socket-activated. Clears the variables so children do not see them.
// Throws SysError when a passed descriptor is not a listening stream socket.
std::vector<Listener> listeners_from_systemd();

// Binary upgrade. In the forked child, just before exec: moves `listeners` to descriptors 3, 4, …
// (inherited across exec) and describes them in LISTEN_PID/LISTEN_FDS and
// PREFORK_HTTPD_LISTENERS (their specs, one per line). Single-threaded callers only.
void pass_listeners_across_exec(const std::vector<Listener>& listeners);

// In the new image: the listeners the old master passed, each with its configured spec; empty
// when we were not started by an upgrade. Clears the variables so children do not see them.
// A unix socket's file stays the old master's until take_socket_file().
std::vector<Listener> listeners_from_upgrade();
// The new master took over: the file of a unix-domain listener is ours to remove at exit.
void take_socket_file(Listener& listener);

// Binds every spec; throws ConfigError for a malformed address, SysError for a failed call.
// "[::]:PORT" falls back to "0.0.0.0:PORT" where the kernel has no IPv6.
std::vector<Listener> open_listeners(const std::vector<std::string>& specs,
                                     const ListenOptions& options = {});

// Throws ConfigError when `spec` is not an address we can listen on (no socket is opened).
void validate_listen_spec(const std::string& spec);

// The address `spec` listens on, spelled one way: "[::]:80" for "80", "[::0]:80" or "[::]:080",
// "0.0.0.0:80" for "0.0.0.0:080", "unix:/run/a.sock" for "unix:/run//./a.sock". Two entries with
// the same canonical address would bind the same socket twice. Throws ConfigError like
// validate_listen_spec.
std::string canonical_listen_address(const std::string& spec);

// An address a client on this host connects to in order to reach the listener `spec` would
// bind (the health probe): a wildcard host ("[::]", "0.0.0.0", a bare port) becomes 127.0.0.1,
// which a dual-stack "[::]" socket accepts as well as its IPv4-only fallback does. Throws
// ConfigError like validate_listen_spec.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  [[nodiscard]] const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};
SocketAddress local_client_address(const std::string& spec);

// A client's address without the port: "192.0.2.1", "2001:db8::1" (IPv4-mapped IPv6 shown as
// IPv4, so one client is one key however it reached a dual-stack socket), "unix" or "-".
std::string format_ip(const sockaddr* addr);

// "1.2.3.4:80" / "[::1]:80" for any socket address.
std::string format_address(const sockaddr* addr, socklen_t len);

// The current value of net.core.somaxconn, or `fallback` when it cannot be read.
int somaxconn(int fallback);

}  // namespace prefork::common
