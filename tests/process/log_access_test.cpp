// check_log_files_for_children (master/privileges): the probe that tells, before any child
// exists, whether the children's user will be able to open each log file. Needs root (the
// children must become someone else) and skips otherwise. Each case is checked against what
// that user can really do, in a forked child that takes the same credentials.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/config.hpp"
#include "common/unique_fd.hpp"
#include "master/privileges.hpp"
#include "tests/support/server_process.hpp"

namespace prefork::master {
namespace {

using ::testing::HasSubstr;

class LogAccessCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    if (::getpwnam("nobody") == nullptr) GTEST_SKIP() << "no user nobody";
    config_.source = "test.conf";
    config_.user = "nobody";
    credentials_ = resolve_child_credentials(config_, true);
    ::chmod(dir_.path().c_str(), 0755);
  }

  // What the check says about `access_log = path`: "" when accepted, else the error.
  std::string check(const std::string& path) {
    config_.access_log = path;
    try {
      check_log_files_for_children(config_, credentials_);
    } catch (const common::ConfigError& err) {
      return err.what();
    }
    return "";
  }

  // Whether the children's user can open `path` for appending: what a worker does.
  bool child_can_open(const std::string& path) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      apply_credentials(credentials_);
      const common::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0640));
      ::_exit(fd ? 0 : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  std::string mkdir(const std::string& name, unsigned mode) {
    const std::string path = dir_.path() + "/" + name;
    std::filesystem::create_directory(path);
    ::chmod(path.c_str(), static_cast<mode_t>(mode));
    return path;
  }

  testing::TempDir dir_;
  common::Config config_;
  ChildCredentials credentials_;
};

TEST_F(LogAccessCheck, AFileInADirectoryTheUserCannotEnterIsRefusedNamingPathAndUser) {
  const std::string path = mkdir("private", 0700) + "/access.log";
  std::ofstream(path) << "";
  EXPECT_THAT(check(path), ::testing::StartsWith("test.conf: key 'access_log': user nobody, who "
                                                 "the children run as, cannot open " +
                                                 path + " for appending: Permission denied"));
  EXPECT_FALSE(child_can_open(path));
}

TEST_F(LogAccessCheck, AnExistingFileOfRootIsRefusedUntilTheMasterHandsItOver) {
  const std::string path = mkdir("logs", 0755) + "/access.log";
  std::ofstream(path) << "";
  ::chmod(path.c_str(), 0644);
  EXPECT_THAT(check(path), HasSubstr("cannot open " + path + " for appending: Permission denied"));
  EXPECT_FALSE(child_can_open(path));
  prepare_log_files_for_children(config_, credentials_);  // what the master does at start
  EXPECT_EQ(check(path), "");
  EXPECT_TRUE(child_can_open(path));
}

TEST_F(LogAccessCheck, AMissingFileIsAcceptedWhereTheMasterCanCreateItForTheChildren) {
  const std::string path = mkdir("logs", 0755) + "/access.log";
  EXPECT_EQ(check(path), "");
  EXPECT_FALSE(std::filesystem::exists(path)) << "the check created the file";
  prepare_log_files_for_children(config_, credentials_);
  EXPECT_TRUE(child_can_open(path));
}

TEST_F(LogAccessCheck, AMissingDirectoryIsRefused) {
  const std::string path = dir_.path() + "/no-such-dir/access.log";
  EXPECT_THAT(check(path), HasSubstr("cannot open " + path +
                                     " for appending: it does not exist yet and cannot "
                                     "be created in " +
                                     dir_.path() + "/no-such-dir: No such file or directory"));
}

TEST_F(LogAccessCheck, NothingIsCheckedForStderrOrOff) {
  EXPECT_EQ(check("stderr"), "");
  EXPECT_EQ(check("off"), "");
}

}  // namespace
}  // namespace prefork::master
