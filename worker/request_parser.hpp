// The HTTP/1.1 protocol core of one connection (worker, after fork): drives llhttp over the bytes
// the connection reads and appends, in order, the response each request calls for (design §4).
// It touches no socket and no clock, so unit tests and fuzzers feed it bytes directly.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "worker/response.hpp"
#include "worker/router.hpp"

namespace prefork::worker {

struct Limits {
  std::size_t max_request_line = 8192;   // method SP request-target SP HTTP-version
  std::size_t max_header_bytes = 16384;  // field lines (name + value + 4 per line)
  unsigned max_headers = 100;
  std::uint64_t max_body_bytes = 10ULL * 1024 * 1024;
  unsigned keepalive_requests = 1000;  // the Nth response on a connection closes it
  // Internal endpoints (GET/HEAD only; "" = off). Answered only when the parser has a handler.
  std::string_view healthz_path;
  std::string_view status_path;
  std::string_view metrics_path;
  // Test switches in the query of backend requests (answered only with a handler).
  bool switches = false;
  common::Millis max_delay = 10'000;

  // The views point into `config`, which must outlive the Limits.
  static Limits from(const common::Config& config);
};

class RequestParser;

struct EndpointRequest {
  Endpoint endpoint = Endpoint::kHealthz;
  bool head = false;
  bool json = false;  // the query string holds format=json
  ConnectionHeader connection = ConnectionHeader::kNone;
};

struct EndpointReply {
  int status = 200;
  std::uint64_t body_bytes = 0;
  bool close = false;  // the response said Connection: close (the parser then stops)
};

// A backend request with test switches (the router found some in its query).
struct BackendRequest {
  const Switches& switches;
  const RequestParser& parser;  // echo: method, target, version, headers, body bytes
  bool head = false;
  ConnectionHeader connection = ConnectionHeader::kNone;
};

// What the parser cannot do alone: answer internal endpoints and test switches, and log each
// response.
class RequestHandler {
 public:
  // Appends the whole response to `out`.
  virtual EndpointReply respond(const EndpointRequest& request, std::string& out) = 0;
  // Appends the answer to a request with switches (backend.hpp, without connection details
  // unless overridden).
  virtual EndpointReply respond_backend(const BackendRequest& request, const Responses& responses,
                                        std::string& out);
  // After every response appended (access log on only); the parser's request_line(), referer()
  // and user_agent() describe the request it answered.
  virtual void on_response(const RequestParser& parser, int status, std::uint64_t body_bytes) = 0;

