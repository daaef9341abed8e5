// Binary upgrade (SIGUSR2) of the real binary under load: the executable file is replaced, the
// old master execs the new one with its listeners, hands over once the new workers serve, and
// drains. Clients that never retry see no failure; a broken new binary changes nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "tests/support/notify_receiver.hpp"
#include "tests/support/server_process.hpp"

namespace prefork::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

// Clients that never retry: keep-alive ones sending back to back, and connection-per-request
// ones. A request that gets no complete 200 is a failure. Bounded by count and time.
class NoRetryLoad {
 public:
  explicit NoRetryLoad(std::uint16_t port) : port_(port) {
    for (int i = 0; i < 3; ++i) threads_.emplace_back([this] { keep_alive(); });
    threads_.emplace_back([this] { per_request(); });
  }
  ~NoRetryLoad() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  [[nodiscard]] int requests() const { return requests_; }
  [[nodiscard]] int failures() const { return failures_; }
  [[nodiscard]] std::string first_failure() const {
    const std::lock_guard lock(mutex_);
    return first_failure_;
  }
  void wait_for_more(int count) const {
    const int target = requests_ + count;
    const auto deadline = Clock::now() + 20s;
    while (requests_ < target && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  }

 private:
  [[nodiscard]] bool running() const {
    return !stop_ && requests_ < 500'000 && Clock::now() < deadline_;
  }
  // One connection until the server says close; the next request goes on a new connection.
  void keep_alive() {
    while (running()) {
      try {
        Client c(port_);
        while (running()) {
          c.send(get_request());
          const Response r = c.read_response();
          count(r);
          if (r.header("connection") == "close") break;
        }
      } catch (const std::exception& err) {
        fail(err.what());
      }
    }
  }
  void per_request() {
    while (running()) {
      try {
        count(fetch(port_, get_request("/", "Connection: close\r\n")));
      } catch (const std::exception& err) {
        fail(err.what());
      }
    }
  }
  void count(const Response& r) {
    ++requests_;
    if (r.status != 200 || r.body != "Hello, World!") fail("answer " + r.status_line);
  }
  void fail(const std::string& why) {
    ++requests_;
    const std::lock_guard lock(mutex_);
    if (failures_++ == 0) first_failure_ = why;
  }

  std::uint16_t port_;
  const Clock::time_point deadline_ = Clock::now() + 60s;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> failures_{0};
  mutable std::mutex mutex_;
  std::string first_failure_;
  std::vector<std::thread> threads_;
};

std::string exe_of(pid_t pid) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
}

