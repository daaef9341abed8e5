// Trusted forwarding headers from tables: X-Forwarded-For and Forwarded (RFC 7239) give the
// right-most hop that is not a trusted proxy; spoofed prefixes, garbage and oversize values
// never let a client choose its logged address.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/listeners.hpp"
#include "worker/access_log.hpp"
#include "worker/forwarded.hpp"
#include "worker/request_parser.hpp"
#include "worker/response.hpp"

namespace prefork::worker {
namespace {

std::vector<common::Cidr> cidrs(const std::vector<std::string>& texts) {
  std::vector<common::Cidr> out;
  for (const std::string& text : texts) out.push_back(*common::Cidr::parse(text));
  return out;
}

std::string text_of(const std::optional<sockaddr_storage>& address) {
  return address ? common::format_ip(reinterpret_cast<const sockaddr*>(&*address)) : "(none)";
}

struct Case {
  const char* value;
  const char* expected;  // "(none)": keep the peer address
};

const std::vector<std::string> kTrusted{"10.0.0.0/8", "2001:db8:ffff::/48"};

TEST(Forwarded, ParsesAddressForms) {
  const std::vector<Case> table{
      {"192.0.2.1", "192.0.2.1"},
      {" 192.0.2.1\t", "192.0.2.1"},
      {"192.0.2.1:8080", "192.0.2.1"},
      {"2001:db8::1", "2001:db8::1"},
      {"[2001:db8::1]", "2001:db8::1"},
      {"[2001:db8::1]:443", "2001:db8::1"},
      {"::ffff:192.0.2.3", "192.0.2.3"},
      {"", "(none)"},
      {"unknown", "(none)"},
      {"_hidden", "(none)"},
      {"example.com", "(none)"},
      {"192.0.2.1:", "(none)"},
      {"192.0.2.1:65536", "(none)"},
      {"192.0.2.1:x", "(none)"},
      {"[2001:db8::1", "(none)"},
      {"[2001:db8::1]x", "(none)"},
      {"[192.0.2.1]", "(none)"},
      {"256.0.0.1", "(none)"},
      {"1.2.3.4.5", "(none)"},
  };
  for (const Case& c : table) {
    EXPECT_EQ(text_of(parse_forwarded_address(c.value)), c.expected) << c.value;
  }
}

TEST(Forwarded, XForwardedForRightMostUntrustedHop) {
  const auto trusted = cidrs(kTrusted);
  const std::vector<Case> table{
      {"203.0.113.5", "203.0.113.5"},
      {"203.0.113.5, 10.0.0.2", "203.0.113.5"},
      {"203.0.113.5,10.0.0.2,10.1.1.1", "203.0.113.5"},
      // A client prepending its own "hops" cannot move past the first untrusted address.
      {"1.1.1.1, 203.0.113.5, 10.0.0.2", "203.0.113.5"},
      {"10.9.9.9, 203.0.113.5", "203.0.113.5"},  // a spoofed "trusted" hop to the left
      {"garbage, 203.0.113.5", "203.0.113.5"},   // garbage left of the answer is never read
      {"203.0.113.5, garbage", "(none)"},        // garbage in the trusted part: trust nothing
      {"203.0.113.5, , 10.0.0.2", "(none)"},
      {"203.0.113.5,", "(none)"},
      {"10.0.0.3, 10.0.0.2", "10.0.0.3"},  // every hop trusted: the left-most
      {"[2001:db8::5]:1234, 2001:db8:ffff::1", "2001:db8::5"},
      {"2001:db8::5, 2001:db8:ffff::1", "2001:db8::5"},
      {"unknown", "(none)"},
  };
  for (const Case& c : table) {
    EXPECT_EQ(text_of(client_from_x_forwarded_for(c.value, trusted)), c.expected) << c.value;
  }
}

TEST(Forwarded, ForwardedRightMostUntrustedHop) {
  const auto trusted = cidrs(kTrusted);
  const std::vector<Case> table{
      {"for=203.0.113.5", "203.0.113.5"},
      {"For=203.0.113.5", "203.0.113.5"},
      {"for=\"203.0.113.5:4711\"", "203.0.113.5"},
      {"for=\"[2001:db8::5]\"", "2001:db8::5"},
      {"for=\"[2001:db8::5]:4711\";proto=https;by=10.0.0.1", "2001:db8::5"},
      {"for=203.0.113.5, for=10.0.0.2", "203.0.113.5"},
      {"for=203.0.113.5;proto=http , for=10.0.0.2;by=\"[2001:db8:ffff::1]\"", "203.0.113.5"},
      {"for=1.1.1.1, for=203.0.113.5, for=10.0.0.2", "203.0.113.5"},
      {"for=10.9.9.9, for=203.0.113.5", "203.0.113.5"},
      {"for=10.0.0.3, for=10.0.0.2", "10.0.0.3"},
      {"for=unknown, for=10.0.0.2", "(none)"},
      {"for=_hidden", "(none)"},
      {"proto=https, for=10.0.0.2", "(none)"},         // a hop without for=: unknown
      {"for=203.0.113.5;for=198.51.100.1", "(none)"},  // duplicate parameter
      {"for=\"203.0.113.5", "(none)"},                 // unterminated quote
      {"for=\"20\\3.0.113.5\"", "(none)"},             // escapes refused
      {"for=203.0.113.5:80", "(none)"},                // a port needs quotes
      {"for=[2001:db8::5]", "(none)"},                 // so do brackets
      {"for=203.0.113.5 by=x", "(none)"},
      {"for=", "(none)"},
      {"=x", "(none)"},
      {"", "(none)"},
      {",,for=203.0.113.5,,", "203.0.113.5"},  // empty list elements are allowed
  };
  for (const Case& c : table) {
    EXPECT_EQ(text_of(client_from_forwarded(c.value, trusted)), c.expected) << c.value;
  }
}

TEST(Forwarded, OversizeValuesAreNotTrusted) {
  const auto trusted = cidrs(kTrusted);
  std::string xff;
  while (xff.size() <= kMaxForwardedBytes) xff += "10.0.0.1, ";
  xff += "203.0.113.5";
  EXPECT_EQ(text_of(client_from_x_forwarded_for(xff, trusted)), "(none)");
  EXPECT_EQ(text_of(client_from_forwarded("for=203.0.113.5;x=" + std::string(1100, 'a'), trusted)),
            "(none)");
}

TEST(Forwarded, EmptyTrustListTrustsNoHop) {
  EXPECT_EQ(text_of(client_from_x_forwarded_for("203.0.113.5, 10.0.0.2", {})), "10.0.0.2");
}

// The parser captures the headers (several lines joined) only when asked to.
class Capture final : public RequestHandler {
 public:
  EndpointReply respond(const EndpointRequest&, std::string&) override { return {}; }
  void on_response(const RequestParser& parser, int, std::uint64_t) override {
    xff = parser.x_forwarded_for();
    forwarded = parser.forwarded();
  }
  std::string xff;
  std::string forwarded;
};

TEST(Forwarded, ParserCapturesOnlyWhenAsked) {
  const Limits limits;
  const Responses responses(784111777);
  const std::string request =
      "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nx-forwarded-for: "
      "3.3.3.3\r\nForwarded: for=4.4.4.4\r\nFORWARDED: for=5.5.5.5\r\n\r\n";
  for (const bool on : {false, true}) {
    for (std::size_t split = 0; split < request.size(); split += on ? 1 : 17) {
      SCOPED_TRACE(split);
      Capture capture;
      RequestParser parser(limits, responses);
      parser.set_handler(&capture, true);
      parser.capture_forwarded(on);
      std::string out;
      parser.feed(std::string_view(request).substr(0, split), out);
      parser.feed(std::string_view(request).substr(split), out);
      EXPECT_EQ(parser.last_status(), 200);
      EXPECT_EQ(capture.xff, on ? "1.1.1.1, 2.2.2.2,3.3.3.3" : "");
      EXPECT_EQ(capture.forwarded, on ? "for=4.4.4.4,for=5.5.5.5" : "");
    }
  }
}

TEST(Forwarded, ParserCaptureIsBounded) {
  const Limits limits;
  const Responses responses(784111777);
  Capture capture;
  RequestParser parser(limits, responses);
  parser.set_handler(&capture, true);
  parser.capture_forwarded(true);
  std::string out;
  parser.feed(
      "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: " + std::string(5000, '1') + "\r\n\r\n", out);
  EXPECT_EQ(capture.xff.size(), kMaxForwardedBytes + 1);
}

}  // namespace
}  // namespace prefork::worker
