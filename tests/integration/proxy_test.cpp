// The real binary behind a load balancer: a proxy_protocol listener takes PROXY v1 and v2
// headers and logs the client they name, closes connections without one (no response, counted
// in /metrics), a plain listener answers "PROXY ..." with 400, and X-Forwarded-For / Forwarded
// are believed only from trusted_proxies.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/server_process.hpp"

namespace prefork::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

// Workers that write files run as root when the tests do (a TempDir is root's alone).
std::string file_writing_user() {
  return ::geteuid() == 0 ? "user = \"root\"\n" : "";
}

std::string be16(std::size_t value) {
  return {static_cast<char>(value >> 8U), static_cast<char>(value & 0xFFU)};
}

std::string address_bytes(const char* text, int family) {
  std::string out(family == AF_INET ? 4 : 16, '\0');
  EXPECT_EQ(::inet_pton(family, text, out.data()), 1);
  return out;
}

std::string v2_inet(const char* source) {
  const std::string block =
      address_bytes(source, AF_INET) + address_bytes("127.0.0.2", AF_INET) + be16(40000) + be16(80);
  const std::string tlv("\x04\x00\x03xyz", 6);  // a NOOP TLV, skipped
  return kSignature + "\x21\x11" + be16(block.size() + tlv.size()) + block + tlv;
}

std::string v2_inet6(const char* source) {
  const std::string block =
      address_bytes(source, AF_INET6) + address_bytes("::1", AF_INET6) + be16(40000) + be16(80);
  return kSignature + "\x21\x21" + be16(block.size()) + block;
}

std::string v2_local() {
  return kSignature + std::string("\x20\x00\x00\x00", 4);
}

std::string get(const std::string& path = "/", const std::string& extra = "") {
  return get_request(path, extra);
}

// A server with a plain listener on 127.0.0.1 and a proxy_protocol one on 127.0.0.2 (distinct
// specs: the flag belongs to the configured address), both on ephemeral ports.
class ProxyServer {
 public:
  explicit ProxyServer(const std::string& extra_config) {
    path_ = logs_.path() + "/access.json";
    server_ = std::make_unique<ServerProcess>(ServerOptions{
        .config = "workers = 1\n" + file_writing_user() + "access_log = \"" + path_ +
                  "\"\naccess_log_format = \"json\"\nlisten = [\"127.0.0.1:0\", { address = "
                  "\"127.0.0.2:0\", proxy_protocol = true }]\n" +
                  extra_config,
        .listen = ""});
    const std::string log = server_->log();
    std::smatch match;
    if (std::regex_search(log, match, std::regex(R"(listening on 127\.0\.0\.1:(\d+))"))) {
      plain_ = static_cast<std::uint16_t>(std::stoi(match[1]));
    }
    if (std::regex_search(log, match, std::regex(R"(listening on 127\.0\.0\.2:(\d+))"))) {
      proxied_ = static_cast<std::uint16_t>(std::stoi(match[1]));
    }
  }
  [[nodiscard]] std::uint16_t plain() const { return plain_; }
  [[nodiscard]] std::uint16_t proxied() const { return proxied_; }
  [[nodiscard]] const std::string& access_log() const { return path_; }
  [[nodiscard]] ServerProcess& server() { return *server_; }

  // One request after `header` on a fresh connection to the proxy_protocol listener.
  Response fetch_proxied(const std::string& header, const std::string& request = get()) const {
    Client client(proxied_, "127.0.0.2");
    client.send(header + request);
    return client.read_response();
  }

 private:
  TempDir logs_;
  std::string path_;
  std::unique_ptr<ServerProcess> server_;
  std::uint16_t plain_ = 0;
  std::uint16_t proxied_ = 0;
};

