// The master survives any configuration: a serving master takes SIGHUP after SIGHUP with broken
// and odd-but-valid files (repeated listen entries, every key at its bounds and just outside,
// listeners added, removed, swapped and replaced, unix sockets, PROXY flags, a mode change, a
// missing or unreadable file, TOML syntax errors). After each: the master is alive, a real GET
// gets 200 on a listener that must exist, and the log written since that HUP shows either the
// reload or `file:line: reason` for that file. Both process models.
// Also: a log file the children's user cannot open is a configuration error at start, in -t and
// on reload (root only: the children must run as another user).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <regex>

#include "tests/support/server_process.hpp"

namespace prefork::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr const char* kBase = "127.0.0.1:0";  // in most configs: keeps the first socket
constexpr const char* kRefused = "reload failed, keeping the running configuration";

bool running_as_root_with_nobody() {
  return ::geteuid() == 0 && ::getpwnam("nobody") != nullptr;
}

// One HUP: the whole file, and what must follow.
struct Step {
  std::string name;
  std::string config;  // written as the config file; "" with `directory`: see below
  std::string error;   // empty: the reload is applied; else what the log must say after it
  std::string serve_on = "127.0.0.1";  // where the GET goes: a host ("127.0.0.2") or "unix:PATH"
  bool directory = false;              // the config path is a directory (config ignored)
  bool missing = false;                // the config file is removed
  bool prefork_serves = true;          // false: no GET afterwards in prefork mode
};

class ReloadSeries : public ::testing::TestWithParam<std::string> {
 public:
  // The file: the mode (line 1), the listen entries (line 2), `rest` (from line 3), and one
  // worker unless `rest` says otherwise.
  [[nodiscard]] std::string with(const std::string& listen, const std::string& rest = "") const {
    return "mode = \"" + GetParam() + "\"\nlisten = " + listen + "\n" + rest +
           (rest.starts_with("workers") ? "" : "workers = 1\n");
  }
  [[nodiscard]] std::string base(const std::string& rest = "") const {
    return with(std::string("[\"") + kBase + "\"]", rest);
  }
};

// host ("127.0.0.1", "unix:/path") -> port of each listener the log says is open now.
class Listeners {
 public:
  void update(const std::string& log, std::size_t from) {
    static const std::regex line(R"((no longer )?listening on (\S+?)(?::(\d+))?$)");
    for (const std::string& text : lines_of(log.substr(from))) {
      std::smatch m;
      if (!std::regex_search(text, m, line)) continue;
      const std::string host = m[2];
      if (m[1].matched) {
        open_.erase(host);
      } else {
        open_[host] = m[3].matched ? static_cast<std::uint16_t>(std::stoi(m[3])) : 0;
      }
    }
  }
  // A GET on that listener; its status (0 when it cannot connect).
  [[nodiscard]] int get(const std::string& host) const {
    try {
      if (host.starts_with("unix:")) {
        Client c = Client::unix_socket(host.substr(5));
        c.send(get_request());
        return c.read_response().status;
      }
      const auto it = open_.find(host);
      if (it == open_.end()) return 0;
      Client c(it->second, host);
      c.send(get_request());
      return c.read_response().status;
    } catch (const std::exception&) {
      return 0;
    }
  }

 private:
  std::map<std::string, std::uint16_t> open_;
};

