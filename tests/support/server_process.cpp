#include "tests/support/server_process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace prefork::testing {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void exec_server(const std::vector<std::string>& argv, const std::string& log_path,
                              const std::vector<std::string>& env) {
  for (const auto& entry : env) ::putenv(const_cast<char*>(entry.c_str()));
  // CLOEXEC: the server gets the log as stdout/stderr only, not as an extra descriptor.
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ::dup2(log_fd, STDOUT_FILENO);
  ::dup2(log_fd, STDERR_FILENO);
  std::vector<char*> raw;
  for (const auto& a : argv) raw.push_back(const_cast<char*>(a.c_str()));
  raw.push_back(nullptr);
  ::execv(raw[0], raw.data());
  ::_exit(127);
}

}  // namespace

std::pair<int, std::string> run_binary(const std::string& args,
                                       const std::vector<std::string>& env) {
  std::string command = "env";
  for (const auto& entry : env) command += " '" + entry + "'";
  return run_command(command + " " + PREFORK_HTTPD_BINARY + " " + args);
}

ServerProcess::ServerProcess(ServerOptions options) : ProcessUnderTest("server.log") {
  std::vector<std::string> argv = options.wrapper;
  argv.push_back(PREFORK_HTTPD_BINARY);
  if (!options.listen.empty()) argv.insert(argv.end(), {"--listen", options.listen});
  if (!options.config.empty()) {
    dir_.write("server.conf", options.config);
    argv.insert(argv.end(), {"-c", config_path()});
  }
  argv.insert(argv.end(), options.args.begin(), options.args.end());
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) exec_server(argv, log_path(), options.env);
  if (!options.wait_ready) return;
  if (!wait_for_log("ready:", kLogStart, 10s)) {
    throw std::runtime_error("server did not become ready; log:\n" + log());
  }
  static const std::regex listening(R"(listening on \S*:(\d+))");
  std::smatch match;
  const std::string text = log();
  // A unix-domain listener has no port; port() is 0 then.
  if (std::regex_search(text, match, listening)) {
    port_ = static_cast<std::uint16_t>(std::stoi(match[1]));
  }
}

ServerProcess::~ServerProcess() {
  // Every test ends with these checks: the master reaped all it started, and nothing it
  // started outlives it.
  if (!status_) {
    // A child that exited a moment ago may not be reaped yet: give the master a moment.
    // Judge by the last count the loop saw: counting again afterwards could catch a child that
    // exited in between and has not been reaped yet, which is no fault of the master.
    const auto deadline = Clock::now() + 5s;  // generous: CI machines can be loaded
    std::size_t zombies = zombies_of(pid_);
    while (zombies > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
      zombies = zombies_of(pid_);
    }
    EXPECT_EQ(zombies, 0U) << "children of the master left unreaped for 5 s";
  }
  const auto workers = children();
  if (!status_) {
    ::kill(pid_, SIGKILL);
    wait_exit(5s);
  }
  for (const pid_t w : workers) {
    EXPECT_TRUE(wait_gone(w, 5s)) << "child " << w << " outlived the master";
    ::kill(w, SIGKILL);
  }
  reap_zombies();
}

std::vector<std::string> ServerProcess::unexpected_errors(
    const std::vector<std::string>& allowed) const {
  std::vector<std::string> out;
  std::istringstream lines(log());
  for (std::string line; std::getline(lines, line);) {
    if (line.find("[error]") == std::string::npos && line.find("[critical]") == std::string::npos) {
      continue;
    }
    bool ok = false;
    for (const auto& a : allowed) ok = ok || line.find(a) != std::string::npos;
    if (!ok) out.push_back(line);
  }
  return out;
}

namespace {

std::uint16_t peer_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

std::uint16_t local_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

}  // namespace

namespace {

// The server side of the loopback TCP connection whose client end is `client_fd`, from
// /proc/net/tcp: "sl local_address rem_address st tx_queue:rx_queue ... inode" (ports and
// queues in hex). It is the established row from the server's port to our local port (the
// local port alone is not unique: the kernel reuses it towards other destinations).
struct ServerSide {
  std::string inode;
  unsigned long unread = 0;  // bytes received but not read by the server yet (rx_queue)
};

std::optional<ServerSide> server_side(int client_fd) {
  const std::uint16_t client_port = local_port(client_fd);
  const std::uint16_t server_port = peer_port(client_fd);
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);
  while (std::getline(table, line)) {
    std::istringstream row(line);
    std::string sl, local, remote, st, queues, tr, retr, uid, timeout, ino;
    row >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> ino;
    const auto rport =
        static_cast<std::uint16_t>(std::stoul(remote.substr(remote.find(':') + 1), nullptr, 16));
    const auto lport =
        static_cast<std::uint16_t>(std::stoul(local.substr(local.find(':') + 1), nullptr, 16));
    if (rport == client_port && lport == server_port && st == "01") {  // ESTABLISHED
      return ServerSide{ino, std::stoul(queues.substr(queues.find(':') + 1), nullptr, 16)};
    }
  }
  return std::nullopt;
}

}  // namespace

