#include "worker/backend.hpp"

#include <unistd.h>

#include <climits>

#include "worker/access_log.hpp"
#include "worker/http_syntax.hpp"

namespace prefork::worker {
namespace {

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  append_json_escaped(out, text);
  out += '"';
}

bool all_digits(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

// The identity "host=web1; master=12; slot=0; pid=34; generation=1" as a JSON object (numbers
// as numbers).
void append_identity(std::string& out, std::string_view identity) {
  out += '{';
  bool first = true;
  while (!identity.empty()) {
    const std::size_t end = identity.find("; ");
    const std::string_view pair = identity.substr(0, end);
    const std::size_t eq = pair.find('=');
    if (eq != std::string_view::npos) {
      if (!first) out += ',';
      first = false;
      append_json_string(out, pair.substr(0, eq));
      out += ':';
      const std::string_view value = pair.substr(eq + 1);
      if (all_digits(value)) {
        out += value;
      } else {
        append_json_string(out, value);
      }
    }
    if (end == std::string_view::npos) break;
    identity.remove_prefix(end + 2);
  }
  out += '}';
}

}  // namespace

std::string identity_of(const common::ChildContext& ctx) {
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::string name = host[0] != '\0' ? host : "unknown";
  for (char& c : name) {
    if (c <= 0x20 || c >= 0x7f || c == ';') c = '?';
  }
  const std::int32_t master = ctx.scoreboard != nullptr ? ctx.scoreboard->header().master_pid.load()
                                                        : static_cast<std::int32_t>(::getppid());
  std::string out = "host=" + name + "; master=" + std::to_string(master);
  if (ctx.slot != nullptr) out += "; slot=" + std::to_string(ctx.slot_index);
  out += "; pid=" + std::to_string(::getpid()) + "; generation=" + std::to_string(ctx.generation);
  return out;
}

std::string render_echo(const BackendRequest& request, const Responses& responses,
                        const ConnectionFacts& facts) {
  const RequestParser& parser = request.parser;
  std::string out = "{\"method\":";
  append_json_string(out, parser.echo_method());
  out += ",\"target\":";
  append_json_string(out, parser.echo_target());
  out += ",\"version\":";
  append_json_string(out, "HTTP/" + std::string(parser.echo_version()));
  out += ",\"headers\":[";
  const std::vector<std::string>& headers = parser.echo_headers();
  for (std::size_t i = 0; i + 1 < headers.size(); i += 2) {
    if (i != 0) out += ',';
    out += '[';
    append_json_string(out, headers[i]);
    out += ',';
    append_json_string(out, trim_ows(headers[i + 1]));
    out += ']';
  }
  out += "],\"body_bytes\":";
  out += std::to_string(parser.body_bytes());
  out += ",\"peer\":";
  append_json_string(out, facts.peer);
  out += ",\"client\":";
  append_json_string(out, facts.client);
  out += ",\"served_by\":";
  append_identity(out, responses.settings().identity_value);
  out += "}\n";
  return out;
}

EndpointReply answer_backend(const BackendRequest& request, const Responses& responses,
                             const ConnectionFacts& facts, std::string& out) {
  const Switches& switches = request.switches;
  if (!switches.error.empty()) {
    const std::string body = "Bad Request: " + std::string(switches.error) + "\n";
    const std::uint64_t sent = responses.append(out, 400, "text/plain; charset=utf-8", body,
                                                request.head, request.connection);
    return {400, sent, request.connection == ConnectionHeader::kClose};
  }
  const ResponseSettings& settings = responses.settings();
  const int status = switches.status != 0 ? switches.status : settings.status;
  std::uint64_t sent = 0;
  if (switches.echo) {
    sent = responses.append(out, status, "application/json", render_echo(request, responses, facts),
                            request.head, request.connection);
  } else {
    sent = responses.append(out, status, settings.content_type, settings.body, request.head,
                            request.connection);
  }
  return {status, sent, request.connection == ConnectionHeader::kClose};
}

}  // namespace prefork::worker
