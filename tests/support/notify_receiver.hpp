// Test support: a stand-in for systemd's NOTIFY_SOCKET, collecting what the server says.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "common/unique_fd.hpp"
#include "tests/support/process_under_test.hpp"

namespace prefork::testing {

// Stands in for systemd's NOTIFY_SOCKET: a datagram socket that collects what the server says.
class NotifyReceiver {
 public:
  explicit NotifyReceiver(const std::string& path)
      : path_(path), fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("bind notify socket");
    }
  }
  // The next datagram, or "" after `timeout`.
  std::string next(Duration timeout = kIoTimeout) const {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return {};
    char buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
  common::UniqueFd fd_;
};

}  // namespace prefork::testing
