#include "master/supervisor.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include <spdlog/spdlog.h>

#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "common/signals.hpp"
#include "common/sys_error.hpp"
#include "common/wait_status.hpp"
#include "master/privileges.hpp"
#include "master/spawn.hpp"
#include "master/systemd_notify.hpp"

namespace prefork::master {
namespace {

using common::describe_wait_status;
using common::is_fatal_exit;
using common::monotonic_ms;

constexpr Millis kMaintenanceInterval = 1'000;  // hung checks, recycling, backoff wake-ups
constexpr Millis kMaxForkBackoff = 2'000;
constexpr Millis kAcceptPause = 100;  // after EMFILE/ENFILE/ENOBUFS/ENOMEM from accept4

const sigset_t& master_signals() {
  static const sigset_t set = common::make_sigset(
      {SIGTERM, SIGQUIT, SIGINT, SIGHUP, SIGUSR1, SIGTTIN, SIGTTOU, SIGCHLD, SIGWINCH});
  return set;
}

std::string peer_ip(const sockaddr_storage& addr, socklen_t len) {
  std::string text = common::format_address(reinterpret_cast<const sockaddr*>(&addr), len);
  return text.substr(0, text.rfind(':'));
}

void send_signal(pid_t pid, int signo) {
  if (pid > 0 && ::kill(pid, signo) != 0 && errno != ESRCH) {
    spdlog::error("kill({}, {}): {}", pid, common::signal_name(signo), common::errno_text(errno));
  }
}

}  // namespace

Supervisor::Supervisor(common::Config config, std::vector<common::Listener> listeners,
                       ChildEntries entries, ConfigLoader reload_config, SupervisorOptions options)
    : config_(std::move(config)),
      listeners_(std::move(listeners)),
      entries_(std::move(entries)),
      reload_config_(std::move(reload_config)),
      options_(std::move(options)),
      scoreboard_(std::make_unique<common::Scoreboard>(options_.scoreboard_slots)),
      table_(options_.scoreboard_slots, options_.respawn),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      spare_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {
  if (!epoll_) throw common::SysError("epoll_create1");
  // Blocked before any child exists, so no signal is ever handled in signal context.
  if (const int err = ::pthread_sigmask(SIG_BLOCK, &master_signals(), nullptr); err != 0) {
    throw common::SysError("pthread_sigmask", err);
  }
  common::restore_default_dispositions();
  common::ignore_sigpipe();
  signal_fd_ = common::open_signalfd(master_signals());
  watch(signal_fd_.get(), EPOLLIN);
  common::ScoreboardHeader& header = scoreboard_->header();
  header.master_pid.store(::getpid());
  header.master_started_ms.store(common::wall_ms());
  header.generation.store(table_.generation());
}

Supervisor::~Supervisor() = default;

int Supervisor::run() {
  if (config_.mode == common::Mode::kPrefork) {
    table_.add_workers(config_.worker_count(), monotonic_ms());
  } else {
    update_accept_interest();
    notify_ready_once();
  }
  while (phase_ != Phase::kDone) {
    wait_for_events();
    drain_signals();
    reap_children();
    if (!serving()) {
      progress_stop();
      continue;
    }
    if (reload_requested_) reload();
    if (reopen_requested_) reopen_logs();
    resize_pool();
    maintain_pool();
    accept_connections();
    if (phase_ == Phase::kAnnouncing && monotonic_ms() >= drain_at_) {
      start_draining("drain_delay over");
    }
  }
  systemd_notify("STATUS=stopped");
  return exit_code_;
}

// ---- the loop's steps -------------------------------------------------------------------------

void Supervisor::wait_for_events() {
  std::array<epoll_event, 16> events{};
  const Millis now = monotonic_ms();
  const int timeout = static_cast<int>(std::max<Millis>(0, next_wakeup(now) - now));
  const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout);
  if (n < 0 && errno != EINTR) spdlog::error("epoll_wait: {}", common::errno_text(errno));
  readable_listeners_.clear();
  for (int i = 0; i < n; ++i) {
    const int fd = events[static_cast<std::size_t>(i)].data.fd;
    if (fd != signal_fd_.get()) readable_listeners_.push_back(fd);
  }
}