pid_t read_pid(const std::string& path) {
  std::ifstream in(path);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

// A server run from its own copy of the binary, so the test can replace the file as dpkg does.
// The test stands in for systemd: the service manager is the masters' subreaper, and hears them
// on NOTIFY_SOCKET.
struct UpgradableServer {
  TempDir bin;
  std::string exe = bin.path() + "/prefork-httpd";
  NotifyReceiver systemd{bin.path() + "/notify"};
  std::unique_ptr<ServerProcess> server;

  explicit UpgradableServer(const std::string& config) {
    install(PREFORK_HTTPD_BINARY);
    // The shell execs the copy in its own place: the master's path is the copy's.
    server = std::make_unique<ServerProcess>(
        ServerOptions{.config = config + "pidfile = \"" + bin.path() + "/pid\"\n",
                      .env = {"NOTIFY_SOCKET=" + systemd.path()},
                      .wrapper = {"/bin/sh", "-c", "shift; exec \"$0\" \"$@\"", exe}});
  }
  // The pid in the next MAINPID= the master sends, and that process's parent at that moment;
  // {0, 0} when none comes within `timeout`.
  [[nodiscard]] std::pair<pid_t, pid_t> next_main_pid(Duration timeout) const {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      const std::string message =
          systemd.next(std::chrono::duration_cast<Duration>(deadline - Clock::now()) + 1ms);
      if (const auto at = message.find("MAINPID="); at != std::string::npos) {
        const pid_t pid = std::atoi(message.c_str() + at + 8);
        return {pid, parent_of(pid)};
      }
    }
    return {0, 0};
  }
  // True when the next notifications (within `timeout`) hold a BARRIER=1 with its descriptor,
  // which the receiver then closes, as systemd does once it has read what came before.
  [[nodiscard]] bool next_barrier(Duration timeout) const {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      const auto message =
          systemd.receive(std::chrono::duration_cast<Duration>(deadline - Clock::now()) + 1ms);
      if (message.text == "BARRIER=1" && message.with_fd) return true;
    }
    return false;
  }
  // Replaces the executable as a package manager does: a new file renamed over the old one.
  void install(const std::string& from) const {
    const std::string temp = exe + ".new";
    std::filesystem::copy_file(from, temp, std::filesystem::copy_options::overwrite_existing);
    ::chmod(temp.c_str(), 0755);
    std::filesystem::rename(temp, exe);
  }
  void install_script(const std::string& body) const {
    const std::string temp = exe + ".new";
    std::ofstream(temp) << "#!/bin/sh\n" << body << "\n";
    ::chmod(temp.c_str(), 0755);
    std::filesystem::rename(temp, exe);
  }
  [[nodiscard]] pid_t pidfile_pid() const { return read_pid(bin.path() + "/pid"); }
};

// Stops a master that is our child only by adoption (we are the subreaper), and reaps it.
void stop_adopted_master(pid_t pid) {
  ASSERT_GT(pid, 1);  // never kill(0, …) or kill(-1, …): that would be the whole group
  ::kill(pid, SIGTERM);
  EXPECT_TRUE(wait_gone(pid, 10s)) << "the new master did not stop";
  reap_zombies();
}

// Upgrades the master `pid` under load: the file is replaced, SIGUSR2 sent; waits until the old
// master has drained and exited (`wait_exit` reaps it) and returns the new master's pid.
pid_t upgrade(UpgradableServer& s, pid_t master, NoRetryLoad& load,
              const std::function<bool()>& wait_exit) {
  if (master <= 1) {  // never kill(0, …): that would signal the whole process group
    ADD_FAILURE() << "no master to upgrade";
    return 0;
  }
  const auto old_children = children_of(master);
  s.install(PREFORK_HTTPD_BINARY);  // the "new version": a new file at the same path
  const auto mark = s.server->log_mark();
  ::kill(master, SIGUSR2);
  // systemd (PID 1, or the subreaper of `systemd --user`) can only wait for a main process that
  // is its own child: when MAINPID= names the new master, its parent must already be us, not
  // the old master, which is still draining then.
  const auto [main_pid, parent] = s.next_main_pid(20s);
  EXPECT_GT(main_pid, 1) << "no MAINPID=" << s.server->log();
  EXPECT_EQ(parent, ::getpid()) << "MAINPID=" << main_pid << " is not the service manager's child";
  // The old master drains only once systemd has read MAINPID= (a barrier), so that its exit
  // never finds systemd still naming it: until this receiver closes the barrier, no drain.
  const auto handed = s.server->wait_for_log("hands over and drains", mark, 20s);
  EXPECT_TRUE(handed) << s.server->log();
  EXPECT_THAT(s.server->log_since(handed.value_or(mark)), Not(HasSubstr("graceful stop")));
  EXPECT_TRUE(s.next_barrier(20s)) << "no BARRIER=1 after MAINPID=";
  EXPECT_TRUE(s.server->wait_for_log("graceful stop", mark, 20s)) << s.server->log();
  EXPECT_THAT(s.server->log_since(mark), Not(HasSubstr("did not confirm")));
  EXPECT_TRUE(wait_exit()) << "the old master did not finish draining";
  for (const pid_t c : old_children) EXPECT_TRUE(wait_gone(c, 5s)) << "old child " << c;
  const pid_t next = s.pidfile_pid();
  EXPECT_GT(next, 1);
  EXPECT_NE(next, master);
  EXPECT_EQ(next, main_pid);
  EXPECT_TRUE(process_alive(next));
  load.wait_for_more(300);  // the new master's children serve
  return next;
}