std::vector<Step> broken_steps(const ReloadSeries& t, const std::string& dir,
                               const std::string& conf) {
  const std::string other_mode = t.GetParam() == "prefork" ? "per-connection" : "prefork";
  const std::string listen2 = conf + ":2: key 'listen': ";
  std::vector<Step> steps = {
      {"the same address twice", t.with(R"(["127.0.0.1:19081", "127.0.0.1:19081"])"),
       listen2 + "'127.0.0.1:19081' is already listed at " + conf + ":2"},
      {"the same address spelled twice", t.with(R"(["127.0.0.1:0", "0.0.0.0:080", "0.0.0.0:80"])"),
       listen2 + "'0.0.0.0:80' is already listed at " + conf + ":2"},
      {"an IPv6 address spelled twice", t.with(R"(["127.0.0.1:0", "[::0]:19082", "[::]:19082"])"),
       listen2 + "'[::]:19082' is already listed"},
      {"a unix path twice", t.with("[\"unix:" + dir + "/a.sock\", \"unix:" + dir + "//a.sock\"]"),
       listen2 + "'unix:" + dir + "//a.sock' (unix:" + dir + "/a.sock) is already listed"},
      {"a PROXY table repeating an address",
       t.with("[\"127.0.0.1:0\",\n  { address = \"127.0.0.2:19083\", proxy_protocol = true },\n"
              "  \"127.0.0.2:19083\"]"),
       conf + ":4: key 'listen': '127.0.0.2:19083' is already listed at " + conf + ":3"},
      {"a malformed listen address", t.with(R"(["127.0.0.1:0", "localhost:80"])"),
       conf + ":2: listen address 'localhost:80'"},
      {"a bad PROXY flag", t.with(R"([{ address = "127.0.0.1:0", proxy_protocol = "yes" }])"),
       conf + ":2: key 'listen': expected only 'address'"},
      {"an empty listen list", t.with("[]"), listen2 + "expected at least one entry"},
      {"a TOML syntax error", t.base("max_headers = [1,,]\n"), conf + ":3: invalid TOML"},
      {"a repeated key", t.base("mode = \"prefork\"\n"), conf + ":3: invalid TOML"},
      {"an unknown key", t.base("wrokers = 2\n"), conf + ":3: unknown key 'wrokers'"},
      {"a mode change", "mode = \"" + other_mode + "\"\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n",
       conf + ": key 'mode': cannot change on reload"},
      {"a missing file", "", conf + ": cannot open: No such file or directory", "127.0.0.1", false,
       true},
      {"a directory", "", conf + ": cannot read: Is a directory", "127.0.0.1", true},
      {"a bad CIDR", t.base("status_allow = [\"10.0.0.0/33\"]\n"),
       conf + ":3: key 'status_allow': expected an address or CIDR"},
      {"a relative URL path", t.base("healthz_path = \"healthz\"\n"),
       conf + ":3: key 'healthz_path'"},
      {"an unknown log level", t.base("log_level = \"loud\"\n"), conf + ":3: key 'log_level'"},
  };
  // Just outside every bound (min - 1 and max + 1, or the nearest representable value).
  const std::vector<std::pair<std::string, std::vector<std::string>>> outside = {
      {"workers", {"0", "1025", "\"many\""}},
      {"max_children", {"0", "65537"}},
      {"max_children_per_ip", {"-1", "65537"}},
      {"max_requests", {"-1"}},
      {"graceful_timeout", {"0", "0.0009", "31536000.001"}},
      {"drain_delay", {"-0.001", "31536000.001"}},
      {"worker_timeout", {"0.0009", "31536001"}},
      {"header_timeout", {"0.0009", "31536001"}},
      {"body_timeout", {"0.0009", "31536001"}},
      {"keepalive_timeout", {"0.0009", "31536001"}},
      {"send_timeout", {"0.0009", "31536001"}},
      {"keepalive_requests", {"0", "4294967296"}},
      {"max_connections", {"0", "1000001"}},
      {"max_request_line", {"63", "1048577"}},
      {"max_header_bytes", {"255", "16777217"}},
      {"max_headers", {"0", "10001"}},
      {"max_body_bytes", {"-1"}},
      {"socket_mode", {"\"01000\"", "\"-1\"", "660"}},
      {"access_log_format", {"\"xml\""}},
  };
  for (const auto& [key, values] : outside) {
    for (const auto& value : values) {
      steps.push_back({key + " = " + value, t.base(key + " = " + value + "\n"),
                       conf + ":3: key '" + key + "': expected"});
    }
  }
  // 2^63 is not a TOML integer at all.
  steps.push_back({"max_requests = 2^63", t.base("max_requests = 9223372036854775808\n"),
                   conf + ":3: invalid TOML"});
  if (::geteuid() == 0) {  // names are resolved only when the children change user
    steps.push_back({"an unknown user", t.base("user = \"no-such-user-h2\"\n"),
                     conf + ": key 'user': no such user \"no-such-user-h2\""});
    steps.push_back({"an unknown group", t.base("group = \"no-such-group-h2\"\n"),
                     conf + ": key 'group': no such group \"no-such-group-h2\""});
  }
  if (running_as_root_with_nobody()) {
    steps.push_back({"an access log the children cannot open",
                     t.base("access_log = \"" + dir + "/private/access.log\"\n"),
                     conf +
                         ": key 'access_log': user nobody, who the children run as, cannot "
                         "open " +
                         dir + "/private/access.log for appending: Permission denied"});
  }
  return steps;
}

