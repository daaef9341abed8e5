// libFuzzer target for the PROXY protocol header parser (worker/proxy_protocol.hpp): arbitrary
// bytes, fed whole and split at fuzzer-chosen points, must give the same verdict, the same
// consumed length and the same address, and never read past the bound of either version.
//   byte 0  seed for the split sizes
//   rest    the bytes a load balancer (or anyone) sends first on a proxy_protocol listener
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "worker/proxy_protocol.hpp"

namespace {

using prefork::worker::ProxyHeaderParser;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "proxy_protocol_fuzzer: invariant broken: %s\n", what);
  std::abort();
}
#define CHECK(cond)           \
  do {                        \
    if (!(cond)) fail(#cond); \
  } while (0)

struct Outcome {
  ProxyHeaderParser::Status status;
  std::size_t consumed;
  ProxyHeaderParser parser;
};

Outcome run(std::string_view input, std::uint8_t seed, bool split) {
  Outcome out{ProxyHeaderParser::Status::kNeedMore, 0, {}};
  std::uint32_t state = seed * 2654435761U + 1;
  while (out.consumed < input.size()) {
    std::size_t piece = input.size() - out.consumed;
    if (split) {
      state = state * 1103515245U + 12345U;
      piece = std::min<std::size_t>(piece, 1 + (state >> 16U) % 23);
    }
    std::size_t used = 0;
    out.status = out.parser.feed(input.substr(out.consumed, piece), used);
    CHECK(used <= piece);
    out.consumed += used;
    if (out.status != ProxyHeaderParser::Status::kNeedMore) break;
    CHECK(used == piece);  // a parser that needs more takes everything it was given
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t seed = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const Outcome whole = run(input, seed, false);
  const Outcome pieces = run(input, seed, true);
  CHECK(whole.status == pieces.status);
  CHECK(whole.consumed == pieces.consumed);
  if (whole.status == ProxyHeaderParser::Status::kDone) {
    const ProxyHeaderParser& a = whole.parser;
    CHECK(a.version() == 1 || a.version() == 2);
    CHECK(a.version() != 1 || whole.consumed <= ProxyHeaderParser::kMaxV1Bytes);
    CHECK(a.version() != 2 ||
          whole.consumed <= ProxyHeaderParser::kV2HeaderBytes + ProxyHeaderParser::kMaxV2Length);
    CHECK(a.has_source() == pieces.parser.has_source());
    if (a.has_source()) {
      const int family = a.source()->sa_family;
      CHECK(family == AF_INET || family == AF_INET6);
      CHECK(std::memcmp(a.source(), pieces.parser.source(), sizeof(sockaddr_storage)) == 0);
    }
  }
  // Once decided, the verdict stays and nothing more is consumed.
  if (whole.status != ProxyHeaderParser::Status::kNeedMore) {
    Outcome again = run(input, seed, false);
    std::size_t used = 1;
    CHECK(again.parser.feed("GET / HTTP/1.1\r\n", used) == whole.status);
    CHECK(used == 0);
  }
  return 0;
}
