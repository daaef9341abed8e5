// master/master_only_memory through a real fork(): the master's books are not mapped in its
// children (so its writes after fork cost no copy-on-write), and the master keeps them.
#include "master/master_only_memory.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

namespace prefork::master {
namespace {

// 0 when the page holding `address` is mapped in this process, else mincore's errno (ENOMEM:
// not mapped).
int mincore_errno(const void* address) {
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const std::uintptr_t start = reinterpret_cast<std::uintptr_t>(address) / page * page;
  unsigned char resident = 0;
  // NOLINTNEXTLINE(performance-no-int-to-ptr): mincore wants the page's address
  return ::mincore(reinterpret_cast<void*>(start), 1, &resident) == 0 ? 0 : errno;
}

TEST(MasterOnlyMemory, AForkedChildHasNoneOfItAndTheMasterKeepsIt) {
  std::vector<int, MasterOnlyAllocator<int>> books;
  books.reserve(4096);
  for (int i = 0; i < 4096; ++i) books.push_back(i);
  const std::vector<int> ordinary(4096, 7);  // the heap, which a child inherits
  ASSERT_EQ(mincore_errno(books.data()), 0);
  ASSERT_EQ(mincore_errno(&books.back()), 0);

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const bool books_absent =
        mincore_errno(books.data()) == ENOMEM && mincore_errno(&books.back()) == ENOMEM;
    const bool heap_present = mincore_errno(ordinary.data()) == 0 && ordinary.back() == 7;
    ::_exit(books_absent && heap_present ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child saw the books, or lost the heap";
  books.push_back(4096);  // the master goes on writing them
  EXPECT_EQ(books.front(), 0);
  EXPECT_EQ(books.back(), 4096);
}

}  // namespace
}  // namespace prefork::master
