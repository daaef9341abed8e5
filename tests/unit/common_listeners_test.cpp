#include "common/listeners.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "common/config.hpp"

namespace prefork::common {
namespace {

int int_option(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  ::getsockopt(fd, level, name, &value, &len);
  return value;
}

TEST(Listeners, BindsAnEphemeralPortWithTheRightOptions) {
  auto listeners = open_listeners({"127.0.0.1:0"});
  ASSERT_EQ(listeners.size(), 1U);
  const int fd = listeners[0].fd.get();
  EXPECT_NE(listeners[0].bound, "127.0.0.1:0");
  EXPECT_EQ(listeners[0].bound.rfind("127.0.0.1:", 0), 0U);
  EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_REUSEADDR), 1);
  EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
  EXPECT_GT(int_option(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT), 0);
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
}

TEST(Listeners, AnyIpv6AddressIsDualStack) {
  auto listeners = open_listeners({"[::]:0"});
  ASSERT_EQ(listeners.size(), 1U);
  if (listeners[0].bound.starts_with("[")) {
    EXPECT_EQ(int_option(listeners[0].fd.get(), IPPROTO_IPV6, IPV6_V6ONLY), 0);
  }
}

TEST(Listeners, RejectsMalformedAddresses) {
  EXPECT_THROW(validate_listen_spec("localhost:80"), ConfigError);
  EXPECT_THROW(validate_listen_spec("1.2.3.4:99999"), ConfigError);
  EXPECT_THROW(validate_listen_spec("::1:80"), ConfigError);
  EXPECT_THROW(validate_listen_spec("[::1]80"), ConfigError);
  EXPECT_NO_THROW(validate_listen_spec("8888"));
  EXPECT_NO_THROW(validate_listen_spec("[::1]:8888"));
}

TEST(Listeners, BacklogIsCappedBySomaxconn) {
  EXPECT_GT(somaxconn(4096), 0);
}

}  // namespace
}  // namespace prefork::common