void Supervisor::drain_signals() {
  while (const auto signo = common::read_signal(signal_fd_.get())) {
    switch (*signo) {
      case SIGTERM:
      case SIGQUIT:
        begin_graceful_stop(common::kExitOk, common::signal_name(*signo).c_str());
        break;
      case SIGINT: begin_fast_stop(common::kExitOk, "SIGINT"); break;
      case SIGHUP: reload_requested_ = true; break;
      case SIGUSR1: reopen_requested_ = true; break;
      case SIGTTIN: ++resize_delta_; break;
      case SIGTTOU: --resize_delta_; break;
      default: break;  // SIGCHLD: reaping happens on every wake-up anyway; SIGWINCH: ignored
    }
  }
}

void Supervisor::reap_children() {
  // Signals coalesce: one SIGCHLD may stand for many children, so reap until none is left.
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid == 0 || (pid < 0 && errno == ECHILD)) return;
    if (pid < 0) {
      if (errno != EINTR) spdlog::error("waitpid: {}", common::errno_text(errno));
      if (errno != EINTR) return;
      continue;
    }
    if (connection_children_.contains(pid)) {
      on_connection_child_exit(pid, status);
    } else {
      on_worker_exit(pid, status);
    }
  }
}

void Supervisor::progress_stop() {
  const bool children_left = table_.live_count() > 0 || !connection_children_.empty();
  if (!children_left) {
    phase_ = Phase::kDone;
    spdlog::info("stopped; exiting with code {}", exit_code_);
    return;
  }
  if (monotonic_ms() >= stop_deadline_) {
    spdlog::warn("stop timeout reached; killing {} remaining children",
                 table_.live_count() + connection_children_.size());
    kill_everything();
    stop_deadline_ = monotonic_ms() + options_.fast_stop_timeout;
  }
}

void Supervisor::reload() {
  reload_requested_ = false;
  systemd_notify(reloading_message());
  spdlog::info("SIGHUP: reloading configuration from {}", config_.source);
  common::Config next;
  std::vector<common::Listener> added;
  try {
    next = reload_config_();
    if (next.mode != config_.mode) {
      throw common::ConfigError(next.source + ": key 'mode': cannot change on reload (restart)");
    }
    // New addresses are bound before anything changes, so a bind failure changes nothing.
    for (const auto& spec : next.listen) {
      if (!find_listener(spec)) {
        added.push_back(
            std::move(common::open_listeners({spec}, {.socket_mode = next.socket_mode}).front()));
      }
    }
  } catch (const std::exception& err) {
    spdlog::error("reload failed, keeping the running configuration: {}", err.what());
    systemd_notify("READY=1\nSTATUS=reload failed; running the previous configuration");
    return;
  }
  apply_listeners(next.listen, std::move(added));
  config_ = std::move(next);
  for (auto& l : listeners_) l.proxy_protocol = config_.proxy_protocol_on(l.spec);
  if (config_.mode == common::Mode::kPrefork) {
    const unsigned gen = table_.begin_generation();
    scoreboard_->header().generation.store(gen);
    table_.add_workers(config_.worker_count(), monotonic_ms());
    retire_pending_ = true;
    ready_notified_ = false;
    spdlog::info("starting generation {} with {} workers", gen, config_.worker_count());
  } else {
    update_accept_interest();
    systemd_notify("READY=1\nSTATUS=reloaded");
  }
}

common::Listener* Supervisor::find_listener(const std::string& spec) {
  for (auto& l : listeners_) {
    if (l.spec == spec) return &l;
  }
  return nullptr;
}

// Unchanged listeners keep their sockets (nothing queued on them is lost); removed ones close
// here, and in the old workers as those drain.
void Supervisor::apply_listeners(const std::vector<std::string>& specs,
                                 std::vector<common::Listener> added) {
  const bool was_accepting = accepting_;
  set_accept_interest(false);
  std::vector<common::Listener> next;
  const auto take = [](std::vector<common::Listener>& from, const std::string& spec) {
    auto it = std::find_if(from.begin(), from.end(),
                           [&](const auto& l) { return l.fd && l.spec == spec; });
    return it == from.end() ? nullptr : &*it;
  };
  for (const auto& spec : specs) {
    // Config validation rejects a repeated entry; should one get here anyway, it is the socket
    // already taken, never a dereference of nothing.
    if (take(next, spec) != nullptr) continue;
    if (auto* kept = take(listeners_, spec)) {
      next.push_back(std::move(*kept));
    } else if (auto* fresh = take(added, spec)) {
      spdlog::info("listening on {}", fresh->bound);
      next.push_back(std::move(*fresh));
    } else {
      spdlog::error("reload: no socket for listen entry {}; skipped", spec);
    }
  }
  for (const auto& gone : listeners_) {
    if (gone.fd) spdlog::info("no longer listening on {}", gone.bound);
  }
  listeners_ = std::move(next);
  if (was_accepting) update_accept_interest();
}

