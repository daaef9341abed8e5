// worker::run and worker::serve_connection in a forked child on a test-bound loopback socket,
// driven over real sockets and real signals. Every wait is bounded; the child is always reaped.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <optional>
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
#include "worker/worker.hpp"

namespace prefork::worker {
namespace {

using common::Millis;
using common::UniqueFd;

constexpr Millis kWaitMs = 5000;  // upper bound of every wait in this file

struct Response {
  std::string status_line;
  std::string head;  // status line and headers, up to and including the blank line
  std::string body;
  [[nodiscard]] int status() const { return std::stoi(status_line.substr(9, 3)); }
  [[nodiscard]] bool has_header(const std::string& line) const {
    return head.find("\r\n" + line + "\r\n") != std::string::npos;
  }
};

// A blocking-free test client: every read waits at most kWaitMs.
class Client {
 public:
  explicit Client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const int one = 1;  // no Nagle wait between a test's small writes
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << "send: " << std::strerror(errno);
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Reads more bytes into the buffer; false on EOF, error or timeout.
  bool fill(Millis timeout = kWaitMs) {
    pollfd pfd{fd_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout)) != 1) return false;
    char chunk[65536];
    const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  // The next response; `head_request` means no body follows the headers.
  std::optional<Response> read_response(bool head_request = false) {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    Response response;
    response.head = buffer_.substr(0, end + 4);
    response.status_line = response.head.substr(0, response.head.find("\r\n"));
    buffer_.erase(0, end + 4);
    std::size_t length = 0;
    if (const auto at = response.head.find("\r\nContent-Length: "); at != std::string::npos) {
      length = std::stoul(response.head.substr(at + 18));
    }
    if (head_request || response.status() == 204 || response.status() == 100) length = 0;
    while (buffer_.size() < length) {
      if (!fill()) return std::nullopt;
    }
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  // True when the server closes (EOF or reset) within `timeout` and sent nothing more.
  bool closed_by_peer(Millis timeout = kWaitMs) {
    const Millis deadline = common::monotonic_ms() + timeout;
    for (;;) {
      const Millis left = deadline - common::monotonic_ms();
      if (left <= 0) return false;
      pollfd pfd{fd_.get(), POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left)) != 1) return false;
      char chunk[4096];
      const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        EXPECT_EQ(buffer_, "") << "unexpected bytes before the close";
        return buffer_.empty();
      }
      if (n < 0) {
        ADD_FAILURE() << "recv: " << std::strerror(errno);
        return false;
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  [[nodiscard]] const std::string& pending() const { return buffer_; }
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  std::string buffer_;
};

constexpr std::string_view kGet = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

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
  client.send(kGet);
  const auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response->body, "Hello, World!");
  EXPECT_TRUE(response->has_header("Content-Length: 13"));
  EXPECT_TRUE(response->has_header("Server: prefork-httpd"));
}

TEST_F(WorkerServeTest, HeadHasNoBodyAndKeepsTheConnection) {
  start_worker();
  Client client(port_);
  client.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
  const auto head = client.read_response(/*head_request=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status(), 200);
  EXPECT_TRUE(head->has_header("Content-Length: 13"));
  client.send(kGet);
  const auto get = client.read_response();
  ASSERT_TRUE(get);
  EXPECT_EQ(get->body, "Hello, World!");  // nothing of a body came after the HEAD response
}

TEST_F(WorkerServeTest, Http10ClosesUnlessKeepAlive) {
  start_worker();
  Client plain(port_);
  plain.send("GET / HTTP/1.0\r\n\r\n");
  const auto first = plain.read_response();
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->has_header("Connection: close"));
  EXPECT_TRUE(plain.closed_by_peer());

  Client keep(port_);
  keep.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const auto second = keep.read_response();
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->has_header("Connection: keep-alive"));
  keep.send("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(keep.read_response());
  EXPECT_TRUE(keep.closed_by_peer());
}

TEST_F(WorkerServeTest, ConnectionCloseIsHonoured) {
  start_worker();
  Client client(port_);
  client.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + std::string(kGet));
  const auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_TRUE(response->has_header("Connection: close"));
  EXPECT_TRUE(client.closed_by_peer());  // and no answer to the request that followed
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
    const auto response = client.read_response();
    ASSERT_TRUE(response) << i;
    ASSERT_EQ(response->body, "Hello, World!") << i;
    if (i % 10 == 9) {
      const auto head = client.read_response(/*head_request=*/true);
      ASSERT_TRUE(head);
      ASSERT_EQ(head->status(), 200);
    }
  }
  EXPECT_EQ(client.pending(), "");
  EXPECT_EQ(slot().requests.load(), 110U);
}

