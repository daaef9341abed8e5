#include "common/listeners.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/config.hpp"
#include "common/sys_error.hpp"

namespace prefork::common {
namespace {

struct ParsedAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  bool any_v6 = false;  // "[::]": listen dual-stack
  std::uint16_t port = 0;
};

[[noreturn]] void bad_spec(const std::string& spec, const std::string& why) {
  throw ConfigError("listen address '" + spec + "': " + why);
}

std::uint16_t parse_port(const std::string& spec, std::string_view text) {
  unsigned value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end || value > 65535) {
    bad_spec(spec, "expected a port from 0 to 65535");
  }
  return static_cast<std::uint16_t>(value);
}

ParsedAddress parse_spec(const std::string& spec) {
  std::string host = "::";
  std::string_view port_text = spec;
  if (spec.starts_with('[')) {
    const auto close = spec.find("]:");
    if (close == std::string::npos) bad_spec(spec, "expected [IPv6]:PORT");
    host = spec.substr(1, close - 1);
    port_text = std::string_view(spec).substr(close + 2);
  } else if (const auto colon = spec.rfind(':'); colon != std::string::npos) {
    host = spec.substr(0, colon);
    port_text = std::string_view(spec).substr(colon + 1);
    if (host.find(':') != std::string::npos) bad_spec(spec, "an IPv6 address needs [brackets]");
  }
  ParsedAddress out;
  out.port = parse_port(spec, port_text);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(out.port);
    out.length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(out.port);
    out.length = sizeof(sockaddr_in6);
    out.any_v6 = IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr);
  } else {
    bad_spec(spec, "expected a numeric IPv4 or [IPv6] address");
  }
  return out;
}

void set_int_option(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
    throw SysError(std::string("setsockopt(") + what + ")");
  }
}

Listener bind_one(const std::string& spec, const ParsedAddress& addr, int backlog,
                  int defer_accept_s) {
  const int family = addr.storage.ss_family;
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw SysError("socket(" + spec + ")");
  set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  if (family == AF_INET6) {
    set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, addr.any_v6 ? 0 : 1, "IPV6_V6ONLY");
  }
  // Accepted sockets inherit these: no Nagle delay on our single-write responses, and no
  // wake-up for a connection that has not sent anything yet.
  set_int_option(fd.get(), IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
  set_int_option(fd.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT, defer_accept_s, "TCP_DEFER_ACCEPT");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr.storage), addr.length) != 0) {
    throw SysError("bind(" + spec + ")");
  }
  if (::listen(fd.get(), backlog) != 0) throw SysError("listen(" + spec + ")");
  sockaddr_storage actual{};
  socklen_t actual_len = sizeof actual;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&actual), &actual_len);
  return Listener{std::move(fd),
                  spec,
                  format_address(reinterpret_cast<sockaddr*>(&actual), actual_len),
                  {},
                  false};
}

constexpr std::string_view kUnixPrefix = "unix:";

bool is_unix_spec(const std::string& spec) {
  return spec.starts_with(kUnixPrefix);
}

sockaddr_un unix_address(const std::string& spec) {
  const std::string path = spec.substr(kUnixPrefix.size());
  sockaddr_un addr{};
  if (path.empty() || path[0] != '/') bad_spec(spec, "expected unix:/absolute/path");
  if (path.size() >= sizeof addr.sun_path) bad_spec(spec, "the socket path is too long");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// A socket file left by a previous run is replaced only when nothing answers on it; a live
// server's socket, or a file that is not a socket, is never removed.
void remove_stale_socket(const std::string& spec, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(addr.sun_path, &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) bad_spec(spec, "the path exists and is not a socket");
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) throw SysError("socket(" + spec + ")");
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    throw SysError("bind(" + spec + "): another process answers on it", EADDRINUSE);
  }
  if (errno != ECONNREFUSED) throw SysError("connect(" + spec + ") to check for a stale socket");
  if (::unlink(addr.sun_path) != 0) throw SysError("unlink(" + spec + ")");
}

