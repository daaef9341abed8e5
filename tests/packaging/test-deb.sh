#!/bin/bash
# Tests the Debian package end to end on the running system, without needing a running systemd:
# build, lintian, install, maintainer scripts that upgrade a running service in place (not a
# restart) and stop the socket unit on removal, unit verification and security score, the
# installed binary serving as the service user over IPv4 and IPv6, logrotate, the binary as root
# reloading (a broken and a good config) and upgrading the server running as the service user
# and waiting for the outcome, an upgrade that keeps an edited conffile, and a purge that leaves
# nothing but the service user.
#
# usage: sudo tests/packaging/test-deb.sh [--deb-dir DIR]
#   --deb-dir DIR  build the packages into DIR and keep them (default: a temporary directory)
# Environment: DEB_BUILD_OPTIONS / DEB_BUILD_PROFILES for the first build. Without nocheck
# there, that build runs the test suite (dh_auto_test) and must show it ran; the second build
# (the upgrade) is always nocheck.
#
# It installs into the real system, so it needs root and a disposable machine or container
# (CI). It refuses to run when prefork-httpd is already installed or port 8888 is taken, and it
# always purges the package and stops what it started, even when a check fails.
set -euo pipefail

readonly PKG=prefork-httpd
readonly USER_NAME=prefork-httpd
readonly CONF=/etc/prefork-httpd/prefork-httpd.conf
readonly LOGDIR=/var/log/prefork-httpd
readonly RUNDIR=/run/prefork-httpd
readonly PORT=8888

