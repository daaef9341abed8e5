#include "common/build_id.hpp"

#include <elf.h>
#include <link.h>

#include <cstring>

namespace prefork::common {
namespace {

constexpr std::size_t align4(std::size_t n) {
  return (n + 3) & ~std::size_t{3};
}

// Walks the PT_NOTE segments of the main program (the first object dl_iterate_phdr reports).
int find_build_id(dl_phdr_info* info, std::size_t /*size*/, void* data) {
  auto* out = static_cast<std::string*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    // The loader gives the segment as a load bias plus an address: the cast is the API's.
    const auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);  // NOLINT

    const unsigned char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      ElfW(Nhdr) note{};
      std::memcpy(&note, p, sizeof note);
      const unsigned char* name = p + sizeof note;
      const unsigned char* desc = name + align4(note.n_namesz);
      if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
          std::memcmp(name, "GNU", 4) == 0 && desc + note.n_descsz <= end) {
        static constexpr char kHex[] = "0123456789abcdef";
        for (std::size_t b = 0; b < note.n_descsz; ++b) {
          out->push_back(kHex[desc[b] >> 4]);
          out->push_back(kHex[desc[b] & 0xf]);
        }
        return 1;
      }
      p = desc + align4(note.n_descsz);
    }
  }
  return 1;  // only the main program
}

}  // namespace

const std::string& build_id() {
  static const std::string id = [] {
    std::string out;
    ::dl_iterate_phdr(find_build_id, &out);
    return out;
  }();
  return id;
}

}  // namespace prefork::common
