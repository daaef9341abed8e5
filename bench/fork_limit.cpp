// The physical limit of the per-connection model on this machine: how many
// fork() + _exit() + waitpid() cycles per second one core does, from a tiny process.
// Usage: fork_limit [seconds] [extra_mib]  — extra_mib dirties that much heap first, to show how
// the parent's size moves the limit. Prints "forks_per_sec <n>" and "us_per_fork <x>".
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  const std::size_t extra_mib = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 0;
  std::vector<char> ballast(extra_mib << 20);
  if (!ballast.empty()) std::memset(ballast.data(), 1, ballast.size());

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