std::string remote_addr(const std::string& line) {
  std::smatch match;
  return std::regex_search(line, match, std::regex(R"re("remote_addr":"([^"]*)")re"))
             ? match[1].str()
             : "?";
}

TEST(ProxyProtocol, V1AndV2HeadersPutTheClientAddressInTheAccessLog) {
  ProxyServer proxy("");
  ASSERT_NE(proxy.proxied(), 0);
  EXPECT_EQ(proxy.fetch_proxied("PROXY TCP4 192.0.2.10 127.0.0.2 51000 80\r\n").status, 200);
  EXPECT_EQ(proxy.fetch_proxied("PROXY TCP6 2001:db8::10 ::1 51000 80\r\n").status, 200);
  EXPECT_EQ(proxy.fetch_proxied(v2_inet("198.51.100.20")).status, 200);
  EXPECT_EQ(proxy.fetch_proxied(v2_inet6("2001:db8::20")).status, 200);
  EXPECT_EQ(proxy.fetch_proxied(v2_local()).status, 200);           // health check
  EXPECT_EQ(proxy.fetch_proxied("PROXY UNKNOWN\r\n").status, 200);  // keeps the peer
  // Keep-alive: the header comes once, every request on the connection is the proxied client's.
  {
    Client client(proxy.proxied(), "127.0.0.2");
    client.send("PROXY TCP4 192.0.2.11 127.0.0.2 1 80\r\n" + get());
    EXPECT_EQ(client.read_response().status, 200);
    client.send(get("/second"));
    EXPECT_EQ(client.read_response().status, 200);
  }
  ASSERT_TRUE(wait_for_lines(proxy.access_log(), 8));
  const auto lines = lines_of(read_file(proxy.access_log()));
  ASSERT_EQ(lines.size(), 8U);
  EXPECT_EQ(remote_addr(lines[0]), "192.0.2.10");
  EXPECT_EQ(remote_addr(lines[1]), "2001:db8::10");
  EXPECT_EQ(remote_addr(lines[2]), "198.51.100.20");
  EXPECT_EQ(remote_addr(lines[3]), "2001:db8::20");
  EXPECT_EQ(remote_addr(lines[4]), "127.0.0.1");
  EXPECT_EQ(remote_addr(lines[5]), "127.0.0.1");
  EXPECT_EQ(remote_addr(lines[6]), "192.0.2.11");
  EXPECT_EQ(remote_addr(lines[7]), "192.0.2.11");
}

TEST(ProxyProtocol, ConnectionsWithoutAValidHeaderAreClosedUnansweredAndCounted) {
  ProxyServer proxy("header_timeout = 1\n");
  ASSERT_NE(proxy.proxied(), 0);
  for (const std::string& bad :
       {get(), std::string("PROXY TCP4 192.0.2.1 127.0.0.2 99999 80\r\n") + get(),
        std::string("PROXY TCP4 192.0.2.1 127.0.0.2 1 80\n") + get(),
        kSignature + "\x31\x11\x00\x0c" + std::string(12, '\0') + get()}) {
    Client client(proxy.proxied(), "127.0.0.2");
    client.send(bad);
    EXPECT_EQ(client.read_all(), "");  // closed, with no HTTP response
  }
  {
    // A header that never completes ends at header_timeout, unanswered too.
    Client client(proxy.proxied(), "127.0.0.2");
    client.send("PROXY TCP4 192.0");
    const auto start = Clock::now();
    EXPECT_EQ(client.read_all(5s), "");
    EXPECT_LT(Clock::now() - start, 4s);
  }
  {
    // A probe that connects and leaves sent nothing: not an error.
    Client client(proxy.proxied(), "127.0.0.2");
    client.shutdown_write();
    EXPECT_TRUE(client.wait_closed());
  }
  const Response metrics = fetch(proxy.plain(), get("/metrics"));
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body, HasSubstr("# TYPE prefork_proxy_protocol_errors_total counter\n"
                                      "prefork_proxy_protocol_errors_total{slot=\"0\"} 5\n"));
  // Nothing of it reached the access log: the one worker logs the /metrics request that came
  // after all of them, and no 400 before it.
  ASSERT_TRUE(wait_for_text(proxy.access_log(), "/metrics", 5s));
  EXPECT_THAT(read_file(proxy.access_log()), Not(HasSubstr("\"status\":400")));
}

TEST(ProxyProtocol, PerConnectionChildrenReadTheHeaderToo) {
  ProxyServer proxy("mode = \"per-connection\"\n");
  ASSERT_NE(proxy.proxied(), 0);
  EXPECT_EQ(proxy.fetch_proxied("PROXY TCP4 192.0.2.30 127.0.0.2 1 80\r\n").status, 200);
  EXPECT_EQ(proxy.fetch_proxied(v2_inet("198.51.100.30")).status, 200);
  EXPECT_EQ(fetch(proxy.plain(), get()).status, 200);  // the plain listener: no header
  {
    Client client(proxy.proxied(), "127.0.0.2");
    client.send(get());
    EXPECT_EQ(client.read_all(), "");
  }
  ASSERT_TRUE(wait_for_lines(proxy.access_log(), 3));
  // One child per connection: each writes its line when it ends, in no set order.
  std::multiset<std::string> addresses;
  for (const std::string& line : lines_of(read_file(proxy.access_log()))) {
    addresses.insert(remote_addr(line));
  }
  EXPECT_EQ(addresses, (std::multiset<std::string>{"127.0.0.1", "192.0.2.30", "198.51.100.30"}));
}

TEST(ProxyProtocol, APlainListenerTakesAProxyLineForAMalformedRequest) {
  ProxyServer proxy("");
  ASSERT_NE(proxy.plain(), 0);
  Client client(proxy.plain());
  client.send("PROXY TCP4 192.0.2.1 127.0.0.1 1 80\r\n" + get());
  EXPECT_EQ(client.read_response().status, 400);
  EXPECT_TRUE(client.wait_closed());
}

TEST(ProxyProtocol, StatusAllowNeedsTheBalancerAndTheClientItNames) {
  ProxyServer proxy("");
  EXPECT_EQ(
      proxy.fetch_proxied("PROXY TCP4 127.0.0.9 127.0.0.2 1 80\r\n", get("/server-status")).status,
      200);
  EXPECT_EQ(
      proxy.fetch_proxied("PROXY TCP4 192.0.2.1 127.0.0.2 1 80\r\n", get("/server-status")).status,
      403);
  EXPECT_EQ(proxy.fetch_proxied(v2_local(), get("/metrics")).status, 200);  // the peer decides
}

TEST(TrustedProxies, ForwardingHeadersCountOnlyFromTrustedPeers) {
  const std::string xff = "X-Forwarded-For: 1.1.1.1, 203.0.113.9\r\n";
  const std::string forwarded = "Forwarded: for=\"[2001:db8::9]:4711\";proto=http\r\n";
  ProxyServer trusting("trusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\"]\n");
  ProxyServer untrusting("");
  for (ProxyServer* proxy : {&trusting, &untrusting}) {
    EXPECT_EQ(fetch(proxy->plain(), get("/", xff)).status, 200);
    EXPECT_EQ(fetch(proxy->plain(), get("/", forwarded)).status, 200);
    EXPECT_EQ(fetch(proxy->plain(), get("/", "X-Forwarded-For: bogus\r\n")).status, 200);
    // Behind a PROXY header the address it names is the one trusted, or not.
    EXPECT_EQ(proxy->fetch_proxied("PROXY TCP4 10.1.2.3 127.0.0.2 1 80\r\n", get("/", xff)).status,
              200);
    EXPECT_EQ(proxy->fetch_proxied("PROXY TCP4 192.0.2.7 127.0.0.2 1 80\r\n", get("/", xff)).status,
              200);
  }
  ASSERT_TRUE(wait_for_lines(trusting.access_log(), 5));
  ASSERT_TRUE(wait_for_lines(untrusting.access_log(), 5));
  const auto trusted = lines_of(read_file(trusting.access_log()));
  const auto untrusted = lines_of(read_file(untrusting.access_log()));
  ASSERT_EQ(trusted.size(), 5U);
  ASSERT_EQ(untrusted.size(), 5U);
  EXPECT_EQ(remote_addr(trusted[0]), "203.0.113.9");
  EXPECT_EQ(remote_addr(trusted[1]), "2001:db8::9");
  EXPECT_EQ(remote_addr(trusted[2]), "127.0.0.1");  // garbage: the peer stays
  EXPECT_EQ(remote_addr(trusted[3]), "203.0.113.9");
  EXPECT_EQ(remote_addr(trusted[4]), "192.0.2.7");  // an untrusted client's header is ignored
  EXPECT_EQ(remote_addr(untrusted[0]), "127.0.0.1");
  EXPECT_EQ(remote_addr(untrusted[1]), "127.0.0.1");
  EXPECT_EQ(remote_addr(untrusted[2]), "127.0.0.1");
  EXPECT_EQ(remote_addr(untrusted[3]), "10.1.2.3");
  EXPECT_EQ(remote_addr(untrusted[4]), "192.0.2.7");
}

}  // namespace
}  // namespace prefork::testing
