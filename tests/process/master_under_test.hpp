// Test harness: a real master process running the Supervisor with injected child entries,
// logging to a file the test reads. Killed and reaped (with any orphaned child) on destruction.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "common/log.hpp"
#include "master/supervisor.hpp"
#include "tests/support/server_process.hpp"

namespace prefork::master {

using namespace std::chrono_literals;
using testing::TempDir;

struct MasterUnderTest {
  TempDir dir;
  pid_t pid = -1;
  std::optional<int> status;

  [[nodiscard]] std::string log_path() const { return dir.path() + "/master.log"; }
  [[nodiscard]] std::string log() const { return testing::read_file(log_path()); }
  void port_file_write(const std::string& bound) const { dir.write("bound", bound); }
  // The port of the master's listener (127.0.0.1:0 picked by the kernel).
  [[nodiscard]] std::uint16_t port() const {
    std::string bound;
    for (int i = 0; i < 1000 && bound.empty(); ++i) {
      bound = testing::read_file(dir.path() + "/bound");
      if (bound.empty()) std::this_thread::sleep_for(5ms);
    }
    return static_cast<std::uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
  }

  MasterUnderTest(common::Config config, common::WorkerEntry worker, ConfigLoader loader = nullptr,
                  SupervisorOptions options = {})
      : MasterUnderTest(std::move(config), ChildEntries{std::move(worker), nullptr},
                        std::move(loader), std::move(options)) {}

  MasterUnderTest(common::Config config, ChildEntries entries, ConfigLoader loader = nullptr,
                  SupervisorOptions options = {}) {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    options.scoreboard_slots = 64;
    pid = ::fork();
    if (pid == 0) {
      common::init_logging("master", log_path(), "debug");
      if (!loader) loader = [config] { return config; };
      auto listeners = common::open_listeners({"127.0.0.1:0"});
      port_file_write(listeners.front().bound);
      Supervisor supervisor(config, std::move(listeners), std::move(entries), loader, options);
      const int code = supervisor.run();
      common::flush_logging();
      ::_exit(code);
    }
  }

  ~MasterUnderTest() {
    if (!status) {
      const auto kids = testing::children_of(pid);
      ::kill(pid, SIGKILL);
      wait_exit(5s);
      for (const pid_t k : kids) testing::wait_gone(k, 5s);
    }
    testing::reap_zombies();
  }

  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!status && std::chrono::steady_clock::now() < deadline) {
      int s = 0;
      if (::waitpid(pid, &s, WNOHANG) == pid) status = s;
      std::this_thread::sleep_for(5ms);
    }
    return status;
  }

  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout = 10s) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      if (log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(5ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }

  bool wait_for_children(std::size_t n, std::chrono::milliseconds timeout = 5s) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      if (testing::children_of(pid).size() == n) return true;
      std::this_thread::sleep_for(5ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }
};

}  // namespace prefork::master
