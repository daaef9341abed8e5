// Hostile clients against the real binary over loopback (issue 4): slowloris, request smuggling,
// oversized and malformed requests, resets, half-close, descriptor exhaustion; plus the
// privilege drop and RLIMIT_NOFILE sizing seen from /proc. Every test checks that the server
// keeps serving and logs no unexpected error.
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "tests/support/server_process.hpp"
#include "tests/support/shared_server_suite.hpp"

namespace prefork::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Clock = std::chrono::steady_clock;
using namespace std::string_literals;

// ---- helpers ----------------------------------------------------------------------------------

common::UniqueFd connect_raw(std::uint16_t port, int rcvbuf = 0) {
  common::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (rcvbuf > 0) ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("connect failed: " + std::string(std::strerror(errno)));
  }
  return fd;
}

// Sends as much of `bytes` as the peer takes; false when it stopped taking them (closed).
bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Everything the peer sends until it closes (EOF or reset) or `timeout` passes; `closed` says
// which.
std::string read_until_closed(int fd, Duration timeout, bool* closed = nullptr) {
  std::string out;
  const auto deadline = Clock::now() + timeout;
  if (closed != nullptr) *closed = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<Duration>(deadline - Clock::now()).count();
    if (left <= 0) return out;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return out;
    char buf[65536];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (closed != nullptr) *closed = true;
      return out;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

std::size_t count(std::string_view haystack, std::string_view needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string_view::npos;
       pos = haystack.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

std::string first_line(const std::string& bytes) {
  return bytes.substr(0, bytes.find("\r\n"));
}

// An abortive close: SO_LINGER 0 makes close() send RST instead of FIN.
void reset(common::UniqueFd& fd) {
  const linger l{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  fd.reset();
}

// User plus system CPU time of `pid`, in seconds (/proc/<pid>/stat fields 14 and 15).
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = content.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(content.substr(close + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A line of /proc/<pid>/status, e.g. "Uid:\t65534\t65534\t65534\t65534" -> "65534 65534 ...".
std::string status_field(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + ":", 0) == 0) {
      std::istringstream values(line.substr(name.size() + 1));
      std::string out, v;
      while (values >> v) out += (out.empty() ? "" : " ") + v;
      return out;
    }
  }
  return {};
}

std::string four(unsigned id) {
  const std::string s = std::to_string(id);
  return s + " " + s + " " + s + " " + s;
}

// "Max open files" soft and hard limits of `pid`.
std::pair<std::string, std::string> nofile_limits(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Max open files", 0) == 0) {
      std::istringstream values(line.substr(14));
      std::string soft, hard;
      values >> soft >> hard;
      return {soft, hard};
    }
  }
  return {};
}

// The server answers a normal request within `timeout` (retrying while it recovers).
bool serves_within(std::uint16_t port, Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  do {
    try {
      if (fetch(port, get_request()).body == "Hello, World!") return true;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(50ms);
  } while (Clock::now() < deadline);
  return false;
}

void report(const std::string& key, const std::string& value) {
  ::testing::Test::RecordProperty(key, value);
  std::cout << "[ hardening ] " << key << ": " << value << "\n";
}

// ---- one shared server for the request-level attacks -------------------------------------------

ServerOptions hardening_options() {
  return {.args = {"--workers", "2"}};
}

// Request-level attacks get the same answers from a prefork worker and from a child per
// connection.
class Hardening : public ModelSuite<Hardening> {
 public:
  static ServerOptions server_options() { return hardening_options(); }
};

INSTANTIATE_TEST_SUITE_P(BothModels, Hardening, kBothModels, model_param_name);

struct Attack {
  const char* name;
  std::string request;  // followed on the wire by a smuggled GET that must never be answered
  int status;
};

void PrintTo(const Attack& a, std::ostream* out) {
  *out << a.name;
}

class Attacks : public ModelSuite<Attacks, std::tuple<Model, Attack>> {
 public:
  static ServerOptions server_options() { return hardening_options(); }
};

// Exactly one response, the expected error with Connection: close, then the connection closes;
// the bytes after the bad request (a complete GET) never get an answer.
TEST_P(Attacks, OneErrorResponseThenCloseAndNothingForTheSmuggledBytes) {
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
  common::UniqueFd fd = connect_raw(port());
  send_all(fd.get(), test_case().request + smuggled);  // the server may close before the end
  bool closed = false;
  const std::string answer = read_until_closed(fd.get(), kIoTimeout, &closed);
  report(std::string("answer/") + test_case().name, first_line(answer));
  EXPECT_EQ(first_line(answer).substr(0, 12), "HTTP/1.1 " + std::to_string(test_case().status))
      << answer;
  EXPECT_EQ(count(answer, "HTTP/1.1 "), 1U) << "a second response:\n" << answer;
  EXPECT_THAT(answer, HasSubstr("\r\nConnection: close\r\n"));
  EXPECT_TRUE(closed) << "the connection stayed open";
  EXPECT_EQ(fetch(port(), get_request()).body, "Hello, World!");
}

std::string post(const std::string& framing, const std::string& body) {
  return "POST / HTTP/1.1\r\nHost: a\r\n" + framing + "\r\n" + body;
}

std::string many_headers(int n) {
  std::string r = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < n; ++i) r += "a: b\r\n";
  return r + "\r\n";
}

