// Errors from failed system calls, worded "call: strerror (errno N)" for log lines (all processes).
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>

namespace prefork::common {

std::string errno_text(int err);

class SysError : public std::runtime_error {
 public:
  explicit SysError(const std::string& call, int err = errno)
      : std::runtime_error(call + ": " + errno_text(err)), errno_(err) {}
  [[nodiscard]] int code() const noexcept { return errno_; }

 private:
  int errno_;
};

}  // namespace prefork::common
