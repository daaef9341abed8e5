// prefork-httpd's composition root (master process): parses argv and the config, sets up logging
// and listeners, and hands the worker's entry functions to the supervisor. The only file that
// knows both master/ and worker/.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <variant>

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "common/build_id.hpp"
#include "common/command_line.hpp"
#include "common/config.hpp"
#include "common/exit_codes.hpp"
#include "common/health_probe.hpp"
#include "common/listeners.hpp"
#include "common/log.hpp"
#include "common/resource_limits.hpp"
#include "common/sys_error.hpp"
#include "common/version.hpp"
#include "master/control.hpp"
#include "master/pidfile.hpp"
#include "master/privileges.hpp"
#include "master/supervisor.hpp"
#include "master/upgrade.hpp"
#include "worker/worker.hpp"

namespace {

using namespace prefork;

// Loads and fully validates the configuration (listen addresses included) without binding.
// `environment` is the master's own, read once at start: a reload applies the same variables
// again (nothing outside can change a running process's environment; a changed systemd
// Environment= takes a restart).
common::Config load_checked(const common::CommandLine& cli,
                            const common::Environment& environment) {
  common::Config config = common::load_config(cli.config_path, cli.overrides, environment);
  // An unknown user or group is a configuration error (exit 2; a reload keeps the old config).
  const auto credentials = master::resolve_child_credentials(config, ::geteuid() == 0);
  const auto& running = master::child_credentials();
  const bool reloading = !running.user.empty();  // installed at startup
  if (reloading && (credentials.user != running.user || credentials.group != running.group)) {
    spdlog::warn(
        "user/group changed to \"{}\"/\"{}\": applies after a restart; children keep "
        "running as \"{}\"/\"{}\"",
        credentials.user, credentials.group, running.user, running.group);
  }
  // A log file the children cannot open would make every child exit at start: a configuration
  // error now (exit 2; a reload keeps the running configuration), not a respawn loop later.
  master::check_log_files_for_children(config, reloading ? running : credentials);
  return config;
}

// A binary upgrade passed us the old master's sockets: the configuration decides which stay
// (each configured address takes its passed socket, or is bound anew); the rest close here and
// in the old master as it drains. Sockets systemd activated stay, as on a reload.
std::vector<common::Listener> adopt_listeners(common::Config& config,
                                              std::vector<common::Listener> passed) {
  spdlog::info("binary upgrade: taking over {} socket(s) from the master pid {}", passed.size(),
               ::getppid());
  if (!passed.empty() && passed.front().spec.starts_with("systemd:")) {
    config.listen.clear();
    for (const auto& l : passed) config.listen.push_back(l.spec);
    return passed;
  }
  std::vector<common::Listener> out;
  for (const auto& spec : config.listen) {
    auto it = std::find_if(passed.begin(), passed.end(),
                           [&](const auto& l) { return l.fd && l.spec == spec; });
    if (it != passed.end()) {
      out.push_back(std::move(*it));
    } else {
      auto opened = common::open_listeners({spec}, {.socket_mode = config.socket_mode});
      out.push_back(std::move(opened.front()));
    }
  }
  for (auto& l : passed) {
    if (l.fd) l.path.release();  // still the old master's socket file until it drains
  }
  return out;
}

void log_startup(const common::Config& config, const std::vector<common::Listener>& listeners) {
  spdlog::info("prefork-httpd {} (build {}) starting: mode {}, {} {}, config {}", common::kVersion,
               common::build_id(), common::mode_name(config.mode),
               config.mode == common::Mode::kPrefork ? config.worker_count() : config.max_children,
               config.mode == common::Mode::kPrefork ? "workers" : "max children", config.source);
  for (const auto& l : listeners) spdlog::info("listening on {}", l.bound);
}

// How long `--signal upgrade --pid PID` waits: the configured upgrade_timeout when -c names a
// readable configuration, else the default. The configuration is not required here: a reload
// must reach the master (which reports a broken file) even when the file is broken.
common::Millis upgrade_timeout_of(const common::CommandLine& cli) {
  if (cli.config_path.empty()) return common::Config{}.upgrade_timeout;
  try {
    return common::load_config(cli.config_path, cli.overrides).upgrade_timeout;
  } catch (const common::ConfigError&) {
    return common::Config{}.upgrade_timeout;
  }
}

// The master's whole life: everything main() does, as an exit code.
int run_master(int argc, char** argv) {
  const auto executable = master::resolve_executable(argc, argv);
  auto parsed = common::parse_command_line(argc, argv);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  const auto& cli = std::get<common::CommandLine>(parsed);
  if (!cli.signal.empty() && cli.signal_pid > 0) {
    return master::signal_master(cli.signal, cli.signal_pid, "", upgrade_timeout_of(cli));
  }

  const auto environment = common::configuration_environment(environ);
  if (cli.health_check) {
    // The configuration (file, environment, -s) is read only for what the target leaves out,
    // the way the server would read it: PORT in a container's environment is where it listens.
    return common::run_health_check(*cli.health_check, [&] {
      return common::load_config(cli.config_path, cli.overrides, environment);
    });
  }
  common::Config config;
  try {
    config = load_checked(cli, environment);
  } catch (const common::ConfigError& err) {
    (void)std::fprintf(stderr, "prefork-httpd: configuration error: %s\n", err.what());
    return cli.test_config ? 1 : common::kExitConfig;
  }
  if (!cli.signal.empty()) {
    return master::signal_master(cli.signal, 0, config.pidfile, config.upgrade_timeout);
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
  bool upgrading = false;
  try {
    if (auto passed = common::listeners_from_upgrade(); !passed.empty()) {
      upgrading = true;
      listeners = adopt_listeners(config, std::move(passed));
      if (listeners.front().spec.starts_with("systemd:")) activated = config.listen;
    } else {
      listeners = common::listeners_from_systemd();
      for (const auto& l : listeners) activated.push_back(l.spec);
    }
    if (upgrading) {
      // The pidfile names us once the old master hands over (see before_taking_over).
    } else if (listeners.empty()) {
      listeners = common::open_listeners(config.listen, {.socket_mode = config.socket_mode});
    } else {
      spdlog::info("socket activation: using {} socket(s) from systemd; 'listen' is ignored",
                   listeners.size());
      config.listen = activated;
    }
    for (auto& l : listeners) l.proxy_protocol = config.proxy_protocol_on(l.spec);
    if (!upgrading) pidfile.emplace(config.pidfile);
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

  master::SupervisorOptions options;
  options.executable = executable;
  if (upgrading) {
    options.before_taking_over = [&pidfile, path = config.pidfile] {
      try {
        pidfile.emplace(path);
      } catch (const std::exception& err) {
        spdlog::error("upgrade: cannot write the pidfile: {}", err.what());
      }
    };
  }
  // Per-connection children read what the master prepared before fork (worker::PreparedConfig).
  const auto connections = std::make_shared<worker::ConnectionPrototype>();
  try {
    master::Supervisor supervisor(
        config, std::move(listeners),
        {worker::run,
         [connections](const common::ChildContext& ctx, common::UniqueFd client) {
           return connections->serve(ctx, std::move(client));
         },
         [connections](const common::Config& next, unsigned generation) {
           connections->prepare(next, generation);
         }},
        [cli, environment, activated] {
          common::Config next = load_checked(cli, environment);
          if (!activated.empty()) next.listen = activated;
          // A log file new in this configuration is created and handed to the children's
          // user, as at startup.
          master::prepare_log_files_for_children(next, master::child_credentials());
          return next;
        },
        options);
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
