// prefork-httpd's composition root (master process): parses argv and the config, sets up logging
// and listeners, and hands the worker's entry functions to the supervisor. The only file that
// knows both master/ and worker/.
#include <cstdio>
#include <variant>

#include <spdlog/spdlog.h>

#include "common/command_line.hpp"
#include "common/config.hpp"
#include "common/exit_codes.hpp"
#include "common/listeners.hpp"
#include "common/log.hpp"
#include "common/sys_error.hpp"
#include "common/version.hpp"
#include "master/supervisor.hpp"
#include "worker/worker.hpp"

namespace {

using namespace prefork;

// Loads and fully validates the configuration (including listen addresses) without binding.
common::Config load_checked(const common::CommandLine& cli) {
  common::Config config = common::load_config(cli.config_path, cli.overrides);
  for (const auto& spec : config.listen) common::validate_listen_spec(spec);
  return config;
}

void log_startup(const common::Config& config, const std::vector<common::Listener>& listeners) {
  spdlog::info("prefork-httpd {} starting: mode {}, {} {}, config {}", common::kVersion,
               common::mode_name(config.mode),
               config.mode == common::Mode::kPrefork ? config.worker_count() : config.max_children,
               config.mode == common::Mode::kPrefork ? "workers" : "max children", config.source);
  for (const auto& l : listeners) spdlog::info("listening on {}", l.bound);
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = common::parse_command_line(argc, argv);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  const auto& cli = std::get<common::CommandLine>(parsed);

  common::Config config;
  try {
    config = load_checked(cli);
  } catch (const common::ConfigError& err) {
    std::fprintf(stderr, "prefork-httpd: configuration error: %s\n", err.what());
    return cli.test_config ? 1 : common::kExitConfig;
  }
  if (cli.test_config) {
    std::printf("prefork-httpd: configuration %s is valid\n", config.source.c_str());
    return common::kExitOk;
  }

  try {
    common::init_logging("master", config.error_log, config.log_level);
  } catch (const std::exception& err) {
    std::fprintf(stderr, "prefork-httpd: cannot open error_log %s: %s\n", config.error_log.c_str(),
                 err.what());
    return common::kExitConfig;
  }

  std::vector<common::Listener> listeners;
  try {
    listeners = common::open_listeners(config.listen);
  } catch (const std::exception& err) {
    spdlog::critical("cannot listen: {}", err.what());
    return common::kExitConfig;
  }
  log_startup(config, listeners);

  try {
    master::Supervisor supervisor(config, std::move(listeners),
                                  {worker::run, worker::serve_connection},
                                  [cli] { return load_checked(cli); });
    return supervisor.run();
  } catch (const std::exception& err) {
    spdlog::critical("master failed: {}", err.what());
    return common::kExitBoot;
  }
}
