// Listening sockets (opened by the master before any fork; inherited by children).
// Addresses are numeric: "[::]:8888", "0.0.0.0:80", "127.0.0.1:0" (ephemeral), or "8888".
#pragma once

#include <sys/socket.h>

#include <string>
#include <vector>

#include "common/unique_fd.hpp"

namespace prefork::common {

struct Listener {
  UniqueFd fd;
  std::string spec;   // as configured
  std::string bound;  // the address actually bound, with the real port ("127.0.0.1:41234")
};

struct ListenOptions {
  int backlog = 4096;       // capped by net.core.somaxconn
  int defer_accept_s = 10;  // TCP_DEFER_ACCEPT: wake a worker only once data has arrived
};

// Binds every spec; throws ConfigError for a malformed address, SysError for a failed call.
// "[::]:PORT" falls back to "0.0.0.0:PORT" where the kernel has no IPv6.
std::vector<Listener> open_listeners(const std::vector<std::string>& specs,
                                     const ListenOptions& options = {});

// Throws ConfigError when `spec` is not an address we can listen on (no socket is opened).
void validate_listen_spec(const std::string& spec);

// "1.2.3.4:80" / "[::1]:80" for any socket address.
std::string format_address(const sockaddr* addr, socklen_t len);

// The current value of net.core.somaxconn, or `fallback` when it cannot be read.
int somaxconn(int fallback);

}  // namespace prefork::common
