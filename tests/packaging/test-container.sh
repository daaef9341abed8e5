#!/bin/bash
# Tests the container image end to end with podman: builds it offline
# (packaging/container/build-image.sh: FROM scratch, nothing pulled), checks what it holds and
# how it is configured, runs it, and checks what a user sees: it serves Hello, World! on the
# port PORT names; the master is PID 1 and runs, like its workers, as the non-root uid 10001;
# the image's HEALTHCHECK (the binary probing itself) is healthy; and `podman stop` during a
# delayed request (drain_delay and the test switches set from the environment) keeps the
# health check unhealthy while draining, lets the request finish with its full answer, and
# ends with exit code 0.
#
# usage: sudo tests/packaging/test-container.sh [BINARY]
#   BINARY  the prefork-httpd to put in the image (default: build/prefork-httpd of this tree
#           when it exists, else build-image.sh builds one)
# Skips (exit 0, saying why) when not root or podman is missing. Removes only the container
# and the image it created, even when a check fails.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
readonly UID_GID=10001
readonly DRAIN_DELAY=4    # s: /healthz answers 503 this long after SIGTERM, listeners still open
readonly REQUEST_DELAY=6  # s: ?delay= of the request in flight; outlives the drain delay

started=$SECONDS
# shellcheck source=tests/packaging/podman-lib.sh
. "$src/tests/packaging/podman-lib.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "test-container.sh: SKIP: needs root (rootful podman)"
  exit 0
fi
if ! command -v podman >/dev/null; then
  echo "test-container.sh: SKIP: podman is not installed (packaging/install-deps.sh installs it)"
  exit 0
fi

binary=${1:-}
if [ -z "$binary" ] && [ -x "$src/build/prefork-httpd" ]; then binary=$src/build/prefork-httpd; fi
tag=localhost/prefork-httpd-test:$$
name=prefork-httpd-test-$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-container.XXXXXX")
built=0
created=0
background=()  # pids of the commands this script runs in the background

