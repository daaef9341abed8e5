#include "master/listener_reload.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace prefork::master {
namespace {

common::Listener* find_open(std::vector<common::Listener>& from, const std::string& spec) {
  auto it =
      std::find_if(from.begin(), from.end(), [&](const auto& l) { return l.fd && l.spec == spec; });
  return it == from.end() ? nullptr : &*it;
}

bool listens_on(const std::vector<common::Listener>& listeners, const std::string& spec) {
  return std::any_of(listeners.begin(), listeners.end(),
                     [&](const auto& l) { return l.spec == spec; });
}

}  // namespace

std::vector<common::Listener> bind_added_listeners(const std::vector<common::Listener>& current,
                                                   const common::Config& next) {
  std::vector<common::Listener> added;
  for (const auto& spec : next.listen) {
    if (listens_on(current, spec)) continue;
    added.push_back(
        std::move(common::open_listeners({spec}, {.socket_mode = next.socket_mode}).front()));
  }
  return added;
}

std::vector<common::Listener> merge_listeners(std::vector<common::Listener>& current,
                                              const std::vector<std::string>& specs,
                                              std::vector<common::Listener> added) {
  std::vector<common::Listener> next;
  for (const auto& spec : specs) {
    // Config validation rejects a repeated entry; should one get here anyway, it is the socket
    // already taken, never a dereference of nothing.
    if (find_open(next, spec) != nullptr) continue;
    if (auto* kept = find_open(current, spec)) {
      next.push_back(std::move(*kept));
    } else if (auto* fresh = find_open(added, spec)) {
      spdlog::info("listening on {}", fresh->bound);
      next.push_back(std::move(*fresh));
    } else {
      spdlog::error("reload: no socket for listen entry {}; skipped", spec);
    }
  }
  for (const auto& gone : current) {
    if (gone.fd) spdlog::info("no longer listening on {}", gone.bound);
  }
  return next;
}

}  // namespace prefork::master
