// ProxyHeaderParser from tables: every header whole, and split at every offset, gives the same
// verdict, consumes exactly the header and reports the same address; malformed headers fail.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "common/listeners.hpp"
#include "worker/access_log.hpp"
#include "worker/proxy_protocol.hpp"

namespace prefork::worker {
namespace {

using Status = ProxyHeaderParser::Status;
const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);
const std::string kHttp = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

std::string be16(std::size_t value) {
  return {static_cast<char>(value >> 8U), static_cast<char>(value & 0xFFU)};
}

std::string bytes_of(const char* text, int family) {
  std::string out(family == AF_INET ? 4 : 16, '\0');
  EXPECT_EQ(::inet_pton(family, text, out.data()), 1) << text;
  return out;
}

// A v2 header: `command` 0 LOCAL / 1 PROXY; `family_transport` as on the wire; `tlvs` appended.
std::string v2(unsigned command, unsigned family_transport, const std::string& addresses,
               const std::string& tlvs = "") {
  return kSignature + static_cast<char>(0x20U | command) + static_cast<char>(family_transport) +
         be16(addresses.size() + tlvs.size()) + addresses + tlvs;
}

std::string v2_inet(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport,
                    const std::string& tlvs = "") {
  return v2(1, 0x11, bytes_of(src, AF_INET) + bytes_of(dst, AF_INET) + be16(sport) + be16(dport),
            tlvs);
}

std::string v2_inet6(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport) {
  return v2(1, 0x21, bytes_of(src, AF_INET6) + bytes_of(dst, AF_INET6) + be16(sport) + be16(dport));
}

struct Outcome {
  Status status = Status::kNeedMore;
  std::size_t consumed = 0;
  std::string source;  // formatted, "" without one
  int port = -1;
  int version = 0;
};

// Feeds `input` in pieces of `first` bytes then the rest (0: whole); stops at a verdict.
Outcome parse(const std::string& input, std::size_t first = 0) {
  ProxyHeaderParser parser;
  Outcome out;
  std::size_t offset = 0;
  std::vector<std::size_t> pieces;
  if (first != 0 && first < input.size()) pieces.push_back(first);
  pieces.push_back(input.size() - (pieces.empty() ? 0 : first));
  for (const std::size_t piece : pieces) {
    std::size_t used = 0;
    out.status = parser.feed(std::string_view(input).substr(offset, piece), used);
    offset += used;
    if (out.status != Status::kNeedMore) break;
  }
  out.consumed = offset;
  out.version = parser.version();
  if (out.status == Status::kDone && parser.has_source()) {
    out.source = common::format_ip(parser.source());
    const sockaddr* s = parser.source();
    out.port = ntohs(s->sa_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(s)->sin_port
                                             : reinterpret_cast<const sockaddr_in6*>(s)->sin6_port);
  }
  return out;
}

struct Valid {
  const char* name;
  std::string header;
  std::string source;  // "" = keep the real peer (LOCAL, UNKNOWN)
  int port;
  int version;
};

std::vector<Valid> valid_headers() {
  return {
      {"v1 tcp4", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", "192.0.2.1", 56324, 1},
      {"v1 tcp6", "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", "2001:db8::1", 1, 1},
      {"v1 tcp6 mapped", "PROXY TCP6 ::ffff:192.0.2.9 ::1 0 80\r\n", "192.0.2.9", 0, 1},
      {"v1 unknown", "PROXY UNKNOWN\r\n", "", -1, 1},
      {"v1 unknown with addresses", "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
       "", -1, 1},
      {"v1 longest",
       "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 1},
      {"v2 inet", v2_inet("203.0.113.7", "10.0.0.1", 40000, 8889), "203.0.113.7", 40000, 2},
      {"v2 inet with tlvs",
       v2_inet("203.0.113.8", "10.0.0.1", 1234, 80,
               std::string("\x04\x00\x03xyz\x01\x00\x02h2", 10)),
       "203.0.113.8", 1234, 2},
      {"v2 inet6", v2_inet6("2001:db8::7", "2001:db8::1", 5555, 443), "2001:db8::7", 5555, 2},
      {"v2 local", v2(0, 0x00, ""), "", -1, 2},
      {"v2 local with payload", v2(0, 0x11, std::string(12, 'x')), "", -1, 2},
      {"v2 unspec", v2(1, 0x00, ""), "", -1, 2},
      {"v2 unix", v2(1, 0x31, std::string(216, '\0')), "", -1, 2},
      {"v2 udp", v2(1, 0x12, std::string(12, '\1')), "", -1, 2},
  };
}

TEST(ProxyProtocol, ValidHeadersWholeAndSplitEverywhere) {
  for (const Valid& v : valid_headers()) {
    for (std::size_t split = 0; split < v.header.size(); ++split) {
      SCOPED_TRACE(std::string(v.name) + " split at " + std::to_string(split));
      const Outcome out = parse(v.header + kHttp, split);
      EXPECT_EQ(out.status, Status::kDone);
      EXPECT_EQ(out.consumed, v.header.size());  // the HTTP bytes are left alone
      EXPECT_EQ(out.source, v.source);
      EXPECT_EQ(out.port, v.port);
      EXPECT_EQ(out.version, v.version);
    }
  }
}

TEST(ProxyProtocol, ByteByByte) {
  for (const Valid& v : valid_headers()) {
    SCOPED_TRACE(v.name);
    ProxyHeaderParser parser;
    for (std::size_t i = 0; i < v.header.size(); ++i) {
      std::size_t used = 0;
      const Status status = parser.feed(std::string_view(v.header).substr(i, 1), used);
      EXPECT_EQ(used, 1U);
      EXPECT_EQ(status, i + 1 == v.header.size() ? Status::kDone : Status::kNeedMore) << i;
    }
    std::size_t used = 7;
    EXPECT_EQ(parser.feed(kHttp, used), Status::kDone);  // decided: consumes nothing more
    EXPECT_EQ(used, 0U);
  }
}

TEST(ProxyProtocol, TruncatedHeadersNeedMore) {
  for (const Valid& v : valid_headers()) {
    for (std::size_t length = 0; length < v.header.size(); ++length) {
      SCOPED_TRACE(std::string(v.name) + " cut at " + std::to_string(length));
      const Outcome out = parse(v.header.substr(0, length));
      EXPECT_EQ(out.status, Status::kNeedMore);
      EXPECT_EQ(out.consumed, length);
    }
  }
}

struct Malformed {
  const char* name;
  std::string input;
};

TEST(ProxyProtocol, MalformedHeadersAreInvalid) {
  std::string bad_signature = v2_inet("192.0.2.1", "192.0.2.2", 1, 2);
  bad_signature[7] = 'q';
  std::string bad_version = v2_inet("192.0.2.1", "192.0.2.2", 1, 2);
  bad_version[12] = 0x11;
  std::string bad_command = v2_inet("192.0.2.1", "192.0.2.2", 1, 2);
  bad_command[12] = 0x22;
  std::string bad_family = v2_inet("192.0.2.1", "192.0.2.2", 1, 2);
  bad_family[13] = 0x41;
  std::string bad_transport = v2_inet("192.0.2.1", "192.0.2.2", 1, 2);
  bad_transport[13] = 0x13;
  const std::vector<Malformed> table{
      {"http request", kHttp},
      {"lower case", "proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n"},
      {"no space after PROXY", "PROXYTCP4 192.0.2.1 192.0.2.2 1 2\r\n"},
      {"unknown protocol", "PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n"},
      {"empty protocol", "PROXY \r\n"},
      {"missing port", "PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n"},
      {"extra field", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n"},
      {"trailing space", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n"},
      {"double space", "PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n"},
      {"port too big", "PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n"},
      {"port not a number", "PROXY TCP4 192.0.2.1 192.0.2.2 http 2\r\n"},
      {"port leading zero", "PROXY TCP4 192.0.2.1 192.0.2.2 080 2\r\n"},
      {"port negative", "PROXY TCP4 192.0.2.1 192.0.2.2 -1 2\r\n"},
      {"port too long", "PROXY TCP4 192.0.2.1 192.0.2.2 000001 2\r\n"},
      {"v6 address for tcp4", "PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n"},
      {"v4 address for tcp6", "PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n"},
      {"bad destination", "PROXY TCP4 192.0.2.1 192.0.2.256 1 2\r\n"},
      {"hostname", "PROXY TCP4 localhost 192.0.2.2 1 2\r\n"},
      {"bare lf", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n"},
      {"cr without lf", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX"},
      {"no crlf within 107 bytes", "PROXY UNKNOWN " + std::string(93, 'a') + "\r\n"},
      {"v2 bad signature", bad_signature},
      {"v2 bad version", bad_version},
      {"v2 bad command", bad_command},
      {"v2 bad family", bad_family},
      {"v2 bad transport", bad_transport},
      {"v2 inet too short", v2(1, 0x11, std::string(11, '\0'))},
      {"v2 inet6 too short", v2(1, 0x21, std::string(35, '\0'))},
      {"v2 oversize length", kSignature + "\x21\x11" + be16(ProxyHeaderParser::kMaxV2Length + 1)},
      {"v2 length 0xffff", kSignature + "\x21\x11\xff\xff"},
      {"leading crlf then http", "\r\nGET / HTTP/1.1\r\n\r\n"},
  };
  for (const Malformed& m : table) {
    for (std::size_t split = 0; split < m.input.size(); ++split) {
      SCOPED_TRACE(std::string(m.name) + " split at " + std::to_string(split));
      const Outcome out = parse(m.input, split);
      EXPECT_EQ(out.status, Status::kInvalid);
    }
  }
}

TEST(ProxyProtocol, LongestV1LineIsAccepted) {
  // 107 bytes with the CRLF: the bound, inclusive.
  const std::string line = "PROXY UNKNOWN " + std::string(91, 'a') + "\r\n";
  ASSERT_EQ(line.size(), ProxyHeaderParser::kMaxV1Bytes);
  EXPECT_EQ(parse(line).status, Status::kDone);
}

TEST(ProxyProtocol, LargestV2PayloadIsSkipped) {
  const std::string header = v2_inet("192.0.2.1", "192.0.2.2", 1, 2,
                                     std::string(ProxyHeaderParser::kMaxV2Length - 12, '\x7f'));
  const Outcome out = parse(header + kHttp, 100);
  EXPECT_EQ(out.status, Status::kDone);
  EXPECT_EQ(out.consumed, header.size());
  EXPECT_EQ(out.source, "192.0.2.1");
}

TEST(ProxyProtocol, RejectsGarbageAtTheFirstByte) {
  ProxyHeaderParser parser;
  std::size_t used = 0;
  EXPECT_EQ(parser.feed("G", used), Status::kInvalid);
  EXPECT_EQ(used, 1U);
  EXPECT_EQ(parser.received(), 1U);
}

}  // namespace
}  // namespace prefork::worker
