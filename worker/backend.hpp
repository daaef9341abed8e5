// The backend's answers to requests with test switches (worker, after fork): ?status, ?echo and
// the 400 for a malformed switch. Built per request, like the internal endpoints: a request
// without switches gets the prebuilt hello response and never comes here.
#pragma once

#include <string>

#include "common/child_context.hpp"

#include "worker/request_parser.hpp"
#include "worker/response.hpp"

namespace prefork::worker {

// What the connection knows and the parser does not, for ?echo.
struct ConnectionFacts {
  std::string peer;    // the TCP peer, "192.0.2.1:51000" ("" unknown)
  std::string client;  // the client: PROXY protocol source, or trusted_proxies' verdict
};

// Who answers, as the identity header and ?echo say it: "host=web1; master=812; slot=2;
// pid=815; generation=3" (a per-connection child has no slot: the key is left out). The host
// name keeps only visible ASCII ('?' for anything else), so it is a valid header value.
std::string identity_of(const common::ChildContext& ctx);

// Appends the whole response to `request` to `out`.
EndpointReply answer_backend(const BackendRequest& request, const Responses& responses,
                             const ConnectionFacts& facts, std::string& out);

// The JSON document ?echo answers (one line, then '\n').
std::string render_echo(const BackendRequest& request, const Responses& responses,
                        const ConnectionFacts& facts);

}  // namespace prefork::worker
