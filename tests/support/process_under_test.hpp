// Test support: a process under test (the real binary, or a forked master running the
// Supervisor) that writes a log file the test reads, and the /proc helpers to judge what it
// leaves behind. The test process becomes a child subreaper, so orphaned children are
// reparented to it and can be seen and reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace prefork::testing {

using namespace std::chrono_literals;
using Duration = std::chrono::milliseconds;

inline constexpr Duration kIoTimeout = 5s;

// A unique temporary directory, removed with its contents on destruction (kept when
// PREFORK_KEEP_TEST_DIRS is set).
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
// Polls `path` until it contains `text`.
bool wait_for_text(const std::string& path, const std::string& text, Duration timeout);

// The exit code of a wait status, or -1 when there is none or the process was killed.
int exit_code(std::optional<int> status);
// All live processes whose parent is `parent` (from /proc/*/stat).
std::vector<pid_t> children_of(pid_t parent);
// Children of `parent` that have exited but were not reaped yet.
std::size_t zombies_of(pid_t parent);
// Reaps every exited child of the test process; returns how many were zombies.
int reap_zombies();
// True while `pid` exists and is not a zombie.
bool process_alive(pid_t pid);
// The state letter of `pid` in /proc/<pid>/stat (R, S, T, Z...) and its parent; 0 when it
// does not exist.
char process_state(pid_t pid, pid_t* ppid);
// The parent of `pid` (0 when it does not exist).
pid_t parent_of(pid_t pid);
// Waits until `pid` no longer exists (or is a zombie that we reap).
bool wait_gone(pid_t pid, Duration timeout);
// Runs a shell command to completion; returns its exit code (-1: killed) and its output
// (stdout and stderr).
std::pair<int, std::string> run_command(const std::string& command);

// A position in a log. A wait for a log line starts at a mark, so that it sees only what was
// written after it: take the mark before the action whose effect the line shows
// (`auto mark = p.log_mark(); action(); p.wait_for_log("...", mark)`). There is no default: a
// wait that may match a line an earlier event wrote must say so with kLogStart.
class LogMark {
 public:
  explicit constexpr LogMark(std::size_t offset) : offset_(offset) {}
  [[nodiscard]] constexpr std::size_t offset() const { return offset_; }

 private:
  std::size_t offset_;
};
// The start of the log: for lines that only the process's start can have written.
inline constexpr LogMark kLogStart{0};

// The part common to every process a test starts: its pid, a private directory, its log file,
// waits for its exit, its log lines and its children. Not copyable: it owns the process.
class ProcessUnderTest {
 public:
  ProcessUnderTest(const ProcessUnderTest&) = delete;
  ProcessUnderTest& operator=(const ProcessUnderTest&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const TempDir& dir() const { return dir_; }
  [[nodiscard]] std::string log_path() const { return dir_.path() + "/" + log_name_; }
  [[nodiscard]] std::string log() const { return read_file(log_path()); }
  // The log's current end: what the process writes from now on lies after it.
  [[nodiscard]] LogMark log_mark() const { return LogMark(log().size()); }
  // What the log holds after `from`.
  [[nodiscard]] std::string log_since(LogMark from) const;

  void signal(int signo) const;
  // Waits for the process to exit; returns its wait status, or nullopt on timeout.
  std::optional<int> wait_exit(Duration timeout);
  // Waits until the log has `text` after `from`; returns the mark just past the match (to wait
  // for a later line in order), or nullopt on timeout.
  std::optional<LogMark> wait_for_log(const std::string& text, LogMark from,
                                      Duration timeout = 10s) const;
  // Live children (workers, connection children), from /proc.
  [[nodiscard]] std::vector<pid_t> children() const { return children_of(pid_); }
  // Waits until the process has exactly `count` live children, none of them in `exclude`.
  bool wait_for_children(std::size_t count, Duration timeout = 5s,
                         const std::vector<pid_t>& exclude = {}) const;
  [[nodiscard]] std::size_t open_fd_count() const;

 protected:
  // Makes the test process a child subreaper; the process is started by the derived class,
  // which sets pid_, and writes its log to log_path().
  explicit ProcessUnderTest(std::string log_name);
  ~ProcessUnderTest() = default;
  // SIGKILL to the process and each child it had, and waits until all are gone.
  void kill_all();

  TempDir dir_;
  pid_t pid_ = -1;
  std::optional<int> status_;

 private:
  std::string log_name_;
};

}  // namespace prefork::testing
