// The PROXY protocol header (v1 text, v2 binary) a load balancer sends before the HTTP bytes on a
// listener configured with proxy_protocol = true (worker, after fork). Pure and incremental:
// no socket, no clock; bytes may arrive split anywhere.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace prefork::worker {

class ProxyHeaderParser {
 public:
  enum class Status : std::uint8_t { kNeedMore, kDone, kInvalid };

  static constexpr std::size_t kMaxV1Bytes = 107;    // the spec's bound, CRLF included
  static constexpr std::size_t kV2HeaderBytes = 16;  // signature, ver/cmd, family, length
  // Largest v2 address block plus TLVs we accept (the field allows 65535; HAProxy's headers
  // with TLVs stay well below this).
  static constexpr std::size_t kMaxV2Length = 4096;

  // Consumes at most the header's bytes of `input` (`consumed` says how many); the bytes after a
  // complete header belong to the application. After kDone or kInvalid, further calls return
  // the same status and consume nothing.
  Status feed(std::string_view input, std::size_t& consumed);

  [[nodiscard]] Status status() const noexcept { return status_; }
  // kDone: 1 or 2.
  [[nodiscard]] int version() const noexcept { return version_; }
  // kDone with a client address (v1 TCP4/TCP6, v2 PROXY over INET/INET6 stream); false for
  // v1 UNKNOWN, v2 LOCAL and address families we do not use: keep the real peer then.
  [[nodiscard]] bool has_source() const noexcept { return has_source_; }
  [[nodiscard]] const sockaddr* source() const noexcept {
    return reinterpret_cast<const sockaddr*>(&source_);
  }
  // Bytes received so far (a connection that sent none is a probe, not an error).
  [[nodiscard]] std::size_t received() const noexcept { return received_; }

 private:
  Status invalid() noexcept { return status_ = Status::kInvalid; }
  Status feed_v1(char c);
  Status finish_v1();
  Status finish_v2_header();
  void finish_v2_addresses();

  Status status_ = Status::kNeedMore;
  int version_ = 0;
  bool has_source_ = false;
  std::size_t received_ = 0;
  std::size_t length_ = 0;   // bytes in buffer_
  std::size_t v2_keep_ = 0;  // v2: address bytes to keep in buffer_ after the fixed header
  std::size_t v2_skip_ = 0;  // v2: payload bytes (TLVs) still to skip
  sockaddr_storage source_{};
  std::array<char, kMaxV1Bytes> buffer_{};  // v1 line, or v2 header + address block (<= 52)
};

}  // namespace prefork::worker
