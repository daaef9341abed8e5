#include "common/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace prefork::common {
namespace {

using ::testing::HasSubstr;

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
