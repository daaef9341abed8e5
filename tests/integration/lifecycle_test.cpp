// Starting, stopping and killing the real binary: signals, exit codes, no stray processes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/server_process.hpp"

namespace prefork::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Clock = std::chrono::steady_clock;

TEST(Lifecycle, SigtermWhileARequestIsHalfSentStillAnswersIt) {
  ServerProcess server({.args = {"--workers", "2", "--set", "graceful_timeout=5"}});
  Client c(server.port());
  c.send("GET /slow HTTP/1.1\r\nHost: x\r\n");
  ASSERT_TRUE(c.wait_server_read());  // a worker holds the first half
  const auto start = Clock::now();
  const auto mark = server.log_mark();
  server.signal(SIGTERM);
  // The worker holding the connection has started draining (not just the master).
  ASSERT_TRUE(server.wait_for_log("SIGQUIT: draining 1 connections", mark));
  c.send("\r\n");
  const Response r = c.read_response();
  EXPECT_EQ(r.body, "Hello, World!");
  EXPECT_EQ(r.header("connection"), "close");
  const auto status = server.wait_exit(6s);
  EXPECT_EQ(exit_code(status), 0);
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

TEST(Lifecycle, AKilledWorkerIsReplacedWithinOneSecond) {
  ServerProcess server({.args = {"--workers", "3"}});
  const std::size_t fds_before = server.open_fd_count();
  auto workers = server.children();
  ASSERT_EQ(workers.size(), 3U);
  const pid_t victim = workers[1];
  const auto start = Clock::now();
  const auto mark = server.log_mark();
  ::kill(victim, SIGKILL);
  ASSERT_TRUE(wait_gone(victim, 1s));
  workers.erase(workers.begin() + 1);
  ASSERT_TRUE(server.wait_for_log(
      "(pid " + std::to_string(victim) + ") killed by SIGKILL; respawning now", mark));
  // Back to full size, the victim gone, within one second of the kill.
  const auto deadline = start + 1s;
  bool full = false;
  while (!full && Clock::now() < deadline) {
    const auto now = server.children();
    full = now.size() == 3 && std::find(now.begin(), now.end(), victim) == now.end();
    if (!full) std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(full);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(fetch(server.port(), get_request()).status, 200);
  EXPECT_EQ(server.open_fd_count(), fds_before);
  EXPECT_THAT(server.unexpected_errors({"killed by SIGKILL"}), IsEmpty());
}

// The real-time signals glibc reserves for itself (32 .. SIGRTMIN-1): sigaction() refuses them
// (EINVAL), so whatever the parent left there (GNU make starts its children with 32 and 33
// ignored) is not the server's to change, and not the test's to judge.
std::uint64_t libc_reserved_signals() {
  std::uint64_t mask = 0;
  for (int signo = 32; signo < SIGRTMIN; ++signo) mask |= 1ULL << (signo - 1);
  return mask;
}

// The SigIgn mask of a process, from /proc/PID/status (bit N-1 = signal N), without the
// signals the C library reserves.
std::uint64_t ignored_signals(pid_t pid) {
  for (const std::string& line : lines_of(read_file("/proc/" + std::to_string(pid) + "/status"))) {
    if (line.rfind("SigIgn:", 0) == 0) {
      return std::stoull(line.substr(7), nullptr, 16) & ~libc_reserved_signals();
    }
  }
  return ~0ULL;
}

TEST(Lifecycle, UnderNohupEveryProcessIgnoresOnlySigpipeAndHupStillReloads) {
  // nohup leaves SIGHUP ignored, and ignoring survives exec and fork. The master restores the
  // defaults once at startup (children no longer reset dispositions themselves), so neither it
  // nor any worker, including those forked by a reload, may still ignore SIGHUP.
  ServerProcess server({.config = "workers = 1\n", .wrapper = {"/usr/bin/nohup"}});
  const std::uint64_t only_sigpipe = 1ULL << (SIGPIPE - 1);
  const auto before = server.children();
  ASSERT_EQ(before.size(), 1U);
  EXPECT_EQ(ignored_signals(server.pid()), only_sigpipe);
  EXPECT_EQ(ignored_signals(before[0]), only_sigpipe);

  server.dir().write("server.conf", "workers = 2\n");
  const auto mark = server.log_mark();
  server.signal(SIGHUP);
  ASSERT_TRUE(server.wait_for_log("retiring 1 old workers", mark, 5s));
  ASSERT_TRUE(server.wait_for_children(2, 5s, before));
  for (const pid_t w : server.children()) EXPECT_EQ(ignored_signals(w), only_sigpipe);
  EXPECT_EQ(fetch(server.port(), get_request()).body, "Hello, World!");
}

TEST(Lifecycle, KillingTheMasterTakesEveryWorkerWithIt) {
  ServerProcess server({.args = {"--workers", "3"}});
  const auto workers = server.children();
  ASSERT_EQ(workers.size(), 3U);
  server.signal(SIGKILL);
  ASSERT_TRUE(server.wait_exit(2s));
  // They die with it (PR_SET_PDEATHSIG); orphans are reparented to the test (a subreaper),
  // which reaps them, so "gone" covers both exited and reaped.
  for (const pid_t w : workers) EXPECT_TRUE(wait_gone(w, 2s)) << "worker " << w << " outlived";
}

TEST(Lifecycle, SigintStopsFast) {
  ServerProcess server({.args = {"--workers", "2"}});
  Client idle(server.port());  // an idle keep-alive connection must not hold the stop up
  idle.send(get_request());
  idle.read_response();
  server.signal(SIGINT);
  EXPECT_EQ(exit_code(server.wait_exit(3s)), 0);
}

TEST(Lifecycle, GracefulStopClosesIdleKeepAliveConnectionsAtOnce) {
  ServerProcess server({.args = {"--workers", "1", "--set", "graceful_timeout=20"}});
  Client idle(server.port());
  idle.send(get_request());
  idle.read_response();
  const auto start = Clock::now();
  server.signal(SIGTERM);
  EXPECT_TRUE(idle.wait_closed(5s));
  EXPECT_EQ(exit_code(server.wait_exit(5s)), 0);
  EXPECT_LT(Clock::now() - start, 5s);
}

TEST(Lifecycle, PrintsItsVersionAndHelp) {
  const auto [code, out] = run_binary("--version");
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, ::testing::StartsWith("prefork-httpd "));
  const auto [hcode, help] = run_binary("--help");
  EXPECT_EQ(hcode, 0);
  EXPECT_THAT(help, HasSubstr("--config"));
  EXPECT_THAT(help, HasSubstr("--listen"));
}

TEST(Lifecycle, ABadConfigIsRejectedWithFileLineAndExitCodeTwo) {
  TempDir dir;
  const std::string path = dir.write("bad.conf", "workers = 2\n\nkeepalive_timeout = \"long\"\n");
  const auto [code, out] = run_binary("-c " + path);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr(path + ":3: key 'keepalive_timeout': expected a duration"));
  const auto [tcode, tout] = run_binary("-t -c " + path);
  EXPECT_EQ(tcode, 1);
  EXPECT_THAT(tout, HasSubstr(path + ":3:"));
}

