#include "common/acceptor.hpp"

#include <fcntl.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "common/sys_error.hpp"

namespace prefork::common {
namespace {

UniqueFd open_spare() {
  return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

// accept4(2): these errors belong to the one client being accepted (it reset, or the network
// under it failed); the listener is fine and the next client may be served.
bool client_gone(int err) {
  switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:  // a firewall rule refused this connection
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH: return true;
    default: return false;
  }
}

}  // namespace

Acceptor::Acceptor() : spare_(open_spare()) {}

AcceptResult Acceptor::accept(int listener_fd, Millis now, Accepted& out) {
  out.peer_length = sizeof out.peer;
  out.fd.reset(::accept4(listener_fd, reinterpret_cast<sockaddr*>(&out.peer), &out.peer_length,
                         SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (out.fd) return AcceptResult::kAccepted;
  const int err = errno;  // saved before anything below can clobber it
  if (err == EAGAIN) return AcceptResult::kEmpty;
  if (client_gone(err)) return AcceptResult::kClientGone;
  if (err == EMFILE || err == ENFILE) shed_one(listener_fd);
  pause(err, now);
  return AcceptResult::kPaused;
}

// Out of descriptors: give up the spare one to accept and close the waiting client, so it gets
// an answer (a reset) instead of hanging, then take the spare back.
void Acceptor::shed_one(int listener_fd) {
  if (!spare_) return;
  spare_.reset();
  UniqueFd shed(::accept4(listener_fd, nullptr, nullptr, SOCK_CLOEXEC));
  shed.reset();
  spare_ = open_spare();
}

// Retrying at once would spin on a listener that stays readable: pause, and say so once per
// interval, however many clients arrive meanwhile.
void Acceptor::pause(int err, Millis now) {
  paused_until_ = now + kPause;
  if (log_.allow(now)) {
    spdlog::warn("accept4: {}; pausing accepts for {} ms ({} more suppressed)", errno_text(err),
                 kPause, log_.suppressed());
  }
}

}  // namespace prefork::common
