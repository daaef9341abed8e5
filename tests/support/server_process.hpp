// Test support: starts the real prefork-httpd binary, talks HTTP to it over loopback sockets,
// and checks what it leaves behind (zombies, stray processes, leaked fds, error lines).
// The test process becomes a child subreaper, so orphaned workers are reparented to it and
// can be seen and reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"

namespace prefork::testing {

using namespace std::chrono_literals;
using Duration = std::chrono::milliseconds;

inline constexpr Duration kIoTimeout = 5s;

// A unique temporary directory, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  [[nodiscard]] const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

std::string read_file(const std::string& path);
// The lines of `text`, without their newlines.
std::vector<std::string> lines_of(const std::string& text);
// Polls `path` until it has at least `lines` lines (workers flush logs once a second).
bool wait_for_lines(const std::string& path, std::size_t lines, Duration timeout = 5s);

struct ServerOptions {
  std::vector<std::string> args;       // besides --listen and the log redirection
  std::string config;                  // TOML text; written to a file and passed with -c
  std::string listen = "127.0.0.1:0";  // empty: no --listen (the config decides)
  bool wait_ready = true;              // wait for the "ready:" log line
  std::vector<std::string> env;        // extra NAME=VALUE environment entries
  std::vector<std::string> wrapper;    // a command that runs the binary (systemd-socket-activate)
};

class ServerProcess {
 public:
  explicit ServerProcess(ServerOptions options = {});
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  // Kills (SIGKILL) and reaps the master and any worker still around.
  ~ServerProcess();

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string log() const;
  [[nodiscard]] const TempDir& dir() const { return dir_; }
  [[nodiscard]] std::string config_path() const { return dir_.path() + "/server.conf"; }

  void signal(int signo) const;
  // Waits for the master to exit; returns its wait status, or nullopt on timeout.
  std::optional<int> wait_exit(Duration timeout);
  // Waits until the log contains `text` (after `from` bytes); returns false on timeout.
  bool wait_for_log(const std::string& text, Duration timeout = kIoTimeout,
                    std::size_t from = 0) const;
  // Live children of the master (workers, connection children), from /proc.
  [[nodiscard]] std::vector<pid_t> children() const;
  // Waits until the master has exactly `count` children that all differ from `exclude`.
  bool wait_for_children(std::size_t count, Duration timeout,
                         const std::vector<pid_t>& exclude = {}) const;
  [[nodiscard]] std::size_t open_fd_count() const;
  // Log lines at error or critical level that match none of `allowed` (substrings).
  [[nodiscard]] std::vector<std::string> unexpected_errors(
      const std::vector<std::string>& allowed = {}) const;

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::optional<int> status_;
};

// The exit code of a wait status, or -1 when there is none or the process was killed.
int exit_code(std::optional<int> status);

// All processes whose parent is `parent` (from /proc/*/stat).
std::vector<pid_t> children_of(pid_t parent);
// Children of `parent` that have exited but were not reaped yet.
std::size_t zombies_of(pid_t parent);
// Which of `pids` holds the server side of the loopback TCP connection whose client end is
// `client_fd` (matched through /proc/net/tcp inodes); 0 when none.
pid_t connection_owner(const std::vector<pid_t>& pids, int client_fd);
// Reaps every exited child of the test process; returns how many were zombies.
int reap_zombies();
// True when some child of the test process (other than known ones) is still alive.
bool process_alive(pid_t pid);
// Waits until `pid` no longer exists (or is a zombie that we reap).
bool wait_gone(pid_t pid, Duration timeout);

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