TEST(Lifecycle, TestModeAcceptsAGoodConfigWithoutBinding) {
  TempDir dir;
  const std::string path = dir.write("good.conf", "listen = [\"127.0.0.1:1\"]\nworkers = 2\n");
  const auto [code, out] = run_binary("-t -c " + path);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("is valid"));
}

TEST(Lifecycle, ABindFailureExitsTwo) {
  ServerProcess holder({.args = {"--workers", "1"}});
  const auto [code, out] =
      run_binary("--listen 127.0.0.1:" + std::to_string(holder.port()) + " --set error_log=stderr");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("Address already in use"));
}

}  // namespace
}  // namespace prefork::testing

namespace prefork::testing {
namespace {

TEST(Lifecycle, TheShippedDefaultConfigIsValid) {
  const auto [code, out] =
      run_binary(std::string("-t -c ") + PREFORK_SOURCE_DIR + "/etc/prefork-httpd.conf");
  EXPECT_EQ(code, 0) << out;
}

// The binary signals its running master (no kill(1) needed): through the configuration's
// pidfile, or the pid a service manager gives it (ExecReload=… --pid $MAINPID).
TEST(Lifecycle, TheBinarySignalsItsRunningMaster) {
  TempDir dir;
  const std::string conf =
      dir.write("c.conf", "workers = 1\npidfile = \"" + dir.path() + "/pid\"\n");
  ServerProcess server({.args = {"-c", conf}});
  auto mark = server.log_mark();
  auto [code, out] = run_binary("-c " + conf + " --signal reload");
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(server.wait_for_log("SIGHUP: reloading", mark, kIoTimeout));
  mark = server.log_mark();
  std::tie(code, out) = run_binary("-c " + conf + " --signal reopen");
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(server.wait_for_log("SIGUSR1: log files reopened", mark, kIoTimeout));
  std::tie(code, out) = run_binary("--signal stop --pid " + std::to_string(server.pid()));
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  // Stopped: the pidfile is gone, so there is no master to signal.
  std::tie(code, out) = run_binary("-c " + conf + " --signal reload");
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("no master pid in it"));
  std::tie(code, out) = run_binary("--signal reload");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("needs --pid or a configured pidfile"));
  std::tie(code, out) = run_binary("--signal restart --pid 1");
  EXPECT_EQ(code, 2);
}