INSTANTIATE_TEST_SUITE_P(
    Smuggling, Attacks,
    ::testing::Combine(
        kBothModels,
        ::testing::Values(
            Attack{"ContentLengthAndChunked",
                   post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400},
            Attack{"ChunkedAndContentLength",
                   post("Transfer-Encoding: chunked\r\nContent-Length: 6\r\n", "0\r\n\r\n"), 400},
            Attack{"TwoDifferentContentLengths",
                   post("Content-Length: 3\r\nContent-Length: 40\r\n", "abc"), 400},
            Attack{"TwoEqualContentLengths",
                   post("Content-Length: 3\r\nContent-Length: 3\r\n", "abc"), 400},
            Attack{"ChunkedThenIdentity",
                   post("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"), 400},
            Attack{
                "ChunkedTwice",
                post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
                400},
            Attack{"XChunked", post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), 400},
            Attack{"ChunkedInHttp10",
                   "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
            Attack{"ObsFoldedTransferEncoding",
                   post("Transfer-Encoding:\r\n chunked\r\n", "0\r\n\r\n"), 400},
            Attack{"InvalidChunkSize",
                   post("Transfer-Encoding: chunked\r\n", "zz\r\nhi\r\n0\r\n\r\n"), 400},
            Attack{
                "ChunkSizeOverflow",
                post("Transfer-Encoding: chunked\r\n", "fffffffffffffffffffff\r\nx\r\n0\r\n\r\n"),
                400},
            Attack{"ChunkSize2Pow64",
                   post("Transfer-Encoding: chunked\r\n", "10000000000000000\r\n"), 400},
            Attack{"ChunkDataLongerThanItsSize",
                   post("Transfer-Encoding: chunked\r\n", "1\r\nabc\r\n0\r\n\r\n"), 400},
            Attack{"ChunkSizeBareLf", post("Transfer-Encoding: chunked\r\n", "3\nabc\r\n0\r\n\r\n"),
                   400},
            Attack{"NegativeContentLength", post("Content-Length: -1\r\n", ""), 400},
            Attack{"PlusContentLength", post("Content-Length: +3\r\n", "abc"), 400},
            Attack{"ContentLengthList", post("Content-Length: 3, 3\r\n", "abc"), 400},
            Attack{"ContentLengthOverflow", post("Content-Length: 184467440737095516160\r\n", ""),
                   400},
            Attack{"SpaceBeforeColonInTransferEncoding",
                   post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"), 400},
            Attack{"TenThousandTinyHeaders", many_headers(10'000), 431},
            Attack{"HundredKibUri",
                   "GET /" + std::string(100 * 1024, 'u') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
            Attack{"NulInTarget", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"s, 400},
            Attack{"NulInHeaderValue", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s, 400},
            Attack{"NulInHeaderName", "GET / HTTP/1.1\r\nHost: a\r\nX\0Y: b\r\n\r\n"s, 400},
            Attack{"BareLfLineEnds", "GET / HTTP/1.1\nHost: a\n\n", 400},
            Attack{"BareLfAfterAHeader", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400},
            Attack{"BareCr", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400},
            Attack{"ObsFold", "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", 400},
            Attack{"WhitespaceBeforeColon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
            Attack{"TabBeforeColon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400},
            Attack{"LeadingWhitespaceFirstHeader", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400})),
    model_case_name<Attack>);

TEST_P(Hardening, HalfCloseAfterAFullRequestStillGetsTheResponse) {
  common::UniqueFd fd = connect_raw(port());
  ASSERT_TRUE(send_all(fd.get(), get_request()));
  ::shutdown(fd.get(), SHUT_WR);
  bool closed = false;
  const std::string answer = read_until_closed(fd.get(), kIoTimeout, &closed);
  EXPECT_EQ(first_line(answer), "HTTP/1.1 200 OK");
  EXPECT_THAT(answer, ::testing::EndsWith("Hello, World!"));
  EXPECT_TRUE(closed) << "the server keeps a half-closed connection open";

  // Three pipelined requests, then half-close: all three are answered, in order.
  common::UniqueFd three = connect_raw(port());
  ASSERT_TRUE(send_all(three.get(), get_request("/1") + get_request("/2") + get_request("/3")));
  ::shutdown(three.get(), SHUT_WR);
  const std::string answers = read_until_closed(three.get(), kIoTimeout, &closed);
  EXPECT_EQ(count(answers, "HTTP/1.1 200 OK"), 3U) << answers;
  EXPECT_TRUE(closed);
}

TEST_P(Hardening, ClientResetsMidRequestAndMidResponseLeaveTheServerServing) {
  const auto workers = server().children();
  // Mid request line, mid headers, mid body (1 MiB announced, 64 KiB sent).
  for (const std::string& partial :
       {std::string("GET /some"), std::string("GET / HTTP/1.1\r\nHost: a\r\nX-Long: aaa"),
        post("Content-Length: 1048576\r\n", std::string(64 * 1024, 'b'))}) {
    common::UniqueFd fd = connect_raw(port());
    ASSERT_TRUE(send_all(fd.get(), partial));
    ASSERT_TRUE(wait_server_read(fd.get()));  // the reset comes after the worker read it
    reset(fd);
  }
  // Mid response: 20,000 pipelined requests (~3.5 MB of answers) to a client that reads a
  // little through a tiny receive buffer, then resets while the worker is still writing.
  std::string pipeline;
  for (int i = 0; i < 20'000; ++i) pipeline += get_request();
  for (int round = 0; round < 3; ++round) {
    common::UniqueFd fd = connect_raw(port(), /*rcvbuf=*/4096);
    std::thread writer([&, raw = fd.get()] { send_all(raw, pipeline); });
    char buf[1024];
    ASSERT_GT(::recv(fd.get(), buf, sizeof buf, 0), 0);
    std::this_thread::sleep_for(50ms);
    ::shutdown(fd.get(), SHUT_WR);  // unblocks the writer if the server stopped reading
    reset(fd);
    writer.join();
  }
  EXPECT_TRUE(serves_within(port(), 2s));
  if (model() == Model::kPrefork) {
    EXPECT_EQ(server().children(), workers) << "a worker died";
  } else {
    EXPECT_TRUE(server().wait_for_children(0)) << "a child outlived its reset connection";
  }
  EXPECT_THAT(server().unexpected_errors(), IsEmpty());
}

// ---- slowloris --------------------------------------------------------------------------------

TEST(HardeningSlowloris, FiveHundredTricklingClientsDoNotSlowOthersAndAllGet408) {
  // header_timeout is a deadline for the whole head: trickling bytes does not extend it.
  ServerProcess server({.args = {"--workers", "2", "--set", "header_timeout=4"}});
  constexpr int kSlow = 500;
  std::vector<common::UniqueFd> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(connect_raw(server.port()));
    send_all(slow.back().get(), "GET / HTTP/1.1\r\nHost: a\r\n");
  }
  const auto attack_start = Clock::now();

  // A normal client (a fresh connection per request, and a keep-alive one) meanwhile.
  std::atomic<bool> stop{false};
  std::vector<double> latencies_ms;
  int failures = 0;
  std::thread normal([&] {
    Client keep(server.port());
    for (int i = 0; i < 400 && !stop; ++i) {
      const auto t0 = Clock::now();
      try {
        const Response r = i % 2 == 0 ? fetch(server.port(), get_request()) : [&] {
          keep.send(get_request());
          return keep.read_response();
        }();
        if (r.status != 200) ++failures;
      } catch (const std::exception&) {
        ++failures;
      }
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      std::this_thread::sleep_for(20ms);
    }
  });

  // Trickle one header byte per connection every 100 ms until the server closes each one.
  const std::string trickle = "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
  std::vector<std::string> received(kSlow);
  std::vector<bool> open(kSlow, true);
  int still_open = kSlow;
  std::size_t step = 0;
  while (still_open > 0 && Clock::now() - attack_start < 10s) {
    for (int i = 0; i < kSlow; ++i) {
      if (!open[static_cast<std::size_t>(i)]) continue;
      const int fd = slow[static_cast<std::size_t>(i)].get();
      ::send(fd, &trickle[step % trickle.size()], 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      char buf[4096];
      for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
          received[static_cast<std::size_t>(i)].append(buf, static_cast<std::size_t>(n));
          continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
          open[static_cast<std::size_t>(i)] = false;
          --still_open;
        }
        break;
      }
    }
    ++step;
    std::this_thread::sleep_for(100ms);
  }
  const double attack_seconds = std::chrono::duration<double>(Clock::now() - attack_start).count();
  stop = true;
  normal.join();

  int got_408 = 0;
  for (const auto& r : received) got_408 += first_line(r) == "HTTP/1.1 408 Request Timeout";
  std::vector<double> sorted = latencies_ms;
  std::sort(sorted.begin(), sorted.end());
  ASSERT_FALSE(sorted.empty());
  const double p50 = sorted[sorted.size() / 2];
  const double p99 = sorted[std::min(sorted.size() - 1, sorted.size() * 99 / 100)];
  const double max = sorted.back();
  report("slowloris normal requests", std::to_string(sorted.size()));
  report("slowloris latency ms p50/p99/max",
         std::to_string(p50) + " / " + std::to_string(p99) + " / " + std::to_string(max));
  report("slowloris connections answered 408 and closed",
         std::to_string(got_408) + " of " + std::to_string(kSlow) + " after " +
             std::to_string(attack_seconds) + " s (" + std::to_string(step) +
             " trickled bytes each)");
  EXPECT_EQ(failures, 0);
  EXPECT_LT(max, 1000.0) << "a normal request took more than a second under slowloris";
  EXPECT_EQ(still_open, 0) << "trickling kept connections open past header_timeout";
  EXPECT_EQ(got_408, kSlow);
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

// ---- descriptor exhaustion --------------------------------------------------------------------

// Sets the soft RLIMIT_NOFILE of a running process (prlimit(2)); the hard limit stays, so the
// soft one can be restored without CAP_SYS_RESOURCE (which even root lacks in some containers).
// Changing another process's limits without that capability needs the same uids: the tests
// that use this run the children as the test's own user.
void set_soft_nofile(pid_t pid, rlim_t soft) {
  rlimit limit{};
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, nullptr, &limit), 0) << std::strerror(errno);
  limit.rlim_cur = soft;
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &limit, nullptr), 0) << std::strerror(errno);
}

// The lowest descriptor number `pid` does not use: where its next open/accept would land.
rlim_t lowest_free_fd(pid_t pid) {
  std::vector<int> used;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    used.push_back(std::stoi(entry.path().filename().string()));
  }
  std::sort(used.begin(), used.end());
  int free_fd = 0;
  for (const int fd : used) {
    if (fd == free_fd) ++free_fd;
  }
  return static_cast<rlim_t>(free_fd);
}

// `--set user=...` naming the test's own user, so the children keep the test's uid.
std::vector<std::string> same_user() {
  const passwd* pw = ::getpwuid(::geteuid());
  return {"--set", "user=\"" + std::string(pw != nullptr ? pw->pw_name : "root") + "\""};
}

TEST(HardeningDescriptors, WorkerOutOfDescriptorsPausesCheaplyShedsWaitersAndRecovers) {
  auto args = same_user();
  args.insert(args.end(), {"--workers", "1", "--set", "header_timeout=60"});
  ServerProcess server({.args = args});
  const auto workers = server.children();
  ASSERT_EQ(workers.size(), 1U);
  const pid_t worker = workers[0];
  set_soft_nofile(worker, 64);

  // Far more clients than 64 descriptors: each sends a partial head and waits.
  constexpr int kClients = 300;
  std::vector<common::UniqueFd> clients;
  const auto mark = server.log_mark();
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(connect_raw(server.port()));
    send_all(clients.back().get(), "GET / HTTP/1.1\r\n");
  }
  // Saturated: the worker ran out of descriptors and paused. Then its CPU over one second.
  ASSERT_TRUE(server.wait_for_log("pausing accepts", mark, 5s));
  const double cpu0 = cpu_seconds(worker);
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(1s);
  const double cpu =
      (cpu_seconds(worker) - cpu0) / std::chrono::duration<double>(Clock::now() - t0).count();

  // Waiting clients the worker shed (closed via its spare descriptor) see EOF or a reset.
  int shed = 0;
  for (auto& c : clients) {
    pollfd p{c.get(), POLLIN, 0};
    if (::poll(&p, 1, 0) == 1) ++shed;
  }
  report("exhaustion worker CPU while saturated (fraction of a core)", std::to_string(cpu));
  report("exhaustion waiting clients closed by the spare-fd trick after 2 s",
         std::to_string(shed) + " of " + std::to_string(kClients));
  EXPECT_LT(cpu, 0.20) << "busy loop while out of descriptors";
  EXPECT_GT(shed, 0) << "waiting clients are left hanging";
  const std::string log = server.log_since(mark);
  EXPECT_LE(count(log, "pausing accepts"), 2U) << "the EMFILE line is not rate-limited";

  clients.clear();  // everyone leaves
  EXPECT_TRUE(serves_within(server.port(), 3s)) << "no recovery after the clients left";
  for (int i = 0; i < 20; ++i) EXPECT_EQ(fetch(server.port(), get_request()).status, 200);
  EXPECT_EQ(server.children(), workers) << "the worker was replaced";
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

// Per-connection mode: the master itself accepts, so it must pause on EMFILE too (without the
// pause it spun at ~66% of a core writing ~140,000 error lines in 1.5 s).
TEST(HardeningDescriptors, PerConnectionMasterOutOfDescriptorsPausesCheaplyAndRecovers) {
  ServerProcess server({.args = {"--mode", "per-connection", "--set", "max_children=1000"}});
  const pid_t master = server.pid();
  // The limit caps descriptor numbers: at the lowest free one, the next accept4 fails (EMFILE).
  set_soft_nofile(master, lowest_free_fd(master));

  std::vector<common::UniqueFd> clients;
  const auto mark = server.log_mark();
  for (int i = 0; i < 50; ++i) {
    clients.push_back(connect_raw(server.port()));
    // Some bytes: with TCP_DEFER_ACCEPT a silent connection never reaches the accept queue.
    send_all(clients.back().get(), "GET / HTTP/1.1\r\n");
  }
  // Saturated: accept4 failed and the master paused. Then its CPU over one second.
  ASSERT_TRUE(server.wait_for_log("accept4", mark, 5s));
  const double cpu0 = cpu_seconds(master);
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(1s);
  const double cpu =
      (cpu_seconds(master) - cpu0) / std::chrono::duration<double>(Clock::now() - t0).count();
  report("exhaustion per-connection master CPU (fraction of a core)", std::to_string(cpu));
  const std::string log = server.log();
  EXPECT_LT(cpu, 0.20) << "busy loop while out of descriptors";
  EXPECT_LE(count(log, "accept4"), 2U) << "the EMFILE line is not rate-limited:\n"
                                       << log.substr(0, 3000);

  clients.clear();
  set_soft_nofile(master, 1024);
  EXPECT_TRUE(serves_within(server.port(), 3s)) << "no recovery";
  EXPECT_THAT(server.unexpected_errors({"accept4"}), IsEmpty());
}

// ---- RLIMIT_NOFILE at startup -----------------------------------------------------------------

// Starts a server while the test process has the given limit (the master inherits it).
std::unique_ptr<ServerProcess> start_with_nofile(rlim_t soft, rlim_t hard, ServerOptions options) {
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  const rlimit limit{soft, hard};
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return nullptr;
  std::unique_ptr<ServerProcess> server;
  try {
    server = std::make_unique<ServerProcess>(std::move(options));
  } catch (...) {
    ::setrlimit(RLIMIT_NOFILE, &saved);
    throw;
  }
  ::setrlimit(RLIMIT_NOFILE, &saved);
  return server;
}

TEST(HardeningDescriptors, MasterRaisesTheSoftLimitToWhatTheConfigNeeds) {
  rlimit current{};
  ::getrlimit(RLIMIT_NOFILE, &current);
  if (current.rlim_max != RLIM_INFINITY && current.rlim_max < 2000) GTEST_SKIP() << "hard < 2000";
  auto server = start_with_nofile(256, current.rlim_max,
                                  {.args = {"--workers", "1", "--set", "max_connections=1500"}});
  ASSERT_TRUE(server);
  const std::string needed = std::to_string(1500 + 1 + 64);  // + one listener + margin
  EXPECT_EQ(nofile_limits(server->pid()).first, needed);
  for (const pid_t w : server->children()) EXPECT_EQ(nofile_limits(w).first, needed);
  EXPECT_THAT(server->log(), HasSubstr("RLIMIT_NOFILE soft limit raised from 256 to " + needed));

  auto per_connection = start_with_nofile(
      256, current.rlim_max, {.args = {"--mode", "per-connection", "--set", "max_children=700"}});
  ASSERT_TRUE(per_connection);
  EXPECT_EQ(nofile_limits(per_connection->pid()).first, std::to_string(700 + 1 + 64));
}

TEST(HardeningDescriptors, MasterWarnsWhenTheHardLimitIsTooLow) {
  // Lowering a hard limit cannot be undone without CAP_SYS_RESOURCE, so a forked helper does it
  // and starts the server; it reports through its exit code and stderr.
  const pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    const char* failure = nullptr;
    {
      const rlimit low{100, 200};
      ::setrlimit(RLIMIT_NOFILE, &low);
      ServerProcess server({.args = {"--workers", "1"}});
      const std::string log = server.log();
      if (nofile_limits(server.pid()) != std::make_pair(std::string("200"), std::string("200"))) {
        failure = "soft limit not raised to the hard limit 200";
      } else if (log.find("RLIMIT_NOFILE hard limit 200 is below the 4161 descriptors "
                          "max_connections = 4096 needs") == std::string::npos ||
                 log.find("[warning]") == std::string::npos) {
        failure = "no warning naming the hard limit and max_connections";
      } else if (!serves_within(server.port(), 2s)) {
        failure = "does not serve";
      }
      if (failure != nullptr) std::cerr << failure << "\nlog:\n" << log;
    }
    ::_exit(failure == nullptr ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(helper, &status, 0), helper);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// ---- privilege drop (root only: CI runs as root) ----------------------------------------------

class HardeningPrivileges : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the privilege drop applies only when started as root";
    const passwd* pw = ::getpwnam("nobody");
    if (pw == nullptr) GTEST_SKIP() << "no user nobody";
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
  }
  unsigned uid_ = 0;
  unsigned gid_ = 0;
};

TEST_F(HardeningPrivileges, WorkersRunAsNobodyAndTheMasterStaysRoot) {
  ServerProcess server({.args = {"--workers", "2", "--set", "user=\"nobody\""}});
  EXPECT_EQ(status_field(server.pid(), "Uid"), four(0));
  const auto workers = server.children();
  ASSERT_EQ(workers.size(), 2U);
  for (const pid_t w : workers) {
    EXPECT_EQ(status_field(w, "Uid"), four(uid_)) << "worker " << w;
    EXPECT_EQ(status_field(w, "Gid"), four(gid_)) << "worker " << w;
    EXPECT_EQ(status_field(w, "Groups"), std::to_string(gid_)) << "root's groups were kept";
    EXPECT_EQ(status_field(w, "CapEff"), "0000000000000000");
    EXPECT_EQ(status_field(w, "CapPrm"), "0000000000000000");
    // Not dumpable: /proc/<pid>/status then belongs to root although the process runs as nobody.
    struct stat st {};
    ASSERT_EQ(::stat(("/proc/" + std::to_string(w) + "/status").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 0U) << "worker is dumpable (ptrace-able by other nobody processes)";
  }
  EXPECT_THAT(server.log(), HasSubstr("children run as user nobody"));
  EXPECT_EQ(fetch(server.port(), get_request()).body, "Hello, World!");
  // The parent-death signal survives the drop: killing the master takes the workers with it
  // (the harness's destructor checks no child outlives the master).
  server.signal(SIGKILL);
  ASSERT_TRUE(server.wait_exit(5s));
  for (const pid_t w : workers) EXPECT_TRUE(wait_gone(w, 5s)) << "worker " << w << " survived";
}

TEST_F(HardeningPrivileges, PerConnectionChildrenRunAsTheConfiguredUserAndGroup) {
  const passwd* daemon_user = ::getpwnam("daemon");
  if (daemon_user == nullptr) GTEST_SKIP() << "no user daemon";
  ServerProcess server({.args = {"--mode", "per-connection", "--set", "user=\"daemon\"", "--set",
                                 "group=\"nogroup\""}});
  Client c(server.port());
  c.send(get_request());
  ASSERT_EQ(c.read_response().status, 200);  // its child stays for keep-alive
  const auto children = server.children();
  ASSERT_EQ(children.size(), 1U);
  EXPECT_EQ(status_field(children[0], "Uid"), four(daemon_user->pw_uid));
  EXPECT_EQ(status_field(children[0], "Gid"), four(gid_));  // nogroup
  EXPECT_EQ(status_field(server.pid(), "Uid"), four(0));
}

TEST_F(HardeningPrivileges, PrivilegedPortStillWorksAfterTheDrop) {
  // Find a free port below 1024 (we are root, so we can bind it to check).
  std::uint16_t port = 0;
  for (std::uint16_t p = 980; p < 1020 && port == 0; ++p) {
    common::UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(p);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) port = p;
  }
  if (port == 0) GTEST_SKIP() << "no free port below 1024";
  ServerProcess server({.args = {"--workers", "1"}, .listen = "127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(server.port(), port);
  for (const pid_t w : server.children()) EXPECT_EQ(status_field(w, "Uid"), four(uid_));
  EXPECT_EQ(fetch(port, get_request()).body, "Hello, World!");
}

TEST_F(HardeningPrivileges, RootOptInLogsAWarningAndKeepsRoot) {
  ServerProcess server({.args = {"--workers", "1", "--set", "user=\"root\""}});
  const std::string log = server.log();
  EXPECT_EQ(count(log, "user = \"root\": children run as root (explicit opt-in)"), 1U) << log;
  EXPECT_THAT(log,
              ::testing::ContainsRegex("\\[warning\\] master \\(pid [0-9]+\\): user = \"root\""));
  for (const pid_t w : server.children()) EXPECT_EQ(status_field(w, "Uid"), four(0));
  EXPECT_EQ(fetch(server.port(), get_request()).body, "Hello, World!");
}

TEST_F(HardeningPrivileges, UnknownUserOrGroupExitsTwoNamingTheKey) {
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"user", "no-such-user-x"},
                                   {"group", "no-such-group-x"}}) {
    ServerProcess server({.args = {"--set", key + "=\"" + value + "\""}, .wait_ready = false});
    const auto status = server.wait_exit(5s);
    ASSERT_TRUE(status);
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << server.log();
    EXPECT_THAT(server.log(), HasSubstr("key '" + key + "': no such " + key + " \"" + value));
  }
}

