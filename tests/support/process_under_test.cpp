#include "tests/support/process_under_test.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"

namespace prefork::testing {
namespace {

using Clock = std::chrono::steady_clock;

// /proc files of processes that may exit while we read them: any error reads as empty.
std::string read_proc(const std::string& path) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return {};
  char buf[1024];
  const ssize_t n = ::read(fd.get(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// Tests pass whatever their parent left behind: server configuration in the environment
// (PREFORK_HTTPD_<KEY>, PORT) is not theirs to inherit, so no server a test starts sees it;
// a test that wants some passes it explicitly.
const bool kConfigurationEnvironmentCleared = [] {
  std::vector<std::string> names;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (text.starts_with("PREFORK_HTTPD_") || text.starts_with("PORT=")) {
      names.emplace_back(text.substr(0, text.find('=')));
    }
  }
  for (const std::string& name : names) ::unsetenv(name.c_str());
  return true;
}();

}  // namespace

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "prefork-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  if (std::getenv("PREFORK_KEEP_TEST_DIRS") == nullptr) std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  const std::string path = path_ + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool wait_for_lines(const std::string& path, std::size_t lines, Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (lines_of(read_file(path)).size() >= lines) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

bool wait_for_text(const std::string& path, const std::string& text, Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  do {
    if (read_file(path).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(5ms);
  } while (Clock::now() < deadline);
  return false;
}

int exit_code(std::optional<int> status) {
  return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* entry = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    const std::string content = read_proc("/proc/" + std::to_string(pid) + "/stat");
    const auto close = content.rfind(')');
    if (close == std::string::npos || content.size() < close + 3) continue;
    std::istringstream rest(content.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z') out.push_back(pid);
  }
  ::closedir(proc);
  return out;
}

char process_state(pid_t pid, pid_t* ppid) {
  const std::string content = read_proc("/proc/" + std::to_string(pid) + "/stat");
  const auto close = content.rfind(')');
  if (close == std::string::npos || content.size() < close + 3) return 0;
  std::istringstream rest(content.substr(close + 2));
  char state = 0;
  rest >> state >> *ppid;
  return state;
}

pid_t parent_of(pid_t pid) {
  pid_t ppid = 0;
  return process_state(pid, &ppid) != 0 ? ppid : 0;
}

std::size_t zombies_of(pid_t parent) {
  std::size_t n = 0;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return n;
  while (const dirent* entry = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    pid_t ppid = 0;
    if (pid > 0 && process_state(pid, &ppid) == 'Z' && ppid == parent) ++n;
  }
  ::closedir(proc);
  return n;
}

int reap_zombies() {
  int n = 0;
  int status = 0;
  while (::waitpid(-1, &status, WNOHANG) > 0) ++n;
  return n;
}

bool process_alive(pid_t pid) {
  const std::string content = read_proc("/proc/" + std::to_string(pid) + "/stat");
  const auto close = content.rfind(')');
  return close != std::string::npos && content.size() > close + 2 && content[close + 2] != 'Z';
}

bool wait_gone(pid_t pid, Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  do {
    int status = 0;
    ::waitpid(pid, &status, WNOHANG);  // ours (subreaper) or not: harmless either way
    if (!process_alive(pid)) return true;
    std::this_thread::sleep_for(5ms);
  } while (Clock::now() < deadline);
  return false;
}

ProcessUnderTest::ProcessUnderTest(std::string log_name) : log_name_(std::move(log_name)) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
}

std::pair<int, std::string> run_command(const std::string& command) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  while (const std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string ProcessUnderTest::log_since(LogMark from) const {
  const std::string content = log();
  return from.offset() < content.size() ? content.substr(from.offset()) : std::string();
}

void ProcessUnderTest::signal(int signo) const {
  ::kill(pid_, signo);
}

std::optional<int> ProcessUnderTest::wait_exit(Duration timeout) {
  if (status_) return status_;
  const auto deadline = Clock::now() + timeout;
  do {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      status_ = status;
      return status_;
    }
    std::this_thread::sleep_for(5ms);
  } while (Clock::now() < deadline);
  return std::nullopt;
}

std::optional<LogMark> ProcessUnderTest::wait_for_log(const std::string& text, LogMark from,
                                                      Duration timeout) const {
  const auto deadline = Clock::now() + timeout;
  do {
    const std::string content = log();
    if (content.size() > from.offset()) {
      const auto at = content.find(text, from.offset());
      if (at != std::string::npos) return LogMark(at + text.size());
    }
    std::this_thread::sleep_for(5ms);
  } while (Clock::now() < deadline);
  return std::nullopt;
}

bool ProcessUnderTest::wait_for_children(std::size_t count, Duration timeout,
                                         const std::vector<pid_t>& exclude) const {
  const auto deadline = Clock::now() + timeout;
  do {
    const auto kids = children();
    bool fresh = kids.size() == count;
    for (const pid_t k : kids) {
      for (const pid_t e : exclude) fresh = fresh && k != e;
    }
    if (fresh) return true;
    std::this_thread::sleep_for(5ms);
  } while (Clock::now() < deadline);
  return false;
}

std::size_t ProcessUnderTest::open_fd_count() const {
  std::size_t n = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/fd")) {
    (void)entry;
    ++n;
  }
  return n;
}

void ProcessUnderTest::kill_all() {
  const auto kids = children();
  if (!status_) {
    ::kill(pid_, SIGKILL);
    wait_exit(5s);
  }
  for (const pid_t k : kids) {
    ::kill(k, SIGKILL);
    wait_gone(k, 5s);
  }
  reap_zombies();
}

}  // namespace prefork::testing
