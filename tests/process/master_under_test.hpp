// Test harness: a real master process running the Supervisor with injected child entries,
// logging to master.log in its directory. Killed and reaped (with any orphaned child) on
// destruction.
#pragma once

#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "common/log.hpp"
#include "master/supervisor.hpp"
#include "tests/support/process_under_test.hpp"

namespace prefork::master {

using namespace std::chrono_literals;

class MasterUnderTest : public testing::ProcessUnderTest {
 public:
  MasterUnderTest(common::Config config, common::WorkerEntry worker, ConfigLoader loader = nullptr,
                  SupervisorOptions options = {})
      : MasterUnderTest(std::move(config), ChildEntries{std::move(worker), nullptr},
                        std::move(loader), std::move(options)) {}

  MasterUnderTest(common::Config config, ChildEntries entries, ConfigLoader loader = nullptr,
                  SupervisorOptions options = {})
      : ProcessUnderTest("master.log") {
    options.scoreboard_slots = 64;
    pid_ = ::fork();
    if (pid_ == 0) {
      common::init_logging("master", log_path(), "debug");
      if (!loader) loader = [config] { return config; };
      auto listeners = common::open_listeners({"127.0.0.1:0"});
      dir_.write("bound", listeners.front().bound);
      Supervisor supervisor(config, std::move(listeners), std::move(entries), loader, options);
      const int code = supervisor.run();
      common::flush_logging();
      ::_exit(code);
    }
  }

  MasterUnderTest(const MasterUnderTest&) = delete;
  MasterUnderTest& operator=(const MasterUnderTest&) = delete;
  ~MasterUnderTest() { kill_all(); }

  // The port of the master's listener (127.0.0.1:0 picked by the kernel).
  [[nodiscard]] std::uint16_t port() const {
    std::string bound;
    for (int i = 0; i < 1000 && bound.empty(); ++i) {
      bound = testing::read_file(dir_.path() + "/bound");
      if (bound.empty()) std::this_thread::sleep_for(5ms);
    }
    return static_cast<std::uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
  }
};

}  // namespace prefork::master
