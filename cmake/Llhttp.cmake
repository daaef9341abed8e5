# Finds llhttp, in this order: pkg-config libllhttp (Debian 13+: libllhttp-dev), the C sources
# that Debian 12's node-llhttp ships (compiled here into a static library), or LLHTTP_SOURCE_DIR.
set(LLHTTP_SOURCE_DIR "" CACHE PATH "Directory holding llhttp's llhttp.c, api.c, http.c and llhttp.h")

pkg_check_modules(LLHTTP IMPORTED_TARGET GLOBAL libllhttp)
if(LLHTTP_FOUND)
  add_library(llhttp::llhttp ALIAS PkgConfig::LLHTTP)
  message(STATUS "llhttp: pkg-config libllhttp ${LLHTTP_VERSION}")
  return()
endif()

set(_llhttp_src "")
set(_llhttp_inc "")
if(LLHTTP_SOURCE_DIR)
  set(_llhttp_src "${LLHTTP_SOURCE_DIR}")
  find_path(_llhttp_inc llhttp.h PATHS "${LLHTTP_SOURCE_DIR}" "${LLHTTP_SOURCE_DIR}/include"
            NO_DEFAULT_PATH)
elseif(EXISTS /usr/share/llhttp/llhttp.c AND EXISTS /usr/share/include/llhttp/llhttp.h)
  set(_llhttp_src /usr/share/llhttp)
  set(_llhttp_inc /usr/share/include/llhttp)
endif()

if(NOT _llhttp_src OR NOT _llhttp_inc OR NOT EXISTS "${_llhttp_src}/llhttp.c")
  message(FATAL_ERROR
    "llhttp not found. Install it: on Debian 12 `apt-get install node-llhttp` (ships the C "
    "sources), on Debian 13 or newer `apt-get install libllhttp-dev`; or point "
    "-DLLHTTP_SOURCE_DIR= at a directory with llhttp.c, api.c, http.c and llhttp.h.")
endif()

add_library(llhttp_static STATIC
  "${_llhttp_src}/llhttp.c" "${_llhttp_src}/api.c" "${_llhttp_src}/http.c")
target_include_directories(llhttp_static SYSTEM PUBLIC "${_llhttp_inc}")
set_target_properties(llhttp_static PROPERTIES POSITION_INDEPENDENT_CODE ON C_STANDARD 99)
target_compile_options(llhttp_static PRIVATE -w)
add_library(llhttp::llhttp ALIAS llhttp_static)
message(STATUS "llhttp: compiling sources from ${_llhttp_src}")