void Supervisor::reopen_logs() {
  reopen_requested_ = false;
  common::reopen_logging();
  // The new files must belong to the children's user before they reopen them.
  prepare_log_files_for_children(config_, child_credentials());
  spdlog::info("SIGUSR1: log files reopened; asking children to reopen theirs");
  signal_all_children(common::kSignalReopen);
}

void Supervisor::resize_pool() {
  if (resize_delta_ == 0) return;
  if (config_.mode != common::Mode::kPrefork) {
    spdlog::warn("SIGTTIN/SIGTTOU ignored: the pool is only resized in prefork mode");
    resize_delta_ = 0;
    return;
  }
  const Millis now = monotonic_ms();
  for (; resize_delta_ > 0; --resize_delta_) {
    if (table_.add_workers(1, now) == 1) spdlog::info("SIGTTIN: adding a worker");
  }
  for (; resize_delta_ < 0; ++resize_delta_) {
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

void Supervisor::maintain_pool() {
  if (config_.mode != common::Mode::kPrefork) return;
  spawn_due_workers();
  const Millis now = monotonic_ms();
  if (now - last_hung_check_ >= kMaintenanceInterval) {
    last_hung_check_ = now;
    kill_hung_workers();
    recycle_workers();
  }
  retire_old_generation_when_ready();
  notify_ready_once();
  check_pool_alive();
}

void Supervisor::accept_connections() {
  if (config_.mode != common::Mode::kPerConnection) return;
  const Millis now = monotonic_ms();
  if (pending_client_) {
    if (now < fork_retry_at_) return;
    serve_in_child(std::move(pending_client_), pending_client_ip_, pending_client_proxy_);
  }
  if (now < accept_paused_until_) return;
  for (const int fd : readable_listeners_) {
    while (below_child_cap() && !pending_client_ && now >= accept_paused_until_) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      common::UniqueFd client(
          ::accept4(fd, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!client) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) on_accept_error(fd, errno);
        break;
      }
      const std::string ip = peer_ip(addr, len);
      if (config_.max_children_per_ip > 0 && children_per_ip_[ip] >= config_.max_children_per_ip) {
        // Closing is the answer: the master never speaks HTTP itself.
        spdlog::warn("client {} is at max_children_per_ip ({}); connection closed", ip,
                     config_.max_children_per_ip);
        continue;
      }
      serve_in_child(std::move(client), ip, proxy_protocol_of(fd));
    }
  }
  update_accept_interest();
}

// ---- prefork pool -----------------------------------------------------------------------------

void Supervisor::spawn_due_workers() {
  for (const std::size_t slot : table_.due_spawns(monotonic_ms())) spawn_worker(slot);
}

void Supervisor::spawn_worker(std::size_t slot) {
  const unsigned generation = table_.slot(slot).generation;
  common::ScoreboardSlot& board = scoreboard_->slot(slot);
  board.requests.store(0);
  board.connections.store(0);
  board.generation.store(generation);
  board.set_state(common::WorkerState::kStarting);
  board.beat();  // the newborn has worker_timeout to boot before it counts as hung
  board.started_ms.store(common::wall_ms());
  ChildSetup setup{"worker " + std::to_string(slot), &config_, [this] { drop_master_fds(); },
                   options_.fork};
  const pid_t pid = spawn_child(setup, [&] {
    const common::ChildContext ctx{
        config_,    listeners_,        &board, static_cast<unsigned>(slot),
        generation, scoreboard_.get(), false};
    return entries_.worker(ctx);
  });
  const Millis now = monotonic_ms();
  if (pid < 0) {
    table_.on_spawn_failed(slot, now);
    if (fork_failure_log_.allow(now)) {
      spdlog::error("fork for worker {}: {}; retrying at +{} ms", slot, common::errno_text(errno),
                    table_.slot(slot).respawn_at - now);
    }
    return;
  }
  board.pid.store(pid);
  table_.on_spawned(slot, pid, now);
  spdlog::info("worker {} (pid {}, generation {}) started", slot, pid, generation);
}

