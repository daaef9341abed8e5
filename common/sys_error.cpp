#include "common/sys_error.hpp"

#include <cstring>

namespace prefork::common {

std::string errno_text(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

}  // namespace prefork::common
