// Seeing into the real binary: /healthz through a graceful stop, the status page (HTML and
// JSON), /metrics (checked by promtool), status_allow, moved and switched-off paths, and the
// access log (combined and JSON, USR1 reopen in every worker, no line lost on stop or recycling).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/server_process.hpp"

namespace prefork::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

// Workers that write files run as root when the tests do (a TempDir is root's alone); the
// explicit opt-in only warns.
std::string file_writing_user() {
  return ::geteuid() == 0 ? "user = \"root\"\n" : "";
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A strict JSON syntax check (RFC 8259), enough to tell that a document parses.
class JsonChecker {
 public:
  static bool valid(std::string_view text) {
    JsonChecker c{text};
    c.ws();
    if (!c.value()) return false;
    c.ws();
    return c.pos_ == text.size();
  }

 private:
  explicit JsonChecker(std::string_view text) : text_(text) {}
  [[nodiscard]] bool more() const { return pos_ < text_.size(); }
  [[nodiscard]] char peek() const { return more() ? text_[pos_] : '\0'; }
  void ws() {
    while (more() && (peek() == ' ' || peek() == '\n' || peek() == '\r' || peek() == '\t')) ++pos_;
  }
  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool value() {
    switch (peek()) {
      case '{': return object();
      case '[': return array();
      case '"': return string();
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }
  bool object() {
    ++pos_;
    ws();
    if (peek() == '}') return ++pos_, true;
    for (;;) {
      ws();
      if (!string()) return false;
      ws();
      if (peek() != ':') return false;
      ++pos_;
      ws();
      if (!value()) return false;
      ws();
      if (peek() == '}') return ++pos_, true;
      if (peek() != ',') return false;
      ++pos_;
    }
  }
  bool array() {
    ++pos_;
    ws();
    if (peek() == ']') return ++pos_, true;
    for (;;) {
      ws();
      if (!value()) return false;
      ws();
      if (peek() == ']') return ++pos_, true;
      if (peek() != ',') return false;
      ++pos_;
    }
  }
  bool string() {
    if (peek() != '"') return false;
    for (++pos_; more(); ++pos_) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') return ++pos_, true;
      if (c < 0x20 || c >= 0x80) return false;  // our documents are ASCII
      if (c == '\\') {
        ++pos_;
        const char e = peek();
        if (e == 'u') {
          for (int i = 0; i < 4; ++i) {
            ++pos_;
            if (!std::isxdigit(static_cast<unsigned char>(peek()))) return false;
          }
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos || e == 0) {
          return false;
        }
      }
    }
    return false;
  }
  bool number() {
    const std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (!std::isdigit(static_cast<unsigned char>(peek()))) return false;
    if (peek() == '0') {
      ++pos_;
    } else {
      while (std::isdigit(static_cast<unsigned char>(peek()))) ++pos_;
    }
    if (peek() == '.') {
      ++pos_;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) return false;
      while (std::isdigit(static_cast<unsigned char>(peek()))) ++pos_;
    }
    return pos_ > start;
  }
  std::string_view text_;
  std::size_t pos_ = 0;
};

TEST(JsonCheckerSelfTest, TellsValidFromInvalid) {
  EXPECT_TRUE(JsonChecker::valid(R"({"a":[1,-2.5,"x\"y",true,null,{}],"b":{}})"));
  EXPECT_FALSE(JsonChecker::valid(R"({"a":1,})"));
  EXPECT_FALSE(JsonChecker::valid(R"({"a":01})"));
  EXPECT_FALSE(JsonChecker::valid("{\"a\":\"\x01\"}"));
  EXPECT_FALSE(JsonChecker::valid(R"({"a":1} x)"));
}

// The first number after `"key":` in a JSON text (for counts).
long json_number(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::stol(json.substr(at + key.size() + 3));
}

std::string get(const std::string& path, const std::string& extra = "") {
  return get_request(path, extra);
}