void Supervisor::kill_hung_workers() {
  const Millis now = monotonic_ms();
  for (std::size_t i = 0; i < table_.capacity(); ++i) {
    const Slot& s = table_.slot(i);
    if (!s.alive()) continue;
    const common::ScoreboardSlot& board = scoreboard_->slot(i);
    if (s.state == SlotState::kTerminating && now - s.signalled_at >= kMaintenanceInterval) {
      spdlog::error("worker {} (pid {}) ignored SIGTERM; sending SIGKILL", i, s.pid);
      send_signal(s.pid, SIGKILL);
      table_.mark_killed(i, now);
      continue;
    }
    const bool draining_too_long =
        s.state == SlotState::kDraining && now - s.signalled_at >= config_.graceful_timeout;
    if (draining_too_long) {
      spdlog::warn("worker {} (pid {}) still draining after graceful_timeout; sending SIGKILL", i,
                   s.pid);
      send_signal(s.pid, SIGKILL);
      table_.mark_killed(i, now);
      continue;
    }
    const Millis silent = now - board.heartbeat_ms.load(std::memory_order_relaxed);
    if ((s.state == SlotState::kRunning || s.state == SlotState::kDraining) &&
        silent >= config_.worker_timeout) {
      spdlog::error("worker {} (pid {}) hung: no heartbeat for {} ms in state {}; sending SIGTERM",
                    i, s.pid, silent, common::worker_state_name(board.state.load()));
      send_signal(s.pid, common::kSignalStop);
      table_.mark_terminating(i, now);
    }
  }
}

void Supervisor::recycle_workers() {
  if (config_.max_requests == 0) return;
  // One at a time: a recycling worker keeps serving until its replacement is up.
  for (std::size_t i = 0; i < table_.capacity(); ++i) {
    if (table_.slot(i).recycling) {
      const auto replacement_ready = generation_serving();
      if (!replacement_ready) return;
      const pid_t pid = table_.start_draining(i, monotonic_ms());
      spdlog::info("worker {} (pid {}) recycled after max_requests; draining", i, pid);
      send_signal(pid, common::kSignalDrain);
      return;
    }
  }
  for (std::size_t i = 0; i < table_.capacity(); ++i) {
    const Slot& s = table_.slot(i);
    if (s.state != SlotState::kRunning || s.generation != table_.generation()) continue;
    if (scoreboard_->slot(i).requests.load(std::memory_order_relaxed) < config_.max_requests) {
      continue;
    }
    if (table_.add_workers(1, monotonic_ms()) == 1) {
      table_.mark_recycling(i);
      spawn_due_workers();
    }
    return;
  }
}

bool Supervisor::generation_serving() const {
  unsigned running = 0;
  for (std::size_t i = 0; i < table_.capacity(); ++i) {
    const Slot& s = table_.slot(i);
    if (s.generation != table_.generation()) continue;
    if (s.state == SlotState::kWaiting) return false;
    if (s.state != SlotState::kRunning) continue;
    if (scoreboard_->slot(i).state.load() == common::WorkerState::kStarting) return false;
    ++running;
  }
  return running > 0;
}

void Supervisor::retire_old_generation_when_ready() {
  if (!retire_pending_ || !generation_serving()) return;
  retire_pending_ = false;
  const auto pids = table_.retire_old_generations(monotonic_ms());
  spdlog::info("generation {} is serving; retiring {} old workers", table_.generation(),
               pids.size());
  for (const pid_t pid : pids) send_signal(pid, common::kSignalDrain);
}

void Supervisor::check_pool_alive() {
  if (!table_.pool_failed()) return;
  spdlog::critical("every worker keeps dying at start; giving up so the service manager decides");
  begin_fast_stop(common::kExitFailure, "worker pool failed");
}

void Supervisor::on_worker_exit(pid_t pid, int status) {
  const std::string how = describe_wait_status(status);
  const Millis now = monotonic_ms();
  const ExitOutcome out = table_.on_exit(pid, how, now);
  if (out.kind == ExitOutcome::Kind::kUnknownPid) {
    spdlog::warn("reaped unknown child pid {} ({})", pid, how);
    return;
  }
  common::ScoreboardSlot& board = scoreboard_->slot(out.slot);
  board.set_state(common::WorkerState::kEmpty);
  board.pid.store(0);
  board.last_exit_status.store(status);
  board.restarts.store(table_.slot(out.slot).restarts);
  if (is_fatal_exit(status)) {
    spdlog::critical("worker {} (pid {}) {}: fatal error, not respawning; stopping the server",
                     out.slot, pid, how);
    begin_graceful_stop(common::kExitConfig, "fatal worker exit");
    return;
  }
  if (out.kind == ExitOutcome::Kind::kFreed) {
    spdlog::info("worker {} (pid {}, generation {}) {}", out.slot, pid, out.generation, how);
    return;
  }
  const Millis delay = out.respawn_at - now;
  const auto log_level =
      WIFEXITED(status) && WEXITSTATUS(status) == 0 ? spdlog::level::warn : spdlog::level::err;
  spdlog::log(log_level, "worker {} (pid {}) {}; respawning {}", out.slot, pid, how,
              delay > 0 ? "in " + std::to_string(delay) + " ms (crash-loop backoff)" : "now");
}

