// Operating the real binary: systemd notify and socket activation, unix-domain listeners,
// the pidfile.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>

#include "tests/support/notify_receiver.hpp"
#include "tests/support/server_process.hpp"

namespace prefork::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

std::uint16_t free_port() {
  common::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

Response get_over_unix(const std::string& path) {
  Client c = Client::unix_socket(path);
  c.send(get_request());
  return c.read_response();
}

TEST(Operations, TellsSystemdWhenReadyReloadingAndStopping) {
  TempDir dir;
  NotifyReceiver systemd(dir.path() + "/notify");
  ServerProcess server({.args = {"--workers", "2"}, .env = {"NOTIFY_SOCKET=" + systemd.path()}});
  const std::string ready = systemd.next();
  EXPECT_THAT(ready, StartsWith("READY=1\n"));
  EXPECT_THAT(ready, HasSubstr("STATUS=2 workers serving"));

  server.signal(SIGHUP);
  const std::string reloading = systemd.next();
  EXPECT_THAT(reloading, ::testing::MatchesRegex("RELOADING=1\nMONOTONIC_USEC=[0-9]+"));
  EXPECT_THAT(systemd.next(), StartsWith("READY=1\n"));  // once the new generation serves

  server.signal(SIGTERM);
  EXPECT_THAT(systemd.next(), StartsWith("STOPPING=1\n"));
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
}

TEST(Operations, UsesTheSocketSystemdPassesInsteadOfBinding) {
  const std::uint16_t port = free_port();
  // systemd-socket-activate binds, then execs the server on the first connection with
  // LISTEN_FDS=1 and LISTEN_PID set: the server must use fd 3 and bind nothing itself.
  ServerProcess server(
      {.args = {"--workers", "1"},
       .listen = "",
       .wait_ready = false,
       .wrapper = {"/usr/bin/systemd-socket-activate", "-l", "127.0.0.1:" + std::to_string(port)}});
  ASSERT_TRUE(server.wait_for_log("Listening on 127.0.0.1:" + std::to_string(port), kLogStart));
  Client c(port);
  c.send(get_request());
  EXPECT_EQ(c.read_response().body, "Hello, World!");
  EXPECT_TRUE(server.wait_for_log("socket activation: using 1 socket(s) from systemd", kLogStart));
  EXPECT_THAT(server.log(), HasSubstr("listening on 127.0.0.1:" + std::to_string(port)));
  EXPECT_THAT(server.log(), ::testing::Not(HasSubstr("[::]:8888")));
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
}

TEST(Operations, NeverUnlinksAUnixSocketSystemdPassed) {
  TempDir dir;
  const std::string path = dir.path() + "/activated.sock";
  ServerProcess server({.args = {"--workers", "1"},
                        .listen = "",
                        .wait_ready = false,
                        .wrapper = {"/usr/bin/systemd-socket-activate", "-l", path}});
  ASSERT_TRUE(server.wait_for_log("Listening on " + path, kLogStart));
  EXPECT_EQ(get_over_unix(path).body, "Hello, World!");
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  EXPECT_TRUE(std::filesystem::exists(path)) << "the server removed systemd's socket";
}

TEST(Operations, ServesAUnixSocketWithTheConfiguredModeAndRemovesItAtExit) {
  TempDir dir;
  const std::string path = dir.path() + "/http.sock";
  ServerProcess server(
      {.args = {"--workers", "2", "--set", "socket_mode=\"0600\""}, .listen = "unix:" + path});
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  const Response r = get_over_unix(path);
  EXPECT_EQ(r.body, "Hello, World!");
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  EXPECT_FALSE(std::filesystem::exists(path)) << "the master left its socket file behind";
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

TEST(Operations, ReplacesAStaleSocketButNeverALiveOneOrAPlainFile) {
  TempDir dir;
  const std::string path = dir.path() + "/http.sock";
  {  // a socket file whose server is gone: stale
    common::UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ASSERT_EQ(::bind(stale.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  ServerProcess live({.args = {"--workers", "1"}, .listen = "unix:" + path});
  EXPECT_EQ(get_over_unix(path).body, "Hello, World!");

  ServerProcess second({.args = {"--workers", "1"}, .listen = "unix:" + path, .wait_ready = false});
  EXPECT_EQ(exit_code(second.wait_exit(10s)), 2);
  EXPECT_THAT(second.log(), HasSubstr("another process answers on it"));
  EXPECT_EQ(get_over_unix(path).body, "Hello, World!");  // the live one was left alone

  const std::string plain = dir.write("plain", "not a socket");
  ServerProcess third({.args = {"--workers", "1"}, .listen = "unix:" + plain, .wait_ready = false});
  EXPECT_EQ(exit_code(third.wait_exit(10s)), 2);
  EXPECT_THAT(third.log(), HasSubstr("the path exists and is not a socket"));
  EXPECT_EQ(read_file(plain), "not a socket");
}

TEST(Operations, WritesThePidfileAndRemovesItOnlyWhileItIsOurs) {
  TempDir dir;
  const std::string pidfile = dir.path() + "/prefork.pid";
  {
    ServerProcess server({.args = {"--workers", "1", "--set", "pidfile=\"" + pidfile + "\""}});
    EXPECT_EQ(read_file(pidfile), std::to_string(server.pid()) + "\n");
    server.signal(SIGTERM);
    EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
    EXPECT_FALSE(std::filesystem::exists(pidfile));
  }
  ServerProcess server({.args = {"--workers", "1", "--set", "pidfile=\"" + pidfile + "\""}});
  dir.write("prefork.pid", "999999\n");  // a newer instance took it over
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  EXPECT_EQ(read_file(pidfile), "999999\n");
}

}  // namespace
}  // namespace prefork::testing