TEST(Healthz, OkToAnyClientHeadToo) {
  ServerProcess server({.config = "workers = 1\nstatus_allow = [\"10.0.0.0/8\"]\n"});
  const Response r = fetch(server.port(), get("/healthz"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(r.header("content-type"), "text/plain; charset=utf-8");
  EXPECT_FALSE(r.header("date").empty());
  const Response head = fetch(server.port(), "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", true);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), "3");
  EXPECT_EQ(head.body, "");
  const Response post =
      fetch(server.port(), "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.status, 405);
}

TEST(Healthz, AnswersDrainingWithCloseOnceAGracefulStopBeganWhileInFlightRequestsComplete) {
  ServerProcess server({.config = "workers = 1\ngraceful_timeout = 5000\n"});
  Client keepalive(server.port());
  keepalive.send(get("/healthz"));
  const Response before = keepalive.read_response();
  EXPECT_EQ(before.status, 200);
  EXPECT_EQ(before.header("connection"), "");
  // Two requests in flight: a health check and an ordinary one, each half sent.
  Client probe(server.port());
  probe.send("GET /healthz HTTP/1.1\r\nHost: x\r\n");
  Client slow(server.port());
  slow.send("GET /slow HTTP/1.1\r\nHost: x\r\n");
  ASSERT_TRUE(probe.wait_server_read());  // the worker holds both first halves
  ASSERT_TRUE(slow.wait_server_read());
  const auto mark = server.log_mark();
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_for_log("SIGQUIT: draining", mark));
  probe.send("\r\n");
  const Response during = probe.read_response();
  EXPECT_EQ(during.status, 503);
  EXPECT_EQ(during.body, "draining\n");
  EXPECT_EQ(during.header("connection"), "close");
  EXPECT_TRUE(probe.wait_closed());
  slow.send("\r\n");
  const Response completed = slow.read_response();
  EXPECT_EQ(completed.status, 200);
  EXPECT_EQ(completed.body, "Hello, World!");
  EXPECT_TRUE(keepalive.wait_closed());  // idle connections end at the drain
  EXPECT_TRUE(server.wait_exit(6s));
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

TEST(StatusPage, HtmlHasOneRowPerWorkerAndJsonParsesWithTheRightCounts) {
  ServerProcess server({.config = "workers = 3\nmax_connections = 512\n"});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(fetch(server.port(), get("/")).status, 200);
  const Response html = fetch(server.port(), get("/server-status"));
  ASSERT_EQ(html.status, 200);
  EXPECT_EQ(html.header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(count(html.body, "<tr class=\"worker\">"), 3U);
  EXPECT_THAT(html.body, HasSubstr("<meta http-equiv=\"refresh\" content=\"5\">"));
  EXPECT_THAT(html.body, HasSubstr("mode <b>prefork</b>"));
  for (const pid_t pid : server.children()) {
    EXPECT_THAT(html.body, HasSubstr("<td>" + std::to_string(pid) + "</td>"));
  }
  const Response json = fetch(server.port(), get("/server-status?refresh=1&format=json"));
  ASSERT_EQ(json.status, 200);
  EXPECT_EQ(json.header("content-type"), "application/json");
  EXPECT_TRUE(JsonChecker::valid(json.body)) << json.body;
  EXPECT_EQ(count(json.body, "\"slot\":"), 3U);
  EXPECT_EQ(json_number(json.body, "max_connections"), 512);
  EXPECT_EQ(json_number(json.body, "pid"), server.pid());  // the master's comes first
  const auto totals = json.body.substr(json.body.find("\"totals\":"));
  EXPECT_EQ(json_number(totals, "workers"), 3);
  // 5 hellos and the HTML page were counted before this request began.
  EXPECT_GE(json_number(totals, "requests"), 6);
  EXPECT_THAT(json.body, HasSubstr("\"mode\":\"prefork\""));
}

TEST(StatusPage, StatusAndMetricsRefuseClientsOutsideStatusAllow) {
  ServerProcess server({.config = "workers = 1\nstatus_allow = [\"10.0.0.0/8\"]\n"});
  for (const char* path : {"/server-status", "/server-status?format=json", "/metrics"}) {
    const Response r = fetch(server.port(), get(path));
    EXPECT_EQ(r.status, 403) << path;
    EXPECT_EQ(r.body, "Forbidden\n") << path;
  }
  EXPECT_EQ(fetch(server.port(), get("/healthz")).status, 200);
}

TEST(StatusPage, AnIpv4MappedClientIsMatchedAsIpv4) {
  ServerProcess server(
      {.config = "workers = 1\nstatus_allow = [\"127.0.0.1/32\"]\n", .listen = "[::]:0"});
  EXPECT_EQ(fetch(server.port(), get("/metrics")).status, 200);  // 127.0.0.1 as ::ffff:127.0.0.1
}

TEST(StatusPage, PathsCanBeMovedAndSwitchedOff) {
  ServerProcess server({.config = "workers = 1\nhealthz_path = \"/hz\"\nstatus_path = \"/st\"\n"
                                  "metrics_path = \"\"\n"});
  EXPECT_EQ(fetch(server.port(), get("/hz")).body, "ok\n");
  EXPECT_EQ(count(fetch(server.port(), get("/st")).body, "<tr class=\"worker\">"), 1U);
  for (const char* path : {"/healthz", "/server-status", "/metrics", "/st/", "/hz?x"}) {
    const Response r = fetch(server.port(), get(path));
    if (std::string(path) == "/hz?x") {
      EXPECT_EQ(r.body, "ok\n");  // the query is ignored
    } else {
      EXPECT_EQ(r.body, "Hello, World!") << path;
    }
  }
}

TEST(Metrics, PromtoolAcceptsTheExposition) {
  ServerProcess server({.config = "workers = 2\n"});
  const Response r = fetch(server.port(), get("/metrics"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(r.body, HasSubstr("# TYPE prefork_requests_total counter\n"));
  EXPECT_EQ(count(r.body, "prefork_requests_total{slot="), 2U);
  EXPECT_THAT(r.body, HasSubstr("prefork_up 1\n"));
  EXPECT_THAT(r.body, HasSubstr("prefork_draining 0\n"));
  if (::access("/usr/bin/promtool", X_OK) != 0) {
    GTEST_SKIP() << "promtool is not installed (Debian package prometheus): not checked";
  }
  TempDir dir;
  const std::string file = dir.write("metrics.txt", r.body);
  const std::string command = "/usr/bin/promtool check metrics < " + file + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[1024];
  while (const std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = ::pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out << "\n" << r.body;
  EXPECT_EQ(out, "") << r.body;  // no lint findings either
}

TEST(AccessLog, CombinedLines) {
  TempDir logs;
  const std::string path = logs.path() + "/access.log";
  ServerProcess server({.config = "workers = 1\n" + file_writing_user() + "access_log = \"" + path +
                                  "\"\naccess_log_format = \"combined\"\n"});
  Client c(server.port());
  c.send("GET /a?b=\"c\" HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\nUser-Agent: t/1\r\n\r\n");
  EXPECT_EQ(c.read_response().status, 200);
  c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.read_response(true).status, 200);
  c.send("GET / HTTP/1.1\r\n\r\n");  // no Host: 400, and the connection closes
  EXPECT_EQ(c.read_response().status, 400);
  ASSERT_TRUE(wait_for_lines(path, 3));
  const auto lines = lines_of(read_file(path));
  ASSERT_EQ(lines.size(), 3U);
  const std::regex time(R"(\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\])");
  for (const std::string& line : lines) {
    EXPECT_TRUE(std::regex_search(line, time)) << line;
    EXPECT_EQ(line.rfind("127.0.0.1 - - [", 0), 0U) << line;
  }
  EXPECT_THAT(lines[0],
              HasSubstr("] \"GET /a?b=\\x22c\\x22 HTTP/1.1\" 200 13 \"http://r/\" \"t/1\""));
  EXPECT_THAT(lines[1], HasSubstr("] \"HEAD / HTTP/1.1\" 200 0 \"-\" \"-\""));
  EXPECT_THAT(lines[2], HasSubstr("] \"GET / HTTP/1.1\" 400 12 \"-\" \"-\""));
  // Then the request time in seconds, as nginx's $request_time is usually appended.
  const std::regex request_time(R"(" \d+\.\d{6}$)");
  for (const std::string& line : lines) EXPECT_TRUE(std::regex_search(line, request_time)) << line;
}

TEST(AccessLog, JsonLinesParseAndNameTheWorker) {
  TempDir logs;
  const std::string path = logs.path() + "/access.json";
  ServerProcess server({.config = "workers = 1\n" + file_writing_user() + "access_log = \"" + path +
                                  "\"\naccess_log_format = \"json\"\n"});
  const pid_t worker = server.children().at(0);
  EXPECT_EQ(fetch(server.port(), get("/x", "User-Agent: a\"b\\c\td\xc3\xa9\r\n")).status, 200);
  EXPECT_EQ(fetch(server.port(), get("/healthz")).status, 200);
  ASSERT_TRUE(wait_for_lines(path, 2));
  const auto lines = lines_of(read_file(path));
  ASSERT_EQ(lines.size(), 2U);
  for (const std::string& line : lines) {
    EXPECT_TRUE(JsonChecker::valid(line)) << line;
    EXPECT_THAT(line, HasSubstr("\"remote_addr\":\"127.0.0.1\""));
    EXPECT_THAT(line, HasSubstr("\"pid\":" + std::to_string(worker) + ",\"slot\":0}"));
  }
  EXPECT_THAT(lines[0], HasSubstr("\"request\":\"GET /x HTTP/1.1\",\"status\":200,"
                                  "\"body_bytes_sent\":13,"));
  EXPECT_THAT(lines[0], HasSubstr("\"http_user_agent\":\"a\\\"b\\\\c\\u0009d\\u00c3\\u00a9\""));
  EXPECT_THAT(lines[1], HasSubstr("\"request\":\"GET /healthz HTTP/1.1\",\"status\":200,"
                                  "\"body_bytes_sent\":3,"));
  const std::regex request_time(R"(,"request_time":\d+\.\d{6},)");
  for (const std::string& line : lines) EXPECT_TRUE(std::regex_search(line, request_time)) << line;
}

TEST(AccessLog, Usr1MovesEveryWorkerToTheNewFile) {
  constexpr std::size_t kWorkers = 3;
  TempDir logs;
  const std::string path = logs.path() + "/access.log";
  // max_connections = 2: a worker at its cap stops accepting, so six open connections are
  // spread two per worker whatever the kernel prefers.
  ServerProcess server({.config = "workers = 3\nmax_connections = 2\n" + file_writing_user() +
                                  "access_log = \"" + path + "\"\naccess_log_format = \"json\"\n"});
  const std::vector<pid_t> workers = server.children();
  ASSERT_EQ(workers.size(), kWorkers);
  // Open connections until every worker holds one.
  std::map<pid_t, std::unique_ptr<Client>> by_worker;
  std::vector<std::unique_ptr<Client>> spare;
  for (std::size_t i = 0; i < 2 * kWorkers && by_worker.size() < kWorkers; ++i) {
    auto client = std::make_unique<Client>(server.port());
    client->send(get("/warm"));
    ASSERT_EQ(client->read_response().status, 200);
    const pid_t owner = connection_owner(workers, client->fd());
    ASSERT_NE(owner, 0);
    if (by_worker.count(owner) == 0) {
      by_worker[owner] = std::move(client);
    } else {
      spare.push_back(std::move(client));  // kept open so new ones land elsewhere
    }
  }
  ASSERT_EQ(by_worker.size(), kWorkers) << "some worker never got a connection";
  std::filesystem::rename(path, path + ".1");  // logrotate's rename, then the signal
  const auto mark = server.log_mark();
  server.signal(SIGUSR1);
  for (const pid_t w : workers) {
    ASSERT_TRUE(server.wait_for_log("(pid " + std::to_string(w) + "): SIGUSR1: log files reopened",
                                    mark, 5s));
  }
  for (auto& [pid, client] : by_worker) {
    client->send(get("/after"));
    EXPECT_EQ(client->read_response().status, 200);
  }
  ASSERT_TRUE(wait_for_lines(path, kWorkers));
  const std::string fresh = read_file(path);
  const std::string old = read_file(path + ".1");
  for (const pid_t w : workers) {
    EXPECT_EQ(count(fresh, "\"pid\":" + std::to_string(w) + ","), 1U) << "worker " << w;
  }
  EXPECT_EQ(count(fresh, "GET /after"), kWorkers);
  EXPECT_EQ(count(fresh, "GET /warm"), 0U);
  EXPECT_EQ(count(old, "GET /after"), 0U);
  EXPECT_EQ(count(old, "GET /warm"), by_worker.size() + spare.size());  // flushed at the reopen
}

// Answers `n` requests, `per_connection` on each connection.
void send_requests(std::uint16_t port, int n, int per_connection = 7) {
  int sent = 0;
  while (sent < n) {
    Client c(port);
    for (int i = 0; i < per_connection && sent < n; ++i, ++sent) {
      c.send(get("/n" + std::to_string(sent)));
      ASSERT_EQ(c.read_response().status, 200);
    }
  }
}

TEST(AccessLog, NoLineIsLostOnGracefulStop) {
  constexpr int kRequests = 300;
  TempDir logs;
  const std::string path = logs.path() + "/access.log";
  ServerProcess server(
      {.config = "workers = 2\n" + file_writing_user() + "access_log = \"" + path + "\"\n"});
  send_requests(server.port(), kRequests);
  server.signal(SIGTERM);  // at once: most lines are still in the workers' buffers
  ASSERT_TRUE(server.wait_exit(5s));
  const auto lines = lines_of(read_file(path));
  EXPECT_EQ(lines.size(), static_cast<std::size_t>(kRequests));
  std::set<std::string> targets;
  for (const std::string& line : lines) {
    const auto at = line.find("\"GET /n");
    ASSERT_NE(at, std::string::npos) << line;
    targets.insert(line.substr(at, line.find(' ', at + 5) - at));
  }
  EXPECT_EQ(targets.size(), static_cast<std::size_t>(kRequests));  // each exactly once
}

TEST(AccessLog, NoLineIsLostWhenWorkersAreRecycled) {
  constexpr int kRequests = 120;
  TempDir logs;
  const std::string path = logs.path() + "/access.log";
  ServerProcess server({.config = "workers = 1\nmax_requests = 50\n" + file_writing_user() +
                                  "access_log = \"" + path + "\"\n"});
  send_requests(server.port(), kRequests, 1);  // a recycled worker closes its keep-alives
  ASSERT_TRUE(server.wait_for_log("recycled after max_requests", kLogStart));
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_exit(5s));
  EXPECT_EQ(lines_of(read_file(path)).size(), static_cast<std::size_t>(kRequests));
}

TEST(AccessLog, StderrLinesAreWholeAndOffMeansNone) {
  ServerProcess on({.config = "workers = 1\naccess_log = \"stderr\"\n"});
  const auto mark = on.log_mark();
  EXPECT_EQ(fetch(on.port(), get("/to-stderr")).status, 200);
  EXPECT_TRUE(on.wait_for_log("\"GET /to-stderr HTTP/1.1\" 200 13 \"-\" \"-\" 0.", mark, 5s));
  ServerProcess off({.config = "workers = 1\n"});
  EXPECT_EQ(fetch(off.port(), get("/quiet")).status, 200);
  off.signal(SIGTERM);
  ASSERT_TRUE(off.wait_exit(5s));
  EXPECT_THAT(off.log(), Not(HasSubstr("/quiet")));
}

// Fills the server to its limit with two served keep-alive connections, leaves three more in
// the listen queue, and reads the status page and the metrics through the first two.
void check_a_full_queue_is_visible(const std::string& config) {
  ServerProcess server({.config = config});
  std::vector<Client> served;
  for (int i = 0; i < 2; ++i) {
    served.emplace_back(server.port());
    served.back().send(get("/"));
    ASSERT_EQ(served.back().read_response().status, 200);
  }
  std::vector<Client> waiting;
  for (int i = 0; i < 3; ++i) {
    // With a request sent: TCP_DEFER_ACCEPT queues a connection only once data has arrived.
    waiting.emplace_back(server.port());
    waiting.back().send(get("/"));
  }
  // The master looks at the queues at least once a second: ask until it has seen all three.
  const auto deadline = Clock::now() + 5s;
  Response status;
  do {
    served[0].send(get("/server-status?format=json"));
    status = served[0].read_response();
    ASSERT_EQ(status.status, 200);
  } while (status.body.find("\"queue\":3,") == std::string::npos && Clock::now() < deadline &&
           (std::this_thread::sleep_for(50ms), true));
  EXPECT_TRUE(JsonChecker::valid(status.body)) << status.body;
  EXPECT_THAT(status.body, HasSubstr("\"queue\":3,\"queue_limit\":"));
  served[1].send(get("/metrics"));
  const Response metrics = served[1].read_response();
  EXPECT_THAT(metrics.body, HasSubstr("} 3\n# HELP prefork_listen_queue_limit "));
  EXPECT_THAT(metrics.body, ::testing::ContainsRegex(
                                "prefork_listen_queue_limit\\{listener=\"[^\"]+\"\\} [1-9]"));
  served[1].send(get("/server-status"));
  EXPECT_THAT(served[1].read_response().body, HasSubstr("</td><td>3</td><td>"));
}

TEST(Saturation, AFullWorkerLeavesClientsInTheListenQueueAndBothPagesShowIt) {
  check_a_full_queue_is_visible("workers = 1\nmax_connections = 2\n");
}

TEST(Saturation, AFullPerConnectionServerLeavesClientsInTheListenQueueAndBothPagesShowIt) {
  check_a_full_queue_is_visible("mode = \"per-connection\"\nmax_children = 2\n");
}

TEST(Saturation, AWorkerFillingUpIsCounted) {
  ServerProcess server({.config = "workers = 1\nmax_connections = 2\n"});
  Client first(server.port());
  first.send(get("/metrics"));
  EXPECT_THAT(first.read_response().body, HasSubstr("prefork_max_connections_reached_total 0\n"));
  Client second(server.port());  // the worker is full once it has served this one
  second.send(get("/"));
  EXPECT_EQ(second.read_response().status, 200);
  first.send(get("/metrics"));
  EXPECT_THAT(first.read_response().body, HasSubstr("prefork_max_connections_reached_total 1\n"));
}

// Counters of a worker that is gone stay in the server-wide totals; the slot's own restart.
TEST(Saturation, TotalsSurviveAWorkersReplacement) {
  ServerProcess server({.config = "workers = 1\n"});
  for (int i = 0; i < 5; ++i) ASSERT_EQ(fetch(server.port(), get("/")).status, 200);
  const pid_t victim = server.children().at(0);
  ::kill(victim, SIGKILL);
  ASSERT_TRUE(server.wait_for_children(1, 5s));
  const auto deadline = Clock::now() + 5s;
  while (server.children() == std::vector<pid_t>{victim} && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  const Response r = fetch(server.port(), get("/metrics"));
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("prefork_requests_total{slot=\"0\"} 0\n"));  // the new worker
  EXPECT_THAT(r.body, HasSubstr("prefork_served_requests_total 5\n"));
  EXPECT_THAT(r.body, HasSubstr("prefork_accepted_connections_total 6\n"));  // this one too
  EXPECT_THAT(r.body, HasSubstr("prefork_request_duration_seconds_count 5\n"));
}

TEST(Saturation, PerConnectionChildrenCountInTheTotals) {
  ServerProcess server({.config = "mode = \"per-connection\"\n"});
  for (int i = 0; i < 3; ++i) ASSERT_EQ(fetch(server.port(), get("/")).status, 200);
  // The children have exited (or are about to): their counts were written before they answered.
  const Response r = fetch(server.port(), get("/metrics"));
  EXPECT_THAT(r.body, HasSubstr("prefork_served_requests_total 3\n"));
  EXPECT_THAT(r.body, HasSubstr("prefork_request_duration_seconds_count 3\n"));
}

}  // namespace
}  // namespace prefork::testing