Listener bind_unix(const std::string& spec, int backlog, unsigned mode) {
  const sockaddr_un addr = unix_address(spec);
  remove_stale_socket(spec, addr);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw SysError("socket(" + spec + ")");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    throw SysError("bind(" + spec + ")");
  }
  OwnedSocketPath owned(addr.sun_path);
  if (::chmod(addr.sun_path, static_cast<mode_t>(mode)) != 0) throw SysError("chmod(" + spec + ")");
  if (::listen(fd.get(), backlog) != 0) throw SysError("listen(" + spec + ")");
  return Listener{std::move(fd), spec, spec, std::move(owned), false};
}

}  // namespace

OwnedSocketPath::OwnedSocketPath(std::string path) : path_(std::move(path)), owner_(::getpid()) {}

OwnedSocketPath::OwnedSocketPath(OwnedSocketPath&& other) noexcept
    : path_(std::exchange(other.path_, {})), owner_(other.owner_) {}

OwnedSocketPath& OwnedSocketPath::operator=(OwnedSocketPath&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
    owner_ = other.owner_;
  }
  return *this;
}

OwnedSocketPath::~OwnedSocketPath() {
  remove();
}

void OwnedSocketPath::remove() noexcept {
  if (!path_.empty() && ::getpid() == owner_) ::unlink(path_.c_str());
  path_.clear();
}

std::optional<ListenQueue> listen_queue(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 ||
      info.tcpi_state != TCP_LISTEN) {
    return std::nullopt;
  }
  return ListenQueue{info.tcpi_unacked, info.tcpi_sacked};
}

std::vector<Listener> listeners_from_systemd() {
  std::vector<Listener> out;
  const char* pid_text = std::getenv("LISTEN_PID");
  const char* fds_text = std::getenv("LISTEN_FDS");
  if (pid_text == nullptr || fds_text == nullptr || std::atol(pid_text) != ::getpid()) return out;
  const int count = std::atoi(fds_text);
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  constexpr int kFirstFd = 3;  // SD_LISTEN_FDS_START
  for (int fd = kFirstFd; fd < kFirstFd + count; ++fd) {
    UniqueFd owned(fd);
    int listening = 0;
    socklen_t len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0) {
      throw SysError("socket activation: fd " + std::to_string(fd) + " is not a listening socket",
                     ENOTSOCK);
    }
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    sockaddr_storage addr{};
    socklen_t addr_len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len);
    const std::string bound = format_address(reinterpret_cast<sockaddr*>(&addr), addr_len);
    out.push_back(Listener{std::move(owned), "systemd:" + bound, bound, {}, false});
  }
  return out;
}

namespace {

constexpr int kFirstPassedFd = 3;  // SD_LISTEN_FDS_START
constexpr const char* kUpgradeSpecs = kUpgradeListenersVariable;

}  // namespace

void pass_listeners_across_exec(const std::vector<Listener>& listeners) {
  // First out of the way (above every target), then into place: no dup2 overwrites a source.
  std::vector<int> moved;
  moved.reserve(listeners.size());
  const int above = kFirstPassedFd + static_cast<int>(listeners.size());
  for (const auto& l : listeners) moved.push_back(::fcntl(l.fd.get(), F_DUPFD_CLOEXEC, above));
  std::string specs;
  for (std::size_t i = 0; i < moved.size(); ++i) {
    const int target = kFirstPassedFd + static_cast<int>(i);
    ::dup2(moved[i], target);  // dup2 clears FD_CLOEXEC on the target: it survives exec
    specs += listeners[i].spec + "\n";
  }
  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  ::setenv("LISTEN_FDS", std::to_string(listeners.size()).c_str(), 1);
  ::unsetenv("LISTEN_FDNAMES");
  ::setenv(kUpgradeSpecs, specs.c_str(), 1);
}