src=$(cd "$(dirname "$0")/../.." && pwd)
deb_dir=""
while [ $# -gt 0 ]; do
  case $1 in
    --deb-dir) deb_dir=${2:?--deb-dir needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "test-deb.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
started=$SECONDS
step() { printf '\n=== [%3ds] %s\n' $((SECONDS - started)) "$*"; }
ok() { printf '  ok: %s\n' "$*"; }
die() { printf '  FAIL: %s\n' "$*" >&2; exit 1; }
check() {  # check DESCRIPTION COMMAND...: runs COMMAND, fails the test when it fails
  local what=$1; shift
  if "$@"; then ok "$what"; else die "$what"; fi
}

apt_install() {  # apt_install DEB: installs a local package without any prompt
  DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q \
    -o DPkg::Lock::Timeout=120 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "$1" </dev/null
}

server_pid=""   # the runuser process of the server we started (it waits for the server)
master_pid=""   # the server's master process
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-deb.XXXXXX")
made_rundir=0
installed_by_us=0  # only then does the cleanup purge

pkg_present() {  # whether dpkg has the package in any state but "not installed"
  local st
  st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null | cut -c2)
  [ -n "$st" ] && [ "$st" != n ]
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
    kill -TERM "$master_pid"
    for _ in $(seq 50); do kill -0 "$master_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$master_pid" 2>/dev/null
  fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null
  fi
  [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null
  if [ "$installed_by_us" = 1 ] && pkg_present; then
    echo "cleanup: purging $PKG"
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get purge -y -q -o DPkg::Lock::Timeout=120 \
      "$PKG" </dev/null >/dev/null
  fi
  [ "$made_rundir" = 1 ] && rm -rf "$RUNDIR"
  rm -rf "$tmp"
  if [ $rc -eq 0 ]; then
    printf '\ntest-deb.sh: PASS in %ds\n' $((SECONDS - started))
  else
    printf '\ntest-deb.sh: FAILED (exit %d) after %ds\n' $rc $((SECONDS - started)) >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "  FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM HUP

# Starts the installed server as the service user with the installed config and extra args;
# sets server_pid and master_pid and waits until it answers on 127.0.0.1:PORT.
start_server() {
  runuser -u "$USER_NAME" -- /usr/sbin/prefork-httpd -c "$CONF" "$@" \
    >"$tmp/server.out" 2>&1 </dev/null &
  server_pid=$!

  for _ in $(seq 100); do  # up to ~20 s
    if [ -z "$master_pid" ]; then
      master_pid=$(awk '{print $1}' "/proc/$server_pid/task/$server_pid/children" 2>/dev/null)
    fi
    if [ -n "$master_pid" ] &&
       curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      cat "$tmp/server.out" >&2
      die "the server exited at start"
    fi
    sleep 0.2
  done
  cat "$tmp/server.out" >&2
  die "the server did not answer on port $PORT within 20 s"
}

# Stops the server with SIGTERM to its master (graceful) and checks it exits 0 in time.
stop_server() {
  kill -TERM "$master_pid"
  local rc
  for _ in $(seq 200); do  # up to 40 s: graceful_timeout (30 s) plus a margin
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    cat "$tmp/server.out" >&2
    die "the server did not stop within 40 s of SIGTERM"
  fi
  rc=0; wait "$server_pid" || rc=$?
  server_pid=""; master_pid=""
  [ $rc -eq 0 ] || { cat "$tmp/server.out" >&2; die "the server exited with status $rc on SIGTERM"; }
  ok "SIGTERM stopped the server with exit status 0"
  for _ in $(seq 25); do pgrep -u "$USER_NAME" >/dev/null || break; sleep 0.2; done
  if pgrep -u "$USER_NAME" >/dev/null; then
    ps -o pid,ppid,stat,args -u "$USER_NAME" >&2
    die "processes of $USER_NAME are left after the stop"
  fi
  ok "no process of $USER_NAME is left"
}

# Filesystem entries that could belong to the package, to compare before and after. Only paths
# naming prefork-httpd count: other software may be installed on the machine meanwhile (CI runners
# and shared machines), and everything this package creates carries its name.
snapshot() {
  {
    find /etc /usr /var /opt /srv /lib -xdev \
      \( -path /var/cache -o -path /var/lib/apt -o -path /var/tmp -o -path /var/log/journal \
         -o -path "$src" -o -path "$tmp" -o -path "${deb_dir:-$tmp}" \) -prune -o -print 2>/dev/null
    find /run -maxdepth 3 2>/dev/null
  } | { grep -F prefork || true; } | sort -u
}

# ---------------------------------------------------------------------------------------------
step "preconditions"
[ "$(id -u)" -eq 0 ] || die "run as root: the package is installed into this system"
for tool in dpkg-buildpackage lintian systemd-analyze logrotate curl runuser pgrep strace; do
  command -v "$tool" >/dev/null || die "$tool is missing: run packaging/install-deps.sh"
done
if pkg_present; then
  die "$PKG is already installed; this test installs and purges it: use a disposable system"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "port $PORT is already in use"
fi
have_ipv6=0
grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null && have_ipv6=1
ok "root, tools present, $PKG not installed, port $PORT free, IPv6 loopback: $have_ipv6"
[ -n "$deb_dir" ] || deb_dir=$tmp/debs
mkdir -p "$deb_dir"
deb_dir=$(cd "$deb_dir" && pwd)
snapshot >"$tmp/before.list"
if [ -s "$tmp/before.list" ]; then
  echo "  note: already present before the install (ignored by the purge check):"
  sed 's/^/    /' "$tmp/before.list"
fi

# ---------------------------------------------------------------------------------------------
step "build the package (packaging/build-deb.sh)"
rm -f "$deb_dir"/prefork-httpd_*.deb "$deb_dir"/prefork-httpd-dbgsym_*.deb "$deb_dir"/*.log
# Up to 40 minutes: the build and, unless nocheck, the whole test suite on 2 cores.
timeout 2400 "$src/packaging/build-deb.sh" "$deb_dir" >"$deb_dir/build.log" 2>&1 || {
  grep -E -A 30 '^The following tests FAILED' "$deb_dir/build.log" >&2 || true
  tail -n 40 "$deb_dir/build.log" >&2
  die "build-deb.sh failed (whole log: $deb_dir/build.log, kept with --deb-dir)"
}
deb=$(ls "$deb_dir"/prefork-httpd_*.deb)
[ "$(echo "$deb" | wc -l)" -eq 1 ] || die "expected one package in $deb_dir, got: $deb"
version=$(dpkg-deb -f "$deb" Version)
ok "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
if grep -qE '[0-9]+% tests passed' "$deb_dir/build.log"; then
  ok "dh_auto_test: $(grep -E '[0-9]+% tests passed' "$deb_dir/build.log" | tail -n1)"
else
  case " ${DEB_BUILD_OPTIONS:-} ${DEB_BUILD_PROFILES:-} " in
    *" nocheck "*) echo "  note: the test suite did not run in dh_auto_test (nocheck)" ;;
    *) die "the test suite did not run in dh_auto_test, and nocheck was not asked for" ;;
  esac
fi

# ---------------------------------------------------------------------------------------------
step "lintian --fail-on error,warning"
lintian_rc=0
timeout 300 lintian --fail-on error,warning --display-info "$deb" >"$tmp/lintian.out" 2>&1 ||
  lintian_rc=$?
grep -v '^running with root privileges' "$tmp/lintian.out" | sed 's/^/  | /'
[ $lintian_rc -eq 0 ] || die "lintian found errors or warnings (exit $lintian_rc)"
ok "lintian: no error, no warning"

# ---------------------------------------------------------------------------------------------
step "apt-get install $(basename "$deb")"
installed_by_us=1
apt_install "$deb" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; die "apt-get install failed"; }
grep -E '^(Setting up|Unpacking|Creating|Created)' "$tmp/install.log" | sed 's/^/  | /' || true
check "dpkg reports $PKG $version installed" \
  test "$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$PKG")" = "ii  $version"
for f in /usr/sbin/prefork-httpd "$CONF" /etc/logrotate.d/prefork-httpd \
         /usr/lib/sysusers.d/prefork-httpd.conf /usr/lib/tmpfiles.d/prefork-httpd.conf \
         /usr/share/doc/prefork-httpd/copyright /usr/share/doc/prefork-httpd/README.md \
         /usr/share/doc/prefork-httpd/examples/prefork-httpd.conf; do
  [ -e "$f" ] || [ -e "$f.gz" ] || die "missing: $f"
done
ok "binary, config, logrotate, sysusers, tmpfiles, docs and examples are installed"
unitdir=$(dirname "$(dpkg -L "$PKG" | grep '/systemd/system/prefork-httpd.service$')")
[ -f "$unitdir/prefork-httpd.service" ] && [ -f "$unitdir/prefork-httpd.socket" ] ||
  die "the units are not installed"
ok "units installed in $unitdir"
check "man prefork-httpd finds prefork-httpd(8)" sh -c 'man -w 8 prefork-httpd | grep -q man8/prefork-httpd.8'
check "the config is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' $PKG | grep -q ' $CONF '"
postinst=/var/lib/dpkg/info/$PKG.postinst
check "postinst runs systemd-sysusers and systemd-tmpfiles" \
  sh -c "grep -q 'systemd-sysusers' $postinst && grep -q 'systemd-tmpfiles' $postinst"
# Package upgrades upgrade a running service in place (SIGUSR2 through the binary) instead of
# restarting it; the socket unit is stopped on removal. Without a running systemd these are
# checked as the scripts' text (the binary's side is run for real further down).
maint=/var/lib/dpkg/info/$PKG
code_of() { grep -v '^[[:space:]]*#' "$1" 2>/dev/null || true; }  # a script minus its comments
upgrades_in_place() {
  code_of "$maint.postinst" | grep -q '^[[:space:]]*/usr/sbin/prefork-httpd --signal upgrade --pid "$mainpid"'
}
only_starts() {
  code_of "$maint.postinst" | grep -q "deb-systemd-invoke start 'prefork-httpd.service'" &&
    ! code_of "$maint.postinst" | grep -Eq 'deb-systemd-invoke +(restart|try-restart)|_dh_action'
}
stops_only_on_remove() {  # no preinst stop; every block of the prerm is for "remove"
  ! code_of "$maint.preinst" | grep -q 'deb-systemd-invoke' &&
    [ "$(code_of "$maint.prerm" | grep -c 'deb-systemd-invoke stop')" = 2 ] &&
    ! code_of "$maint.prerm" | grep '^if ' | grep -vq '"$1" = "\?remove"\?'
}
stops_socket_first() {
  awk '/deb-systemd-invoke stop prefork-httpd.socket/ {s = NR}
       /deb-systemd-invoke stop .prefork-httpd.service./ {v = NR}
       END {exit !(s && v && s < v)}' "$maint.prerm"
}
purge_disables_both() {
  grep -q "deb-systemd-helper purge 'prefork-httpd.service'" "$maint.postrm" &&
    grep -q "deb-systemd-helper purge 'prefork-httpd.socket'" "$maint.postrm"
}
check "postinst upgrades a running service in place (prefork-httpd --signal upgrade --pid MainPID)" \
  upgrades_in_place
check "postinst only starts the service (a stopped one), never restarts it" only_starts
check "nothing stops the service on upgrade (no preinst; prerm acts on remove only)" \
  stops_only_on_remove
check "prerm stops the socket unit on removal, before the service" stops_socket_first
check "postrm disables both units on purge (deb-systemd-helper purge)" purge_disables_both
pw=$(getent passwd "$USER_NAME") || die "user $USER_NAME was not created"
check "user $USER_NAME: system uid, no home, no login shell ($pw)" \
  sh -c "echo '$pw' | awk -F: '\$3 < 1000 && \$6 == \"/nonexistent\" && \$7 ~ /nologin\$/ {ok=1} END {exit !ok}'"
check "group $USER_NAME exists" sh -c "getent group $USER_NAME >/dev/null"
check "$LOGDIR is $USER_NAME:adm, mode 2750 ($(stat -c '%U:%G %a' "$LOGDIR" 2>/dev/null))" \
  test "$(stat -c '%U:%G %a' "$LOGDIR" 2>/dev/null)" = "$USER_NAME:adm 2750"
check "the service is enabled (multi-user.target.wants)" \
  test -L /etc/systemd/system/multi-user.target.wants/prefork-httpd.service
check "the socket unit is not enabled" test ! -e /etc/systemd/system/sockets.target.wants/prefork-httpd.socket

# ---------------------------------------------------------------------------------------------
step "systemd-analyze verify / security on the installed units"
verify_out=$(timeout 60 systemd-analyze verify "$unitdir/prefork-httpd.service" \
               "$unitdir/prefork-httpd.socket" 2>&1) || die "systemd-analyze verify failed: $verify_out"
[ -z "$verify_out" ] || { echo "$verify_out" | sed 's/^/  | /'; die "systemd-analyze verify printed something"; }
ok "systemd-analyze verify: no output"
timeout 60 systemd-analyze security --offline=true --threshold=15 \
  "$unitdir/prefork-httpd.service" >"$tmp/security.out" 2>&1 || security_rc=$?
grep -E '^✗' "$tmp/security.out" | sed 's/^/  | /' || true
score=$(sed -n 's/.*Overall exposure level for prefork-httpd.service: \([0-9.]*\).*/\1/p' "$tmp/security.out")
[ -n "$score" ] || { cat "$tmp/security.out" >&2; die "no security score"; }
[ "${security_rc:-0}" -eq 0 ] || die "exposure $score is above 1.5"
ok "systemd-analyze security --offline=true: exposure $score (limit 1.5)"

# ---------------------------------------------------------------------------------------------
step "prefork-httpd -t on the installed config"
check "prefork-httpd -t accepts $CONF" /usr/sbin/prefork-httpd -t -c "$CONF"
sed -E 's/^#([a-z_]+ = )/\1/' "$CONF" >"$tmp/all-keys.conf"
nkeys=$(grep -cE '^[a-z_]+ = ' "$tmp/all-keys.conf")
check "prefork-httpd -t accepts the config with all $nkeys documented defaults uncommented" \
  /usr/sbin/prefork-httpd -t -c "$tmp/all-keys.conf"
# Every key the code knows is documented in the config file and the man page.
code_keys=$(grep -hoE '^\s*\{"[a-z_]+",\s*(\[\]|$)' "$src/common/config.cpp" | grep -oE '[a-z_]+' | sort -u)
if [ -n "$code_keys" ]; then
  man_text=$(zcat /usr/share/man/man8/prefork-httpd.8.gz)
  for key in $code_keys; do
    grep -qE "^#?$key = " "$CONF" || die "key '$key' (common/config.cpp) is not documented in etc/prefork-httpd.conf"
    grep -qE "^\.BR $key " <<<"$man_text" || die "key '$key' (common/config.cpp) is not documented in prefork-httpd(8)"
  done
  ok "all $(echo "$code_keys" | wc -l) keys of common/config.cpp are in the config file and the man page"
else
  echo "  note: no keys found in common/config.cpp; skipped the documentation check"
fi

# ---------------------------------------------------------------------------------------------
step "the installed binary as $USER_NAME with the installed config answers on :$PORT"
start_server
[ "$(stat -c %U "/proc/$master_pid")" = "$USER_NAME" ] || die "the master does not run as $USER_NAME"
ok "master pid $master_pid runs as $USER_NAME"
body=$(curl -sS -4 --max-time 5 "http://127.0.0.1:$PORT/")
check "IPv4 http://127.0.0.1:$PORT/ -> '$body'" test "$body" = "Hello, World!"
if [ $have_ipv6 = 1 ]; then
  body=$(curl -sS -6 -g --max-time 5 "http://[::1]:$PORT/")
  check "IPv6 http://[::1]:$PORT/ -> '$body'" test "$body" = "Hello, World!"
else
  echo "  SKIP: IPv6: this kernel has no ::1 loopback"
fi
headers=$(curl -sS -4 -I --max-time 5 "http://127.0.0.1:$PORT/")
check "HEAD: 200 with Content-Length: 13" \
  sh -c "printf '%s' \"\$1\" | grep -q '^HTTP/1.1 200' && printf '%s' \"\$1\" | grep -qi '^Content-Length: 13'" _ "$headers"
stop_server

# ---------------------------------------------------------------------------------------------
step "every system call the server makes passes the unit's SystemCallFilter (strace)"
# Without a running systemd the sandbox cannot be applied, so check it the other way round: run
# the server through start, requests, USR1, HUP, TTIN, TTOU and a graceful stop under strace,
# and compare the calls it made with what the installed unit allows.
expand_syscalls() {  # expand_syscalls NAME...: syscall names, groups (@...) expanded
  local item
  for item in "$@"; do
    case $item in
      @*) systemd-analyze syscall-filter "$item" 2>/dev/null | awk 'NR > 1 && $1 !~ /^#/ {print $1}' |
            while read -r sub; do expand_syscalls "$sub"; done ;;
      *) echo "$item" ;;
    esac
  done
}
allow=() deny=()
while IFS= read -r value; do
  case $value in
    "~"*) read -ra items <<<"${value#\~}"; deny+=("${items[@]}") ;;
    *) read -ra items <<<"$value"; allow+=("${items[@]}") ;;
  esac
