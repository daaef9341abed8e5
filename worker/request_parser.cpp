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

RequestParser::RequestParser(const Limits& limits, const Responses& responses, const Router* router)
    : limits_(limits), responses_(responses), router_(router) {
  if (router_ == nullptr) {
    own_router_ = std::make_unique<Router>(limits);
    router_ = own_router_.get();
  }
  // llhttp_init leaves every lenient flag off: llhttp's strict checks are part of our contract.
  llhttp_init(&http_, HTTP_REQUEST, &kSettings);
  http_.data = this;
}

void RequestParser::set_handler(RequestHandler* handler, bool log_requests) {
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
  return version_length_ == sizeof version_ ? std::string_view(version_, sizeof version_)
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
  if (target_split_ || target_at_ == nullptr) return;
  scratch().target.assign(target_at_, target_length_);
  target_split_ = true;
  target_at_ = nullptr;
}

void RequestParser::collect_target(const char* at, std::size_t length) {
  if (target_split_) {
    scratch_->target.append(at, length);
  } else if (target_at_ == nullptr) {
    target_at_ = at;
  } else {
    scratch().target.assign(target_at_, target_length_).append(at, length);
    target_split_ = true;
    target_at_ = nullptr;
  }
  target_length_ += length;
}

// The target is complete: the router decides where the request goes. An echo keeps the target
// and every header field; anything else needs neither.
void RequestParser::route_target() {
  const std::string_view target = target_split_ ? std::string_view(scratch_->target)
                                  : target_at_ != nullptr
                                      ? std::string_view(target_at_, target_length_)
                                      : std::string_view();
  route_ = router_->route(target);
  capture_headers_ = route_.switches.echo;
  if (capture_headers_) {
    Scratch& kept = scratch();
    if (!target_split_) kept.target.assign(target);
    kept.headers.clear();
  }
  target_split_ = false;
  target_at_ = nullptr;
  target_length_ = 0;
}

// Input ends inside the Host value: keep what came so far, since the input buffer does not stay.
void RequestParser::save_split_host() {
  if (field_ != Field::kHost || host_split_ || host_at_ == nullptr) return;
  scratch().host.assign(host_at_, host_length_);
  host_split_ = true;
  host_at_ = nullptr;
}

// llhttp pauses at three points, so that everything it consumed before them can be checked
// here first: the end of the head, the last chunk (start of the trailer section), and the end
// of a message, where the response is produced.
void RequestParser::feed(std::string_view input, std::string& out) {
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
  if (crlf_left_ > 0 && !check_chunk_crlf(p, end)) return fail(ErrorStatus::k400, out);
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
    if (in_body && stop > p) body_started_ = true;
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
  if (continue_pending_ && phase_ == Phase::kBody && !body_started_) {
    out.append(Responses::kContinue);
  }
  continue_pending_ = false;
}

void RequestParser::answer_refused(std::string& out) {
  if (!refused_body_pending()) return;
  answered_ = true;
  if (answer(out)) {
    phase_ = Phase::kClosing;
    unread_input_ = true;  // the rest of the body
  }
}

