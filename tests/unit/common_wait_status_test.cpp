#include "common/wait_status.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

namespace prefork::common {
namespace {

// Real statuses from real children, so the description matches what waitpid reports.
int status_of_child(void (*body)()) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(99);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(WaitStatus, DescribesExitCodes) {
  EXPECT_EQ(describe_wait_status(status_of_child([] { ::_exit(0); })), "exited with code 0");
  EXPECT_EQ(describe_wait_status(status_of_child([] { ::_exit(3); })), "exited with code 3");
}

TEST(WaitStatus, DescribesSignals) {
  EXPECT_EQ(describe_wait_status(status_of_child([] { ::raise(SIGKILL); })), "killed by SIGKILL");
  EXPECT_EQ(describe_wait_status(status_of_child([] { ::raise(SIGTERM); })), "killed by SIGTERM");
}

TEST(WaitStatus, MentionsCoreDumps) {
  // A synthetic status: whether a real core is written depends on the machine's ulimit.
  const int segv_with_core = SIGSEGV | 0x80;
  EXPECT_EQ(describe_wait_status(segv_with_core), "killed by SIGSEGV (core dumped)");
}

TEST(WaitStatus, OnlyExitCodeTwoIsFatal) {
  EXPECT_TRUE(is_fatal_exit(status_of_child([] { ::_exit(2); })));
  EXPECT_FALSE(is_fatal_exit(status_of_child([] { ::_exit(1); })));
  EXPECT_FALSE(is_fatal_exit(status_of_child([] { ::raise(SIGKILL); })));
}

}  // namespace
}  // namespace prefork::common
