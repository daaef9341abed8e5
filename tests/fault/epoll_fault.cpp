// Test-only LD_PRELOAD shim: while the file named by PREFORK_FAULT_EPOLL_FILE exists, every
// epoll_ctl(EPOLL_CTL_ADD) of a client connection (the worker's edge-triggered registration)
// fails with ENOSPC, as it does when fs.epoll.max_user_watches is reached. Everything else
// goes to the C library's epoll_ctl.
#include <dlfcn.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace {

using EpollCtl = int (*)(int, int, int, epoll_event*);

bool fault_on(int op, const epoll_event* event) {
  if (op != EPOLL_CTL_ADD || event == nullptr) return false;
  constexpr unsigned kConnection = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  if ((event->events & kConnection) != kConnection) return false;
  const char* file = std::getenv("PREFORK_FAULT_EPOLL_FILE");
  return file != nullptr && ::access(file, F_OK) == 0;
}

}  // namespace

extern "C" int epoll_ctl(int epfd, int op, int fd, epoll_event* event) {
  static const auto real = reinterpret_cast<EpollCtl>(::dlsym(RTLD_NEXT, "epoll_ctl"));
  if (fault_on(op, event)) {
    errno = ENOSPC;
    return -1;
  }
  return real(epfd, op, fd, event);
}
