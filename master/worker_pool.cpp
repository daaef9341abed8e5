#include "master/worker_pool.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <string>

#include <spdlog/spdlog.h>

#include "common/exit_codes.hpp"
#include "common/signals.hpp"
#include "common/sys_error.hpp"
#include "common/wait_status.hpp"

namespace prefork::master {
namespace {

// A hung worker gets SIGABRT, as gunicorn does: workers never block or catch it (unlike SIGTERM,
// which they read through a signalfd), and its default action leaves a core dump for the
// post-mortem where the system keeps them. SIGKILL follows if it is still alive a second later.
constexpr int kSignalHung = SIGABRT;

}  // namespace

WorkerPool::WorkerPool(Context context)
    : context_(std::move(context)), table_(context_.scoreboard.size(), context_.respawn) {
  context_.scoreboard.header().generation.store(table_.generation());
}

void WorkerPool::start(Millis now) {
  table_.add_workers(context_.config.worker_count(), now);
}

unsigned WorkerPool::start_generation(Millis now) {
  const unsigned generation = table_.begin_generation();
  context_.scoreboard.header().generation.store(generation);
  table_.add_workers(context_.config.worker_count(), now);
  retire_pending_ = true;
  return generation;
}

unsigned WorkerPool::advance_generation() {
  const unsigned generation = table_.begin_generation();
  context_.scoreboard.header().generation.store(generation);
  return generation;
}

void WorkerPool::maintain(Millis now) {
  spawn_due_workers(now);
  if (now - last_check_ >= kCheckInterval) {
    last_check_ = now;
    kill_hung_workers(now);
    recycle_workers(now);
  }
  retire_old_generation_when_ready(now);
}

void WorkerPool::resize(int delta, Millis now) {
  for (; delta > 0; --delta) {
    if (table_.add_workers(1, now) == 1) spdlog::info("SIGTTIN: adding a worker");
  }
  for (; delta < 0; ++delta) {
    const unsigned current =
        table_.count_current(SlotState::kRunning) + table_.count_current(SlotState::kWaiting);
    if (current <= 1) {
      spdlog::warn("SIGTTOU ignored: keeping the last worker");
      continue;
    }
    if (const auto pid = table_.retire_one(now); pid && *pid > 0) {
      spdlog::info("SIGTTOU: retiring worker pid {}", *pid);
      send_signal(*pid, common::kSignalDrain);
    }
  }
}

void WorkerPool::spawn_due_workers(Millis now) {
  for (const std::size_t slot : table_.due_spawns(now)) spawn_worker(slot);
}

void WorkerPool::spawn_worker(std::size_t slot) {
  const unsigned generation = table_.slot(slot).generation;
  common::ScoreboardSlot& board = context_.scoreboard.slot(slot);
  board.served.clear();
  board.connections.store(0);
  board.generation.store(generation);
  board.set_state(common::WorkerState::kStarting);
  board.beat();  // the newborn has worker_timeout to boot before it counts as hung
  board.started_ms.store(common::wall_ms());
  ChildSetup setup{"worker " + std::to_string(slot), &context_.config, context_.drop_master_fds,
                   context_.fork};
  const pid_t pid = spawn_child(setup, [&] {
    const common::ChildContext ctx{
        context_.config, context_.listeners,   &board, static_cast<unsigned>(slot),
        generation,      &context_.scoreboard, false};
    return context_.entry(ctx);
  });
  const int err = errno;  // before anything below can clobber it
  const Millis now = common::monotonic_ms();
  if (pid < 0) {
    table_.on_spawn_failed(slot, now);
    if (fork_failure_log_.allow(now)) {
      spdlog::error("fork for worker {}: {}; retrying at +{} ms", slot, common::errno_text(err),
                    table_.slot(slot).respawn_at - now);
    }
    return;
  }
  board.pid.store(pid);
  table_.on_spawned(slot, pid, now);
  spdlog::info("worker {} (pid {}, generation {}) started", slot, pid, generation);
}

void WorkerPool::kill_hung_workers(Millis now) {
  for (std::size_t i = 0; i < table_.slot_count(); ++i) {
    const Slot& s = table_.slot(i);
    if (!s.alive()) continue;
    const common::ScoreboardSlot& board = context_.scoreboard.slot(i);
    if (s.state == SlotState::kTerminating && now - s.signalled_at >= kCheckInterval) {
      spdlog::error("worker {} (pid {}) still alive after {}; sending SIGKILL", i, s.pid,
                    common::signal_name(kSignalHung));
      send_signal(s.pid, SIGKILL);
      table_.mark_killed(i, now);
      continue;
    }
    const bool draining_too_long =
        s.state == SlotState::kDraining && now - s.signalled_at >= context_.config.graceful_timeout;
    if (draining_too_long) {
      spdlog::warn("worker {} (pid {}) still draining after graceful_timeout; sending SIGKILL", i,
                   s.pid);
      send_signal(s.pid, SIGKILL);
      table_.mark_killed(i, now);
      continue;
    }
    const Millis silent = now - board.heartbeat_ms.load(std::memory_order_relaxed);
    if ((s.state == SlotState::kRunning || s.state == SlotState::kDraining) &&
        silent >= context_.config.worker_timeout) {
      spdlog::error(
          "worker {} (pid {}, generation {}) hung: no heartbeat for {} ms in state {}; sending {} "
          "so it leaves a core dump where the system keeps them",
          i, s.pid, s.generation, silent, common::worker_state_name(board.state.load()),
          common::signal_name(kSignalHung));
      send_signal(s.pid, kSignalHung);
      table_.mark_terminating(i, now);
    }
  }
}

void WorkerPool::recycle_workers(Millis now) {
  if (context_.config.max_requests == 0) return;
  // One at a time: a recycling worker keeps serving until its replacement is up.
  for (std::size_t i = 0; i < table_.slot_count(); ++i) {
    if (table_.slot(i).recycling) {
      const auto replacement_ready = generation_serving();
      if (!replacement_ready) return;
      const pid_t pid = table_.start_draining(i, now);
      spdlog::info("worker {} (pid {}) recycled after max_requests; draining", i, pid);
      send_signal(pid, common::kSignalDrain);
      return;
    }
  }
  for (std::size_t i = 0; i < table_.slot_count(); ++i) {
    const Slot& s = table_.slot(i);
    if (s.state != SlotState::kRunning || s.generation != table_.generation()) continue;
    if (context_.scoreboard.slot(i).served.requests.load(std::memory_order_relaxed) <
        context_.config.max_requests) {
      continue;
    }
    if (table_.add_workers(1, now) == 1) {
      table_.mark_recycling(i);
      spawn_due_workers(now);
    }
    return;
  }
}

bool WorkerPool::generation_serving() const {
  unsigned running = 0;
  for (std::size_t i = 0; i < table_.slot_count(); ++i) {
    const Slot& s = table_.slot(i);
    if (s.generation != table_.generation()) continue;
    if (s.state == SlotState::kWaiting) return false;
    if (s.state != SlotState::kRunning) continue;
    if (context_.scoreboard.slot(i).state.load() == common::WorkerState::kStarting) return false;
    ++running;
  }
  return running > 0;
}

void WorkerPool::retire_old_generation_when_ready(Millis now) {
  if (!retire_pending_ || !generation_serving()) return;
  retire_pending_ = false;
  const auto pids = table_.retire_old_generations(now);
  spdlog::info("generation {} is serving; retiring {} old workers", table_.generation(),
               pids.size());
  for (const pid_t pid : pids) send_signal(pid, common::kSignalDrain);
}

WorkerPool::Exit WorkerPool::on_exit(pid_t pid, int status, Millis now) {
  const std::string how = common::describe_wait_status(status);
  const ExitOutcome out = table_.on_exit(pid, how, now);
  if (out.kind == ExitOutcome::Kind::kUnknownPid) return Exit::kNotOurs;
  common::ScoreboardSlot& board = context_.scoreboard.slot(out.slot);
  board.set_state(common::WorkerState::kEmpty);
  context_.scoreboard.fold_served(out.slot);  // and the slot has no pid from now on
  board.last_exit_status.store(status);
  board.restarts.store(table_.slot(out.slot).restarts);
  if (common::is_fatal_exit(status)) {
    spdlog::critical("worker {} (pid {}) {}: fatal error, not respawning; stopping the server",
                     out.slot, pid, how);
    return Exit::kFatal;
  }
  if (out.kind == ExitOutcome::Kind::kFreed) {
    spdlog::info("worker {} (pid {}, generation {}) {}", out.slot, pid, out.generation, how);
    return Exit::kHandled;
  }
  const Millis delay = out.respawn_at - now;
  const auto log_level =
      WIFEXITED(status) && WEXITSTATUS(status) == 0 ? spdlog::level::warn : spdlog::level::err;
  spdlog::log(log_level, "worker {} (pid {}) {}; respawning {}", out.slot, pid, how,
              delay > 0 ? "in " + std::to_string(delay) + " ms (crash-loop backoff)" : "now");
  return Exit::kHandled;
}

void WorkerPool::drain_all(Millis now) {
  for (const pid_t pid : table_.drain_all(now)) send_signal(pid, common::kSignalDrain);
}

void WorkerPool::stop_all(int signo, Millis now) {
  table_.drain_all(now);
  signal_all(signo);
}

void WorkerPool::signal_all(int signo) const {
  for (const pid_t pid : table_.live_pids()) send_signal(pid, signo);
}

Millis WorkerPool::next_wakeup(Millis next, Millis now) const {
  for (std::size_t i = 0; i < table_.slot_count(); ++i) {
    const Slot& s = table_.slot(i);
    if (s.state == SlotState::kWaiting) next = std::min(next, s.respawn_at);
  }
  if (retire_pending_) next = std::min(next, now + 20);  // watch the new generation boot closely
  return next;
}

}  // namespace prefork::master