TEST_F(WorkerServeTest, LargePostBodyIsDiscardedAndTheConnectionReused) {
  start_worker();
  Client client(port_);
  const std::string body(1 << 20, 'x');
  client.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\n\r\n");
  client.send(body);
  client.send(kGet);
  const auto post = client.read_response();
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status(), 405);
  EXPECT_TRUE(post->has_header("Allow: GET, HEAD"));
  EXPECT_FALSE(post->has_header("Connection: close"));
  const auto get = client.read_response();
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status(), 200);
}

TEST_F(WorkerServeTest, ChunkedUploadWithContinue) {
  start_worker();
  Client client(port_);
  client.send(
      "OPTIONS / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
      "Transfer-Encoding: chunked\r\n\r\n");
  const auto interim = client.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status_line, "HTTP/1.1 100 Continue");
  client.send("4\r\nabcd\r\n0\r\n\r\n");
  const auto final_response = client.read_response();
  ASSERT_TRUE(final_response);
  EXPECT_EQ(final_response->status(), 204);
  EXPECT_TRUE(final_response->has_header("Allow: GET, HEAD, OPTIONS"));
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
    client.send(request + std::string(kGet));  // must not be answered
    const auto response = client.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status(), status);
    EXPECT_TRUE(response->has_header("Connection: close"));
    EXPECT_TRUE(response->has_header("Server: prefork-httpd"));
    EXPECT_NE(response->head.find("\r\nDate: "), std::string::npos);
    EXPECT_TRUE(client.closed_by_peer());
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
  const auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status(), 413);
  ::shutdown(client.fd(), SHUT_WR);
  EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(WorkerServeTest, SlowClientDoesNotBlockOthers) {
  start_worker();
  Client slow(port_);
  slow.send("GET / HTTP/1.1\r\nHo");
  ASSERT_TRUE(wait_for_state(common::WorkerState::kBusy));
  Client fast(port_);
  fast.send(kGet);
  const auto fast_response = fast.read_response();
  ASSERT_TRUE(fast_response);
  EXPECT_EQ(fast_response->status(), 200);
  slow.send("st: a\r\n\r\n");
  const auto slow_response = slow.read_response();
  ASSERT_TRUE(slow_response);
  EXPECT_EQ(slow_response->status(), 200);
}

TEST_F(WorkerServeTest, DrainFinishesTheRequestInProgressThenExits) {
  start_worker();
  Client idle(port_);
  idle.send(kGet);
  ASSERT_TRUE(idle.read_response());
  Client client(port_);
  client.send(kGet);
  ASSERT_TRUE(client.read_response());
  client.send("GET /last HTTP/1.1\r\nHo");
  ASSERT_TRUE(wait_for_state(common::WorkerState::kBusy));
  ASSERT_EQ(::kill(pid_, SIGQUIT), 0);
  ASSERT_TRUE(wait_for_state(common::WorkerState::kDraining));
  EXPECT_TRUE(idle.closed_by_peer());  // idle keep-alive connections end at once
  client.send("st: a\r\n\r\n");
  const auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status(), 200);
  EXPECT_TRUE(response->has_header("Connection: close"));
  EXPECT_TRUE(client.closed_by_peer());
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
  EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(WorkerServeTest, HeaderTimeoutAnswers408) {
  config_.header_timeout = 300;
  start_worker();
  Client client(port_);
  const Millis start = common::monotonic_ms();
  client.send("GET / HTTP/1.1\r\nHost: a\r\n");
  const auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status(), 408);
  EXPECT_TRUE(response->has_header("Connection: close"));
  EXPECT_GE(common::monotonic_ms() - start, 250);
  EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(WorkerServeTest, IdleKeepAliveClosedAfterKeepaliveTimeout) {
  config_.keepalive_timeout = 300;
  start_worker();
  Client client(port_);
  client.send(kGet);
  ASSERT_TRUE(client.read_response());
  const Millis start = common::monotonic_ms();
  EXPECT_TRUE(client.closed_by_peer());  // silently: no 408 for an idle connection
  EXPECT_GE(common::monotonic_ms() - start, 250);
}

