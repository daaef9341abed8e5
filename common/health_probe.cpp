#include "common/health_probe.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>

#include "common/exit_codes.hpp"
#include "common/listeners.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"

namespace prefork::common {
namespace {

constexpr std::string_view kScheme = "http://";
constexpr std::size_t kMaxHead = 8192;  // a status line is all we need; /healthz sends little

// The request target goes into the request line as is: visible ASCII only, so a typo cannot
// make the probe send something else than one GET.
std::string checked_path(std::string path) {
  const bool visible =
      std::all_of(path.begin(), path.end(), [](char c) { return c > ' ' && c < 0x7f; });
  if (!path.starts_with('/') || !visible) {
    throw ConfigError("health check path '" + path + "': expected /PATH in visible ASCII");
  }
  return path;
}

// The address connected to, spelled as in messages: "[::]:8888" becomes "127.0.0.1:8888".
std::string address_of(std::string address) {
  if (address.starts_with("localhost:")) address = "127.0.0.1" + address.substr(9);
  const SocketAddress addr = local_client_address(address);  // throws ConfigError naming it
  return format_address(addr.get(), addr.length);
}

std::string configured_address(const Config& config) {
  const std::string& first = config.listen.front();
  if (!first.starts_with("unix:") && first.ends_with(":0")) {
    throw ConfigError("health check: the first listen address '" + first +
                      "' has an ephemeral port; give the address to probe");
  }
  return address_of(first);
}

std::string configured_path(const Config& config) {
  if (config.healthz_path.empty()) {
    throw ConfigError("health check: healthz_path is switched off; give a URL with a path");
  }
  return config.healthz_path;
}

// Waits for `events` on `fd` until `deadline` (monotonic ms); false on timeout.
bool wait_for(int fd, short events, Millis deadline) {
  for (;;) {
    const Millis left = deadline - monotonic_ms();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) throw SysError("poll");
  }
}

// Connected (non-blocking) socket, or throws SysError / returns an invalid fd on timeout.
UniqueFd connect_to(const SocketAddress& addr, Millis deadline) {
  UniqueFd fd(::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw SysError("socket");
  if (::connect(fd.get(), addr.get(), addr.length) == 0) return fd;
  if (errno != EINPROGRESS) throw SysError("connect");
  if (!wait_for(fd.get(), POLLOUT, deadline)) return {};
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) throw SysError("getsockopt");
  if (err != 0) throw SysError("connect", err);
  return fd;
}

bool send_all(int fd, std::string_view bytes, Millis deadline) {
  while (!bytes.empty()) {
    if (!wait_for(fd, POLLOUT, deadline)) return false;
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) throw SysError("send");
    if (n > 0) bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Reads until the status line is complete (or EOF, or kMaxHead); false on timeout.
bool read_status_line(int fd, std::string& head, Millis deadline) {
  while (head.find("\r\n") == std::string::npos && head.size() < kMaxHead) {
    if (!wait_for(fd, POLLIN, deadline)) return false;
    char buf[1024];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0 && errno != EAGAIN && errno != EINTR) throw SysError("recv");
    if (n > 0) head.append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

HealthResult judge(const std::string& head) {
  const std::string line = head.substr(0, head.find("\r\n"));
  // "HTTP/1.x NNN reason"
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || line[8] != ' ') {
    return {false, head.empty() ? "the connection closed without an answer"
                                : "not an HTTP response: '" + line.substr(0, 40) + "'"};
  }
  const bool two_xx = line[9] == '2' && std::isdigit(line[10]) != 0 && std::isdigit(line[11]) != 0;
  return {two_xx, line};
}

}  // namespace

std::string HealthTarget::url() const {
  return std::string(kScheme) + address + path;
}

HealthTarget health_target(const std::string& argument, const std::function<Config()>& config) {
  std::string rest = argument;
  if (rest.starts_with(kScheme)) {
    rest.erase(0, kScheme.size());
  } else if (rest.find("://") != std::string::npos) {
    throw ConfigError("health check target '" + argument + "': only http:// is supported");
  }
  // A unix socket's path has slashes of its own: its target is the address alone.
  const auto slash = rest.starts_with("unix:") ? std::string::npos : rest.find('/');
  std::string address = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  if (address.empty() && !path.empty()) {
    throw ConfigError("health check target '" + argument + "': expected ADDRESS before the path");
  }
  std::optional<Config> loaded;
  if (address.empty() || path.empty()) loaded = config();
  return {address.empty() ? configured_address(*loaded) : address_of(address),
          checked_path(path.empty() ? configured_path(*loaded) : path)};
}

HealthResult probe_health(const HealthTarget& target, Millis timeout) {
  const Millis deadline = monotonic_ms() + timeout;
  const std::string timed_out = "no answer within " + std::to_string(timeout) + " ms";
  try {
    const UniqueFd fd = connect_to(local_client_address(target.address), deadline);
    if (!fd) return {false, "cannot connect within " + std::to_string(timeout) + " ms"};
    const std::string request = "GET " + target.path +
                                " HTTP/1.1\r\nHost: localhost\r\n"
                                "User-Agent: prefork-httpd-health-check\r\n"
                                "Connection: close\r\n\r\n";
    std::string head;
    if (!send_all(fd.get(), request, deadline) || !read_status_line(fd.get(), head, deadline)) {
      return {false, timed_out};
    }
    return judge(head);
  } catch (const SysError& err) {
    return {false, err.what()};
  }
}

int run_health_check(const std::string& argument, const std::function<Config()>& config) {
  HealthTarget target;
  try {
    target = health_target(argument, config);
  } catch (const ConfigError& err) {
    (void)std::fprintf(stderr, "prefork-httpd: --health-check: %s\n", err.what());
    return kExitConfig;
  }
  const HealthResult result = probe_health(target);
  if (result.healthy) return kExitOk;
  (void)std::fprintf(stderr, "prefork-httpd: health check %s: unhealthy: %s\n",
                     target.url().c_str(), result.reason.c_str());
  return kExitFailure;
}

}  // namespace prefork::common