// `--signal reload` (the unit's ExecReload) waits for the outcome, so that `systemctl reload`
// fails when the new configuration is rejected and returns once the new one is in force.
class SignalReload : public ::testing::Test {
 protected:
  TempDir dir_;
  const std::string socket_ = dir_.path() + "/added.sock";
  ServerProcess server_{
      {.args = {"--workers", "2"}, .config = "listen = [\"127.0.0.1:0\"]\n", .listen = ""}};
  const std::string pid_ = std::to_string(server_.pid());

  // The running configuration plus a unix-domain listener that only new workers accept on.
  void write_config_adding_a_listener() const {
    std::ofstream(server_.config_path())
        << "listen = [\"127.0.0.1:0\", \"unix:" << socket_ << "\"]\n";
  }
};

TEST_F(SignalReload, ReturnsZeroOnceTheNewConfigurationServes) {
  write_config_adding_a_listener();
  const auto mark = server_.log_mark();
  const auto [code, out] = run_binary("--signal reload --pid " + pid_);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("the new configuration is in force"));
  // Already done when the command returned: nothing here waits.
  const std::string log = server_.log_since(mark);
  EXPECT_THAT(log, HasSubstr("listening on unix:" + socket_));
  EXPECT_THAT(log, HasSubstr("ready: 2 workers serving"));
  Client c = Client::unix_socket(socket_);  // accepted by a worker of the new generation
  c.send(get_request());
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_EQ(fetch(server_.port(), get_request()).status, 200);
  EXPECT_THAT(server_.unexpected_errors(), IsEmpty());
}

TEST_F(SignalReload, FailsWhenTheNewConfigurationIsRejectedAndTheOldOneKeepsServing) {
  std::ofstream(server_.config_path())
      << "listen = [\"127.0.0.1:0\"]\nmax_connections = \"many\"\n";
  const auto mark = server_.log_mark();
  const auto [code, out] = run_binary("--signal reload --pid " + pid_);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("reload rejected: the master (pid " + pid_ +
                             ") keeps the running configuration; its error log says why"));
  EXPECT_THAT(server_.log_since(mark),
              HasSubstr("reload failed, keeping the running configuration"));
  EXPECT_EQ(fetch(server_.port(), get_request()).status, 200);
  // Fixed again, the next reload is applied.
  write_config_adding_a_listener();
  const auto [again, again_out] = run_binary("--signal reload --pid " + pid_);
  EXPECT_EQ(again, 0) << again_out;
  EXPECT_THAT(server_.unexpected_errors({"reload failed"}), IsEmpty());
}

