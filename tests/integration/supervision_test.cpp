// Supervision of the real binary under load: per-connection mode at volume, reload under load,
// a broken reload, and a worker killed under load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <thread>

#include "tests/support/server_process.hpp"

namespace prefork::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Clock = std::chrono::steady_clock;

int exit_code(std::optional<int> status) {
  return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

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
  [[nodiscard]] const std::string& first_failure() const { return first_failure_; }

 private:
  void run() {
    const auto deadline = Clock::now() + 30s;
    while (!stop_ && requests_ < 200'000 && Clock::now() < deadline) {
      try {
        Client c(port_);
        for (int i = 0; i < 5 && !stop_; ++i) {
          c.send(get_request());
          const Response r = c.read_response();
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
  const std::size_t mark = server.log().size();
  server.signal(SIGHUP);
  ASSERT_TRUE(server.wait_for_log("retiring 2 old workers", 10s, mark));
  for (const pid_t w : old_workers) EXPECT_TRUE(wait_gone(w, 10s));
  const int at_reload = load.requests();
  while (load.requests() < at_reload + 200) std::this_thread::sleep_for(1ms);
  load.stop();
  EXPECT_EQ(server.children().size(), 3U);
  EXPECT_EQ(load.failures(), 0) << load.first_failure() << " of " << load.requests();
  std::printf("reload under load: %d requests, %d failed\n", load.requests(), load.failures());
  EXPECT_THAT(server.unexpected_errors(), IsEmpty());
}

TEST(Supervision, ReloadWithABrokenConfigKeepsTheOldOneServing) {
  ServerProcess server({.config = "workers = 2\n"});
  const auto before = server.children();
  server.dir().write("server.conf", "workers = 2\nkeepalive_timeout = \"soon\"\n");
  server.signal(SIGHUP);
  ASSERT_TRUE(server.wait_for_log("reload failed, keeping the running configuration"));
  EXPECT_THAT(server.log(), HasSubstr(server.config_path() + ":2: key 'keepalive_timeout'"));
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