void check_runs_new_image(pid_t master, const std::string& exe, bool prefork, std::uint16_t port) {
  EXPECT_EQ(exe_of(master), exe);  // not "… (deleted)": the file that is there now
  const Response status = fetch(port, get_request("/server-status?format=json"));
  EXPECT_THAT(status.body, ContainsRegex("\"build_id\":\"[0-9a-f]{40}\",\"upgraded_at\":[0-9]"));
  EXPECT_THAT(status.body, ContainsRegex("\"master\":\\{\"pid\":" + std::to_string(master) + ","));
  const auto children = children_of(master);
  if (prefork) {
    EXPECT_FALSE(children.empty());
  }
  for (const pid_t c : children) {
    // A connection child may have exited since it was listed: only a live one has an image.
    if (const std::string image = exe_of(c); !image.empty()) {
      EXPECT_EQ(image, exe) << c;
    }
  }
  // A connection child that exited a moment ago may not be reaped yet: judge by the last count.
  const auto deadline = Clock::now() + 5s;
  std::size_t zombies = zombies_of(master);
  while (zombies > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    zombies = zombies_of(master);
  }
  EXPECT_EQ(zombies, 0U);
}

void upgrade_twice(const std::string& config, bool prefork) {
  UpgradableServer s(config);
  const pid_t first = s.server->pid();
  EXPECT_EQ(s.pidfile_pid(), first);
  NoRetryLoad load(s.server->port());
  load.wait_for_more(300);
  const pid_t second = upgrade(s, first, load, [&] {
    return exit_code(s.server->wait_exit(20s)) == 0;  // our own child: reaped here
  });
  check_runs_new_image(second, s.exe, prefork, s.server->port());
  // Once more: the new master upgrades just as the first did (our child by adoption, as we
  // are the subreaper).
  const pid_t third = upgrade(s, second, load, [&] {
    const bool gone = wait_gone(second, 20s);
    reap_zombies();
    return gone;
  });
  load.stop();
  check_runs_new_image(third, s.exe, prefork, s.server->port());
  EXPECT_EQ(load.failures(), 0) << load.first_failure() << " of " << load.requests();
  std::printf("two upgrades under load: %d requests, %d failed\n", load.requests(),
              load.failures());
  EXPECT_THAT(s.server->unexpected_errors(), IsEmpty());
  stop_adopted_master(third);
}

TEST(Upgrade, TwoUpgradesUnderLoadFailNoRequestAndRunTheNewImage) {
  upgrade_twice("workers = 2\n", true);
}

TEST(Upgrade, PerConnectionModeUpgradesUnderLoadWithoutAFailure) {
  upgrade_twice("mode = \"per-connection\"\n", false);
}

// A new binary that cannot serve changes nothing: the old master and its workers go on.
void broken_upgrade(const std::string& script, const std::string& reason) {
  UpgradableServer s("workers = 2\nupgrade_timeout = 1\n");
  const pid_t master = s.server->pid();
  const auto workers = s.server->children();
  NoRetryLoad load(s.server->port());
  load.wait_for_more(200);
  s.install_script(script);
  const auto mark = s.server->log_mark();
  s.server->signal(SIGUSR2);
  ASSERT_TRUE(s.server->wait_for_log("still serving (prefork-httpd", mark, 10s)) << s.server->log();
  EXPECT_THAT(s.server->log_since(mark), HasSubstr(reason));
  load.wait_for_more(200);
  load.stop();
  EXPECT_EQ(load.failures(), 0) << load.first_failure() << " of " << load.requests();
  EXPECT_EQ(s.server->children(), workers);
  EXPECT_EQ(s.pidfile_pid(), master);
  EXPECT_EQ(fetch(s.server->port(), get_request()).body, "Hello, World!");
  EXPECT_THAT(s.server->unexpected_errors({"upgrade"}), IsEmpty());
}

