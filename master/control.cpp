#include "master/control.hpp"

#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <map>

#include "common/exit_codes.hpp"
#include "common/sys_error.hpp"

namespace prefork::master {

int signal_master(const std::string& action, pid_t pid, const std::string& pidfile) {
  static const std::map<std::string, int> signals = {{"reload", SIGHUP},
                                                     {"upgrade", SIGUSR2},
                                                     {"reopen", SIGUSR1},
                                                     {"stop", SIGTERM},
                                                     {"quit", SIGINT}};
  const auto signo = signals.find(action);
  if (signo == signals.end()) {
    (void)std::fprintf(stderr, "prefork-httpd: --signal %s: unknown action\n", action.c_str());
    return common::kExitConfig;
  }
  if (pid <= 0) {
    if (pidfile.empty()) {
      (void)std::fprintf(stderr, "prefork-httpd: --signal needs --pid or a configured pidfile\n");
      return common::kExitConfig;
    }
    std::ifstream in(pidfile);
    if (!(in >> pid) || pid <= 0) {
      (void)std::fprintf(stderr,
                         "prefork-httpd: %s: no master pid in it (is the server running?)\n",
                         pidfile.c_str());
      return common::kExitFailure;
    }
  }
  if (::kill(pid, signo->second) != 0) {
    (void)std::fprintf(stderr, "prefork-httpd: kill(%d, %s): %s\n", pid, action.c_str(),
                       common::errno_text(errno).c_str());
    return common::kExitFailure;
  }
  return common::kExitOk;
}

}  // namespace prefork::master
