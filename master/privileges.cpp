#include "master/privileges.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"

namespace prefork::master {
namespace {

ChildCredentials& installed() {
  static ChildCredentials credentials;
  return credentials;
}

// getpw*_r / getgr*_r want a caller buffer; grow it on ERANGE.
template <typename Entry, typename Lookup>
bool lookup(Lookup&& call, Entry& entry, std::vector<char>& buffer, int& err) {
  buffer.resize(1024);
  for (int attempt = 0; attempt < 8; ++attempt) {
    Entry* result = nullptr;
    err = call(&entry, buffer.data(), buffer.size(), &result);
    if (err == ERANGE) {
      buffer.resize(buffer.size() * 4);
      continue;
    }
    return err == 0 && result != nullptr;
  }
  return false;
}

[[noreturn]] void unknown(const common::Config& config, const char* key, const std::string& name,
                          const char* what, int err) {
  throw common::ConfigError(config.source + ": key '" + key + "': no such " + what + " \"" + name +
                            "\" on this system" +
                            (err != 0 ? " (" + common::errno_text(err) + ")" : std::string()));
}

// What a log file's check needs, computed before the fork so the probe makes system calls only.
struct LogProbe {
  std::string path;
  std::string directory;  // where the file gets created when it does not exist yet
  int directory_access = X_OK;
};

constexpr int kProbeSetupFailed = 255;  // the probe could not take the children's credentials

// Runs in the forked probe: errno of the first failing step, or 0.
int probe_in_child(const LogProbe& probe) {
  const common::UniqueFd file(
      ::open(probe.path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY));
  if (file) return 0;
  if (errno != ENOENT) return errno;
  return ::faccessat(AT_FDCWD, probe.directory.c_str(), probe.directory_access, 0) == 0 ? 0 : errno;
}

// 0 when the children's user can open the file, else the errno (kProbeSetupFailed when the
// probe could not become that user).
int run_probe(const LogProbe& probe, const ChildCredentials& c) {
  const pid_t pid = ::fork();
  if (pid < 0) throw common::SysError("fork (log file check)");
  if (pid == 0) {
    int code = kProbeSetupFailed;
    try {
      apply_credentials(c);
      code = probe_in_child(probe);
    } catch (...) {  // reported through the exit code; the probe must only _exit
    }
    ::_exit(code & 0xff);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw common::SysError("waitpid (log file check)");
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : kProbeSetupFailed;
}

// `error_log`'s missing directories are created by the logger (as the master, before any drop);
// `access_log`'s directory must exist.
LogProbe plan_probe(const std::string& path, bool creates_directories, bool master_creates) {
  namespace fs = std::filesystem;
  LogProbe probe{path, fs::path(path).parent_path().string(), master_creates ? X_OK : W_OK | X_OK};
  std::error_code ignored;
  while (creates_directories && !probe.directory.empty() && probe.directory != "/" &&
         !fs::exists(probe.directory, ignored)) {
    probe.directory = fs::path(probe.directory).parent_path().string();
  }
  if (probe.directory.empty()) probe.directory = ".";  // a relative path, from our directory
  return probe;
}

// What the name service answered for `user` and `group`.
struct Resolved {
  enum Failed : int { kNone, kUser, kGroup };
  int failed_key = kNone;
  int err = 0;  // of the failed lookup, 0 for "no such entry"
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // what initgroups(user, gid) would set, so children need no NSS
};

Resolved resolve_here(const common::Config& config) {
  Resolved r;
  passwd pw{};
  std::vector<char> pw_buffer;
  if (!lookup([&](passwd* e, char* b, std::size_t n,
                  passwd** out) { return ::getpwnam_r(config.user.c_str(), e, b, n, out); },
              pw, pw_buffer, r.err)) {
    r.failed_key = Resolved::kUser;
    return r;
  }
  r.uid = pw.pw_uid;
  r.gid = pw.pw_gid;
  if (!config.group.empty()) {
    group gr{};
    std::vector<char> gr_buffer;
    if (!lookup([&](group* e, char* b, std::size_t n,
                    group** out) { return ::getgrnam_r(config.group.c_str(), e, b, n, out); },
                gr, gr_buffer, r.err)) {
      r.failed_key = Resolved::kGroup;
      return r;
    }
    r.gid = gr.gr_gid;
  }
  if (r.uid == 0) return r;  // root drops nothing: no groups to compute
  int count = 32;
  for (int attempt = 0; attempt < 8; ++attempt) {
    r.groups.resize(static_cast<std::size_t>(count));
    const int want = count;
    if (::getgrouplist(pw.pw_name, r.gid, r.groups.data(), &count) >= 0) {
      r.groups.resize(static_cast<std::size_t>(count));
      break;
    }
    if (count <= want) count = want * 2;
  }
  return r;
}

// The fixed part of a Resolved on the helper's pipe; the groups follow.
struct ResolvedHeader {
  int failed_key;
  int err;
  uid_t uid;
  gid_t gid;
  std::size_t group_count;
};

bool write_all(int fd, const void* data, std::size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

std::string read_to_end(int fd) {
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw common::SysError("read (user lookup)");
    if (n == 0) return out;
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

// The lookups run in a short-lived child, as systemd does for its services: the name service
// modules they load (libnss_systemd, and libcap with it, for instance) then never enter the
// master, so no worker or per-connection child copies, and unmaps again at exit, their mappings,
// and the master keeps no state or socket of theirs across reloads.
Resolved resolve_in_helper(const common::Config& config) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) throw common::SysError("pipe2 (user lookup)");
  common::UniqueFd reader(ends[0]);
  common::UniqueFd writer(ends[1]);
  const pid_t pid = ::fork();
  if (pid < 0) throw common::SysError("fork (user lookup)");
  if (pid == 0) {
    reader.reset();
    int code = 1;
    try {
      const Resolved r = resolve_here(config);
      const ResolvedHeader header{r.failed_key, r.err, r.uid, r.gid, r.groups.size()};
      if (write_all(writer.get(), &header, sizeof header) &&
          write_all(writer.get(), r.groups.data(), r.groups.size() * sizeof(gid_t))) {
        code = 0;
      }
    } catch (...) {  // reported through the exit code; the helper must only _exit
    }
    ::_exit(code);
  }
  writer.reset();
  const std::string answer = read_to_end(reader.get());
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw common::SysError("waitpid (user lookup)");
  }
  ResolvedHeader header{};
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || answer.size() < sizeof header) {
    throw common::SysError("user lookup: the helper process failed", EIO);
  }
  std::memcpy(&header, answer.data(), sizeof header);
  if (answer.size() != sizeof header + header.group_count * sizeof(gid_t)) {
    throw common::SysError("user lookup: truncated answer", EIO);
  }
  Resolved r{header.failed_key, header.err, header.uid, header.gid,
             std::vector<gid_t>(header.group_count)};
  if (!r.groups.empty()) {
    std::memcpy(r.groups.data(), answer.data() + sizeof header, r.groups.size() * sizeof(gid_t));
  }
  return r;
}
}  // namespace

