# CLI11 is a header-only Debian package: accept its CMake config or plain headers. toml++ is
# compiled into the binary from the headers its Debian package ships (one translation unit,
# common/config.cpp, includes it), not linked as libtomlplusplus.so: every forked child, one per
# connection in per-connection mode, then copies and unmaps one library's mappings fewer.
find_path(TOMLPP_INCLUDE toml++/toml.h REQUIRED)
add_library(prefork_toml INTERFACE)
target_include_directories(prefork_toml SYSTEM INTERFACE "${TOMLPP_INCLUDE}")
target_compile_definitions(prefork_toml INTERFACE TOML_HEADER_ONLY=1)

find_package(CLI11 QUIET)
if(NOT TARGET CLI11::CLI11)
  find_path(CLI11_INCLUDE CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE "${CLI11_INCLUDE}")
endif()
