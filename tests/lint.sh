#!/bin/sh
# Static checks run by tests/run-all.sh (CI): clang-format over every tracked C++ file, and
# clang-tidy (the root .clang-tidy) over our own sources, compiled as BUILD_DIR's
# compile_commands.json says. Any finding fails.
#
# usage: tests/lint.sh [BUILD_DIR]   (default: build; it must have been configured)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
jobs=${JOBS:-2}

# clang-format: the tracked sources, as .clang-format says (the fuzz corpus is data, not code).
git ls-files -z -- '*.cpp' '*.hpp' '*.h' '*.cc' | xargs -0 -r clang-format --dry-run -Werror
echo "lint: clang-format: clean"

# clang-tidy: the translation units of the server (common/, master/, worker/); the headers they
# include come along through HeaderFilterRegex. One file per process, $jobs at a time.
[ -f "$build/compile_commands.json" ] || { echo "lint: no $build/compile_commands.json" >&2; exit 1; }
git ls-files -z -- 'common/*.cpp' 'master/*.cpp' 'worker/*.cpp' |
  xargs -0 -r -n 1 -P "$jobs" clang-tidy -p "$build" --quiet --warnings-as-errors='*' \
    >"$build/clang-tidy.log" 2>&1 || {
  grep -E 'warning:|error:' "$build/clang-tidy.log" >&2 || cat "$build/clang-tidy.log" >&2
  echo "lint: clang-tidy found problems (whole output: $build/clang-tidy.log)" >&2
  exit 1
}
echo "lint: clang-tidy: clean"