std::vector<Step> valid_steps(const ReloadSeries& t, const std::string& dir) {
  const std::string sock = "unix:" + dir + "/s.sock";
  const bool prefork = t.GetParam() == "prefork";
  return {
      {"a listener added", t.with(R"(["127.0.0.1:0", "127.0.0.2:0"])"), "", "127.0.0.2"},
      {"a unix socket and a PROXY listener added",
       t.with("[\"127.0.0.1:0\", \"127.0.0.2:0\", \"" + sock +
              "\",\n  { address = \"127.0.0.3:0\", proxy_protocol = true }]"),
       "", sock},
      {"listeners swapped", t.with("[\"" + sock + "\", \"127.0.0.2:0\", \"127.0.0.1:0\"]"), "",
       "127.0.0.2"},
      {"PROXY switched on for a kept listener",
       t.with(R"([{ address = "127.0.0.1:0", proxy_protocol = true }, "127.0.0.2:0"])"), "",
       "127.0.0.2"},
      {"PROXY switched off again", t.with(R"(["127.0.0.2:0", "127.0.0.1:0"])"), "", "127.0.0.1"},
      {"listeners removed", t.base(), "", "127.0.0.1"},
      {"every listener replaced", t.with(R"(["127.0.0.4:0"])"), "", "127.0.0.4"},
      {"the first listener back", t.base(), "", "127.0.0.1"},
      {"every key at its minimum",
       t.base("max_children = 1\nmax_children_per_ip = 0\nmax_requests = 0\n"
              "graceful_timeout = 0.001\ndrain_delay = 0\nheader_timeout = 0.001\n"
              "body_timeout = 0.001\nkeepalive_timeout = 0.001\nsend_timeout = 0.001\n"
              "keepalive_requests = 1\nmax_connections = 1\nmax_request_line = 64\n"
              "max_header_bytes = 256\nmax_headers = 1\nmax_body_bytes = 0\nsocket_mode = \"0\"\n"
              "healthz_path = \"\"\nstatus_path = \"\"\nmetrics_path = \"\"\nstatus_allow = []\n"
              "trusted_proxies = []\nlog_level = \"trace\"\n"),
       "", "127.0.0.1"},
      // worker_timeout at its minimum (1 ms) declares a worker hung before it can serve: valid,
      // but tried apart so the other minima are checked serving.
      {"worker_timeout at its minimum", t.base("worker_timeout = 0.001\n"), "", "127.0.0.1", false,
       false, false},
      {"every key at its maximum",
       // workers = 1024 forks 1024 processes in prefork mode: only where it is not used.
       t.base(std::string("workers = ") + (prefork ? "1" : "1024") +
              "\nmax_children = 65536\nmax_children_per_ip = 65536\n"
              "max_requests = 9223372036854775807\ngraceful_timeout = 31536000\n"
              "drain_delay = 31536000\nworker_timeout = 31536000\nheader_timeout = 31536000\n"
              "body_timeout = 31536000\nkeepalive_timeout = 31536000\nsend_timeout = 31536000\n"
              "keepalive_requests = 4294967295\nmax_connections = 1000000\n"
              "max_request_line = 1048576\nmax_header_bytes = 16777216\nmax_headers = 10000\n"
              "max_body_bytes = 9223372036854775807\nsocket_mode = \"0777\"\n"
              "log_level = \"critical\"\naccess_log = \"stderr\"\naccess_log_format = \"json\"\n"),
       "", "127.0.0.1"},
      {"back to the start", t.base(), "", "127.0.0.1"},
  };
}

class Series {
 public:
  explicit Series(ServerProcess& server, bool prefork) : server_(server), prefork_(prefork) {
    listeners_.update(server.log(), 0);
  }

