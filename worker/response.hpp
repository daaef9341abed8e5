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

class Responses {
 public:
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  static constexpr std::uint64_t kHelloBodySize = 13;  // "Hello, World!"

  // The body length of an error response to anything but HEAD (for the access log).
  static std::uint64_t error_body_size(ErrorStatus status);

  explicit Responses(std::time_t now);

  // Patches the Date of every prebuilt response when `now` is another second than the cached
  // one; returns whether it did.
  bool set_date(std::time_t now);
  // The cached Date value (IMF-fixdate) and the second it stands for.
  [[nodiscard]] std::string_view date() const noexcept { return {date_, kHttpDateLength}; }
  [[nodiscard]] std::time_t date_second() const noexcept { return date_second_; }

  // GET (body "Hello, World!") or HEAD (same headers, no body): 200.
  [[nodiscard]] std::string_view hello(bool head, ConnectionHeader connection) const;
  // OPTIONS: 204 with Allow.
  [[nodiscard]] std::string_view options(ConnectionHeader connection) const;
  // Any other method: 405 with Allow; the connection stays usable unless told otherwise.
  [[nodiscard]] std::string_view method_not_allowed(ConnectionHeader connection) const;
  // An error that ends the connection; `head` leaves out the body (response to HEAD).
  [[nodiscard]] std::string_view error(ErrorStatus status, bool head) const;

 private:
  struct Prebuilt {
    std::string bytes;
    std::size_t date_offset = 0;
  };
  static constexpr std::size_t kModes = 3;

  static Prebuilt build(std::string_view status_line, std::string_view extra_headers,
                        std::string_view body, ConnectionHeader connection, bool head);
  template <typename Fn>
  void for_each(Fn&& fn);

  std::time_t date_second_ = 0;
  char date_[kHttpDateLength] = {};
  std::array<Prebuilt, kModes> get_;
  std::array<Prebuilt, kModes> head_;
  std::array<Prebuilt, kModes> options_;
  std::array<Prebuilt, kModes> not_allowed_;
  std::array<Prebuilt, kErrorStatusCount> errors_;
  std::array<Prebuilt, kErrorStatusCount> head_errors_;
};

}  // namespace prefork::worker
