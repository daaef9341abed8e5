// Prebuilt response bytes and the cached Date (worker, after fork). Every response the worker
// sends is built once at startup; the Date field is patched in place at most once a second, so
// answering a request is a single append with no formatting or allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace prefork::common {
struct Config;
}

namespace prefork::worker {

// IMF-fixdate (RFC 9110 §5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT": always 29 bytes.
inline constexpr std::size_t kHttpDateLength = 29;
void format_http_date(std::time_t when, char (&out)[kHttpDateLength]);
std::string http_date(std::time_t when);

// What the Connection header of a successful response says.
enum class ConnectionHeader : std::uint8_t {
  kNone,       // HTTP/1.1 keep-alive (the default; no header)
  kKeepAlive,  // HTTP/1.0 client that asked for keep-alive
  kClose,      // the server closes after this response
};

// The statuses that end a connection (each response carries Connection: close).
enum class ErrorStatus : std::uint8_t {
  k400,
  k405,
  k408,
  k413,
  k414,
  k417,
  k431,
  k501,
  k505,
};
inline constexpr std::size_t kErrorStatusCount = 9;

int status_code(ErrorStatus status);

// The reason phrase of a status from 100 to 599 ("" for one RFC 9110 does not name).
std::string_view reason_phrase(int status);

// 204 and 304 never carry a body (RFC 9110 §6.4.1), nor a Content-Length here.
inline bool status_has_body(int status) {
  return status != 204 && status != 304;
}

// What the hello response says (config keys body, content_type, status), and the identity
// header every response carries (identity_header; "" = none).
struct ResponseSettings {
  std::string body = "Hello, World!";
  std::string content_type = "text/plain; charset=utf-8";
  int status = 200;
  std::string identity_name;   // "" = no identity header
  std::string identity_value;  // who answers (backend.hpp: identity_of), also for ?echo

  static ResponseSettings from(const common::Config& config, std::string identity_value);
};

class Responses {
 public:
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  // The body length of an error response to anything but HEAD (for the access log).
  static std::uint64_t error_body_size(ErrorStatus status);

  explicit Responses(std::time_t now, ResponseSettings settings = {});

  // Patches the Date of every prebuilt response when `now` is another second than the cached
  // one; returns whether it did.
  bool set_date(std::time_t now);
  // The cached Date value (IMF-fixdate) and the second it stands for.
  [[nodiscard]] std::string_view date() const noexcept { return {date_, kHttpDateLength}; }
  [[nodiscard]] std::time_t date_second() const noexcept { return date_second_; }

  // GET (the configured body, "Hello, World!") or HEAD (same headers, no body): the
  // configured status, 200.
  [[nodiscard]] std::string_view hello(bool head, ConnectionHeader connection) const;
  // Builds every hello response now (GET and HEAD, each Connection header) rather than on first
  // use: what a master prepares for its per-connection children to send.
  void prebuild_hello();
  [[nodiscard]] int hello_status() const noexcept { return settings_.status; }
  [[nodiscard]] std::uint64_t hello_body_bytes(bool head) const noexcept {
    return head || !status_has_body(settings_.status) ? 0 : settings_.body.size();
  }
  [[nodiscard]] const ResponseSettings& settings() const noexcept { return settings_; }
  // OPTIONS: 204 with Allow.
  [[nodiscard]] std::string_view options(ConnectionHeader connection) const;
  // Any other method: 405 with Allow; the connection stays usable unless told otherwise.
  [[nodiscard]] std::string_view method_not_allowed(ConnectionHeader connection) const;
  // An error that ends the connection; `head` leaves out the body (response to HEAD).
  [[nodiscard]] std::string_view error(ErrorStatus status, bool head) const;

  // A response built per request (internal endpoints, test switches): status line, Date,
  // Server, identity, Content-Type and Content-Length (none for 204/304), `extra_headers`
  // (whole lines), Connection, then the body unless `head`. Returns the body bytes sent.
  std::uint64_t append(std::string& out, int status, std::string_view content_type,
                       std::string_view body, bool head, ConnectionHeader connection,
                       std::string_view extra_headers = {}) const;

 private:
  struct Prebuilt {
    std::string bytes;
    std::size_t date_offset = 0;
  };
  static constexpr std::size_t kModes = 3;

  [[nodiscard]] Prebuilt build(std::string_view status_line, std::string_view extra_headers,
                               std::string_view body, ConnectionHeader connection, bool head) const;
  [[nodiscard]] Prebuilt build_hello(ConnectionHeader connection, bool head) const;
  [[nodiscard]] Prebuilt build_error(ErrorStatus status, ConnectionHeader connection,
                                     bool head) const;
  // `response`, built by `make` and dated on first use: a worker builds each response once, a
  // per-connection child only the one or two it sends (not some forty, per connection).
  template <typename Make>
  std::string_view ready(Prebuilt& response, Make&& make) const;
  template <typename Fn>
  void for_each(Fn&& fn);

  ResponseSettings settings_;
  std::string identity_line_;  // "Name: value\r\n", or empty
  std::time_t date_second_ = 0;
  char date_[kHttpDateLength] = {};
  mutable std::array<Prebuilt, kModes> get_;
  mutable std::array<Prebuilt, kModes> head_;
  mutable std::array<Prebuilt, kModes> options_;
  mutable std::array<Prebuilt, kModes> not_allowed_;
  mutable std::array<Prebuilt, kErrorStatusCount> errors_;
  mutable std::array<Prebuilt, kErrorStatusCount> head_errors_;
};

}  // namespace prefork::worker
