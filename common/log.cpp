#include "common/log.hpp"

#include <unistd.h>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace prefork::common {
namespace {

struct LogSettings {
  std::string tag;
  std::string error_log;
  std::string level;
};

LogSettings& current() {
  static LogSettings settings;
  return settings;
}

spdlog::sink_ptr make_sink(const std::string& error_log) {
  if (error_log == "stderr") return std::make_shared<spdlog::sinks::stderr_sink_st>();
  return std::make_shared<spdlog::sinks::basic_file_sink_st>(error_log, /*truncate=*/false);
}

}  // namespace

void init_logging(const std::string& tag, const std::string& error_log, const std::string& level) {
  current() = {tag, error_log, level};
  auto logger = std::make_shared<spdlog::logger>("prefork", make_sink(error_log));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z [%l] " + tag + " (pid " + std::to_string(::getpid()) +
                      "): %v");
  logger->set_level(spdlog::level::from_str(level));
  // The error log is low-volume (requests go to the access log), so every line is written at
  // once: an operator tailing it, or a crash right after, never misses one.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

void reopen_logging() {
  const LogSettings settings = current();
  if (settings.error_log == "stderr") return;
  flush_logging();
  auto previous = spdlog::default_logger();
  try {
    init_logging(settings.tag, settings.error_log, settings.level);
  } catch (const std::exception& err) {
    // Keep writing to the old file rather than losing the process over its log.
    spdlog::set_default_logger(std::move(previous));
    spdlog::error("cannot reopen {}: {}; still writing to the previous file", settings.error_log,
                  err.what());
  }
}

void flush_logging() noexcept {
  try {
    spdlog::default_logger_raw()->flush();
  } catch (...) {  // nothing sensible to do when flushing the log itself fails
  }
}

}  // namespace prefork::common
