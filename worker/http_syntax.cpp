#include "worker/http_syntax.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace prefork::worker {
namespace {

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_unreserved(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
constexpr CharTable kSubDelim = make_char_table("!$&'()*+,;=", false);

bool is_sub_delim(char c) {
  return kSubDelim[static_cast<unsigned char>(c)];
}

// reg-name = *( unreserved / pct-encoded / sub-delims ); an IPv4address is a reg-name too.
bool is_reg_name(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (is_unreserved(c) || is_sub_delim(c)) continue;
    if (c == '%' && i + 2 < text.size() && is_hex(text[i + 1]) && is_hex(text[i + 2])) {
      i += 2;
      continue;
    }
    return false;
  }
  return true;
}

// IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
bool is_ipv_future(std::string_view text) {
  if (text.size() < 4 || (text[0] != 'v' && text[0] != 'V')) return false;
  std::size_t i = 1;
  while (i < text.size() && is_hex(text[i])) ++i;
  if (i == 1 || i >= text.size() || text[i] != '.' || i + 1 == text.size()) return false;
  for (++i; i < text.size(); ++i) {
    if (!is_unreserved(text[i]) && !is_sub_delim(text[i]) && text[i] != ':') return false;
  }
  return true;
}

bool is_ipv6(std::string_view text) {
  std::array<char, 64> copy{};  // inet_pton wants a C string; 45 chars is the longest form
  if (text.empty() || text.size() >= copy.size()) return false;
  std::memcpy(copy.data(), text.data(), text.size());
  in6_addr addr{};
  return ::inet_pton(AF_INET6, copy.data(), &addr) == 1;
}

bool is_port(std::string_view text) {
  if (text.size() > 5) return false;
  for (char c : text) {
    if (!is_digit(c)) return false;
  }
  return true;
}

}  // namespace

[[gnu::hot]] bool is_valid_host(std::string_view value) {
  std::string_view host = value;
  std::string_view port;
  bool has_port = false;
  if (!value.empty() && value.front() == '[') {
    const auto close = value.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view literal = value.substr(1, close - 1);
    if (!is_ipv6(literal) && !is_ipv_future(literal)) return false;
    const std::string_view rest = value.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    return is_port(rest.substr(1));
  }
  if (const auto colon = value.rfind(':'); colon != std::string_view::npos) {
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
    has_port = true;
  }
  return is_reg_name(host) && (!has_port || is_port(port));
}

[[gnu::hot]] std::string_view trim_ows(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return value;
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace prefork::worker
