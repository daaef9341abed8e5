#!/bin/bash
# Tests the Debian package under a real systemd, as an operator meets it on a minimal system:
# for each Debian release, a debootstrap --variant=minbase root (systemd added, nothing else)
# booted by podman with systemd as PID 1. Inside it, through systemctl and journalctl:
#   - apt-get install of version N starts the service: READY (active/running) and a STATUS line;
#   - systemctl reload with a good config succeeds; with a broken one the reload job fails,
#     the old config keeps serving, and `journalctl -p err` shows the reason;
#   - apt-get install of version N+1 upgrades in place (SIGUSR2) under steady load from
#     keep-alive and connection-per-request clients that do not retry: 0 failed requests, N+1
#     serving, systemd's MainPID a live master at every sample and the new master at the end;
#   - systemctl stop with a request in flight: it gets its whole answer, the service exits 0;
#   - socket activation: the socket unit started, the first connection starts the service;
#   - apt-get purge leaves no unit of ours running and nothing listening.
#
# usage: sudo tests/packaging/test-systemd.sh [--prepare] [--deb-dir DIR] [SUITE...]
#   SUITE          Debian releases to test (default: bookworm trixie)
#   --prepare      only build (or refresh) the cached roots, then exit (build roots only for
#                  releases other than this machine's): mostly downloads, so tests/run-all.sh
#                  runs it in the background while it compiles
#   --deb-dir DIR  packages built on this machine by test-deb.sh (version N, and N+rebuild1 as
#                  N+1), used for the suite this machine runs; other suites build their own
#                  inside a root of that release (nocheck), N and N+rebuild1.
# Roots come from the mirror this machine's apt uses and are cached under $CACHE
# (default /var/cache/prefork-httpd-tests; a cached root is refreshed after 7 days). Skips
# (exit 0, saying why) when not root or without podman or debootstrap. Uses port 8888 (the
# package's default): it must be free. Removes its containers and work roots, even on failure.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
readonly PORT=8888
readonly CONF=/etc/prefork-httpd/prefork-httpd.conf
readonly LOAD_SECONDS=14  # the upgrade starts after 3 s and has the rest to complete
cache=${CACHE:-/var/cache/prefork-httpd-tests}
started=$SECONDS
# shellcheck source=tests/packaging/podman-lib.sh
. "$src/tests/packaging/podman-lib.sh"

deb_dir=""
prepare=0
suites=()
while [ $# -gt 0 ]; do
  case $1 in
    --prepare) prepare=1; shift ;;
    --deb-dir) deb_dir=$(cd "${2:?--deb-dir needs a directory}" && pwd); shift 2 ;;
    -*) echo "test-systemd.sh: unknown option $1" >&2; exit 2 ;;
    *) suites+=("$1"); shift ;;
  esac
done
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)

if [ "$(id -u)" -ne 0 ]; then
  echo "test-systemd.sh: SKIP: needs root (debootstrap, rootful podman)"
  exit 0
