// The router and the backend's test switches: parse_switches' bounds and malformed forms, the
// router's endpoint matching, and the parser with switches on (split at every offset, so a
// target, header or delayed request cut across reads behaves like a whole one), the configured
// hello response, and the identity line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/config.hpp"
#include "worker/backend.hpp"
#include "worker/request_parser.hpp"
#include "worker/response.hpp"
#include "worker/router.hpp"

namespace prefork::worker {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::time_t kNow = 784111777;

TEST(ParseSwitches, ReadsEachSwitchWithinItsBounds) {
  EXPECT_EQ(parse_switches("status=200", 10'000).status, 200);
  EXPECT_EQ(parse_switches("status=599", 10'000).status, 599);
  EXPECT_EQ(parse_switches("delay=2", 10'000).delay, 2000);
  EXPECT_EQ(parse_switches("delay=0.5", 10'000).delay, 500);
  EXPECT_EQ(parse_switches("delay=0.125", 10'000).delay, 125);
  EXPECT_EQ(parse_switches("delay=0", 10'000).delay, 0);
  EXPECT_EQ(parse_switches("delay=11", 10'000).delay, 10'000);  // capped
  EXPECT_EQ(parse_switches("delay=184467440737095516160", 10'000).delay, 10'000);
  EXPECT_TRUE(parse_switches("echo", 10'000).echo);
  EXPECT_TRUE(parse_switches("echo=", 10'000).echo);
  const Switches all = parse_switches("a=b&echo&status=418&&delay=1&x", 10'000);
  EXPECT_TRUE(all.echo);
  EXPECT_EQ(all.status, 418);
  EXPECT_EQ(all.delay, 1000);
  EXPECT_TRUE(all.error.empty());
  EXPECT_FALSE(parse_switches("other=1&format=json", 10'000).any());
}

TEST(ParseSwitches, AMalformedSwitchIsAnErrorThatSaysWhichAndClearsTheRest) {
  for (const char* query :
       {"status=199", "status=600", "status=abc", "status=", "status", "status=0200", "status=20",
        "delay=x", "delay=", "delay", "delay=1.", "delay=.1", "delay=1.2345", "delay=-1",
        "delay=1e2", "echo=yes", "status=200&status=200", "delay=1&delay=1", "echo&echo"}) {
    const Switches s = parse_switches(std::string("echo=&") + query, 10'000);
    EXPECT_FALSE(s.error.empty()) << query;
    EXPECT_FALSE(s.echo || s.status != 0 || s.delay != 0) << query;
  }
  EXPECT_THAT(std::string(parse_switches("status=1", 10'000).error), StartsWith("status:"));
  EXPECT_THAT(std::string(parse_switches("delay=a", 10'000).error), StartsWith("delay:"));
  EXPECT_THAT(std::string(parse_switches("echo=1", 10'000).error), StartsWith("echo:"));
}

TEST(Router, MatchesWholePathsOnlyAndLeavesEndpointsWithoutSwitches) {
  Limits limits;
  limits.healthz_path = "/healthz";
  limits.metrics_path = "/metrics";
  limits.switches = true;
  const Router router(limits);
  EXPECT_EQ(router.route("/healthz").endpoint, Endpoint::kHealthz);
  EXPECT_EQ(router.route("/metrics?status=500").endpoint, Endpoint::kMetrics);
  EXPECT_FALSE(router.route("/metrics?status=500").switches.any());
  EXPECT_FALSE(router.route("/healthzz").endpoint.has_value());
  EXPECT_FALSE(router.route("/health").endpoint.has_value());
  EXPECT_FALSE(router.route("/server-status").endpoint.has_value());  // switched off
  EXPECT_FALSE(router.route("http://x/healthz").endpoint.has_value());
  EXPECT_TRUE(router.route("/server-status?format=json").switches.error.empty());
  EXPECT_EQ(router.route("/x?status=201").switches.status, 201);
  limits.switches = false;
  EXPECT_FALSE(Router(limits).route("/x?status=201").switches.any());
}

// Answers backend requests as the real handler does, without a connection.
class Backend final : public RequestHandler {
 public:
  EndpointReply respond(const EndpointRequest&, std::string& out) override {
    out += "<endpoint>";
    return {200, 10, false};
  }
  void on_response(const RequestParser&, int, std::uint64_t) override {}
};

// Feeds `pieces`, releasing a delayed request at once (as its timer would); returns the output.
std::string serve(const std::vector<std::string_view>& pieces, const Limits& limits,
                  std::vector<common::Millis>* delays = nullptr) {
  const Responses responses(kNow);
  RequestParser parser(limits, responses);
  Backend handler;
  parser.set_handler(&handler, false);
  std::string out;
  for (std::string_view piece : pieces) {
    parser.feed(piece, out);
    while (parser.phase() == Phase::kDelayed) {
      if (delays != nullptr) delays->push_back(parser.delay());
      parser.release(out);
    }
  }
  return out;
}

Limits switch_limits() {
  Limits limits;
  limits.switches = true;
  limits.max_delay = 3000;
  return limits;
}

TEST(ParserWithSwitches, ASplitTargetOrDelayAnswersAsAWholeOne) {
  const std::string input =
      "GET /a?delay=0.25&status=201 HTTP/1.1\r\nHost: x\r\n\r\n"
      "PUT /b?echo HTTP/1.1\r\nHost: x\r\nX-Order: 1\r\nContent-Length: 2\r\n\r\nhi"
      "GET /?status=99 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /?delay=9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  std::vector<common::Millis> delays;
  const std::string whole = serve({input}, switch_limits(), &delays);
  EXPECT_EQ(delays, (std::vector<common::Millis>{250, 3000}));
  EXPECT_THAT(whole, StartsWith("HTTP/1.1 201 Created\r\n"));
  EXPECT_THAT(whole,
              HasSubstr("{\"method\":\"PUT\",\"target\":\"/b?echo\",\"version\":\"HTTP/1.1\","
                        "\"headers\":[[\"Host\",\"x\"],[\"X-Order\",\"1\"],"
                        "[\"Content-Length\",\"2\"]],\"body_bytes\":2,"));
  EXPECT_THAT(whole, HasSubstr("\r\n\r\nBad Request: status: expected three digits"));
  // The delayed request that closes is the last answer: nothing for the request after it.
  EXPECT_THAT(whole, ::testing::EndsWith("Connection: close\r\n\r\nHello, World!"));
  for (std::size_t cut = 1; cut < input.size(); ++cut) {
    const std::string_view in(input);
    EXPECT_EQ(serve({in.substr(0, cut), in.substr(cut)}, switch_limits()), whole)
        << "cut at " << cut;
  }
}

TEST(ParserWithSwitches, AnyMethodGetsTheBackendAndAnInternalEndpointDoesNot) {
  Limits limits = switch_limits();
  limits.healthz_path = "/healthz";
  const std::string out = serve({"DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n"
                                 "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                                 "GET /healthz?delay=1 HTTP/1.1\r\nHost: x\r\n\r\n"},
                                limits);
  EXPECT_THAT(out, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(out, HasSubstr("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(out, HasSubstr("<endpoint>"));
}

TEST(Responses, TheConfiguredHelloIsPrebuiltWithTheIdentityLine) {
  ResponseSettings settings;
  settings.body = "pong";
  settings.content_type = "application/x-test";
  settings.status = 404;
  settings.identity_name = "X-Served-By";
  settings.identity_value = "host=h; master=1; slot=0; pid=2; generation=3";
  const Responses responses(kNow, settings);
  EXPECT_EQ(responses.hello(false, ConnectionHeader::kNone),
            "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Server: prefork-httpd\r\n"
            "X-Served-By: host=h; master=1; slot=0; pid=2; generation=3\r\n"
            "Content-Type: application/x-test\r\nContent-Length: 4\r\n\r\npong");
  EXPECT_EQ(responses.hello_body_bytes(false), 4U);
  EXPECT_EQ(responses.hello_body_bytes(true), 0U);
  EXPECT_THAT(std::string(responses.error(ErrorStatus::k400, false)),
              HasSubstr("\r\nX-Served-By: host=h;"));
  settings.status = 304;
  const Responses not_modified(kNow, settings);
  EXPECT_EQ(not_modified.hello(false, ConnectionHeader::kClose),
            "HTTP/1.1 304 Not Modified\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Server: prefork-httpd\r\n"
            "X-Served-By: host=h; master=1; slot=0; pid=2; generation=3\r\n"
            "Connection: close\r\n\r\n");
}

TEST(Responses, DefaultsAreTodaysHelloByteForByte) {
  const Responses responses(kNow);
  EXPECT_EQ(responses.hello(false, ConnectionHeader::kNone),
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: prefork-httpd\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n\r\nHello, World!");
}

TEST(Identity, NamesTheSlotOnlyForAPreforkWorker) {
  const common::Config config;
  common::ScoreboardSlot slot{};
  const common::ChildContext worker{config, {}, &slot, 3, 7};
  EXPECT_THAT(identity_of(worker),
              ::testing::MatchesRegex("host=[^ ;]+; master=[0-9]+; slot=3; pid=[0-9]+; "
                                      "generation=7"));
  const common::ChildContext child{config, {}, nullptr, 0, 2};
  EXPECT_THAT(identity_of(child),
              ::testing::MatchesRegex("host=[^ ;]+; master=[0-9]+; pid=[0-9]+; generation=2"));
}

TEST(ConfigKeys, BackendKeysHaveTheirDefaultsAndBounds) {
  const common::Config defaults;
  EXPECT_EQ(defaults.body, "Hello, World!");
  EXPECT_EQ(defaults.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(defaults.status, 200U);
  EXPECT_EQ(defaults.identity_header, "");
  EXPECT_FALSE(defaults.switches);
  EXPECT_EQ(defaults.max_delay, 10'000);
  const common::Config c = common::parse_config(
      "body = \"\"\nstatus = 599\nidentity_header = \"X-Id\"\nswitches = true\nmax_delay = 0.5\n",
      "t.conf");
  EXPECT_EQ(c.body, "");
  EXPECT_EQ(c.status, 599U);
  EXPECT_EQ(c.identity_header, "X-Id");
  EXPECT_TRUE(c.switches);
  EXPECT_EQ(c.max_delay, 500);
  for (const char* bad :
       {"status = 199", "status = 600", "identity_header = \"X:Y\"", "content_type = \"\"",
        "content_type = \" x\"", "switches = \"yes\"", "max_delay = -1", "body = 1"}) {
    EXPECT_THROW(common::parse_config(std::string(bad) + "\n", "t.conf"), common::ConfigError)
        << bad;
  }
}

}  // namespace
}  // namespace prefork::worker
