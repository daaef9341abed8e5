// The listening sockets across a reload (master only). New addresses are bound before anything
// changes, so a bind failure changes nothing; unchanged ones keep their sockets, so nothing
// queued on them is lost; removed ones close in the master here, and in the old workers as
// those drain.
#pragma once

#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/listeners.hpp"

namespace prefork::master {

// Binds every address of `next` that `current` does not listen on; throws (common::SysError,
// common::ConfigError) when one cannot be bound, closing those bound so far.
std::vector<common::Listener> bind_added_listeners(const std::vector<common::Listener>& current,
                                                   const common::Config& next);

// The listeners for `specs`, in that order: taken from `current` when unchanged, else from
// `added`. What `current` still holds afterwards is no longer listened on (logged here).
std::vector<common::Listener> merge_listeners(std::vector<common::Listener>& current,
                                              const std::vector<std::string>& specs,
                                              std::vector<common::Listener> added);

}  // namespace prefork::master