cleanup() {
  local rc=$?
  set +e
  for pid in "${background[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  if [ "$created" = 1 ]; then
    [ $rc -eq 0 ] || { echo "--- container log:"; podman logs "$name" 2>&1 | tail -n 40; } >&2
    podman rm -f -t 0 "$name" >/dev/null 2>&1
  fi
  [ "$built" = 1 ] && podman rmi -f "$tag" >/dev/null 2>&1
  rm -rf "$tmp"
  if [ $rc -eq 0 ]; then
    printf '\ntest-container.sh: PASS in %ds\n' $((SECONDS - started))
  else
    printf '\ntest-container.sh: FAILED (exit %d) after %ds\n' $rc $((SECONDS - started)) >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "  FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM HUP

log_has() { podman logs "$name" 2>&1 | grep -qF -- "$1"; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# The server has accepted the connection of a request to PORT and read all of it: with
# TCP_DEFER_ACCEPT a server-side socket is only established once data arrived, and an empty
# receive queue means the worker read it.
request_read() {
  ss -Htn state established "( sport = :$1 )" | awk '$1 == 0 { found = 1 } END { exit !found }'
}

# ---------------------------------------------------------------------------------------------
step "build the image (${binary:-a Release build of this tree}; FROM scratch, nothing pulled)"
"$src/packaging/container/build-image.sh" ${binary:+-b "$binary"} "$tag" >"$tmp/build.out" 2>&1 ||
  { cat "$tmp/build.out" >&2; die "build-image.sh failed"; }
built=1
grep '^  /' "$tmp/build.out" | sed 's/^/  /'
ok "built $tag"

inspect() { podman image inspect --format "$1" "$tag"; }
[ "$(inspect '{{.Config.User}}')" = "$UID_GID:$UID_GID" ] || die "USER is not $UID_GID:$UID_GID"
[ "$(inspect '{{.Config.StopSignal}}')" = SIGTERM ] || die "STOPSIGNAL is not SIGTERM"
inspect '{{json .Config.ExposedPorts}}' | grep -qF '"8888/tcp"' || die "8888/tcp is not exposed"
inspect '{{json .Config.Entrypoint}}' | grep -qxF '["/usr/sbin/prefork-httpd"]' ||
  die "the entrypoint is not the binary (the master must be PID 1)"
inspect '{{json .Config.Healthcheck.Test}}' | grep -qF '"/usr/sbin/prefork-httpd","--health-check"' ||
  die "the HEALTHCHECK does not run prefork-httpd --health-check"
ok "USER $UID_GID:$UID_GID, STOPSIGNAL SIGTERM, EXPOSE 8888, ENTRYPOINT and HEALTHCHECK the binary"

# What the image holds: the binary, the libraries and loader from build-image.sh's list,
# /etc/{passwd,group,nsswitch.conf} and copyright files; nothing else (no shell, no curl).
mnt=$(podman image mount "$tag")
(cd "$mnt" && find . -type f | sed 's/^\.//' | grep -v '^/usr/share/doc/.*/copyright$' | sort) \
  >"$tmp/files"
podman image unmount "$tag" >/dev/null
{ echo /usr/sbin/prefork-httpd; printf '%s\n' /etc/passwd /etc/group /etc/nsswitch.conf
  sed -n 's/^  \(\/[^ ]*\) (.*/\1/p' "$tmp/build.out"; } | sort >"$tmp/expected"
diff -u "$tmp/expected" "$tmp/files" >&2 || die "the image holds other files than expected"
ok "the image holds the binary, the $(grep -c '^  /' "$tmp/build.out") libraries ldd names, and /etc: $(wc -l <"$tmp/files") files"

# ---------------------------------------------------------------------------------------------
# The podman flags this machine class needs: tests/packaging/podman-lib.sh says why.
read -ra podman_flags <<<"$(podman_machine_flags)"
port=$(free_port)
step "run it: podman run ${podman_flags[*]} -e PORT=$port (flags this machine class needs)"
# No systemd here: podman cannot schedule the periodic health check (it logs "unable to get
# systemd connection"); this test runs the same check with `podman healthcheck run`.
podman run -d --name "$name" "${podman_flags[@]}" -e "PORT=$port" -e PREFORK_HTTPD_WORKERS=2 \
  -e PREFORK_HTTPD_SWITCHES=true -e "PREFORK_HTTPD_DRAIN_DELAY=$DRAIN_DELAY" \
  "$tag" >"$tmp/run.out" 2>&1 || { cat "$tmp/run.out" >&2; die "podman run failed"; }
created=1
wait_until 30 log_has "ready: 2 workers serving" || die "the server did not become ready in 30 s"
ok "ready: $(podman logs "$name" 2>&1 | grep -F 'listening on')"

body=$(curl -sS --max-time 5 "http://127.0.0.1:$port/")
[ "$body" = "Hello, World!" ] || die "GET / answered '$body'"
ok "GET http://127.0.0.1:$port/ answers Hello, World!"

pid=$(podman inspect --format '{{.State.Pid}}' "$name")
ids() { awk -v f="$2" '$1 == f { print $2, $3, $4, $5 }' "/proc/$1/status"; }
want="$UID_GID $UID_GID $UID_GID $UID_GID"
[ "$(awk '$1 == "NSpid:" { print $NF }' "/proc/$pid/status")" = 1 ] || die "the master is not PID 1"
[ "$(ids "$pid" Uid:)" = "$want" ] || die "the master runs as uid $(ids "$pid" Uid:), not $UID_GID"
[ "$(ids "$pid" Gid:)" = "$want" ] || die "the master runs as gid $(ids "$pid" Gid:), not $UID_GID"
workers=$(cat "/proc/$pid/task/$pid/children")
[ "$(wc -w <<<"$workers")" = 2 ] || die "the master has children '$workers', not 2 workers"
for w in $workers; do
  [ "$(ids "$w" Uid:)" = "$want" ] || die "worker $w runs as uid $(ids "$w" Uid:)"
done
ok "the master is PID 1 in the container (host pid $pid); it and its workers run as uid/gid $UID_GID"

out=$(podman healthcheck run "$name" 2>&1) || die "podman healthcheck run: $out"
[ "$(podman inspect --format '{{.State.Health.Status}}' "$name")" = healthy ] ||
  die "the health status is not healthy"
ok "podman healthcheck run: healthy"

# ---------------------------------------------------------------------------------------------
step "podman stop -t 30 during a ?delay=$REQUEST_DELAY request (drain_delay = $DRAIN_DELAY s)"
curl -sS -i --max-time 40 "http://127.0.0.1:$port/?delay=$REQUEST_DELAY" >"$tmp/delayed" 2>&1 &
curl_pid=$!
background+=("$curl_pid")
wait_until 10 request_read "$port" || die "the server did not read the delayed request"
stop_start=$SECONDS
podman stop -t 30 "$name" >"$tmp/stop.out" 2>&1 &
stop_pid=$!
background+=("$stop_pid")
wait_until 10 log_has "(drain_delay) before the listeners close" || die "no drain after podman stop"
ok "SIGTERM reached the master: draining"

# podman 4.3 refuses `podman healthcheck run` and `podman exec` once `podman stop` has begun (the
# container is "stopping": "can only create exec sessions on running containers"), so podman
# itself never sees the drain. The image's HEALTHCHECK command runs here as podman would run
# it: in the container's mount and pid namespaces, as its user, with its environment.
mapfile -d '' environment <"/proc/$pid/environ"
mapfile -t command < <(podman image inspect --format '{{range .Config.Healthcheck.Test}}{{println .}}{{end}}' "$tag" | sed '1d;/^$/d')
rc=0
out=$(env -i "${environment[@]}" nsenter --target "$pid" --mount --pid --setuid "$UID_GID" \
  --setgid "$UID_GID" -- "${command[@]}" 2>&1) || rc=$?
[ $rc -eq 1 ] || die "the health check while draining exited $rc: $out"
# The 503 (not a refused connection) shows it ran during the drain, with the listeners open.
[[ $out == *"unhealthy: HTTP/1.1 503 Service Unavailable" ]] ||
  die "the health check while draining said '$out', not the draining server's 503"
ok "the HEALTHCHECK command (${command[*]}) while draining: exit 1, $out"

rc=0; wait "$stop_pid" || rc=$?
[ $rc -eq 0 ] || { cat "$tmp/stop.out" >&2; die "podman stop exited $rc"; }
rc=0; wait "$curl_pid" || rc=$?
background=()
[ $rc -eq 0 ] || { cat "$tmp/delayed" >&2; die "the delayed request failed (curl exit $rc)"; }
head -n1 "$tmp/delayed" | grep -q '^HTTP/1.1 200 ' || die "the delayed request got $(head -n1 "$tmp/delayed")"
[ "$(tail -n1 "$tmp/delayed")" = "Hello, World!" ] || die "the delayed answer's body is incomplete"
ok "the delayed request got its full 200 answer; podman stop took $((SECONDS - stop_start)) s"

code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || die "the container exited with code $code"
log_has "stopped; exiting with code 0" || die "the master did not log a clean stop"
ok "the container exited with code 0 (the master, PID 1, stopped gracefully)"
