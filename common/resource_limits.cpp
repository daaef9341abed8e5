#include "common/resource_limits.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/sys_error.hpp"

namespace prefork::common {

rlim_t descriptors_needed(const Config& config, std::size_t listener_count) {
  const rlim_t clients =
      config.mode == Mode::kPrefork ? config.max_connections : config.max_children;
  return clients + static_cast<rlim_t>(listener_count) + kDescriptorMargin;
}

NofileResult raise_nofile_limit(rlim_t needed) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) throw SysError("getrlimit(RLIMIT_NOFILE)");
  NofileResult r{needed, limit.rlim_cur, limit.rlim_cur, limit.rlim_max};
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
    const rlim_t target =
        limit.rlim_max == RLIM_INFINITY ? needed : std::min(needed, limit.rlim_max);
    if (target > limit.rlim_cur) {
      limit.rlim_cur = target;
      if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) throw SysError("setrlimit(RLIMIT_NOFILE)");
      r.soft = target;
    }
  }
  return r;
}

NofileResult ensure_nofile_limit(const Config& config, std::size_t listener_count) {
  const NofileResult r = raise_nofile_limit(descriptors_needed(config, listener_count));
  const char* key = config.mode == Mode::kPrefork ? "max_connections" : "max_children";
  const unsigned clients =
      config.mode == Mode::kPrefork ? config.max_connections : config.max_children;
  if (!r.enough()) {
    spdlog::warn(
        "RLIMIT_NOFILE hard limit {} is below the {} descriptors {} = {} needs; "
        "past ~{} connections per process accepts fail with EMFILE and are paused "
        "(raise LimitNOFILE= / ulimit -Hn, or lower {})",
        r.hard, r.needed, key, clients, r.soft > kDescriptorMargin ? r.soft - kDescriptorMargin : 0,
        key);
  } else if (r.raised()) {
    spdlog::info("RLIMIT_NOFILE soft limit raised from {} to {} ({} = {})", r.soft_before, r.soft,
                 key, clients);
  } else {
    spdlog::debug("RLIMIT_NOFILE soft limit {} covers the {} needed", r.soft, r.needed);
  }
  return r;
}

}  // namespace prefork::common
