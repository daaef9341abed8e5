// The command line (master, before anything else): CLI11 turns argv into a config path and
// key overrides, so that every config key can be set from the command line.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/config.hpp"

namespace prefork::common {

struct CommandLine {
  std::string config_path;   // empty: built-in defaults
  bool test_config = false;  // -t: validate and exit
  // --signal: send a running master reload/upgrade/reopen/stop/quit and exit; the master is
  // --pid, or else the one the configuration's pidfile names.
  std::string signal;
  int signal_pid = 0;
  // --health-check [TARGET]: probe a running server's health endpoint and exit (0 healthy,
  // 1 not); an empty target means the one this configuration describes.
  std::optional<std::string> health_check;
  std::vector<Override> overrides;
};

// Parses argv. Returns the exit code instead when the program is done (--help, --version,
// a usage error; the message has been printed).
std::variant<CommandLine, int> parse_command_line(int argc, const char* const* argv);

}  // namespace prefork::common
