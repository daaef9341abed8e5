// A per-connection child's whole life (worker, after fork): one accepted client served with
// blocking-style poll() on that socket and a signalfd, no epoll set, no listeners. The HTTP
// side (Connection, its parser, responses, timers and limits) is the prefork worker's own.
#pragma once

#include "common/child_context.hpp"
#include "common/unique_fd.hpp"

namespace prefork::worker {

struct PreparedConfig;

// Serves `client` (keep-alive included) until it is done, SIGTERM/SIGINT, or a SIGQUIT drain
// has finished it; returns the exit code. Throws common::SysError when the signalfd or the
// socket cannot be set up. `prepared`: the master's for ctx.config (a copy-on-write snapshot
// this child may re-date), or null to build one.
int serve_single_connection(const common::ChildContext& ctx, common::UniqueFd client,
                            PreparedConfig* prepared = nullptr);

}  // namespace prefork::worker
