#include "worker/proxy_protocol.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace prefork::worker {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::array<char, 12> kV2Signature{'\r', '\n', '\r', '\n', '\0', '\r',
                                            '\n', 'Q',  'U',  'I',  'T',  '\n'};
constexpr std::size_t kV2Inet = 12;   // 2 IPv4 addresses, 2 ports
constexpr std::size_t kV2Inet6 = 36;  // 2 IPv6 addresses, 2 ports
constexpr unsigned kV2CommandProxy = 1;
constexpr unsigned kV2FamilyInet = 1;
constexpr unsigned kV2FamilyInet6 = 2;
constexpr unsigned kV2FamilyUnix = 3;
constexpr unsigned kV2TransportStream = 1;
constexpr unsigned kV2TransportDgram = 2;

// "0".."65535", decimal, no sign, no leading zero.
bool parse_port(std::string_view text, std::uint16_t& port) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  unsigned value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

// inet_pton on a view; `family` AF_INET or AF_INET6; `out` gets 4 or 16 bytes.
bool parse_address(std::string_view text, int family, void* out) {
  std::array<char, INET6_ADDRSTRLEN> copy{};
  if (text.empty() || text.size() >= copy.size()) return false;
  std::memcpy(copy.data(), text.data(), text.size());
  return ::inet_pton(family, copy.data(), out) == 1;
}

// The next field up to a single space (or the end); false for an empty field.
bool next_field(std::string_view& rest, std::string_view& field) {
  const std::size_t space = rest.find(' ');
  field = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  return !field.empty();
}

}  // namespace

ProxyHeaderParser::Status ProxyHeaderParser::feed(std::string_view input, std::size_t& consumed) {
  consumed = 0;
  while (status_ == Status::kNeedMore && consumed < input.size()) {
    if (version_ == 2 && length_ == kV2HeaderBytes + v2_keep_) {
      // Past the address block: TLVs are skipped without being stored.
      const std::size_t n = std::min(v2_skip_, input.size() - consumed);
      v2_skip_ -= n;
      consumed += n;
      received_ += n;
      if (v2_skip_ == 0) finish_v2_addresses();
      continue;
    }
    const char c = input[consumed++];
    ++received_;
    if (length_ == 0) {
      if (c == kV1Prefix[0]) {
        version_ = 1;
      } else if (c == kV2Signature[0]) {
        version_ = 2;
      } else {
        return invalid();
      }
    }
    if (version_ == 1) {
      feed_v1(c);
      continue;
    }
    buffer_[length_++] = c;
    if (length_ <= kV2Signature.size()) {
      if (c != kV2Signature[length_ - 1]) return invalid();
    } else if (length_ == kV2HeaderBytes) {
      finish_v2_header();
    } else if (length_ == kV2HeaderBytes + v2_keep_ && v2_skip_ == 0) {
      finish_v2_addresses();
    }
  }
  return status_;
}

ProxyHeaderParser::Status ProxyHeaderParser::feed_v1(char c) {
  if (length_ == kMaxV1Bytes) return invalid();  // no CRLF within 107 bytes
  if (length_ < kV1Prefix.size() && c != kV1Prefix[length_]) return invalid();
  const bool after_cr = length_ > 0 && buffer_[length_ - 1] == '\r';
  buffer_[length_++] = c;
  if (after_cr) return c == '\n' ? finish_v1() : invalid();
  if (c == '\n') return invalid();  // a bare LF
  return status_;
}

// "PROXY TCP4 SRC DST SPORT DPORT\r\n", "PROXY TCP6 ...", or "PROXY UNKNOWN[ anything]\r\n".
ProxyHeaderParser::Status ProxyHeaderParser::finish_v1() {
  std::string_view rest(buffer_.data() + kV1Prefix.size(), length_ - kV1Prefix.size() - 2);
  std::string_view protocol;
  const bool has_protocol = next_field(rest, protocol);
  if (protocol == "UNKNOWN") return status_ = Status::kDone;  // the rest is to be ignored
  if (!has_protocol || (protocol != "TCP4" && protocol != "TCP6")) return invalid();
  if (!rest.empty() && rest.back() == ' ') return invalid();  // next_field() would drop it
  std::string_view fields[4];
  for (std::string_view& field : fields) {
    if (!next_field(rest, field)) return invalid();
  }
  if (!rest.empty()) return invalid();  // a fifth field, or a trailing space
  std::uint16_t source_port = 0;
  std::uint16_t destination_port = 0;
  if (!parse_port(fields[2], source_port) || !parse_port(fields[3], destination_port)) {
    return invalid();
  }
  source_ = {};
  if (protocol == "TCP4") {
    auto& in = reinterpret_cast<sockaddr_in&>(source_);
    in_addr destination{};
    if (!parse_address(fields[0], AF_INET, &in.sin_addr) ||
        !parse_address(fields[1], AF_INET, &destination)) {
      return invalid();
    }
    in.sin_family = AF_INET;
    in.sin_port = htons(source_port);
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(source_);
    in6_addr destination{};
    if (!parse_address(fields[0], AF_INET6, &in6.sin6_addr) ||
        !parse_address(fields[1], AF_INET6, &destination)) {
      return invalid();
    }
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(source_port);
  }
  has_source_ = true;
  return status_ = Status::kDone;
}

// The 16 fixed bytes are in: version 2, a known command, family and transport, a sane length.
ProxyHeaderParser::Status ProxyHeaderParser::finish_v2_header() {
  const auto version_command = static_cast<unsigned char>(buffer_[12]);
  const auto family_transport = static_cast<unsigned char>(buffer_[13]);
  const std::size_t length = static_cast<std::size_t>(static_cast<unsigned char>(buffer_[14]))
                                 << 8U |
                             static_cast<unsigned char>(buffer_[15]);
  const unsigned command = version_command & 0x0FU;
  const unsigned family = family_transport >> 4U;
  const unsigned transport = family_transport & 0x0FU;
  if ((version_command >> 4U) != 2 || command > kV2CommandProxy) return invalid();
  if (family > kV2FamilyUnix || transport > kV2TransportDgram) return invalid();
  if (length > kMaxV2Length) return invalid();
  v2_keep_ = 0;
  if (command == kV2CommandProxy && transport == kV2TransportStream) {
    if (family == kV2FamilyInet) v2_keep_ = kV2Inet;
    if (family == kV2FamilyInet6) v2_keep_ = kV2Inet6;
    if (length < v2_keep_) return invalid();  // the address block does not fit the length
  }
  // LOCAL (health checks), UNSPEC, AF_UNIX and datagram: the real peer stays the client.
  v2_skip_ = length - v2_keep_;
  if (v2_keep_ == 0 && v2_skip_ == 0) finish_v2_addresses();
  return status_;
}

void ProxyHeaderParser::finish_v2_addresses() {
  const char* block = buffer_.data() + kV2HeaderBytes;
  source_ = {};
  if (v2_keep_ == kV2Inet) {
    auto& in = reinterpret_cast<sockaddr_in&>(source_);
    in.sin_family = AF_INET;
    std::memcpy(&in.sin_addr, block, 4);
    std::memcpy(&in.sin_port, block + 8, 2);  // network byte order on the wire and in sin_port
    has_source_ = true;
  } else if (v2_keep_ == kV2Inet6) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(source_);
    in6.sin6_family = AF_INET6;
    std::memcpy(&in6.sin6_addr, block, 16);
    std::memcpy(&in6.sin6_port, block + 32, 2);
    has_source_ = true;
  }
  status_ = Status::kDone;
}

}  // namespace prefork::worker