TEST_F(WorkerServeTest, MaxConnectionsLeavesClientsInTheBacklog) {
  config_.max_connections = 1;
  start_worker();
  Client first(port_);
  first.send(kGet);
  ASSERT_TRUE(first.read_response());
  Client second(port_);
  second.send(kGet);
  EXPECT_FALSE(second.fill(300));  // not accepted while the first is open
  EXPECT_EQ(slot().connections.load(), 1U);
  ::shutdown(first.fd(), SHUT_WR);
  EXPECT_TRUE(first.closed_by_peer());
  const auto response = second.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status(), 200);
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
  client.send(kGet);
  const auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status(), 200);
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
  std::thread writer([&] { client.send(batch); });
  int received = 0;
  for (; received < kRequests; ++received) {
    const auto response = client.read_response();
    if (!response || response->body != "Hello, World!") break;
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
  std::string batch;
  for (int i = 0; i < 1000; ++i) batch += kGet;
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
  other.send(kGet);
  ASSERT_TRUE(other.read_response());
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
  first.send(kGet);
  ASSERT_TRUE(first.read_response());
  Client shed(port_);
  shed.send(kGet);
  EXPECT_TRUE(shed.closed_by_peer());
  first.send(kGet);  // still served
  ASSERT_TRUE(first.read_response());
  ::shutdown(first.fd(), SHUT_WR);
  EXPECT_TRUE(first.closed_by_peer());
  Client later(port_);
  later.send(kGet);
  const auto response = later.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status(), 200);
}

// Per-connection mode: the test accepts, the child serves that one client.
class ServeConnectionTest : public WorkerServeTest {
 protected:
  // Connects a client, accepts it here, and forks a child running serve_connection on it.
  Client start_child(std::string_view first_bytes) {
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
  Client client = start_child(kGet);
  const auto first = client.read_response();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status(), 200);
  EXPECT_FALSE(first->has_header("Connection: close"));
  client.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  const auto second = client.read_response();
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->has_header("Connection: close"));
  EXPECT_TRUE(client.closed_by_peer());
  expect_clean_exit();
}

TEST_F(ServeConnectionTest, ExitsWhenTheClientCloses) {
  Client client = start_child(kGet);
  ASSERT_TRUE(client.read_response());
  ::shutdown(client.fd(), SHUT_WR);
  EXPECT_TRUE(client.closed_by_peer());
  expect_clean_exit();
}

TEST_F(ServeConnectionTest, DrainAnswersTheRequestInProgress) {
  Client client = start_child("GET / HTTP/1.1\r\nHo");
  ASSERT_TRUE(wait_for_state(common::WorkerState::kBusy));
  ASSERT_EQ(::kill(pid_, SIGQUIT), 0);
  ASSERT_TRUE(wait_for_state(common::WorkerState::kDraining));
  client.send("st: a\r\n\r\n");
  const auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_TRUE(response->has_header("Connection: close"));
  EXPECT_TRUE(client.closed_by_peer());
  expect_clean_exit();
}

TEST_F(ServeConnectionTest, DrainClosesAnIdleConnection) {
  Client client = start_child(kGet);
  ASSERT_TRUE(client.read_response());
  ASSERT_TRUE(wait_for_state(common::WorkerState::kIdle));  // signalfd is set up
  ASSERT_EQ(::kill(pid_, SIGQUIT), 0);
  EXPECT_TRUE(client.closed_by_peer());
  expect_clean_exit();
}

}  // namespace
}  // namespace prefork::worker
