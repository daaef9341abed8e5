// The parser's routing of internal endpoints and its access-log capture (split at every offset,
// so a Host, path or User-Agent cut across reads behaves like a whole one), the access log's
// line formats, and the status page / metrics renderers over a scoreboard filled by hand.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/scoreboard.hpp"
#include "worker/access_log.hpp"
#include "worker/observability.hpp"
#include "worker/request_parser.hpp"
#include "worker/response.hpp"

namespace prefork::worker {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::time_t kNow = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT

// Records what the parser asks for; answers every endpoint with a marker.
class FakeHandler final : public RequestHandler {
 public:
  EndpointReply respond(const EndpointRequest& request, std::string& out) override {
    requests.push_back(request);
    out += "<endpoint " + std::to_string(static_cast<int>(request.endpoint)) +
           (request.json ? " json" : "") + (request.head ? " head" : "") + ">";
    return {200, 2, request.connection == ConnectionHeader::kClose || force_close};
  }
  void on_response(const RequestParser& parser, int status, std::uint64_t bytes) override {
    logged.push_back(std::string(parser.request_line()) + "|" + std::to_string(status) + "|" +
                     std::to_string(bytes) + "|" + std::string(parser.referer()) + "|" +
                     std::string(parser.user_agent()));
  }
  std::vector<EndpointRequest> requests;
  std::vector<std::string> logged;
  bool force_close = false;
};

Limits endpoint_limits() {
  Limits limits;
  limits.healthz_path = "/healthz";
  limits.status_path = "/server-status";
  limits.metrics_path = "/metrics";
  return limits;
}

struct Fed {
  std::string out;
  std::vector<EndpointRequest> requests;
  std::vector<std::string> logged;
  int last_status = 0;
};

Fed run(const std::vector<std::string_view>& pieces, const Limits& limits, bool log = true,
        bool attach = true) {
  const Responses responses(kNow);
  RequestParser parser(limits, responses);
  FakeHandler handler;
  if (attach) parser.set_handler(&handler, log);
  Fed r;
  for (std::string_view piece : pieces) parser.feed(piece, r.out);
  r.requests = handler.requests;
  r.logged = handler.logged;
  r.last_status = parser.last_status();
  return r;
}

// Whole, then split in two at every offset, then byte by byte: the same result each time.
Fed run_split(const std::string& input, const Limits& limits, bool log = true) {
  const Fed whole = run({input}, limits, log);
  for (std::size_t cut = 1; cut < input.size(); ++cut) {
    const std::string_view in(input);
    const Fed split = run({in.substr(0, cut), in.substr(cut)}, limits, log);
    EXPECT_EQ(split.out, whole.out) << "cut at " << cut;
    EXPECT_EQ(split.logged, whole.logged) << "cut at " << cut;
    EXPECT_EQ(split.requests.size(), whole.requests.size()) << "cut at " << cut;
  }
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < input.size(); ++i)
    bytes.push_back(std::string_view(input).substr(i, 1));
  const Fed byte_by_byte = run(bytes, limits, log);
  EXPECT_EQ(byte_by_byte.out, whole.out);
  EXPECT_EQ(byte_by_byte.logged, whole.logged);
  return whole;
}

std::string request(const std::string& method, const std::string& target,
                    const std::string& extra = "") {
  return method + " " + target + " HTTP/1.1\r\nHost: example.com:8080\r\n" + extra + "\r\n";
}

TEST(EndpointRouting, EachPathGoesToItsEndpoint) {
  const Limits limits = endpoint_limits();
  const Fed r = run_split(request("GET", "/healthz") + request("HEAD", "/server-status") +
                              request("GET", "/metrics") + request("GET", "/"),
                          limits);
  ASSERT_EQ(r.requests.size(), 3U);
  EXPECT_EQ(r.requests[0].endpoint, Endpoint::kHealthz);
  EXPECT_FALSE(r.requests[0].head);
  EXPECT_EQ(r.requests[1].endpoint, Endpoint::kStatus);
  EXPECT_TRUE(r.requests[1].head);
  EXPECT_EQ(r.requests[2].endpoint, Endpoint::kMetrics);
  EXPECT_THAT(r.out, HasSubstr("Hello, World!"));  // "/" is no endpoint
  EXPECT_EQ(r.last_status, 200);
}