  void run(const Step& step) {
    SCOPED_TRACE(step.name);
    write(step);
    const std::vector<pid_t> before = server_.children();
    const std::size_t mark = server_.log().size();
    server_.signal(SIGHUP);
    // Applied: prefork logs the new generation; per-connection mode says the configuration is in
    // force. Either line comes after the "listening on" lines of added listeners.
    const char* outcome = !step.error.empty() ? kRefused
                          : prefork_          ? "starting generation"
                                              : "configuration reloaded";
    ASSERT_TRUE(server_.wait_for_log(outcome, LogMark(mark), kIoTimeout)) << since(mark);
    listeners_.update(server_.log(), mark);
    ASSERT_FALSE(server_.wait_exit(0ms)) << "the master died; log:\n" << since(mark);
    // The old generation accepts until it is retired, with the old listener settings (a PROXY
    // flag): the GET goes to the new generation alone.
    if (prefork_ && step.error.empty() && step.prefork_serves) {
      ASSERT_TRUE(server_.wait_for_children(1, 10s, before)) << since(mark);
    }
    if (!prefork_ || step.prefork_serves) {
      EXPECT_EQ(listeners_.get(step.serve_on), 200) << "on " << step.serve_on << "\n"
                                                    << since(mark);
    }
    if (step.error.empty()) {
      EXPECT_THAT(since(mark), Not(HasSubstr(kRefused)));
    } else {
      EXPECT_THAT(since(mark), HasSubstr(step.error));
    }
  }

 private:
  void write(const Step& step) {
    const std::string path = server_.config_path();
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
    if (step.directory) {
      std::filesystem::create_directory(path);
    } else if (!step.missing) {
      server_.dir().write("server.conf", step.config);
    }
  }

  [[nodiscard]] std::string since(std::size_t mark) const { return server_.log().substr(mark); }

  ServerProcess& server_;
  bool prefork_;
  Listeners listeners_;
};

TEST_P(ReloadSeries, EveryConfigurationIsAppliedOrRefusedAndTheMasterKeepsServing) {
  ServerProcess server({.config = base(), .listen = ""});
  const std::string dir = server.dir().path();
  std::filesystem::create_directory(dir + "/private");
  ::chmod((dir + "/private").c_str(), 0700);
  ::chmod(dir.c_str(), 0755);  // the children may run as another user (started as root)
  Series series(server, GetParam() == "prefork");
  const std::string conf = server.config_path();
  for (const Step& step : broken_steps(*this, dir, conf)) {
    series.run(step);
    if (HasFatalFailure()) return;
  }
  for (const Step& step : valid_steps(*this, dir)) {
    series.run(step);
    if (HasFatalFailure()) return;
  }
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  EXPECT_THAT(server.unexpected_errors({kRefused, "hung: no heartbeat"}), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(BothModels, ReloadSeries, ::testing::Values("prefork", "per-connection"),
                         [](const auto& param_info) {
                           return param_info.param == "prefork" ? "Prefork" : "PerConnection";
                         });

// The binary run to its end (`-t`, or a start that must fail) with `config` as its file.
struct Finished {
  int code = -1;
  std::string out;     // everything it printed
  std::string config;  // the file's path
};

Finished run_to_exit(const std::string& config, const std::vector<std::string>& args) {
  ServerProcess p({.args = args, .config = config, .listen = "", .wait_ready = false});
  const int code = exit_code(p.wait_exit(10s));
  return {code, p.log(), p.config_path()};
}

// `-t` (exit 1) and a start (exit 2) both refuse `text`; the message is `said(config path)`.
void expect_refused_by_test_and_start(const std::string& text,
                                      const std::function<std::string(const std::string&)>& said) {
  for (const bool test : {true, false}) {
    const Finished run =
        run_to_exit(text, test ? std::vector<std::string>{"-t"} : std::vector<std::string>{});
    EXPECT_EQ(run.code, test ? 1 : 2) << run.out;
    EXPECT_THAT(run.out, HasSubstr(said(run.config)));
  }
}

TEST(ConfigCheck, ARepeatedListenEntryIsRefusedByTestAndAtStartWithItsLine) {
  expect_refused_by_test_and_start(
      "listen = [\"127.0.0.1:19081\", \"127.0.0.1:19081\"]\nworkers = 1\n",
      [](const std::string& conf) {
        return conf + ":1: key 'listen': '127.0.0.1:19081' is already listed at " + conf +
               ":1; each address may appear once";
      });
}

// Root only: the children must run as someone who cannot enter the directory.
class LogAccess : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!running_as_root_with_nobody()) GTEST_SKIP() << "needs root and a user nobody";
    ::chmod(dir_.path().c_str(), 0755);
    std::filesystem::create_directory(dir_.path() + "/private");
    ::chmod((dir_.path() + "/private").c_str(), 0700);  // what /root is
  }
  TempDir dir_;
};

