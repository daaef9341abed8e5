// The worker side's public entry points (worker, after fork): the master hands one of these to
// its spawner as the child's entry function and _exit()s with the returned code.
#pragma once

#include "common/child_context.hpp"
#include "common/unique_fd.hpp"

namespace prefork::worker {

// Prefork worker entry: serves ctx.listeners until drained (SIGQUIT) or stopped (SIGTERM/SIGINT);
// returns the exit code.
int run(const common::ChildContext& ctx);

// Per-connection child entry: serves the one client (keep-alive included), then returns.
int serve_connection(const common::ChildContext& ctx, common::UniqueFd client);

}  // namespace prefork::worker
