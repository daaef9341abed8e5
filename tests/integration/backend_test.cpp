// The backend people reach for (issue 14), against the real binary: the response settings, the
// identity header in both process models (and its generation after a reload), every test
// switch with its bounds and malformed forms, the seed's experiment (two ?delay=2 at once are
// answered together, in prefork mode with one worker and with a child per connection), and a
// graceful stop that waits for a delayed request.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/server_process.hpp"
#include "tests/support/shared_server_suite.hpp"

namespace prefork::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kSwitchesOn = {"--set", "switches=true"};

// "host=web1; master=12; slot=0; pid=34; generation=1" as a map.
std::map<std::string, std::string> identity_fields(const std::string& value) {
  std::map<std::string, std::string> out;
  static const std::regex kPair(R"(([a-z]+)=([^;]*)(; |$))");
  for (std::sregex_iterator it(value.begin(), value.end(), kPair), end; it != end; ++it) {
    out[(*it)[1].str()] = (*it)[2].str();
  }
  return out;
}

std::string host_name() {
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

// One worker in prefork mode, so that every request meets the same process.
std::vector<std::string> server_args(Model model, std::vector<std::string> extra) {
  std::vector<std::string> args = model_args(model);
  if (model == Model::kPrefork) args.insert(args.end(), {"--workers", "1"});
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// ---- response settings -------------------------------------------------------------------------

TEST(BackendSettings, BodyContentTypeAndStatusShapeTheAnswerToEveryGetAndHead) {
  ServerProcess server({.config = "workers = 1\nbody = \"pong\\n\"\n"
                                  "content_type = \"application/x-test\"\nstatus = 503\n"});
  const Response r = fetch(server.port(), get_request("/any?x=1"));
  EXPECT_EQ(r.status_line, "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(r.header("content-type"), "application/x-test");
  EXPECT_EQ(r.header("content-length"), "5");
  EXPECT_EQ(r.body, "pong\n");
  Client c(server.port());
  c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
  const Response head = c.read_response(/*head_request=*/true);
  EXPECT_EQ(head.status, 503);
  EXPECT_EQ(head.header("content-length"), "5");
  EXPECT_EQ(head.body, "");
  // Internal endpoints keep their own answers; without switches the query means nothing.
  EXPECT_EQ(fetch(server.port(), get_request("/healthz")).body, "ok\n");
  EXPECT_EQ(fetch(server.port(), get_request("/?status=200")).status, 503);
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

TEST(BackendSettings, Status204HasNoBodyAndNoContentLength) {
  ServerProcess server({.config = "workers = 1\nstatus = 204\n"});
  Client c(server.port());
  c.send(get_request());
  const Response r = c.read_response(/*head_request=*/true);  // nothing follows the head
  EXPECT_EQ(r.status_line, "HTTP/1.1 204 No Content");
  EXPECT_EQ(r.header("content-length"), "");
  EXPECT_EQ(r.header("content-type"), "");
  c.send(get_request());  // the connection goes on: no stray body bytes came before this answer
  EXPECT_EQ(c.read_response(true).status, 204);
}

TEST(BackendSettings, OutOfRangeValuesAreConfigurationErrors) {
  for (const std::string& bad :
       {std::string("status = 199"), std::string("status = 600"),
        std::string("identity_header = \"X Served\""), std::string("content_type = \"a\\r\\nb\""),
        std::string("switches = 1"), std::string("max_delay = -1")}) {
    ServerProcess server({.config = bad + "\n", .wait_ready = false});
    EXPECT_EQ(exit_code(server.wait_exit(10s)), 2) << bad;
    const std::string key = bad.substr(0, bad.find(' '));
    EXPECT_THAT(server.log(), HasSubstr("key '" + key + "'")) << bad;
  }
}

// ---- identity ----------------------------------------------------------------------------------

class Identity : public ::testing::TestWithParam<Model> {};

TEST_P(Identity, NamesHostMasterSlotPidAndGenerationWhichAReloadAdvances) {
  const bool prefork = GetParam() == Model::kPrefork;
  ServerProcess server({.args = server_args(GetParam(), {"--set", "identity_header=X-Served-By"})});
  Client c(server.port());
  c.send(get_request());
  const Response first = c.read_response();
  auto fields = identity_fields(first.header("x-served-by"));
  EXPECT_EQ(fields["host"], host_name());
  EXPECT_EQ(fields["master"], std::to_string(server.pid()));
  // While the keep-alive connection is open its worker (or child) is alive to be checked.
  EXPECT_THAT(server.children(), Contains(std::stoi(fields["pid"])));
  if (prefork) {
    EXPECT_EQ(fields["slot"], "0");
  } else {
    EXPECT_EQ(fields.count("slot"), 0U) << "per-connection children have no slot";
  }
  EXPECT_EQ(fields["generation"], "1");
  // Errors carry it too.
  c.send("GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(c.read_response().header("x-served-by"), first.header("x-served-by"));

  const std::vector<pid_t> old_children = server.children();
  const auto mark = server.log_mark();
  server.signal(SIGHUP);
  ASSERT_TRUE(
      server.wait_for_log(prefork ? "generation 2 is serving" : "configuration reloaded", mark))
      << server.log_since(mark);
  if (prefork) {
    ASSERT_TRUE(server.wait_for_children(1, 10s, old_children));
  }
  const Response after = fetch(server.port(), get_request());
  fields = identity_fields(after.header("x-served-by"));
  EXPECT_EQ(fields["generation"], "2") << after.header("x-served-by");
  EXPECT_EQ(fields["master"], std::to_string(server.pid()));
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

// ---- what a reload changes in the answer ------------------------------------------------------

class AnswerReload : public ::testing::TestWithParam<Model> {
 protected:
  // Reloads `server` with `config` and waits until the next connection meets the result:
  // applied (the new generation serves) or refused (the running one goes on).
  void reload(ServerProcess& server, const std::string& config, bool applied) {
    const bool prefork = GetParam() == Model::kPrefork;
    const std::vector<pid_t> old_children = server.children();
    server.dir().write("server.conf", config);
    const auto mark = server.log_mark();
    server.signal(SIGHUP);
    if (applied) ++generation_;
    const std::string outcome =
        !applied  ? "reload failed, keeping the running configuration"
        : prefork ? "generation " + std::to_string(generation_) + " is serving"
                  : "configuration reloaded (generation " + std::to_string(generation_) + ")";
    ASSERT_TRUE(server.wait_for_log(outcome, mark)) << server.log_since(mark);
    if (prefork && applied) {
      ASSERT_TRUE(server.wait_for_children(1, 10s, old_children));
    }
  }

  static void expect_answer(const ServerProcess& server, int status, const std::string& type,
                            const std::string& body) {
    const Response r = fetch(server.port(), get_request());
    EXPECT_EQ(r.status, status) << r.head;
    EXPECT_EQ(r.header("content-type"), type) << r.head;
    EXPECT_EQ(r.body, body);
  }

 private:
  int generation_ = 1;
};

// Each configuration generation answers with its own status, type and body, also in
// per-connection mode, where every child reads the answer its master built for the generation
// before fork; a refused reload leaves the running answer as it was.
TEST_P(AnswerReload, EachGenerationAnswersWithItsOwnSettingsAndARefusedOneChangesNothing) {
  const std::string first = "body = \"first\"\n";
  ServerProcess server({.args = server_args(GetParam(), {}), .config = first});
  expect_answer(server, 200, "text/plain; charset=utf-8", "first");

  reload(server, "body = \"second\"\nstatus = 203\ncontent_type = \"text/x-second\"\n", true);
  expect_answer(server, 203, "text/x-second", "second");

  reload(server, "body = \"third\"\nstatus = 600\n", false);
  expect_answer(server, 203, "text/x-second", "second");

  reload(server, "body = \"third\"\ncontent_type = \"text/x-third\"\n", true);
  expect_answer(server, 200, "text/x-third", "third");

  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  EXPECT_THAT(server.unexpected_errors({"reload failed, keeping the running configuration"}),
              IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(BothModes, AnswerReload, kBothModels, model_param_name);

TEST(IdentityOff, NoHeaderByDefault) {
  ServerProcess server({.args = {"--workers", "1"}});
  const Response r = fetch(server.port(), get_request());
  EXPECT_THAT(r.head, Not(HasSubstr("X-Served-By")));
  EXPECT_EQ(r.headers.size(), 4U) << r.head;  // Date, Server, Content-Type, Content-Length
}

INSTANTIATE_TEST_SUITE_P(BothModes, Identity, kBothModels, model_param_name);

// ---- switches ----------------------------------------------------------------------------------

class Switches : public SharedServerSuite<Switches> {
 public:
  static ServerOptions server_options() {
    return {.config =
                "workers = 1\nswitches = true\nmax_delay = 1\nidentity_header = \"X-Id\"\n"
                "trusted_proxies = [\"127.0.0.1/32\"]\n"};
  }
};

TEST_F(Switches, StatusAnswersEveryValidStatusWithTheConfiguredBody) {
  Client c(port());
  for (const int status : {200, 201, 299, 404, 418, 500, 503, 599}) {
    c.send(get_request("/x?status=" + std::to_string(status)));
    const Response r = c.read_response();
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.body, "Hello, World!") << status;
    EXPECT_EQ(r.header("connection"), "") << "the connection stays open after " << status;
  }
  c.send(get_request("/?status=503"));
  EXPECT_EQ(c.read_response().status_line, "HTTP/1.1 503 Service Unavailable");
  for (const int status : {204, 304}) {
    c.send(get_request("/?status=" + std::to_string(status)));
    const Response r = c.read_response(/*head_request=*/true);
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.header("content-length"), "") << status;
  }
  c.send("HEAD /?status=500 HTTP/1.1\r\nHost: x\r\n\r\n");
  const Response head = c.read_response(/*head_request=*/true);
  EXPECT_EQ(head.status, 500);
  EXPECT_EQ(head.header("content-length"), "13");
  c.send(get_request("/?other=1&status=201&x"));  // other parameters are ignored
  EXPECT_EQ(c.read_response().status, 201);
}

TEST_F(Switches, MalformedSwitchesAreA400ThatSaysWhyAndKeepsTheConnection) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"status=199", "status: expected three digits from 200 to 599"},
      {"status=600", "status: expected three digits from 200 to 599"},
      {"status=100", "status: expected three digits from 200 to 599"},
      {"status=2000", "status: expected three digits from 200 to 599"},
      {"status=20", "status: expected three digits from 200 to 599"},
      {"status=abc", "status: expected three digits from 200 to 599"},
      {"status=%32%30%30", "status: expected three digits from 200 to 599"},
      {"status=", "status: expected three digits from 200 to 599"},
      {"status", "status: expected three digits from 200 to 599"},
      {"status=+200", "status: expected three digits from 200 to 599"},
      {"status=200&status=201", "status: given twice"},
      {"delay=x", "delay: expected seconds such as 2 or 0.5"},
      {"delay=-1", "delay: expected seconds such as 2 or 0.5"},
      {"delay=", "delay: expected seconds such as 2 or 0.5"},
      {"delay", "delay: expected seconds such as 2 or 0.5"},
      {"delay=1.", "delay: expected seconds such as 2 or 0.5"},
      {"delay=.5", "delay: expected seconds such as 2 or 0.5"},
      {"delay=0.0001", "delay: expected seconds such as 2 or 0.5"},
      {"delay=1e3", "delay: expected seconds such as 2 or 0.5"},
      {"delay=1&delay=1", "delay: given twice"},
      {"echo=1", "echo: takes no value"},
      {"echo&echo", "echo: given twice"},
  };
  Client c(port());
  for (const auto& [query, reason] : cases) {
    c.send(get_request("/?" + query));
    const Response r = c.read_response();
    EXPECT_EQ(r.status_line, "HTTP/1.1 400 Bad Request") << query;
    EXPECT_EQ(r.body, "Bad Request: " + reason + "\n") << query;
    EXPECT_EQ(r.header("connection"), "") << query;
  }
  c.send(get_request("/"));
  EXPECT_EQ(c.read_response().body, "Hello, World!");
}

TEST_F(Switches, DelayWaitsThatLongAndIsCappedByMaxDelay) {
  Client c(port());
  auto start = Clock::now();
  c.send(get_request("/?delay=0.3"));
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_GE(Clock::now() - start, 300ms);
  start = Clock::now();
  c.send(get_request("/?delay=3600&status=202"));  // max_delay = 1
  EXPECT_EQ(c.read_response().status, 202);
  const auto capped = Clock::now() - start;
  EXPECT_GE(capped, 1s);
  EXPECT_LT(capped, 2500ms);
  start = Clock::now();
  c.send(get_request("/?delay=99999999999999999999999"));  // no overflow: capped too
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_GE(Clock::now() - start, 1s);
  start = Clock::now();
  c.send(get_request("/?delay=0"));
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_LT(Clock::now() - start, 900ms);
}

TEST_F(Switches, PipelinedRequestsAfterADelayedOneAreAnsweredAfterItInOrder) {
  Client c(port());
  const auto start = Clock::now();
  c.send(get_request("/?delay=0.5&status=201") + get_request("/?status=202") + get_request("/"));
  EXPECT_EQ(c.read_response().status, 201);
  EXPECT_GE(Clock::now() - start, 500ms);
  EXPECT_EQ(c.read_response().status, 202);
  EXPECT_EQ(c.read_response().status, 200);
}

TEST_F(Switches, ADelayedRequestDoesNotHoldUpTheWorkersOtherConnections) {
  Client slow(port());
  slow.send(get_request("/?delay=1"));
  ASSERT_TRUE(slow.wait_server_read());  // the only worker has it
  const auto start = Clock::now();
  EXPECT_EQ(fetch(port(), get_request("/")).body, "Hello, World!");
  EXPECT_LT(Clock::now() - start, 500ms);
  EXPECT_EQ(slow.read_response().status, 200);
}

TEST_F(Switches, EchoDescribesTheRequestAsTheServerSawIt) {
  Client c(port());
  c.send(
      "PUT /some/path?echo&x=%20y HTTP/1.1\r\nHost: example.test\r\nX-Dup: 1\r\n"
      "x-dup:   two  \r\nContent-Length: 4\r\n\r\nbody");
  const Response r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_THAT(r.body, HasSubstr("{\"method\":\"PUT\",\"target\":\"/some/path?echo&x=%20y\","
                                "\"version\":\"HTTP/1.1\",\"headers\":[[\"Host\",\"example.test\"],"
                                "[\"X-Dup\",\"1\"],[\"x-dup\",\"two\"],[\"Content-Length\",\"4\"]],"
                                "\"body_bytes\":4,"));
  sockaddr_in local{};
  socklen_t length = sizeof local;
  ASSERT_EQ(::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&local), &length), 0);
  EXPECT_THAT(r.body, HasSubstr("\"peer\":\"127.0.0.1:" + std::to_string(ntohs(local.sin_port)) +
                                "\",\"client\":\"127.0.0.1\""));
  const auto id = identity_fields(r.header("x-id"));
  EXPECT_THAT(r.body, HasSubstr("\"served_by\":{\"host\":\"" + id.at("host") +
                                "\",\"master\":" + id.at("master") +
                                ",\"slot\":0,\"pid\":" + id.at("pid") + ",\"generation\":1}"));
  // The status switch applies to the echo too; HTTP/1.0 is reported as such.
  c.send("DELETE /?echo&status=418 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const Response teapot = c.read_response();
  EXPECT_EQ(teapot.status, 418);
  EXPECT_THAT(teapot.body, HasSubstr("\"method\":\"DELETE\""));
  EXPECT_THAT(teapot.body, HasSubstr("\"version\":\"HTTP/1.0\",\"headers\":[[\"Connection\","));
}

TEST_F(Switches, EchoNamesTheForwardedClientOfATrustedProxy) {
  // 127.0.0.1 is in trusted_proxies: X-Forwarded-For names the client.
  const Response r = fetch(port(), get_request("/?echo", "X-Forwarded-For: 203.0.113.7\r\n"));
  EXPECT_THAT(r.body, HasSubstr("\"client\":\"203.0.113.7\""));
  const Response f = fetch(port(), get_request("/?echo", "Forwarded: for=198.51.100.4\r\n"));
  EXPECT_THAT(f.body, HasSubstr("\"client\":\"198.51.100.4\""));
}

TEST_F(Switches, AnyMethodIsAnsweredAndItsBodyDiscarded) {
  Client c(port());
  c.send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(c.read_response().body, "Hello, World!");
  c.send("OPTIONS /x HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.read_response().body, "Hello, World!");
  c.send(
      "PATCH /?status=202 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(c.read_response().status, 202);
  c.send("BREW /?echo HTTP/1.1\r\nHost: x\r\n\r\n");  // a method llhttp does not know
  const Response brew = c.read_response();
  EXPECT_EQ(brew.status, 200);
  EXPECT_THAT(brew.body, HasSubstr("\"method\":\"BREW\""));
  c.send("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");  // the server itself, not a resource
  EXPECT_EQ(c.read_response(true).status, 204);
}

TEST_F(Switches, InternalEndpointsIgnoreThem) {
  auto start = Clock::now();
  const Response health = fetch(port(), get_request("/healthz?status=500&delay=1&echo"));
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  EXPECT_EQ(fetch(port(), get_request("/metrics?status=abc")).status, 200);
  const Response status = fetch(port(), get_request("/server-status?format=json&delay=1"));
  EXPECT_EQ(status.header("content-type"), "application/json");
  EXPECT_LT(Clock::now() - start, 900ms);
  // Other methods on them are still refused.
  EXPECT_EQ(fetch(port(), "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").status,
            405);
  EXPECT_EQ(fetch(port(), "BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status, 501);
}

TEST(SwitchesOff, TheQueryIsIgnoredAndOtherMethodsAreRefused) {
  ServerProcess server({.args = {"--workers", "1"}});
  const auto start = Clock::now();
  const Response r = fetch(server.port(), get_request("/?status=500&delay=5&echo"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "Hello, World!");
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_EQ(fetch(server.port(), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").status,
            405);
}

// ---- the seed's experiment and draining
// ----------------------------------------------------------

class Experiment : public ::testing::TestWithParam<Model> {};

TEST_P(Experiment, TwoClientsAskingForDelay2AreAnsweredTogether) {
  ServerProcess server({.args = server_args(GetParam(), kSwitchesOn)});
  Client a(server.port());
  Client b(server.port());
  const auto start = Clock::now();
  a.send(get_request("/?delay=2"));
  b.send(get_request("/?delay=2"));
  auto answer_a = std::async(std::launch::async, [&] { return a.read_response(false, 10s); });
  const Response rb = b.read_response(false, 10s);
  const Response ra = answer_a.get();
  const auto total = Clock::now() - start;
  EXPECT_EQ(ra.body, "Hello, World!");
  EXPECT_EQ(rb.body, "Hello, World!");
  EXPECT_GE(total, 2s);
  EXPECT_LT(total, 3s) << "answered one after the other";
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

TEST_P(Experiment, AGracefulStopWaitsForADelayedRequest) {
  ServerProcess server({.args = server_args(GetParam(), {"--set", "switches=true", "--set",
                                                         "graceful_timeout=10"})});
  Client c(server.port());
  const auto start = Clock::now();
  c.send(get_request("/?delay=2&status=201"));
  ASSERT_TRUE(c.wait_server_read());
  const auto mark = server.log_mark();
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_for_log("SIGTERM: graceful stop", mark));
  const Response r = c.read_response(false, 10s);
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.header("connection"), "close");  // the drain began while it waited
  EXPECT_GE(Clock::now() - start, 2s);
  EXPECT_TRUE(c.wait_closed());
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

TEST_P(Experiment, AReloadLetsADelayedRequestFinish) {
  ServerProcess server({.args = server_args(GetParam(), kSwitchesOn)});
  Client c(server.port());
  const auto start = Clock::now();
  c.send(get_request("/?delay=1.5&status=202"));
  ASSERT_TRUE(c.wait_server_read());
  const auto mark = server.log_mark();
  server.signal(SIGHUP);
  ASSERT_TRUE(server.wait_for_log(
      GetParam() == Model::kPrefork ? "starting generation" : "configuration reloaded", mark));
  const Response r = c.read_response(false, 10s);
  EXPECT_EQ(r.status, 202);
  EXPECT_GE(Clock::now() - start, 1500ms);
  EXPECT_EQ(fetch(server.port(), get_request()).body, "Hello, World!");  // the new generation
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(BothModes, Experiment, kBothModels, model_param_name);

// CPU ticks of the children `pid` has reaped (cutime + cstime).
long reaped_children_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::vector<std::string> f{std::istream_iterator<std::string>(fields), {}};
  return std::stol(f.at(13)) + std::stol(f.at(14));  // fields 16 and 17 of proc(5)
}

// A per-connection child polls its one socket level-triggered, asking only for what the
// connection waits for: a client that resets during a ?delay must not turn the child's wait into
// a busy loop. It sleeps until the delay is over, finds the connection gone and exits.
TEST(PerConnectionChild, AClientResetDuringADelayLeavesTheChildAsleep) {
  ServerProcess server({.args = server_args(Model::kPerConnection, kSwitchesOn)});
  {
    Client c(server.port());
    c.send(get_request("/?delay=2"));
    ASSERT_TRUE(c.wait_server_read());
    ASSERT_TRUE(server.wait_for_children(1));
    const linger reset{1, 0};
    ASSERT_EQ(::setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset), 0);
  }  // closed with a reset
  ASSERT_TRUE(server.wait_for_children(0, 10s));
  // A sleeping child uses a tick or two; two seconds of a busy loop, up to 200 (10 ms each).
  EXPECT_LT(reaped_children_ticks(server.pid()), 20);
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(10s)), 0);
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

}  // namespace
}  // namespace prefork::testing
