// prefork-httpd's composition root (master process): parses argv and the config, sets up logging
// and listeners, and hands the worker's entry functions to the supervisor. The only file that
// knows both master/ and worker/.
#include <cstdio>
#include <optional>
#include <variant>

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "common/command_line.hpp"
#include "common/config.hpp"
#include "common/exit_codes.hpp"
#include "common/listeners.hpp"
#include "common/log.hpp"
#include "common/resource_limits.hpp"
#include "common/sys_error.hpp"
#include "common/version.hpp"
#include "master/pidfile.hpp"
#include "master/privileges.hpp"
#include "master/supervisor.hpp"
#include "worker/worker.hpp"

namespace {

using namespace prefork;

// Loads and fully validates the configuration (including listen addresses) without binding.
common::Config load_checked(const common::CommandLine& cli) {
  common::Config config = common::load_config(cli.config_path, cli.overrides);
  for (const auto& spec : config.listen) common::validate_listen_spec(spec);
  // An unknown user or group is a configuration error (exit 2; a reload keeps the old config).
  const auto credentials = master::resolve_child_credentials(config, ::geteuid() == 0);
  const auto& running = master::child_credentials();
  if (!running.user.empty() &&
      (credentials.user != running.user || credentials.group != running.group)) {
    spdlog::warn(
        "user/group changed to \"{}\"/\"{}\": applies after a restart; children keep "
        "running as \"{}\"/\"{}\"",
        credentials.user, credentials.group, running.user, running.group);
  }
  return config;
}

void log_startup(const common::Config& config, const std::vector<common::Listener>& listeners) {
  spdlog::info("prefork-httpd {} starting: mode {}, {} {}, config {}", common::kVersion,
               common::mode_name(config.mode),
               config.mode == common::Mode::kPrefork ? config.worker_count() : config.max_children,
               config.mode == common::Mode::kPrefork ? "workers" : "max children", config.source);
  for (const auto& l : listeners) spdlog::info("listening on {}", l.bound);
}

// The master's whole life: everything main() does, as an exit code.
int run_master(int argc, char** argv) {
  auto parsed = common::parse_command_line(argc, argv);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  const auto& cli = std::get<common::CommandLine>(parsed);

  common::Config config;
  try {
    config = load_checked(cli);
  } catch (const common::ConfigError& err) {
    (void)std::fprintf(stderr, "prefork-httpd: configuration error: %s\n", err.what());
    return cli.test_config ? 1 : common::kExitConfig;
  }
  if (cli.test_config) {
    (void)std::printf("prefork-httpd: configuration %s is valid\n", config.source.c_str());
    return common::kExitOk;
  }

  try {
    common::init_logging("master", config.error_log, config.log_level);
  } catch (const std::exception& err) {
    (void)std::fprintf(stderr, "prefork-httpd: cannot open error_log %s: %s\n",
                       config.error_log.c_str(), err.what());
    return common::kExitConfig;
  }

  std::vector<common::Listener> listeners;
  std::vector<std::string> activated;  // socket activation: systemd's sockets replace `listen`
  std::optional<master::Pidfile> pidfile;
  try {
    listeners = common::listeners_from_systemd();
    for (const auto& l : listeners) activated.push_back(l.spec);
    if (listeners.empty()) {
      listeners = common::open_listeners(config.listen, {.socket_mode = config.socket_mode});
    } else {
      spdlog::info("socket activation: using {} socket(s) from systemd; 'listen' is ignored",
                   listeners.size());
      config.listen = activated;
    }
    for (auto& l : listeners) l.proxy_protocol = config.proxy_protocol_on(l.spec);
    pidfile.emplace(config.pidfile);
  } catch (const std::exception& err) {
    spdlog::critical("cannot start: {}", err.what());
    return common::kExitConfig;
  }
  log_startup(config, listeners);
  // Children inherit both: descriptors for max_connections / max_children, and who they run as.
  try {
    common::ensure_nofile_limit(config, listeners.size());
  } catch (const std::exception& err) {
    spdlog::warn("cannot adjust RLIMIT_NOFILE: {}", err.what());
  }
  {
    const bool as_root = ::geteuid() == 0;
    auto credentials = master::resolve_child_credentials(config, as_root);  // checked above
    master::log_child_credentials(credentials, as_root);
    master::prepare_log_files_for_children(config, credentials);
    master::set_child_credentials(std::move(credentials));
  }

  try {
    master::Supervisor supervisor(config, std::move(listeners),
                                  {worker::run, worker::serve_connection}, [cli, activated] {
                                    common::Config next = load_checked(cli);
                                    if (!activated.empty()) next.listen = activated;
                                    return next;
                                  });
    return supervisor.run();
  } catch (const std::exception& err) {
    spdlog::critical("master failed: {}", err.what());
    return common::kExitBoot;
  }
}

}  // namespace

// An exception nothing above handles (one from the command line parser or the credentials
// lookup, say) is reported as a start failure, not left to std::terminate's abort.
int main(int argc, char** argv) {
  try {
    return run_master(argc, argv);
  } catch (const std::exception& err) {
    (void)std::fprintf(stderr, "prefork-httpd: cannot start: %s\n", err.what());
  } catch (...) {
    (void)std::fprintf(stderr, "prefork-httpd: cannot start: unknown exception\n");
  }
  return common::kExitBoot;
}
