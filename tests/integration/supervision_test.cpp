// Supervision of the real binary under load: per-connection mode at volume, reload under load,
// a broken reload, and a worker killed under load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "tests/support/server_process.hpp"

namespace prefork::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Clock = std::chrono::steady_clock;

// A bounded client load: new connections and keep-alive requests alternately, until stopped or
// until its request/time budget runs out. Counts every request and every failure.
class Load {
 public:
  explicit Load(std::uint16_t port) : port_(port), thread_([this] { run(); }) {}
  ~Load() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] int requests() const { return requests_; }
  [[nodiscard]] int failures() const { return failures_; }
  [[nodiscard]] int retries() const { return retries_; }
  [[nodiscard]] const std::string& first_failure() const { return first_failure_; }

 private:
  // Like every HTTP client, it retries a request once when a reused keep-alive connection
  // turns out closed before any byte of the answer (RFC 9112 §9.3.1): the server may close an
  // idle connection at any moment, e.g. when a draining worker lets it go.
  void run() {
    const auto deadline = Clock::now() + 30s;
    while (!stop_ && requests_ < 200'000 && Clock::now() < deadline) {
      try {
        Client c(port_);
        for (int i = 0; i < 5 && !stop_; ++i) {
          Response r;
          try {
            c.send(get_request());
            r = c.read_response();
          } catch (const std::exception&) {
            if (i == 0) throw;
            ++retries_;
            break;  // the next connection sends it again
          }
          ++requests_;
          if (r.status != 200 || r.body != "Hello, World!") fail("status " + r.status_line);
          if (r.header("connection") == "close") break;
        }
      } catch (const std::exception& err) {
        ++requests_;
        fail(err.what());
      }
    }
  }
  void fail(const std::string& why) {
    if (failures_++ == 0) first_failure_ = why;
  }

  std::uint16_t port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> failures_{0};
  std::atomic<int> retries_{0};
  std::string first_failure_;
  std::thread thread_;
};

TEST(Supervision, PerConnectionModeServes5000ConnectionsWithoutZombiesOrLeaks) {
  ServerProcess server({.args = {"--mode", "per-connection", "--set", "max_children=64"}});
  const std::size_t fds_before = server.open_fd_count();
  int ok = 0;
  for (int burst = 0; burst < 25; ++burst) {
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 200; ++i) {
      clients.push_back(std::make_unique<Client>(server.port()));
      clients.back()->send(get_request("/", "Connection: close\r\n"));
    }
    for (auto& c : clients) ok += c->read_response().body == "Hello, World!" ? 1 : 0;
  }
  EXPECT_EQ(ok, 5000);
  // Every child exits after its connection; the master reaps all of them.
  const auto deadline = Clock::now() + 5s;
  while ((!server.children().empty() || zombies_of(server.pid()) > 0) && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(server.children().size(), 0U);
  EXPECT_EQ(zombies_of(server.pid()), 0U);
  EXPECT_EQ(server.open_fd_count(), fds_before);
  server.signal(SIGTERM);
  EXPECT_EQ(exit_code(server.wait_exit(5s)), 0);
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

TEST(Supervision, ReloadUnderLoadFailsNoRequestAndAppliesTheNewConfig) {
  ServerProcess server({.config = "workers = 2\n"});
  const auto old_workers = server.children();
  Load load(server.port());
  while (load.requests() < 200) std::this_thread::sleep_for(1ms);
  server.dir().write("server.conf", "workers = 3\n");
  const auto mark = server.log_mark();
  server.signal(SIGHUP);
  ASSERT_TRUE(server.wait_for_log("retiring 2 old workers", mark, 10s));
  for (const pid_t w : old_workers) EXPECT_TRUE(wait_gone(w, 10s));
  const int at_reload = load.requests();
  while (load.requests() < at_reload + 200) std::this_thread::sleep_for(1ms);
  load.stop();
  EXPECT_EQ(server.children().size(), 3U);
  EXPECT_EQ(load.failures(), 0) << load.first_failure() << " of " << load.requests();
  std::printf("reload under load: %d requests, %d failed, %d retried on a reused connection\n",
              load.requests(), load.failures(), load.retries());
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

TEST(Supervision, ReloadWithABrokenConfigKeepsTheOldOneServing) {
  ServerProcess server({.config = "workers = 2\n"});
  const auto before = server.children();
  server.dir().write("server.conf", "workers = 2\nkeepalive_timeout = \"soon\"\n");
  const auto mark = server.log_mark();
  server.signal(SIGHUP);
  ASSERT_TRUE(server.wait_for_log("reload failed, keeping the running configuration", mark));
  EXPECT_THAT(server.log_since(mark),
              HasSubstr(server.config_path() + ":2: key 'keepalive_timeout'"));
  EXPECT_EQ(server.children(), before);
  EXPECT_EQ(fetch(server.port(), get_request()).body, "Hello, World!");
  EXPECT_THAT(server.unexpected_errors({"reload failed"}), IsEmpty());
}

TEST(Supervision, AWorkerKilledUnderLoadAffectsOnlyItsOwnConnections) {
  ServerProcess server({.args = {"--workers", "2"}});
  const auto workers = server.children();
  ASSERT_EQ(workers.size(), 2U);
  // Keep-alive connections opened from several threads at once, so that both workers accept
  // some (an idle pool hands sequential connections to the same worker).
  constexpr int kThreads = 4;
  constexpr int kPerThread = 15;
  std::vector<std::unique_ptr<Client>> clients(kThreads * kPerThread);
  std::vector<std::thread> openers;
  for (int t = 0; t < kThreads; ++t) {
    openers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto c = std::make_unique<Client>(server.port());
        c->send(get_request());
        if (c->read_response().status == 200)
          clients[static_cast<std::size_t>(t * kPerThread + i)] = std::move(c);
      }
    });
  }
  for (auto& t : openers) t.join();
  std::vector<pid_t> owners;
  for (const auto& c : clients) {
    ASSERT_TRUE(c);
    owners.push_back(connection_owner(workers, c->fd()));
    ASSERT_NE(owners.back(), 0);
  }
  const pid_t victim = owners.front();
  const auto survivors =
      std::count_if(owners.begin(), owners.end(), [&](pid_t o) { return o != victim; });
  std::printf("connections: %zu on the victim, %ld on the other worker\n",
              owners.size() - static_cast<std::size_t>(survivors), survivors);
  const auto killed_at = Clock::now();
  ::kill(victim, SIGKILL);
  ASSERT_TRUE(wait_gone(victim, 1s));
  for (std::size_t i = 0; i < clients.size(); ++i) {
    bool served = false;
    try {
      clients[i]->send(get_request());
      served = clients[i]->read_response(false, 2s).status == 200;
    } catch (const std::exception&) {
    }
    EXPECT_EQ(served, owners[i] != victim) << "connection " << i;
  }
  EXPECT_TRUE(server.wait_for_children(
      2, std::chrono::duration_cast<Duration>(1s - (Clock::now() - killed_at)), {victim}));
  EXPECT_EQ(fetch(server.port(), get_request()).status, 200);
  if (survivors == 0) GTEST_SKIP() << "every connection landed on one worker; nothing to compare";
}

