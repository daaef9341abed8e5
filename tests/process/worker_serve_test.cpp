// worker::run and worker::serve_connection in a forked child on a test-bound loopback socket,
// driven over real sockets and real signals. Every wait is bounded; the child is always reaped.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/child_context.hpp"
#include "common/clock.hpp"
#include "common/config.hpp"
#include "common/listeners.hpp"
#include "common/log.hpp"
#include "common/scoreboard.hpp"
#include "common/signals.hpp"
#include "common/unique_fd.hpp"
#include "tests/support/server_process.hpp"
#include "worker/worker.hpp"

namespace prefork::worker {
namespace {

using common::Millis;
using common::UniqueFd;
using ::prefork::testing::Client;
using ::prefork::testing::get_request;
using ::prefork::testing::Response;

constexpr Millis kWaitMs = 5000;  // upper bound of every wait in this file

class WorkerServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.header_timeout = 5000;
    config_.keepalive_timeout = 5000;
    config_.body_timeout = 5000;
    config_.send_timeout = 5000;
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  // Forks the worker over a fresh 127.0.0.1:0 listener and waits until it serves.
  void start_worker() {
    listeners_ = common::open_listeners({"127.0.0.1:0"});
    const std::string& bound = listeners_.front().bound;
    port_ = static_cast<std::uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      common::reset_signals_after_fork();
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      common::init_logging("worker 0", "stderr", "warn");
      const common::ChildContext ctx{config_, listeners_, &slot(), 0, 1};
      ::_exit(run(ctx));
    }
    ASSERT_TRUE(wait_for_state(common::WorkerState::kIdle));
  }

  common::ScoreboardSlot& slot() { return scoreboard_.slot(0); }