std::vector<Listener> listeners_from_upgrade() {
  const char* specs_text = std::getenv(kUpgradeSpecs);
  if (specs_text == nullptr) return {};
  std::vector<std::string> specs;
  for (std::string_view rest = specs_text; !rest.empty();) {
    const auto end = rest.find('\n');
    specs.emplace_back(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
  }
  ::unsetenv(kUpgradeSpecs);
  std::vector<Listener> out = listeners_from_systemd();
  if (out.size() != specs.size()) {
    throw SysError("binary upgrade: " + std::to_string(out.size()) + " sockets passed for " +
                       std::to_string(specs.size()) + " listeners",
                   EINVAL);
  }
  for (std::size_t i = 0; i < out.size(); ++i) out[i].spec = specs[i];
  return out;
}

void take_socket_file(Listener& listener) {
  if (is_unix_spec(listener.spec) && !listener.path.owned()) {
    listener.path = OwnedSocketPath(listener.spec.substr(kUnixPrefix.size()));
  }
}

void validate_listen_spec(const std::string& spec) {
  canonical_listen_address(spec);
}

std::string canonical_listen_address(const std::string& spec) {
  if (is_unix_spec(spec)) {
    const sockaddr_un addr = unix_address(spec);
    std::string out(kUnixPrefix);
    out += std::filesystem::path(addr.sun_path).lexically_normal().string();
    return out;
  }
  const ParsedAddress addr = parse_spec(spec);
  return format_address(reinterpret_cast<const sockaddr*>(&addr.storage), addr.length);
}

SocketAddress local_client_address(const std::string& spec) {
  SocketAddress out;
  if (is_unix_spec(spec)) {
    const sockaddr_un addr = unix_address(spec);
    std::memcpy(&out.storage, &addr, sizeof addr);
    out.length = sizeof addr;
    return out;
  }
  const ParsedAddress addr = parse_spec(spec);
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr.storage);
  if (addr.any_v6 || (v4->sin_family == AF_INET && v4->sin_addr.s_addr == htonl(INADDR_ANY))) {
    return local_client_address("127.0.0.1:" + std::to_string(addr.port));
  }
  out.storage = addr.storage;
  out.length = addr.length;
  return out;
}

std::string format_ip(const sockaddr* addr) {
  char text[INET6_ADDRSTRLEN] = {};
  switch (addr->sa_family) {
    case AF_INET: {
      const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
      if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) != nullptr) return text;
      break;
    }
    case AF_INET6: {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
      if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        if (::inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], text, sizeof text) != nullptr) {
          return text;
        }
      } else if (::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text) != nullptr) {
        return text;
      }
      break;
    }
    case AF_UNIX: return "unix";
    default: break;
  }
  return "-";
}

std::string format_address(const sockaddr* addr, socklen_t len) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (addr->sa_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(addr);
    // Built by appending, not `"unix:" + std::string`: see where() in config.cpp (GCC 12
    // -Wrestrict false positive at -O3).
    std::string out = "unix:";
    out.append(un->sun_path, ::strnlen(un->sun_path, sizeof un->sun_path));
    return out;
  }
  if (addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    std::string out = "[";
    out += text;
    out += "]:";
    out += std::to_string(ntohs(v6->sin6_port));
    return out;
  }
  return "unknown";
}

int somaxconn(int fallback) {
  std::ifstream in("/proc/sys/net/core/somaxconn");
  int value = 0;
  if (in >> value && value > 0) return value;
  return fallback;
}

std::vector<Listener> open_listeners(const std::vector<std::string>& specs,
                                     const ListenOptions& options) {
  const int backlog = std::min(options.backlog, somaxconn(options.backlog));
  std::vector<Listener> out;
  for (const auto& spec : specs) {
    if (is_unix_spec(spec)) {
      out.push_back(bind_unix(spec, backlog, options.socket_mode));
      continue;
    }
    ParsedAddress addr = parse_spec(spec);
    try {
      out.push_back(bind_one(spec, addr, backlog, options.defer_accept_s));
    } catch (const SysError& err) {
      if (!(addr.any_v6 && err.code() == EAFNOSUPPORT)) throw;
      ParsedAddress v4 = parse_spec("0.0.0.0:" + std::to_string(addr.port));
      out.push_back(bind_one(spec, v4, backlog, options.defer_accept_s));
    }
  }
  return out;
}

}  // namespace prefork::common
