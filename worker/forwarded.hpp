// The client address behind trusted proxies (worker, after fork): picks the right-most hop that
// is not itself a trusted proxy from X-Forwarded-For or Forwarded (RFC 7239) values. Pure: the
// caller decides whether the connection's peer is trusted at all.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <string_view>
#include <vector>

#include "common/cidr.hpp"

namespace prefork::worker {

// Captured header values longer than this are not trusted (the peer falls back to the socket's).
inline constexpr std::size_t kMaxForwardedBytes = 1024;

// One address from a forwarding header: "192.0.2.1", "192.0.2.1:80", "2001:db8::1",
// "[2001:db8::1]" or "[2001:db8::1]:80" (surrounding OWS allowed). nullopt for anything else
// ("unknown", obfuscated identifiers, names, garbage).
std::optional<sockaddr_storage> parse_forwarded_address(std::string_view text);

// The client according to `x_forwarded_for` (comma-separated, possibly several header lines
// joined with ','): walking from the right, the first address not in `trusted`; when every hop
// is trusted, the left-most. nullopt when the value is empty, too long, or a hop up to the
// chosen one is not an address: the caller then keeps the peer address.
std::optional<sockaddr_storage> client_from_x_forwarded_for(
    std::string_view x_forwarded_for, const std::vector<common::Cidr>& trusted);

// Same for `forwarded` (RFC 7239: elements separated by ',', pairs by ';', the `for=` parameter
// a token or a quoted string). An element without `for=` or with "unknown"/obfuscated nodes
// ends the walk with nullopt.
std::optional<sockaddr_storage> client_from_forwarded(std::string_view forwarded,
                                                      const std::vector<common::Cidr>& trusted);

}  // namespace prefork::worker