done < <(sed -n 's/^SystemCallFilter=//p' "$unitdir/prefork-httpd.service")
[ ${#allow[@]} -gt 0 ] || die "no SystemCallFilter= allow list in the unit"
expand_syscalls "${allow[@]}" | sort -u >"$tmp/allowed.txt"
expand_syscalls "${deny[@]}" | sort -u >"$tmp/denied.txt"
comm -23 "$tmp/allowed.txt" "$tmp/denied.txt" >"$tmp/effective.txt"
mkdir "$tmp/strace"
strace -f -ff -qq -o "$tmp/strace/t" -u "$USER_NAME" \
  /usr/sbin/prefork-httpd -c "$CONF" -w 2 >"$tmp/strace.out" 2>&1 </dev/null &
strace_pid=$!
for _ in $(seq 100); do
  curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/" && break
  kill -0 "$strace_pid" 2>/dev/null || break
  sleep 0.2
done
# strace forks short-lived children of its own at start (its ptrace feature checks), so the
# server is found only once it answers: then it is strace's one child.
traced=$(awk '{print $1}' "/proc/$strace_pid/task/$strace_pid/children" 2>/dev/null || true)
[ -n "$traced" ] && [ "$(cat "/proc/$traced/comm" 2>/dev/null)" = prefork-httpd ] ||
  { cat "$tmp/strace.out" >&2; die "the server did not start under strace"; }
curl -s -o /dev/null --max-time 5 -g "http://[::1]:$PORT/" || true
curl -s -o /dev/null --max-time 5 -X POST -d x "http://127.0.0.1:$PORT/" || true
for sig in USR1 HUP TTIN TTOU; do
  kill -s "$sig" "$traced"; sleep 0.7
  curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/" || true
done
kill -TERM "$traced"
for _ in $(seq 200); do kill -0 "$strace_pid" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$strace_pid" 2>/dev/null; then
  kill -KILL "$traced" "$strace_pid" 2>/dev/null; wait "$strace_pid" || true
  die "the server under strace did not stop within 40 s of SIGTERM"
fi
wait "$strace_pid" || true
# In the first process, the calls before the server's execve are strace's own (-u switching
# users), not the server's; its children (workers) start after it.
first=$(find "$tmp/strace" -name 't.*' | sed 's/.*\.//' | sort -n | head -n1)
for f in "$tmp"/strace/t.*; do
  if [ "$f" = "$tmp/strace/t.$first" ]; then sed -n '/^execve(/,$p' "$f"; else cat "$f"; fi
done | sed -n 's/^\([a-z_0-9]*\)(.*/\1/p' | sort -u >"$tmp/used.txt"
[ -s "$tmp/used.txt" ] || die "strace recorded no system call"
blocked=$(comm -23 "$tmp/used.txt" "$tmp/effective.txt" | grep -vx execve || true)
[ -z "$blocked" ] || die "system calls the unit's SystemCallFilter would refuse (EPERM): $blocked"
ok "$(wc -l <"$tmp/used.txt") distinct system calls over $(ls "$tmp"/strace | wc -l) processes, all allowed"

# ---------------------------------------------------------------------------------------------
step "logrotate -f /etc/logrotate.d/prefork-httpd: rotation and reopen (SIGUSR1)"
# An operator's edit of the conffile (kept by the upgrade below): log to a file.
sed -i "s|^#error_log = .*|error_log = \"$LOGDIR/error.log\"|" "$CONF"
grep -q "^error_log = \"$LOGDIR/error.log\"" "$CONF" || die "could not edit $CONF"
ok "edited $CONF: error_log = \"$LOGDIR/error.log\""
extra=(-s "access_log=$LOGDIR/access.log" -s "pidfile=$RUNDIR/prefork-httpd.pid")
logs=(error.log access.log)
if [ ! -d "$RUNDIR" ]; then  # under systemd, RuntimeDirectory= makes it
  install -d -o "$USER_NAME" -g "$USER_NAME" -m 0755 "$RUNDIR"; made_rundir=1
fi
start_server "${extra[@]}"
for _ in $(seq 25); do [ -s "$RUNDIR/prefork-httpd.pid" ] && break; sleep 0.2; done
check "the server wrote its pidfile" test "$(cat "$RUNDIR/prefork-httpd.pid" 2>/dev/null)" = "$master_pid"
for _ in 1 2 3; do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/before-rotation"; done
for log in "${logs[@]}"; do
  for _ in $(seq 25); do [ -s "$LOGDIR/$log" ] && break; sleep 0.2; done
done
for log in "${logs[@]}"; do
  [ -s "$LOGDIR/$log" ] || die "$LOGDIR/$log is empty before the rotation"
done
ok "the server writes ${logs[*]} in $LOGDIR"
timeout 60 logrotate -v -f -s "$tmp/logrotate.state" /etc/logrotate.d/prefork-httpd \
  >"$tmp/logrotate.out" 2>&1 || { cat "$tmp/logrotate.out" >&2; die "logrotate failed"; }
grep -q 'running postrotate script' "$tmp/logrotate.out" || die "logrotate did not run postrotate"
for log in "${logs[@]}"; do
  [ -s "$LOGDIR/$log.1" ] || die "$LOGDIR/$log.1 (the rotated log) is missing or empty"
  [ "$(stat -c '%U:%G %a' "$LOGDIR/$log")" = "$USER_NAME:adm 640" ] ||
    die "new $LOGDIR/$log is $(stat -c '%U:%G %a' "$LOGDIR/$log"), expected $USER_NAME:adm 640"
done
ok "rotated: $(cd "$LOGDIR" && ls | tr '\n' ' ')"
sleep 1  # let the master and workers act on SIGUSR1
declare -A rotated_size
for log in "${logs[@]}"; do rotated_size[$log]=$(stat -c %s "$LOGDIR/$log.1"); done
for _ in 1 2 3; do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/after-rotation"; done
stop_server  # the master logs its stop: to the new file if it reopened it
for log in "${logs[@]}"; do
  [ -s "$LOGDIR/$log" ] || die "nothing was written to the new $LOGDIR/$log: SIGUSR1 did not reopen it"
  [ "$(stat -c %s "$LOGDIR/$log.1")" = "${rotated_size[$log]}" ] ||
    die "lines still went to $LOGDIR/$log.1 after the rotation"
  ok "new lines went to the new $log ($(wc -l <"$LOGDIR/$log") lines), none to $log.1"
done

# ---------------------------------------------------------------------------------------------
step "as root, the installed binary reloads and upgrades the server running as $USER_NAME"
# What ExecReload and the postinst run (prefork-httpd --signal reload|upgrade --pid PID), from
# root against a master that runs as the service user, as the postinst does. Each waits for the
# master's answer.
gone() {  # gone PID: the process no longer exists, or is a zombie nobody reaps here
  ! kill -0 "$1" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}
start_server "${extra[@]}"
cp -p "$CONF" "$tmp/conf.saved"
echo 'max_connections = "many"' >>"$CONF"
rc=0; out=$(timeout 90 /usr/sbin/prefork-httpd --signal reload --pid "$master_pid" 2>&1) || rc=$?
cp -p "$tmp/conf.saved" "$CONF"
{ [ $rc -eq 1 ] && grep -q 'reload rejected' <<<"$out"; } ||
  die "--signal reload with a broken config: exit $rc: $out"
ok "--signal reload with a broken config exits 1: $out"
check "the server still answers" curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/"
out=$(timeout 90 /usr/sbin/prefork-httpd --signal reload --pid "$master_pid" 2>&1) ||
  die "--signal reload with the fixed config: $out"
ok "--signal reload: $out"
old_master=$master_pid
out=$(timeout 90 /usr/sbin/prefork-httpd --signal upgrade --pid "$master_pid" 2>&1) ||
  die "--signal upgrade: $out"
ok "--signal upgrade: $out"
master_pid=$(cat "$RUNDIR/prefork-httpd.pid")
{ [ "$master_pid" != "$old_master" ] && [ "$(stat -c %U "/proc/$master_pid")" = "$USER_NAME" ]; } ||
  die "the pidfile names $master_pid (the old master was $old_master)"
ok "the new master pid $master_pid runs as $USER_NAME"
check "the new master answers" curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/"
for _ in $(seq 200); do gone "$old_master" && break; sleep 0.2; done  # graceful_timeout + margin
gone "$old_master" || die "the old master did not exit after the upgrade"
rc=0; wait "$server_pid" || rc=$?
server_pid=""
[ $rc -eq 0 ] || die "the old master exited with status $rc"
ok "the old master drained and exited with status 0"

# The postinst's in-place upgrade, for real: the installed script runs as dpkg runs it on an
# upgrade ("configure OLD-VERSION"), in a private mount namespace where /run/systemd/system
# exists (a tmpfs over /run), with stand-ins for what only a running systemd answers: systemctl
# (the service is active, its MainPID is our master), deb-systemd-invoke and deb-systemd-helper
# (nothing to start or enable), and policy-rc.d (first denying, as in a build chroot: nothing may
# happen; then allowing).
run_postinst() {  # run_postinst: the installed postinst, "configure $version", output in $out
  rc=0
  # shellcheck disable=SC2016  # $0 and $1 are the inner shell's
  out=$(PATH="$tmp/fake:$PATH" timeout 120 unshare -m --propagation private sh -c \
          'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec sh "$0" configure "$1"' \
          "$maint.postinst" "$version" 2>&1) || rc=$?
  echo "$out" | sed 's/^/  | /'
  [ $rc -eq 0 ] || die "postinst configure $version exited with status $rc"
}
if unshare -m --propagation private true 2>/dev/null; then
  mkdir -p "$tmp/fake"
  {
    echo '#!/bin/sh'
    echo 'case "$*" in'
    echo '  "is-active prefork-httpd.service") echo active ;;'
    echo "  \"show --property=MainPID --value prefork-httpd.service\") echo $master_pid ;;"
    echo '  "--system daemon-reload") ;;'
    echo '  *) echo "systemctl stand-in: unexpected: $*" >&2; exit 1 ;;'
    echo 'esac'
  } >"$tmp/fake/systemctl"
  printf '#!/bin/sh\necho "deb-systemd-invoke $*" >&2\n' >"$tmp/fake/deb-systemd-invoke"
  printf '#!/bin/sh\nexit 0\n' >"$tmp/fake/deb-systemd-helper"
  printf '#!/bin/sh\nexit 101\n' >"$tmp/fake/policy-rc.d"
  chmod 755 "$tmp"/fake/*
  old_master=$master_pid
  run_postinst
  if grep -q 'upgrade' <<<"$out"; then die "the postinst upgraded although policy-rc.d said 101"; fi
  [ "$(cat "$RUNDIR/prefork-httpd.pid")" = "$old_master" ] || die "the master changed under policy 101"
  ok "postinst configure $version with policy-rc.d denying: no upgrade"
  printf '#!/bin/sh\nexit 0\n' >"$tmp/fake/policy-rc.d"
  run_postinst
  grep -q 'upgrade: the new master serves' <<<"$out" || die "the postinst did not upgrade in place"
  grep -q "deb-systemd-invoke start prefork-httpd.service" <<<"$out" ||
    die "the postinst did not ask to start the service"
  if grep -Eq 'deb-systemd-invoke (restart|try-restart|stop)' <<<"$out"; then
    die "the postinst restarted or stopped the service"
  fi
  master_pid=$(cat "$RUNDIR/prefork-httpd.pid")
  [ "$master_pid" != "$old_master" ] || die "the pidfile still names the old master $old_master"
  check "the master the postinst's upgrade started answers" \
    curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/"
  for _ in $(seq 200); do gone "$old_master" && break; sleep 0.2; done
  gone "$old_master" || die "the old master did not exit after the postinst's upgrade"
  ok "postinst configure $version: upgraded in place to master pid $master_pid; the old one drained"
else
  echo "  SKIP: no private mount namespace (unshare -m): the postinst's upgrade was not run"
fi
kill -TERM "$master_pid"
for _ in $(seq 200); do gone "$master_pid" && break; sleep 0.2; done
gone "$master_pid" || die "the new master did not stop within 40 s of SIGTERM"
master_pid=""
ok "the new master stopped on SIGTERM"

# ---------------------------------------------------------------------------------------------
step "upgrade to a rebuilt package keeps the edited conffile"
DEB_BUILD_OPTIONS="nocheck${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}" DEB_BUILD_PROFILES=nocheck \
  timeout 1200 "$src/packaging/build-deb.sh" -r rebuild1 "$deb_dir" >"$deb_dir/rebuild.log" 2>&1 ||
  { tail -n 60 "$deb_dir/rebuild.log" >&2; die "rebuild (build-deb.sh -r rebuild1) failed"; }
deb2=$(ls "$deb_dir"/prefork-httpd_"$version"+rebuild1_*.deb)
apt_install "$deb2" >"$tmp/upgrade.log" 2>&1 || { cat "$tmp/upgrade.log" >&2; die "upgrade failed"; }
grep -E '^(Setting up|Unpacking|Preparing)' "$tmp/upgrade.log" | sed 's/^/  | /' || true
check "upgraded to $version+rebuild1" \
  test "$(dpkg-query -W -f='${Version}' "$PKG")" = "$version+rebuild1"
check "the installed binary reports the package's version: prefork-httpd $version+rebuild1" \
  test "$(/usr/sbin/prefork-httpd --version)" = "prefork-httpd $version+rebuild1"
check "the edit in $CONF survived the upgrade" grep -q "^error_log = \"$LOGDIR/error.log\"" "$CONF"
check "the log directory and its files survived the upgrade" test -s "$LOGDIR/error.log.1"

# A newer package whose default config changed: --force-confold keeps the operator's file and
# puts the new default next to it as .dpkg-dist, without a prompt.
rm -rf "$tmp/repack"
dpkg-deb -R "$deb2" "$tmp/repack"
echo "# a changed default" >>"$tmp/repack$CONF"
sed -i "s/^Version: .*/Version: $version+rebuild2/" "$tmp/repack/DEBIAN/control"
(cd "$tmp/repack" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
   xargs -0 md5sum >DEBIAN/md5sums)
dpkg-deb -b --root-owner-group "$tmp/repack" "$tmp/prefork-httpd_$version+rebuild2.deb" >/dev/null
apt_install "$tmp/prefork-httpd_$version+rebuild2.deb" >"$tmp/upgrade2.log" 2>&1 ||
  { cat "$tmp/upgrade2.log" >&2; die "upgrade to a package with a changed default config failed"; }
check "changed default config: the edit is kept (--force-confold)" \
  grep -q "^error_log = \"$LOGDIR/error.log\"" "$CONF"
check "changed default config: the new default is in $CONF.dpkg-dist" \
  grep -q '^# a changed default' "$CONF.dpkg-dist"

# ---------------------------------------------------------------------------------------------
step "apt-get purge leaves nothing but the service user"
DEBIAN_FRONTEND=noninteractive timeout 300 apt-get purge -y -q -o DPkg::Lock::Timeout=120 "$PKG" \
  </dev/null >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; die "apt-get purge failed"; }
grep -E '^(Removing|Purging)' "$tmp/purge.log" | sed 's/^/  | /' || true
if pkg_present; then die "dpkg still knows $PKG after the purge"; fi
ok "dpkg no longer knows $PKG"
[ "$made_rundir" = 1 ] && rm -rf "$RUNDIR" && made_rundir=0
snapshot >"$tmp/after.list"
left=$(comm -13 "$tmp/before.list" "$tmp/after.list")
if [ -n "$left" ]; then
  echo "$left" | sed 's/^/  left: /' >&2
  die "purge left files behind"
fi
ok "no file or directory of $PKG is left in /etc /usr /var /opt /srv /lib /run"
check "the user $USER_NAME is kept (Debian does not remove system users)" sh -c "getent passwd $USER_NAME >/dev/null"