TEST(Upgrade, ANewBinaryThatExitsAtStartChangesNothing) {
  broken_upgrade("exit 1", "exited with code 1");
}

TEST(Upgrade, ANewBinaryThatCrashesChangesNothing) {
  broken_upgrade("kill -SEGV $$", "killed by SIGSEGV");
}

TEST(Upgrade, ANewBinaryThatNeverServesIsKilledAfterUpgradeTimeout) {
  broken_upgrade("exec sleep 60", "did not report serving within upgrade_timeout (1000 ms)");
}

TEST(Upgrade, AMissingExecutableChangesNothing) {
  UpgradableServer s("workers = 1\n");
  std::filesystem::remove(s.exe);
  const auto mark = s.server->log_mark();
  s.server->signal(SIGUSR2);
  ASSERT_TRUE(s.server->wait_for_log("still serving (prefork-httpd", mark, 10s));
  EXPECT_THAT(s.server->log_since(mark), HasSubstr("No such file or directory"));
  EXPECT_THAT(s.server->log_since(mark), HasSubstr("exited with code 127"));
  EXPECT_EQ(fetch(s.server->port(), get_request()).body, "Hello, World!");
}

// `prefork-httpd --signal upgrade` (what the Debian package's postinst runs) waits for the
// outcome: 0 once the new master serves, 1 when the new binary failed.
std::pair<int, std::string> signal_upgrade(const std::string& args) {
  return run_command(std::string(PREFORK_HTTPD_BINARY) + " --signal upgrade " + args);
}

TEST(Upgrade, SignalUpgradeReturnsOnceTheNewMasterServes) {
  UpgradableServer s("workers = 2\n");
  const pid_t old_master = s.server->pid();
  s.install(PREFORK_HTTPD_BINARY);
  // systemd's part: it closes the old master's barrier once it has read MAINPID=.
  auto barrier = std::async(std::launch::async, [&s] { return s.next_barrier(20s); });
  const auto [code, out] = signal_upgrade("-c " + s.server->config_path());  // via the pidfile
  EXPECT_EQ(code, 0) << out << s.server->log();
  EXPECT_TRUE(barrier.get()) << "no BARRIER=1 after MAINPID=";
  EXPECT_THAT(s.server->log(), Not(HasSubstr("did not confirm")));
  EXPECT_THAT(out, HasSubstr("upgrade: the new master serves; the old one (pid " +
                             std::to_string(old_master) + ") drains"));
  // Already true when the command returned: the pidfile names the new master.
  const pid_t next = s.pidfile_pid();
  EXPECT_NE(next, old_master);
  EXPECT_TRUE(process_alive(next));
  EXPECT_EQ(exit_code(s.server->wait_exit(20s)), 0);
  EXPECT_EQ(fetch(s.server->port(), get_request()).body, "Hello, World!");
  EXPECT_THAT(s.server->unexpected_errors(), IsEmpty());
  if (next > 1) stop_adopted_master(next);
}

TEST(Upgrade, SignalUpgradeFailsWhenTheNewBinaryDoes) {
  UpgradableServer s("workers = 1\n");
  const std::string pid = std::to_string(s.server->pid());
  s.install_script("exit 1");
  const auto [code, out] = signal_upgrade("--pid " + pid);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("upgrade failed: the master (pid " + pid +
                             ") still serves the running version; its error log says why"));
  EXPECT_EQ(s.pidfile_pid(), s.server->pid());
  EXPECT_EQ(fetch(s.server->port(), get_request()).body, "Hello, World!");
  EXPECT_THAT(s.server->unexpected_errors({"upgrade"}), IsEmpty());
}

}  // namespace
}  // namespace prefork::testing
