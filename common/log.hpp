// Logging setup (spdlog, synchronous sinks only: async loggers do not survive fork).
// The master calls init_logging once; a prefork worker calls it again right after fork, so every
// process has its own logger tagged with who it is. A per-connection child keeps the master's
// logger (already configured, its sink already open) and only renames itself: retag_logging.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace prefork::common {

// `error_log` is "stderr" or a file path (appended); `level` is a spdlog level name.
// `tag` names the process in every line, e.g. "master" or "worker 3". Every line is written at
// once (nothing stays buffered), so fork() and _exit() need no flush around them.
void init_logging(const std::string& tag, const std::string& error_log, const std::string& level);

// After fork: this process's lines say `tag` and its own pid from now on. Allocates nothing.
void retag_logging(const char* tag) noexcept;

// Re-opens the log file after logrotate renamed it (USR1). A no-op for stderr.
void reopen_logging();

// Flushes the logger's sink (before exec, which keeps no stdio buffer).
void flush_logging() noexcept;

}  // namespace prefork::common
