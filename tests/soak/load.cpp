#include "tests/soak/load.hpp"

#include <optional>
#include <stdexcept>

namespace prefork::testing::soak {
namespace {

const std::string kKeepAliveRequest = get_request("/");
const std::string kCloseRequest = get_request("/", "Connection: close\r\n");
constexpr const char* kBody = "Hello, World!";

void expect_hello(const Response& r) {
  if (r.status != 200 || r.body != kBody) {
    throw std::runtime_error("unexpected response: " + r.status_line + " body '" + r.body + "'");
  }
}

}  // namespace

Load::Load(LoadOptions options) : options_(options) {
  for (unsigned i = 0; i < options_.keep_alive_clients; ++i) {
    threads_.emplace_back([this] { keep_alive_client(); });
  }
  for (unsigned i = 0; i < options_.per_request_clients; ++i) {
    threads_.emplace_back([this] { per_request_client(); });
  }
}

Load::~Load() {
  stop();
}

void Load::stop() {
  stopping_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::vector<Failure> Load::failures() const {
  const std::lock_guard lock(mutex_);
  return failures_;
}

void Load::record(Failure failure) {
  const std::lock_guard lock(mutex_);
  failures_.push_back(std::move(failure));
}

// Back to back on one connection, a new one when the server says close or a request fails.
// A request that fails with nothing received may have met a draining worker's close of an idle
// connection: it is retried once (RFC 9112 §9.3.1), and the attribution afterwards decides
// whether that is what happened.
void Load::keep_alive_client() {
  std::optional<Client> conn;
  pid_t owner = 0;
  unsigned served_on_conn = 0;
  bool retrying = false;
  Clock::time_point idle_since;  // the connection's last response (or its opening)
  while (!stopping_ || retrying) {
    const auto sent = Clock::now();
    try {
      if (!conn) {
        idle_since = sent;
        conn.emplace(options_.port);
        owner = 0;
        served_on_conn = 0;
      }
      conn->send(kKeepAliveRequest);
      const Response r = conn->read_response(false, options_.timeout);
      expect_hello(r);
      ++served_;
      ++served_on_conn;
      retrying = false;
      idle_since = Clock::now();
      // Known only once the request is in (the listeners defer accepts until data arrives),
      // and lost if the server closes first: a failure with no owner is judged by its timing.
      if (owner == 0) owner = connection_owner(children_of(options_.master), conn->fd());
      if (r.header("connection") == "close") conn.reset();
    } catch (const std::exception& err) {
      Failure f{.keep_alive = served_on_conn > 0,
                .is_retry = retrying,
                .owner = owner,
                .served_before = served_on_conn,
                .bytes_received = conn && !conn->pending().empty(),
                .since = idle_since,
                .sent = sent,
                .failed = Clock::now(),
                .what = err.what()};
      f.timed_out = f.failed - sent >= options_.timeout;
      f.retried = !retrying && !f.bytes_received && !f.timed_out;
      retrying = f.retried;
      conn.reset();
      record(std::move(f));
    }
  }
}

void Load::per_request_client() {
  while (!stopping_) {
    const auto sent = Clock::now();
    std::optional<Client> conn;
    try {
      conn.emplace(options_.port);
      conn->send(kCloseRequest);
      expect_hello(conn->read_response(false, options_.timeout));
      ++served_;
    } catch (const std::exception& err) {
      Failure f{.bytes_received = conn && !conn->pending().empty(),
                .since = sent,
                .sent = sent,
                .failed = Clock::now(),
                .what = err.what()};
      f.timed_out = f.failed - sent >= options_.timeout;
      record(std::move(f));
    }
    conn.reset();
    std::this_thread::sleep_for(options_.per_request_pause);
  }
}

}  // namespace prefork::testing::soak
