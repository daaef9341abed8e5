#include "worker/forwarded.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstring>
#include <string>

namespace prefork::worker {
namespace {

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_ows(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_ows(text.back())) text.remove_suffix(1);
  return text;
}

bool is_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return false;
  unsigned value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= 65535;
}

std::optional<sockaddr_storage> make_address(std::string_view text, int family) {
  std::array<char, INET6_ADDRSTRLEN> copy{};
  if (text.empty() || text.size() >= copy.size()) return std::nullopt;
  std::memcpy(copy.data(), text.data(), text.size());
  sockaddr_storage storage{};
  if (family == AF_INET) {
    auto& in = reinterpret_cast<sockaddr_in&>(storage);
    if (::inet_pton(AF_INET, copy.data(), &in.sin_addr) != 1) return std::nullopt;
    in.sin_family = AF_INET;
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
    if (::inet_pton(AF_INET6, copy.data(), &in6.sin6_addr) != 1) return std::nullopt;
    in6.sin6_family = AF_INET6;
  }
  return storage;
}

bool is_tchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool equals_ignore_case(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char c = (a[i] >= 'A' && a[i] <= 'Z') ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (c != lower[i]) return false;
  }
  return true;
}

// One `for=` per element, in order; an empty view for an element without one.
struct ForwardedParse {
  static constexpr std::size_t kMaxElements = 64;
  std::array<std::string_view, kMaxElements> fors{};
  std::size_t count = 0;
};

// RFC 7239 §4: Forwarded = 1#forwarded-element; forwarded-element = [ pair ] *( ";" [ pair ] );
// pair = token "=" value; value = token / quoted-string. False on any syntax error.
bool parse_forwarded(std::string_view text, ForwardedParse& out) {
  std::size_t i = 0;
  bool element_open = false;
  bool has_for = false;
  auto close_element = [&]() {
    if (!element_open) return true;
    if (out.count == ForwardedParse::kMaxElements) return false;
    if (!has_for) out.fors[out.count] = std::string_view();
    ++out.count;
    element_open = false;
    has_for = false;
    return true;
  };
  while (i < text.size()) {
    const char c = text[i];
    if (is_ows(c) || c == ';') {
      ++i;
      continue;
    }
    if (c == ',') {
      if (!close_element()) return false;
      ++i;
      continue;
    }
    // A pair: token "=" (token / quoted-string).
    const std::size_t name_start = i;
    while (i < text.size() && is_tchar(text[i])) ++i;
    const std::string_view name = text.substr(name_start, i - name_start);
    if (name.empty() || i == text.size() || text[i] != '=') return false;
    ++i;
    std::string_view value;
    if (i < text.size() && text[i] == '"') {
      const std::size_t value_start = ++i;
      while (i < text.size() && text[i] != '"') {
        if (text[i] == '\\') return false;  // no address needs an escape: refuse them
        ++i;
      }
      if (i == text.size()) return false;  // unterminated
      value = text.substr(value_start, i - value_start);
      ++i;
    } else {
      const std::size_t value_start = i;
      while (i < text.size() && is_tchar(text[i])) ++i;
      value = text.substr(value_start, i - value_start);
      if (value.empty()) return false;
    }
    // After a pair: OWS, then ';', ',' or the end.
    while (i < text.size() && is_ows(text[i])) ++i;
    if (i < text.size() && text[i] != ';' && text[i] != ',') return false;
    element_open = true;
    if (equals_ignore_case(name, "for")) {
      if (has_for) return false;  // a parameter occurs once per element
      if (value.empty()) return false;
      if (out.count == ForwardedParse::kMaxElements) return false;
      out.fors[out.count] = value;
      has_for = true;
    }
  }
  return close_element();
}

}  // namespace

std::optional<sockaddr_storage> parse_forwarded_address(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  if (text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view after = text.substr(close + 1);
    if (!after.empty() && (after.front() != ':' || !is_port(after.substr(1)))) return std::nullopt;
    return make_address(text.substr(1, close - 1), AF_INET6);
  }
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) return make_address(text, AF_INET);
  if (text.find(':', colon + 1) != std::string_view::npos) return make_address(text, AF_INET6);
  if (!is_port(text.substr(colon + 1))) return std::nullopt;
  return make_address(text.substr(0, colon), AF_INET);
}

std::optional<sockaddr_storage> client_from_x_forwarded_for(
    std::string_view x_forwarded_for, const std::vector<common::Cidr>& trusted) {
  if (x_forwarded_for.size() > kMaxForwardedBytes) return std::nullopt;
  std::optional<sockaddr_storage> leftmost;
  std::string_view rest = x_forwarded_for;
  while (true) {
    const std::size_t comma = rest.rfind(',');
    const std::string_view hop = comma == std::string_view::npos ? rest : rest.substr(comma + 1);
    auto address = parse_forwarded_address(hop);
    if (!address) return std::nullopt;  // garbage where we needed an address: trust nothing
    if (!common::any_contains(trusted, reinterpret_cast<const sockaddr*>(&*address))) {
      return address;
    }
    leftmost = address;
    if (comma == std::string_view::npos) return leftmost;
    rest = rest.substr(0, comma);
  }
}

std::optional<sockaddr_storage> client_from_forwarded(std::string_view forwarded,
                                                      const std::vector<common::Cidr>& trusted) {
  if (forwarded.size() > kMaxForwardedBytes) return std::nullopt;
  ForwardedParse parse;
  if (!parse_forwarded(forwarded, parse) || parse.count == 0) return std::nullopt;
  std::optional<sockaddr_storage> leftmost;
  for (std::size_t i = parse.count; i-- > 0;) {
    auto address = parse_forwarded_address(parse.fors[i]);
    if (!address) return std::nullopt;  // no for=, "unknown", an obfuscated node, garbage
    if (!common::any_contains(trusted, reinterpret_cast<const sockaddr*>(&*address))) {
      return address;
    }
    leftmost = address;
  }
  return leftmost;
}

}  // namespace prefork::worker
