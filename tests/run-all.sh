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

# The minimal Debian roots of the package test under systemd (far below) are mostly downloads:
# prepared in the background while the builds and tests run; that test waits for them.
systemd_roots_log=build-systemd-roots.log
systemd_roots=""
if [ "$(id -u)" -eq 0 ]; then
  tests/packaging/test-systemd.sh --prepare bookworm trixie >"$systemd_roots_log" 2>&1 &
  systemd_roots=$!
fi

# Warnings are errors here (PREFORK_WERROR), as in every developer build; a plain cmake build
# (a user's, the Debian package's) only reports them.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPREFORK_WERROR=ON
cmake --build build -j"$jobs"

# clang-format and clang-tidy (tests/lint.sh; uses build/compile_commands.json).
tests/lint.sh build

# The suite must not depend on what its parent left behind, so it runs under a parent that leaves
# the unusual: a umask of 077, SIGHUP (as under nohup), SIGINT and SIGQUIT (as for a background
# job of a non-interactive shell) ignored, and a soft limit of 1024 descriptors (systemd's default;
# the hard limit stays: HAProxy in the deployment test needs more). The package build below runs
# it again under make (dh_auto_test), which also leaves glibc's reserved signals 32 and 33 ignored.
(
  umask 077
  ulimit -Sn 1024
  trap '' HUP INT QUIT
  exec ctest --test-dir build --output-on-failure -j"$jobs" --timeout 300
)

# The whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer (a second build
# directory; the integration tests run that build's binary). Any finding, leaks included, fails
# the run: the master exits through main(), where LeakSanitizer checks; children _exit() and so
# skip the leak check, which is intended.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPREFORK_SANITIZE=ON -DPREFORK_WERROR=ON
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 600

# The request parser under libFuzzer (clang, ASan+UBSan) for a bounded time, from the seed
# corpus in the tree; new inputs go to a scratch directory. Any crash or broken invariant fails.
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPREFORK_FUZZ=ON -DPREFORK_WERROR=ON \
  -DPREFORK_BUILD_TESTS=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
cmake --build build-fuzz -j"$jobs" --target request_fuzzer proxy_protocol_fuzzer
fuzz_corpus=$(mktemp -d)
trap 'rm -rf "$fuzz_corpus"' EXIT
build-fuzz/tests/fuzz/request_fuzzer -max_total_time="${FUZZ_SECONDS:-60}" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/ \
  "$fuzz_corpus" tests/fuzz/corpus
mkdir -p "$fuzz_corpus/proxy"
build-fuzz/tests/fuzz/proxy_protocol_fuzzer -max_total_time="${FUZZ_SECONDS:-30}" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/ "$fuzz_corpus/proxy"
# Configuration loading and validation (what a reload runs inside the master): any TOML text
# and overrides give a Config or a ConfigError, nothing else. Seeds: tests/fuzz/config-corpus.
cmake --build build-fuzz -j"$jobs" --target config_fuzzer
mkdir -p "$fuzz_corpus/config"
build-fuzz/tests/fuzz/config_fuzzer -max_total_time="${FUZZ_SECONDS:-60}" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/ \
  -dict=tests/fuzz/config.dict "$fuzz_corpus/config" tests/fuzz/config-corpus

# The Debian package: build (once with its test suite, as a Debian build runs it: dh_auto_test,
# under make, with Debian's flags and no -Werror), lintian, install, run as the service user,
# logrotate, upgrade (a second build, without tests), purge (tests/packaging/test-deb.sh).
# Then the same package under a real systemd: minimal Debian 12 and 13 roots booted by podman,
# driven through systemctl (tests/packaging/test-systemd.sh). Debian 12's packages are the two
# test-deb.sh built; Debian 13's are built inside a Debian 13 root.
if [ "$(id -u)" -eq 0 ]; then
  tests/packaging/test-deb.sh --deb-dir build-debs
  wait "$systemd_roots" ||  # then the test builds what is missing itself
    { cat "$systemd_roots_log"; echo "run-all.sh: preparing the roots failed; the test retries"; }
  tests/packaging/test-systemd.sh --deb-dir build-debs bookworm trixie
else
  echo "run-all.sh: not root; skipping the Debian package tests" >&2
fi

# The container image (podman, offline, FROM scratch) built from build/'s binary, run as a
# non-root PID 1: serves, health check, graceful podman stop (tests/packaging/test-container.sh;
# it says which podman flags this machine class needs, and skips without podman).
if [ "$(id -u)" -eq 0 ]; then
  tests/packaging/test-container.sh build/prefork-httpd
else
  echo "run-all.sh: not root; skipping the container image test" >&2
fi

echo "run-all: tests, sanitizers, fuzzing, package and container checks done"