void check_log_files_for_children(const common::Config& config, const ChildCredentials& c) {
  const std::string who =
      c.drop ? "user " + c.user : "the server's user (uid " + std::to_string(::getuid()) + ")";
  const std::pair<const char*, const std::string*> files[] = {{"error_log", &config.error_log},
                                                              {"access_log", &config.access_log}};
  for (const auto& [key, path] : files) {
    const bool is_error_log = key == std::string_view("error_log");
    if (path->empty() || *path == "stderr" || (!is_error_log && *path == "off")) continue;
    // prepare_log_files_for_children creates (absolute) files for children that drop privileges.
    const bool master_creates = c.drop && path->front() == '/';
    const LogProbe probe = plan_probe(*path, is_error_log, master_creates);
    const int err = run_probe(probe, c);
    if (err == 0) continue;
    std::string message = config.source + ": key '" + key + "': " + who + ", who the children " +
                          "run as, cannot open " + *path + " for appending";
    std::error_code ignored;
    if (err == kProbeSetupFailed) {
      message += " (the check could not take that user's credentials)";
    } else if (err != EACCES && !std::filesystem::exists(*path, ignored)) {
      message += ": it does not exist yet and cannot be created in " + probe.directory + ": " +
                 common::errno_text(err);
    } else {
      message += ": " + common::errno_text(err);
    }
    throw common::ConfigError(message);
  }
}

