#include "master/master_only_memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <new>

namespace prefork::master {
namespace {

// At least one page: mmap refuses a length of zero, and map and unmap must agree on the size.
std::size_t whole_pages(std::size_t bytes) {
  static const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t wanted = bytes == 0 ? 1 : bytes;
  return (wanted + page - 1) / page * page;
}

}  // namespace

void* map_master_only(std::size_t bytes) {
  const std::size_t size = whole_pages(bytes);
  void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw std::bad_alloc();
  // Should the kernel refuse, the memory still serves; children then merely share it.
  (void)::madvise(memory, size, MADV_DONTFORK);
  return memory;
}

void unmap_master_only(void* memory, std::size_t bytes) noexcept {
  if (memory != nullptr) ::munmap(memory, whole_pages(bytes));
}

}  // namespace prefork::master
