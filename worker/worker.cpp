#include "worker/worker.hpp"

#include <exception>

#include "common/clock.hpp"
#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "worker/connection.hpp"
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

ConnectionPrototype::ConnectionPrototype() = default;
ConnectionPrototype::~ConnectionPrototype() = default;

void ConnectionPrototype::prepare(const common::Config& config, unsigned generation) {
  if (prepared_ && generation == generation_) {
    prepared_->responses.set_date(static_cast<std::time_t>(common::wall_ms() / 1000));
    return;
  }
  prepared_.reset();
  generation_ = generation;
  if (shows_identity(config)) return;  // the identity names each child's pid: they build theirs
  try {
    prepared_ = std::make_unique<PreparedConfig>(config, std::string());
    prepared_->responses.prebuild_hello();
  } catch (const std::exception& err) {
    // Nothing is lost: each child builds its own, as without a prototype.
    prepared_.reset();
    spdlog::warn("preparing the connection children's responses: {}", err.what());
  }
}

[[gnu::hot]] int ConnectionPrototype::serve(const common::ChildContext& ctx,
                                            common::UniqueFd client) {
  PreparedConfig* const prepared = ctx.generation == generation_ ? prepared_.get() : nullptr;
  return guarded("connection",
                 [&] { return serve_single_connection(ctx, std::move(client), prepared); });
}

}  // namespace prefork::worker
