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
  void* memory =
      ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw SysError("mmap(scoreboard)");
  header_ = new (memory) ScoreboardHeader;
  slots_ = new (static_cast<char*>(memory) + sizeof(ScoreboardHeader)) ScoreboardSlot[slots];
}

Scoreboard::~Scoreboard() {
  if (header_ != nullptr) ::munmap(header_, bytes());
}

std::size_t Scoreboard::bytes() const noexcept {
  return sizeof(ScoreboardHeader) + size_ * sizeof(ScoreboardSlot);
}

}  // namespace prefork::common
