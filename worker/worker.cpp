#include "worker/worker.hpp"

#include <exception>

#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "worker/event_loop.hpp"
#include "worker/single_connection.hpp"

namespace prefork::worker {
namespace {

template <typename Body>
int guarded(const char* what, Body&& body) {
  try {
    return body();
  } catch (const std::exception& err) {
    spdlog::error("{}: {}", what, err.what());
    return common::kExitBoot;
  }
}

}  // namespace

int run(const common::ChildContext& ctx) {
  return guarded("worker", [&] {
    EventLoop loop(ctx);
    spdlog::debug("worker serving {} listener(s)", ctx.listeners.size());
    return loop.run();
  });
}

int serve_connection(const common::ChildContext& ctx, common::UniqueFd client) {
  return guarded("connection", [&] { return serve_single_connection(ctx, std::move(client)); });
}

}  // namespace prefork::worker
