// Test support: a stand-in for systemd's NOTIFY_SOCKET, collecting what the server says.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>
#include <cstring>
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
  struct Notification {
    std::string text;
    bool with_fd = false;  // it carried a descriptor (BARRIER=1's), closed here as systemd does
  };
  // The next datagram, or an empty one after `timeout`.
  Notification receive(Duration timeout = kIoTimeout) const {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return {};
    char buf[4096];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0) return {};
    Notification got{std::string(buf, static_cast<std::size_t>(n))};
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd = -1;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        const common::UniqueFd received(fd);
        got.with_fd = true;
      }
    }
    return got;
  }
  // The next datagram's text, or "" after `timeout`.
  std::string next(Duration timeout = kIoTimeout) const { return receive(timeout).text; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
  common::UniqueFd fd_;
};

}  // namespace prefork::testing
