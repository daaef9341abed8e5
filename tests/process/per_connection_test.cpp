// Per-connection mode through the real libraries: the supervisor accepts and forks a child per
// connection running worker::serve_connection; fork failures are injected through the seam.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>

#include "tests/process/master_under_test.hpp"
#include "tests/support/server_process.hpp"
#include "worker/worker.hpp"

namespace prefork::master {
namespace {

using testing::Client;
using testing::get_request;
using testing::kLogStart;
using testing::TempDir;

common::Config per_connection(unsigned max_children) {
  common::Config c;
  c.mode = common::Mode::kPerConnection;
  c.max_children = max_children;
  c.graceful_timeout = 3'000;
  return c;
}

ChildEntries real_children() {
  return {worker::run, worker::serve_connection};
}

TEST(PerConnection, ForkFailureIsSurvivedAndTheClientServedOnceForkWorksAgain) {
  TempDir flags;
  const std::string fail_flag = flags.path() + "/fail-fork";
  SupervisorOptions options;
  // While the flag file exists, fork fails the way RLIMIT_NPROC makes it fail.
  options.fork = [fail_flag]() -> pid_t {
    if (std::filesystem::exists(fail_flag)) {
      errno = EAGAIN;
      return -1;
    }
    return ::fork();
  };
  flags.write("fail-fork", "");
  MasterUnderTest m(per_connection(8), real_children(), nullptr, options);
  Client c(m.port());
  c.send(get_request());
  ASSERT_TRUE(m.wait_for_log("Resource temporarily unavailable", kLogStart));
  EXPECT_THAT(m.log(), ::testing::HasSubstr("holding it, retrying in"));
  std::filesystem::remove(fail_flag);
  const auto r = c.read_response();
  EXPECT_EQ(r.body, "Hello, World!");
  Client again(m.port());
  again.send(get_request());
  EXPECT_EQ(again.read_response().status, 200);
  ::kill(m.pid(), SIGTERM);
  const auto status = m.wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST(PerConnection, AtTheCapConnectionsWaitInTheBacklogInsteadOfBeingRefused) {
  MasterUnderTest m(per_connection(2), real_children());
  Client a(m.port());
  Client b(m.port());
  a.send(get_request());
  b.send(get_request());
  ASSERT_EQ(a.read_response().status, 200);
  ASSERT_EQ(b.read_response().status, 200);
  ASSERT_TRUE(m.wait_for_children(2));
  Client waiting(m.port());  // the kernel completes the handshake; nobody accepts it yet
  waiting.send(get_request());
  EXPECT_THROW(waiting.read_response(false, 300ms), std::runtime_error);
  EXPECT_EQ(m.children().size(), 2U);
  a.shutdown_write();  // the child sees EOF, exits, is reaped; the master accepts again
  const auto r = waiting.read_response();
  EXPECT_EQ(r.body, "Hello, World!");
}

TEST(PerConnection, GracefulStopLetsChildrenFinishTheirRequest) {
  MasterUnderTest m(per_connection(4), real_children());
  Client c(m.port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\n");
  ASSERT_TRUE(m.wait_for_children(1));
  ASSERT_TRUE(c.wait_server_read());  // the child holds the half-sent request
  const auto mark = m.log_mark();
  ::kill(m.pid(), SIGTERM);
  ASSERT_TRUE(m.wait_for_log("graceful stop", mark));
  c.send("\r\n");
  const auto r = c.read_response();
  EXPECT_EQ(r.body, "Hello, World!");
  EXPECT_EQ(r.header("connection"), "close");
  const auto status = m.wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

}  // namespace
}  // namespace prefork::master