TEST(EndpointRouting, OnlyExactPathsMatchAndOnlyFormatJsonCounts) {
  const Limits limits = endpoint_limits();
  for (const char* target : {"/healthzx", "/health", "/healthz/", "/Healthz", "//healthz",
                             "/server-statu", "/metrics.txt", "http://x/healthz"}) {
    const Fed r = run_split(request("GET", target), limits);
    EXPECT_TRUE(r.requests.empty()) << target;
    EXPECT_THAT(r.out, HasSubstr("Hello, World!")) << target;
  }
  const Fed json = run_split(request("GET", "/server-status?a=1&format=json&b"), limits);
  ASSERT_EQ(json.requests.size(), 1U);
  EXPECT_TRUE(json.requests[0].json);
  const Fed not_json = run_split(request("GET", "/server-status?format=jsonx"), limits);
  ASSERT_EQ(not_json.requests.size(), 1U);
  EXPECT_FALSE(not_json.requests[0].json);
  const Fed query = run_split(request("GET", "/healthz?probe=1"), limits);
  ASSERT_EQ(query.requests.size(), 1U);
  EXPECT_EQ(query.requests[0].endpoint, Endpoint::kHealthz);
}

TEST(EndpointRouting, OtherMethodsGetTheUsualAnswers) {
  const Limits limits = endpoint_limits();
  const Fed post = run_split(request("POST", "/healthz", "Content-Length: 0\r\n"), limits);
  EXPECT_TRUE(post.requests.empty());
  EXPECT_THAT(post.out, HasSubstr("405 Method Not Allowed"));
  const Fed options = run_split(request("OPTIONS", "/metrics"), limits);
  EXPECT_TRUE(options.requests.empty());
  EXPECT_THAT(options.out, HasSubstr("204 No Content"));
}

TEST(EndpointRouting, SwitchedOffPathsAndNoHandlerAnswerHello) {
  Limits limits = endpoint_limits();
  limits.status_path = "";
  const Fed off = run_split(request("GET", "/server-status"), limits);
  EXPECT_TRUE(off.requests.empty());
  EXPECT_THAT(off.out, HasSubstr("Hello, World!"));
  const Fed no_handler = run({request("GET", "/healthz")}, limits, false, /*attach=*/false);
  EXPECT_THAT(no_handler.out, HasSubstr("Hello, World!"));
}

TEST(EndpointRouting, AnEndpointThatClosesEndsTheConnection) {
  const Limits limits = endpoint_limits();
  const Responses responses(kNow);
  RequestParser parser(limits, responses);
  FakeHandler handler;
  handler.force_close = true;
  parser.set_handler(&handler, false);
  std::string out;
  parser.feed(request("GET", "/healthz") + request("GET", "/"), out);
  EXPECT_TRUE(parser.closing());
  EXPECT_EQ(handler.requests.size(), 1U);
  EXPECT_THAT(out, Not(HasSubstr("Hello, World!")));  // nothing after the closing response
}

TEST(AccessCapture, RequestLineRefererAndUserAgentOfEveryResponse) {
  const Limits limits = endpoint_limits();
  const Fed r =
      run_split(request("GET", "/a?b=c", "referer: http://ref/\r\nUser-Agent: curl/8 (x)\r\n") +
                    request("HEAD", "/h") + "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n",
                limits);
  ASSERT_EQ(r.logged.size(), 3U);
  EXPECT_EQ(r.logged[0], "GET /a?b=c HTTP/1.1|200|13|http://ref/|curl/8 (x)");
  EXPECT_EQ(r.logged[1], "HEAD /h HTTP/1.1|200|0||");  // nothing left over from the first
  EXPECT_EQ(r.logged[2], "GET / HTTP/1.1|400|12||");
}

TEST(AccessCapture, AnUnknownMethodIsLoggedOnceEvenWhenItStartsWithAKnownOne) {
  const Fed r = run_split(request("GETX", "/a"), endpoint_limits());
  ASSERT_EQ(r.logged.size(), 1U);
  EXPECT_EQ(r.logged[0], "GETX /a HTTP/1.1|501|16||");
}

TEST(AccessCapture, CapturedFieldsAreBounded) {
  Limits limits = endpoint_limits();
  limits.max_header_bytes = 8192;
  const Fed r =
      run({request("GET", "/", "User-Agent: " + std::string(3000, 'u') + "\r\n")}, limits);
  ASSERT_EQ(r.logged.size(), 1U);
  EXPECT_EQ(r.logged[0], "GET / HTTP/1.1|200|13||" + std::string(512, 'u'));
}

