// CIDR address ranges ("127.0.0.0/8", "::1/128", "10.1.2.3") for access lists such as
// status_allow (all processes; parsed with the config, matched per request in workers).
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace prefork::common {

class Cidr {
 public:
  // nullopt when `text` is not an address with an optional /prefix.
  static std::optional<Cidr> parse(const std::string& text);

  // True when `addr` (IPv4, IPv6, or IPv4-mapped IPv6) lies in the range.
  [[nodiscard]] bool contains(const sockaddr* addr) const;
  [[nodiscard]] const std::string& text() const { return text_; }
  // The same range written the same way.
  bool operator==(const Cidr&) const = default;

 private:
  std::array<std::uint8_t, 16> bytes_{};  // IPv4 stored in the first 4 bytes
  unsigned prefix_ = 0;
  bool v4_ = false;
  std::string text_;
};

// True when some range in `list` contains `addr`; a unix-domain peer (same host) always is.
bool any_contains(const std::vector<Cidr>& list, const sockaddr* addr);

}  // namespace prefork::common
