#!/usr/bin/env bash
# The whole benchmark in one command (as root, on Debian 12 or newer): installs what it needs,
# builds prefork-httpd Release, measures it against nginx and busybox httpd inside a private
# network namespace, and rewrites docs/benchmarks.md and docs/benchmarks.png.
#
#   sudo bench/run.sh
#
# Environment: ROUNDS (3), DURATION (10, seconds per wrk run), IDLE_CONNS (10000),
# BUILD_DIR (<repo>/build-bench), ONLY (load,fork,memory,micro,profile), NO_NETNS=1,
# SCENARIOS (load scenarios, comma-separated: keep-alive,close,pipelined,perconn-close; default all).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
RESULTS="$BENCH/results"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
IDLE_CONNS=${IDLE_CONNS:-10000}
ONLY=${ONLY:-load,fork,memory,micro,profile}
SCENARIOS=${SCENARIOS:-}
export ROUNDS DURATION IDLE_CONNS BUILD_DIR ONLY SCENARIOS

say() { printf '[run.sh] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

install_deps() {
  # command or file -> Debian package
  local -A need=(
    [wrk]=wrk [nginx]=nginx-light [busybox]=busybox [gnuplot]=gnuplot-nox
    [valgrind]=valgrind [strace]=strace [curl]=curl [python3]=python3 [ip]=iproute2
    [ss]=iproute2 [taskset]=util-linux [unshare]=util-linux [cmake]=cmake [make]=make
    [g++]=g++ [pkg-config]=pkg-config
  )
  local missing=() cmd
  for cmd in "${!need[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
  done
  [ -f /usr/include/benchmark/benchmark.h ] || missing+=(libbenchmark-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    say "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

configure() {
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DPREFORK_BUILD_TESTS=OFF \
    >"$BUILD_DIR.cmake.log" 2>&1
}

build() {
  mkdir -p "$BUILD_DIR"
  if ! configure; then
    say "configure failed (see $BUILD_DIR.cmake.log); installing the project's build deps"
    "$ROOT/packaging/install-deps.sh"
    configure || die "cmake configure failed: $BUILD_DIR.cmake.log"
  fi
  say "building Release in $BUILD_DIR"
  make -C "$BUILD_DIR" -j"$(nproc)" prefork-httpd prefork_worker >"$BUILD_DIR.make.log" 2>&1 ||
    die "build failed: $BUILD_DIR.make.log"

  # The micro-benchmarks link the Release static libraries directly (independent of the main
  # CMakeLists.txt); include paths and definitions come from the build's compile_commands.json.
  local incs libs llhttp
  incs=$(python3 - "$BUILD_DIR/compile_commands.json" <<'EOF'
import json, shlex, sys
for e in json.load(open(sys.argv[1])):
    if e["file"].endswith("worker/request_parser.cpp"):
        a = shlex.split(e["command"]) if "command" in e else e["arguments"]
        out = []
        for i, x in enumerate(a):
            if x in ("-I", "-isystem", "-D"): out += [x, a[i + 1]]
            elif x.startswith(("-I", "-isystem", "-D")): out.append(x)
        print(" ".join(shlex.quote(x) for x in out))
EOF
)
  llhttp=$(find "$BUILD_DIR" -name 'libllhttp*.a' | head -n1)
  [ -n "$llhttp" ] || llhttp=$(pkg-config --libs libllhttp)
  libs="$BUILD_DIR/worker/libprefork_worker.a $BUILD_DIR/common/libprefork_common.a"
  libs="$libs $llhttp"
  # shellcheck disable=SC2086
  g++ -std=c++20 -O2 -DNDEBUG $incs "$BENCH/micro_parse.cpp" $libs -lbenchmark -lpthread \
    -o "$BUILD_DIR/micro_parse" 2>"$BUILD_DIR.micro.log" ||
  g++ -std=c++20 -O2 -DNDEBUG $incs "$BENCH/micro_parse.cpp" $libs \
    $(pkg-config --libs spdlog fmt 2>/dev/null) -lbenchmark -lpthread \
    -o "$BUILD_DIR/micro_parse" 2>"$BUILD_DIR.micro.log" || die "micro_parse: $BUILD_DIR.micro.log"
  g++ -std=c++20 -O2 "$BENCH/fork_limit.cpp" -o "$BUILD_DIR/fork_limit"
  build_fork_limit_image
}

# fork_limit linked exactly as prefork-httpd is (CMake's own link line for it, main.cpp.o
# replaced, our static libraries taken whole, no shared library dropped as unneeded): the fork
# micro-benchmark of the same binary's image. bench.py runs it with the master's anonymous memory.
build_fork_limit_image() {
  local dir="$BUILD_DIR/master" link
  g++ -std=c++20 -O2 -c "$BENCH/fork_limit.cpp" -o "$BUILD_DIR/fork_limit.o"
  link=$(cat "$dir/CMakeFiles/prefork-httpd.dir/link.txt")
  case "$link" in *'"CMakeFiles/prefork-httpd.dir/main.cpp.o"'*) ;; *) die "unexpected link line: $link" ;; esac
  link=${link/\"CMakeFiles\/prefork-httpd.dir\/main.cpp.o\"/\"$BUILD_DIR\/fork_limit.o\" -Wl,--no-as-needed -Wl,--whole-archive}
  link=${link/-o ..\/prefork-httpd/-o \"$BUILD_DIR\/fork_limit_image\"}
  (cd "$dir" && eval "$link -Wl,--no-whole-archive") >"$BUILD_DIR.fork_image.log" 2>&1 ||
    die "fork_limit_image: $BUILD_DIR.fork_image.log"
}

facts() {
  python3 - <<EOF
import json, os, platform, subprocess
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip() or \
        subprocess.run(c, shell=True, capture_output=True, text=True).stderr.strip()
    except Exception as e: return str(e)
mem = [l for l in open("/proc/meminfo") if l.startswith("MemTotal")][0].split()[1]
f = {
 "CPU": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip() + f", {os.cpu_count()} logical CPUs"
        + (", virtualized (" + sh("grep -o 'hypervisor' /proc/cpuinfo | head -n1") + " flag)" if sh("grep -c hypervisor /proc/cpuinfo") not in ("", "0") else ""),
 "memory": f"{int(mem) / 1048576:.1f} GiB",
 "kernel": platform.release(),
 "OS": "Debian " + sh("cat /etc/debian_version"),
 "compiler": sh("g++ --version | head -n1"),
 "nginx": sh("nginx -v 2>&1").replace("nginx version: ", ""),
 "wrk": sh("wrk -v 2>&1 | head -n1"),
 "busybox": sh("busybox 2>&1 | head -n1"),
 "prefork-httpd": sh("cd '$ROOT' && git rev-parse --short HEAD") + (" + uncommitted changes" if sh("cd '$ROOT' && git status --porcelain -- common worker master CMakeLists.txt") else "") + ", CMAKE_BUILD_TYPE=Release",
 "network": "private network namespace, loopback" if "${NETNS:-}" == "1" else "host loopback (no private netns)",
}
print(json.dumps(f))
EOF
}

if [ "${1:-}" != "--inside" ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root (installs packages, pins CPUs, creates a network namespace)"
  [ "$(nproc)" -ge 2 ] || die "needs at least 2 CPUs (server on CPU 1, wrk on CPU 0)"
  start=$(date +%s)
  install_deps
  build
  if [ "${NO_NETNS:-0}" != 1 ] && unshare --net true 2>/dev/null; then
    NETNS=1 START="$start" exec unshare --net -- "$0" --inside
  fi
  say "no private network namespace: using the host's loopback"
  NETNS=0 START="$start" exec "$0" --inside
fi

# ---- inside the namespace
if [ "${NETNS:-0}" = 1 ]; then
  ip link set lo up
  # Per-namespace TCP settings: room for ~100k connections in 10 s of connection-per-request.
  sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1 \
    net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096 || true
fi
ulimit -n "$(ulimit -Hn)"
mkdir -p "$RESULTS"
versions=$(printf '{"nginx": "%s"}' "$(nginx -v 2>&1 | sed 's/.*nginx\///')")
say "measuring: rounds=$ROUNDS duration=${DURATION}s idle_conns=$IDLE_CONNS only=$ONLY"
python3 "$BENCH/bench.py" --binary "$BUILD_DIR/prefork-httpd" \
  --fork-limit "$BUILD_DIR/fork_limit" --fork-limit-image "$BUILD_DIR/fork_limit_image" --micro "$BUILD_DIR/micro_parse" \
  --results-dir "$RESULTS" --rounds "$ROUNDS" --duration "$DURATION" \
  --idle-conns "$IDLE_CONNS" --only "$ONLY" --scenarios "$SCENARIOS" --versions "$versions"
facts >"$RESULTS/facts.json"
python3 "$BENCH/report.py" "$RESULTS/results.json" "$ROOT/docs" "bench/run.sh" "$RESULTS/facts.json"
say "done in $(( $(date +%s) - ${START:-$(date +%s)} )) s"