TEST(AccessCapture, NothingIsCapturedWhenLoggingIsOff) {
  const Fed r = run({request("GET", "/", "User-Agent: x\r\n")}, endpoint_limits(), /*log=*/false);
  EXPECT_TRUE(r.logged.empty());
}

TEST(SplitHeaders, HostAndExpectCutAnywhereAreCheckedWhole) {
  const Limits limits = endpoint_limits();
  EXPECT_EQ(run_split("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", limits).last_status, 200);
  EXPECT_EQ(run_split("GET / HTTP/1.1\r\nHost: exa mple\r\n\r\n", limits).last_status, 400);
  EXPECT_EQ(run_split("GET / HTTP/1.1\r\nHOST: a\r\nhost: b\r\n\r\n", limits).last_status, 400);
  EXPECT_EQ(run_split("GET / HTTP/1.1\r\nHost: " + std::string(300, 'a') + "\r\n\r\n", limits)
                .last_status,
            400);
  EXPECT_EQ(run_split("GET / HTTP/1.1\r\nHost: " + std::string(250, 'a') + ":80\r\n\r\n", limits)
                .last_status,
            200);
  EXPECT_EQ(run_split("POST / HTTP/1.1\r\nHost: a\r\nExpect: \t100-Continue \r\n"
                      "Content-Length: 0\r\n\r\n",
                      limits)
                .last_status,
            405);
  EXPECT_EQ(
      run_split("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n\r\n", limits).last_status,
      417);
  EXPECT_EQ(run_split("GET / HTTP/1.1\r\nHost: a\r\nExpect:\r\n\r\n", limits).last_status, 417);
  EXPECT_EQ(run_split("GET / HTTP/1.1\r\nHost: a\r\nExpectation: x\r\nHostx: y\r\n\r\n", limits)
                .last_status,
            200);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class AccessLogFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/access-log-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/access.log";
    ::setenv("TZ", "UTC", 1);
    ::tzset();
  }
  void TearDown() override {
    std::remove(path_.c_str());
    std::remove((path_ + ".1").c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_;
  std::string path_;
};

TEST_F(AccessLogFile, CombinedLinesAreEscapedAndWrittenOnFlush) {
  AccessLog log(path_, AccessLogFormat::kCombined, 2, 4242);
  log.log({"192.0.2.7", "GET /a\"b\\c\x01 HTTP/1.1", 200, 13, "", "ua \xff", 1'234'567}, kNow);
  EXPECT_EQ(read_all(path_), "");  // buffered
  log.flush();
  EXPECT_EQ(read_all(path_),
            "192.0.2.7 - - [06/Nov/1994:08:49:37 +0000] \"GET /a\\x22b\\x5cc\\x01 HTTP/1.1\" "
            "200 13 \"-\" \"ua \\xff\" 1.234567\n");
}

TEST_F(AccessLogFile, JsonLinesAreValidAndNameTheWorker) {
  AccessLog log(path_, AccessLogFormat::kJson, 1, 77);
  log.log({"::1", "GET /\"x\" HTTP/1.1", 404, 5, "r\n", "\xc3\xa9", 42}, kNow);
  log.flush();
  EXPECT_EQ(read_all(path_),
            "{\"time\":\"1994-11-06T08:49:37+00:00\",\"remote_addr\":\"::1\","
            "\"request\":\"GET /\\\"x\\\" HTTP/1.1\",\"status\":404,\"body_bytes_sent\":5,"
            "\"http_referer\":\"r\\u000a\",\"http_user_agent\":\"\\u00c3\\u00a9\","
            "\"request_time\":0.000042,\"pid\":77,\"slot\":1}\n");
}

TEST_F(AccessLogFile, AFullBufferIsWrittenAsWholeLinesAndTickFlushesOnceASecond) {
  AccessLog log(path_, AccessLogFormat::kCombined, 0, 1);
  const std::string ua(400, 'a');
  std::size_t lines = 0;
  while (read_all(path_).empty()) {
    log.log({"10.0.0.1", "GET / HTTP/1.1", 200, 13, "", ua}, kNow);
    ++lines;
    ASSERT_LT(lines, 1000U);
  }
  const std::string written = read_all(path_);
  EXPECT_LE(written.size(), AccessLog::kBufferSize);
  EXPECT_EQ(written.back(), '\n');
  EXPECT_GT(log.buffered(), 0U);
  const common::Millis now = common::monotonic_ms();
  log.tick(now);  // less than a second since the flush: nothing
  EXPECT_GT(log.buffered(), 0U);
  log.tick(now + AccessLog::kFlushIntervalMs);
  EXPECT_EQ(log.buffered(), 0U);
  const std::string all = read_all(path_);
  EXPECT_EQ(static_cast<std::size_t>(std::count(all.begin(), all.end(), '\n')), lines);
}

TEST_F(AccessLogFile, ReopenFlushesIntoTheOldFileAndStartsTheNewOne) {
  AccessLog log(path_, AccessLogFormat::kCombined, 0, 1);
  log.log({"10.0.0.1", "GET /old HTTP/1.1", 200, 13, "", ""}, kNow);
  ASSERT_EQ(std::rename(path_.c_str(), (path_ + ".1").c_str()), 0);
  log.reopen();
  log.log({"10.0.0.1", "GET /new HTTP/1.1", 200, 13, "", ""}, kNow);
  log.flush();
  EXPECT_THAT(read_all(path_ + ".1"), HasSubstr("GET /old"));
  EXPECT_THAT(read_all(path_ + ".1"), Not(HasSubstr("GET /new")));
  EXPECT_THAT(read_all(path_), HasSubstr("GET /new"));
}

StatusSnapshot sample_snapshot(common::Scoreboard& board) {
  common::ScoreboardHeader& h = board.header();
  h.master_pid = 100;
  h.master_started_ms = 1'000'000;
  h.generation = 2;
  h.cap_hits = 3;
  for (std::size_t i = 0; i < 2; ++i) {
    common::ScoreboardSlot& slot = board.slot(i);
    slot.pid = static_cast<std::int32_t>(101 + i);
    slot.generation = 2;
    slot.state = i == 0 ? common::WorkerState::kIdle : common::WorkerState::kBusy;
    slot.served.requests = 10 * (i + 1);
    slot.served.record_duration(200 * (i + 1), 10 * (i + 1));  // 0.2 ms, 0.4 ms
    slot.connections = static_cast<std::uint32_t>(i + 1);
    slot.started_ms = 1'000'500;
  }
  board.slot(1).served.at_capacity = 2;
  h.retired.requests = 5;  // workers replaced earlier
  h.retired.record_duration(30'000'000, 5);
  h.listen_queues[0] = common::ScoreboardHeader::pack_queue(3, 128);
  board.slot(1).restarts = 4;
  board.slot(1).last_exit_status = 9;  // killed by SIGKILL
  common::Config config;
  config.workers = 3;
  config.mode = common::Mode::kPerConnection;
  return take_snapshot(config, &board, {"127.0.0.1:8080"}, false, 1'090'000);
}

TEST(StatusPage, HtmlHasOneRowPerLiveWorkerAndTheTotals) {
  common::Scoreboard board(3);
  const std::string html = render_status_html(sample_snapshot(board));
  std::size_t rows = 0;
  for (std::size_t at = html.find("<tr class=\"worker\">"); at != std::string::npos;
       at = html.find("<tr class=\"worker\">", at + 1)) {
    ++rows;
  }
  EXPECT_EQ(rows, 2U);  // the third slot is empty
  EXPECT_THAT(html, HasSubstr("<meta http-equiv=\"refresh\" content=\"5\">"));
  EXPECT_THAT(html, HasSubstr("killed by SIGKILL"));
  EXPECT_THAT(html, HasSubstr("<td>30</td>"));  // total requests
  EXPECT_THAT(html, HasSubstr("Cap reached</dt><dd>3 times"));
  EXPECT_THAT(html, HasSubstr("00:01:29"));  // worker uptime
  EXPECT_THAT(html, HasSubstr("<td class=\"l\">127.0.0.1:8080</td><td>3</td><td>128</td>"));
  EXPECT_THAT(html, HasSubstr("Requests served since start</dt><dd>35</dd>"));
  EXPECT_THAT(html, HasSubstr("max_connections</dt><dd>2 times"));
}

TEST(StatusPage, JsonCarriesTheSameData) {
  common::Scoreboard board(3);
  const std::string json = render_status_json(sample_snapshot(board));
  EXPECT_THAT(json, HasSubstr("\"mode\":\"per-connection\""));
  EXPECT_THAT(json, HasSubstr("\"totals\":{\"workers\":2,\"requests\":30,\"connections\":3,"
                              "\"restarts\":4}"));
  EXPECT_THAT(json, HasSubstr("\"pid\":102,\"generation\":2,\"state\":\"busy\""));
  EXPECT_THAT(json, HasSubstr("\"last_exit\":\"killed by SIGKILL\""));
  EXPECT_THAT(json, HasSubstr("\"last_exit\":null"));
  EXPECT_THAT(json, HasSubstr("\"limits\":{\"workers\":3,"));
  EXPECT_THAT(json, HasSubstr("\"listeners\":[{\"address\":\"127.0.0.1:8080\",\"queue\":3,"
                              "\"queue_limit\":128}]"));
  EXPECT_THAT(json, HasSubstr("\"served\":{\"requests\":35,\"connections\":0,"
                              "\"max_connections_reached\":2,"));
  EXPECT_THAT(json, HasSubstr("\"max_connections_reached\":2,\"last_exit\""));  // slot 1
}

TEST(Metrics, EveryFamilyHasHelpAndTypeAndSamplesPerSlot) {
  common::Scoreboard board(3);
  const std::string text = render_metrics(sample_snapshot(board));
  EXPECT_THAT(text, HasSubstr("# TYPE prefork_requests_total counter\n"
                              "prefork_requests_total{slot=\"0\"} 10\n"
                              "prefork_requests_total{slot=\"1\"} 20\n"));
  EXPECT_THAT(text, HasSubstr("prefork_workers{state=\"busy\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("prefork_children_cap_hits_total 3\n"));
  EXPECT_THAT(text, HasSubstr("prefork_start_time_seconds 1000.000\n"));
  EXPECT_THAT(text, HasSubstr("prefork_listen_queue{listener=\"127.0.0.1:8080\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("prefork_listen_queue_limit{listener=\"127.0.0.1:8080\"} 128\n"));
  EXPECT_THAT(text, HasSubstr("prefork_served_requests_total 35\n"));
  EXPECT_THAT(text, HasSubstr("prefork_max_connections_reached_total 2\n"));
  // Cumulative buckets: 10 at 0.2 ms (le 0.00025), 20 at 0.4 ms (le 0.0005), 5 at 30 s (+Inf).
  EXPECT_THAT(text, HasSubstr("prefork_request_duration_seconds_bucket{le=\"0.0001\"} 0\n"
                              "prefork_request_duration_seconds_bucket{le=\"0.00025\"} 10\n"
                              "prefork_request_duration_seconds_bucket{le=\"0.0005\"} 30\n"));
  EXPECT_THAT(text, HasSubstr("prefork_request_duration_seconds_bucket{le=\"10\"} 30\n"
                              "prefork_request_duration_seconds_bucket{le=\"+Inf\"} 35\n"
                              "prefork_request_duration_seconds_sum 150.010000\n"
                              "prefork_request_duration_seconds_count 35\n"));
  // Every sample's family was announced with HELP and TYPE before it.
  std::istringstream lines(text);
  std::string line;
  std::string family;
  while (std::getline(lines, line)) {
    if (line.rfind("# TYPE ", 0) == 0) family = line.substr(7, line.find(' ', 7) - 7);
    if (line.empty() || line[0] == '#') continue;
    EXPECT_EQ(line.rfind(family, 0), 0U) << line;
  }
}

TEST(Scoreboard, AnExitedWorkersCountsMoveToTheTotalsAndStayCounted) {
  common::Scoreboard board(2);
  board.slot(0).pid = 10;
  board.slot(0).served.requests = 7;
  board.slot(0).served.record_duration(50);
  board.slot(1).pid = 11;
  board.slot(1).served.requests = 1;
  EXPECT_EQ(board.served_totals().requests, 8U);
  board.fold_served(0);  // the master reaped slot 0's worker
  EXPECT_EQ(board.slot(0).pid, 0);
  EXPECT_EQ(board.slot(0).served.requests, 0U);
  const common::ServedTotals after = board.served_totals();
  EXPECT_EQ(after.requests, 8U);
  EXPECT_EQ(after.duration_buckets[0], 1U);
  EXPECT_EQ(after.duration_sum_us, 50U);
  EXPECT_EQ(board.header().fold_seq, 2U);  // even: no fold under way
}

}  // namespace
}  // namespace prefork::worker
