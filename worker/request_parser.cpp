#include "worker/request_parser.hpp"

#include <algorithm>
#include <cstring>

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

}  // namespace

Limits Limits::from(const common::Config& config) {
  return Limits{config.max_request_line, config.max_header_bytes, config.max_headers,
                config.max_body_bytes, config.keepalive_requests};
}

const llhttp_settings_t RequestParser::kSettings = [] {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_message_begin = &RequestParser::on_message_begin;
  settings.on_method = &RequestParser::on_method;
  settings.on_method_complete = &RequestParser::on_method_complete;
  settings.on_url = &RequestParser::on_url;
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

RequestParser::RequestParser(const Limits& limits, const Responses& responses)
    : limits_(limits), responses_(responses) {
  // llhttp_init leaves every lenient flag off: llhttp's strict checks are part of our contract.
  llhttp_init(&http_, HTTP_REQUEST, &kSettings);
  http_.data = this;
}

// llhttp pauses at three points, so that everything it consumed before them can be checked
// here first: the end of the head, the last chunk (start of the trailer section), and the end
// of a message, where the response is produced.
void RequestParser::feed(std::string_view input, std::string& out) {
  if (phase_ == Phase::kClosing) {
    unread_input_ = unread_input_ || !input.empty();
    return;
  }
  const char* p = input.data();
  const char* const end = p + input.size();
  if (crlf_left_ > 0 && !check_chunk_crlf(p, end)) return fail(ErrorStatus::k400, out);
  for (;;) {
    const bool scanning = scanning_;
    const bool in_body = phase_ == Phase::kBody;
    segment_end_ = end;
    const llhttp_errno_t err = llhttp_execute(&http_, p, static_cast<std::size_t>(end - p));
    if (err != HPE_OK && err != HPE_PAUSED) return fail(status_for(err), out);
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
    }
    llhttp_resume(&http_);
    p = stop;  // resume even with nothing left: llhttp checks the framing after a head then
  }
  // Only a client that is waiting needs the interim response (RFC 9110 §10.1.1).
  if (continue_pending_ && phase_ == Phase::kBody && !body_started_) {
    out.append(Responses::kContinue);
  }
  continue_pending_ = false;
}

bool RequestParser::time_out(std::string& out) {
  if (phase_ == Phase::kHead || phase_ == Phase::kBody) {
    fail(ErrorStatus::k408, out);
    return true;
  }
  phase_ = Phase::kClosing;
  return false;
}

void RequestParser::complete_message(std::string& out) {
  message_done_ = false;
  const bool last_allowed =
      limits_.keepalive_requests != 0 && response_count_ + 1 >= limits_.keepalive_requests;
  const bool close = !keep_alive_ || draining_ || last_allowed;
  const ConnectionHeader connection = close                   ? ConnectionHeader::kClose
                                      : http_.http_minor == 0 ? ConnectionHeader::kKeepAlive
                                                              : ConnectionHeader::kNone;
  switch (kind_) {
    case Kind::kHello:
      out.append(responses_.hello(head_method_, connection));
      last_status_ = 200;
      break;
    case Kind::kOptions:
      out.append(responses_.options(connection));
      last_status_ = 204;
      break;
    case Kind::kNotAllowed:
      out.append(responses_.method_not_allowed(connection));
      last_status_ = 405;
      break;
  }
  ++response_count_;
  phase_ = close ? Phase::kClosing : Phase::kIdle;
  head_method_ = false;
  scanning_ = true;
  line_start_ = true;
  last_byte_ = '\n';
  head_bytes_ = 0;
}

