#include "common/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>

namespace prefork::common {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string error_of(std::string_view text, const std::vector<Override>& overrides = {}) {
  try {
    parse_config(text, "/etc/test.conf", overrides);
  } catch (const ConfigError& err) {
    return err.what();
  }
  return "no error";
}

TEST(Config, DefaultsNeedNoFile) {
  const Config c = load_config("");
  EXPECT_EQ(c.listen, std::vector<std::string>{"[::]:8888"});
  EXPECT_EQ(c.mode, Mode::kPrefork);
  EXPECT_EQ(c.workers, 0U);
  EXPECT_GE(c.worker_count(), 1U);
  EXPECT_EQ(c.graceful_timeout, 30'000);
}

TEST(Config, ReadsEveryKindOfValue) {
  const Config c = parse_config(R"(
listen = ["127.0.0.1:8080", "[::1]:8081"]
mode = "per-connection"
workers = 3
graceful_timeout = 2.5
max_body_bytes = 1024
log_level = "debug"
)",
                                "t.conf");
  EXPECT_EQ(c.listen.size(), 2U);
  EXPECT_EQ(c.mode, Mode::kPerConnection);
  EXPECT_EQ(c.worker_count(), 3U);
  EXPECT_EQ(c.graceful_timeout, 2'500);
  EXPECT_EQ(c.max_body_bytes, 1024U);
  EXPECT_EQ(c.log_level, "debug");
}

TEST(Config, ErrorsNameFileLineKeyAndExpectation) {
  EXPECT_EQ(error_of("\n\nworkers = \"many\"\n"),
            "/etc/test.conf:3: key 'workers': expected \"auto\" or an integer from 1 to 1024, got "
            "string 'many'");
  EXPECT_EQ(error_of("graceful_timeout = -1\n"),
            "/etc/test.conf:1: key 'graceful_timeout': expected a duration in seconds (a number "
            "from 0.001 to 31536000), got integer -1");
  EXPECT_THAT(error_of("mode = \"threads\""),
              HasSubstr(":1: key 'mode': expected one of \"prefork\" \"per-connection\""));
  EXPECT_THAT(error_of("listen = 8080"), HasSubstr("key 'listen': expected a string or an array"));
}

TEST(Config, RejectsUnknownKeysWithTheirLine) {
  EXPECT_EQ(error_of("workers = 2\nworkres = 3\n"), "/etc/test.conf:2: unknown key 'workres'");
}

TEST(Config, ReportsTomlSyntaxErrorsWithTheLine) {
  EXPECT_THAT(error_of("workers = 2\nlisten = [\n"), HasSubstr("/etc/test.conf:"));
  EXPECT_THAT(error_of("workers = 2\nlisten = [\n"), HasSubstr("invalid TOML"));
}

TEST(Config, CommandLineOverridesWinAndAcceptPlainStrings) {
  const Config c =
      parse_config("workers = 2\nmode = \"prefork\"\n", "t.conf",
                   {{"workers", "5"}, {"mode", "per-connection"}, {"listen", "[\"127.0.0.1:0\"]"}});
  EXPECT_EQ(c.workers, 5U);
  EXPECT_EQ(c.mode, Mode::kPerConnection);
  EXPECT_EQ(c.listen, std::vector<std::string>{"127.0.0.1:0"});
}

TEST(Config, CommandLineErrorsSayWhereTheyCameFrom) {
  EXPECT_EQ(error_of("", {{"workers", "0"}}),
            "command line: key 'workers': expected an integer from 1 to 1024, got integer 0");
  EXPECT_EQ(error_of("", {{"bogus", "1"}}), "command line: unknown key 'bogus'");
}

}  // namespace
}  // namespace prefork::common

