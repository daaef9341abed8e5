// Signal-storm soak (issue 11, item 3): the master survives any sequence of signals.
//
// Under steady load, a seeded random sequence of reloads (good and bad configs), TTIN/TTOU,
// USR1, SIGKILL and SIGSTOP/SIGCONT of random workers, for PREFORK_SOAK_SECONDS (default 60).
// Throughout: the master is alive and reaps its children. At the end: the pool has its
// configured size, no zombies, the master's descriptor count is back to its start value, and
// every failed request is explained: it was in flight on a worker the test killed. Drains are
// race-free, so a request reset by a draining worker fails the test.
// PREFORK_SOAK_SEED replays a sequence of decisions (the timing of a run is not replayed).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "tests/soak/load.hpp"
#include "tests/support/server_process.hpp"

namespace prefork::testing::soak {
namespace {

constexpr unsigned kInitialWorkers = 3;
constexpr unsigned kInitialMaxChildren = 64;
// The master counts a worker that dies sooner than this after its start as a crash loop
// (master/worker_table.hpp, quick_death_window) and backs its slot off. The storm kills young
// workers only so often that no slot backs off by more than base_delay (a crash loop is the
// supervision tests' subject, not this one's).
constexpr Duration kQuickDeathWindow = 5500ms;
constexpr unsigned kYoungKillsPerSlot = 2;
constexpr Duration kMaxStopPause = 1500ms;
constexpr Duration kReloadOutcomeTimeout = 10s;
// Owner unknown, a failure is matched with a kill or drain by time: from the connection's last
// response (less kReadSlack: the response may have waited in the socket while its writer was
// killed) to the failure (plus kLogSlack: log stamps are in milliseconds, written just after).
constexpr Duration kReadSlack = 100ms;
constexpr Duration kLogSlack = 20ms;
constexpr Duration kSettleTimeout = 30s;  // graceful_timeout (10 s) plus a loaded machine's slack

unsigned long env_number(const char* name, unsigned long fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::stoul(value) : fallback;
}

std::string file_writing_user() {
  return ::geteuid() == 0 ? "user = \"root\"\n" : "";  // workers write the access log
}

enum class Mode { kPrefork, kPerConnection };

const char* mode_name(Mode mode) {
  return mode == Mode::kPrefork ? "prefork" : "per-connection";
}

// Names the mode in test output (and in ctest's test names) instead of its bytes.
void PrintTo(Mode mode, std::ostream* out) {
  *out << mode_name(mode);
}

// What a reload of a config should do.
enum class Expect { kApplied, kRejected };

struct ConfigText {
  std::string text;
  Expect expect;
  std::string kind;  // for the summary
};

// The configurations the storm reloads: the initial one, random good ones and broken ones.
class Configs {
 public:
  Configs(Mode mode, std::string dir) : mode_(mode), dir_(std::move(dir)) {}

  [[nodiscard]] ConfigText initial() const {
    return {body(listen({"127.0.0.1:0"}), kInitialWorkers, kInitialMaxChildren, 1000),
            Expect::kApplied, "initial"};
  }

  ConfigText good(std::mt19937& rng) const {
    std::vector<std::string> specs{"127.0.0.1:0"};
    if (std::uniform_int_distribution(0, 3)(rng) == 0)
      specs.push_back("unix:" + dir_ + "/extra.sock");
    const auto workers = std::uniform_int_distribution(1U, 4U)(rng);
    const auto children = std::uniform_int_distribution(32U, 128U)(rng);
    const unsigned keepalive = std::uniform_int_distribution(0, 1)(rng) == 0 ? 100 : 1000;
    return {body(listen(specs), workers, children, keepalive), Expect::kApplied, "good"};
  }