void RequestParser::fail(ErrorStatus status, std::string& out) {
  out.append(responses_.error(status, head_method_));
  last_status_ = status_code(status);
  ++response_count_;
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
  for (const char* c = begin; c < end; ++c) {
    if (*c == '\n') {
      if (last_byte_ != '\r') return scan_failed(ErrorStatus::k400);
      line_start_ = true;
    } else {
      if (line_start_ && (*c == ' ' || *c == '\t')) return scan_failed(ErrorStatus::k400);
      line_start_ = false;
    }
    last_byte_ = *c;
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
  version_seen_ = false;
  continue_pending_ = false;
  body_started_ = false;
  expect_continue_ = false;
  expect_unknown_ = false;
  field_ = Field::kOther;
  field_length_ = 0;
  host_count_ = 0;
  version_length_ = 0;
  expect_length_ = 0;
  host_length_ = 0;
  host_overflow_ = false;
}

int RequestParser::on_message_begin(llhttp_t* http) {
  self(http).start_request();
  return HPE_OK;
}

int RequestParser::on_method(llhttp_t* http, const char* /*at*/, std::size_t length) {
  self(http).line_bytes_ += length;
  return HPE_OK;
}

int RequestParser::on_method_complete(llhttp_t* http) {
  self(http).head_method_ = http->method == HTTP_HEAD;
  return HPE_OK;
}

int RequestParser::on_url(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  // llhttp lets HTAB and bytes >= 0x80 through; a request-target is visible ASCII only.
  for (std::size_t i = 0; i < length; ++i) {
    const auto c = static_cast<unsigned char>(at[i]);
    if (c <= 0x20 || c >= 0x7f) return parser.reject(ErrorStatus::k400);
  }
  parser.line_bytes_ += length;
  if (parser.line_bytes_ + kRequestLineOverhead > parser.limits_.max_request_line) {
    return parser.reject(ErrorStatus::k414);
  }
  return HPE_OK;
}

int RequestParser::on_version(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
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
  if (http->http_major != 1 || http->http_minor > 1) return parser.reject(ErrorStatus::k505);
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
  const std::size_t total = parser.field_length_ + length;
  if (total <= kMaxFieldName) {
    for (std::size_t i = 0; i < length; ++i) {
      const char c = at[i];
      parser.field_name_[parser.field_length_ + i] =
          (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
  }
  parser.field_length_ = static_cast<std::uint8_t>(std::min<std::size_t>(total, 255));
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
  const std::string_view name(parser.field_name_,
                              std::min<std::size_t>(parser.field_length_, kMaxFieldName));
  parser.field_ = Field::kOther;
  if (parser.phase_ == Phase::kHead && parser.field_length_ <= kMaxFieldName) {  // not trailers
    if (name == "host") {
      parser.field_ = Field::kHost;
      if (++parser.host_count_ > 1) return parser.reject(ErrorStatus::k400);
    } else if (name == "expect") {
      parser.field_ = Field::kExpect;
      parser.expect_length_ = 0;
    }
  }
  parser.field_length_ = 0;
  return HPE_OK;
}

int RequestParser::on_header_value(llhttp_t* http, const char* at, std::size_t length) {
  RequestParser& parser = self(http);
  parser.header_bytes_ += length;
  if (parser.header_bytes_ > parser.limits_.max_header_bytes) {
    return parser.reject(ErrorStatus::k431);
  }
  if (parser.field_ == Field::kHost) {
    if (parser.host_length_ + length > kMaxHostLength) {
      parser.host_overflow_ = true;
    } else {
      std::memcpy(parser.host_ + parser.host_length_, at, length);
      parser.host_length_ = static_cast<std::uint16_t>(parser.host_length_ + length);
    }
  } else if (parser.field_ == Field::kExpect) {
    if (parser.expect_length_ + length > kMaxExpectLength) {
      parser.expect_length_ = kMaxExpectLength + 1;  // longer than any expectation we know
    } else {
      std::memcpy(parser.expect_ + parser.expect_length_, at, length);
      parser.expect_length_ = static_cast<std::uint8_t>(parser.expect_length_ + length);
    }
  }
  return HPE_OK;
}

int RequestParser::on_header_value_complete(llhttp_t* http) {
  RequestParser& parser = self(http);
  if (parser.field_ == Field::kExpect) {
    const bool known =
        parser.expect_length_ <= kMaxExpectLength &&
        equals_ignore_case(trim_ows(std::string_view(parser.expect_, parser.expect_length_)),
                           "100-continue");
    (known ? parser.expect_continue_ : parser.expect_unknown_) = true;
  }
  parser.field_ = Field::kOther;
  return HPE_OK;
}

int RequestParser::on_headers_complete(llhttp_t* http) {
  return self(http).headers_complete();
}

int RequestParser::headers_complete() {
  scanning_ = false;  // the body is not line-oriented; chunk framing is llhttp's and ours below
  // llhttp takes "GET /" without a version as HTTP/0.9; we serve HTTP/1.x only.
  if (!version_seen_) return reject(ErrorStatus::k400);
  const bool http11 = http_.http_minor == 1;
  if (http11 && host_count_ == 0) return reject(ErrorStatus::k400);
  if (host_count_ == 1 &&
      (host_overflow_ || !is_valid_host(trim_ows(std::string_view(host_, host_length_))))) {
    return reject(ErrorStatus::k400);
  }
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing.
  if ((http_.flags & F_TRANSFER_ENCODING) != 0 && !http11) return reject(ErrorStatus::k400);
  const bool has_length = (http_.flags & F_CONTENT_LENGTH) != 0;
  if (has_length && http_.content_length > limits_.max_body_bytes) {
    return reject(ErrorStatus::k413);
  }
  switch (http_.method) {
    case HTTP_GET:
    case HTTP_HEAD: kind_ = Kind::kHello; break;
    case HTTP_OPTIONS: kind_ = Kind::kOptions; break;
    default: kind_ = Kind::kNotAllowed;
  }
  // We speak no other protocol: after CONNECT or an Upgrade request the connection ends.
  keep_alive_ =
      llhttp_should_keep_alive(&http_) != 0 && http_.upgrade == 0 && http_.method != HTTP_CONNECT;
  // HTTP/1.0 servers ignore Expect (RFC 9110 §10.1.1).
  if (http11 && expect_unknown_) return reject(ErrorStatus::k417);
  const bool has_body = (http_.flags & F_CHUNKED) != 0 || (has_length && http_.content_length > 0);
  if (http11 && expect_continue_ && has_body) {
    // Refuse at once rather than invite a body we would discard; the connection then closes.
    if (kind_ == Kind::kNotAllowed) return reject(ErrorStatus::k405);
    continue_pending_ = true;
  }
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
