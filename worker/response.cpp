#include "worker/response.hpp"

#include <chrono>
#include <cstring>

#include "common/config.hpp"

namespace prefork::worker {
namespace {

constexpr std::string_view kTextPlain = "Content-Type: text/plain; charset=utf-8\r\n";
constexpr std::string_view kServer = "Server: prefork-httpd\r\n";
constexpr std::string_view kAllow = "Allow: GET, HEAD\r\n";
constexpr std::string_view kAllowOptions = "Allow: GET, HEAD, OPTIONS\r\n";

struct ErrorText {
  int code;
  std::string_view status_line;
  std::string_view body;
};

constexpr std::array<ErrorText, kErrorStatusCount> kErrors{{
    {400, "HTTP/1.1 400 Bad Request\r\n", "Bad Request\n"},
    {405, "HTTP/1.1 405 Method Not Allowed\r\n", "Method Not Allowed\n"},
    {408, "HTTP/1.1 408 Request Timeout\r\n", "Request Timeout\n"},
    {413, "HTTP/1.1 413 Content Too Large\r\n", "Content Too Large\n"},
    {414, "HTTP/1.1 414 URI Too Long\r\n", "URI Too Long\n"},
    {417, "HTTP/1.1 417 Expectation Failed\r\n", "Expectation Failed\n"},
    {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n", "Request Header Fields Too Large\n"},
    {501, "HTTP/1.1 501 Not Implemented\r\n", "Not Implemented\n"},
    {505, "HTTP/1.1 505 HTTP Version Not Supported\r\n", "HTTP Version Not Supported\n"},
}};

constexpr std::array<std::string_view, 7> kDays{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void put2(char* out, int value) {
  out[0] = static_cast<char>('0' + value / 10);
  out[1] = static_cast<char>('0' + value % 10);
}

std::size_t mode_index(ConnectionHeader connection) {
  return static_cast<std::size_t>(connection);
}

}  // namespace

void format_http_date(std::time_t when, char (&out)[kHttpDateLength]) {
  // The calendar arithmetic of <chrono>, not gmtime_r: that takes glibc's time zone lock, a
  // write to libc's memory and so a copy-on-write fault in every per-connection child.
  using namespace std::chrono;
  const sys_seconds at{seconds{when}};
  const sys_days day = floor<days>(at);
  const year_month_day date{day};
  const hh_mm_ss time{at - day};
  // Formatted by hand: strftime's %a/%b follow the locale, HTTP dates must not.
  std::memcpy(out, kDays[weekday{day}.c_encoding()].data(), 3);
  std::memcpy(out + 3, ", ", 2);
  put2(out + 5, static_cast<int>(static_cast<unsigned>(date.day())));
  out[7] = ' ';
  std::memcpy(out + 8, kMonths[static_cast<unsigned>(date.month()) - 1].data(), 3);
  out[11] = ' ';
  const int year = static_cast<int>(date.year());
  put2(out + 12, year / 100 % 100);
  put2(out + 14, year % 100);
  out[16] = ' ';
  put2(out + 17, static_cast<int>(time.hours().count()));
  out[19] = ':';
  put2(out + 20, static_cast<int>(time.minutes().count()));
  out[22] = ':';
  put2(out + 23, static_cast<int>(time.seconds().count()));
  std::memcpy(out + 25, " GMT", 4);
}

std::string http_date(std::time_t when) {
  char text[kHttpDateLength];
  format_http_date(when, text);
  return std::string(text, kHttpDateLength);
}

std::uint64_t Responses::error_body_size(ErrorStatus status) {
  return kErrors[static_cast<std::size_t>(status)].body.size();
}

int status_code(ErrorStatus status) {
  return kErrors[static_cast<std::size_t>(status)].code;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

ResponseSettings ResponseSettings::from(const common::Config& config, std::string identity_value) {
  return {config.body, config.content_type, static_cast<int>(config.status), config.identity_header,
          std::move(identity_value)};
}

Responses::Prebuilt Responses::build(std::string_view status_line, std::string_view extra_headers,
                                     std::string_view body, ConnectionHeader connection,
                                     bool head) const {
  Prebuilt out;
  out.bytes.append(status_line);
  out.bytes.append("Date: ");
  out.date_offset = out.bytes.size();
  out.bytes.append(kHttpDateLength, ' ');
  out.bytes.append("\r\n");
  out.bytes.append(kServer);
  out.bytes.append(identity_line_);
  out.bytes.append(extra_headers);
  if (connection == ConnectionHeader::kKeepAlive) out.bytes.append("Connection: keep-alive\r\n");
  if (connection == ConnectionHeader::kClose) out.bytes.append("Connection: close\r\n");
  out.bytes.append("\r\n");
  if (!head) out.bytes.append(body);
  return out;
}

std::string status_line(int status) {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_phrase(status)) + "\r\n";
}

// Content-Type and Content-Length of a response with `body` (neither for 204 and 304).
std::string content_headers(int status, std::string_view content_type, std::string_view body) {
  if (!status_has_body(status)) return {};
  return "Content-Type: " + std::string(content_type) +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
}

Responses::Responses(std::time_t now, ResponseSettings settings) : settings_(std::move(settings)) {
  if (!settings_.identity_name.empty()) {
    identity_line_ = settings_.identity_name + ": " + settings_.identity_value + "\r\n";
  }
  date_second_ = now - 1;
  set_date(now);
}

Responses::Prebuilt Responses::build_hello(ConnectionHeader connection, bool head) const {
  const int status = settings_.status;
  const std::string_view body =
      status_has_body(status) ? std::string_view(settings_.body) : std::string_view();
  return build(status_line(status), content_headers(status, settings_.content_type, settings_.body),
               body, connection, head);
}

Responses::Prebuilt Responses::build_error(ErrorStatus status, ConnectionHeader connection,
                                           bool head) const {
  const ErrorText& text = kErrors[static_cast<std::size_t>(status)];
  std::string headers = text.code == 405 ? std::string(kAllow) : std::string();
  headers +=
      std::string(kTextPlain) + "Content-Length: " + std::to_string(text.body.size()) + "\r\n";
  return build(text.status_line, headers, text.body, connection, head);
}

template <typename Make>
std::string_view Responses::ready(Prebuilt& response, Make&& make) const {
  if (response.bytes.empty()) {
    response = make();
    std::memcpy(response.bytes.data() + response.date_offset, date_, kHttpDateLength);
  }
  return response.bytes;
}

template <typename Fn>
void Responses::for_each(Fn&& fn) {
  for (auto* group : {&get_, &head_, &options_, &not_allowed_}) {
    for (Prebuilt& response : *group) fn(response);
  }
  for (auto* group : {&errors_, &head_errors_}) {
    for (Prebuilt& response : *group) fn(response);
  }
}

bool Responses::set_date(std::time_t now) {
  if (now == date_second_) return false;
  date_second_ = now;
  format_http_date(now, date_);
  for_each([this](Prebuilt& response) {
    if (response.bytes.empty()) return;  // not built yet: built with the date then
    std::memcpy(response.bytes.data() + response.date_offset, date_, kHttpDateLength);
  });
  return true;
}

[[gnu::hot]] std::string_view Responses::hello(bool head, ConnectionHeader connection) const {
  return ready((head ? head_ : get_)[mode_index(connection)],
               [&] { return build_hello(connection, head); });
}

void Responses::prebuild_hello() {
  for (const bool head : {false, true}) {
    for (const ConnectionHeader connection :
         {ConnectionHeader::kNone, ConnectionHeader::kKeepAlive, ConnectionHeader::kClose}) {
      (void)hello(head, connection);
    }
  }
}

std::string_view Responses::options(ConnectionHeader connection) const {
  // RFC 9110 §8.6: no Content-Length in a 204.
  return ready(options_[mode_index(connection)], [&] {
    return build("HTTP/1.1 204 No Content\r\n", kAllowOptions, {}, connection, false);
  });
}

std::string_view Responses::method_not_allowed(ConnectionHeader connection) const {
  return ready(not_allowed_[mode_index(connection)],
               [&] { return build_error(ErrorStatus::k405, connection, false); });
}

std::string_view Responses::error(ErrorStatus status, bool head) const {
  return ready((head ? head_errors_ : errors_)[static_cast<std::size_t>(status)],
               [&] { return build_error(status, ConnectionHeader::kClose, head); });
}

std::uint64_t Responses::append(std::string& out, int status, std::string_view content_type,
                                std::string_view body, bool head, ConnectionHeader connection,
                                std::string_view extra_headers) const {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason_phrase(status);
  out += "\r\nDate: ";
  out += date();
  out += "\r\n";
  out += kServer;
  out += identity_line_;
  const bool has_body = status_has_body(status);
  if (has_body) {
    out += "Content-Type: ";
    out += content_type;
    out += "\r\nContent-Length: ";
    out += std::to_string(body.size());
    out += "\r\n";
  }
  out += extra_headers;
  if (connection == ConnectionHeader::kKeepAlive) out += "Connection: keep-alive\r\n";
  if (connection == ConnectionHeader::kClose) out += "Connection: close\r\n";
  out += "\r\n";
  if (head || !has_body) return 0;
  out += body;
  return body.size();
}

}  // namespace prefork::worker
