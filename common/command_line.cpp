#include "common/command_line.hpp"

#include <CLI/CLI.hpp>

#include "common/exit_codes.hpp"
#include "common/version.hpp"

namespace prefork::common {
namespace {

std::string toml_string_array(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& item : items) {
    if (out.size() > 1) out += ", ";
    out += "\"" + item + "\"";
  }
  return out + "]";
}

}  // namespace

std::variant<CommandLine, int> parse_command_line(int argc, const char* const* argv) {
  CLI::App app{"prefork-httpd: a preforking HTTP/1.1 server that answers \"Hello, World!\"",
               "prefork-httpd"};
  app.set_version_flag("-v,--version", std::string("prefork-httpd ") + kVersion);
  CommandLine out;
  std::vector<std::string> listen;
  std::string workers;
  std::string mode;
  std::vector<std::string> sets;
  app.add_option("-c,--config", out.config_path, "TOML configuration file")
      ->check(CLI::ExistingFile);
  app.add_flag("-t,--test", out.test_config,
               "Check the configuration (and listen addresses) and exit: 0 valid, 1 invalid");
  app.add_option("-l,--listen", listen,
                 "Listen address, repeatable ([::]:8888, 127.0.0.1:0, 8888)");
  app.add_option("-w,--workers", workers, "Worker processes: a number or \"auto\" (one per CPU)");
  app.add_option("-m,--mode", mode, "Process model: prefork or per-connection");
  app.add_option("-s,--set", sets, "Override any configuration key: KEY=VALUE (VALUE in TOML)");
  app.add_option("--signal", out.signal,
                 "Signal the running master and exit: reload (HUP), upgrade (USR2), reopen (USR1), "
                 "stop (TERM, graceful), quit (INT, fast)")
      ->check(CLI::IsMember({"reload", "upgrade", "reopen", "stop", "quit"}));
  app.add_option("--pid", out.signal_pid,
                 "With --signal: the master's pid (default: the configuration's pidfile)")
      ->check(CLI::PositiveNumber);
  std::string health_check;
  auto* probe =
      app.add_option("--health-check", health_check,
                     "Probe a running server's health endpoint and exit: 0 on a 2xx answer within "
                     "2 s, 1 otherwise, 2 on a bad target. TARGET: [http://]ADDRESS[/PATH] "
                     "(default: the first listen address and healthz_path of this configuration)")
          ->expected(0, 1)
          ->type_name("[TARGET]")
          ->excludes("--signal")
          ->excludes("-t");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& err) {
    const int code = app.exit(err);
    return code == 0 ? kExitOk : kExitConfig;
  }
  if (probe->count() > 0) out.health_check = health_check;
  if (!listen.empty()) out.overrides.push_back({"listen", toml_string_array(listen)});
  if (!workers.empty()) out.overrides.push_back({"workers", workers});
  if (!mode.empty()) out.overrides.push_back({"mode", mode});
  for (const auto& item : sets) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      (void)std::fprintf(stderr, "--set %s: expected KEY=VALUE\n", item.c_str());
      return kExitConfig;
    }
    out.overrides.push_back({item.substr(0, eq), item.substr(eq + 1)});
  }
  return out;
}

}  // namespace prefork::common
