#include "common/cidr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace prefork::common {
namespace {

bool prefix_matches(const std::uint8_t* a, const std::uint8_t* b, unsigned prefix) {
  const unsigned whole = prefix / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

std::optional<Cidr> Cidr::parse(const std::string& text) {
  Cidr out;
  out.text_ = text;
  const auto slash = text.find('/');
  const std::string host = text.substr(0, slash);
  if (::inet_pton(AF_INET, host.c_str(), out.bytes_.data()) == 1) {
    out.v4_ = true;
    out.prefix_ = 32;
  } else if (::inet_pton(AF_INET6, host.c_str(), out.bytes_.data()) == 1) {
    out.prefix_ = 128;
  } else {
    return std::nullopt;
  }
  if (slash != std::string::npos) {
    const unsigned max = out.prefix_;
    const char* begin = text.data() + slash + 1;
    const char* end = text.data() + text.size();
    unsigned prefix = 0;
    const auto [ptr, ec] = std::from_chars(begin, end, prefix);
    if (begin == end || ec != std::errc{} || ptr != end || prefix > max) return std::nullopt;
    out.prefix_ = prefix;
  }
  return out;
}

bool Cidr::contains(const sockaddr* addr) const {
  if (addr->sa_family == AF_INET) {
    if (!v4_) return false;
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    return prefix_matches(reinterpret_cast<const std::uint8_t*>(&in->sin_addr), bytes_.data(),
                          prefix_);
  }
  if (addr->sa_family != AF_INET6) return false;
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(&in6->sin6_addr);
  if (v4_) {  // a v4 client on a dual-stack socket arrives as ::ffff:a.b.c.d
    return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
           prefix_matches(bytes + 12, bytes_.data(), prefix_);
  }
  return prefix_matches(bytes, bytes_.data(), prefix_);
}

bool any_contains(const std::vector<Cidr>& list, const sockaddr* addr) {
  // A unix-domain peer is on this host by definition, like loopback.
  if (addr->sa_family == AF_UNIX) return true;
  for (const auto& range : list) {
    if (range.contains(addr)) return true;
  }
  return false;
}

}  // namespace prefork::common
