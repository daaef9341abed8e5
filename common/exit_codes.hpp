// The exit-code contract between children, the master and systemd (all processes).
#pragma once

namespace prefork::common {

inline constexpr int kExitOk = 0;
// Runtime failure that is worth a respawn or a systemd restart (e.g. the pool died).
inline constexpr int kExitFailure = 1;
// Fatal configuration or bind error: retrying cannot help, so the master never respawns it.
inline constexpr int kExitConfig = 2;
// A child could not finish booting (e.g. epoll_create failed).
inline constexpr int kExitBoot = 3;

}  // namespace prefork::common