  // Polls the worker's scoreboard slot (shared memory) until it reports `state`.
  bool wait_for_state(common::WorkerState state) {
    const Millis deadline = common::monotonic_ms() + kWaitMs;
    while (slot().state.load() != state) {
      if (common::monotonic_ms() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  bool wait_for_connections(std::uint32_t count) {
    const Millis deadline = common::monotonic_ms() + kWaitMs;
    while (slot().connections.load() != count) {
      if (common::monotonic_ms() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  // Waits for the child to exit; returns its wait status, or nullopt after kWaitMs.
  std::optional<int> wait_exit() {
    const Millis deadline = common::monotonic_ms() + kWaitMs;
    for (;;) {
      int status = 0;
      const pid_t got = ::waitpid(pid_, &status, WNOHANG);
      if (got == pid_) {
        pid_ = -1;
        return status;
      }
      if (common::monotonic_ms() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  common::Config config_;
  common::Scoreboard scoreboard_{1};
  std::vector<common::Listener> listeners_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

TEST_F(WorkerServeTest, GetReturnsHelloWorld) {
  start_worker();
  Client client(port_);
  client.send(get_request());
  Response response;
  ASSERT_NO_THROW(response = client.read_response());
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.body, "Hello, World!");
  EXPECT_TRUE(response.has_header_line("Content-Length: 13"));
  EXPECT_TRUE(response.has_header_line("Server: prefork-httpd"));
}

TEST_F(WorkerServeTest, HeadHasNoBodyAndKeepsTheConnection) {
  start_worker();
  Client client(port_);
  client.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
  Response head;
  ASSERT_NO_THROW(head = client.read_response(/*head_request=*/true));
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.has_header_line("Content-Length: 13"));
  client.send(get_request());
  Response get;
  ASSERT_NO_THROW(get = client.read_response());
  EXPECT_EQ(get.body, "Hello, World!");  // nothing of a body came after the HEAD response
}

TEST_F(WorkerServeTest, Http10ClosesUnlessKeepAlive) {
  start_worker();
  Client plain(port_);
  plain.send("GET / HTTP/1.0\r\n\r\n");
  Response first;
  ASSERT_NO_THROW(first = plain.read_response());
  EXPECT_TRUE(first.has_header_line("Connection: close"));
  EXPECT_TRUE(plain.wait_closed());

  Client keep(port_);
  keep.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  Response second;
  ASSERT_NO_THROW(second = keep.read_response());
  EXPECT_TRUE(second.has_header_line("Connection: keep-alive"));
  keep.send("GET / HTTP/1.0\r\n\r\n");
  ASSERT_NO_THROW(keep.read_response());
  EXPECT_TRUE(keep.wait_closed());
}

TEST_F(WorkerServeTest, ConnectionCloseIsHonoured) {
  start_worker();
  Client client(port_);
  client.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + get_request());
  Response response;
  ASSERT_NO_THROW(response = client.read_response());
  EXPECT_TRUE(response.has_header_line("Connection: close"));
  EXPECT_TRUE(client.wait_closed());  // and no answer to the request that followed
}

TEST_F(WorkerServeTest, HundredPipelinedRequestsInOneWrite) {
  start_worker();
  Client client(port_);
  std::string batch;
  for (int i = 0; i < 100; ++i) {
    batch += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n";
    if (i % 10 == 9) batch += "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
  }
  client.send(batch);
  for (int i = 0; i < 100; ++i) {
    Response response;
    ASSERT_NO_THROW(response = client.read_response()) << i;
    ASSERT_EQ(response.body, "Hello, World!") << i;
    if (i % 10 == 9) {
      Response head;
      ASSERT_NO_THROW(head = client.read_response(/*head_request=*/true));
      ASSERT_EQ(head.status, 200);
    }
  }
  EXPECT_EQ(client.pending(), "");
  EXPECT_EQ(slot().served.requests.load(), 110U);
}

TEST_F(WorkerServeTest, LargePostBodyIsDiscardedAndTheConnectionReused) {
  start_worker();
  Client client(port_);
  const std::string body(1 << 20, 'x');
  client.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\n\r\n");
  client.send(body);
  client.send(get_request());
  Response post;
  ASSERT_NO_THROW(post = client.read_response());
  EXPECT_EQ(post.status, 405);
  EXPECT_TRUE(post.has_header_line("Allow: GET, HEAD"));
  EXPECT_FALSE(post.has_header_line("Connection: close"));
  Response get;
  ASSERT_NO_THROW(get = client.read_response());
  EXPECT_EQ(get.status, 200);
}

TEST_F(WorkerServeTest, ChunkedUploadWithContinue) {
  start_worker();
  Client client(port_);
  client.send(
      "OPTIONS / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
      "Transfer-Encoding: chunked\r\n\r\n");
  Response interim;
  ASSERT_NO_THROW(interim = client.read_response());
  EXPECT_EQ(interim.status_line, "HTTP/1.1 100 Continue");
  client.send("4\r\nabcd\r\n0\r\n\r\n");
  Response final_response;
  ASSERT_NO_THROW(final_response = client.read_response());
  EXPECT_EQ(final_response.status, 204);
  EXPECT_TRUE(final_response.has_header_line("Allow: GET, HEAD, OPTIONS"));
}

TEST_F(WorkerServeTest, EachErrorStatusOverTheWire) {
  config_.max_request_line = 256;
  config_.max_header_bytes = 1024;
  config_.max_body_bytes = 1000;
  start_worker();
  const std::vector<std::pair<std::string, int>> cases = {
      {"GET / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", 413},
      {"GET /" + std::string(300, 'u') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(1100, 'h') + "\r\n\r\n", 431},
      {"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", 417},
      {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
  };
  for (const auto& [request, status] : cases) {
    SCOPED_TRACE(request.substr(0, 60));
    Client client(port_);
    client.send(request + get_request());  // must not be answered
    Response response;
    ASSERT_NO_THROW(response = client.read_response());
    EXPECT_EQ(response.status, status);
    EXPECT_TRUE(response.has_header_line("Connection: close"));
    EXPECT_TRUE(response.has_header_line("Server: prefork-httpd"));
    EXPECT_NE(response.head.find("\r\nDate: "), std::string::npos);
    EXPECT_TRUE(client.wait_closed());
  }
}

TEST_F(WorkerServeTest, TooLargeBodyBeingSentStillGetsItsAnswer) {
  config_.max_body_bytes = 1000;
  start_worker();
  Client client(port_);
  // The client is still uploading when the 413 goes out: lingering keeps our close from
  // turning into a reset that would destroy the response.
  client.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n");
  client.send(std::string(200000, 'x'));
  Response response;
  ASSERT_NO_THROW(response = client.read_response());
  EXPECT_EQ(response.status, 413);
  client.shutdown_write();
  EXPECT_TRUE(client.wait_closed());
}

TEST_F(WorkerServeTest, SlowClientDoesNotBlockOthers) {
  start_worker();
  Client slow(port_);
  slow.send("GET / HTTP/1.1\r\nHo");
  ASSERT_TRUE(wait_for_state(common::WorkerState::kBusy));
  Client fast(port_);
  fast.send(get_request());
  Response fast_response;
  ASSERT_NO_THROW(fast_response = fast.read_response());
  EXPECT_EQ(fast_response.status, 200);
  slow.send("st: a\r\n\r\n");
  Response slow_response;
  ASSERT_NO_THROW(slow_response = slow.read_response());
  EXPECT_EQ(slow_response.status, 200);
}

TEST_F(WorkerServeTest, DrainFinishesTheRequestInProgressThenExits) {
  start_worker();
  Client idle(port_);
  idle.send(get_request());
  ASSERT_NO_THROW(idle.read_response());
  Client client(port_);
  client.send(get_request());
  ASSERT_NO_THROW(client.read_response());
  client.send("GET /last HTTP/1.1\r\nHo");
  ASSERT_TRUE(wait_for_state(common::WorkerState::kBusy));
  ASSERT_EQ(::kill(pid_, SIGQUIT), 0);
  ASSERT_TRUE(wait_for_state(common::WorkerState::kDraining));
  EXPECT_TRUE(idle.wait_closed());  // idle keep-alive connections end at once
  client.send("st: a\r\n\r\n");
  Response response;
  ASSERT_NO_THROW(response = client.read_response());
  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(response.has_header_line("Connection: close"));
  EXPECT_TRUE(client.wait_closed());
  const auto status = wait_exit();
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(WorkerServeTest, DrainWithNoConnectionsExitsAtOnce) {
  start_worker();
  ASSERT_EQ(::kill(pid_, SIGQUIT), 0);
  const auto status = wait_exit();
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(WorkerServeTest, TermStopsNowEvenWithOpenConnections) {
  start_worker();
  Client client(port_);
  client.send("GET / HTTP/1.1\r\nHo");
  ASSERT_TRUE(wait_for_state(common::WorkerState::kBusy));
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  const auto status = wait_exit();
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_TRUE(client.wait_closed());
}

TEST_F(WorkerServeTest, HeaderTimeoutAnswers408) {
  config_.header_timeout = 300;
  start_worker();
  Client client(port_);
  const Millis start = common::monotonic_ms();
  client.send("GET / HTTP/1.1\r\nHost: a\r\n");
  Response response;
  ASSERT_NO_THROW(response = client.read_response());
  EXPECT_EQ(response.status, 408);
  EXPECT_TRUE(response.has_header_line("Connection: close"));
  EXPECT_GE(common::monotonic_ms() - start, 250);
  EXPECT_TRUE(client.wait_closed());
}

TEST_F(WorkerServeTest, IdleKeepAliveClosedAfterKeepaliveTimeout) {
  config_.keepalive_timeout = 300;
  start_worker();
  Client client(port_);
  client.send(get_request());
  ASSERT_NO_THROW(client.read_response());
  const Millis start = common::monotonic_ms();
  EXPECT_TRUE(client.wait_closed());  // silently: no 408 for an idle connection
  EXPECT_GE(common::monotonic_ms() - start, 250);
}

TEST_F(WorkerServeTest, MaxConnectionsLeavesClientsInTheBacklog) {
  config_.max_connections = 1;
  start_worker();
  Client first(port_);
  first.send(get_request());
  ASSERT_NO_THROW(first.read_response());
  Client second(port_);
  second.send(get_request());
  EXPECT_FALSE(
      second.fill(std::chrono::milliseconds(300)));  // not accepted while the first is open
  EXPECT_EQ(slot().connections.load(), 1U);
  first.shutdown_write();
  EXPECT_TRUE(first.wait_closed());
  Response response;
  ASSERT_NO_THROW(response = second.read_response());
  EXPECT_EQ(response.status, 200);
}

TEST_F(WorkerServeTest, HeartbeatAdvancesWhileIdle) {
  start_worker();
  const Millis first = slot().heartbeat_ms.load();
  const Millis deadline = common::monotonic_ms() + kWaitMs;
  while (slot().heartbeat_ms.load() == first && common::monotonic_ms() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(slot().heartbeat_ms.load(), first);
}

TEST_F(WorkerServeTest, UsrOneAndHupLeaveTheWorkerServing) {
  start_worker();
  ASSERT_EQ(::kill(pid_, SIGUSR1), 0);
  ASSERT_EQ(::kill(pid_, SIGHUP), 0);
  Client client(port_);
  client.send(get_request());
  Response response;
  ASSERT_NO_THROW(response = client.read_response());
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(::waitpid(pid_, nullptr, WNOHANG), 0);
}

// More output than the backlog bound: the worker stops reading until the client catches up,
// then resumes, and every response arrives in order.
TEST_F(WorkerServeTest, BackpressureWithThousandsOfPipelinedRequests) {
  config_.keepalive_requests = 100'000;
  start_worker();
  Client client(port_);
  constexpr int kRequests = 5000;
  std::string batch;
  for (int i = 0; i < kRequests; ++i)
    batch += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n";
  std::thread writer([&] {
    try {
      client.send(batch);
    } catch (const std::runtime_error& e) {
      ADD_FAILURE() << e.what();
    }
  });
  int received = 0;
  for (; received < kRequests; ++received) {
    try {
      if (client.read_response().body != "Hello, World!") break;
    } catch (const std::runtime_error&) {
      break;  // timeout or EOF
    }
  }
  writer.join();
  EXPECT_EQ(received, kRequests);
}

TEST_F(WorkerServeTest, ClientThatNeverReadsIsDroppedAfterSendTimeout) {
  config_.send_timeout = 300;
  config_.keepalive_requests = 1'000'000;
  start_worker();
  const int small = 4096;
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  pollfd pfd{fd.get(), POLLOUT, 0};
  ASSERT_EQ(::poll(&pfd, 1, static_cast<int>(kWaitMs)), 1);
  // Pipeline requests until the server stops taking them; never read a response.
  const std::string get = get_request();
  std::string batch;
  for (int i = 0; i < 1000; ++i) batch += get;
  for (int round = 0; round < 200; ++round) {
    if (::send(fd.get(), batch.data(), batch.size(), MSG_NOSIGNAL) < 0) break;
  }
  ASSERT_TRUE(wait_for_connections(1));
  const Millis sent = common::monotonic_ms();
  const Millis deadline = sent + kWaitMs;
  while (slot().connections.load() != 0 && common::monotonic_ms() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(slot().connections.load(), 0U);
  EXPECT_GE(common::monotonic_ms() - sent, 200);
  Client other(port_);  // the worker is fine
  other.send(get_request());
  ASSERT_NO_THROW(other.read_response());
}

// Out of descriptors: the waiting client is shed (it sees the connection end rather than hang),
// the worker keeps serving its connections and accepts again once descriptors are free.
TEST_F(WorkerServeTest, DescriptorExhaustionShedsTheWaitingClient) {
#if defined(__SANITIZE_ADDRESS__)
  // The worker gets room for exactly four descriptors; the sanitizer runtimes need some of their
  // own (reading /proc/self/maps to report), which makes their reports here meaningless. The
  // normal build runs this test, and the hardening tests cover exhaustion with more headroom.
  GTEST_SKIP() << "descriptor budget too tight for the sanitizer runtime";
#endif
  listeners_ = common::open_listeners({"127.0.0.1:0"});
  const std::string& bound = listeners_.front().bound;
  port_ = static_cast<std::uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
  pid_ = ::fork();
  ASSERT_GE(pid_, 0);
  if (pid_ == 0) {
    common::reset_signals_after_fork();
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    common::init_logging("worker 0", "stderr", "error");
    // Room for exactly: epoll, signalfd, the spare descriptor, and one client.
    rlim_t limit = 0;
    for (int free_slots = 0; free_slots < 4; ++limit) {
      if (::fcntl(static_cast<int>(limit), F_GETFD) < 0) ++free_slots;
    }
    const rlimit rl{limit, limit};
    ::setrlimit(RLIMIT_NOFILE, &rl);
    const common::ChildContext ctx{config_, listeners_, &slot(), 0, 1};
    ::_exit(run(ctx));
  }
  ASSERT_TRUE(wait_for_state(common::WorkerState::kIdle));
  Client first(port_);
  first.send(get_request());
  ASSERT_NO_THROW(first.read_response());
  Client shed(port_);
  shed.send(get_request());
  EXPECT_TRUE(shed.wait_closed());
  first.send(get_request());  // still served
  ASSERT_NO_THROW(first.read_response());
  first.shutdown_write();
  EXPECT_TRUE(first.wait_closed());
  Client later(port_);
  later.send(get_request());
  Response response;
  ASSERT_NO_THROW(response = later.read_response());
  EXPECT_EQ(response.status, 200);
}

// Per-connection mode: the test accepts, the child serves that one client.
class ServeConnectionTest : public WorkerServeTest {
 protected:
  // Connects a client, accepts it here, and forks a child running serve_connection on it.
  Client start_child(const std::string& first_bytes) {
    listeners_ = common::open_listeners({"127.0.0.1:0"});
    const std::string& bound = listeners_.front().bound;
    port_ = static_cast<std::uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
    Client client(port_);
    client.send(first_bytes);  // TCP_DEFER_ACCEPT: accept() sees the connection once data came
    pollfd pfd{listeners_.front().fd.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&pfd, 1, static_cast<int>(kWaitMs)), 1);
    UniqueFd accepted(::accept4(listeners_.front().fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_TRUE(accepted);
    pid_ = ::fork();
    EXPECT_GE(pid_, 0);
    if (pid_ == 0) {
      common::reset_signals_after_fork();
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      common::init_logging("connection", "stderr", "warn");
      // Production passes no slot here; the test's slot lets it wait for the child's state.
      const common::ChildContext ctx{config_, listeners_, &slot(), 0, 1};
      ::_exit(serve_connection(ctx, std::move(accepted)));
    }
    return client;
  }

  void expect_clean_exit() {
    const auto status = wait_exit();
    ASSERT_TRUE(status);
    EXPECT_TRUE(WIFEXITED(*status));
    EXPECT_EQ(WEXITSTATUS(*status), 0);
  }
};

TEST_F(ServeConnectionTest, ServesOneClientWithKeepAliveThenExits) {
  Client client = start_child(get_request());
  Response first;
  ASSERT_NO_THROW(first = client.read_response());
  EXPECT_EQ(first.status, 200);
  EXPECT_FALSE(first.has_header_line("Connection: close"));
  client.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  Response second;
  ASSERT_NO_THROW(second = client.read_response());
  EXPECT_TRUE(second.has_header_line("Connection: close"));
  EXPECT_TRUE(client.wait_closed());
  expect_clean_exit();
}

TEST_F(ServeConnectionTest, ExitsWhenTheClientCloses) {
  Client client = start_child(get_request());
  ASSERT_NO_THROW(client.read_response());
  client.shutdown_write();
  EXPECT_TRUE(client.wait_closed());
  expect_clean_exit();
}

TEST_F(ServeConnectionTest, DrainAnswersTheRequestInProgress) {
  Client client = start_child("GET / HTTP/1.1\r\nHo");
  ASSERT_TRUE(wait_for_state(common::WorkerState::kBusy));
  ASSERT_EQ(::kill(pid_, SIGQUIT), 0);
  ASSERT_TRUE(wait_for_state(common::WorkerState::kDraining));
  client.send("st: a\r\n\r\n");
  Response response;
  ASSERT_NO_THROW(response = client.read_response());
  EXPECT_TRUE(response.has_header_line("Connection: close"));
  EXPECT_TRUE(client.wait_closed());
  expect_clean_exit();
}

TEST_F(ServeConnectionTest, DrainClosesAnIdleConnection) {
  Client client = start_child(get_request());
  ASSERT_NO_THROW(client.read_response());
  ASSERT_TRUE(wait_for_state(common::WorkerState::kIdle));  // signalfd is set up
  ASSERT_EQ(::kill(pid_, SIGQUIT), 0);
  EXPECT_TRUE(client.wait_closed());
  expect_clean_exit();
}

}  // namespace
}  // namespace prefork::worker
