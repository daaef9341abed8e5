#include "common/cidr.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

namespace prefork::common {
namespace {

sockaddr_storage addr(const char* text) {
  sockaddr_storage out{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (::inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
  } else {
    ::inet_pton(AF_INET6, text, &v6->sin6_addr);
    v6->sin6_family = AF_INET6;
  }
  return out;
}

bool in(const char* range, const char* host) {
  const auto cidr = Cidr::parse(range);
  const auto a = addr(host);
  return cidr && cidr->contains(reinterpret_cast<const sockaddr*>(&a));
}

TEST(Cidr, MatchesIpv4Ranges) {
  EXPECT_TRUE(in("127.0.0.0/8", "127.1.2.3"));
  EXPECT_FALSE(in("127.0.0.0/8", "128.0.0.1"));
  EXPECT_TRUE(in("10.1.2.3", "10.1.2.3"));
  EXPECT_FALSE(in("10.1.2.3", "10.1.2.4"));
  EXPECT_TRUE(in("192.168.0.0/23", "192.168.1.200"));
  EXPECT_FALSE(in("192.168.0.0/23", "192.168.2.1"));
  EXPECT_TRUE(in("0.0.0.0/0", "8.8.8.8"));
}

TEST(Cidr, MatchesIpv6AndIpv4MappedClients) {
  EXPECT_TRUE(in("::1/128", "::1"));
  EXPECT_FALSE(in("::1/128", "::2"));
  EXPECT_TRUE(in("fd00::/8", "fd12:3456::1"));
  EXPECT_TRUE(in("127.0.0.0/8", "::ffff:127.0.0.1"));  // v4 client on a dual-stack socket
  EXPECT_FALSE(in("::1/128", "127.0.0.1"));
}

TEST(Cidr, RejectsMalformedRanges) {
  EXPECT_FALSE(Cidr::parse("localhost"));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/33"));
  EXPECT_FALSE(Cidr::parse("::/129"));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/"));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/8x"));
}

}  // namespace
}  // namespace prefork::common
