// The physical limit of the per-connection model on this machine: how many
// fork() + _exit() + waitpid() cycles per second one core does.
// Usage: fork_limit [seconds] [extra_mib] [anon_kib]
//   extra_mib: dirties that much heap first, to show how the parent's size moves the limit.
//   anon_kib:  dirties heap until the process has this much anonymous memory (smaps_rollup's
//              Anonymous), i.e. as much as a running prefork-httpd master has.
// bench/run.sh builds it twice: `fork_limit`, a tiny program, and `fork_limit_image`, linked
// with prefork-httpd's own link line (the same static libraries, whole, the same shared
// libraries, -z now) and run with the master's anonymous memory: a process as big as our master,
// so "per-connection mode / this limit" is the share of a connection's cost that is not fork.
// Prints "mappings <n>", "anon_kib <n>", "forks_per_sec <n>" and "us_per_fork <x>".
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

long anonymous_kib() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string key;
  long value = 0;
  while (in >> key) {
    if (key == "Anonymous:" && in >> value) return value;
    in.ignore(1 << 12, '\n');
  }
  return 0;
}

long mappings() {
  std::ifstream in("/proc/self/maps");
  long n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  const std::size_t extra_mib = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 0;
  const long anon_kib = argc > 3 ? std::strtol(argv[3], nullptr, 10) : 0;
  std::vector<char> ballast(extra_mib << 20);
  if (!ballast.empty()) std::memset(ballast.data(), 1, ballast.size());
  std::vector<char> match;
  // As big as the master means its mappings too: it resolved the children's user through NSS
  // (`user = "nobody"` by default when started as root), which maps libnss_* for good.
  if (anon_kib > 0) (void)::getpwnam("nobody");
  if (const long missing = anon_kib - anonymous_kib(); missing > 0) {
    match.resize(static_cast<std::size_t>(missing) << 10);
    std::memset(match.data(), 1, match.size());
  }
  std::printf("mappings %ld\nanon_kib %ld\n", mappings(), anonymous_kib());

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto stop = start + std::chrono::duration<double>(seconds);
  long count = 0;
  while (Clock::now() < stop) {
    for (int i = 0; i < 64; ++i) {
      const pid_t pid = ::fork();
      if (pid == 0) ::_exit(0);
      if (pid < 0) {
        std::perror("fork");
        return 1;
      }
      int status = 0;
      if (::waitpid(pid, &status, 0) != pid) {
        std::perror("waitpid");
        return 1;
      }
      ++count;
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("forks_per_sec %.0f\nus_per_fork %.1f\n", count / elapsed, 1e6 * elapsed / count);
  return 0;
}