TEST_F(LogAccess, AnAccessLogTheWorkersCannotOpenIsAConfigurationErrorAtStartAndInTest) {
  const std::string log = dir_.path() + "/private/access.log";
  const std::string text = "listen = \"127.0.0.1:0\"\nworkers = 1\naccess_log = \"" + log + "\"\n";
  expect_refused_by_test_and_start(text, [&log](const std::string& conf) {
    return conf + ": key 'access_log': user nobody, who the children run as, cannot open " + log +
           " for appending: Permission denied";
  });
  EXPECT_FALSE(std::filesystem::exists(log)) << "-t or the refused start created the log file";
  // The same path is fine once the children may enter the directory; and as root (opt-in).
  ::chmod((dir_.path() + "/private").c_str(), 0711);
  EXPECT_EQ(run_to_exit(text, {"-t"}).code, 0);
  ::chmod((dir_.path() + "/private").c_str(), 0700);
  EXPECT_EQ(run_to_exit(text, {"-t", "--set", "user=\"root\""}).code, 0);
}

TEST_F(LogAccess, AnErrorLogTheWorkersCouldNotReopenIsRefusedAndAMissingOneIsCreatedForThem) {
  const std::string refused = dir_.path() + "/private/error.log";
  const Finished run =
      run_to_exit("listen = \"127.0.0.1:0\"\n", {"-t", "--set", "error_log=\"" + refused + "\""});
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.out, HasSubstr("key 'error_log': user nobody, who the children run as, cannot "
                                 "open " +
                                 refused + " for appending: Permission denied"));
  // A file in a directory only root may write, but nobody may search: the master creates it and
  // hands it over, so the children can reopen it. The check accepts it and creates nothing.
  const std::string fine = dir_.path() + "/logs/error.log";
  std::filesystem::create_directory(dir_.path() + "/logs");
  ::chmod((dir_.path() + "/logs").c_str(), 0755);
  EXPECT_EQ(
      run_to_exit("listen = \"127.0.0.1:0\"\n", {"-t", "--set", "error_log=\"" + fine + "\""}).code,
      0);
  EXPECT_FALSE(std::filesystem::exists(fine));
}

TEST_F(LogAccess, AReloadToAnAccessLogTheWorkersCannotOpenKeepsServing) {
  ServerProcess server({.config = "workers = 1\nlisten = \"127.0.0.1:0\"\n", .listen = ""});
  ::chmod(server.dir().path().c_str(), 0755);
  std::filesystem::create_directory(server.dir().path() + "/private");
  ::chmod((server.dir().path() + "/private").c_str(), 0700);
  const std::string log = server.dir().path() + "/private/access.log";
  server.dir().write("server.conf",
                     "workers = 1\nlisten = \"127.0.0.1:0\"\naccess_log = \"" + log + "\"\n");
  std::size_t mark = server.log().size();
  server.signal(SIGHUP);
  ASSERT_TRUE(server.wait_for_log(kRefused, LogMark(mark), kIoTimeout));
  EXPECT_THAT(server.log().substr(mark), HasSubstr("key 'access_log': user nobody"));
  EXPECT_EQ(fetch(server.port(), get_request()).status, 200);

  // A new log file in a directory the children can search but not write: the master creates it
  // for them on reload, and the new workers write to it.
  std::filesystem::create_directory(server.dir().path() + "/logs");
  ::chmod((server.dir().path() + "/logs").c_str(), 0755);
  const std::string fresh = server.dir().path() + "/logs/access.log";
  server.dir().write("server.conf",
                     "workers = 1\nlisten = \"127.0.0.1:0\"\naccess_log = \"" + fresh + "\"\n");
  const std::vector<pid_t> old_workers = server.children();
  mark = server.log().size();
  server.signal(SIGHUP);
  ASSERT_TRUE(server.wait_for_log("starting generation", LogMark(mark), kIoTimeout))
      << server.log();
  // Only the new worker, which opened the new file: the old one (still there until the new one
  // serves) would log the request elsewhere.
  ASSERT_TRUE(server.wait_for_children(1, 5s, old_workers)) << server.log().substr(mark);
  EXPECT_EQ(fetch(server.port(), get_request("/", "Connection: close\r\n")).status, 200);
  EXPECT_TRUE(wait_for_lines(fresh, 1)) << server.log().substr(mark);
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
}

}  // namespace
}  // namespace prefork::testing
