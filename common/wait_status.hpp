// Describes a waitpid() status in words for log lines and the status page (all processes: the
// master logs it, the status page shows it).
#pragma once

#include <string>

namespace prefork::common {

// "exited with code 3", "killed by SIGSEGV (core dumped)", "stopped by SIGSTOP".
std::string describe_wait_status(int status);

// True for an exit the master must not answer with a respawn (exit code 2: fatal config).
bool is_fatal_exit(int status);

}  // namespace prefork::common
