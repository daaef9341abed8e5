#include "master/worker_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace prefork::master {
namespace {

RespawnPolicy test_policy() {
  RespawnPolicy p;
  p.quick_death_window = 1'000;
  p.base_delay = 100;
  p.max_delay = 800;
  p.give_up_after = 3;
  return p;
}

// Spawns everything due at `now` with pids 100, 101, ...
void spawn_all(WorkerTable& table, Millis now, pid_t& next_pid) {
  for (const auto slot : table.due_spawns(now)) table.on_spawned(slot, next_pid++, now);
}

TEST(RespawnPolicy, BacksOffExponentiallyUpToTheCap) {
  const RespawnPolicy p = test_policy();
  EXPECT_EQ(p.delay_for(0), 0);
  EXPECT_EQ(p.delay_for(1), 0);
  EXPECT_EQ(p.delay_for(2), 100);
  EXPECT_EQ(p.delay_for(3), 200);
  EXPECT_EQ(p.delay_for(4), 400);
  EXPECT_EQ(p.delay_for(5), 800);
  EXPECT_EQ(p.delay_for(30), 800);
}

TEST(WorkerTable, AddsWorkersIntoStableSlots) {
  WorkerTable table(8, test_policy());
  EXPECT_EQ(table.add_workers(3, 0), 3U);
  EXPECT_EQ(table.due_spawns(0), (std::vector<std::size_t>{0, 1, 2}));
  pid_t pid = 100;
  spawn_all(table, 0, pid);
  EXPECT_EQ(table.count_current(SlotState::kRunning), 3U);
  EXPECT_EQ(table.live_pids(), (std::vector<pid_t>{100, 101, 102}));
}

TEST(WorkerTable, StopsAddingWhenFull) {
  WorkerTable table(2, test_policy());
  EXPECT_EQ(table.add_workers(5, 0), 2U);
}

TEST(WorkerTable, GrowsAsWorkersAreAddedAndReusesAFreedSlotFirst) {
  WorkerTable table(2048, test_policy());  // the master's capacity: only used slots exist
  EXPECT_EQ(table.slot_count(), 0U);
  EXPECT_EQ(table.add_workers(2, 0), 2U);
  EXPECT_EQ(table.slot_count(), 2U);
  ASSERT_EQ(table.retire_one(0), pid_t{0});  // a worker not started yet: its slot is freed
  EXPECT_EQ(table.add_workers(1, 0), 1U);
  EXPECT_EQ(table.slot_count(), 2U);
  EXPECT_EQ(table.due_spawns(0), (std::vector<std::size_t>{0, 1}));
}

TEST(WorkerTable, RespawnsALongLivedWorkerAtOnceInTheSameSlot) {
  WorkerTable table(4, test_policy());
  table.add_workers(2, 0);
  pid_t pid = 100;
  spawn_all(table, 0, pid);
  const auto out = table.on_exit(101, "killed by SIGKILL", 5'000);
  EXPECT_EQ(out.kind, ExitOutcome::Kind::kRespawn);
  EXPECT_EQ(out.slot, 1U);
  EXPECT_EQ(out.respawn_at, 5'000);
  EXPECT_EQ(table.due_spawns(5'000), (std::vector<std::size_t>{1}));
  EXPECT_EQ(table.slot(1).restarts, 1U);
  EXPECT_EQ(table.slot(1).last_exit, "killed by SIGKILL");
}

TEST(WorkerTable, BacksOffAWorkerThatDiesYoungAndGivesUpOnADeadPool) {
  WorkerTable table(4, test_policy());
  table.add_workers(1, 0);
  pid_t pid = 100;
  Millis now = 0;
  std::vector<Millis> delays;
  for (int i = 0; i < 3; ++i) {
    spawn_all(table, now, pid);
    EXPECT_FALSE(table.pool_failed());
    const auto out = table.on_exit(pid - 1, "exited with code 1", now + 10);
    ASSERT_EQ(out.kind, ExitOutcome::Kind::kRespawn);
    delays.push_back(out.respawn_at - (now + 10));
    EXPECT_TRUE(table.due_spawns(now + 10).empty() || delays.back() == 0);
    now = out.respawn_at;
  }
  EXPECT_EQ(delays, (std::vector<Millis>{0, 100, 200}));
  EXPECT_TRUE(table.pool_failed());
}

TEST(WorkerTable, OneHealthyWorkerKeepsThePoolAlive) {
  WorkerTable table(4, test_policy());
  table.add_workers(2, 0);
  pid_t pid = 100;
  spawn_all(table, 0, pid);
  Millis now = 0;
  for (int i = 0; i < 5; ++i) {  // slot 1 keeps crashing, slot 0 (pid 100) keeps serving
    const pid_t victim = table.slot(1).pid;
    const auto out = table.on_exit(victim, "killed by SIGSEGV", now + 10);
    now = out.respawn_at;
    spawn_all(table, now, pid);
  }
  EXPECT_FALSE(table.pool_failed());
}

TEST(WorkerTable, ReloadRetiresEachOldWorkerExactlyOnce) {
  WorkerTable table(8, test_policy());
  table.add_workers(2, 0);
  pid_t pid = 100;
  spawn_all(table, 0, pid);
  EXPECT_EQ(table.begin_generation(), 2U);
  table.add_workers(2, 10);
  spawn_all(table, 10, pid);
  auto retired = table.retire_old_generations(20);
  std::sort(retired.begin(), retired.end());
  EXPECT_EQ(retired, (std::vector<pid_t>{100, 101}));
  EXPECT_TRUE(table.retire_old_generations(30).empty());
  // A retired worker that exits frees its slot; nothing is respawned for it.
  EXPECT_EQ(table.on_exit(100, "exited with code 0", 40).kind, ExitOutcome::Kind::kFreed);
  EXPECT_EQ(table.slot(0).state, SlotState::kFree);
  EXPECT_EQ(table.count_current(SlotState::kRunning), 2U);
  EXPECT_EQ(table.slot(2).generation, 2U);
}

TEST(WorkerTable, AnOldWorkerThatCrashesBeforeRetirementIsNotReplaced) {
  WorkerTable table(8, test_policy());
  table.add_workers(1, 0);
  pid_t pid = 100;
  spawn_all(table, 0, pid);
  table.begin_generation();
  EXPECT_EQ(table.on_exit(100, "killed by SIGSEGV", 5'000).kind, ExitOutcome::Kind::kFreed);
}

TEST(WorkerTable, RetireOneTakesThePendingRespawnFirstThenTheHighestSlot) {
  WorkerTable table(8, test_policy());
  table.add_workers(3, 0);
  pid_t pid = 100;
  spawn_all(table, 0, pid);
  table.on_exit(101, "killed by SIGKILL", 50);  // slot 1 waits for respawn
  EXPECT_EQ(table.retire_one(60), pid_t{0});    // cancels that respawn
  EXPECT_EQ(table.slot(1).state, SlotState::kFree);
  EXPECT_EQ(table.retire_one(70), pid_t{102});
  EXPECT_EQ(table.slot(2).state, SlotState::kDraining);
  EXPECT_EQ(table.on_exit(102, "exited with code 0", 80).kind, ExitOutcome::Kind::kFreed);
}

TEST(WorkerTable, AHungWorkerKilledByTheMasterIsReplaced) {
  WorkerTable table(4, test_policy());
  table.add_workers(1, 0);
  pid_t pid = 100;
  spawn_all(table, 0, pid);
  table.mark_terminating(0, 40'000);
  table.mark_killed(0, 41'000);
  EXPECT_EQ(table.on_exit(100, "killed by SIGKILL", 41'001).kind, ExitOutcome::Kind::kRespawn);
}

TEST(WorkerTable, DrainAllCancelsRespawnsAndReportsEveryRunningWorker) {
  WorkerTable table(4, test_policy());
  table.add_workers(3, 0);
  pid_t pid = 100;
  spawn_all(table, 0, pid);
  table.on_exit(100, "killed by SIGKILL", 10);
  EXPECT_EQ(table.drain_all(20), (std::vector<pid_t>{101, 102}));
  EXPECT_TRUE(table.due_spawns(1'000'000).empty());
  EXPECT_EQ(table.live_count(), 2U);
}

TEST(WorkerTable, UnknownPidIsReportedAsSuch) {
  WorkerTable table(2, test_policy());
  EXPECT_EQ(table.on_exit(4242, "exited with code 0", 0).kind, ExitOutcome::Kind::kUnknownPid);
}

}  // namespace
}  // namespace prefork::master