  ConfigText bad(std::mt19937& rng) const {
    const std::string ok = initial().text;
    switch (std::uniform_int_distribution(0, 6)(rng)) {
      case 0: return {ok + "workers = [\n", Expect::kRejected, "toml-syntax"};
      case 1: return {ok + "keepalive_requests = 5\n", Expect::kRejected, "toml-duplicate-key"};
      case 2: return {ok + "no_such_key = 1\n", Expect::kRejected, "unknown-key"};
      case 3: return {ok + "keepalive_timeout = \"soon\"\n", Expect::kRejected, "bad-type"};
      case 4:
        return {replace(ok, "keepalive_requests = 1000", "keepalive_requests = 0"),
                Expect::kRejected, "out-of-range"};
      case 5:
        return {replace(ok, mode_line(mode_), mode_line(other(mode_))), Expect::kRejected,
                "mode-change"};
      default:
        return {body(listen({"127.0.0.1:0", "127.0.0.1:0"}), kInitialWorkers, kInitialMaxChildren,
                     1000),
                Expect::kRejected, "duplicate-listen"};
    }
  }

 private:
  static Mode other(Mode m) { return m == Mode::kPrefork ? Mode::kPerConnection : Mode::kPrefork; }
  static std::string mode_line(Mode m) { return std::string("mode = \"") + mode_name(m) + "\"\n"; }
  static std::string replace(std::string text, const std::string& from, const std::string& to) {
    text.replace(text.find(from), from.size(), to);
    return text;
  }
  static std::string listen(const std::vector<std::string>& specs) {
    std::string out = "listen = [";
    for (std::size_t i = 0; i < specs.size(); ++i) out += (i > 0 ? ", \"" : "\"") + specs[i] + "\"";
    return out + "]\n";
  }
  [[nodiscard]] std::string body(const std::string& listen_line, unsigned workers,
                                 unsigned max_children, unsigned keepalive_requests) const {
    std::ostringstream out;
    out << listen_line << mode_line(mode_);
    if (mode_ == Mode::kPrefork) {
      out << "workers = " << workers << "\n";
    } else {
      out << "max_children = " << max_children << "\n";
    }
    out << "keepalive_requests = " << keepalive_requests << "\n"
        << "graceful_timeout = 10\nworker_timeout = 10\n"
        << "access_log = \"" << dir_ << "/access.log\"\n"
        << file_writing_user();
    return out.str();
  }