// The user lookups run in a short-lived helper: the name service modules they load (e.g.
// libnss_systemd and its libcap) never enter the master, so no child copies their mappings.
TEST_F(HardeningPrivileges, TheMasterLoadsNoNameServiceModule) {
  // The same lookups in this process: whatever modules they load here, they load anywhere.
  std::vector<gid_t> groups(64);
  int count = static_cast<int>(groups.size());
  ::getgrouplist("nobody", gid_, groups.data(), &count);
  if (read_file("/proc/self/maps").find("libnss_") == std::string::npos) {
    GTEST_SKIP() << "this system's user lookups load no name service module";
  }
  for (const Model model : {Model::kPrefork, Model::kPerConnection}) {
    ServerProcess server(in_model(model, {.args = {"--set", "user=\"nobody\""}}));
    expect_runs_in(server, model);
    const std::string maps = read_file("/proc/" + std::to_string(server.pid()) + "/maps");
    EXPECT_EQ(maps.find("libnss_"), std::string::npos) << model_name(model) << ":\n" << maps;
    EXPECT_THAT(server.log(), HasSubstr("children run as user nobody"));
    EXPECT_EQ(fetch(server.port(), get_request()).body, "Hello, World!");
  }
}

TEST_F(HardeningPrivileges, ReloadWithAnUnknownUserIsRejectedAndServingContinues) {
  ServerProcess server({.config = "workers = 1\n"});
  const auto workers = server.children();
  // Rewrite the config file in place with a bad user, then HUP.
  std::ofstream(server.config_path()) << "workers = 1\nuser = \"no-such-user-x\"\n";
  const auto mark = server.log_mark();
  server.signal(SIGHUP);
  ASSERT_TRUE(server.wait_for_log("no such user \"no-such-user-x\"", mark));
  EXPECT_EQ(fetch(server.port(), get_request()).body, "Hello, World!");
  EXPECT_EQ(server.children(), workers);
}

}  // namespace
}  // namespace prefork::testing
