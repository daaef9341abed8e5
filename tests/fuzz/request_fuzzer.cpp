// libFuzzer target for the worker's HTTP core (RequestParser): arbitrary byte streams, split at
// fuzzer-chosen points, must yield only the prebuilt responses, in a sequence that keeps the
// connection contract of design §4. Input layout (see tests/fuzz/README.md):
//   byte 0  plan: bits 0-1 split mode, 2 drain first, 3 time out at the end, 4-5 limits,
//           6 test switches on (?status, ?delay, ?echo; a delayed request is released at once)
//   byte 1  seed for the split sizes
//   rest    the bytes a client sends on one connection
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "worker/request_parser.hpp"
#include "worker/response.hpp"

namespace {

using prefork::worker::BackendRequest;
using prefork::worker::ConnectionHeader;
using prefork::worker::EndpointReply;
using prefork::worker::EndpointRequest;
using prefork::worker::ErrorStatus;
using prefork::worker::Limits;
using prefork::worker::Phase;
using prefork::worker::RequestHandler;
using prefork::worker::RequestParser;
using prefork::worker::Responses;

constexpr std::time_t kNow = 784111777;  // a fixed Date: outputs are comparable across runs

[[noreturn]] void fail(const char* what, const std::string& output) {
  std::fprintf(stderr, "request_fuzzer: invariant broken: %s\noutput (%zu bytes):\n%.*s\n", what,
               output.size(), static_cast<int>(output.size()), output.data());
  std::abort();
}
#define CHECK(cond, output)           \
  do {                                \
    if (!(cond)) fail(#cond, output); \
  } while (0)

// One response the server may send, as built by Responses.
struct Known {
  std::string bytes;
  bool final = true;    // false: 100 Continue
  bool closes = false;  // Connection: close (every error does)
  bool error = false;   // one of the ErrorStatus responses
  int status = 0;
};

const Responses& responses() {
  static const Responses r(kNow);
  return r;
}

std::vector<Known> build_known() {
  const Responses& r = responses();
  std::vector<Known> known;
  known.push_back({std::string(Responses::kContinue), false, false, false, 100});
  for (const auto connection :
       {ConnectionHeader::kNone, ConnectionHeader::kKeepAlive, ConnectionHeader::kClose}) {
    const bool closes = connection == ConnectionHeader::kClose;
    known.push_back({std::string(r.hello(false, connection)), true, closes, false, 200});
    known.push_back({std::string(r.hello(true, connection)), true, closes, false, 200});
    known.push_back({std::string(r.options(connection)), true, closes, false, 204});
    known.push_back({std::string(r.method_not_allowed(connection)), true, closes, false, 405});
  }
  for (const auto status : {ErrorStatus::k400, ErrorStatus::k405, ErrorStatus::k408,
                            ErrorStatus::k413, ErrorStatus::k414, ErrorStatus::k417,
                            ErrorStatus::k431, ErrorStatus::k501, ErrorStatus::k505}) {
    for (const bool head : {false, true}) {
      known.push_back({std::string(r.error(status, head)), true, true, true,
                       prefork::worker::status_code(status)});
    }
  }
  for (const Known& k : known) {
    if (k.bytes.rfind("HTTP/1.1 ", 0) != 0) fail("prebuilt response without status line", k.bytes);
    if (k.error && k.bytes.find("\r\nConnection: close\r\n") == std::string::npos) {
      fail("error response without Connection: close", k.bytes);
    }
  }
  return known;
}

// With switches on, the answers are built per request: the handler checks each one where it is
// built, then puts a placeholder in the output ("HTTP/1.1 NNN switched", Connection: close when
// the answer had it) that check_sequence() reads like a prebuilt response.
constexpr std::string_view kSwitched = " switched\r\n";

void check_switch_answer(const BackendRequest& request, const EndpointReply& reply,
                         const std::string& bytes) {
  CHECK(bytes.rfind("HTTP/1.1 " + std::to_string(reply.status) + " ", 0) == 0, bytes);
  CHECK(reply.status >= 200 && reply.status <= 599, bytes);
  const std::size_t head_end = bytes.find("\r\n\r\n");
  CHECK(head_end != std::string::npos, bytes);
  const std::string head = bytes.substr(0, head_end + 2);
  const std::string body = bytes.substr(head_end + 4);
  CHECK(head.find("\r\nDate: ") != std::string::npos, bytes);
  const bool close = head.find("\r\nConnection: close\r\n") != std::string::npos;
  CHECK(close == (request.connection == ConnectionHeader::kClose), bytes);
  CHECK(close == reply.close, bytes);
  const std::size_t length_at = head.find("\r\nContent-Length: ");
  if (!prefork::worker::status_has_body(reply.status)) {
    CHECK(length_at == std::string::npos && body.empty(), bytes);
  } else {
    CHECK(length_at != std::string::npos, bytes);
    const std::size_t length = std::stoul(head.substr(length_at + 18));
    CHECK(body.size() == (request.head ? 0 : length), bytes);
    CHECK(reply.body_bytes == body.size(), bytes);
  }
  if (!request.switches.error.empty()) CHECK(reply.status == 400, bytes);
  if (request.switches.echo && !request.head && !body.empty()) {
    CHECK(body.front() == '{' && body.substr(body.size() - 2) == "}\n", bytes);
    for (const char c : body) CHECK(static_cast<unsigned char>(c) < 0x80 && c != '\r', bytes);
  }
}

class SwitchHandler final : public RequestHandler {
 public:
  EndpointReply respond(const EndpointRequest&, std::string& out) override {
    fail("an internal endpoint without paths", out);
  }
  EndpointReply respond_backend(const BackendRequest& request, const Responses& r,
                                std::string& out) override {
    std::string bytes;
    const EndpointReply reply = RequestHandler::respond_backend(request, r, bytes);
    check_switch_answer(request, reply, bytes);
    out += "HTTP/1.1 " + std::to_string(reply.status) + std::string(kSwitched);
    if (reply.close) out += "Connection: close\r\n";
    out += "\r\n";
    return reply;
  }
  void on_response(const RequestParser&, int, std::uint64_t) override {}
};

const std::vector<Known>& known() {
  static const std::vector<Known> k = build_known();
  return k;
}

Limits limits_for(unsigned variant) {
  Limits limits;  // variant 0: the built-in defaults
  switch (variant) {
    case 1:  // the unit tests' small limits: every limit is reachable with short inputs
      limits.max_request_line = 64;
      limits.max_header_bytes = 256;
      limits.max_headers = 8;
      limits.max_body_bytes = 100;
      limits.keepalive_requests = 1000;
      break;
    case 2:  // tiny: 1-byte bodies, a few requests per connection
      limits.max_request_line = 24;
      limits.max_header_bytes = 40;
      limits.max_headers = 2;
      limits.max_body_bytes = 1;
      limits.keepalive_requests = 3;
      break;
    case 3:  // every request closes; keepalive_requests = 0 means no cap
      limits.keepalive_requests = 0;
      break;
    default: break;
  }
  return limits;
}

// Splits `output` into known responses; checks the connection contract on the sequence.
struct Summary {
  std::uint64_t finals = 0;
  bool closed = false;
  int last_status = 0;
};

Summary check_sequence(const std::string& output, unsigned keepalive_requests) {
  Summary s;
  std::size_t pos = 0;
  bool continue_pending = false;
  unsigned errors = 0;
  while (pos < output.size()) {
    const std::string_view rest = std::string_view(output).substr(pos);
    CHECK(rest.substr(0, 9) == "HTTP/1.1 ", output);
    CHECK(!s.closed, output);  // nothing after a response that closes the connection
    // Longest match first: a HEAD response is a prefix of the GET one, and no response starts
    // with a body, so the longest prebuilt response that matches is the one sent.
    const Known* match = nullptr;
    Known switched;
    if (rest.size() > 12 && rest.substr(12, kSwitched.size()) == kSwitched) {
      const std::size_t end = rest.find("\r\n\r\n");
      CHECK(end != std::string_view::npos, output);
      switched.bytes = std::string(rest.substr(0, end + 4));
      switched.closes = switched.bytes.find("Connection: close") != std::string::npos;
      switched.status = std::stoi(std::string(rest.substr(9, 3)));
      match = &switched;
    }
    for (const Known& k : known()) {
      if (match == &switched) break;
      if (rest.substr(0, k.bytes.size()) == k.bytes &&
          (match == nullptr || k.bytes.size() > match->bytes.size())) {
        match = &k;
      }
    }
    if (match == nullptr) fail("bytes that are no prebuilt response", output);
    pos += match->bytes.size();
    if (!match->final) {
      CHECK(!continue_pending, output);  // two 100 Continue without a final response between
      continue_pending = true;
      continue;
    }
    continue_pending = false;
    ++s.finals;
    s.last_status = match->status;
    if (match->error) ++errors;
    if (match->closes) s.closed = true;
    if (keepalive_requests != 0) {
      CHECK(s.finals <= keepalive_requests, output);
      if (s.finals == keepalive_requests) CHECK(match->closes, output);
    }
  }
  CHECK(errors <= 1, output);
  return s;
}

// Where the last response starts (output is a valid sequence).
std::size_t last_response_start(std::string_view output) {
  const std::size_t pos = output.rfind("HTTP/1.1 ");
  return pos == std::string_view::npos ? 0 : pos;
}

// A request that breaks two rules at once (say, an over-long URI with an invalid byte in it)
// may be refused for either one depending on where the reads end: llhttp reports a span to us
// (and we count its length) only at the end of each read. Both answers are one error and close,
// after the same responses, so that difference is allowed; anything else is not.
bool same_but_error(std::string_view a, std::string_view b) {
  const std::size_t ia = last_response_start(a);
  const std::size_t ib = last_response_start(b);
  if (a.substr(0, ia) != b.substr(0, ib)) return false;
  const auto is_error = [](std::string_view response) {
    for (const Known& k : known()) {
      if (k.error && k.bytes == response) return true;
    }
    return false;
  };
  return is_error(a.substr(ia)) && is_error(b.substr(ib));
}

std::string without_continue(std::string output) {
  const std::string_view interim = Responses::kContinue;
  for (auto pos = output.find(interim); pos != std::string::npos; pos = output.find(interim, pos)) {
    output.erase(pos, interim.size());
  }
  return output;
}

// The split sizes: mode 0 whole, 1 byte by byte, 2 small pieces, 3 larger pieces.
std::vector<std::string_view> split(std::string_view stream, unsigned mode, std::uint8_t seed) {
  std::vector<std::string_view> pieces;
  std::uint32_t state = 0x9e3779b9U ^ (static_cast<std::uint32_t>(seed) * 0x01000193U);
  std::size_t pos = 0;
  while (pos < stream.size()) {
    std::size_t size = stream.size() - pos;
    if (mode == 1) {
      size = 1;
    } else if (mode >= 2) {
      state ^= state << 13;
      state ^= state >> 17;
      state ^= state << 5;
      const std::size_t range = mode == 2 ? 16 : 512;
      size = std::min<std::size_t>(size, 1 + state % range);
      if (state % 7 == 0) size = 0;  // empty reads happen too
    }
    pieces.push_back(stream.substr(pos, size));
    pos += size;
  }
  return pieces;
}

struct Run {
  std::string output;
  Phase phase = Phase::kIdle;
  std::uint64_t responses = 0;
  int last_status = 0;
  bool unread = false;
};

Run run(const std::vector<std::string_view>& pieces, const Limits& limits, bool drain,
        bool time_out) {
  RequestParser parser(limits, responses());
  SwitchHandler handler;
  if (limits.switches) parser.set_handler(&handler, false);
  if (drain) parser.drain();
  Run r;
  for (std::string_view piece : pieces) {
    const bool was_closing = parser.closing();
    const std::size_t before = r.output.size();
    parser.feed(piece, r.output);
    // The delay's timer fires at once; what came after the request follows it.
    while (parser.phase() == Phase::kDelayed) {
      CHECK(parser.delay() > 0 && parser.delay() <= limits.max_delay, r.output);
      parser.release(r.output);
    }
    if (was_closing) CHECK(r.output.size() == before, r.output);
    CHECK(parser.responses() >= r.responses, r.output);
    r.responses = parser.responses();
  }
  if (time_out) {
    const Phase phase = parser.phase();
    const std::size_t before = r.output.size();
    const bool answered = parser.time_out(r.output);
    CHECK(answered == (phase == Phase::kHead || phase == Phase::kBody), r.output);
    CHECK(answered == (r.output.size() > before), r.output);
    if (answered) CHECK(parser.last_status() == 408, r.output);
    CHECK(parser.closing(), r.output);
  }
  r.unread = parser.unread_input();
  // A closed connection ignores anything more, however valid.
  if (parser.closing()) {
    const std::size_t before = r.output.size();
    parser.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n", r.output);
    CHECK(r.output.size() == before, r.output);
    std::string more;
    CHECK(!parser.time_out(more) && more.empty(), r.output);
  }
  r.phase = parser.phase();
  r.responses = parser.responses();
  r.last_status = parser.last_status();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const unsigned plan = data[0];
  const std::uint8_t seed = data[1];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  const unsigned mode = plan & 3U;
  const bool drain = (plan & 4U) != 0;
  const bool time_out = (plan & 8U) != 0;
  Limits limits = limits_for((plan >> 4) & 3U);
  limits.switches = (plan & 64U) != 0;

  const Run split_run = run(split(stream, mode, seed), limits, drain, time_out);
  const Summary s = check_sequence(split_run.output, limits.keepalive_requests);
  CHECK(s.finals == split_run.responses, split_run.output);
  CHECK(s.last_status == split_run.last_status, split_run.output);
  CHECK(s.closed == (split_run.phase == Phase::kClosing) || time_out, split_run.output);
  if (drain) CHECK(s.finals <= 1, split_run.output);

  // However the bytes arrive, the connection sees the same responses (and the same state).
  if (mode != 0) {
    const Run whole = run({stream}, limits, drain, time_out);
    // "100 Continue" is sent only when the body has not arrived yet (RFC 9110 §10.1.1 lets a
    // server skip it once body bytes are in): whether it appears depends on the split.
    const std::string whole_final = without_continue(whole.output);
    const std::string split_final = without_continue(split_run.output);
    if (whole_final != split_final && !same_but_error(whole_final, split_final)) {
      fail("split changed the output", split_run.output + "\n--- fed whole:\n" + whole.output);
    }
    CHECK(whole.phase == split_run.phase, split_run.output);
    CHECK(whole.unread == split_run.unread || split_run.phase != Phase::kClosing, split_run.output);
  }
  return 0;
}