namespace prefork::common {
namespace {

TEST(Config, ReadsTheOperationsKeys) {
  const Config c = parse_config(R"(
access_log = "/var/log/x/access.log"
access_log_format = "json"
healthz_path = ""
status_allow = ["10.0.0.0/8", "::1"]
socket_mode = "0600"
user = "www-data"
)",
                                "t.conf");
  EXPECT_EQ(c.access_log, "/var/log/x/access.log");
  EXPECT_EQ(c.access_log_format, "json");
  EXPECT_EQ(c.healthz_path, "");
  EXPECT_EQ(c.status_path, "/server-status");
  ASSERT_EQ(c.status_allow.size(), 2U);
  EXPECT_EQ(c.status_allow[0].text(), "10.0.0.0/8");
  EXPECT_EQ(c.socket_mode, 0600U);
  EXPECT_EQ(c.user, "www-data");
}

TEST(Config, RejectsBadOperationsValues) {
  EXPECT_EQ(error_of("status_allow = [\"10.0.0.0/99\"]"),
            "/etc/test.conf:1: key 'status_allow': expected an address or CIDR range such as "
            "\"10.0.0.0/8\" or \"::1/128\", got string '10.0.0.0/99'");
  EXPECT_THAT(error_of("metrics_path = \"metrics\""), HasSubstr("a path starting with '/'"));
  EXPECT_THAT(error_of("socket_mode = \"0999\""), HasSubstr("octal permissions"));
}

}  // namespace
}  // namespace prefork::common

