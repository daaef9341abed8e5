// The supervisor with fake child entry functions (a child that exits, crashes, hangs, ignores
// TERM, dies at boot repeatedly), run as a real master process with real signals.
#include "master/supervisor.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "common/signals.hpp"
#include "tests/process/master_under_test.hpp"
#include "tests/support/server_process.hpp"

namespace prefork::master {
namespace {

using namespace std::chrono_literals;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using testing::kLogStart;
using ::testing::Not;

// A well-behaved worker: beats, and exits 0 when asked to drain or stop.
int idle_worker(const common::ChildContext& ctx) {
  const sigset_t set = common::make_sigset({common::kSignalDrain, common::kSignalStop, SIGINT});
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ctx.slot->set_state(common::WorkerState::kIdle);
  const timespec tick{0, 50'000'000};
  for (;;) {
    ctx.slot->beat();
    if (::sigtimedwait(&set, nullptr, &tick) > 0) return common::kExitOk;
  }
}

common::Config config_with(unsigned workers) {
  common::Config c;
  c.workers = workers;
  c.graceful_timeout = 3'000;
  c.worker_timeout = 600;
  return c;
}

SupervisorOptions fast_policy() {
  SupervisorOptions o;
  o.respawn.quick_death_window = 2'000;
  o.respawn.base_delay = 20;
  o.respawn.max_delay = 200;
  o.respawn.give_up_after = 4;
  o.fast_stop_timeout = 1'000;
  return o;
}

int exit_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Supervisor, GracefulStopDrainsEveryWorkerAndExitsZero) {
  MasterUnderTest m(config_with(3), idle_worker);
  ASSERT_TRUE(m.wait_for_log("ready: 3 workers serving", kLogStart));
  const auto workers = m.children();
  ASSERT_EQ(workers.size(), 3U);
  const auto mark = m.log_mark();
  ::kill(m.pid(), SIGTERM);
  const auto status = m.wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(exit_code(*status), 0);
  for (const pid_t w : workers) EXPECT_FALSE(testing::process_alive(w));
  EXPECT_THAT(m.log_since(mark), HasSubstr("graceful stop"));
  EXPECT_EQ(testing::reap_zombies(), 0);
}

TEST(Supervisor, AWorkerThatExitsIsRespawnedInItsSlot) {
  MasterUnderTest m(config_with(1), [](const common::ChildContext& ctx) {
    ctx.slot->set_state(common::WorkerState::kIdle);
    ctx.slot->beat();
    ::usleep(300'000);
    return 0;
  });
  const auto exited = m.wait_for_log("exited with code 0; respawning", kLogStart);
  ASSERT_TRUE(exited);
  // The slot's next worker starts after the first one's exit.
  ASSERT_TRUE(m.wait_for_log(") started", *exited));
  ::kill(m.pid(), SIGTERM);
  ASSERT_TRUE(m.wait_exit(5s));
}

TEST(Supervisor, ExitCodeTwoIsFatalAndStopsTheServerWithCodeTwo) {
  MasterUnderTest m(
      config_with(2), [](const common::ChildContext&) { return common::kExitConfig; }, nullptr,
      fast_policy());
  const auto status = m.wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(exit_code(*status), 2);
  EXPECT_THAT(m.log(), HasSubstr("exited with code 2: fatal error, not respawning"));
  EXPECT_THAT(m.log(), ::testing::Not(HasSubstr("respawning now")));
}

TEST(Supervisor, ASegfaultIsDescribedAndTheWorkerReplaced) {
  MasterUnderTest m(config_with(1), [](const common::ChildContext& ctx) {
    ctx.slot->set_state(common::WorkerState::kIdle);
    ::usleep(100'000);
    // Children inherit the master's handlers; under a sanitizer that includes the runtime's
    // SIGSEGV handler, which would turn this crash into a report and an abort. The worker under
    // test must die of the signal itself.
    ::signal(SIGSEGV, SIG_DFL);
    ::raise(SIGSEGV);
    return 0;
  });
  const auto crashed = m.wait_for_log("killed by SIGSEGV", kLogStart);
  ASSERT_TRUE(crashed);
  // The replacement starts after the crash (the first worker's start line is before it).
  ASSERT_TRUE(m.wait_for_log(") started", *crashed, 5s));
  ::kill(m.pid(), SIGINT);
  ASSERT_TRUE(m.wait_exit(5s));
}

TEST(Supervisor, ACrashLoopBacksOffThenTheMasterGivesUpNonZero) {
  MasterUnderTest m(
      config_with(2), [](const common::ChildContext&) { return 1; }, nullptr, fast_policy());
  const auto status = m.wait_exit(15s);
  ASSERT_TRUE(status) << m.log();
  EXPECT_EQ(exit_code(*status), common::kExitFailure);
  const std::string log = m.log();
  EXPECT_THAT(log, HasSubstr("respawning in 20 ms (crash-loop backoff)"));
  EXPECT_THAT(log, HasSubstr("respawning in 40 ms (crash-loop backoff)"));
  EXPECT_THAT(log, HasSubstr("respawning in 80 ms (crash-loop backoff)"));
  EXPECT_THAT(log, HasSubstr("every worker keeps dying at start; giving up"));
}

TEST(Supervisor, AHungWorkerIsAbortedForACoreDumpAndReplaced) {
  MasterUnderTest m(config_with(1), [](const common::ChildContext& ctx) {
    // Like a real worker, it reads SIGTERM through its signal mask and never handles SIGABRT.
    const sigset_t abrt = common::make_sigset({SIGABRT});
    ::pthread_sigmask(SIG_UNBLOCK, &abrt, nullptr);
    ::signal(SIGABRT, SIG_DFL);
    ctx.slot->set_state(common::WorkerState::kBusy);
    for (;;) ::pause();  // no heartbeat ever again; SIGABRT's default action ends it
    return 0;
  });
  const auto hung = m.wait_for_log("hung: no heartbeat", kLogStart);
  ASSERT_TRUE(hung);
  EXPECT_THAT(m.log(), ContainsRegex("worker 0 \\(pid [0-9]+, generation 1\\) hung: no heartbeat "
                                     "for [0-9]+ ms in state busy; sending SIGABRT"));
  const auto killed = m.wait_for_log("killed by SIGABRT", *hung);
  ASSERT_TRUE(killed);
  ASSERT_TRUE(m.wait_for_log(") started", *killed));  // the replacement
}

TEST(Supervisor, AHungWorkerIgnoringAbortGetsKill) {
  MasterUnderTest m(config_with(1), [](const common::ChildContext&) {
    ::signal(SIGABRT, SIG_IGN);
    for (;;) ::pause();
    return 0;
  });
  const auto ignored = m.wait_for_log("still alive after SIGABRT; sending SIGKILL", kLogStart);
  ASSERT_TRUE(ignored);
  const auto killed = m.wait_for_log("killed by SIGKILL; respawning", *ignored);
  ASSERT_TRUE(killed);
  ASSERT_TRUE(m.wait_for_log(") started", *killed));  // the replacement
}

TEST(Supervisor, GracefulTimeoutKillsWorkersThatDoNotDrain) {
  common::Config c = config_with(2);
  c.graceful_timeout = 500;
  c.worker_timeout = 60'000;
  MasterUnderTest m(c, [](const common::ChildContext& ctx) {
    ::signal(common::kSignalDrain, SIG_IGN);
    ctx.slot->set_state(common::WorkerState::kIdle);
    for (;;) {
      ctx.slot->beat();
      ::usleep(50'000);
    }
    return 0;
  });
  ASSERT_TRUE(m.wait_for_log("ready: 2 workers serving", kLogStart));
  const auto start = std::chrono::steady_clock::now();
  const auto mark = m.log_mark();
  ::kill(m.pid(), SIGTERM);
  const auto status = m.wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(exit_code(*status), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_THAT(m.log_since(mark), HasSubstr("stop timeout reached; killing 2 remaining children"));
}

TEST(Supervisor, TtinAndTtouResizeThePool) {
  MasterUnderTest m(config_with(2), idle_worker);
  ASSERT_TRUE(m.wait_for_children(2));
  ::kill(m.pid(), SIGTTIN);
  ASSERT_TRUE(m.wait_for_children(3));
  // Standard signals do not queue: two TTOUs sent back to back may arrive as one.
  ::kill(m.pid(), SIGTTOU);
  ASSERT_TRUE(m.wait_for_children(2));
  ::kill(m.pid(), SIGTTOU);
  ASSERT_TRUE(m.wait_for_children(1));
  const auto mark = m.log_mark();
  ::kill(m.pid(), SIGTTOU);  // the last worker stays
  ASSERT_TRUE(m.wait_for_log("SIGTTOU ignored: keeping the last worker", mark));
  EXPECT_EQ(m.children().size(), 1U);
}

TEST(Supervisor, ReloadStartsANewGenerationAndRetiresTheOldOneOnce) {
  common::Config next = config_with(3);
  MasterUnderTest m(config_with(2), idle_worker, [next] { return next; });
  ASSERT_TRUE(m.wait_for_log("ready: 2 workers serving", kLogStart));
  const auto old_workers = m.children();
  const auto mark = m.log_mark();
  ::kill(m.pid(), SIGHUP);
  const auto retiring = m.wait_for_log("retiring 2 old workers", mark);
  ASSERT_TRUE(retiring);
  ASSERT_TRUE(m.wait_for_children(3, 5s, old_workers));
  EXPECT_TRUE(m.wait_for_log("ready: 3 workers serving", mark));
  // Once: the old generation is retired by one message, not again afterwards.
  EXPECT_THAT(m.log_since(*retiring), Not(HasSubstr("retiring")));
}

TEST(Supervisor, AFailedReloadKeepsTheRunningPool) {
  MasterUnderTest m(config_with(2), idle_worker, []() -> common::Config {
    throw common::ConfigError("/etc/x.conf:7: key 'workers': expected an integer");
  });
  ASSERT_TRUE(m.wait_for_log("ready: 2 workers serving", kLogStart));
  const auto before = m.children();
  const auto mark = m.log_mark();
  ::kill(m.pid(), SIGHUP);
  ASSERT_TRUE(
      m.wait_for_log("reload failed, keeping the running configuration: /etc/x.conf:7", mark));
  EXPECT_EQ(m.children(), before);
}

}  // namespace
}  // namespace prefork::master
