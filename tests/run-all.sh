#!/bin/sh
# Builds prefork-httpd and runs its whole test suite: what the README's second command and CI run.
# Installs the build and test dependencies first (Debian, as root), so a fresh machine works.
set -eu
cd "$(dirname "$0")/.."
jobs=${JOBS:-2}

if [ "$(id -u)" -eq 0 ]; then
  packaging/install-deps.sh
else
  echo "run-all.sh: not root; assuming the dependencies are installed" >&2
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 300