namespace prefork::common {
namespace {

TEST(Config, ListenEntriesCanBeTablesWithProxyProtocol) {
  const Config c = parse_config(R"(
listen = ["[::]:8888", { address = "127.0.0.1:8889", proxy_protocol = true },
          { address = "127.0.0.1:8890" }]
trusted_proxies = ["10.0.0.0/8"]
)",
                                "t.conf");
  EXPECT_EQ(c.listen, (std::vector<std::string>{"[::]:8888", "127.0.0.1:8889", "127.0.0.1:8890"}));
  EXPECT_TRUE(c.proxy_protocol_on("127.0.0.1:8889"));
  EXPECT_FALSE(c.proxy_protocol_on("[::]:8888"));
  EXPECT_FALSE(c.proxy_protocol_on("127.0.0.1:8890"));
  ASSERT_EQ(c.trusted_proxies.size(), 1U);
}

TEST(Config, RejectsMalformedListenTables) {
  EXPECT_THAT(error_of("listen = [{ proxy_protocol = true }]"),
              HasSubstr(":1: key 'listen': expected an 'address' in every listen table"));
  EXPECT_THAT(error_of("listen = [{ address = \"1.2.3.4:80\", proxy = true }]"),
              HasSubstr("expected only 'address' (string) and 'proxy_protocol'"));
  EXPECT_THAT(error_of("listen = [{ address = \"1.2.3.4:80\", proxy_protocol = \"yes\" }]"),
              HasSubstr("expected only 'address' (string) and 'proxy_protocol'"));
}

TEST(Config, RejectsARepeatedListenEntryWithBothLines) {
  EXPECT_EQ(error_of("workers = 1\nlisten = [\"127.0.0.1:19081\", \"127.0.0.1:19081\"]\n"),
            "/etc/test.conf:2: key 'listen': '127.0.0.1:19081' is already listed at "
            "/etc/test.conf:2; each address may appear once");
  EXPECT_EQ(error_of("listen = [\n  \"unix:/run/a.sock\",\n  \"unix:/run//./a.sock\",\n]\n"),
            "/etc/test.conf:3: key 'listen': 'unix:/run//./a.sock' (unix:/run/a.sock) is already "
            "listed at /etc/test.conf:2; each address may appear once");
}

TEST(Config, ListenDuplicatesAreFoundAfterNormalisation) {
  const std::vector<std::pair<std::string, std::string>> same = {
      {"8888", "[::]:8888"},
      {"0.0.0.0:80", "0.0.0.0:080"},
      {"[::0]:80", "[::]:80"},
      {"[0:0::1]:80", "[::1]:80"},
      {"[::ffff:127.0.0.1]:80", "[::ffff:7f00:1]:80"},
      {"unix:/a/b.sock", "unix:/a/c/../b.sock"},
      {"127.0.0.1:0", "127.0.0.1:0"},
  };
  for (const auto& [first, second] : same) {
    EXPECT_THAT(error_of("listen = [\"" + first + "\",\n\"" + second + "\"]"),
                HasSubstr("/etc/test.conf:2: key 'listen': '" + second + "'"))
        << first << " / " << second;
  }
  // Different addresses, and ephemeral ports spelled apart (each is its own fresh port).
  const std::vector<std::pair<std::string, std::string>> distinct = {
      {"0.0.0.0:80", "[::]:81"},        {"127.0.0.1:80", "127.0.0.2:80"},
      {"[::1]:80", "127.0.0.1:80"},     {"127.0.0.1:0", "127.0.0.1:00"},
      {"unix:/a.sock", "unix:/b.sock"},
  };
  for (const auto& [first, second] : distinct) {
    EXPECT_EQ(error_of("listen = [\"" + first + "\", \"" + second + "\"]"), "no error")
        << first << " / " << second;
  }
}

TEST(Config, ListenDuplicatesAcrossProxyProtocolTablesAreRejected) {
  EXPECT_THAT(error_of("listen = [\"127.0.0.1:80\",\n"
                       "  { address = \"127.0.0.1:080\", proxy_protocol = true }]"),
              HasSubstr("/etc/test.conf:2: key 'listen': '127.0.0.1:080' (127.0.0.1:80) is "
                        "already listed at /etc/test.conf:1"));
  EXPECT_THAT(error_of("listen = [{ address = \"[::1]:80\", proxy_protocol = true },\n"
                       "  { address = \"[0::1]:80\", proxy_protocol = true }]"),
              HasSubstr("/etc/test.conf:2: key 'listen': '[0::1]:80' ([::1]:80) is already"));
}

TEST(Config, MalformedListenAddressesNameTheirLine) {
  EXPECT_EQ(error_of("workers = 2\nlisten = [\"127.0.0.1:80\",\n  \"localhost:80\"]"),
            "/etc/test.conf:3: listen address 'localhost:80': expected a numeric IPv4 or [IPv6] "
            "address");
  EXPECT_THAT(error_of("listen = \"1.2.3.4:99999\""),
              HasSubstr("/etc/test.conf:1: listen address '1.2.3.4:99999': expected a port"));
  EXPECT_THAT(error_of("", {{"listen", "unix:relative.sock"}}),
              HasSubstr("command line: listen address 'unix:relative.sock'"));
}

TEST(Config, NumbersOutsideWhatTheKeyTakesAreRefusedWhateverTheirTomlType) {
  // Found by config_fuzzer: a float where an integer is expected was converted unchecked.
  EXPECT_THAT(error_of("max_request_line = 1e91"),
              HasSubstr(":1: key 'max_request_line': expected an integer from 64 to 1048576"));
  EXPECT_THAT(error_of("max_requests = 1.5"), HasSubstr("key 'max_requests': expected an integer"));
  EXPECT_THAT(error_of("", {{"max_headers", "-1e300"}}), HasSubstr("key 'max_headers': expected"));
  for (const char* value : {"nan", "+nan", "-nan", "inf", "-inf"}) {
    EXPECT_THAT(error_of(std::string("graceful_timeout = ") + value),
                HasSubstr("key 'graceful_timeout': expected a duration"))
        << value;
    EXPECT_THAT(error_of(std::string("drain_delay = ") + value),
                HasSubstr("key 'drain_delay': expected a duration"))
        << value;
  }
}

}  // namespace
}  // namespace prefork::common

