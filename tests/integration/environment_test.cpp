// Configuration from the environment, against the real binary: PREFORK_HTTPD_<KEY> between the
// file and the command line, PORT when nothing says where to listen, errors that name the
// variable, and a reload that keeps applying the master's environment.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "tests/support/server_process.hpp"

namespace prefork::testing {
namespace {

using ::testing::HasSubstr;

TEST(Environment, VariablesSetTheListenAddressAndTheWorkers) {
  ServerProcess server(
      {.listen = "", .env = {"PREFORK_HTTPD_LISTEN=127.0.0.1:0", "PREFORK_HTTPD_WORKERS=3"}});
  EXPECT_TRUE(server.wait_for_log("mode prefork, 3 workers", kLogStart));
  EXPECT_TRUE(server.wait_for_children(3));
  EXPECT_THAT(server.log(), HasSubstr("listening on 127.0.0.1:"));
  EXPECT_EQ(fetch(server.port(), get_request()).body, "Hello, World!");
}

TEST(Environment, TheCommandLineWinsOverTheEnvironmentWhichWinsOverTheFile) {
  const std::string file = "workers = 2\nmax_children = 7\n";
  {
    ServerProcess server({.config = file, .env = {"PREFORK_HTTPD_WORKERS=3"}});
    EXPECT_TRUE(server.wait_for_log("mode prefork, 3 workers", kLogStart)) << server.log();
  }
  {
    ServerProcess server(
        {.args = {"--workers", "4"}, .config = file, .env = {"PREFORK_HTTPD_WORKERS=3"}});
    EXPECT_TRUE(server.wait_for_log("mode prefork, 4 workers", kLogStart)) << server.log();
  }
  {
    // `-s` too, and the file's other keys still apply.
    ServerProcess server({.args = {"-s", "mode=per-connection"},
                          .config = file,
                          .env = {"PREFORK_HTTPD_MODE=prefork"}});
    EXPECT_TRUE(server.wait_for_log("mode per-connection, 7 max children", kLogStart))
        << server.log();
  }
}

TEST(Environment, ABadVariableIsAConfigurationErrorThatNamesIt) {
  const auto [code, out] = run_binary("--listen 127.0.0.1:0", {"PREFORK_HTTPD_WORKERS=many"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("configuration error: environment variable PREFORK_HTTPD_WORKERS: "
                             "key 'workers': expected \"auto\" or an integer from 1 to 1024, "
                             "got string 'many'"));
  // -t reports it as it reports a bad file.
  const auto [tcode, tout] = run_binary("-t", {"PREFORK_HTTPD_WORKERS=many"});
  EXPECT_EQ(tcode, 1);
  EXPECT_THAT(tout, HasSubstr("environment variable PREFORK_HTTPD_WORKERS: key 'workers'"));
  const auto [ucode, uout] = run_binary("--listen 127.0.0.1:0", {"PREFORK_HTTPD_WORKRES=2"});
  EXPECT_EQ(ucode, 2);
  EXPECT_THAT(uout, HasSubstr("environment variable PREFORK_HTTPD_WORKRES: names no "
                              "configuration key"));
  // A good one passes -t.
  const auto [gcode, gout] = run_binary("-t", {"PREFORK_HTTPD_WORKERS=2"});
  EXPECT_EQ(gcode, 0) << gout;
}

TEST(Environment, PortListensOnEveryAddressWhenNothingElseSaysWhere) {
  // PORT=0: "[::]:0", a fresh port (dual-stack, or 0.0.0.0 on a host without IPv6).
  ServerProcess server({.listen = "", .env = {"PORT=0"}});
  EXPECT_THAT(server.log(),
              ::testing::ContainsRegex("listening on (\\[::\\]|0\\.0\\.0\\.0):[1-9]"));
  EXPECT_NE(server.port(), 8888) << "the built-in default, not PORT";
  EXPECT_EQ(fetch(server.port(), get_request()).body, "Hello, World!");
}

TEST(Environment, PortGivesWayToAnyListenAddress) {
  // PORT=1 would fail to bind (a privileged port): serving shows it was not used.
  ServerProcess from_file(
      {.config = "listen = \"127.0.0.1:0\"\n", .listen = "", .env = {"PORT=1"}});
  EXPECT_THAT(from_file.log(), HasSubstr("listening on 127.0.0.1:"));
  ServerProcess from_env({.listen = "", .env = {"PORT=1", "PREFORK_HTTPD_LISTEN=127.0.0.1:0"}});
  EXPECT_THAT(from_env.log(), HasSubstr("listening on 127.0.0.1:"));
  ServerProcess from_command_line({.env = {"PORT=1"}});  // --listen 127.0.0.1:0
  EXPECT_THAT(from_command_line.log(), HasSubstr("listening on 127.0.0.1:"));
  const auto [code, out] = run_binary("-t", {"PORT=http"});
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("environment variable PORT: listen address '[::]:http'"));
}

TEST(Environment, AReloadRereadsTheFileAndKeepsTheEnvironmentOnTop) {
  ServerProcess server({.config = "workers = 1\n", .env = {"PREFORK_HTTPD_WORKERS=2"}});
  ASSERT_TRUE(server.wait_for_log("mode prefork, 2 workers", kLogStart));
  const auto mark = server.log_mark();
  server.dir().write("server.conf", "workers = 3\n");
  server.signal(SIGHUP);
  EXPECT_TRUE(server.wait_for_log("starting generation 2 with 2 workers", mark))
      << server.log_since(mark);
  // The file is read again: a bad one is refused as always.
  const auto bad = server.log_mark();
  server.dir().write("server.conf", "workers = 3\nkeepalive_timeout = \"long\"\n");
  server.signal(SIGHUP);
  EXPECT_TRUE(server.wait_for_log("reload failed, keeping the running configuration: " +
                                      server.config_path() + ":2: key 'keepalive_timeout'",
                                  bad))
      << server.log_since(bad);
}

}  // namespace
}  // namespace prefork::testing
