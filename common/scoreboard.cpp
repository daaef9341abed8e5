#include "common/scoreboard.hpp"

#include <sys/mman.h>

#include <new>

#include "common/sys_error.hpp"

namespace prefork::common {

const char* worker_state_name(WorkerState state) {
  switch (state) {
    case WorkerState::kEmpty: return "empty";
    case WorkerState::kStarting: return "starting";
    case WorkerState::kIdle: return "idle";
    case WorkerState::kBusy: return "busy";
    case WorkerState::kDraining: return "draining";
  }
  return "unknown";
}

Scoreboard::Scoreboard(std::size_t slots) : size_(slots) {
  void* memory = ::mmap(nullptr, slots * sizeof(ScoreboardSlot), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw SysError("mmap(scoreboard)");
  slots_ = new (memory) ScoreboardSlot[slots];
}

Scoreboard::~Scoreboard() {
  if (slots_ != nullptr) ::munmap(slots_, size_ * sizeof(ScoreboardSlot));
}

}  // namespace prefork::common
