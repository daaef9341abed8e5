# How the binary takes its libraries from their Debian packages. Every shared library is five
# more mappings, which each fork() of a per-connection child copies and each exit tears down
# (docs/benchmarks.md, "Fewer libraries to fork"). CLI11 and fmt are used header-only: CLI11 in
# the one unit that reads the command line, fmt in every unit that formats (its inline
# functions are instantiated only where used). spdlog's compiled part is built once, into
# prefork_common, from Debian's headers (common/spdlog_library.cpp): spdlog header-only in every
# unit would lengthen each build by about two thirds. None of them is vendored.
#
# toml++ stays Debian's shared library: compiled into our code, the config fuzzer's UBSan finds
# toml++ 3.3 (Debian 12) reaching its TOML_UNREACHABLE (__builtin_unreachable) in
# is_non_ascii_horizontal_whitespace for non-ASCII bytes where a key may start
# (tests/fuzz/config-corpus/found-toml-unreachable-non-ascii-key). Accept its CMake config, or
# plain headers where a distribution has none.
find_package(tomlplusplus QUIET)
if(NOT TARGET tomlplusplus::tomlplusplus)
  find_path(TOMLPP_INCLUDE toml++/toml.h REQUIRED)
  add_library(tomlplusplus::tomlplusplus INTERFACE IMPORTED)
  target_include_directories(tomlplusplus::tomlplusplus INTERFACE "${TOMLPP_INCLUDE}")
endif()

find_package(CLI11 QUIET)
if(NOT TARGET CLI11::CLI11)
  find_path(CLI11_INCLUDE CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE "${CLI11_INCLUDE}")
endif()

find_package(fmt REQUIRED CONFIG)
find_path(SPDLOG_INCLUDE spdlog/spdlog.h REQUIRED)
add_library(prefork_spdlog INTERFACE)
target_include_directories(prefork_spdlog SYSTEM INTERFACE "${SPDLOG_INCLUDE}")
# SPDLOG_COMPILED_LIB: every unit sees spdlog's declarations only; the definitions are compiled
# once, in common/spdlog_library.cpp. SPDLOG_FMT_EXTERNAL: Debian's spdlog uses Debian's fmt.
target_compile_definitions(prefork_spdlog INTERFACE SPDLOG_COMPILED_LIB SPDLOG_FMT_EXTERNAL)
target_link_libraries(prefork_spdlog INTERFACE fmt::fmt-header-only Threads::Threads)
