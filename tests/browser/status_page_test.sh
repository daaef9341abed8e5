#!/bin/sh
# Browser test: headless Chromium loads /server-status from the real binary (2 workers); the
# rendered DOM must hold exactly one worker row per worker. Saves the DOM and a screenshot in
# ARTIFACT_DIR. Usage: status_page_test.sh PREFORK_HTTPD_BINARY ARTIFACT_DIR
# Exit 0 pass, 1 fail, 77 skipped (no chromium).
set -eu
binary=$1
artifacts=$2
workers=2
chromium=$(command -v chromium || true)
if [ -z "$chromium" ]; then
  echo "SKIP: chromium is not installed (Debian package chromium)"
  exit 77
fi
mkdir -p "$artifacts"
work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    i=0
    while kill -0 "$server_pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$binary" --listen 127.0.0.1:0 --workers "$workers" >"$work/server.log" 2>&1 &
server_pid=$!
port=
i=0
while [ -z "$port" ] && [ $i -lt 100 ]; do
  if grep -q "ready:" "$work/server.log"; then
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/server.log" | head -n1)
  fi
  [ -n "$port" ] || sleep 0.05
  i=$((i + 1))
done
if [ -z "$port" ]; then
  echo "FAIL: the server did not become ready"; cat "$work/server.log"; exit 1
fi
url="http://127.0.0.1:$port/server-status"

# browse NAME CHROMIUM-ARGS...: one headless run with its own fresh profile.
browse() {
  profile="$work/profile-$1"
  shift
  if ! timeout 90 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --user-data-dir="$profile" --window-size=1200,800 "$@" \
    2>>"$work/chromium.log"; then
    echo "FAIL: chromium $*"; tail -n 30 "$work/chromium.log"; exit 1
  fi
}

browse dom --dump-dom "$url" >"$artifacts/server-status.dom.html"
rows=$(grep -o '<tr class="worker">' "$artifacts/server-status.dom.html" | wc -l)
if [ "$rows" -ne "$workers" ]; then
  echo "FAIL: $rows worker rows in the DOM, expected $workers"
  cat "$artifacts/server-status.dom.html"; tail -n 20 "$work/chromium.log"; exit 1
fi
if ! grep -q '<h1>prefork-httpd' "$artifacts/server-status.dom.html"; then
  echo "FAIL: the page did not render"; exit 1
fi

rm -f "$artifacts/server-status.png"
(cd "$work" && browse shot --hide-scrollbars --screenshot="$artifacts/server-status.png" "$url" \
  >/dev/null)
if ! head -c 8 "$artifacts/server-status.png" 2>/dev/null | od -An -tx1 | grep -q '89 50 4e 47'; then
  echo "FAIL: no PNG screenshot"; tail -n 20 "$work/chromium.log"; exit 1
fi
echo "PASS: $rows worker rows; screenshot $artifacts/server-status.png"
