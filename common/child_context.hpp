// What a child process receives from the master across fork: the configuration, the listening
// sockets, and (prefork workers only) its scoreboard slot. The master knows children only as
// entry functions of these types; it never knows what they do.
#pragma once

#include <functional>
#include <span>

#include "common/config.hpp"
#include "common/listeners.hpp"
#include "common/scoreboard.hpp"
#include "common/unique_fd.hpp"

namespace prefork::common {

struct ChildContext {
  const Config& config;
  std::span<const Listener> listeners;
  ScoreboardSlot* slot = nullptr;  // null for per-connection children
  unsigned slot_index = 0;
  unsigned generation = 0;
  const Scoreboard* scoreboard = nullptr;  // every slot and the header, read-only (status pages)
  // Per-connection children: the connection came from a listener with proxy_protocol.
  bool client_proxy_protocol = false;
};

// A prefork worker: serves the listeners until asked to stop; returns the exit code.
using WorkerEntry = std::function<int(const ChildContext&)>;

// A per-connection child: serves one accepted connection (keep-alive included), then returns.
using ConnectionEntry = std::function<int(const ChildContext&, UniqueFd client)>;

// Per-connection mode, in the master just before each fork: builds what that child (of this
// configuration generation) will read, so that it inherits it rather than building it.
using ConnectionPrepare = std::function<void(const Config&, unsigned generation)>;

}  // namespace prefork::common
