// Memory for the master's own books (its children, the per-IP counts, the listeners that are
// readable), which fork() leaves out of every child (MADV_DONTFORK). The master writes these
// books right after each fork: in memory a child shares copy-on-write, each such write is a
// page fault and a page copy, once per connection in per-connection mode. A child never sees
// them, so code that runs in a child must not touch them.
#pragma once

#include <cstddef>

namespace prefork::master {

// Maps at least `bytes` of zeroed memory that no child inherits; throws std::bad_alloc when the
// kernel refuses.
void* map_master_only(std::size_t bytes);
// Unmaps what map_master_only(`bytes`) returned.
void unmap_master_only(void* memory, std::size_t bytes) noexcept;

// A standard allocator over map_master_only: a std::vector with it keeps its elements there. Each
// allocation is a mapping of its own, so keep such vectors reserved (they grow rarely).
template <typename T>
struct MasterOnlyAllocator {
  using value_type = T;

  MasterOnlyAllocator() noexcept = default;
  template <typename U>
  explicit(false) MasterOnlyAllocator(const MasterOnlyAllocator<U>& /*other*/) noexcept {}

  T* allocate(std::size_t n) { return static_cast<T*>(map_master_only(n * sizeof(T))); }
  void deallocate(T* memory, std::size_t n) noexcept { unmap_master_only(memory, n * sizeof(T)); }

  template <typename U>
  bool operator==(const MasterOnlyAllocator<U>& /*other*/) const noexcept {
    return true;
  }
};

}  // namespace prefork::master
