// Character classes and field-value grammar the request parser checks itself, where llhttp
// leaves the rule to its caller (worker, after fork; pure functions).
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace prefork::worker {

// A character class as a 256-entry table built at compile time: one load per byte.
using CharTable = std::array<bool, 256>;

constexpr CharTable make_char_table(std::string_view extra, bool alnum) {
  CharTable table{};
  for (std::size_t c = 0; c < table.size(); ++c) {
    table[c] =
        alnum && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
  }
  for (const char c : extra) table[static_cast<unsigned char>(c)] = true;
  return table;
}

inline constexpr CharTable kTcharTable = make_char_table("!#$%&'*+-.^_`|~", true);

// tchar (RFC 9110 §5.6.2): the characters of a field name or method token.
inline bool is_tchar(char c) {
  return kTcharTable[static_cast<unsigned char>(c)];
}

// A Host field value (RFC 9112 §3.2): uri-host [ ":" port ], where uri-host is an IP-literal
// ("[" IPv6address / IPvFuture "]"), an IPv4address or a reg-name (RFC 3986 §3.2.2), and port
// is at most five digits (may be empty, as RFC 3986 allows). `value` has no surrounding OWS.
// The empty value is valid: RFC 9112 §3.2 has clients send it when the target has no authority.
bool is_valid_host(std::string_view value);

// Whitespace a field value may carry around it (OWS: SP / HTAB).
std::string_view trim_ows(std::string_view value);

// ASCII case-insensitive equality.
bool equals_ignore_case(std::string_view a, std::string_view b);

}  // namespace prefork::worker
