#include "master/supervisor.hpp"

#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include <spdlog/spdlog.h>

#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "common/signals.hpp"
#include "common/sys_error.hpp"
#include "common/version.hpp"
#include "common/wait_status.hpp"
#include "master/listener_reload.hpp"
#include "master/privileges.hpp"
#include "master/spawn.hpp"
#include "master/systemd_notify.hpp"

namespace prefork::master {
namespace {

using common::describe_wait_status;
using common::monotonic_ms;

constexpr Millis kMaintenanceInterval = 1'000;  // the longest the loop sleeps

const sigset_t& master_signals() {
  static const sigset_t set = common::make_sigset(
      {SIGTERM, SIGQUIT, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGCHLD, SIGWINCH});
  return set;
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
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      pool_({.config = config_,
             .listeners = listeners_,
             .scoreboard = *scoreboard_,
             .entry = entries_.worker,
             .drop_master_fds = [this] { drop_master_fds(); },
             .fork = options_.fork,
             .respawn = options_.respawn}),
      forker_({.config = config_,
               .listeners = listeners_,
               .epoll_fd = epoll_.get(),
               .scoreboard = *scoreboard_,
               .entry = entries_.connection,
               .prepare = entries_.prepare_connection,
               .drop_master_fds =
                   [this] {
                     drop_master_fds();
                     for (auto& l : listeners_) l.fd.reset();  // closed, not destroyed: it _exits
                   },
               .fork = options_.fork}),
      upgrader_(options_.executable, epoll_.get()) {
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
}

Supervisor::~Supervisor() = default;

int Supervisor::run() {
  if (config_.mode == common::Mode::kPrefork) {
    pool_.start(monotonic_ms());
  } else {
    forker_.update_interest(serving(), monotonic_ms());
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
    if (upgrade_requested_) begin_upgrade();
    if (upgrader_.follow(monotonic_ms())) hand_over();
    if (!serving()) continue;  // handed over to a new master
    if (reopen_requested_) reopen_logs();
    resize_pool();
    maintain_pool();
    accept_connections();
    publish_listen_queues();
    if (phase_ == Phase::kAnnouncing && monotonic_ms() >= drain_at_) {
      start_draining("drain_delay over");
    }
  }
  notify("STATUS=stopped");
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
  readable_listeners_.reserve(events.size());  // one mapping, once
  for (int i = 0; i < n; ++i) {
    const int fd = events[static_cast<std::size_t>(i)].data.fd;
    if (fd != signal_fd_.get() && !upgrader_.is_report(fd)) readable_listeners_.push_back(fd);
  }
}

void Supervisor::drain_signals() {
  while (const auto info = common::read_signal_info(signal_fd_.get())) {
    const auto signo = static_cast<int>(info->ssi_signo);
    switch (signo) {
      case SIGTERM:
      case SIGQUIT: begin_graceful_stop(common::kExitOk, common::signal_name(signo).c_str()); break;
      case SIGINT: begin_fast_stop(common::kExitOk, "SIGINT"); break;
      case SIGHUP: reload_requested_ = true; break;
      case SIGUSR1: reopen_requested_ = true; break;
      case SIGUSR2: upgrade_requested_ = true; break;
      case SIGTTIN: ++resize_delta_; break;
      case SIGTTOU: --resize_delta_; break;
      default: break;  // SIGCHLD: reaping happens on every wake-up anyway; SIGWINCH: ignored
    }
    note_control_request(*info);
  }
}

// `prefork-httpd --signal reload|upgrade` waits for the outcome (see master/control.hpp); a
// plain kill carries no request for an answer and gets none.
void Supervisor::note_control_request(const signalfd_siginfo& info) {
  ControlReplies* replies = nullptr;
  if (info.ssi_signo == SIGHUP) replies = &reload_replies_;
  if (info.ssi_signo == SIGUSR2) replies = &upgrader_.replies();
  if (replies == nullptr) return;
  replies->note(info);
  if (!serving()) replies->answer(ControlOutcome::kStopping);
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
    if (forker_.on_child_exit(pid, status, serving())) continue;
    if (upgrader_.on_child_exit(pid, status)) continue;
    switch (pool_.on_exit(pid, status, monotonic_ms())) {
      case WorkerPool::Exit::kNotOurs:
        spdlog::warn("reaped unknown child pid {} ({})", pid, describe_wait_status(status));
        break;
      case WorkerPool::Exit::kFatal:
        begin_graceful_stop(common::kExitConfig, "fatal worker exit");
        break;
      case WorkerPool::Exit::kHandled: break;
    }
  }
}

void Supervisor::progress_stop() {
  if (live_children() == 0) {
    phase_ = Phase::kDone;
    spdlog::info("stopped; exiting with code {}", exit_code_);
    return;
  }
  if (monotonic_ms() >= stop_deadline_) {
    spdlog::warn("stop timeout reached; killing {} remaining children", live_children());
    signal_all_children(SIGKILL);
    stop_deadline_ = monotonic_ms() + options_.fast_stop_timeout;
  }
}

void Supervisor::reload() {
  reload_requested_ = false;
  notify(reloading_message());
  spdlog::info("SIGHUP: reloading configuration from {}", config_.source);
  common::Config next;
  std::vector<common::Listener> added;
  try {
    next = reload_config_();
    if (next.mode != config_.mode) {
      throw common::ConfigError(next.source + ": key 'mode': cannot change on reload (restart)");
    }
    added = bind_added_listeners(listeners_, next);
  } catch (const std::exception& err) {
    spdlog::error("reload failed, keeping the running configuration: {}", err.what());
    notify("READY=1\nSTATUS=reload failed; running the previous configuration");
    reload_replies_.answer(ControlOutcome::kRejected);
    return;
  }
  apply_listeners(next.listen, std::move(added));
  config_ = std::move(next);
  for (auto& l : listeners_) l.proxy_protocol = config_.proxy_protocol_on(l.spec);
  if (config_.mode == common::Mode::kPrefork) {
    const unsigned gen = pool_.start_generation(monotonic_ms());
    ready_notified_ = false;
    reload_starting_.take(reload_replies_);  // answered once the new generation serves
    spdlog::info("starting generation {} with {} workers", gen, config_.worker_count());
  } else {
    // Per-connection mode has no workers to start: new children carry the next generation, and
    // the log says when the new configuration is in force.
    const unsigned gen = pool_.advance_generation();
    spdlog::info("configuration reloaded (generation {}): accepting, up to {} children", gen,
                 config_.max_children);
    notify("READY=1\nSTATUS=reloaded");
    reload_replies_.answer(ControlOutcome::kApplied);
  }
}

// ---- binary upgrade ---------------------------------------------------------------------------

void Supervisor::begin_upgrade() {
  upgrade_requested_ = false;
  const Millis now = monotonic_ms();
  upgrader_.begin(listeners_, now + config_.upgrade_timeout, config_.upgrade_timeout);
}

// The new master serves: we drain as on a reload, silently (the socket files are its now).
void Supervisor::hand_over() {
  for (auto& l : listeners_) l.path.release();
  start_draining("binary upgrade");
}

void Supervisor::apply_listeners(const std::vector<std::string>& specs,
                                 std::vector<common::Listener> added) {
  forker_.stop_accepting();
  listeners_ = merge_listeners(listeners_, specs, std::move(added));
  forker_.update_interest(serving(), monotonic_ms());
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
  if (config_.mode == common::Mode::kPrefork) {
    pool_.resize(resize_delta_, monotonic_ms());
  } else {
    spdlog::warn("SIGTTIN/SIGTTOU ignored: the pool is only resized in prefork mode");
  }
  resize_delta_ = 0;
}

void Supervisor::maintain_pool() {
  if (config_.mode != common::Mode::kPrefork) return;
  pool_.maintain(monotonic_ms());
  notify_ready_once();
  if (pool_.failed()) {
    spdlog::critical("every worker keeps dying at start; giving up so the service manager decides");
    begin_fast_stop(common::kExitFailure, "worker pool failed");
  }
}

// For the status page and metrics: a per-connection child holds no listening socket to ask,
// and one place to look keeps both modes alike. At most twice kMaintenanceInterval old, and
// asked at most once per interval: a busy loop (a fork per connection) need not pay a
// getsockopt per listener on each of its turns.
void Supervisor::publish_listen_queues() {
  const Millis now = monotonic_ms();
  if (now - queues_published_at_ < kMaintenanceInterval && queues_published_at_ != 0) return;
  queues_published_at_ = now;
  auto& published = scoreboard_->header().listen_queues;
  for (std::size_t i = 0; i < published.size(); ++i) {
    const auto queue = i < listeners_.size() && listeners_[i].fd
                           ? common::listen_queue(listeners_[i].fd.get())
                           : std::nullopt;
    published[i].store(
        queue ? common::ScoreboardHeader::pack_queue(queue->queued, queue->limit) : 0,
        std::memory_order_relaxed);
  }
}

void Supervisor::accept_connections() {
  if (config_.mode != common::Mode::kPerConnection) return;
  forker_.accept_from(readable_listeners_, pool_.generation(), monotonic_ms());
}

// ---- stopping ---------------------------------------------------------------------------------

void Supervisor::begin_graceful_stop(int exit_code, const char* why) {
  if (phase_ == Phase::kAnnouncing) {
    start_draining(why);  // asked twice: no more waiting
    return;
  }
  if (phase_ != Phase::kServing) return;
  upgrader_.abandon("the server is stopping");
  exit_code_ = exit_code;
  scoreboard_->header().draining.store(true);  // /healthz answers 503 from now on
  notify("STOPPING=1\nSTATUS=draining");
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
  answer_waiting_as_stopping();
  stop_deadline_ = monotonic_ms() + config_.graceful_timeout;
  spdlog::info("{}: graceful stop; draining {} children (up to {} ms)", why, live_children(),
               config_.graceful_timeout);
  close_listeners();
  pool_.drain_all(monotonic_ms());
  forker_.signal_all(common::kSignalDrain);
}

void Supervisor::begin_fast_stop(int exit_code, const char* why) {
  if (phase_ == Phase::kFastStopping || phase_ == Phase::kDone) return;
  upgrader_.abandon("the server is stopping");
  if (serving()) exit_code_ = exit_code;
  phase_ = Phase::kFastStopping;
  answer_waiting_as_stopping();
  scoreboard_->header().draining.store(true);
  stop_deadline_ = monotonic_ms() + options_.fast_stop_timeout;
  spdlog::info("{}: fast stop", why);
  notify("STOPPING=1\nSTATUS=stopping");
  close_listeners();
  pool_.stop_all(common::kSignalStop, monotonic_ms());
  forker_.signal_all(common::kSignalStop);
}

void Supervisor::signal_all_children(int signo) {
  pool_.signal_all(signo);
  forker_.signal_all(signo);
}

void Supervisor::close_listeners() {
  forker_.forget_listeners();
  listeners_.clear();  // closing our copies; children close theirs as they drain
}

// ---- helpers ----------------------------------------------------------------------------------

void Supervisor::watch(int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw common::SysError("epoll_ctl");
}

// [[gnu::hot]]: what a per-connection child runs (why: above worker::serve_single_connection).
[[gnu::hot]] void Supervisor::drop_master_fds() {
  epoll_.reset();
  signal_fd_.reset();
  upgrader_.drop_in_child();
  reload_replies_.forget();
  reload_starting_.forget();
  forker_.drop_fds_in_child();
}

void Supervisor::notify_ready_once() {
  if (ready_notified_) return;
  if (config_.mode == common::Mode::kPrefork && !pool_.ready()) return;
  ready_notified_ = true;
  const std::string status =
      config_.mode == common::Mode::kPrefork
          ? std::to_string(pool_.serving_count()) + " workers serving"
          : "accepting, up to " + std::to_string(config_.max_children) + " children";
  spdlog::info("ready: {}", status);
  reload_starting_.answer(ControlOutcome::kApplied);  // a reload's new generation serves
  if (upgrader_.started_by_upgrade()) {
    // The old master tells systemd (MAINPID) once we have said that we serve.
    if (options_.before_taking_over) options_.before_taking_over();
    for (auto& l : listeners_) common::take_socket_file(l);
    scoreboard_->header().upgraded_ms.store(common::wall_ms());
    if (!upgrader_.tell_old_master_we_serve()) {
      begin_graceful_stop(common::kExitBoot, "upgrade abandoned by the old master");
    }
    return;
  }
  notify("READY=1\nSTATUS=" + status);
}

void Supervisor::answer_waiting_as_stopping() {
  reload_replies_.answer(ControlOutcome::kStopping);
  reload_starting_.answer(ControlOutcome::kStopping);
  upgrader_.replies().answer(ControlOutcome::kStopping);
}

void Supervisor::notify(const std::string& message) const {
  if (!upgrader_.handed_over()) systemd_notify(message);
}

Millis Supervisor::next_wakeup(Millis now) const {
  Millis next = now + kMaintenanceInterval;
  if (!serving()) return std::min(next, stop_deadline_);
  if (phase_ == Phase::kAnnouncing) next = std::min(next, drain_at_);
  if (!ready_notified_) next = std::min(next, now + 20);  // watch boot closely
  return forker_.next_wakeup(pool_.next_wakeup(next, now), now);
}

}  // namespace prefork::master
