// `prefork-httpd --signal NAME`: the binary signals its running master, as `nginx -s reload`
// does, so that a service manager needs nothing but this package (no kill(1) from procps).
#pragma once

#include <sys/types.h>

#include <string>

namespace prefork::master {

// Sends the signal named by `action` (reload, upgrade, reopen, stop, quit) to `pid`, or when it
// is 0 to the pid in `pidfile`. Returns the exit code; says what went wrong on stderr.
int signal_master(const std::string& action, pid_t pid, const std::string& pidfile);

}  // namespace prefork::master
