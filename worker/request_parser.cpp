#include "worker/request_parser.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "worker/backend.hpp"
#include "worker/forwarded.hpp"
#include "worker/http_syntax.hpp"

namespace prefork::worker {
namespace {

// "SP HTTP/1.1" after the target and the SP after the method, in the request-line count.
constexpr std::size_t kRequestLineOverhead = 10;
// ": " and CRLF around every field line, in the header-bytes count.
constexpr std::size_t kFieldLineOverhead = 4;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

char to_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

// The field names the parser looks at, lower case; bit i of a candidate mask = kFieldNames[i].
constexpr std::array<std::string_view, 6> kFieldNames{"host",       "expect",          "referer",
                                                      "user-agent", "x-forwarded-for", "forwarded"};
constexpr std::uint8_t kHostBit = 1U << 0;
constexpr std::uint8_t kExpectBit = 1U << 1;
constexpr std::uint8_t kLoggedBits = 1U << 2 | 1U << 3;     // referer, user-agent
constexpr std::uint8_t kForwardedBits = 1U << 4 | 1U << 5;  // x-forwarded-for, forwarded
constexpr std::string_view kContinueExpectation = "100-continue";

}  // namespace

Limits Limits::from(const common::Config& config) {
  return Limits{config.max_request_line, config.max_header_bytes,   config.max_headers,
                config.max_body_bytes,   config.keepalive_requests, config.healthz_path,
                config.status_path,      config.metrics_path,       config.switches,
                config.max_delay};
}

const llhttp_settings_t RequestParser::kSettings = [] {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_message_begin = &RequestParser::on_message_begin;
  settings.on_method = &RequestParser::on_method;
  settings.on_method_complete = &RequestParser::on_method_complete;
  settings.on_url = &RequestParser::on_url;
  settings.on_url_complete = &RequestParser::on_url_complete;
  settings.on_version = &RequestParser::on_version;
  settings.on_version_complete = &RequestParser::on_version_complete;
  settings.on_header_field = &RequestParser::on_header_field;
  settings.on_header_field_complete = &RequestParser::on_header_field_complete;
  settings.on_header_value = &RequestParser::on_header_value;
  settings.on_header_value_complete = &RequestParser::on_header_value_complete;
  settings.on_headers_complete = &RequestParser::on_headers_complete;
  settings.on_chunk_header = &RequestParser::on_chunk_header;
  settings.on_body = &RequestParser::on_body;
  settings.on_message_complete = &RequestParser::on_message_complete;
  return settings;
}();

[[gnu::hot]] RequestParser::RequestParser(const Limits& limits, const Responses& responses,
                                          const Router* router)
    : limits_(limits), responses_(responses), router_(router) {
  if (router_ == nullptr) {
    own_router_ = std::make_unique<Router>(limits);
    router_ = own_router_.get();
  }
  // llhttp_init leaves every lenient flag off: llhttp's strict checks are part of our contract.
  llhttp_init(&http_, HTTP_REQUEST, &kSettings);
  http_.data = this;
}

[[gnu::hot]] void RequestParser::set_handler(RequestHandler* handler, bool log_requests) {
  handler_ = handler;
  routing_ = handler != nullptr;
  log_requests_ = handler != nullptr && log_requests;
  capture_line_ = log_requests_ || (routing_ && router_->switches());
  if (capture_line_) scratch();
}

void RequestParser::capture_forwarded(bool on) {
  capture_forwarded_ = on;
  if (on) scratch();
}

std::string_view RequestParser::x_forwarded_for() const noexcept {
  return scratch_ ? std::string_view(scratch_->x_forwarded_for) : std::string_view();
}
std::string_view RequestParser::forwarded() const noexcept {
  return scratch_ ? std::string_view(scratch_->forwarded) : std::string_view();
}

RequestParser::Scratch& RequestParser::scratch() {
  if (!scratch_) scratch_ = std::make_unique<Scratch>();
  return *scratch_;
}

std::string_view RequestParser::request_line() const noexcept {
  return scratch_ ? std::string_view(scratch_->request_line) : std::string_view();
}
std::string_view RequestParser::referer() const noexcept {
  return scratch_ ? std::string_view(scratch_->referer) : std::string_view();
}
std::string_view RequestParser::user_agent() const noexcept {
  return scratch_ ? std::string_view(scratch_->user_agent) : std::string_view();
}

std::string_view RequestParser::echo_method() const noexcept {
  const std::string_view line = request_line();
  return line.substr(0, line.find(' '));
}
std::string_view RequestParser::echo_target() const noexcept {
  return scratch_ ? std::string_view(scratch_->target) : std::string_view();
}
std::string_view RequestParser::echo_version() const noexcept {
  return request_.version_length == sizeof request_.version
             ? std::string_view(request_.version, sizeof request_.version)
             : std::string_view();
}
const std::vector<std::string>& RequestParser::echo_headers() const noexcept {
  static const std::vector<std::string> none;
  return scratch_ ? scratch_->headers : none;
}

EndpointReply RequestHandler::respond_backend(const BackendRequest& request,
                                              const Responses& responses, std::string& out) {
  return answer_backend(request, responses, {}, out);
}

void RequestParser::append_bounded(std::string& to, const char* at, std::size_t length,
                                   std::size_t max) {
  if (to.size() < max) to.append(at, std::min(length, max - to.size()));
}

void RequestParser::report(int status, std::uint64_t body_bytes) {
  last_status_ = status;
  if (log_requests_) handler_->on_response(*this, status, body_bytes);
}

// Input ends inside the request-target: keep what came so far, as for the Host value below.
void RequestParser::save_split_target() {
  if (request_.target_split || request_.target_at == nullptr) return;
  scratch().target.assign(request_.target_at, request_.target_length);
  request_.target_split = true;
  request_.target_at = nullptr;
}

void RequestParser::collect_target(const char* at, std::size_t length) {
  if (request_.target_split) {
    scratch_->target.append(at, length);
  } else if (request_.target_at == nullptr) {
    request_.target_at = at;
  } else {
    scratch().target.assign(request_.target_at, request_.target_length).append(at, length);
    request_.target_split = true;
    request_.target_at = nullptr;
  }
  request_.target_length += length;
}

// The target is complete: the router decides where the request goes. An echo keeps the target
// and every header field; anything else needs neither.
[[gnu::hot]] void RequestParser::route_target() {
  const std::string_view target = request_.target_split ? std::string_view(scratch_->target)
                                  : request_.target_at != nullptr
                                      ? std::string_view(request_.target_at, request_.target_length)
                                      : std::string_view();
  request_.route = router_->route(target);
  request_.capture_headers = request_.route.switches.echo;
  if (request_.capture_headers) {
    Scratch& kept = scratch();
    if (!request_.target_split) kept.target.assign(target);
    kept.headers.clear();
  }
  request_.target_split = false;
  request_.target_at = nullptr;
  request_.target_length = 0;
}

// Input ends inside the Host value: keep what came so far, since the input buffer does not stay.
void RequestParser::save_split_host() {
  if (request_.field != Field::kHost || request_.host_split || request_.host_at == nullptr) return;
  scratch().host.assign(request_.host_at, request_.host_length);
  request_.host_split = true;
  request_.host_at = nullptr;
}

// llhttp pauses at three points, so that everything it consumed before them can be checked
// here first: the end of the head, the last chunk (start of the trailer section), and the end
// of a message, where the response is produced.
[[gnu::hot]] void RequestParser::feed(std::string_view input, std::string& out) {
  if (phase_ == Phase::kClosing) {
    unread_input_ = unread_input_ || !input.empty();
    return;
  }
  if (phase_ == Phase::kDelayed) {  // waits behind the delayed request, in order
    scratch_->pending.append(input);
    return;
  }
  const char* p = input.data();
  const char* const end = p + input.size();
  if (request_.crlf_left > 0 && !check_chunk_crlf(p, end)) return fail(ErrorStatus::k400, out);
  if (in_unknown_method_ && skip_unknown_method(p, end, out) != Recovery::kResume) return;
  for (;;) {
    const bool scanning = scanning_;
    const bool in_body = phase_ == Phase::kBody;
    segment_end_ = end;
    method_span_end_ = nullptr;
    const llhttp_errno_t err = llhttp_execute(&http_, p, static_cast<std::size_t>(end - p));
    if (err != HPE_OK && err != HPE_PAUSED) {
      // Bytes llhttp took before the error are checked first: a bad line ending is a 400
      // whatever llhttp or a callback thought of the rest.
      const char* const at = llhttp_get_error_pos(&http_);
      if (scanning && at != nullptr && !scan_lines(p, at)) return fail(rejected_, out);
      if (recover(err, p, end, out) == Recovery::kResume) continue;
      return;
    }
    const char* const stop = err == HPE_OK ? end : llhttp_get_error_pos(&http_);
    if (scanning && !scan_lines(p, stop)) return fail(rejected_, out);
    if (in_body && stop > p) request_.body_started = true;
    if (err == HPE_OK) break;
    if (message_done_) {
      complete_message(out);
      if (phase_ == Phase::kClosing) {
        unread_input_ = stop != end;
        return;
      }
      if (phase_ == Phase::kDelayed) {
        scratch().pending.assign(stop, static_cast<std::size_t>(end - stop));
        return;
      }
    }
    llhttp_resume(&http_);
    p = stop;  // resume even with nothing left: llhttp checks the framing after a head then
  }
  save_split_host();
  save_split_target();
  // Only a client that is waiting needs the interim response (RFC 9110 §10.1.1).
  if (request_.continue_pending && phase_ == Phase::kBody && !request_.body_started) {
    out.append(Responses::kContinue);
  }
  request_.continue_pending = false;
}

void RequestParser::answer_refused(std::string& out) {
  if (!refused_body_pending()) return;
  request_.answered = true;
  if (answer(out)) {
    phase_ = Phase::kClosing;
    unread_input_ = true;  // the rest of the body
  }
}

bool RequestParser::time_out(std::string& out) {
  if ((phase_ == Phase::kHead || phase_ == Phase::kBody) && !request_.answered) {
    fail(ErrorStatus::k408, out);
    return true;
  }
  phase_ = Phase::kClosing;
  return false;
}

void RequestParser::complete_message(std::string& out) {
  message_done_ = false;
  scanning_ = true;
  line_start_ = true;
  last_byte_ = '\n';
  head_bytes_ = 0;
  if (!request_.answered && request_.kind == Kind::kBackend && request_.route.switches.delay > 0) {
    phase_ = Phase::kDelayed;  // llhttp stays paused until release()
    return;
  }
  finish_answer(out);
}

void RequestParser::finish_answer(std::string& out) {
  const bool close = !request_.answered && answer(out);
  request_.answered = false;
  phase_ = close ? Phase::kClosing : Phase::kIdle;
  request_.head_method = false;
}

void RequestParser::release(std::string& out) {
  if (phase_ != Phase::kDelayed) return;
  finish_answer(out);
  std::string pending;
  pending.swap(scratch_->pending);
  if (phase_ == Phase::kClosing) {
    unread_input_ = !pending.empty();
    return;
  }
  llhttp_resume(&http_);
  feed(pending, out);
}

// Appends the response to the request read; returns whether it closes the connection.
[[gnu::hot]] bool RequestParser::answer(std::string& out) {
  const bool last_allowed =
      limits_.keepalive_requests != 0 && response_count_ + 1 >= limits_.keepalive_requests;
  bool close = !request_.keep_alive || draining_ || last_allowed;
  const ConnectionHeader connection = close                   ? ConnectionHeader::kClose
                                      : http_.http_minor == 0 ? ConnectionHeader::kKeepAlive
                                                              : ConnectionHeader::kNone;
  switch (request_.kind) {
    case Kind::kHello:
      out.append(responses_.hello(request_.head_method, connection));
      report(responses_.hello_status(), responses_.hello_body_bytes(request_.head_method));
      break;
    case Kind::kOptions:
      out.append(responses_.options(connection));
      report(204, 0);
      break;
    case Kind::kNotAllowed:
      out.append(responses_.method_not_allowed(connection));
      report(405, Responses::error_body_size(ErrorStatus::k405));
      break;
    case Kind::kEndpoint: {
      const EndpointReply reply = handler_->respond(
          {*request_.route.endpoint, request_.head_method, request_.route.json, connection}, out);
      close = close || reply.close;
      report(reply.status, reply.body_bytes);
      break;
    }
    case Kind::kBackend: {
      const EndpointReply reply = handler_->respond_backend(
          {request_.route.switches, *this, request_.head_method, connection}, responses_, out);
      close = close || reply.close;
      report(reply.status, reply.body_bytes);
      break;
    }
  }
  ++response_count_;
  return close;
}

void RequestParser::fail(ErrorStatus status, std::string& out) {
  in_unknown_method_ = false;
  if (!request_
           .answered) {  // exactly one response per request: a refused one may have had it already
    out.append(responses_.error(status, request_.head_method));
    ++response_count_;
    report(status_code(status), request_.head_method ? 0 : Responses::error_body_size(status));
  }
  phase_ = Phase::kClosing;
  unread_input_ = true;  // the rest of a bad request may still be on its way
}

ErrorStatus RequestParser::status_for(llhttp_errno_t err) const {
  // A callback's own verdict; on_headers_complete's comes back as HPE_CB_HEADERS_COMPLETE.
  if (has_rejected_) return rejected_;
  // llhttp itself refuses well-formed versions it does not know ("HTTP/1.2", "HTTP/3.0");
  // those are 505, while a malformed version is 400.
  if (err == HPE_INVALID_VERSION && !request_.version_seen && request_.version_length == 3 &&
      is_digit(request_.version[0]) && request_.version[1] == '.' &&
      is_digit(request_.version[2])) {
    return ErrorStatus::k505;
  }
  return ErrorStatus::k400;
}

// llhttp stopped on an error. Two of its errors are not errors for us: a method it does not
// know (RFC 9110 §9.1: 501 when the request is otherwise well-formed) and an HTTP/1.x version
// with a minor above 1 (RFC 9110 §2.5: processed as HTTP/1.1). For both, llhttp is started
// again over a stand-in request line and then goes on with the real input; `p` moves to where.
RequestParser::Recovery RequestParser::recover(llhttp_errno_t err, const char*& p, const char* end,
                                               std::string& out) {
  const char* const begin = p;
  const char* const at = llhttp_get_error_pos(&http_);
  if (has_rejected_ || at == nullptr) {
    fail(status_for(err), out);
    return Recovery::kFailed;
  }
  if (err == HPE_INVALID_METHOD && phase_ == Phase::kHead) {
    // What llhttp took of this input before giving up is the start of the method (CR and LF
    // before a request are not tchars), less what on_method reported already: llhttp reports
    // a method it matched whole ("GET" of "GETX") before it sees the byte that breaks it, and
    // an earlier input's part of the method came through on_method too.
    const char* const floor = method_span_end_ != nullptr ? method_span_end_ : begin;
    const char* method = at;
    while (method > floor && is_tchar(method[-1])) --method;
    request_.method_bytes =
        static_cast<std::uint32_t>(request_.line_bytes + static_cast<std::size_t>(at - method));
    request_.line_bytes = request_.method_bytes;
    if (capture_line_) {
      append_bounded(scratch_->request_line, method, static_cast<std::size_t>(at - method),
                     kMaxLoggedLine);
    }
    in_unknown_method_ = true;
    p = at;
    return skip_unknown_method(p, end, out);
  }
  if (err == HPE_INVALID_VERSION && !request_.version_seen && request_.version_length == 3 &&
      request_.version[0] == '1' && request_.version[1] == '.' && is_digit(request_.version[2])) {
    const std::string line =
        std::string(llhttp_method_name(static_cast<llhttp_method_t>(http_.method))) +
        (http_.method == HTTP_CONNECT ? " a:1" : " /") + " HTTP/1.1";
    if (replay_request_line(line)) {
      p = at;
      return Recovery::kResume;
    }
  }
  fail(status_for(err), out);
  return Recovery::kFailed;
}

// The rest of a method llhttp does not know: tchars up to the SP. Then llhttp reads the rest
// of the request as a GET's, so that the whole head is checked before the 501.
RequestParser::Recovery RequestParser::skip_unknown_method(const char*& p, const char* end,
                                                           std::string& out) {
  const char* const start = p;
  while (p < end && is_tchar(*p)) ++p;
  const auto taken = static_cast<std::size_t>(p - start);
  if (capture_line_) append_bounded(scratch_->request_line, start, taken, kMaxLoggedLine);
  request_.method_bytes += static_cast<std::uint32_t>(taken);
  request_.line_bytes += taken;
  head_bytes_ += taken;
  if (request_.line_bytes + kRequestLineOverhead > limits_.max_request_line) {
    fail(ErrorStatus::k414, out);
    return Recovery::kFailed;
  }
  if (p == end) return Recovery::kNeedMore;
  if (*p != ' ' || request_.method_bytes == 0) {
    fail(ErrorStatus::k400, out);
    return Recovery::kFailed;
  }
  in_unknown_method_ = false;
  if (!replay_request_line("GET ")) {
    fail(ErrorStatus::k400, out);
    return Recovery::kFailed;
  }
  ++p;
  ++head_bytes_;  // the SP is in kRequestLineOverhead, as for a method llhttp knows
  if (capture_line_) {
    append_bounded(scratch_->request_line, " ", 1, kMaxLoggedLine);
    request_.line_part = 1;
  }
  last_byte_ = ' ';
  line_start_ = false;
  request_.unknown_method = true;
  return Recovery::kResume;
}

// Starts llhttp afresh over `line`, with callbacks off but for on_version_complete; the
// request's own state (and what on_url saw) stays as it was.
bool RequestParser::replay_request_line(std::string_view line) {
  llhttp_init(&http_, HTTP_REQUEST, &kSettings);
  http_.data = this;
  replaying_ = true;
  const llhttp_errno_t err = llhttp_execute(&http_, line.data(), line.size());
  replaying_ = false;
  return err == HPE_OK;
}

int RequestParser::reject(ErrorStatus status) {
  rejected_ = status;
  has_rejected_ = true;
  return HPE_USER;
}

bool RequestParser::scan_failed(ErrorStatus status) {
  rejected_ = status;
  return false;
}

// llhttp (8.x, lenient flags off) still accepts a bare LF ending the head or the trailer
// section, and obs-fold; both are smuggling vectors (RFC 9112 §2.2, §5.2), so every byte of a
// head or trailer section passes here: LF only after CR, no line starting with SP or HTAB.
[[gnu::hot]] bool RequestParser::scan_lines(const char* begin, const char* end) {
  // Only the bytes around each LF matter: the one before it and the one that starts a line.
  const char* c = begin;
  while (c < end) {
    if (line_start_) {
      if (*c == ' ' || *c == '\t') return scan_failed(ErrorStatus::k400);
      line_start_ = false;
    }
    const auto* lf =
        static_cast<const char*>(std::memchr(c, '\n', static_cast<std::size_t>(end - c)));
    if (lf == nullptr) {
      last_byte_ = end[-1];
      break;
    }
    if ((lf == c ? last_byte_ : lf[-1]) != '\r') return scan_failed(ErrorStatus::k400);
    last_byte_ = '\n';
    line_start_ = true;
    c = lf + 1;
  }
  head_bytes_ += static_cast<std::size_t>(end - begin);
  // Whitespace runs llhttp skips without reporting still count here.
  if (head_bytes_ > limits_.max_request_line + limits_.max_header_bytes) {
    return scan_failed(ErrorStatus::k431);
  }
  return true;
}

// llhttp 8.x skips the two bytes after a chunk's data without looking at them; they must be
// CRLF, or a request could hide in a chunk.
bool RequestParser::check_chunk_crlf(const char* begin, const char* end) {
  for (; request_.crlf_left > 0 && begin < end; ++begin, --request_.crlf_left) {
    if (*begin != (request_.crlf_left == 2 ? '\r' : '\n')) return false;
  }
  return true;
}

void RequestParser::start_request() {
  phase_ = Phase::kHead;
  request_ = RequestState{};
  if (scratch_) {
    if (capture_line_) scratch_->request_line.clear();
    if (log_requests_) {
      scratch_->referer.clear();
      scratch_->user_agent.clear();
    }
    if (capture_forwarded_) {
      scratch_->x_forwarded_for.clear();
      scratch_->forwarded.clear();
    }
  }
}

[[gnu::hot]] int RequestParser::on_message_begin(llhttp_t* http) {
  if (self(http).replaying_) return HPE_OK;
  self(http).start_request();
  return HPE_OK;
}

[[gnu::hot]] int RequestParser::on_method(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  if (parser.replaying_) return HPE_OK;
  parser.request_.line_bytes += length;
  parser.method_span_end_ = at + length;
  if (parser.capture_line_) {
    append_bounded(parser.scratch_->request_line, at, length, kMaxLoggedLine);
  }
  return HPE_OK;
}

[[gnu::hot]] int RequestParser::on_method_complete(llhttp_t* http) {
  if (self(http).replaying_) return HPE_OK;
  self(http).request_.head_method = http->method == HTTP_HEAD;
  return HPE_OK;
}

[[gnu::hot]] int RequestParser::on_url(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  if (parser.replaying_) return HPE_OK;
  // "*" (asterisk-form) is only for OPTIONS (RFC 9112 §3.2.4), checked with the head.
  if (length > 0) {
    parser.request_.asterisk = !parser.request_.target_seen && length == 1 && at[0] == '*';
    parser.request_.target_seen = true;
  }
  // llhttp lets HTAB and bytes >= 0x80 through; a request-target is visible ASCII only.
  for (std::size_t i = 0; i < length; ++i) {
    const auto c = static_cast<unsigned char>(at[i]);
    if (c <= 0x20 || c >= 0x7f) return parser.reject(ErrorStatus::k400);
  }
  if (parser.routing_) parser.collect_target(at, length);
  if (parser.capture_line_) {
    std::string& line = parser.scratch_->request_line;
    if (parser.request_.line_part == 0) append_bounded(line, " ", 1, kMaxLoggedLine);
    parser.request_.line_part = 1;
    append_bounded(line, at, length, kMaxLoggedLine);
  }
  parser.request_.line_bytes += length;
  if (parser.request_.line_bytes + kRequestLineOverhead > parser.limits_.max_request_line) {
    return parser.reject(ErrorStatus::k414);
  }
  return HPE_OK;
}

[[gnu::hot]] int RequestParser::on_url_complete(llhttp_t* http) {
  RequestParser& parser = self(http);
  if (!parser.replaying_ && parser.routing_) parser.route_target();
  return HPE_OK;
}

[[gnu::hot]] int RequestParser::on_version(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  if (parser.replaying_) return HPE_OK;
  if (parser.capture_line_) {
    std::string& line = parser.scratch_->request_line;
    if (parser.request_.line_part < 2) append_bounded(line, " HTTP/", 6, kMaxLoggedLine);
    parser.request_.line_part = 2;
    append_bounded(line, at, length, kMaxLoggedLine);
  }
  if (parser.request_.version_length + length > sizeof parser.request_.version) {
    parser.request_.version_length =
        sizeof parser.request_.version + 1;  // too long to be DIGIT "." DIGIT
    return HPE_OK;
  }
  std::memcpy(parser.request_.version + parser.request_.version_length, at, length);
  parser.request_.version_length =
      static_cast<std::uint8_t>(parser.request_.version_length + length);
  return HPE_OK;
}

[[gnu::hot]] int RequestParser::on_version_complete(llhttp_t* http) {
  RequestParser& parser = self(http);
  parser.request_.version_seen = true;
  // HTTP/1.x with x > 1 gets here only through recover(), as HTTP/1.1.
  if (http->http_major != 1) return parser.reject(ErrorStatus::k505);
  return HPE_OK;
}

[[gnu::hot]] int RequestParser::on_header_field(llhttp_t* http, const char* at,
                                                std::size_t length) {
  RequestParser& parser = self(http);
  // llhttp accepts "Host : x" (space before the colon); RFC 9112 §5.1 requires a 400.
  for (std::size_t i = 0; i < length; ++i) {
    if (!is_tchar(at[i])) return parser.reject(ErrorStatus::k400);
  }
  parser.request_.header_bytes += length;
  if (parser.request_.header_bytes > parser.limits_.max_header_bytes) {
    return parser.reject(ErrorStatus::k431);
  }
  if (parser.request_.capture_headers && parser.phase_ == Phase::kHead) {
    std::vector<std::string>& headers = parser.scratch_->headers;
    if (parser.request_.field_length == 0 && length > 0) headers.resize(headers.size() + 2);
    if (!headers.empty()) headers[headers.size() - 2].append(at, length);
  }
  // Matched as it arrives, so a name split across reads needs no copy. The first byte picks
  // the one name it can be (the six differ there), so at most one is compared.
  if (parser.request_.field_length == 0 && length > 0) {
    std::uint8_t first = 0;
    switch (to_lower(at[0])) {
      case 'h': first = kHostBit; break;
      case 'e': first = kExpectBit; break;
      case 'r': first = 1U << 2; break;
      case 'u': first = 1U << 3; break;
      case 'x': first = 1U << 4; break;
      case 'f': first = 1U << 5; break;
      default: break;
    }
    const std::uint8_t allowed =
        parser.phase_ != Phase::kHead  // trailers: none of ours
            ? 0
            : static_cast<std::uint8_t>(kHostBit | kExpectBit |
                                        (parser.log_requests_ ? kLoggedBits : 0) |
                                        (parser.capture_forwarded_ ? kForwardedBits : 0));
    parser.request_.field_candidates = static_cast<std::uint8_t>(first & allowed);
  }
  std::uint8_t candidates = parser.request_.field_candidates;
  if (candidates != 0) {
    const auto bit = static_cast<std::size_t>(__builtin_ctz(candidates));
    const std::string_view name = kFieldNames[bit];
    bool match = parser.request_.field_length + length <= name.size();
    for (std::size_t i = 0; match && i < length; ++i) {
      match = to_lower(at[i]) == name[parser.request_.field_length + i];
    }
    if (!match) candidates = 0;
  }
  parser.request_.field_candidates = candidates;
  parser.request_.field_length =
      static_cast<std::uint8_t>(std::min<std::size_t>(parser.request_.field_length + length, 255));
  return HPE_OK;
}

[[gnu::hot]] int RequestParser::on_header_field_complete(llhttp_t* http) {
  RequestParser& parser = self(http);
  if (parser.request_.field_length == 0) return parser.reject(ErrorStatus::k400);  // ": x"
  if (++parser.request_.header_count > parser.limits_.max_headers)
    return parser.reject(ErrorStatus::k431);
  parser.request_.header_bytes += kFieldLineOverhead;
  if (parser.request_.header_bytes > parser.limits_.max_header_bytes) {
    return parser.reject(ErrorStatus::k431);
  }
  parser.request_.field = Field::kOther;
  for (std::size_t bit = 0; bit < kFieldNames.size(); ++bit) {
    if ((parser.request_.field_candidates & (1U << bit)) != 0 &&
        kFieldNames[bit].size() == parser.request_.field_length) {
      parser.request_.field = static_cast<Field>(bit + 1);
    }
  }
  switch (parser.request_.field) {
    case Field::kHost:
      if (++parser.request_.host_count > 1) return parser.reject(ErrorStatus::k400);
      break;
    case Field::kExpect:
      parser.request_.expect_state = ExpectState::kLeading;
      parser.request_.expect_matched = 0;
      break;
    case Field::kReferer: parser.scratch_->referer.clear(); break;
    case Field::kUserAgent: parser.scratch_->user_agent.clear(); break;
    // Several lines of a list field make one list: joined with ','.
    case Field::kXForwardedFor:
      if (!parser.scratch_->x_forwarded_for.empty()) {
        append_bounded(parser.scratch_->x_forwarded_for, ",", 1, kMaxForwardedBytes + 1);
      }
      break;
    case Field::kForwarded:
      if (!parser.scratch_->forwarded.empty()) {
        append_bounded(parser.scratch_->forwarded, ",", 1, kMaxForwardedBytes + 1);
      }
      break;
    case Field::kOther: break;
  }
  parser.request_.field_length = 0;
  parser.request_.field_candidates = 0;
  return HPE_OK;
}

[[gnu::hot]] int RequestParser::on_header_value(llhttp_t* http, const char* at,
                                                std::size_t length) {
  RequestParser& parser = self(http);
  parser.request_.header_bytes += length;
  if (parser.request_.header_bytes > parser.limits_.max_header_bytes) {
    return parser.reject(ErrorStatus::k431);
  }
  if (parser.request_.capture_headers && parser.phase_ == Phase::kHead &&
      !parser.scratch_->headers.empty()) {
    parser.scratch_->headers.back().append(at, length);
  }
  switch (parser.request_.field) {
    case Field::kHost:
      // Usually the whole value arrives in one piece and is checked where it lies; only a
      // value split across reads is copied (save_split_host).
      if (parser.request_.host_length + length > kMaxHostLength) {
        parser.request_.host_valid = false;
      } else if (parser.request_.host_split) {
        parser.scratch_->host.append(at, length);
      } else if (parser.request_.host_at == nullptr) {
        parser.request_.host_at = at;
      } else {
        parser.scratch()
            .host.assign(parser.request_.host_at, parser.request_.host_length)
            .append(at, length);
        parser.request_.host_split = true;
        parser.request_.host_at = nullptr;
      }
      parser.request_.host_length = static_cast<std::uint16_t>(
          std::min<std::size_t>(parser.request_.host_length + length, kMaxHostLength + 1));
      break;
    case Field::kExpect: parser.match_expect(at, length); break;
    case Field::kReferer:
      append_bounded(parser.scratch_->referer, at, length, kMaxLoggedField);
      break;
    case Field::kUserAgent:
      append_bounded(parser.scratch_->user_agent, at, length, kMaxLoggedField);
      break;
    // One byte over the bound marks a value too long to trust (forwarded.hpp).
    case Field::kXForwardedFor:
      append_bounded(parser.scratch_->x_forwarded_for, at, length, kMaxForwardedBytes + 1);
      break;
    case Field::kForwarded:
      append_bounded(parser.scratch_->forwarded, at, length, kMaxForwardedBytes + 1);
      break;
    case Field::kOther: break;
  }
  return HPE_OK;
}

// Expect is matched as it arrives against OWS "100-continue" OWS (case-insensitive).
void RequestParser::match_expect(const char* at, std::size_t length) {
  for (std::size_t i = 0; i < length && request_.expect_state != ExpectState::kBad; ++i) {
    const char c = at[i];
    switch (request_.expect_state) {
      case ExpectState::kLeading:
        if (is_ows(c)) break;
        request_.expect_state = ExpectState::kMatching;
        [[fallthrough]];
      case ExpectState::kMatching:
        if (request_.expect_matched < kContinueExpectation.size() &&
            to_lower(c) == kContinueExpectation[request_.expect_matched]) {
          ++request_.expect_matched;
        } else if (request_.expect_matched == kContinueExpectation.size() && is_ows(c)) {
          request_.expect_state = ExpectState::kTrailing;
        } else {
          request_.expect_state = ExpectState::kBad;
        }
        break;
      case ExpectState::kTrailing:
        if (!is_ows(c)) request_.expect_state = ExpectState::kBad;
        break;
      case ExpectState::kBad: break;
    }
  }
}

[[gnu::hot]] int RequestParser::on_header_value_complete(llhttp_t* http) {
  RequestParser& parser = self(http);
  if (parser.request_.field == Field::kExpect) {
    const bool known = parser.request_.expect_state == ExpectState::kTrailing ||
                       (parser.request_.expect_state == ExpectState::kMatching &&
                        parser.request_.expect_matched == kContinueExpectation.size());
    (known ? parser.request_.expect_continue : parser.request_.expect_unknown) = true;
  } else if (parser.request_.field == Field::kHost) {
    if (parser.request_.host_valid) {
      const std::string_view value =
          parser.request_.host_split ? std::string_view(parser.scratch_->host)
          : parser.request_.host_at != nullptr
              ? std::string_view(parser.request_.host_at, parser.request_.host_length)
              : std::string_view();
      parser.request_.host_valid = is_valid_host(trim_ows(value));
    }
    parser.request_.host_split = false;
    parser.request_.host_at = nullptr;
  }
  parser.request_.field = Field::kOther;
  return HPE_OK;
}

[[gnu::hot]] int RequestParser::on_headers_complete(llhttp_t* http) {
  return self(http).headers_complete();
}

// What answers the request, from its method and what the router said of its target.
[[gnu::hot]] RequestParser::Kind RequestParser::kind_for(llhttp_method_t method) const {
  const bool backend = routing_ && router_->switches() && !request_.route.endpoint;
  const Kind hello = request_.route.switches.any() ? Kind::kBackend : Kind::kHello;
  switch (method) {
    case HTTP_GET:
    case HTTP_HEAD: return request_.route.endpoint ? Kind::kEndpoint : hello;
    case HTTP_OPTIONS: return backend && !request_.asterisk ? hello : Kind::kOptions;
    default: return backend ? hello : Kind::kNotAllowed;
  }
}

int RequestParser::headers_complete() {
  scanning_ = false;  // the body is not line-oriented; chunk framing is llhttp's and ours below
  // llhttp takes "GET /" without a version as HTTP/0.9; we serve HTTP/1.x only.
  if (!request_.version_seen) return reject(ErrorStatus::k400);
  const bool http11 = http_.http_minor >= 1;
  if (http11 && request_.host_count == 0) return reject(ErrorStatus::k400);
  if (request_.host_count == 1 && !request_.host_valid) return reject(ErrorStatus::k400);
  if (request_.asterisk && http_.method != HTTP_OPTIONS) return reject(ErrorStatus::k400);
  // With switches on, the backend answers any method (an unknown one reads as GET from here).
  const bool any_method = routing_ && router_->switches() && !request_.route.endpoint;
  if (request_.unknown_method && !any_method) return reject(ErrorStatus::k501);
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing.
  if ((http_.flags & F_TRANSFER_ENCODING) != 0 && !http11) return reject(ErrorStatus::k400);
  const bool has_length = (http_.flags & F_CONTENT_LENGTH) != 0;
  if (has_length && http_.content_length > limits_.max_body_bytes) {
    return reject(ErrorStatus::k413);
  }
  request_.kind = kind_for(static_cast<llhttp_method_t>(http_.method));
  // We speak no other protocol: after CONNECT or an Upgrade request the connection ends.
  const bool client_keeps_alive = llhttp_should_keep_alive(&http_) != 0;
  const bool other_protocol = http_.upgrade != 0 || http_.method == HTTP_CONNECT;
  request_.keep_alive = client_keeps_alive && !other_protocol;
  // One switching protocols may send its bytes at once; one that said close sends nothing more.
  request_.client_closes = !client_keeps_alive && !other_protocol;
  // HTTP/1.0 servers ignore Expect (RFC 9110 §10.1.1).
  if (http11 && request_.expect_unknown) return reject(ErrorStatus::k417);
  const bool has_body = (http_.flags & F_CHUNKED) != 0 || (has_length && http_.content_length > 0);
  if (http11 && request_.expect_continue && has_body) {
    // Refuse at once rather than invite a body we would discard; the connection then closes.
    if (request_.kind == Kind::kNotAllowed) return reject(ErrorStatus::k405);
    request_.continue_pending = true;
  }
  request_.refused_with_body = request_.kind == Kind::kNotAllowed && has_body;
  phase_ = Phase::kBody;
  return HPE_PAUSED;
}

[[gnu::hot]] int RequestParser::on_chunk_header(llhttp_t* http) {
  RequestParser& parser = self(http);
  parser.request_.chunk_left = http->content_length;
  if (parser.request_.body_bytes + parser.request_.chunk_left > parser.limits_.max_body_bytes ||
      parser.request_.chunk_left > parser.limits_.max_body_bytes) {
    return parser.reject(ErrorStatus::k413);
  }
  if (parser.request_.chunk_left != 0) return HPE_OK;
  // Last chunk: the trailer section follows, line-oriented like a head.
  parser.scanning_ = true;
  parser.line_start_ = true;
  parser.last_byte_ = '\n';
  parser.head_bytes_ = 0;
  return HPE_PAUSED;
}

[[gnu::hot]] int RequestParser::on_body(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  parser.request_.body_bytes += length;
  if ((http->flags & F_CHUNKED) == 0) return HPE_OK;
  parser.request_.chunk_left -= std::min<std::uint64_t>(parser.request_.chunk_left, length);
  if (parser.request_.chunk_left == 0) {
    parser.request_.crlf_left = 2;
    if (!parser.check_chunk_crlf(at + length, parser.segment_end_)) {
      return parser.reject(ErrorStatus::k400);
    }
  }
  return HPE_OK;
}

[[gnu::hot]] int RequestParser::on_message_complete(llhttp_t* http) {
  self(http).message_done_ = true;
  return HPE_PAUSED;
}

}  // namespace prefork::worker
