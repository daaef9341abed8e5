# shellcheck shell=bash
# Shared by the package tests that run podman (sourced by bash scripts with `set -euo pipefail`):
# progress lines, polling, and the podman flags this machine class needs.

started=${started:-$SECONDS}
step() { printf '\n=== [%3ds] %s\n' $((SECONDS - started)) "$*"; }
ok() { printf '  ok: %s\n' "$*"; }
die() { printf '  FAIL: %s\n' "$*" >&2; exit 1; }

# Polls COMMAND... every 0.1 s until it succeeds; fails after SECONDS.
wait_until() {
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

# On this machine class (podman 4.3 inside an unprivileged container), podman needs:
#  --runtime runc   the runtime that works here (named, so another installed one is not used);
#  --network=host   no network namespace can be set up for the container, so it shares ours;
#  --ulimit nofile=N:N --ulimit nproc=N:N   podman's default (1048576) is above the hard
#      limits and runc may not raise a hard limit here (no CAP_SYS_RESOURCE: "error setting
#      rlimits ... operation not permitted"). nproc is also capped at 32768: podman 4.3 lowers
#      its own RLIMIT_NPROC to that (/proc/<podman>/limits) and the container inherits from it.
podman_machine_flags() {
  local nofile nproc
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
  echo --runtime runc --network=host --ulimit "nofile=$nofile:$nofile" \
    --ulimit "nproc=$nproc:$nproc"
}