pid_t connection_owner(const std::vector<pid_t>& pids, int client_fd) {
  const auto side = server_side(client_fd);
  const std::string inode = side ? side->inode : std::string();
  if (inode.empty()) return 0;
  const std::string target = "socket:[" + inode + "]";
  for (const pid_t pid : pids) {
    std::error_code ec;
    for (const auto& fd :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
      std::error_code link_ec;
      if (std::filesystem::read_symlink(fd.path(), link_ec).string() == target) return pid;
    }
  }
  return 0;
}

std::string Response::header(const std::string& name) const {
  const auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

bool Response::has_header_line(const std::string& line) const {
  return head.find("\r\n" + line + "\r\n") != std::string::npos;
}

Client::Client(std::uint16_t port, const std::string& host) {
  const bool v6 = host.find(':') != std::string::npos;
  fd_.reset(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    ::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &a->sin_addr);
    len = sizeof *a;
  }
  if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    throw std::runtime_error("connect to " + host + ":" + std::to_string(port) + " failed");
  }
  const int one = 1;
  ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Client Client::unix_socket(const std::string& path) {
  common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("connect to unix:" + path + " failed");
  }
  return Client(std::move(fd));
}

void Client::send(const std::string& bytes) const {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd_.get(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error("send failed");
    off += static_cast<std::size_t>(n);
  }
}

void Client::shutdown_write() const {
  ::shutdown(fd_.get(), SHUT_WR);
}

bool Client::fill(Duration timeout) {
  pollfd p{fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char buf[65536];
  const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
  if (n <= 0) return false;
  buffer_.append(buf, static_cast<std::size_t>(n));
  return true;
}

bool Client::wait_server_read(Duration timeout) const {
  return testing::wait_server_read(fd_.get(), timeout);
}

bool wait_server_read(int client_fd, Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  do {
    // Everything we sent was acknowledged (it reached the server's socket), and nothing of it
    // waits there unread.
    int unacknowledged = 0;
    const bool delivered =
        ::ioctl(client_fd, SIOCOUTQ, &unacknowledged) == 0 && unacknowledged == 0;
    const auto side = server_side(client_fd);
    if (delivered && side && side->unread == 0) return true;
    std::this_thread::sleep_for(2ms);
  } while (Clock::now() < deadline);
  return false;
}

Response Client::read_response(bool head_request, Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  auto remaining = [&] {
    return std::max(Duration(0), std::chrono::duration_cast<Duration>(deadline - Clock::now()));
  };
  std::size_t end = std::string::npos;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill(remaining())) throw std::runtime_error("no complete response head; got: " + buffer_);
  }
  Response r;
  r.head = buffer_.substr(0, end + 4);
  std::istringstream head(buffer_.substr(0, end));
  std::getline(head, r.status_line);
  if (!r.status_line.empty() && r.status_line.back() == '\r') r.status_line.pop_back();
  if (r.status_line.size() < 12 || r.status_line.rfind("HTTP/1.", 0) != 0) {
    throw std::runtime_error("bad status line: " + r.status_line);
  }
  r.status = std::stoi(r.status_line.substr(9, 3));
  for (std::string line; std::getline(head, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
  }
  buffer_.erase(0, end + 4);
  const bool has_body = !head_request && r.status != 204 && r.status != 304 && r.status >= 200;
  const std::size_t length = has_body && r.headers.contains("content-length")
                                 ? std::stoul(r.headers["content-length"])
                                 : 0;
  while (buffer_.size() < length) {
    if (!fill(remaining())) throw std::runtime_error("truncated body");
  }
  r.body = buffer_.substr(0, length);
  buffer_.erase(0, length);
  return r;
}

bool Client::wait_closed(Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<Duration>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return buffer_.empty();
    if (n < 0) return false;  // an error, not a close
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

std::string Client::read_all(Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd p{fd_.get(), POLLIN, 0};
    const auto left = std::chrono::duration_cast<Duration>(deadline - Clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<long>(0, left.count()))) <= 0) break;
    char buf[65536];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
  return std::exchange(buffer_, {});
}

Response fetch(std::uint16_t port, const std::string& request, bool head_request) {
  Client c(port);
  c.send(request);
  return c.read_response(head_request);
}

std::string get_request(const std::string& path, const std::string& extra_headers) {
  return "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n" + extra_headers + "\r\n";
}

}  // namespace prefork::testing
