#include "worker/access_log.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "common/listeners.hpp"
#include "common/log.hpp"
#include "common/sys_error.hpp"
#include "worker/request_parser.hpp"

namespace prefork::worker {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Combined (nginx's escaping): '"', '\\' and bytes outside printable ASCII become \xHH.
void append_combined_escaped(std::string& out, std::string_view text) {
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      const char escaped[] = {'\\', 'x', kHex[c >> 4], kHex[c & 0xF]};
      out.append(escaped, sizeof escaped);
    } else {
      out.push_back(ch);
    }
  }
}

// Microseconds as seconds with six decimals ("0.000123").
void append_seconds(std::string& out, std::uint64_t us) {
  char text[32];
  const int n =
      std::snprintf(text, sizeof text, "%" PRIu64 ".%06" PRIu64, us / 1'000'000, us % 1'000'000);
  out.append(text, static_cast<std::size_t>(n));
}

void append_json_field(std::string& out, std::string_view name, std::string_view value) {
  out.push_back('"');
  out.append(name);
  out.append("\":\"");
  append_json_escaped(out, value);
  out.push_back('"');
}

}  // namespace

// JSON string contents; bytes >= 0x80 are escaped as \u00XX so every line is valid UTF-8 JSON
// whatever the client sent.
void append_json_escaped(std::string& out, std::string_view text) {
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c >= 0x7f) {
      const char escaped[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out.append(escaped, sizeof escaped);
    } else {
      out.push_back(ch);
    }
  }
}

std::string peer_address_text(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return "-";
  return common::format_ip(reinterpret_cast<const sockaddr*>(&storage));
}

AccessLog::AccessLog(std::string target, AccessLogFormat format, unsigned slot, pid_t pid)
    : target_(std::move(target)), format_(format), slot_(slot), pid_(pid) {
  buffer_.reserve(kBufferSize);
  line_.reserve(1024);
  open();
  last_flush_ = common::monotonic_ms();
}

AccessLog::~AccessLog() {
  flush();
}

AccessLogFormat AccessLog::parse_format(std::string_view format) {
  return format == "json" ? AccessLogFormat::kJson : AccessLogFormat::kCombined;
}

void AccessLog::open() {
  if (target_ == "stderr") {
    file_.reset();
    fd_ = STDERR_FILENO;
  } else {
    common::UniqueFd file(
        ::open(target_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640));
    if (!file) throw common::SysError("open(" + target_ + ")");
    file_ = std::move(file);
    fd_ = file_.get();
  }
  struct stat st {};
  whole_writes_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
}

void AccessLog::reopen() {
  flush();
  if (target_ == "stderr") return;
  try {
    open();
  } catch (const std::exception& err) {
    // Keep writing to the old file rather than lose lines.
    spdlog::error("access log: {}; still writing to the previous file", err.what());
  }
}

void AccessLog::update_time(std::time_t now) {
  if (now == time_second_) return;
  time_second_ = now;
  std::tm tm{};
  ::localtime_r(&now, &tm);
  char text[64];
  std::size_t n = std::strftime(text, sizeof text, "%d/%b/%Y:%H:%M:%S %z", &tm);
  // %b follows LC_TIME; the worker never calls setlocale, so this is the "C" locale's English.
  combined_time_.assign(text, n);
  n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S%z", &tm);
  iso_time_.assign(text, n);
  if (iso_time_.size() >= 5) iso_time_.insert(iso_time_.size() - 2, ":");  // +0200 -> +02:00
}

void AccessLog::log(std::string_view client, const RequestParser& parser, int status,
                    std::uint64_t body_bytes, std::uint64_t duration_us) {
  log({client, parser.request_line(), status, body_bytes, parser.referer(), parser.user_agent(),
       duration_us},
      static_cast<std::time_t>(common::wall_ms() / 1000));
}

void AccessLog::log(const AccessRecord& record, std::time_t now) {
  update_time(now);
  line_.clear();
  if (format_ == AccessLogFormat::kJson) {
    format_json(record);
  } else {
    format_combined(record);
  }
  line_.push_back('\n');
  if (buffer_.size() + line_.size() > kBufferSize) flush();
  buffer_.append(line_);
}

void AccessLog::format_combined(const AccessRecord& r) {
  line_.append(r.client.empty() ? "-" : r.client);
  line_.append(" - - [");
  line_.append(combined_time_);
  line_.append("] \"");
  append_combined_escaped(line_, r.request_line);
  line_.append("\" ");
  line_.append(std::to_string(r.status));
  line_.push_back(' ');
  line_.append(std::to_string(r.body_bytes));
  line_.append(" \"");
  if (r.referer.empty()) {
    line_.push_back('-');
  } else {
    append_combined_escaped(line_, r.referer);
  }
  line_.append("\" \"");
  if (r.user_agent.empty()) {
    line_.push_back('-');
  } else {
    append_combined_escaped(line_, r.user_agent);
  }
  // The request time in seconds after the combined fields, as nginx's $request_time is
  // usually added: log analysers read the combined part and may take this one too.
  line_.append("\" ");
  append_seconds(line_, r.duration_us);
}

void AccessLog::format_json(const AccessRecord& r) {
  line_.push_back('{');
  append_json_field(line_, "time", iso_time_);
  line_.push_back(',');
  append_json_field(line_, "remote_addr", r.client);
  line_.push_back(',');
  append_json_field(line_, "request", r.request_line);
  line_.append(",\"status\":");
  line_.append(std::to_string(r.status));
  line_.append(",\"body_bytes_sent\":");
  line_.append(std::to_string(r.body_bytes));
  line_.push_back(',');
  append_json_field(line_, "http_referer", r.referer);
  line_.push_back(',');
  append_json_field(line_, "http_user_agent", r.user_agent);
  line_.append(",\"request_time\":");
  append_seconds(line_, r.duration_us);
  line_.append(",\"pid\":");
  line_.append(std::to_string(pid_));
  line_.append(",\"slot\":");
  line_.append(std::to_string(slot_));
  line_.push_back('}');
}

void AccessLog::flush(common::Millis now) noexcept {
  last_flush_ = now;
  if (buffer_.empty()) return;
  if (whole_writes_) {
    write_all(buffer_.data(), buffer_.size());
  } else {
    // A pipe or terminal keeps writes whole only up to PIPE_BUF: cut at line ends below that.
    std::string_view rest(buffer_);
    while (!rest.empty()) {
      std::size_t cut = rest.size();
      if (cut > PIPE_BUF) {
        const std::size_t lf = rest.rfind('\n', PIPE_BUF - 1);
        cut = lf == std::string_view::npos ? rest.find('\n') + 1 : lf + 1;
        if (cut == 0) cut = rest.size();  // no newline at all (cannot happen: lines end in one)
      }
      write_all(rest.data(), cut);
      rest.remove_prefix(cut);
    }
  }
  buffer_.clear();
}

void AccessLog::write_all(const char* data, std::size_t length) noexcept {
  while (length > 0) {
    const ssize_t n = ::write(fd_, data, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (!write_failed_) {
        write_failed_ = true;  // once per worker: a full disk must not flood the error log
        spdlog::error("write(access log {}): {}", target_, common::errno_text(errno));
      }
      return;
    }
    data += n;
    length -= static_cast<std::size_t>(n);
  }
}

}  // namespace prefork::worker
