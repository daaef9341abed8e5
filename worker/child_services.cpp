#include "worker/child_services.hpp"

#include <signal.h>

#include "common/log.hpp"

namespace prefork::worker {

[[gnu::hot]] ChildServices::ChildServices(const common::ChildContext& ctx, WorkerShared& shared) {
  const common::Config& config = ctx.config;
  if (config.access_log != "off") {
    access_log_.emplace(config.access_log, AccessLog::parse_format(config.access_log_format),
                        ctx.slot_index, ::getpid());
    shared.access_log = &*access_log_;
    if (!config.trusted_proxies.empty()) shared.trusted_proxies = &config.trusted_proxies;
  }
  if (!config.healthz_path.empty() || !config.status_path.empty() || !config.metrics_path.empty()) {
    observability_.emplace(ctx, shared.prepared.responses, shared.draining,
                           &shared.proxy_protocol_errors);
    shared.observability = &*observability_;
  }
}

bool ChildServices::on_signal(int signo) {
  switch (signo) {
    case common::kSignalStop:
    case SIGINT: spdlog::info("{}: stopping now", common::signal_name(signo)); return true;
    case common::kSignalReopen:
      common::reopen_logging();
      if (access_log_) access_log_->reopen();
      spdlog::info("SIGUSR1: log files reopened");
      return false;
    default:  // SIGHUP: reloading is the master's business
      return false;
  }
}

}  // namespace prefork::worker