// Configuration from the environment: PREFORK_HTTPD_<KEY> and PORT, between the file and the
// command line. The environment is passed in, as the master passes its own.
namespace prefork::common {
namespace {

std::string env_error_of(std::string_view text, const Environment& environment,
                         const std::vector<Override>& overrides = {}) {
  try {
    parse_config(text, "/etc/test.conf", overrides, environment);
  } catch (const ConfigError& err) {
    return err.what();
  }
  return "no error";
}

TEST(ConfigEnvironment, EveryKeyHasItsVariable) {
  const Config c = parse_config("", "t.conf", {},
                                {{"PREFORK_HTTPD_WORKERS", "3"},
                                 {"PREFORK_HTTPD_MODE", "per-connection"},
                                 {"PREFORK_HTTPD_GRACEFUL_TIMEOUT", "2.5"},
                                 {"PREFORK_HTTPD_LOG_LEVEL", "debug"},
                                 {"PREFORK_HTTPD_STATUS_ALLOW", "[\"10.0.0.0/8\"]"},
                                 {"PREFORK_HTTPD_LISTEN", "127.0.0.1:8080"}});
  EXPECT_EQ(c.workers, 3U);
  EXPECT_EQ(c.mode, Mode::kPerConnection);
  EXPECT_EQ(c.graceful_timeout, 2'500);
  EXPECT_EQ(c.log_level, "debug");
  ASSERT_EQ(c.status_allow.size(), 1U);
  EXPECT_EQ(c.status_allow[0].text(), "10.0.0.0/8");
  EXPECT_EQ(c.listen, std::vector<std::string>{"127.0.0.1:8080"});
  // Every key, not only these: each variable reaches its key (an unknown one would throw).
  for (const auto key : config_keys()) {
    std::string name = "PREFORK_HTTPD_";
    for (const char ch : key) name += static_cast<char>(std::toupper(ch));
    EXPECT_THAT(env_error_of("", {{name, "\"\\u0001\""}}), Not(HasSubstr("names no"))) << name;
  }
}

TEST(ConfigEnvironment, FileThenEnvironmentThenCommandLine) {
  const std::string file = "workers = 2\nmax_requests = 7\nlog_level = \"warn\"\n";
  const Environment env = {{"PREFORK_HTTPD_WORKERS", "4"}, {"PREFORK_HTTPD_MAX_REQUESTS", "8"}};
  const Config c = parse_config(file, "t.conf", {{"workers", "6"}}, env);
  EXPECT_EQ(c.workers, 6U);        // command line over environment
  EXPECT_EQ(c.max_requests, 8U);   // environment over file
  EXPECT_EQ(c.log_level, "warn");  // file where nothing else says
  EXPECT_EQ(parse_config(file, "t.conf", {}, env).workers, 4U);
}

TEST(ConfigEnvironment, ErrorsNameTheVariable) {
  EXPECT_EQ(env_error_of("", {{"PREFORK_HTTPD_WORKERS", "many"}}),
            "environment variable PREFORK_HTTPD_WORKERS: key 'workers': expected \"auto\" or an "
            "integer from 1 to 1024, got string 'many'");
  EXPECT_EQ(env_error_of("", {{"PREFORK_HTTPD_GRACEFUL_TIMEOUT", "-1"}}),
            "environment variable PREFORK_HTTPD_GRACEFUL_TIMEOUT: key 'graceful_timeout': "
            "expected a duration in seconds (a number from 0.001 to 31536000), got integer -1");
  EXPECT_THAT(env_error_of("", {{"PREFORK_HTTPD_LISTEN", "localhost:80"}}),
              HasSubstr("environment variable PREFORK_HTTPD_LISTEN: listen address "
                        "'localhost:80'"));
}

TEST(ConfigEnvironment, AVariableThatNamesNoKeyIsAnError) {
  for (const char* name : {"PREFORK_HTTPD_WORKRES", "PREFORK_HTTPD_workers", "PREFORK_HTTPD_",
                           "PREFORK_HTTPD_SOURCE"}) {
    EXPECT_THAT(env_error_of("", {{name, "1"}}), HasSubstr(std::string("environment variable ") +
                                                           name + ": names no configuration key"))
        << name;
  }
  // What a master sets for the executable it starts on a binary upgrade is not configuration.
  EXPECT_EQ(env_error_of("", {{kUpgradeFdVariable, "5"}, {kUpgradeListenersVariable, "x"}}),
            "no error");
  // Other variables are none of its business.
  EXPECT_EQ(env_error_of("", {{"PREFORK_HTTPDX", "1"}, {"HOME", "/"}, {"LISTEN", "1"}}),
            "no error");
}

TEST(ConfigEnvironment, ValuesAreReadLikeCommandLineValues) {
  // TOML when it parses as TOML, a plain string otherwise; one key only.
  EXPECT_EQ(parse_config("", "t", {}, {{"PREFORK_HTTPD_WORKERS", "\"auto\""}}).workers, 0U);
  EXPECT_EQ(parse_config("", "t", {}, {{"PREFORK_HTTPD_WORKERS", "auto"}}).workers, 0U);
  EXPECT_EQ(parse_config("", "t", {}, {{"PREFORK_HTTPD_PIDFILE", "/run/x.pid"}}).pidfile,
            "/run/x.pid");
  EXPECT_EQ(parse_config("", "t", {}, {{"PREFORK_HTTPD_PIDFILE", "1\nworkers = 9"}}).workers, 0U);
  EXPECT_EQ(parse_config("", "t", {}, {{"PREFORK_HTTPD_GROUP", ""}}).group, "");
}

TEST(ConfigEnvironment, PortListensOnAllAddressesWhenNothingElseSaysWhere) {
  EXPECT_EQ(parse_config("", "t", {}, {{"PORT", "8080"}}).listen,
            std::vector<std::string>{"[::]:8080"});
  // Any layer's `listen` wins over PORT.
  EXPECT_EQ(parse_config("listen = \"127.0.0.1:1\"", "t", {}, {{"PORT", "8080"}}).listen,
            std::vector<std::string>{"127.0.0.1:1"});
  EXPECT_EQ(
      parse_config("", "t", {}, {{"PORT", "8080"}, {"PREFORK_HTTPD_LISTEN", "127.0.0.1:2"}}).listen,
      std::vector<std::string>{"127.0.0.1:2"});
  EXPECT_EQ(parse_config("", "t", {{"listen", "127.0.0.1:3"}}, {{"PORT", "8080"}}).listen,
            std::vector<std::string>{"127.0.0.1:3"});
  // Empty is unset; a bad one names the variable.
  EXPECT_EQ(parse_config("", "t", {}, {{"PORT", ""}}).listen,
            std::vector<std::string>{"[::]:8888"});
  EXPECT_THAT(env_error_of("", {{"PORT", "http"}}),
              HasSubstr("environment variable PORT: listen address '[::]:http': expected a port"));
  EXPECT_THAT(env_error_of("", {{"PORT", "99999"}}), HasSubstr("environment variable PORT: "));
}

TEST(ConfigEnvironment, TakesOnlyItsVariablesFromAnEnvironBlock) {
  const char* envp[] = {"HOME=/root", "PREFORK_HTTPD_WORKERS=2",
                        "PORT=81",    "PREFORK_HTTPD_X=a=b",
                        "PATH=/bin",  "BROKEN",
                        nullptr};
  const Environment env = configuration_environment(envp);
  ASSERT_EQ(env.size(), 3U);
  EXPECT_EQ(env[0].name, "PREFORK_HTTPD_WORKERS");
  EXPECT_EQ(env[0].value, "2");
  EXPECT_EQ(env[1].name, "PORT");
  EXPECT_EQ(env[2].value, "a=b");
  EXPECT_TRUE(configuration_environment(nullptr).empty());
}

}  // namespace
}  // namespace prefork::common