fi
for tool in podman debootstrap curl python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "test-systemd.sh: SKIP: $tool is not installed (packaging/install-deps.sh installs it)"
    exit 0
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-systemd.XXXXXX")
name=""        # the running container
background=()  # pids of the commands this script runs in the background
cleanup() {
  local rc=$?
  set +e
  for pid in "${background[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  if [ -n "$name" ]; then
    if [ $rc -ne 0 ]; then
      echo "--- journal of prefork-httpd in $name:"
      podman exec "$name" journalctl -q --no-pager -n 60 -u prefork-httpd -u prefork-httpd.socket
    fi >&2
    podman rm -f -t 0 "$name" >/dev/null 2>&1
  fi
  rm -rf "$tmp"
  if [ $rc -eq 0 ]; then
    printf '\ntest-systemd.sh: PASS in %ds\n' $((SECONDS - started))
  else
    printf '\ntest-systemd.sh: FAILED (exit %d) after %ds\n' $rc $((SECONDS - started)) >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "  FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM HUP

# The Debian mirror this machine's apt uses (deb822 or one-line sources), so that the test
# fetches from wherever the machine is allowed to.
debian_mirror() {
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *//p'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p'; } |
    tr ' ' '\n' | grep -v -e security -e '^$' | head -n1
}
mirror=$(debian_mirror || true)
[ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources"
podman_flags=()
read -ra podman_flags <<<"$(podman_machine_flags)"
in_root() {  # in_root ROOT [PODMAN-OPTION...] -- COMMAND...: runs COMMAND in ROOT, not booted
  local root=$1; shift
  local opts=()
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  podman run --rm "${podman_flags[@]}" "${opts[@]}" -e DEBIAN_FRONTEND=noninteractive \
    --rootfs "$root" "$@"
}

# A minbase root of SUITE with systemd, refreshed weekly; prints its directory.
base_root() {
  local suite=$1
  local root=$cache/$suite-base
  local stamp="$suite $mirror minbase systemd,systemd-sysv,dbus"
  if [ -f "$root.stamp" ] && [ "$(cat "$root.stamp")" = "$stamp" ] &&
     [ -z "$(find "$root.stamp" -mtime +7)" ]; then
    echo "$root"; return
  fi
  rm -rf "$root" "$root.stamp" "$cache/$suite-build"
  mkdir -p "$cache"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus "$suite" "$root" "$mirror" \
    >"$tmp/debootstrap-$suite.log" 2>&1 ||
    { tail -n 30 "$tmp/debootstrap-$suite.log" >&2; die "debootstrap $suite failed"; }
  # Package lists, so that apt-get can resolve the package's dependencies in the test.
  in_root "$root" -- apt-get update -qq >&2 || die "apt-get update in the $suite root failed"
  echo "$stamp" >"$root.stamp"
  echo "$root"
}

# A copy of SUITE's root with the package's build dependencies (cached; refreshed with the
# base root or when debian/control changes); prints its directory.
build_root() {
  local suite=$1 base stamp
  local root=$cache/$suite-build
  base=$(base_root "$suite")
  stamp="$(cat "$base.stamp") $(sha256sum <"$src/packaging/debian/control" | cut -c1-16)"
  if ! [ -f "$root.stamp" ] || [ "$(cat "$root.stamp")" != "$stamp" ]; then
    rm -rf "$root" "$root.stamp"
    cp -a "$base" "$root"
    in_root "$root" -v "$src/packaging:/pkg:ro" -- sh -c 'apt-get update -qq &&
      apt-get install -y -qq --no-install-recommends build-essential >/dev/null &&
      apt-get build-dep -y -qq --build-profiles=nocheck /pkg >/dev/null' >&2 ||
      die "installing the build dependencies in the $suite root failed"
    echo "$stamp" >"$root.stamp"
  fi
  echo "$root"
}

# Builds version N and N+1 (+rebuild1) of the package for SUITE into DIR, in SUITE's build root.
build_debs() {
  local suite=$1 out=$2 root
  root=$(build_root "$suite")
  mkdir -p "$out"
  local revision
  for revision in "" rebuild1; do
    in_root "$root" -v "$src:/src:ro" -v "$out:/out" -e DEB_BUILD_OPTIONS=nocheck \
      -e DEB_BUILD_PROFILES=nocheck -- /src/packaging/build-deb.sh ${revision:+-r "$revision"} /out \
      >"$out/build$revision.log" 2>&1 ||
      { tail -n 40 "$out/build$revision.log" >&2; die "building the package in $suite failed"; }
  done
}

# --- inside the booted container ---------------------------------------------------------------
run() { podman exec "$name" "$@"; }
unit_prop() { run systemctl show -p "$1" --value prefork-httpd.service; }
answers() {  # answers URL: Hello, World! from the server, from this (the host's) network
  [ "$(curl -fsS --max-time 5 "$1" 2>/dev/null)" = "Hello, World!" ]
}
status_json() { curl -fsS --max-time 5 "http://127.0.0.1:$PORT/server-status?format=json"; }
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
apt_in() {  # apt_in ARGS...: apt-get in the container, no prompt; output in $tmp/apt.log
  run env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -y -q \
    -o Dpkg::Options::=--force-confold "$@" >"$tmp/apt.log" 2>&1 ||
    { tail -n 30 "$tmp/apt.log" >&2; die "apt-get $* failed"; }
}
nothing_listens() { ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

test_suite() {
  local suite=$1
  local debs=$tmp/debs-$suite
  step "$suite: packages N and N+1"
  if [ -n "$deb_dir" ] && [ "$suite" = "$host_suite" ]; then
    mkdir -p "$debs"
    cp "$deb_dir"/prefork-httpd_*.deb "$debs/"
    ok "built on this machine by test-deb.sh: $(cd "$debs" && echo *.deb)"
  else
    build_debs "$suite" "$debs"
    ok "built in a $suite root: $(cd "$debs" && echo *.deb)"
  fi
  local deb deb_n="" deb_next="" version_n version_next
  for deb in "$debs"/prefork-httpd_*.deb; do
    case $deb in *+rebuild1_*) deb_next=$deb ;; *) deb_n=$deb ;; esac
  done
  { [ -f "$deb_n" ] && [ -f "$deb_next" ]; } || die "no packages N and N+rebuild1 in $debs"
  version_n=$(dpkg-deb -f "$deb_n" Version)
  version_next=$(dpkg-deb -f "$deb_next" Version)

  step "$suite: boot a minbase root with systemd as PID 1 (podman --systemd=always)"
  local base root=$tmp/root-$suite
  base=$(base_root "$suite")
  cp -a "$base" "$root"
  # A container cannot load kernel modules: Debian 13's systemd-modules-load.service fails
  # there (Debian 12's skips itself), which would leave the system "degraded", not "running".
  ln -sf /dev/null "$root/etc/systemd/system/systemd-modules-load.service"
  nothing_listens || die "port $PORT is in use on this machine"
  name=prefork-systemd-$suite-$$
  podman run -d --name "$name" "${podman_flags[@]}" --privileged --systemd=always \
    -v "$debs:/debs:ro" --rootfs "$root" /sbin/init >"$tmp/run.out" 2>&1 ||
    { cat "$tmp/run.out" >&2; die "podman run failed"; }
  # systemctl can ask once PID 1 has its private socket; then it waits for the boot to end.
  wait_until 30 run test -S /run/systemd/private || die "systemd did not start in the container"
  local state
  state=$(run timeout 60 systemctl is-system-running --wait 2>&1) || true
  [ "$state" = running ] ||
    { run systemctl --failed --no-pager >&2 || true; die "is-system-running: $state"; }
  ok "systemd $(run systemctl --version | head -n1 | cut -d' ' -f2) is running (flags: ${podman_flags[*]} --privileged --systemd=always)"

  step "$suite: apt-get install prefork-httpd $version_n starts the service"
  apt_in install "/debs/$(basename "$deb_n")"
  [ "$(unit_prop ActiveState)/$(unit_prop SubState)" = active/running ] ||
    die "the service is $(unit_prop ActiveState)/$(unit_prop SubState), not active/running (READY)"
  local status_text
  status_text=$(unit_prop StatusText)
  case $status_text in *serving*) ;; *) die "StatusText is '$status_text'" ;; esac
  wait_until 10 answers "http://127.0.0.1:$PORT/" || die "no Hello, World! on 127.0.0.1:$PORT"
  ok "active/running (Type=notify: READY), StatusText \"$status_text\", answers on IPv4"
  if grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null; then
    answers "http://[::1]:$PORT/" || die "no Hello, World! on [::1]:$PORT"
    ok "answers on IPv6"
  fi
  [ "$(status_json | json_field version)" = "$version_n" ] ||
    die "/server-status does not report version $version_n"
  ok "/server-status reports version $version_n"

  step "$suite: systemctl reload, with a good and with a broken config"
  # workers = 3 shows that the new config serves; switches (?delay=) serve the stop test below.
  run sed -i -e 's/^#* *workers *=.*/workers = 3/' -e 's/^#* *switches *=.*/switches = true/' "$CONF"
  run grep -q '^workers = 3$' "$CONF" || die "could not set workers = 3 in $CONF"
  run grep -q '^switches = true$' "$CONF" || die "could not set switches = true in $CONF"
  run timeout 60 systemctl reload prefork-httpd || die "systemctl reload with a good config failed"
  wait_until 10 sh -c "[ \"\$(curl -fsS --max-time 5 'http://127.0.0.1:$PORT/server-status?format=json' |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)[\"workers\"]))')\" = 3 ]" ||
    die "the reloaded config (workers = 3) does not serve"
  ok "reload with workers = 3, switches = true: the job succeeds, 3 workers serve"
  local since
  since=$(run date '+%Y-%m-%d %H:%M:%S')
  run sh -c "echo 'keepalive_timeout = \"long\"' >>$CONF"
  if run timeout 60 systemctl reload prefork-httpd 2>"$tmp/reload.err"; then
    die "systemctl reload with a broken config succeeded"
  fi
  answers "http://127.0.0.1:$PORT/" || die "the server stopped answering after a failed reload"
  [ "$(unit_prop ActiveState)" = active ] || die "the service is not active after a failed reload"
  local errors
  errors=$(run journalctl -q --no-pager -p err -u prefork-httpd --since "$since")
  grep -q "prefork-httpd.conf:[0-9]" <<<"$errors" ||
    die "journalctl -p err -u prefork-httpd shows no error naming the file and line: $errors"
  ok "broken config: the reload job fails, the old config serves; journalctl -p err says:"
  sed 's/^/  | /' <<<"$errors"
  run sed -i '$d' "$CONF"
  run timeout 60 systemctl reload prefork-httpd || die "systemctl reload after the fix failed"
  ok "the fixed config reloads"

  step "$suite: apt-get install $version_next upgrades in place under load (no retries)"
  local mainpid_before
  mainpid_before=$(unit_prop MainPID)
  "$src/tests/deploy/load.py" 127.0.0.1 "$PORT" "$LOAD_SECONDS" 4 >"$tmp/load-ka.json" &
  background+=($!)
  "$src/tests/deploy/load.py" 127.0.0.1 "$PORT" "$LOAD_SECONDS" 2 0 close >"$tmp/load-close.json" &
  background+=($!)
  # systemd's MainPID, sampled while the load runs: every sample must be a live master. The
  # query and the look at /proc are two steps: a process found gone is a fault only if systemd
  # still names it afterwards (the old master may drain and exit between the two, once systemd
  # has moved on to the new one).
  run sh -c 'end=$(($(date +%s) + '"$LOAD_SECONDS"')); n=0
    main_pid() { systemctl show -p MainPID --value prefork-httpd.service; }
    live() { [ "$1" -gt 0 ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = prefork-httpd ] &&
             ! grep -q "^State:.*zombie" "/proc/$1/status" 2>/dev/null; }
    while [ "$(date +%s)" -lt "$end" ]; do
      p=$(main_pid); n=$((n + 1))
      if live "$p"; then echo "$p"
      elif [ "$(main_pid)" != "$p" ]; then echo "moved from $p during sample $n"
      else echo "BAD sample $n: MainPID=$p"; fi
    done' >"$tmp/mainpid.samples" &
  background+=($!)
  sleep 3  # steady load before the upgrade: a pause in the scenario, not a wait for an event
  apt_in install "/debs/$(basename "$deb_next")"
  grep -E '^(Unpacking|Setting up) prefork-httpd' "$tmp/apt.log" | sed 's/^/  | /'
  wait "${background[@]}"
  background=()
  local file failed=0
  for file in "$tmp/load-ka.json" "$tmp/load-close.json"; do
    echo "  load: $(cat "$file")"
    failed=$((failed + $(json_field failed <"$file")))
  done
  [ "$failed" -eq 0 ] || die "$failed requests failed across the upgrade"
  ! grep BAD "$tmp/mainpid.samples" || die "MainPID did not always name a live master"
  local mainpid_after
  mainpid_after=$(unit_prop MainPID)
  [ "$mainpid_after" != "$mainpid_before" ] || die "MainPID did not change: no upgrade happened"
  [ "$(status_json | json_field version)" = "$version_next" ] ||
    die "/server-status does not report version $version_next after the upgrade"
  [ "$(run readlink "/proc/$mainpid_after/exe")" = /usr/sbin/prefork-httpd ] ||
    die "MainPID $mainpid_after does not run /usr/sbin/prefork-httpd"
  [ "$(unit_prop ActiveState)/$(unit_prop SubState)" = active/running ] ||
    die "the service is not active/running after the upgrade"
  ok "0 failed requests; $version_next serves; MainPID $mainpid_before -> $mainpid_after, a live master in all $(wc -l <"$tmp/mainpid.samples") samples ($(grep -c moved "$tmp/mainpid.samples" || true) taken as it moved)"
  run journalctl -q --no-pager -u prefork-httpd --since "$since" >"$tmp/upgrade.journal"
  grep -E 'SIGUSR2|starting|hands over' "$tmp/upgrade.journal" | sed 's/^/  | /'
  # systemd can wait only for its own children; an "alien" main process gets SIGKILL at once
  # on stop (docs/upgrade.md, "Why a launcher").
  ! grep 'not our child' "$tmp/upgrade.journal" || die "systemd does not see the new master as its child"
  ok "systemd adopted the new master as its own child (no 'not our child' in the journal)"

  step "$suite: systemctl stop with a request in flight drains and exits 0"
  curl -fsS --max-time 30 "http://127.0.0.1:$PORT/?delay=3" >"$tmp/delayed.out" 2>&1 &
  background+=($!)
  sleep 1  # the request is in flight: a pause in the scenario, not a wait for an event
  run timeout 60 systemctl stop prefork-httpd || die "systemctl stop failed"
  wait "${background[@]}" || die "the request in flight failed: $(cat "$tmp/delayed.out")"
  background=()
  [ "$(unit_prop Result)" = success ] || die "Result=$(unit_prop Result) after the stop"
  [ "$(unit_prop ExecMainStatus)" = 0 ] || die "ExecMainStatus=$(unit_prop ExecMainStatus)"
  ok "the request in flight got its answer; Result=success, exit status 0"

  step "$suite: socket activation"
  run systemctl start prefork-httpd.socket
  [ "$(unit_prop ActiveState)" = inactive ] || die "the service started with its socket"
  answers "http://127.0.0.1:$PORT/" || die "the first connection did not start the service"
  [ "$(unit_prop ActiveState)" = active ] || die "the service is not active after a connection"
  ok "prefork-httpd.socket listens; the first connection started the service, which answered"

  step "$suite: apt-get purge leaves nothing of ours running or listening"
  apt_in purge prefork-httpd
  local units
  units=$(run systemctl list-units --all --plain --no-legend 'prefork-httpd*' |
    awk '$3 != "inactive" || $2 != "not-found"')
  [ -z "$units" ] || die "units of ours are left: $units"
  nothing_listens || die "something still listens on :$PORT after the purge"
  ok "no unit of ours is loaded or active; nothing listens on :$PORT"

  podman rm -f -t 5 "$name" >/dev/null
  name=""
  rm -rf "$root"
}

host_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [ $prepare = 1 ]; then
  for suite in "${suites[@]}"; do
    step "$suite: prepare the cached roots"
    root=$(base_root "$suite")
    ok "$root"
    # The host's release can use test-deb.sh's packages (--deb-dir): no build root for it.
    if [ "$suite" != "$host_suite" ]; then
      root=$(build_root "$suite")
      ok "$root"
    fi
  done
  exit 0
fi
for suite in "${suites[@]}"; do
  test_suite "$suite"
done
