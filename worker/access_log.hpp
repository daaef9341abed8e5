// The access log (worker, after fork): one line per response, combined or JSON, buffered in the
// worker and written with one write() of whole lines to an O_APPEND descriptor, so lines from
// several workers never interleave mid-line. Flushed when the buffer is full, once a second
// from the loop, on exit and on USR1 (which also reopens the file after logrotate renamed it).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "common/unique_fd.hpp"

namespace prefork::worker {

// JSON string contents; bytes >= 0x80 are escaped as \u00XX so the result is valid UTF-8 JSON
// whatever the client sent.
void append_json_escaped(std::string& out, std::string_view text);

class RequestParser;

// The peer of a connected socket, formatted by common::format_ip.
std::string peer_address_text(int fd);

enum class AccessLogFormat : std::uint8_t { kCombined, kJson };

// One request, as the access log writes it.
struct AccessRecord {
  std::string_view client;
  std::string_view request_line;
  int status = 0;
  std::uint64_t body_bytes = 0;
  std::string_view referer;
  std::string_view user_agent;
  std::uint64_t duration_us = 0;  // from the request's first read to its response
};

class AccessLog {
 public:
  static constexpr std::size_t kBufferSize = std::size_t{64} * 1024;
  static constexpr common::Millis kFlushIntervalMs = 1000;

  // `target`: "stderr" or a file path (opened O_APPEND, created 0640). `slot` and `pid` go into
  // JSON lines. Throws common::SysError when the file cannot be opened.
  AccessLog(std::string target, AccessLogFormat format, unsigned slot, pid_t pid);
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;
  ~AccessLog();

  // `format` names "combined" or "json" (anything else: combined).
  static AccessLogFormat parse_format(std::string_view format);

  void log(std::string_view client, const RequestParser& parser, int status,
           std::uint64_t body_bytes, std::uint64_t duration_us);
  void log(const AccessRecord& record, std::time_t now);

  // Flushes when the last flush is kFlushIntervalMs old (called every loop pass).
  void tick(common::Millis now) {
    if (!buffer_.empty() && now - last_flush_ >= kFlushIntervalMs) flush(now);
  }
  void flush(common::Millis now = common::monotonic_ms()) noexcept;
  // USR1: flushes into the old file, then opens the path anew.
  void reopen();

  [[nodiscard]] std::size_t buffered() const noexcept { return buffer_.size(); }

 private:
  void open();
  void update_time(std::time_t now);
  void write_all(const char* data, std::size_t length) noexcept;
  void format_combined(const AccessRecord& record);
  void format_json(const AccessRecord& record);

  std::string target_;
  AccessLogFormat format_;
  unsigned slot_;
  pid_t pid_;
  common::UniqueFd file_;
  int fd_ = 2;
  bool whole_writes_ = true;  // a regular file; a pipe is only atomic up to PIPE_BUF
  std::string buffer_;
  std::string line_;
  common::Millis last_flush_ = 0;
  std::time_t time_second_ = -1;
  std::string combined_time_;  // "10/Oct/2000:13:55:36 -0700"
  std::string iso_time_;       // "2000-10-10T13:55:36-07:00"
  bool write_failed_ = false;
};

}  // namespace prefork::worker
