// The running executable's GNU build ID (hex), which tells two builds of one version apart on
// the status page and in metrics, e.g. before and after a binary upgrade. Any process.
#pragma once

#include <string>

namespace prefork::common {

// Read once from the program's own ELF notes; "" when the linker wrote none.
const std::string& build_id();

}  // namespace prefork::common
