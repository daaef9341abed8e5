// Test support: starts the real prefork-httpd binary, talks HTTP to it over loopback sockets,
// and checks what it leaves behind (zombies, stray processes, leaked fds, error lines).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/unique_fd.hpp"
#include "tests/support/process_under_test.hpp"

namespace prefork::testing {

struct ServerOptions {
  std::vector<std::string> args;       // besides --listen and the log redirection
  std::string config;                  // TOML text; written to a file and passed with -c
  std::string listen = "127.0.0.1:0";  // empty: no --listen (the config decides)
  bool wait_ready = true;              // wait for the "ready:" log line
  std::vector<std::string> env;        // extra NAME=VALUE environment entries
  std::vector<std::string> wrapper;    // a command that runs the binary (systemd-socket-activate)
};

// The real binary, its stdout and stderr going to server.log in its directory.
class ServerProcess : public ProcessUnderTest {
 public:
  explicit ServerProcess(ServerOptions options = {});
  // Checks that the master reaped every child it had and that none outlives it, then kills
  // (SIGKILL) and reaps the master and any child still around.
  ~ServerProcess();

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string config_path() const { return dir_.path() + "/server.conf"; }

  // Log lines at error or critical level that match none of `allowed` (substrings).
  [[nodiscard]] std::vector<std::string> unexpected_errors(
      const std::vector<std::string>& allowed = {}) const;

 private:
  std::uint16_t port_ = 0;
};

// Runs the binary to completion (for -t, --version, bad configs) through the shell, with `env`
// (NAME=VALUE entries without single quotes) added to its environment; returns its exit code
// and its output (stdout and stderr).
std::pair<int, std::string> run_binary(const std::string& args,
                                       const std::vector<std::string>& env = {});

// Which of `pids` holds the server side of the loopback TCP connection whose client end is
// `client_fd` (matched through /proc/net/tcp inodes); 0 when none.
pid_t connection_owner(const std::vector<pid_t>& pids, int client_fd);
// Waits until the server has accepted the loopback IPv4 connection whose client end is
// `client_fd` and read every byte sent on it so far (its receive queue is empty).
bool wait_server_read(int client_fd, Duration timeout = kIoTimeout);

struct Response {
  int status = 0;
  std::string status_line;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string head;  // as received: status line and headers, up to and including the blank line
  std::string body;
  [[nodiscard]] std::string header(const std::string& name) const;
  // True when `line` ("Name: value", exactly as sent) is one of the header lines.
  [[nodiscard]] bool has_header_line(const std::string& line) const;
};

// A test client whose every wait is bounded. Over TCP its small writes go out at once
// (TCP_NODELAY: no Nagle wait for the peer's acknowledgement).
class Client {
 public:
  explicit Client(std::uint16_t port, const std::string& host = "127.0.0.1");
  // A client of a unix-domain socket.
  static Client unix_socket(const std::string& path);
  void send(const std::string& bytes) const;
  void shutdown_write() const;
  // wait_server_read() of this connection.
  bool wait_server_read(Duration timeout = kIoTimeout) const;
  // Reads one response (HEAD: no body). Throws std::runtime_error on timeout/EOF/garbage.
  Response read_response(bool head_request = false, Duration timeout = kIoTimeout);
  // True when the peer closes the connection (EOF or reset) within `timeout` and nothing was
  // received but not yet read; bytes that arrive first are kept (see pending()) and make it false.
  bool wait_closed(Duration timeout = kIoTimeout);
  // Everything until the peer closes (or timeout).
  std::string read_all(Duration timeout = kIoTimeout);
  // Reads more bytes into the buffer; false on EOF, error or timeout.
  bool fill(Duration timeout = kIoTimeout);
  // Bytes received but not consumed by a read yet.
  [[nodiscard]] const std::string& pending() const { return buffer_; }
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  explicit Client(common::UniqueFd fd) : fd_(std::move(fd)) {}
  common::UniqueFd fd_;
  std::string buffer_;
};

// One request on a fresh connection; returns the response.
Response fetch(std::uint16_t port, const std::string& request, bool head_request = false);
std::string get_request(const std::string& path = "/", const std::string& extra_headers = "");

}  // namespace prefork::testing