// ---- per-connection mode ----------------------------------------------------------------------

bool Supervisor::below_child_cap() const {
  return connection_children_.size() < config_.max_children;
}

// Out of descriptors (or kernel memory): retrying at once would spin on a readable listener.
// Shed one waiting client through the spare descriptor, so it is closed rather than left
// hanging, and stop accepting for a moment; one log line per interval.
void Supervisor::on_accept_error(int listener_fd, int err) {
  const Millis now = monotonic_ms();
  const bool out_of_fds = err == EMFILE || err == ENFILE;
  if (out_of_fds && spare_fd_) {
    spare_fd_.reset();
    common::UniqueFd shed(::accept4(listener_fd, nullptr, nullptr, SOCK_CLOEXEC));
    shed.reset();
    spare_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  }
  accept_paused_until_ = now + kAcceptPause;
  if (accept_error_log_.allow(now)) {
    spdlog::error("accept4: {}; pausing accepts for {} ms ({} more suppressed)",
                  common::errno_text(err), kAcceptPause, accept_error_log_.suppressed());
  }
}

bool Supervisor::proxy_protocol_of(int listener_fd) const {
  for (const auto& l : listeners_) {
    if (l.fd.get() == listener_fd) return l.proxy_protocol;
  }
  return false;
}

void Supervisor::serve_in_child(common::UniqueFd client, const std::string& client_ip,
                                bool proxy_protocol) {
  ChildSetup setup{"connection", &config_,
                   [this] {
                     drop_master_fds();
                     listeners_.clear();  // a connection child never accepts
                   },
                   options_.fork};
  const pid_t pid = spawn_child(setup, [&] {
    const common::ChildContext ctx{
        config_, {}, nullptr, 0, table_.generation(), scoreboard_.get(), proxy_protocol};
    return entries_.connection(ctx, std::move(client));
  });
  const Millis now = monotonic_ms();
  if (pid < 0) {
    // Keep the client and try again after a back-off; it waits rather than being dropped.
    fork_backoff_ = std::clamp<Millis>(fork_backoff_ * 2, 50, kMaxForkBackoff);
    fork_retry_at_ = now + fork_backoff_;
    if (fork_failure_log_.allow(now)) {
      spdlog::error(
          "fork for connection from {}: {}; holding it, retrying in {} ms ({} more "
          "failures suppressed)",
          client_ip, common::errno_text(errno), fork_backoff_, fork_failure_log_.suppressed());
    }
    pending_client_ = std::move(client);
    pending_client_ip_ = client_ip;
    pending_client_proxy_ = proxy_protocol;
    scoreboard_->header().fork_failures.fetch_add(1);
    return;
  }
  fork_backoff_ = 0;
  connection_children_.emplace(pid, ConnectionChild{client_ip});
  ++children_per_ip_[client_ip];
  common::ScoreboardHeader& header = scoreboard_->header();
  header.live_children.store(static_cast<std::uint32_t>(connection_children_.size()));
  header.children_forked.fetch_add(1);
  if (connection_children_.size() >= config_.max_children) header.cap_hits.fetch_add(1);
}

void Supervisor::on_connection_child_exit(pid_t pid, int status) {
  const auto it = connection_children_.find(pid);
  if (auto count = children_per_ip_.find(it->second.client_ip);
      count != children_per_ip_.end() && --count->second == 0) {
    children_per_ip_.erase(count);
  }
  connection_children_.erase(it);
  scoreboard_->header().live_children.store(
      static_cast<std::uint32_t>(connection_children_.size()));
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    spdlog::warn("connection child pid {} {}", pid, describe_wait_status(status));
  }
  if (serving()) update_accept_interest();
}

void Supervisor::update_accept_interest() {
  set_accept_interest(serving() && config_.mode == common::Mode::kPerConnection &&
                      monotonic_ms() >= accept_paused_until_ && below_child_cap() &&
                      !pending_client_);
}