TEST_F(SignalReload, APlainHupStillReloads) {
  write_config_adding_a_listener();
  const auto mark = server_.log_mark();
  server_.signal(SIGHUP);
  ASSERT_TRUE(server_.wait_for_log("ready: 2 workers serving", mark, 10s));
  Client c = Client::unix_socket(socket_);
  c.send(get_request());
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_THAT(server_.unexpected_errors(), IsEmpty());
}

// The Debian postinst runs `--signal upgrade` as root against a master that runs as the service
// user, which may not signal a root process: the command makes itself answerable.
TEST(Lifecycle, SignalReloadAsRootGetsTheAnswerOfAMasterRunningAsAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: the command runs as root, the master not";
  // nobody runs a copy that it can reach whatever the build tree's permissions (umask 077).
  TempDir bin;
  const std::string exe = bin.path() + "/prefork-httpd";
  std::filesystem::copy_file(PREFORK_HTTPD_BINARY, exe);
  ASSERT_EQ(::chmod(exe.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(bin.path().c_str(), 0755), 0);
  ServerProcess server(
      {.args = {"--workers", "1"},
       .wrapper = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                   "/bin/sh", "-c", "shift; exec \"$0\" \"$@\"", exe}});
  struct stat proc {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(server.pid())).c_str(), &proc), 0);
  ASSERT_EQ(proc.st_uid, 65534U);  // the master runs as nobody
  const auto [code, out] = run_binary("--signal reload --pid " + std::to_string(server.pid()));
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("the new configuration is in force"));
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

// A master that never answers (here a process that ignores SIGUSR2) leaves the command waiting
// only for the configured upgrade_timeout plus 5 s: with --pid, -c still names the timeout.
TEST(Lifecycle, SignalUpgradeGivesUpAfterTheConfiguredUpgradeTimeout) {
  TempDir dir;
  const std::string conf = dir.write("c.conf", "upgrade_timeout = 1\n");
  const pid_t silent = ::fork();
  ASSERT_GE(silent, 0);
  if (silent == 0) {
    ::execl("/bin/sh", "sh", "-c", "trap '' USR2; exec sleep 30", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Once it runs sleep, SIGUSR2 is ignored (the shell set that before the exec).
  const std::string comm = "/proc/" + std::to_string(silent) + "/comm";
  const auto exec_deadline = Clock::now() + 5s;
  while (read_file(comm) != "sleep\n" && Clock::now() < exec_deadline) {
    std::this_thread::sleep_for(1ms);
  }
  if (read_file(comm) != "sleep\n") {
    ::kill(silent, SIGKILL);
    ::waitpid(silent, nullptr, 0);
    FAIL() << "the stand-in master did not start";
  }
  const auto start = Clock::now();
  const auto [code, out] =
      run_binary("--signal upgrade --pid " + std::to_string(silent) + " -c " + conf);
  const auto waited = Clock::now() - start;
  ::kill(silent, SIGKILL);
  ::waitpid(silent, nullptr, 0);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("upgrade: no answer from the master (pid " + std::to_string(silent) +
                             ") within 6000 ms"));
  EXPECT_GE(waited, 6s);
  EXPECT_LT(waited, 10s);
}

// Per-connection mode has no generation to start: the answer comes once the configuration is in
// force, and a stopping master says so instead of leaving the command waiting.
TEST(Lifecycle, SignalReloadInPerConnectionModeAndWhileStopping) {
  ServerProcess server({.args = {"--mode", "per-connection", "--set", "graceful_timeout=5"}});
  const std::string pid = std::to_string(server.pid());
  auto [code, out] = run_binary("--signal reload --pid " + pid);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("the new configuration is in force"));
  Client held(server.port());  // keeps the master draining for a while
  held.send("GET / HTTP/1.1\r\nHost: x\r\n");
  ASSERT_TRUE(held.wait_server_read());
  const auto mark = server.log_mark();
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_for_log("graceful stop; draining", mark));
  std::tie(code, out) = run_binary("--signal reload --pid " + pid);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("reload: not done: the master (pid " + pid + ") is stopping"));
  held.send("\r\n");
  EXPECT_EQ(held.read_response().status, 200);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
}

}  // namespace
}  // namespace prefork::testing
