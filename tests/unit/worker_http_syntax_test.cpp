// Host validation (RFC 9112 §3.2 / RFC 3986), tchar, OWS trimming, and the O(1) timer lists.
#include <gtest/gtest.h>

#include "worker/http_syntax.hpp"
#include "worker/timer_list.hpp"

namespace prefork::worker {
namespace {

TEST(WorkerHttpSyntax, ValidHosts) {
  for (const char* host :
       {"", "example.com", "example.com:80", "example.com:", "a-b_c~d.e", "127.0.0.1",
        "127.0.0.1:8080", "[::1]", "[::1]:8888", "[2001:db8::ffff:1.2.3.4]:1", "[v1.fe80::a+en1]",
        "%41bc", "sub!$&'()*+,;=delims", "xn--bcher-kva.example"}) {
    EXPECT_TRUE(is_valid_host(host)) << host;
  }
}

TEST(WorkerHttpSyntax, InvalidHosts) {
  for (const char* host : {"a b",      "a/b",  "u@a",     "a:b:c",  "::1",
                           "[::1",     "::1]", "[zz::1]", "[::1]x", "[::1]:x",
                           "a:123456", "a:-1", "%4",      "%zz",    "a\tb",
                           "a?",       "a#",   "[]",      "[v1]",   "[fe80::1%25en0]",
                           "a\"b",     "<a>"}) {
    EXPECT_FALSE(is_valid_host(host)) << host;
  }
}

TEST(WorkerHttpSyntax, Tchar) {
  for (char c : std::string_view("!#$%&'*+-.^_`|~09azAZ")) EXPECT_TRUE(is_tchar(c)) << c;
  for (char c : std::string_view(" \t:;\"(),/<=>?@[\\]{}\x7f")) EXPECT_FALSE(is_tchar(c)) << c;
  EXPECT_FALSE(is_tchar('\0'));
}

TEST(WorkerHttpSyntax, TrimAndCompare) {
  EXPECT_EQ(trim_ows(" \t a b \t"), "a b");
  EXPECT_EQ(trim_ows(""), "");
  EXPECT_TRUE(equals_ignore_case("100-Continue", "100-continue"));
  EXPECT_FALSE(equals_ignore_case("100-continue ", "100-continue"));
}

TEST(WorkerTimerList, ExpiresInDeadlineOrderAndRearmMovesToTheTail) {
  TimerList list(100);
  int a_owner = 0, b_owner = 0, c_owner = 0;
  TimerNode a(&a_owner), b(&b_owner), c(&c_owner);
  list.arm(a, 0);
  list.arm(b, 10);
  list.arm(c, 20);
  list.arm(a, 30);  // progress: a now expires last
  EXPECT_EQ(list.next_deadline(), 110);
  EXPECT_EQ(list.pop_expired(109), nullptr);
  EXPECT_EQ(list.pop_expired(200), &b);
  c.cancel();
  EXPECT_FALSE(c.armed());
  EXPECT_EQ(list.pop_expired(200), &a);
  EXPECT_EQ(a.owner, &a_owner);
  EXPECT_EQ(list.pop_expired(200), nullptr);
  EXPECT_TRUE(list.empty());
}

TEST(WorkerTimerList, NodeMovesBetweenListsAndUnlinksOnDestruction) {
  TimerList header(10), keepalive(1000);
  int owner = 0;
  {
    TimerNode node(&owner);
    header.arm(node, 0);
    keepalive.arm(node, 0);
    EXPECT_TRUE(header.empty());
    EXPECT_EQ(node.list, &keepalive);
  }
  EXPECT_TRUE(keepalive.empty());
}

}  // namespace
}  // namespace prefork::worker
