// `prefork-httpd --health-check`, the probe a container's HEALTHCHECK runs, against the real
// binary: healthy while serving, unhealthy while draining, nothing listening or no answer in
// time, and bad targets as usage errors.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <string>

#include "common/unique_fd.hpp"
#include "tests/support/server_process.hpp"

namespace prefork::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string address(std::uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

// A loopback TCP socket bound to an ephemeral port; listening (connections complete in its
// backlog and nobody ever answers) or not (connections are refused). The port stays ours.
struct Socket {
  common::UniqueFd fd;
  std::uint16_t port = 0;
};

Socket bound_socket(bool listening) {
  Socket out{common::UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0))};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  auto* any = reinterpret_cast<sockaddr*>(&addr);
  if (!out.fd || ::bind(out.fd.get(), any, len) != 0 ||
      ::getsockname(out.fd.get(), any, &len) != 0 ||
      (listening && ::listen(out.fd.get(), 8) != 0)) {
    throw std::runtime_error("cannot bind a loopback socket");
  }
  out.port = ntohs(addr.sin_port);
  return out;
}

TEST(HealthCheck, HealthyServerExitsZeroSilently) {
  ServerProcess server({.args = {"--workers", "1"}});
  const auto [code, out] = run_binary("--health-check " + address(server.port()));
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, IsEmpty());
  // The URL form, with the path spelled out, and localhost.
  const auto [url_code, url_out] =
      run_binary("--health-check http://localhost:" + std::to_string(server.port()) + "/healthz");
  EXPECT_EQ(url_code, 0) << url_out;
}

TEST(HealthCheck, WithoutATargetProbesWhereTheConfigurationListens) {
  // Every path but the health endpoint answers 404 here.
  ServerProcess server(
      {.args = {"--workers", "1", "--set", "healthz_path=\"/ready\"", "--set", "status=404"}});
  const std::string port = std::to_string(server.port());
  // PORT (as a container sets it) means [::]:PORT, which the probe reaches on 127.0.0.1.
  const auto [code, out] =
      run_binary("--health-check -s healthz_path='\"/ready\"'", {"PORT=" + port});
  EXPECT_EQ(code, 0) << out;
  // The configuration's healthz_path is the path: /healthz is no health endpoint here.
  const auto [wrong, wrong_out] = run_binary("--health-check", {"PORT=" + port});
  EXPECT_EQ(wrong, 1);
  EXPECT_THAT(wrong_out, HasSubstr("health check http://127.0.0.1:" + port +
                                   "/healthz: unhealthy: HTTP/1.1 404 Not Found"));
}

TEST(HealthCheck, DrainingServerIsUnhealthy) {
  ServerProcess server({.args = {"--workers", "1", "--set", "drain_delay=30"}});
  const auto mark = server.log_mark();
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_for_log("(drain_delay) before the listeners close", mark));
  const auto [code, out] = run_binary("--health-check " + address(server.port()));
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("prefork-httpd: health check http://" + address(server.port()) +
                             "/healthz: unhealthy: HTTP/1.1 503 Service Unavailable\n"));
  // Still serving: it is the health endpoint that turned, not the server that went away.
  EXPECT_EQ(fetch(server.port(), get_request()).body, "Hello, World!");
}

TEST(HealthCheck, NothingListeningIsUnhealthyAndSaysSo) {
  const Socket closed = bound_socket(false);
  const auto [code, out] = run_binary("--health-check " + address(closed.port));
  EXPECT_EQ(code, 1);
  EXPECT_EQ(out, "prefork-httpd: health check http://" + address(closed.port) +
                     "/healthz: unhealthy: connect: Connection refused (errno 111)\n");
}

TEST(HealthCheck, NoAnswerWithinTwoSecondsIsUnhealthy) {
  const Socket silent = bound_socket(true);  // the kernel completes the connection; nobody reads
  const auto start = std::chrono::steady_clock::now();
  const auto [code, out] = run_binary("--health-check " + address(silent.port));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("unhealthy: no answer within 2000 ms"));
  EXPECT_GE(took, 1900ms);
  EXPECT_LT(took, 4s);
}

TEST(HealthCheck, BadTargetsAreUsageErrors) {
  for (const std::string target : {"bogus", "https://127.0.0.1:8888/healthz", "127.0.0.1:99999",
                                   "http:///healthz", "127.0.0.1:1/a\\ b"}) {
    const auto [code, out] = run_binary("--health-check '" + target + "'");
    EXPECT_EQ(code, 2) << target << ": " << out;
    EXPECT_THAT(out, HasSubstr("prefork-httpd: --health-check: ")) << target;
  }
  // Nothing to derive: an ephemeral port, or no health endpoint.
  const auto [eph, eph_out] = run_binary("--health-check -l 127.0.0.1:0");
  EXPECT_EQ(eph, 2);
  EXPECT_THAT(eph_out, HasSubstr("has an ephemeral port; give the address to probe"));
  const auto [off, off_out] = run_binary("--health-check -s healthz_path='\"\"'");
  EXPECT_EQ(off, 2);
  EXPECT_THAT(off_out, HasSubstr("healthz_path is switched off"));
  // Not together with the options that act on a server.
  const auto [both, both_out] = run_binary("--health-check --signal stop --pid 1");
  EXPECT_EQ(both, 2);
  EXPECT_THAT(both_out, HasSubstr("excludes"));
}

}  // namespace
}  // namespace prefork::testing