  Mode mode_;
  std::string dir_;
};

std::set<pid_t> pids_matching(const std::string& log, const std::regex& pattern) {
  std::set<pid_t> pids;
  for (std::sregex_iterator it(log.begin(), log.end(), pattern), end; it != end; ++it) {
    pids.insert(static_cast<pid_t>(std::stol((*it)[1])));
  }
  return pids;
}

std::string lines_mentioning(const std::string& log, pid_t pid) {
  const std::string tag = "pid " + std::to_string(pid);
  std::string out;
  for (const auto& line : lines_of(log)) {
    if (line.find(tag + ")") != std::string::npos || line.find(tag + ",") != std::string::npos ||
        line.ends_with(tag)) {
      out += "    " + line + "\n";
    }
  }
  return out;
}

// The time of a log line ("2026-12-01T02:55:56.693+00:00 [info] ..."), in ms since the epoch.
std::optional<long long> log_time_ms(const std::string& line) {
  static const std::regex stamp(
      R"(^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})([+-])(\d\d):(\d\d) )");
  std::smatch m;
  if (!std::regex_search(line, m, stamp)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  const long long offset_s =
      (m[8] == "-" ? -1 : 1) * (std::stoll(m[9]) * 3600 + std::stoll(m[10]) * 60);
  return (static_cast<long long>(::timegm(&tm)) - offset_s) * 1000 + std::stoll(m[7]);
}

// The log lines written between `from_ms` and `to_ms`.
std::string lines_between(const std::string& log, long long from_ms, long long to_ms) {
  std::string out;
  for (const auto& line : lines_of(log)) {
    const auto at = log_time_ms(line);
    if (at && *at >= from_ms && *at <= to_ms) out += "    " + line + "\n";
  }
  return out;
}

struct Kill {
  pid_t pid;
  Clock::time_point at;
};

class Storm {
 public:
  Storm(Mode mode, unsigned seed, Duration duration)
      : mode_(mode),
        seed_(seed),
        duration_(duration),
        rng_(seed),
        configs_(mode, dir_.path()),
        server_({.config = configs_.initial().text, .listen = ""}),
        start_(Clock::now()),
        start_wall_(std::chrono::system_clock::now()) {
    start_fds_ = server_.open_fd_count();
  }

  void run() {
    LoadOptions options{.port = server_.port(), .master = server_.pid()};
    Load load(options);
    storm();
    continue_all_stopped();
    if (!failed_already()) final_reload();
    if (!failed_already()) wait_for_pool();
    load.stop();
    served_ = load.served();
    failures_ = load.failures();
    if (!failed_already()) check_end_state();
    judge_failures();
    print_summary();
  }

 private:
  static bool failed_already() { return ::testing::Test::HasFailure(); }

  [[nodiscard]] std::string replay() const {
    return std::string("[") + mode_name(mode_) + " seed " + std::to_string(seed_) +
           "; replay with PREFORK_SOAK_SEED=" + std::to_string(seed_) + "]";
  }

  [[nodiscard]] std::string recent_history() const {
    std::string out;
    const std::size_t from = history_.size() > 40 ? history_.size() - 40 : 0;
    for (std::size_t i = from; i < history_.size(); ++i) out += "    " + history_[i] + "\n";
    return out;
  }

  [[nodiscard]] std::string log_tail() const {
    const auto lines = lines_of(server_.log());
    std::string out;
    for (std::size_t i = lines.size() > 40 ? lines.size() - 40 : 0; i < lines.size(); ++i) {
      out += "    " + lines[i] + "\n";
    }
    return out;
  }

  [[nodiscard]] std::string context() const {
    return replay() + "\n  last actions:\n" + recent_history() + "  log tail:\n" + log_tail();
  }

  void note(const std::string& what) {
    const auto ms = std::chrono::duration_cast<Duration>(Clock::now() - start_).count();
    history_.push_back("+" + std::to_string(ms) + " ms " + what);
  }

  // ---- the storm ------------------------------------------------------------------------------

  void storm() {
    const auto deadline = start_ + duration_;
    auto next_zombie_check = Clock::now();
    while (Clock::now() < deadline && !failed_already()) {
      if (!master_alive()) return;
      observe_children();
      continue_due_stopped();
      if (Clock::now() >= next_zombie_check) {
        check_children_reaped();
        next_zombie_check = Clock::now() + 2s;
      }
      act();
      pause(Duration(std::uniform_int_distribution(50, 400)(rng_)));
    }
  }

  // Between two actions; a stopped worker is continued on time, not at the next action.
  void pause(Duration length) {
    const auto wake = Clock::now() + length;
    while (Clock::now() < wake) {
      auto until = wake;
      for (const auto& [pid, due] : stopped_) until = std::min(until, due);
      std::this_thread::sleep_until(until);
      continue_due_stopped();
    }
  }

  void act() {
    // Weights: reloads, pool resizing, log reopening, kills, stops.
    static const std::vector<int> weights{2, 3, 2, 2, 1, 3, 2};
    std::discrete_distribution<int> pick(weights.begin(), weights.end());
    switch (pick(rng_)) {
      case 0: reload(configs_.good(rng_)); break;
      case 1: reload(configs_.bad(rng_)); break;
      case 2: send_master(SIGTTIN, "SIGTTIN"); break;
      case 3: send_master(SIGTTOU, "SIGTTOU"); break;
      case 4: rotate_logs(); break;
      case 5: kill_random_worker(); break;
      default: stop_random_worker(); break;
    }
  }

  bool master_alive() {
    if (const auto status = server_.wait_exit(0ms)) {
      ADD_FAILURE() << "the master exited (wait status " << *status << ") " << context();
      return false;
    }
    return true;
  }

  // Within 2 s, a moment with no unreaped child (exits go on all the time under load).
  void check_children_reaped() {
    const auto deadline = Clock::now() + 2s;
    while (zombies_of(server_.pid()) > 0) {
      if (Clock::now() >= deadline) {
        ADD_FAILURE() << "the master left children unreaped for 2 s " << context();
        return;
      }
      std::this_thread::sleep_for(5ms);
    }
  }

  void send_master(int signo, const std::string& name) {
    server_.signal(signo);
    ++signals_[name];
    note(name);
  }

  // Rotates the access log as logrotate does, then asks for the reopen; returns the log offset
  // from before the signal.
  std::size_t rotate_logs() {
    const std::string path = dir_.path() + "/access.log";
    std::error_code ignored;
    std::filesystem::rename(path, path + ".1", ignored);
    const std::size_t from = server_.log().size();
    send_master(SIGUSR1, "SIGUSR1");
    return from;
  }

  // Waits until the master has handled every signal sent before this call: it reads them with
  // this USR1 or before it, and finishes that loop pass (reload, reopen, resize) before it reads
  // the next signal. False when the reopen line does not come within 10 s.
  bool barrier() {
    const std::size_t from = rotate_logs();
    return server_
        .wait_for_log("SIGUSR1: log files reopened; asking", LogMark(from), kReloadOutcomeTimeout)
        .has_value();
  }

  void write_config(const std::string& text) {
    const std::string tmp = dir_.path() + "/next.conf";
    dir_.write("next.conf", text);
    std::filesystem::rename(tmp, server_.config_path());  // the master never reads half a file
  }

  // Rewrites the config, sends HUP and waits for the outcome, which must be the expected one.
  void reload(const ConfigText& config) {
    write_config(config.text);
    const std::size_t from = server_.log().size();
    send_master(SIGHUP, "SIGHUP " + config.kind);
    const auto outcome = reload_outcome(from);
    if (!outcome) {
      ADD_FAILURE() << "no outcome of the reload (" << config.kind << ") within 10 s " << context();
      return;
    }
    ++reloads_[config.kind + (*outcome ? " applied" : " rejected")];
    note(std::string("  -> ") + (*outcome ? "applied" : "rejected"));
    const bool wrong = (config.expect == Expect::kApplied && !*outcome) ||
                       (config.expect == Expect::kRejected && *outcome);
    if (wrong) {
      ADD_FAILURE() << "a " << config.kind << " config was " << (*outcome ? "applied" : "rejected")
                    << "; config:\n"
                    << config.text << context();
    }
  }

  // True: applied; false: rejected; nullopt: no outcome in time. In per-connection mode an
  // applied reload logs nothing of its own: a USR1 sent after it marks the end of its pass.
  std::optional<bool> reload_outcome(std::size_t from) {
    if (mode_ == Mode::kPerConnection) {
      if (!server_.wait_for_log("SIGHUP: reloading", LogMark(from), kReloadOutcomeTimeout) ||
          !barrier()) {
        return std::nullopt;
      }
      const std::string log = server_.log().substr(from);
      const auto reloading = log.find("SIGHUP: reloading");
      const auto marker = log.find("SIGUSR1: log files reopened; asking", reloading);
      const auto failed = log.find("reload failed", reloading);
      return failed == std::string::npos || failed > marker;
    }
    const auto deadline = Clock::now() + kReloadOutcomeTimeout;
    do {
      const std::string log = server_.log();
      if (log.find("starting generation", from) != std::string::npos) return true;
      if (log.find("reload failed", from) != std::string::npos) return false;
      std::this_thread::sleep_for(5ms);
    } while (Clock::now() < deadline);
    return std::nullopt;
  }

  // ---- workers: who they are, and which may be killed -----------------------------------------

  void observe_children() {
    const auto now = Clock::now();
    children_ = children_of(server_.pid());
    for (const pid_t pid : children_) first_seen_.try_emplace(pid, now);
    read_worker_starts();
    // A worker seen alive past the window resets its slot's count of quick deaths.
    for (const pid_t pid : children_) {
      if (now - first_seen_[pid] >= kQuickDeathWindow && slot_of_.contains(pid)) {
        young_kills_[slot_of_[pid]] = 0;
      }
    }
  }

  // Slots, from the master's "worker N (pid P, generation G) started" lines. A slot that starts
  // a worker of another generation than its last was claimed afresh: no quick deaths on record.
  void read_worker_starts() {
    static const std::regex started(R"(worker (\d+) \(pid (\d+), generation (\d+)\) started)");
    const std::string log = server_.log();
    const auto complete = log.rfind('\n');  // only whole lines
    if (complete == std::string::npos || complete < parsed_log_) return;
    const std::string fresh = log.substr(parsed_log_, complete + 1 - parsed_log_);
    parsed_log_ = complete + 1;
    for (std::sregex_iterator it(fresh.begin(), fresh.end(), started), end; it != end; ++it) {
      const int slot = std::stoi((*it)[1]);
      const int generation = std::stoi((*it)[3]);
      slot_of_[static_cast<pid_t>(std::stol((*it)[2]))] = slot;
      if (std::exchange(slot_generation_[slot], generation) != generation) young_kills_[slot] = 0;
    }
  }

  bool killable(pid_t pid) {
    if (mode_ == Mode::kPerConnection) return true;
    if (Clock::now() - first_seen_[pid] >= kQuickDeathWindow) return true;
    const auto slot = slot_of_.find(pid);
    return slot != slot_of_.end() && young_kills_[slot->second] < kYoungKillsPerSlot;
  }

  // Signals `pid` only while it is still a child of the master (no stranger with a reused pid).
  bool signal_child(pid_t pid, int signo) {
    const auto kids = children_of(server_.pid());
    if (std::find(kids.begin(), kids.end(), pid) == kids.end()) return false;
    return ::kill(pid, signo) == 0;
  }

  void kill_random_worker() {
    std::vector<pid_t> candidates;
    for (const pid_t pid : children_) {
      if (killable(pid)) candidates.push_back(pid);
    }
    if (candidates.empty()) {
      ++signals_["SIGKILL skipped (no killable worker)"];
      return;
    }
    const pid_t pid =
        candidates[std::uniform_int_distribution<std::size_t>(0, candidates.size() - 1)(rng_)];
    const auto at = Clock::now();
    if (!signal_child(pid, SIGKILL)) return;
    kills_.push_back({pid, at});
    stopped_.erase(pid);
    if (mode_ == Mode::kPrefork && at - first_seen_[pid] < kQuickDeathWindow) {
      ++young_kills_[slot_of_[pid]];
    }
    ++signals_["SIGKILL worker"];
    note("SIGKILL " + std::to_string(pid));
  }

  void stop_random_worker() {
    std::vector<pid_t> candidates;
    for (const pid_t pid : children_) {
      if (!stopped_.contains(pid)) candidates.push_back(pid);
    }
    if (candidates.empty() || stopped_.size() >= 2) return;
    const pid_t pid =
        candidates[std::uniform_int_distribution<std::size_t>(0, candidates.size() - 1)(rng_)];
    const Duration pause(std::uniform_int_distribution<long>(50, kMaxStopPause.count())(rng_));
    if (!signal_child(pid, SIGSTOP)) return;
    stopped_[pid] = Clock::now() + pause;
    ++signals_["SIGSTOP worker"];
    note("SIGSTOP " + std::to_string(pid) + " for " + std::to_string(pause.count()) + " ms");
  }

  void continue_due_stopped() {
    const auto now = Clock::now();
    for (auto it = stopped_.begin(); it != stopped_.end();) {
      if (it->second > now) {
        ++it;
        continue;
      }
      if (signal_child(it->first, SIGCONT)) ++signals_["SIGCONT worker"];
      note("SIGCONT " + std::to_string(it->first));
      it = stopped_.erase(it);
    }
  }

  void continue_all_stopped() {
    for (auto& [pid, due] : stopped_) due = Clock::now();
    continue_due_stopped();
  }

  // ---- the end --------------------------------------------------------------------------------

  void final_reload() {
    // No TTIN/TTOU left to be handled together with the final HUP.
    if (!barrier()) {
      ADD_FAILURE() << "the master did not handle SIGUSR1 within 10 s " << context();
      return;
    }
    const std::size_t from = server_.log().size();
    reload(configs_.initial());
    if (failed_already()) return;
    static const std::regex generation(R"(starting generation (\d+) with (\d+) workers)");
    std::smatch m;
    const std::string log = server_.log().substr(from);
    if (mode_ == Mode::kPrefork && std::regex_search(log, m, generation)) {
      final_generation_ = std::stoi(m[1]);
      EXPECT_EQ(std::stoul(m[2]), kInitialWorkers) << context();
    }
  }

  [[nodiscard]] std::set<pid_t> final_generation_pids() const {
    const std::regex started(R"(worker \d+ \(pid (\d+), generation )" +
                             std::to_string(final_generation_) + R"(\) started)");
    return pids_matching(server_.log(), started);
  }

  // Prefork: exactly the final generation's workers remain, as many as configured.
  // Per-connection: nothing to wait for while the load runs.
  void wait_for_pool() {
    if (mode_ != Mode::kPrefork) return;
    const auto deadline = Clock::now() + kSettleTimeout;
    for (;;) {
      const auto kids = children_of(server_.pid());
      const std::set<pid_t> live(kids.begin(), kids.end());
      const auto current = final_generation_pids();
      std::set<pid_t> live_current;
      for (const pid_t pid : live) {
        if (current.contains(pid)) live_current.insert(pid);
      }
      if (live == live_current && live.size() == kInitialWorkers) return;
      if (Clock::now() >= deadline) {
        ADD_FAILURE() << "the pool did not return to " << kInitialWorkers
                      << " workers of generation " << final_generation_ << " within 30 s; "
                      << live.size() << " children, " << live_current.size()
                      << " of that generation " << context();
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
  }

  void check_end_state() {
    EXPECT_TRUE(master_alive());
    // Per-connection: every child exits once its client has closed.
    const std::size_t expected_children = mode_ == Mode::kPrefork ? kInitialWorkers : 0;
    EXPECT_TRUE(server_.wait_for_children(expected_children, kSettleTimeout))
        << children_of(server_.pid()).size() << " children, expected " << expected_children << " "
        << context();
    const auto deadline = Clock::now() + 5s;
    std::size_t zombies = zombies_of(server_.pid());
    while (zombies > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
      zombies = zombies_of(server_.pid());
    }
    EXPECT_EQ(zombies, 0U) << context();
    std::size_t fds = server_.open_fd_count();
    while (fds != start_fds_ && Clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
      fds = server_.open_fd_count();
    }
    EXPECT_EQ(fds, start_fds_) << "the master's descriptors did not return to their start count "
                               << context();
    if (mode_ == Mode::kPerConnection &&
        (signals_.contains("SIGTTIN") || signals_.contains("SIGTTOU"))) {
      EXPECT_TRUE(server_.log().find("SIGTTIN/SIGTTOU ignored") != std::string::npos) << replay();
      EXPECT_EQ(server_.log().find("SIGTTIN: adding"), std::string::npos) << replay();
    }
    // Still serving after it all.
    EXPECT_EQ(fetch(server_.port(), get_request("/", "Connection: close\r\n")).status, 200);
    const std::vector<std::string> allowed{
        "reload failed",                  // the bad configs
        "killed by SIGKILL; respawning",  // the test's kills
    };
    for (const auto& line : server_.unexpected_errors(allowed)) {
      ADD_FAILURE() << "unexpected error line: " << line << " " << replay();
    }
  }

  // ---- failed requests ------------------------------------------------------------------------

  bool killed_in_window(const Failure& f) const {
    return std::any_of(kills_.begin(), kills_.end(), [&](const Kill& k) {
      return k.at >= f.since - kReadSlack && k.at <= f.failed;
    });
  }

  [[nodiscard]] long long wall_ms(Clock::time_point t) const {
    return std::chrono::duration_cast<Duration>((start_wall_ + (t - start_)).time_since_epoch())
        .count();
  }

  void judge_failures() {
    const std::string log = server_.log();
    std::set<pid_t> killed;
    for (const auto& k : kills_) killed.insert(k.pid);
    for (const Failure& f : failures_) {
      const bool answered_wrong = f.what.starts_with("unexpected response");
      if (!answered_wrong && f.owner != 0 && killed.contains(f.owner)) {
        ++failed_["killed in flight (owner known)"];
      } else if (!answered_wrong && f.owner == 0 && killed_in_window(f)) {
        ++failed_["killed in flight (a kill while in flight, owner unknown)"];
      } else {
        // Drains are race-free: a request reset by a draining worker is a failure like any
        // other (RFC 9112 §9.3.1 lets clients retry, but this one's clients must not need to).
        // The first few in detail: when the master is gone, every request after fails.
        if (++failed_["unexplained"] > 10) continue;
        ADD_FAILURE() << "request failed: " << describe(f) << "\n  log lines of its owner:\n"
                      << (f.owner != 0 ? lines_mentioning(log, f.owner) : "    (owner unknown)\n")
                      << "  log lines from 1 s before to 1 s after:\n"
                      << lines_between(log, wall_ms(f.since) - 1000, wall_ms(f.failed) + 1000)
                      << replay();
      }
    }
  }

  [[nodiscard]] std::string describe(const Failure& f) const {
    const auto at = [&](Clock::time_point t) {
      return std::to_string(std::chrono::duration_cast<Duration>(t - start_).count());
    };
    std::ostringstream out;
    out << (f.keep_alive ? "keep-alive" : "fresh connection") << (f.is_retry ? " (a retry)" : "")
        << ", owner pid " << f.owner << ", " << f.served_before << " served before on it, "
        << (f.bytes_received ? "partial response" : "nothing received")
        << (f.timed_out ? ", timed out" : "") << ", idle from +" << at(f.since) << ", sent +"
        << at(f.sent) << ", failed +" << at(f.failed) << " ms: " << f.what;
    return out.str();
  }

  void print_summary() const {
    std::ostringstream out;
    out << "soak summary: mode " << mode_name(mode_) << ", seed " << seed_ << ", "
        << std::chrono::duration_cast<std::chrono::seconds>(duration_).count() << " s\n";
    out << "  signals sent:\n";
    for (const auto& [name, n] : signals_) out << "    " << name << ": " << n << "\n";
    out << "  reloads:\n";
    for (const auto& [name, n] : reloads_) out << "    " << name << ": " << n << "\n";
    out << "  workers killed: " << kills_.size() << "\n";
    out << "  requests served: " << served_ << "\n";
    out << "  requests failed: " << failures_.size() << "\n";
    for (const auto& [why, n] : failed_) out << "    " << why << ": " << n << "\n";
    std::fputs(out.str().c_str(), stdout);
    ::testing::Test::RecordProperty("soak_seed", static_cast<int>(seed_));
  }

  Mode mode_;
  unsigned seed_;
  Duration duration_;
  std::mt19937 rng_;
  TempDir dir_;
  Configs configs_;
  ServerProcess server_;
  Clock::time_point start_;
  std::chrono::system_clock::time_point start_wall_;
  std::size_t start_fds_ = 0;

  std::vector<std::string> history_;
  std::map<std::string, unsigned> signals_;
  std::map<std::string, unsigned> reloads_;
  std::vector<pid_t> children_;
  std::map<pid_t, Clock::time_point> first_seen_;
  std::map<pid_t, int> slot_of_;
  std::map<int, unsigned> young_kills_;
  std::map<int, int> slot_generation_;
  std::size_t parsed_log_ = 0;
  std::map<pid_t, Clock::time_point> stopped_;  // pid -> when to continue it
  std::vector<Kill> kills_;
  int final_generation_ = 0;

  std::uint64_t served_ = 0;
  std::vector<Failure> failures_;
  std::map<std::string, unsigned> failed_;
};

class Soak : public ::testing::TestWithParam<Mode> {};

TEST_P(Soak, TheMasterSurvivesAnySequenceOfSignalsUnderLoad) {
  const auto seed = static_cast<unsigned>(
      env_number("PREFORK_SOAK_SEED", static_cast<unsigned long>(std::random_device{}())));
  const auto seconds = env_number("PREFORK_SOAK_SECONDS", 60);
  std::printf("soak: mode %s, seed %u, %lu s (replay: PREFORK_SOAK_SEED=%u)\n",
              mode_name(GetParam()), seed, seconds, seed);
  std::fflush(stdout);
  Storm(GetParam(), seed, std::chrono::seconds(seconds)).run();
}

std::string test_name(const ::testing::TestParamInfo<Mode>& mode) {
  return mode.param == Mode::kPrefork ? "Prefork" : "PerConnection";
}

INSTANTIATE_TEST_SUITE_P(Modes, Soak, ::testing::Values(Mode::kPrefork, Mode::kPerConnection),
                         test_name);

}  // namespace
}  // namespace prefork::testing::soak