bool RequestParser::time_out(std::string& out) {
  if ((phase_ == Phase::kHead || phase_ == Phase::kBody) && !answered_) {
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
  if (!answered_ && kind_ == Kind::kBackend && route_.switches.delay > 0) {
    phase_ = Phase::kDelayed;  // llhttp stays paused until release()
    return;
  }
  finish_answer(out);
}

void RequestParser::finish_answer(std::string& out) {
  const bool close = !answered_ && answer(out);
  answered_ = false;
  phase_ = close ? Phase::kClosing : Phase::kIdle;
  head_method_ = false;
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
bool RequestParser::answer(std::string& out) {
  const bool last_allowed =
      limits_.keepalive_requests != 0 && response_count_ + 1 >= limits_.keepalive_requests;
  bool close = !keep_alive_ || draining_ || last_allowed;
  const ConnectionHeader connection = close                   ? ConnectionHeader::kClose
                                      : http_.http_minor == 0 ? ConnectionHeader::kKeepAlive
                                                              : ConnectionHeader::kNone;
  switch (kind_) {
    case Kind::kHello:
      out.append(responses_.hello(head_method_, connection));
      report(responses_.hello_status(), responses_.hello_body_bytes(head_method_));
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
      const EndpointReply reply =
          handler_->respond({*route_.endpoint, head_method_, route_.json, connection}, out);
      close = close || reply.close;
      report(reply.status, reply.body_bytes);
      break;
    }
    case Kind::kBackend: {
      const EndpointReply reply = handler_->respond_backend(
          {route_.switches, *this, head_method_, connection}, responses_, out);
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
  if (!answered_) {  // exactly one response per request: a refused one may have had it already
    out.append(responses_.error(status, head_method_));
    ++response_count_;
    report(status_code(status), head_method_ ? 0 : Responses::error_body_size(status));
  }
  phase_ = Phase::kClosing;
  unread_input_ = true;  // the rest of a bad request may still be on its way
}

ErrorStatus RequestParser::status_for(llhttp_errno_t err) const {
  // A callback's own verdict; on_headers_complete's comes back as HPE_CB_HEADERS_COMPLETE.
  if (has_rejected_) return rejected_;
  // llhttp itself refuses well-formed versions it does not know ("HTTP/1.2", "HTTP/3.0");
  // those are 505, while a malformed version is 400.
  if (err == HPE_INVALID_VERSION && !version_seen_ && version_length_ == 3 &&
      is_digit(version_[0]) && version_[1] == '.' && is_digit(version_[2])) {
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
    method_bytes_ = static_cast<std::uint32_t>(line_bytes_ + static_cast<std::size_t>(at - method));
    line_bytes_ = method_bytes_;
    if (capture_line_) {
      append_bounded(scratch_->request_line, method, static_cast<std::size_t>(at - method),
                     kMaxLoggedLine);
    }
    in_unknown_method_ = true;
    p = at;
    return skip_unknown_method(p, end, out);
  }
  if (err == HPE_INVALID_VERSION && !version_seen_ && version_length_ == 3 && version_[0] == '1' &&
      version_[1] == '.' && is_digit(version_[2])) {
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
  method_bytes_ += static_cast<std::uint32_t>(taken);
  line_bytes_ += taken;
  head_bytes_ += taken;
  if (line_bytes_ + kRequestLineOverhead > limits_.max_request_line) {
    fail(ErrorStatus::k414, out);
    return Recovery::kFailed;
  }
  if (p == end) return Recovery::kNeedMore;
  if (*p != ' ' || method_bytes_ == 0) {
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
    line_part_ = 1;
  }
  last_byte_ = ' ';
  line_start_ = false;
  unknown_method_ = true;
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
bool RequestParser::scan_lines(const char* begin, const char* end) {
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
  for (; crlf_left_ > 0 && begin < end; ++begin, --crlf_left_) {
    if (*begin != (crlf_left_ == 2 ? '\r' : '\n')) return false;
  }
  return true;
}

void RequestParser::start_request() {
  phase_ = Phase::kHead;
  line_bytes_ = 0;
  header_bytes_ = 0;
  header_count_ = 0;
  body_bytes_ = 0;
  chunk_left_ = 0;
  crlf_left_ = 0;
  kind_ = Kind::kHello;
  head_method_ = false;
  keep_alive_ = false;
  client_closes_ = false;
  version_seen_ = false;
  continue_pending_ = false;
  body_started_ = false;
  expect_continue_ = false;
  expect_unknown_ = false;
  unknown_method_ = false;
  refused_with_body_ = false;
  answered_ = false;
  target_seen_ = false;
  asterisk_ = false;
  method_bytes_ = 0;
  field_ = Field::kOther;
  field_length_ = 0;
  field_candidates_ = 0;
  host_count_ = 0;
  version_length_ = 0;
  host_valid_ = true;
  host_split_ = false;
  host_length_ = 0;
  host_at_ = nullptr;
  target_split_ = false;
  target_at_ = nullptr;
  target_length_ = 0;
  route_ = Route{};
  capture_headers_ = false;
  line_part_ = 0;
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

int RequestParser::on_message_begin(llhttp_t* http) {
  if (self(http).replaying_) return HPE_OK;
  self(http).start_request();
  return HPE_OK;
}

int RequestParser::on_method(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  if (parser.replaying_) return HPE_OK;
  parser.line_bytes_ += length;
  parser.method_span_end_ = at + length;
  if (parser.capture_line_) {
    append_bounded(parser.scratch_->request_line, at, length, kMaxLoggedLine);
  }
  return HPE_OK;
}

int RequestParser::on_method_complete(llhttp_t* http) {
  if (self(http).replaying_) return HPE_OK;
  self(http).head_method_ = http->method == HTTP_HEAD;
  return HPE_OK;
}

int RequestParser::on_url(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  if (parser.replaying_) return HPE_OK;
  // "*" (asterisk-form) is only for OPTIONS (RFC 9112 §3.2.4), checked with the head.
  if (length > 0) {
    parser.asterisk_ = !parser.target_seen_ && length == 1 && at[0] == '*';
    parser.target_seen_ = true;
  }
  // llhttp lets HTAB and bytes >= 0x80 through; a request-target is visible ASCII only.
  for (std::size_t i = 0; i < length; ++i) {
    const auto c = static_cast<unsigned char>(at[i]);
    if (c <= 0x20 || c >= 0x7f) return parser.reject(ErrorStatus::k400);
  }
  if (parser.routing_) parser.collect_target(at, length);
  if (parser.capture_line_) {
    std::string& line = parser.scratch_->request_line;
    if (parser.line_part_ == 0) append_bounded(line, " ", 1, kMaxLoggedLine);
    parser.line_part_ = 1;
    append_bounded(line, at, length, kMaxLoggedLine);
  }
  parser.line_bytes_ += length;
  if (parser.line_bytes_ + kRequestLineOverhead > parser.limits_.max_request_line) {
    return parser.reject(ErrorStatus::k414);
  }
  return HPE_OK;
}

int RequestParser::on_url_complete(llhttp_t* http) {
  RequestParser& parser = self(http);
  if (!parser.replaying_ && parser.routing_) parser.route_target();
  return HPE_OK;
}

int RequestParser::on_version(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  if (parser.replaying_) return HPE_OK;
  if (parser.capture_line_) {
    std::string& line = parser.scratch_->request_line;
    if (parser.line_part_ < 2) append_bounded(line, " HTTP/", 6, kMaxLoggedLine);
    parser.line_part_ = 2;
    append_bounded(line, at, length, kMaxLoggedLine);
  }
  if (parser.version_length_ + length > sizeof parser.version_) {
    parser.version_length_ = sizeof parser.version_ + 1;  // too long to be DIGIT "." DIGIT
    return HPE_OK;
  }
  std::memcpy(parser.version_ + parser.version_length_, at, length);
  parser.version_length_ = static_cast<std::uint8_t>(parser.version_length_ + length);
  return HPE_OK;
}

int RequestParser::on_version_complete(llhttp_t* http) {
  RequestParser& parser = self(http);
  parser.version_seen_ = true;
  // HTTP/1.x with x > 1 gets here only through recover(), as HTTP/1.1.
  if (http->http_major != 1) return parser.reject(ErrorStatus::k505);
  return HPE_OK;
}

int RequestParser::on_header_field(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  // llhttp accepts "Host : x" (space before the colon); RFC 9112 §5.1 requires a 400.
  for (std::size_t i = 0; i < length; ++i) {
    if (!is_tchar(at[i])) return parser.reject(ErrorStatus::k400);
  }
  parser.header_bytes_ += length;
  if (parser.header_bytes_ > parser.limits_.max_header_bytes) {
    return parser.reject(ErrorStatus::k431);
  }
  if (parser.capture_headers_ && parser.phase_ == Phase::kHead) {
    std::vector<std::string>& headers = parser.scratch_->headers;
    if (parser.field_length_ == 0 && length > 0) headers.resize(headers.size() + 2);
    if (!headers.empty()) headers[headers.size() - 2].append(at, length);
  }
  // Matched as it arrives, so a name split across reads needs no copy. The first byte picks
  // the one name it can be (the six differ there), so at most one is compared.
  if (parser.field_length_ == 0 && length > 0) {
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
    parser.field_candidates_ = static_cast<std::uint8_t>(first & allowed);
  }
  std::uint8_t candidates = parser.field_candidates_;
  if (candidates != 0) {
    const auto bit = static_cast<std::size_t>(__builtin_ctz(candidates));
    const std::string_view name = kFieldNames[bit];
    bool match = parser.field_length_ + length <= name.size();
    for (std::size_t i = 0; match && i < length; ++i) {
      match = to_lower(at[i]) == name[parser.field_length_ + i];
    }
    if (!match) candidates = 0;
  }
  parser.field_candidates_ = candidates;
  parser.field_length_ =
      static_cast<std::uint8_t>(std::min<std::size_t>(parser.field_length_ + length, 255));
  return HPE_OK;
}

int RequestParser::on_header_field_complete(llhttp_t* http) {
  RequestParser& parser = self(http);
  if (parser.field_length_ == 0) return parser.reject(ErrorStatus::k400);  // ": x"
  if (++parser.header_count_ > parser.limits_.max_headers) return parser.reject(ErrorStatus::k431);
  parser.header_bytes_ += kFieldLineOverhead;
  if (parser.header_bytes_ > parser.limits_.max_header_bytes) {
    return parser.reject(ErrorStatus::k431);
  }
  parser.field_ = Field::kOther;
  for (std::size_t bit = 0; bit < kFieldNames.size(); ++bit) {
    if ((parser.field_candidates_ & (1U << bit)) != 0 &&
        kFieldNames[bit].size() == parser.field_length_) {
      parser.field_ = static_cast<Field>(bit + 1);
    }
  }
  switch (parser.field_) {
    case Field::kHost:
      if (++parser.host_count_ > 1) return parser.reject(ErrorStatus::k400);
      break;
    case Field::kExpect:
      parser.expect_state_ = ExpectState::kLeading;
      parser.expect_matched_ = 0;
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
  parser.field_length_ = 0;
  parser.field_candidates_ = 0;
  return HPE_OK;
}

int RequestParser::on_header_value(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  parser.header_bytes_ += length;
  if (parser.header_bytes_ > parser.limits_.max_header_bytes) {
    return parser.reject(ErrorStatus::k431);
  }
  if (parser.capture_headers_ && parser.phase_ == Phase::kHead &&
      !parser.scratch_->headers.empty()) {
    parser.scratch_->headers.back().append(at, length);
  }
  switch (parser.field_) {
    case Field::kHost:
      // Usually the whole value arrives in one piece and is checked where it lies; only a
      // value split across reads is copied (save_split_host).
      if (parser.host_length_ + length > kMaxHostLength) {
        parser.host_valid_ = false;
      } else if (parser.host_split_) {
        parser.scratch_->host.append(at, length);
      } else if (parser.host_at_ == nullptr) {
        parser.host_at_ = at;
      } else {
        parser.scratch().host.assign(parser.host_at_, parser.host_length_).append(at, length);
        parser.host_split_ = true;
        parser.host_at_ = nullptr;
      }
      parser.host_length_ = static_cast<std::uint16_t>(
          std::min<std::size_t>(parser.host_length_ + length, kMaxHostLength + 1));
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
  for (std::size_t i = 0; i < length && expect_state_ != ExpectState::kBad; ++i) {
    const char c = at[i];
    switch (expect_state_) {
      case ExpectState::kLeading:
        if (is_ows(c)) break;
        expect_state_ = ExpectState::kMatching;
        [[fallthrough]];
      case ExpectState::kMatching:
        if (expect_matched_ < kContinueExpectation.size() &&
            to_lower(c) == kContinueExpectation[expect_matched_]) {
          ++expect_matched_;
        } else if (expect_matched_ == kContinueExpectation.size() && is_ows(c)) {
          expect_state_ = ExpectState::kTrailing;
        } else {
          expect_state_ = ExpectState::kBad;
        }
        break;
      case ExpectState::kTrailing:
        if (!is_ows(c)) expect_state_ = ExpectState::kBad;
        break;
      case ExpectState::kBad: break;
    }
  }
}

int RequestParser::on_header_value_complete(llhttp_t* http) {
  RequestParser& parser = self(http);
  if (parser.field_ == Field::kExpect) {
    const bool known = parser.expect_state_ == ExpectState::kTrailing ||
                       (parser.expect_state_ == ExpectState::kMatching &&
                        parser.expect_matched_ == kContinueExpectation.size());
    (known ? parser.expect_continue_ : parser.expect_unknown_) = true;
  } else if (parser.field_ == Field::kHost) {
    if (parser.host_valid_) {
      const std::string_view value = parser.host_split_ ? std::string_view(parser.scratch_->host)
                                     : parser.host_at_ != nullptr
                                         ? std::string_view(parser.host_at_, parser.host_length_)
                                         : std::string_view();
      parser.host_valid_ = is_valid_host(trim_ows(value));
    }
    parser.host_split_ = false;
    parser.host_at_ = nullptr;
  }
  parser.field_ = Field::kOther;
  return HPE_OK;
}

int RequestParser::on_headers_complete(llhttp_t* http) {
  return self(http).headers_complete();
}

// What answers the request, from its method and what the router said of its target.
RequestParser::Kind RequestParser::kind_for(llhttp_method_t method) const {
  const bool backend = routing_ && router_->switches() && !route_.endpoint;
  const Kind hello = route_.switches.any() ? Kind::kBackend : Kind::kHello;
  switch (method) {
    case HTTP_GET:
    case HTTP_HEAD: return route_.endpoint ? Kind::kEndpoint : hello;
    case HTTP_OPTIONS: return backend && !asterisk_ ? hello : Kind::kOptions;
    default: return backend ? hello : Kind::kNotAllowed;
  }
}

int RequestParser::headers_complete() {
  scanning_ = false;  // the body is not line-oriented; chunk framing is llhttp's and ours below
  // llhttp takes "GET /" without a version as HTTP/0.9; we serve HTTP/1.x only.
  if (!version_seen_) return reject(ErrorStatus::k400);
  const bool http11 = http_.http_minor >= 1;
  if (http11 && host_count_ == 0) return reject(ErrorStatus::k400);
  if (host_count_ == 1 && !host_valid_) return reject(ErrorStatus::k400);
  if (asterisk_ && http_.method != HTTP_OPTIONS) return reject(ErrorStatus::k400);
  // With switches on, the backend answers any method (an unknown one reads as GET from here).
  const bool any_method = routing_ && router_->switches() && !route_.endpoint;
  if (unknown_method_ && !any_method) return reject(ErrorStatus::k501);
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing.
  if ((http_.flags & F_TRANSFER_ENCODING) != 0 && !http11) return reject(ErrorStatus::k400);
  const bool has_length = (http_.flags & F_CONTENT_LENGTH) != 0;
  if (has_length && http_.content_length > limits_.max_body_bytes) {
    return reject(ErrorStatus::k413);
  }
  kind_ = kind_for(static_cast<llhttp_method_t>(http_.method));
  // We speak no other protocol: after CONNECT or an Upgrade request the connection ends.
  const bool client_keeps_alive = llhttp_should_keep_alive(&http_) != 0;
  const bool other_protocol = http_.upgrade != 0 || http_.method == HTTP_CONNECT;
  keep_alive_ = client_keeps_alive && !other_protocol;
  // One switching protocols may send its bytes at once; one that said close sends nothing more.
  client_closes_ = !client_keeps_alive && !other_protocol;
  // HTTP/1.0 servers ignore Expect (RFC 9110 §10.1.1).
  if (http11 && expect_unknown_) return reject(ErrorStatus::k417);
  const bool has_body = (http_.flags & F_CHUNKED) != 0 || (has_length && http_.content_length > 0);
  if (http11 && expect_continue_ && has_body) {
    // Refuse at once rather than invite a body we would discard; the connection then closes.
    if (kind_ == Kind::kNotAllowed) return reject(ErrorStatus::k405);
    continue_pending_ = true;
  }
  refused_with_body_ = kind_ == Kind::kNotAllowed && has_body;
  phase_ = Phase::kBody;
  return HPE_PAUSED;
}

int RequestParser::on_chunk_header(llhttp_t* http) {
  RequestParser& parser = self(http);
  parser.chunk_left_ = http->content_length;
  if (parser.body_bytes_ + parser.chunk_left_ > parser.limits_.max_body_bytes ||
      parser.chunk_left_ > parser.limits_.max_body_bytes) {
    return parser.reject(ErrorStatus::k413);
  }
  if (parser.chunk_left_ != 0) return HPE_OK;
  // Last chunk: the trailer section follows, line-oriented like a head.
  parser.scanning_ = true;
  parser.line_start_ = true;
  parser.last_byte_ = '\n';
  parser.head_bytes_ = 0;
  return HPE_PAUSED;
}

int RequestParser::on_body(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  parser.body_bytes_ += length;
  if ((http->flags & F_CHUNKED) == 0) return HPE_OK;
  parser.chunk_left_ -= std::min<std::uint64_t>(parser.chunk_left_, length);
  if (parser.chunk_left_ == 0) {
    parser.crlf_left_ = 2;
    if (!parser.check_chunk_crlf(at + length, parser.segment_end_)) {
      return parser.reject(ErrorStatus::k400);
    }
  }
  return HPE_OK;
}

int RequestParser::on_message_complete(llhttp_t* http) {
  self(http).message_done_ = true;
  return HPE_PAUSED;
}

}  // namespace prefork::worker