ChildCredentials resolve_child_credentials(const common::Config& config, bool as_root) {
  ChildCredentials c;
  c.user = config.user;
  c.group = config.group;
  if (!as_root) return c;
  if (config.user.empty()) {
    throw common::ConfigError(config.source + ": key 'user': expected a user name");
  }
  const Resolved r = resolve_in_helper(config);
  if (r.failed_key == Resolved::kUser) unknown(config, "user", config.user, "user", r.err);
  if (r.failed_key == Resolved::kGroup) unknown(config, "group", config.group, "group", r.err);
  c.uid = r.uid;
  c.gid = r.gid;
  if (c.uid == 0) {  // "root", or another name for uid 0: the explicit opt-in
    c.root_opt_in = true;
    return c;
  }
  c.groups = r.groups;
  c.drop = true;
  return c;
}

void log_child_credentials(const ChildCredentials& c, bool as_root) {
  if (!as_root) {
    spdlog::debug("not started as root: children keep uid {} (user/group not applied)", ::getuid());
  } else if (c.root_opt_in) {
    spdlog::warn(
        "user = \"{}\": children run as root (explicit opt-in); any flaw in request "
        "handling runs with full privileges",
        c.user);
  } else if (c.drop) {
    spdlog::info("children run as user {} (uid {}), group {} (gid {})", c.user, c.uid,
                 c.group.empty() ? "<primary>" : c.group, c.gid);
  }
}

void prepare_log_files_for_children(const common::Config& config, const ChildCredentials& c) {
  if (!c.drop) return;
  for (const std::string* path : {&config.error_log, &config.access_log}) {
    if (path->empty() || path->front() != '/') continue;  // "stderr", "off"
    const common::UniqueFd file(::open(
        path->c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0640));
    if (!file || ::fchown(file.get(), c.uid, c.gid) != 0) {
      spdlog::warn("cannot hand log file {} to user {}: {}; children may fail to reopen it", *path,
                   c.user, common::errno_text(errno));
    }
  }
}

void set_child_credentials(ChildCredentials credentials) {
  installed() = std::move(credentials);
}

const ChildCredentials& child_credentials() {
  return installed();
}

// [[gnu::hot]]: what a per-connection child runs (why: above worker::serve_single_connection).
[[gnu::hot]] void apply_credentials(const ChildCredentials& c) {
  if (!c.drop) return;
  // Order matters: groups first (needs root), then the gid, then the uid, after which nothing
  // privileged is possible any more.
  if (::setgroups(c.groups.size(), c.groups.data()) != 0) throw common::SysError("setgroups");
  if (::setresgid(c.gid, c.gid, c.gid) != 0) throw common::SysError("setresgid");
  if (::setresuid(c.uid, c.uid, c.uid) != 0) throw common::SysError("setresuid");

  uid_t ruid = 0, euid = 0, suid = 0;
  gid_t rgid = 0, egid = 0, sgid = 0;
  if (::getresuid(&ruid, &euid, &suid) != 0 || ::getresgid(&rgid, &egid, &sgid) != 0 ||
      ruid != c.uid || euid != c.uid || suid != c.uid || rgid != c.gid || egid != c.gid ||
      sgid != c.gid) {
    throw common::SysError("privilege drop: ids not as planned", EPERM);
  }
  // Root must be out of reach now: these must all fail.
  if (::setuid(0) == 0 || ::seteuid(0) == 0 || ::setgid(0) == 0 || ::setegid(0) == 0) {
    throw common::SysError("privilege drop: root could be regained", EPERM);
  }
  // The kernel already made us non-dumpable when the ids changed (unless fs.suid_dumpable says
  // otherwise); say so explicitly: no ptrace and no /proc/<pid>/{mem,fd,environ} for other
  // processes of this user (e.g. other daemons running as nobody), which could otherwise take
  // our listening sockets.
  if (::prctl(PR_SET_DUMPABLE, 0) != 0) throw common::SysError("prctl(PR_SET_DUMPABLE)");
}

[[gnu::hot]] void drop_privileges_in_child(pid_t master_pid) {
  const ChildCredentials& c = installed();
  if (!c.drop) return;
  apply_credentials(c);
  // Changing credentials cleared the parent-death signal: arm it again, and check the master
  // did not die in between.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) throw common::SysError("prctl(PR_SET_PDEATHSIG)");
  if (::getppid() != master_pid) throw common::SysError("privilege drop: master gone", ESRCH);
}

}  // namespace prefork::master