 protected:
  RequestHandler() = default;
  RequestHandler(const RequestHandler&) = default;
  RequestHandler& operator=(const RequestHandler&) = default;
  ~RequestHandler() = default;
};

enum class Phase : std::uint8_t {
  kIdle,     // between requests: nothing of the next one received yet (CRLFs aside)
  kHead,     // part of a request head received
  kBody,     // head complete, the body still arriving
  kDelayed,  // a request with ?delay is complete; release() answers it (input waits)
  kClosing,  // a response that ends the connection was produced; further input is ignored
};

class RequestParser {
 public:
  // `router`: the worker's, built once; nullptr builds one from `limits` (tests).
  RequestParser(const Limits& limits, const Responses& responses, const Router* router = nullptr);
  RequestParser(const RequestParser&) = delete;  // llhttp keeps a pointer back to us
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses `input` and appends to `out` every response it completes, in order (plus any
  // "100 Continue"). After a response that closes the connection the rest is ignored.
  void feed(std::string_view input, std::string& out);

  // The header or body timeout fired. Appends a 408 when a request is in progress and returns
  // whether it did; either way the connection is closing afterwards.
  bool time_out(std::string& out);

  // A request we refuse (405) whose body is still to come: answer_refused() may answer it now.
  [[nodiscard]] bool refused_body_pending() const noexcept {
    return request_.refused_with_body && !request_.answered && phase_ == Phase::kBody;
  }
  // Appends the answer to such a request before its body is in, so that a slow (trickled)
  // body cannot delay it; the body is still read and thrown away (discarding_body()), and the
  // connection goes on after it unless the answer closed it. Called by the connection once it
  // has read what the socket had: feed() alone never answers early, so how the same bytes are
  // cut never changes the responses.
  void answer_refused(std::string& out);

  // In Phase::kDelayed: how long the request asked to wait, and its answer once that is over
  // (then the input that came after it is parsed, as feed() would have).
  [[nodiscard]] common::Millis delay() const noexcept { return request_.route.switches.delay; }
  void release(std::string& out);

  // Graceful drain: the response to any request still to be answered says Connection: close.
  void drain() noexcept { draining_ = true; }

  // Routes the internal endpoints of `limits` to `handler`; with `log_requests`, also captures
  // request line, Referer and User-Agent (bounded) and reports every response. Without a call
  // to this (or with nullptr) the parser does neither and costs nothing for them.
  void set_handler(RequestHandler* handler, bool log_requests);

  // Captures X-Forwarded-For and Forwarded (bounded; several lines joined with ',') for the
  // access log of a connection from a trusted proxy. Off by default: costs nothing then.
  void capture_forwarded(bool on);
  // The captured values of the request last answered (empty when not captured). A value longer
  // than kMaxForwardedBytes (forwarded.hpp) is cut one byte over it: too long to trust.
  [[nodiscard]] std::string_view x_forwarded_for() const noexcept;
  [[nodiscard]] std::string_view forwarded() const noexcept;

  // The request last answered, as far as it was received (access log on only; else empty).
  [[nodiscard]] std::string_view request_line() const noexcept;
  [[nodiscard]] std::string_view referer() const noexcept;
  [[nodiscard]] std::string_view user_agent() const noexcept;

  // The request being answered with ?echo: its method, request-target, version ("1.1") and
  // header fields in order (name, value, name, value...), as received.
  [[nodiscard]] std::string_view echo_method() const noexcept;
  [[nodiscard]] std::string_view echo_target() const noexcept;
  [[nodiscard]] std::string_view echo_version() const noexcept;
  [[nodiscard]] const std::vector<std::string>& echo_headers() const noexcept;

  [[nodiscard]] Phase phase() const noexcept { return phase_; }
  [[nodiscard]] bool closing() const noexcept { return phase_ == Phase::kClosing; }
  // Closing with request bytes left unread (an error, or input after the last response): the
  // socket should linger so that closing it does not reset the response in flight.
  [[nodiscard]] bool unread_input() const noexcept { return unread_input_; }
  // The request last read said it is the client's last (Connection: close, or HTTP/1.0 without
  // keep-alive) and asked for no other protocol: nothing may follow it (RFC 9112 §9.6).
  [[nodiscard]] bool client_closes() const noexcept { return request_.client_closes; }
  [[nodiscard]] std::uint64_t responses() const noexcept { return response_count_; }
  // The status of the last response appended (0 before any): for tests and logs.
  [[nodiscard]] int last_status() const noexcept { return last_status_; }
  // Body bytes of the request in progress received so far (for the minimum body rate).
  [[nodiscard]] std::uint64_t body_bytes() const noexcept { return request_.body_bytes; }
  // The request in progress was answered already (a refused method answered at its head) and
  // its body is being read only to be thrown away.
  [[nodiscard]] bool discarding_body() const noexcept {
    return request_.answered && phase_ == Phase::kBody;
  }

 private:
  enum class Field : std::uint8_t {
    kOther,
    kHost,
    kExpect,
    kReferer,
    kUserAgent,
    kXForwardedFor,
    kForwarded
  };
  enum class Kind : std::uint8_t { kHello, kOptions, kNotAllowed, kEndpoint, kBackend };
  enum class Recovery : std::uint8_t { kResume, kNeedMore, kFailed };
  enum class ExpectState : std::uint8_t { kLeading, kMatching, kTrailing, kBad };
  static constexpr std::size_t kMaxHostLength = 272;   // 253-byte name or IPv6 literal + port
  static constexpr std::size_t kMaxLoggedLine = 2048;  // request line kept for the access log
  static constexpr std::size_t kMaxLoggedField = 512;  // Referer, User-Agent

  // Storage needed only now and then (a Host value split across reads, an endpoint's query,
  // the access log's capture), allocated on first use so an idle connection stays small.
  struct Scratch {
    std::string host;
    std::string target;                // a request-target split across reads; the echo's target
    std::string pending;               // input that came after a delayed request
    std::vector<std::string> headers;  // ?echo: name, value, name, value...
    std::string request_line;
    std::string referer;
    std::string user_agent;
    std::string x_forwarded_for;
    std::string forwarded;
  };

  static const llhttp_settings_t kSettings;
  static RequestParser& self(llhttp_t* http) { return *static_cast<RequestParser*>(http->data); }

  // llhttp callbacks.
  static int on_message_begin(llhttp_t* http);
  static int on_method(llhttp_t* http, const char* at, std::size_t length);
  static int on_method_complete(llhttp_t* http);
  static int on_url(llhttp_t* http, const char* at, std::size_t length);
  static int on_url_complete(llhttp_t* http);
  static int on_version(llhttp_t* http, const char* at, std::size_t length);
  static int on_version_complete(llhttp_t* http);
  static int on_header_field(llhttp_t* http, const char* at, std::size_t length);
  static int on_header_field_complete(llhttp_t* http);
  static int on_header_value(llhttp_t* http, const char* at, std::size_t length);
  static int on_header_value_complete(llhttp_t* http);
  static int on_headers_complete(llhttp_t* http);
  static int on_chunk_header(llhttp_t* http);
  static int on_body(llhttp_t* http, const char* at, std::size_t length);
  static int on_message_complete(llhttp_t* http);

  int reject(ErrorStatus status);  // from a callback: remember the status, stop llhttp
  int headers_complete();
  [[nodiscard]] Kind kind_for(llhttp_method_t method) const;
  bool scan_lines(const char* begin, const char* end);
  bool scan_failed(ErrorStatus status);
  bool check_chunk_crlf(const char* begin, const char* end);
  ErrorStatus status_for(llhttp_errno_t err) const;
  void complete_message(std::string& out);
  void finish_answer(std::string& out);
  void collect_target(const char* at, std::size_t length);
  void route_target();
  bool answer(std::string& out);
  Recovery recover(llhttp_errno_t err, const char*& p, const char* end, std::string& out);
  Recovery skip_unknown_method(const char*& p, const char* end, std::string& out);
  bool replay_request_line(std::string_view line);
  void fail(ErrorStatus status, std::string& out);
  void start_request();
  Scratch& scratch();
  void save_split_host();
  void save_split_target();
  void match_expect(const char* at, std::size_t length);
  void report(int status, std::uint64_t body_bytes);
  static void append_bounded(std::string& to, const char* at, std::size_t length, std::size_t max);

  const Limits& limits_;
  const Responses& responses_;
  llhttp_t http_{};
  Phase phase_ = Phase::kIdle;
  bool draining_ = false;
  bool unread_input_ = false;
  bool replaying_ = false;          // llhttp re-reads a stand-in request line: callbacks ignore it
  bool in_unknown_method_ = false;  // reading a method llhttp does not know, up to its SP
  std::uint64_t response_count_ = 0;
  int last_status_ = 0;

  // Where llhttp stands inside feed().
  const char* segment_end_ = nullptr;
  const char* method_span_end_ = nullptr;  // end of what on_method reported from this input
  ErrorStatus rejected_ = ErrorStatus::k400;
  bool has_rejected_ = false;
  bool message_done_ = false;
  bool scanning_ = true;        // checking line endings ourselves: head and trailer section
  bool line_start_ = true;      // scanner: the previous byte ended a line
  char last_byte_ = '\n';       // scanner: the previous byte
  std::size_t head_bytes_ = 0;  // of the head being read (request line and fields)
  bool log_requests_ = false;
  bool capture_line_ = false;  // request line kept: access log, or switches (echo's method)
  bool capture_forwarded_ = false;
  bool routing_ = false;  // a handler is attached: the router decides

  // Everything about the request being parsed, reset as one value when the next one begins
  // (start_request), so that no field can be forgotten there.
  struct RequestState {
    std::size_t line_bytes = 0;
    std::size_t header_bytes = 0;
    unsigned header_count = 0;
    std::uint64_t body_bytes = 0;
    std::uint64_t chunk_left = 0;
    std::uint8_t crlf_left = 0;  // bytes of the CRLF after a chunk's data still to check
    Kind kind = Kind::kHello;
    bool head_method = false;
    bool keep_alive = false;
    bool client_closes = false;
    bool version_seen = false;
    bool continue_pending = false;
    bool body_started = false;
    bool expect_continue = false;
    bool expect_unknown = false;
    bool unknown_method = false;     // a well-formed method llhttp does not know: 501
    bool refused_with_body = false;  // a method we refuse, with a body to come
    bool answered = false;           // that answer went out; the body is discarded
    bool target_seen = false;
    bool asterisk = false;           // the request-target is exactly "*"
    std::uint32_t method_bytes = 0;  // of an unknown method
    Field field = Field::kOther;
    std::uint8_t field_length = 0;
    std::uint8_t field_candidates = 0;  // bit per name in kFieldNames still matching so far
    std::uint8_t host_count = 0;
    std::uint8_t version_length = 0;
    ExpectState expect_state = ExpectState::kLeading;
    std::uint8_t expect_matched = 0;
    bool host_valid = true;
    bool host_split = false;  // the Host value so far is in scratch_->host
    std::uint16_t host_length = 0;
    const char* host_at = nullptr;  // the Host value so far, inside the current input
    char version[3] = {};
    bool capture_headers = false;  // ?echo: every header field of this request
    std::uint8_t line_part = 0;    // access log: 0 method, 1 target, 2 version received
    // The request-target so far, for the router: in the input where it lies, or copied into
    // scratch_->target when it arrives in pieces (routing_ only).
    bool target_split = false;
    const char* target_at = nullptr;
    std::size_t target_length = 0;
    Route route;
  };
  RequestState request_;
  RequestHandler* handler_ = nullptr;
  std::unique_ptr<Router> own_router_;  // without a router from the caller
  const Router* router_ = nullptr;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace prefork::worker
