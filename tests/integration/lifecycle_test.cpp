// Starting, stopping and killing the real binary: signals, exit codes, no stray processes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
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

}  // namespace
}  // namespace prefork::testing
