// Logging setup (spdlog, synchronous sinks only: async loggers do not survive fork).
// The master calls init_logging once; each child calls it again right after fork, so every
// process has its own logger tagged with who it is.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace prefork::common {

// `error_log` is "stderr" or a file path (appended); `level` is a spdlog level name.
// `tag` names the process in every line, e.g. "master" or "worker 3".
void init_logging(const std::string& tag, const std::string& error_log, const std::string& level);

// Re-opens the log file after logrotate renamed it (USR1). A no-op for stderr.
void reopen_logging();

// Flushes everything; called before a child _exit()s.
void flush_logging() noexcept;

}  // namespace prefork::common
