// Privilege drop (master/privileges) and RLIMIT_NOFILE sizing (common/resource_limits), each
// applied in a forked child so the test process keeps its own identity and limits. The drop
// tests need root (CI runs as root) and skip otherwise.
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/resource_limits.hpp"
#include "master/privileges.hpp"

namespace prefork::master {
namespace {

using ::testing::HasSubstr;

// Runs `check` in a forked child; returns its exit code (0: every check held). The child
// reports the first failed check on stderr.
int in_child(const std::function<const char*()>& check) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const char* failure = "exception";
    try {
      failure = check();
    } catch (const std::exception& err) {
      std::fprintf(stderr, "child: %s\n", err.what());
    }
    if (failure != nullptr) std::fprintf(stderr, "child: failed: %s\n", failure);
    ::_exit(failure == nullptr ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define REQUIRE(cond) \
  if (!(cond)) return #cond

passwd* nobody() {
  return ::getpwnam("nobody");
}

class Privileges : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    if (nobody() == nullptr) GTEST_SKIP() << "no user nobody";
  }
};

common::Config with_user(const std::string& user, const std::string& group = "") {
  common::Config config;
  config.source = "test.conf";
  config.user = user;
  config.group = group;
  return config;
}

TEST(PrivilegesNotRoot, NothingIsResolvedOrChangedWhenTheMasterIsNotRoot) {
  const auto c = resolve_child_credentials(with_user("no-such-user-xyz"), /*as_root=*/false);
  EXPECT_FALSE(c.drop);
  EXPECT_FALSE(c.root_opt_in);
}

TEST_F(Privileges, ResolvesTheUserAndItsPrimaryGroup) {
  const auto c = resolve_child_credentials(with_user("nobody"), true);
  EXPECT_TRUE(c.drop);
  EXPECT_EQ(c.uid, nobody()->pw_uid);
  EXPECT_EQ(c.gid, nobody()->pw_gid);
  EXPECT_THAT(c.groups, ::testing::Contains(nobody()->pw_gid));
}

TEST_F(Privileges, AnExplicitGroupOverridesThePrimaryOne) {
  const group* root_group = ::getgrgid(0);
  ASSERT_NE(root_group, nullptr);
  const auto c = resolve_child_credentials(with_user("nobody", root_group->gr_name), true);
  EXPECT_TRUE(c.drop);
  EXPECT_EQ(c.gid, 0U);
}

TEST_F(Privileges, RootIsAnOptInThatDropsNothing) {
  const auto c = resolve_child_credentials(with_user("root"), true);
  EXPECT_FALSE(c.drop);
  EXPECT_TRUE(c.root_opt_in);
}

TEST_F(Privileges, UnknownUserOrGroupIsAConfigErrorNamingTheKey) {
  try {
    resolve_child_credentials(with_user("no-such-user-xyz"), true);
    ADD_FAILURE() << "no error";
  } catch (const common::ConfigError& err) {
    EXPECT_THAT(err.what(), HasSubstr("test.conf: key 'user': no such user \"no-such-user-xyz\""));
  }
  try {
    resolve_child_credentials(with_user("nobody", "no-such-group-xyz"), true);
    ADD_FAILURE() << "no error";
  } catch (const common::ConfigError& err) {
    EXPECT_THAT(err.what(),
                HasSubstr("test.conf: key 'group': no such group \"no-such-group-xyz\""));
  }
}

TEST_F(Privileges, TheDroppedChildCannotRegainRootAndIsNotDumpable) {
  const auto plan = resolve_child_credentials(with_user("nobody"), true);
  EXPECT_EQ(in_child([&]() -> const char* {
              ::setgroups(0, nullptr);  // start from a known state: root, no extra groups
              apply_credentials(plan);
              uid_t r = 1, e = 1, s = 1;
              ::getresuid(&r, &e, &s);
              REQUIRE(r == plan.uid && e == plan.uid && s == plan.uid);
              gid_t gr = 1, ge = 1, gs = 1;
              ::getresgid(&gr, &ge, &gs);
              REQUIRE(gr == plan.gid && ge == plan.gid && gs == plan.gid);
              std::vector<gid_t> groups(64);
              const int n = ::getgroups(static_cast<int>(groups.size()), groups.data());
              REQUIRE(n == static_cast<int>(plan.groups.size()));
              for (int i = 0; i < n; ++i) REQUIRE(groups[static_cast<std::size_t>(i)] != 0);
              REQUIRE(::setuid(0) != 0);
              REQUIRE(::seteuid(0) != 0);
              REQUIRE(::setgid(0) != 0);
              REQUIRE(::setgroups(0, nullptr) != 0);
              REQUIRE(::prctl(PR_GET_DUMPABLE) == 0);
              return nullptr;
            }),
            0);
}

TEST_F(Privileges, TheChildDiesWithTheMasterEvenAfterTheDrop) {
  // The kernel clears PR_SET_PDEATHSIG when credentials change; the drop must re-arm it.
  auto plan = resolve_child_credentials(with_user("nobody"), true);
  set_child_credentials(plan);
  const pid_t master = ::getpid();
  EXPECT_EQ(in_child([&]() -> const char* {
              REQUIRE(::prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
              drop_privileges_in_child(master);
              int signo = 0;
              REQUIRE(::prctl(PR_GET_PDEATHSIG, &signo) == 0);
              REQUIRE(signo == SIGKILL);
              REQUIRE(::getuid() == plan.uid);
              return nullptr;
            }),
            0);
  set_child_credentials({});
}

TEST(PrivilegesNoPlan, NoPlanInstalledChangesNothing) {
  set_child_credentials({});
  const uid_t before = ::getuid();
  EXPECT_EQ(in_child([&]() -> const char* {
              drop_privileges_in_child(::getppid());
              REQUIRE(::getuid() == before);
              return nullptr;
            }),
            0);
}

// ---- RLIMIT_NOFILE ----------------------------------------------------------------------------

TEST(ResourceLimits, NeedsClientsPlusListenersPlusMargin) {
  common::Config prefork;
  prefork.max_connections = 1000;
  EXPECT_EQ(common::descriptors_needed(prefork, 2), 1000U + 2U + common::kDescriptorMargin);
  common::Config per_connection;
  per_connection.mode = common::Mode::kPerConnection;
  per_connection.max_children = 300;
  per_connection.max_connections = 100000;  // not the master's business in this mode
  EXPECT_EQ(common::descriptors_needed(per_connection, 1), 300U + 1U + common::kDescriptorMargin);
}

TEST(ResourceLimits, RaisesTheSoftLimitUpToTheHardOneAndNeverLowersIt) {
  EXPECT_EQ(in_child([]() -> const char* {
              rlimit limit{};
              ::getrlimit(RLIMIT_NOFILE, &limit);
              REQUIRE(limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= 600);
              limit.rlim_cur = 100;
              REQUIRE(::setrlimit(RLIMIT_NOFILE, &limit) == 0);
              auto r = common::raise_nofile_limit(500);
              REQUIRE(r.soft_before == 100 && r.soft == 500 && r.enough() && r.raised());
              ::getrlimit(RLIMIT_NOFILE, &limit);
              REQUIRE(limit.rlim_cur == 500);
              r = common::raise_nofile_limit(200);  // already enough: unchanged
              REQUIRE(r.soft == 500 && !r.raised());
              ::getrlimit(RLIMIT_NOFILE, &limit);
              REQUIRE(limit.rlim_cur == 500);
              // A hard limit below the need: raised to the hard limit, and not enough.
              limit.rlim_max = 550;
              REQUIRE(::setrlimit(RLIMIT_NOFILE, &limit) == 0);
              r = common::raise_nofile_limit(5000);
              REQUIRE(r.soft == 550 && r.hard == 550 && !r.enough());
              ::getrlimit(RLIMIT_NOFILE, &limit);
              REQUIRE(limit.rlim_cur == 550);
              return nullptr;
            }),
            0);
}

}  // namespace
}  // namespace prefork::master
