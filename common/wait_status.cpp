#include "common/wait_status.hpp"

#include <sys/wait.h>

#include "common/exit_codes.hpp"
#include "common/signals.hpp"

namespace prefork::common {

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    std::string text = "killed by " + common::signal_name(WTERMSIG(status));
    if (WCOREDUMP(status)) text += " (core dumped)";
    return text;
  }
  if (WIFSTOPPED(status)) return "stopped by " + common::signal_name(WSTOPSIG(status));
  if (WIFCONTINUED(status)) return "continued";
  return "unknown status " + std::to_string(status);
}

bool is_fatal_exit(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == kExitConfig;
}

}  // namespace prefork::common
