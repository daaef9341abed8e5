// RLIMIT_NOFILE sized to the configuration (master, at startup; children inherit it): each
// prefork worker may hold max_connections clients, the per-connection master max_children
// clients in flight, plus the process's own descriptors.
#pragma once

#include <sys/resource.h>

#include <cstddef>

#include "common/config.hpp"

namespace prefork::common {

// Descriptors a process needs besides its clients: listeners are counted separately; this
// covers epoll, signalfd, timers, log files, the spare EMFILE descriptor, stdio and slack.
inline constexpr rlim_t kDescriptorMargin = 64;

// The soft RLIMIT_NOFILE the configuration needs in one process (limits are per process).
rlim_t descriptors_needed(const Config& config, std::size_t listener_count);

struct NofileResult {
  rlim_t needed = 0;
  rlim_t soft_before = 0;
  rlim_t soft = 0;  // after
  rlim_t hard = 0;
  [[nodiscard]] bool enough() const { return soft >= needed; }
  [[nodiscard]] bool raised() const { return soft > soft_before; }
};

// Raises the soft RLIMIT_NOFILE to `needed`, capped by the hard limit; never lowers it.
// Throws SysError when getrlimit/setrlimit fail.
NofileResult raise_nofile_limit(rlim_t needed);

// Both, and logs: info when raised, a warning naming the key to lower (or the hard limit to
// raise) when the hard limit is too low.
NofileResult ensure_nofile_limit(const Config& config, std::size_t listener_count);

}  // namespace prefork::common