// At the cap the listeners leave the epoll set: connections wait in the kernel backlog.
void Supervisor::set_accept_interest(bool want) {
  if (want == accepting_) return;
  for (const auto& l : listeners_) {
    if (want) {
      watch(l.fd.get(), EPOLLIN);
    } else {
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, l.fd.get(), nullptr);
    }
  }
  accepting_ = want;
}

// ---- stopping ---------------------------------------------------------------------------------

void Supervisor::begin_graceful_stop(int exit_code, const char* why) {
  if (phase_ == Phase::kAnnouncing) {
    start_draining(why);  // asked twice: no more waiting
    return;
  }
  if (phase_ != Phase::kServing) return;
  exit_code_ = exit_code;
  scoreboard_->header().draining.store(true);  // /healthz answers 503 from now on
  systemd_notify("STOPPING=1\nSTATUS=draining");
  if (config_.drain_delay > 0 && exit_code == common::kExitOk) {
    phase_ = Phase::kAnnouncing;
    drain_at_ = monotonic_ms() + config_.drain_delay;
    spdlog::info(
        "{}: graceful stop; /healthz answers 503 for {} ms (drain_delay) before the "
        "listeners close",
        why, config_.drain_delay);
    return;
  }
  start_draining(why);
}

void Supervisor::start_draining(const char* why) {
  phase_ = Phase::kDraining;
  stop_deadline_ = monotonic_ms() + config_.graceful_timeout;
  spdlog::info("{}: graceful stop; draining {} children (up to {} ms)", why,
               table_.live_count() + connection_children_.size(), config_.graceful_timeout);
  close_listeners();
  for (const pid_t pid : table_.drain_all(monotonic_ms())) send_signal(pid, common::kSignalDrain);
  for (const auto& [pid, child] : connection_children_) send_signal(pid, common::kSignalDrain);
}

void Supervisor::begin_fast_stop(int exit_code, const char* why) {
  if (phase_ == Phase::kFastStopping || phase_ == Phase::kDone) return;
  if (serving()) exit_code_ = exit_code;
  phase_ = Phase::kFastStopping;
  scoreboard_->header().draining.store(true);
  stop_deadline_ = monotonic_ms() + options_.fast_stop_timeout;
  spdlog::info("{}: fast stop", why);
  systemd_notify("STOPPING=1\nSTATUS=stopping");
  close_listeners();
  table_.drain_all(monotonic_ms());
  signal_all_children(common::kSignalStop);
}

void Supervisor::signal_all_children(int signo) {
  for (const pid_t pid : table_.live_pids()) send_signal(pid, signo);
  for (const auto& [pid, child] : connection_children_) send_signal(pid, signo);
}

void Supervisor::kill_everything() {
  signal_all_children(SIGKILL);
}

void Supervisor::close_listeners() {
  accepting_ = false;
  listeners_.clear();  // closing our copies; children close theirs as they drain
  pending_client_.reset();
}

// ---- helpers ----------------------------------------------------------------------------------

void Supervisor::watch(int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw common::SysError("epoll_ctl");
}

void Supervisor::drop_master_fds() {
  epoll_.reset();
  spare_fd_.reset();
  signal_fd_.reset();
  pending_client_.reset();
}

void Supervisor::notify_ready_once() {
  if (ready_notified_) return;
  if (config_.mode == common::Mode::kPrefork && (retire_pending_ || !generation_serving())) return;
  ready_notified_ = true;
  const std::string status =
      config_.mode == common::Mode::kPrefork
          ? std::to_string(table_.count_current(SlotState::kRunning)) + " workers serving"
          : "accepting, up to " + std::to_string(config_.max_children) + " children";
  spdlog::info("ready: {}", status);
  systemd_notify("READY=1\nSTATUS=" + status);
}

Millis Supervisor::next_wakeup(Millis now) const {
  Millis next = now + kMaintenanceInterval;
  if (!serving()) return std::min(next, stop_deadline_);
  if (phase_ == Phase::kAnnouncing) next = std::min(next, drain_at_);
  for (std::size_t i = 0; i < table_.capacity(); ++i) {
    const Slot& s = table_.slot(i);
    if (s.state == SlotState::kWaiting) next = std::min(next, s.respawn_at);
  }
  if (retire_pending_ || !ready_notified_) next = std::min(next, now + 20);  // watch boot closely
  if (pending_client_) next = std::min(next, fork_retry_at_);
  if (accept_paused_until_ > now) next = std::min(next, accept_paused_until_);
  return next;
}

}  // namespace prefork::master
