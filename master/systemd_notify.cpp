#include "master/systemd_notify.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "common/unique_fd.hpp"

namespace prefork::master {
namespace {

struct NotifyAddress {
  sockaddr_un addr{};
  socklen_t len = 0;
};

// $NOTIFY_SOCKET as an address; nullopt when it is unset (no service manager) or unusable.
std::optional<NotifyAddress> notify_address(bool& unset) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  unset = path == nullptr || path[0] == '\0';
  if (unset) return std::nullopt;
  NotifyAddress to;
  const std::size_t len = std::strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof to.addr.sun_path) return std::nullopt;
  to.addr.sun_family = AF_UNIX;
  std::memcpy(to.addr.sun_path, path, len);
  if (path[0] == '@') to.addr.sun_path[0] = '\0';  // abstract namespace
  to.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  return to;
}

// One datagram to the service manager, with `fd` attached when it is not -1.
bool send_notification(const NotifyAddress& to, const std::string& message, int fd) {
  common::UniqueFd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return false;
  iovec iov{const_cast<char*>(message.data()), message.size()};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr_un*>(&to.addr);
  msg.msg_namelen = to.len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
  }
  return ::sendmsg(sock.get(), &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(message.size());
}

long long monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace

bool systemd_notify(const std::string& message) {
  bool unset = false;
  const auto to = notify_address(unset);
  if (!to) return unset;
  return send_notification(*to, message, -1);
}

bool systemd_notify_barrier(int timeout_ms) {
  bool unset = false;
  const auto to = notify_address(unset);
  if (!to) return unset;
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  const common::UniqueFd read_end(fds[0]);
  common::UniqueFd write_end(fds[1]);
  if (!send_notification(*to, "BARRIER=1", write_end.get())) return false;
  write_end.reset();  // the service manager's copy is now the last one
  const long long deadline = monotonic_ms() + timeout_ms;
  for (;;) {
    pollfd p{read_end.get(), 0, 0};  // POLLHUP is always reported
    const long long left = deadline - monotonic_ms();
    if (left <= 0) return false;
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return (p.revents & POLLHUP) != 0;
    if (n < 0 && errno != EINTR) return false;
  }
}

std::string reloading_message() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const long long usec = static_cast<long long>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}

}  // namespace prefork::master
