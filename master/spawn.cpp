#include "master/spawn.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <exception>

#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "common/signals.hpp"
#include "common/sys_error.hpp"
#include "master/privileges.hpp"

namespace prefork::master {
namespace {

// [[gnu::hot]]: what a per-connection child runs (why: above worker::serve_single_connection).
[[noreturn, gnu::hot]] void run_child(const ChildSetup& setup, const std::function<int()>& body,
                                      pid_t master_pid) {
  common::reset_signals_after_fork();
  // The master may have died between fork() and prctl(): then our parent is already someone else.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != master_pid) {
    ::_exit(common::kExitBoot);
  }
  int code = common::kExitBoot;
  try {
    if (setup.drop_master_fds) setup.drop_master_fds();
    if (setup.keep_master_logger) {
      common::retag_logging(setup.log_tag.c_str());
    } else {
      common::init_logging(setup.log_tag, setup.config->error_log, setup.config->log_level);
    }
    // After the logger (its file may be root's), before any request is read.
    drop_privileges_in_child(master_pid);
    code = body();
  } catch (const std::exception& err) {
    spdlog::critical("{} failed: {}", setup.log_tag, err.what());
  }
  // _exit, not exit: the master's atexit handlers and stdio buffers are not ours to run. The
  // error log has nothing buffered to lose here: it writes every line at once (init_logging).
  ::_exit(code);
}

}  // namespace

[[gnu::hot]] pid_t spawn_child(const ChildSetup& setup, const std::function<int()>& body) {
  const pid_t master_pid = ::getpid();
  // No flush before fork(): the error log writes every line at once (init_logging), so a child
  // inherits nothing buffered that it could write twice. Flushing here anyway wrote to stdio's
  // state in the master after every fork before it, a copy-on-write fault per connection.
  const pid_t pid = setup.fork ? setup.fork() : ::fork();
  if (pid == 0) run_child(setup, body, master_pid);
  return pid;
}

void send_signal(pid_t pid, int signo) {
  if (pid > 0 && ::kill(pid, signo) != 0 && errno != ESRCH) {
    spdlog::error("kill({}, {}): {}", pid, common::signal_name(signo), common::errno_text(errno));
  }
}

}  // namespace prefork::master
