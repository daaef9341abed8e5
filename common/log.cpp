#include "common/log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <spdlog/pattern_formatter.h>
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

// "worker 3 (pid 1234)": who this process is, in every line. Kept outside the formatter so that
// a per-connection child can rename itself with one small write (retag_logging) and keep the
// master's logger instead of building one per connection.
struct Who {
  std::array<char, 96> text{};
  std::size_t length = 0;
};

Who& who() {
  static Who value;
  return value;
}

// [[gnu::hot]]: what a per-connection child runs (why: above worker::serve_single_connection).
// "TAG (pid N)", put together by hand: printf's machinery would be two more pages of libc for
// every per-connection child to fault in when it renames itself.
[[gnu::hot]] void set_who(const char* tag) noexcept {
  Who& w = who();
  constexpr std::string_view kPid = " (pid ";
  constexpr std::size_t kRoom = kPid.size() + 11 + 1;  // " (pid ", an int, ")"
  char* out = w.text.data();
  char* const end = out + w.text.size();
  out = std::copy_n(tag, std::min(std::strlen(tag), w.text.size() - kRoom), out);
  out = std::copy(kPid.begin(), kPid.end(), out);
  out = std::to_chars(out, end, static_cast<int>(::getpid())).ptr;
  *out++ = ')';
  w.length = static_cast<std::size_t>(out - w.text.data());
}

class WhoFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& /*msg*/, const std::tm& /*time*/,
              spdlog::memory_buf_t& dest) override {
    const Who& w = who();
    dest.append(w.text.data(), w.text.data() + w.length);
  }
  [[nodiscard]] std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<WhoFlag>();
  }
};

spdlog::sink_ptr make_sink(const std::string& error_log) {
  if (error_log == "stderr") return std::make_shared<spdlog::sinks::stderr_sink_st>();
  return std::make_shared<spdlog::sinks::basic_file_sink_st>(error_log, /*truncate=*/false);
}

// systemd sets JOURNAL_STREAM to the device and inode of the stream it connected to stderr;
// a match means our stderr really is the journal (not a redirection a user made since).
bool stderr_is_journal() {
  const char* text = std::getenv("JOURNAL_STREAM");
  unsigned long long device = 0;
  unsigned long long inode = 0;
  if (text == nullptr || std::sscanf(text, "%llu:%llu", &device, &inode) != 2) return false;
  struct stat st {};
  return ::fstat(STDERR_FILENO, &st) == 0 && st.st_dev == device && st.st_ino == inode;
}

// The sd-daemon(3) priority prefix ("<3>" for errors), so that `journalctl -p err` finds our
// errors; the journal adds its own timestamp.
class JournalPriority final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*time*/,
              spdlog::memory_buf_t& dest) override {
    const char* prefix = "<6>";
    switch (msg.level) {
      case spdlog::level::trace:
      case spdlog::level::debug: prefix = "<7>"; break;
      case spdlog::level::warn: prefix = "<4>"; break;
      case spdlog::level::err: prefix = "<3>"; break;
      case spdlog::level::critical: prefix = "<2>"; break;
      default: break;
    }
    dest.append(prefix, prefix + 3);
  }
  [[nodiscard]] std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JournalPriority>();
  }
};

std::unique_ptr<spdlog::formatter> make_formatter(const std::string& tag,
                                                  const std::string& error_log) {
  set_who(tag.c_str());
  const std::string who = "[%l] %W: %v";
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<WhoFlag>('W');
  if (error_log == "stderr" && stderr_is_journal()) {
    formatter->add_flag<JournalPriority>('*').set_pattern("%*" + who);
  } else {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z " + who);
  }
  return formatter;
}

}  // namespace

void init_logging(const std::string& tag, const std::string& error_log, const std::string& level) {
  current() = {tag, error_log, level};
  auto logger = std::make_shared<spdlog::logger>("prefork", make_sink(error_log));
  logger->set_formatter(make_formatter(tag, error_log));
  logger->set_level(spdlog::level::from_str(level));
  // The error log is low-volume (requests go to the access log), so every line is written at
  // once: an operator tailing it, or a crash right after, never misses one.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

[[gnu::hot]] void retag_logging(const char* tag) noexcept {
  set_who(tag);
  // A later reopen_logging (USR1) rebuilds the logger under this name, not the master's.
  try {
    current().tag = tag;
  } catch (...) {  // a short tag never allocates; a failure only costs a reopen's tag
  }
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