TEST(Supervision, TtinAndTtouResizeTheRunningServer) {
  ServerProcess server({.args = {"--workers", "2"}});
  server.signal(SIGTTIN);
  EXPECT_TRUE(server.wait_for_children(3, 5s));
  server.signal(SIGTTOU);
  EXPECT_TRUE(server.wait_for_children(2, 5s));
  EXPECT_EQ(fetch(server.port(), get_request()).status, 200);
}

}  // namespace
}  // namespace prefork::testing

namespace prefork::testing {
namespace {

std::uint16_t port_in_log(const std::string& log, const std::string& host, std::size_t from = 0) {
  const std::string key = "listening on " + host + ":";
  const auto at = log.find(key, from);
  if (at == std::string::npos) return 0;
  return static_cast<std::uint16_t>(std::stoi(log.substr(at + key.size())));
}

TEST(Supervision, WorkersAreRecycledAfterMaxRequestsWithoutFailingARequest) {
  ServerProcess server({.args = {"--workers", "2", "--set", "max_requests=40"}});
  int ok = 0;
  for (int i = 0; i < 400; ++i) {
    ok += fetch(server.port(), get_request("/", "Connection: close\r\n")).status == 200 ? 1 : 0;
  }
  EXPECT_EQ(ok, 400);
  ASSERT_TRUE(server.wait_for_log("recycled after max_requests; draining", kLogStart));
  EXPECT_TRUE(server.wait_for_children(2, 5s));
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

TEST(Supervision, ReloadAddsAndRemovesListenersAndKeepsTheUnchangedOnes) {
  ServerProcess server({.config = "listen = [\"127.0.0.1:0\"]\nworkers = 1\n", .listen = ""});
  const std::uint16_t first = server.port();
  auto mark = server.log_mark();
  server.dir().write("server.conf", "listen = [\"127.0.0.1:0\", \"127.0.0.2:0\"]\nworkers = 1\n");
  server.signal(SIGHUP);
  ASSERT_TRUE(server.wait_for_log("listening on 127.0.0.2:", mark, 5s));
  const std::uint16_t second = port_in_log(server.log(), "127.0.0.2", mark.offset());
  ASSERT_TRUE(server.wait_for_log("retiring 1 old workers", mark, 5s));
  EXPECT_EQ(fetch(first, get_request()).status, 200);  // kept: same socket, same port
  Client c2(second, "127.0.0.2");
  c2.send(get_request());
  EXPECT_EQ(c2.read_response().status, 200);

  // Wait for the first reload's retired worker to be gone, so that only one worker holds the
  // first socket before the second reload.
  ASSERT_TRUE(server.wait_for_children(1, 5s));
  const std::vector<pid_t> holders = server.children();
  mark = server.log_mark();
  server.dir().write("server.conf", "listen = [\"127.0.0.2:0\"]\nworkers = 1\n");
  server.signal(SIGHUP);
  ASSERT_TRUE(
      server.wait_for_log("no longer listening on 127.0.0.1:" + std::to_string(first), mark, 5s));
  ASSERT_TRUE(server.wait_for_log("retiring 1 old workers", mark, 5s));
  for (const pid_t old : holders) ASSERT_TRUE(wait_gone(old, 5s)) << "old worker " << old;
  EXPECT_THROW(Client{first}, std::runtime_error);  // refused: nobody holds the socket any more
  Client again(second, "127.0.0.2");
  again.send(get_request());
  EXPECT_EQ(again.read_response().status, 200);
}

TEST(Supervision, Usr1ReopensTheLogInTheMasterAndEveryWorker) {
  TempDir logs;
  // Workers may run as another user (privilege drop when the test runs as root): they must be
  // able to reach the directory to reopen the file the master hands them.
  std::filesystem::permissions(logs.path(), std::filesystem::perms(0755));
  const std::string path = logs.path() + "/error.log";
  ServerProcess server(
      {.args = {"--workers", "2", "--set", "error_log=\"" + path + "\""}, .wait_ready = false});
  ASSERT_TRUE(wait_for_text(path, "ready:", 5s));
  const auto workers = server.children();
  ASSERT_EQ(workers.size(), 2U);
  std::filesystem::rename(path, path + ".1");  // what logrotate does before signalling
  server.signal(SIGUSR1);
  // Each worker has reopened (into the new file) before the drain signal.
  ASSERT_TRUE(
      wait_for_text(path, "SIGUSR1: log files reopened; asking children to reopen theirs", 5s))
      << read_file(path);
  for (const pid_t w : workers) {
    ASSERT_TRUE(
        wait_for_text(path, "(pid " + std::to_string(w) + "): SIGUSR1: log files reopened", 5s))
        << read_file(path);
  }
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_exit(5s));
  const std::string fresh = read_file(path);
  for (const pid_t w : workers) {
    EXPECT_THAT(fresh, HasSubstr("(pid " + std::to_string(w) + "): SIGQUIT: draining"))
        << "worker " << w << " still writes to the renamed file";
  }
  EXPECT_THAT(read_file(path + ".1"), ::testing::Not(HasSubstr("SIGQUIT")));
}

TEST(Supervision, PerClientIpCapClosesTheExtraConnection) {
  ServerProcess server({.args = {"--mode", "per-connection", "--set", "max_children_per_ip=1"}});
  Client first(server.port());
  first.send(get_request());
  ASSERT_EQ(first.read_response().status, 200);  // its child stays for keep-alive
  Client second(server.port());
  second.send(get_request());  // TCP_DEFER_ACCEPT: the master sees it once it has data
  EXPECT_TRUE(second.wait_closed());
  EXPECT_TRUE(server.wait_for_log("is at max_children_per_ip (1); connection closed", kLogStart));
  first.send(get_request());
  EXPECT_EQ(first.read_response().status, 200);
}

}  // namespace
}  // namespace prefork::testing

namespace prefork::testing {
namespace {

TEST(Supervision, DrainDelayKeepsServingAfterSigtermUntilItEnds) {
  ServerProcess server({.args = {"--workers", "1", "--set", "drain_delay=1.5"}});
  const auto start = std::chrono::steady_clock::now();
  const auto mark = server.log_mark();
  server.signal(SIGTERM);
  const auto delaying = server.wait_for_log("(drain_delay) before the listeners close", mark);
  ASSERT_TRUE(delaying);
  // New connections are still accepted and answered during the delay.
  EXPECT_EQ(fetch(server.port(), get_request()).body, "Hello, World!");
  ASSERT_TRUE(server.wait_for_log("drain_delay over: graceful stop", *delaying, 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1400ms);
  EXPECT_EQ(exit_code(server.wait_exit(5s)), 0);
  EXPECT_THROW(Client{server.port()}, std::runtime_error);
}

}  // namespace
}  // namespace prefork::testing
