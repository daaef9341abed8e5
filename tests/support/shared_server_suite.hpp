// One real prefork-httpd per test suite, shared by its tests: started before the first test,
// stopped with SIGTERM after the last, and then checked for a clean exit, unexpected error lines
// and unreaped children.
#pragma once

#include <signal.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>

#include "tests/support/server_process.hpp"

namespace prefork::testing {

// CRTP base of a fixture: `Derived` provides `static ServerOptions server_options()` (public),
// the options its suite's server starts with. Fixtures derived from `Derived` (parameterized
// suites) share the same hook and run their own server.
template <typename Derived>
class SharedServerSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = std::make_unique<ServerProcess>(Derived::server_options());
  }

  static void TearDownTestSuite() {
    server_->signal(SIGTERM);
    const auto status = server_->wait_exit(10s);
    EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
    EXPECT_THAT(server_->unexpected_errors(), ::testing::IsEmpty());
    server_.reset();
    EXPECT_EQ(reap_zombies(), 0);
  }

  static std::uint16_t port() { return server_->port(); }

  static inline std::unique_ptr<ServerProcess> server_;
};

}  // namespace prefork::testing
