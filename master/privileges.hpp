// Privilege drop for children (master resolves at startup; each child applies it after fork):
// when the master runs as root, workers and per-connection children run as `user`/`group`
// after the listeners are bound, so ports below 1024 still work and only the master stays root.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/config.hpp"

namespace prefork::master {

// Who the children become. `drop` false: they keep the master's identity (not root, or the
// explicit `user = "root"` opt-in).
struct ChildCredentials {
  bool drop = false;
  bool root_opt_in = false;  // started as root and told to stay root: warn once at startup
  std::string user;          // for messages
  std::string group;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, as initgroups() would set them
};

// Resolves `user` and `group` (getpwnam_r, getgrnam_r, getgrouplist, in a short-lived helper
// process so no name service module is ever loaded into the master) when `as_root`; otherwise
// nothing is resolved and nothing will change. An unknown user or group throws
// common::ConfigError naming the key. A user whose uid is 0 counts as the "root" opt-in.
ChildCredentials resolve_child_credentials(const common::Config& config, bool as_root);

// Logs the plan once at startup: a warning for the root opt-in, info for a drop, debug when the
// master is not root.
void log_child_credentials(const ChildCredentials& credentials, bool as_root);

// Log files the children open or reopen by path (error_log, access_log when they are files):
// when children will drop privileges, creates each one if missing and hands it to the children's
// user, so a worker can still reopen it after logrotate (the master stays able to write as root).
// Call at startup and again after the master reopened its logs (SIGUSR1), before the children
// reopen theirs. The directory must be searchable by that user. Failures are logged as warnings.
void prepare_log_files_for_children(const common::Config& config,
                                    const ChildCredentials& credentials);

// Checks that the children's user can open every log file the children open or reopen by path
// (access_log, and error_log, which they reopen on SIGUSR1), exactly as a child will: in a
// short-lived child process that takes `credentials` the way drop_privileges_in_child does. A
// file that does not exist yet must be creatable: by the master when the children drop
// privileges (prepare_log_files_for_children creates it; the children then need to search its
// directory), else by the children themselves (they need to write the directory). Throws
// common::ConfigError naming the key, the path, the user and the reason. Creates nothing.
void check_log_files_for_children(const common::Config& config,
                                  const ChildCredentials& credentials);

// The plan every child applies (master, once at startup, before any fork; empty = no drop).
void set_child_credentials(ChildCredentials credentials);
[[nodiscard]] const ChildCredentials& child_credentials();

// Child, after fork and before its entry function: setgroups, setgid, setuid to the plan; then
// checks that root cannot be regained, keeps the process non-dumpable (no ptrace or /proc/<pid>/
// access by other processes of the same, often shared, user; no core files readable by it) and
// re-arms PR_SET_PDEATHSIG, which the kernel clears when credentials change. Throws
// common::SysError on any failure: the child must then exit rather than serve as root.
void drop_privileges_in_child(pid_t master_pid);

// Applies `credentials` to the calling process (what drop_privileges_in_child does; exposed for
// tests). No-op when `credentials.drop` is false.
void apply_credentials(const ChildCredentials& credentials);

}  // namespace prefork::master
