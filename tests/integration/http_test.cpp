// The HTTP contract (design §4) against the real binary over loopback.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/server_process.hpp"
#include "tests/support/shared_server_suite.hpp"

namespace prefork::testing {
namespace {

ServerOptions http_options() {
  return {.args = {"--workers", "2", "--set", "max_body_bytes=2097152"}};
}

// The contract holds in both process models: each test runs against a prefork pool and
// against a child per connection.
class Http : public ModelSuite<Http> {
 public:
  static ServerOptions server_options() { return http_options(); }
};

INSTANTIATE_TEST_SUITE_P(BothModels, Http, kBothModels, model_param_name);

std::string http_date(std::time_t when) {
  std::tm utc{};
  ::gmtime_r(&when, &utc);
  char out[64];
  return {out, std::strftime(out, sizeof out, "%a, %d %b %Y %H:%M:%S GMT", &utc)};
}

void expect_hello(const Response& r) {
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.header("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(r.header("content-length"), "13");
  EXPECT_EQ(r.header("server"), "prefork-httpd");
  EXPECT_THAT(r.header("date"),
              ::testing::MatchesRegex("[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} "
                                      "[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"));
}

TEST_P(Http, GetAnswersHelloWorld) {
  const Response r = fetch(port(), get_request("/any/path?x=1"));
  expect_hello(r);
  EXPECT_EQ(r.body, "Hello, World!");
}

// The Date is the second of the answer, also for a connection after the server sat idle: a
// per-connection child starts from the responses its master prepared, dated when it did.
TEST_P(Http, TheDateIsTheSecondOfTheAnswerAlsoAfterAnIdleSecond) {
  const std::string first = fetch(port(), get_request()).header("date");
  const std::time_t start = std::time(nullptr);
  while (std::time(nullptr) < start + 2) std::this_thread::sleep_for(20ms);  // the clock moves
  const std::time_t before = std::time(nullptr);
  const std::string date = fetch(port(), get_request()).header("date");
  const std::time_t after = std::time(nullptr);
  EXPECT_NE(date, first);
  std::vector<std::string> seconds;
  for (std::time_t t = before; t <= after; ++t) seconds.push_back(http_date(t));
  EXPECT_THAT(seconds, ::testing::Contains(date))
      << "sent between " << seconds.front() << " and " << seconds.back();
}

TEST_P(Http, HeadHasTheSameHeadersAndNoBody) {
  Client c(port());
  c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
  const Response r = c.read_response(/*head_request=*/true);
  expect_hello(r);
  EXPECT_EQ(r.body, "");
  c.send(get_request());  // nothing stray was sent after the head
  EXPECT_EQ(c.read_response().body, "Hello, World!");
}

TEST_P(Http, Http10ClosesUnlessKeepAliveIsAsked) {
  Client c(port());
  c.send("GET / HTTP/1.0\r\n\r\n");
  const Response r = c.read_response();
  EXPECT_EQ(r.body, "Hello, World!");
  EXPECT_TRUE(c.wait_closed());

  Client k(port());
  k.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(k.read_response().header("connection"), "keep-alive");
  k.send("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(k.read_response().body, "Hello, World!");
  EXPECT_TRUE(k.wait_closed());
}

TEST_P(Http, ConnectionCloseIsHonored) {
  Client c(port());
  c.send(get_request("/", "Connection: close\r\n"));
  const Response r = c.read_response();
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_EQ(r.body, "Hello, World!");
  EXPECT_TRUE(c.wait_closed());
}

// Segments this client received that carried no data (the handshake's, bare ACKs, a bare FIN).
unsigned segments_without_data(const Client& c) {
  tcp_info info{};
  socklen_t length = sizeof info;
  EXPECT_EQ(::getsockopt(c.fd(), IPPROTO_TCP, TCP_INFO, &info, &length), 0);
  return info.tcpi_segs_in - info.tcpi_data_segs_in;
}

// The end of a connection travels with its last response, as one segment: one wake-up of the
// client and one packet fewer per connection, which is what a connection per request costs.
TEST_P(Http, TheLastResponseCarriesTheEndOfTheConnection) {
  Client keeps(port());  // how many data-less segments a client gets up to its response
  keeps.send(get_request());
  ASSERT_EQ(keeps.read_response().body, "Hello, World!");
  const unsigned before_the_response = segments_without_data(keeps);

  Client closes(port());
  closes.send(get_request("/", "Connection: close\r\n"));
  ASSERT_EQ(closes.read_response().body, "Hello, World!");
  ASSERT_TRUE(closes.wait_closed());
  EXPECT_EQ(segments_without_data(closes), before_the_response)
      << "the FIN came in a segment of its own";
}

TEST_P(Http, HundredPipelinedRequestsInOneWriteAreAnsweredInOrder) {
  Client c(port());
  std::string batch;
  for (int i = 0; i < 100; ++i) {
    batch += (i % 2 == 0 ? "GET /" : "HEAD /") + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n";
  }
  c.send(batch);
  for (int i = 0; i < 100; ++i) {
    const Response r = c.read_response(/*head_request=*/i % 2 == 1);
    ASSERT_EQ(r.status, 200) << i;
    EXPECT_EQ(r.body, i % 2 == 0 ? "Hello, World!" : "") << i;
  }
}

TEST_P(Http, PostWithAOneMebibyteBodyThenGetOnTheSameConnection) {
  Client c(port());
  const std::string body(1 << 20, 'x');
  c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body + get_request());
  const Response post = c.read_response();
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.header("allow"), "GET, HEAD");
  const Response get = c.read_response();
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "Hello, World!");
}

TEST_P(Http, ChunkedBodyIsDiscardedWithoutDesync) {
  Client c(port());
  c.send(
      "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n" +
      get_request());
  EXPECT_EQ(c.read_response().status, 405);
  EXPECT_EQ(c.read_response().body, "Hello, World!");
}

TEST_P(Http, ExpectContinueGetsAnInterimResponseWhenTheBodyIsWanted) {
  Client c(port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(c.read_response().status_line, "HTTP/1.1 100 Continue");
  c.send("abcd");
  EXPECT_EQ(c.read_response().body, "Hello, World!");
}

TEST_P(Http, ExpectContinueOnARefusedMethodIsAnsweredAtOnceAndCloses) {
  // The client need not send a body we would discard: the final status comes first.
  Client c(port());
  c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  const Response r = c.read_response();
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.wait_closed());
}

struct ErrorCase {
  const char* name;
  std::string request;
  int status;
};

void PrintTo(const ErrorCase& c, std::ostream* out) {
  *out << c.name;
}

class HttpErrors : public ModelSuite<HttpErrors, std::tuple<Model, ErrorCase>> {
 public:
  static ServerOptions server_options() { return http_options(); }
};

TEST_P(HttpErrors, AnswerOnceThenClose) {
  Client c(port());
  // The trailing GET must never be answered: exactly one error response, then close.
  c.send(test_case().request + get_request());
  const Response r = c.read_response();
  EXPECT_EQ(r.status, test_case().status) << r.status_line;
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_FALSE(r.header("date").empty());
  EXPECT_TRUE(c.wait_closed()) << "a second response was sent";
  // The worker keeps serving everyone else.
  EXPECT_EQ(fetch(port(), get_request()).body, "Hello, World!");
}

INSTANTIATE_TEST_SUITE_P(
    Statuses, HttpErrors,
    ::testing::Combine(kBothModels, ::testing::Values(
        ErrorCase{"Malformed", "GARBAGE\r\n\r\n", 400},
        ErrorCase{"MissingHost", "GET / HTTP/1.1\r\n\r\n", 400},
        ErrorCase{"TwoHosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        ErrorCase{"BadHost", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
        ErrorCase{"ClAndTe",
                  "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n0\r\n\r\n",
                  400},
        ErrorCase{"TwoContentLengths",
                  "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                  400},
        ErrorCase{"BadChunk",
                  "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        ErrorCase{"BodyTooLarge", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n",
                  413},
        ErrorCase{"UriTooLong", "GET /" + std::string(100 * 1024, 'a') + " HTTP/1.1\r\n\r\n", 414},
        ErrorCase{"TooManyHeaders",
                  [] {
                    std::string r = "GET / HTTP/1.1\r\nHost: x\r\n";
                    for (int i = 0; i < 1000; ++i) r += "X-" + std::to_string(i) + ": y\r\n";
                    return r + "\r\n";
                  }(),
                  431},
        ErrorCase{"HeadersTooLarge",
                  "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'b') + "\r\n\r\n",
                  431},
        ErrorCase{"Http2Version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505})),
    model_case_name<ErrorCase>);

TEST_P(Http, Ipv6LoopbackWorksWhenListeningDualStack) {
  ServerProcess v6(in_model(model(), {.args = {"--workers", "1"}, .listen = "[::]:0"}));
  expect_runs_in(v6, model());
  Client c(v6.port(), "::1");
  c.send(get_request());
  EXPECT_EQ(c.read_response().body, "Hello, World!");
  Client c4(v6.port(), "127.0.0.1");
  c4.send(get_request());
  EXPECT_EQ(c4.read_response().body, "Hello, World!");
}

}  // namespace
}  // namespace prefork::testing
