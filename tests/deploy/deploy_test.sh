#!/bin/sh
# Deployment test: three prefork-httpd backends behind the real HAProxy and nginx, configured
# from etc/examples/, under a bounded client load while backends are stopped, restarted and
# reloaded. Passes only with zero failed requests. Exit 77 (skipped) without haproxy or nginx.
#   deploy_test.sh BINARY SOURCE_DIR
set -eu
bin=$1
src=$2
for tool in haproxy nginx python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool is not installed"; exit 77; }
done
tmp=$(mktemp -d)
pids=""
cleanup() {
  for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/*.log; do echo "== $f"; tail -20 "$f"; done; exit 1; }

free_ports() {
  python3 -c 'import socket
socks = [socket.socket() for _ in range(int(__import__("sys").argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}
# wait_for CMD...: retries CMD every 50 ms for up to 10 s.
wait_for() {
  i=0
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -le 200 ] || return 1; sleep 0.05
  done
}
http_ok() { [ "$(curl -s -m 2 "http://127.0.0.1:$1/")" = "Hello, World!" ]; }

set -- $(free_ports 7)
b1=$1 b2=$2 b3=$3 front=$4 nginx_front=$5 pp_backend=$6 pp_front=$7
start_backend() {  # NAME PORT EXTRA-SETTINGS...
  name=$1 port=$2; shift 2
  "$bin" --listen "127.0.0.1:$port" --workers 2 --set drain_delay=2 --set graceful_timeout=10 \
    "$@" >>"$tmp/$name.log" 2>&1 &
  eval "pid_$name=$!"
  pids="$pids $!"
  wait_for http_ok "$port" || fail "backend $name did not start"
}
stop_backend() {  # NAME: graceful stop, bounded by drain_delay + graceful_timeout
  eval "p=\$pid_$1"
  kill -TERM "$p"
  i=0
  while kill -0 "$p" 2>/dev/null; do i=$((i + 1)); [ $i -le 300 ] || fail "$1 did not stop"; sleep 0.05; done
  wait "$p" || fail "backend $1 exited non-zero"
}
ports_in() {  # FILE: the example with our test ports
  sed -e "s/127.0.0.1:8881/127.0.0.1:$b1/; s/127.0.0.1:8882/127.0.0.1:$b2/" \
      -e "s/127.0.0.1:8883/127.0.0.1:$b3/; s/127.0.0.1:8080/127.0.0.1:$front/" "$1"
}
check_load() {  # JSON-FILE LABEL
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}: {r['requests']} requests, {r['failed']} failed, statuses {r['statuses']}")
sys.exit(0 if r["failed"] == 0 and r["requests"] > 100 else 1)
PY
}

# ---- HAProxy: drain (stop + restart) one backend and reload another under load ----------------
start_backend web1 "$b1"; start_backend web2 "$b2"; start_backend web3 "$b3"
ports_in "$src/etc/examples/haproxy.cfg" >"$tmp/haproxy.cfg"
haproxy -c -f "$tmp/haproxy.cfg" >/dev/null || fail "haproxy rejects etc/examples/haproxy.cfg"
haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
haproxy_pid=$!
pids="$pids $haproxy_pid"
wait_for http_ok "$front" || fail "haproxy does not answer"
sleep 1.2  # every server checked up at least once
python3 "$src/tests/deploy/load.py" 127.0.0.1 "$front" 12 4 >"$tmp/haproxy-load.json" &
load=$!
sleep 2
kill -TERM "$pid_web1"
# HAProxy must see the 503 from /healthz and mark web1 down while web1 still serves
# (before its drain_delay ends and its listeners close).
wait_for grep -q "prefork/web1 is DOWN" "$tmp/haproxy.log" || fail "haproxy never marked web1 down"
grep -q "drain_delay over" "$tmp/web1.log" && fail "web1 closed its listeners before haproxy marked it down"
echo "haproxy marked web1 down while it was still serving (healthz 503)"
stop_backend web1
start_backend web1 "$b1"
sleep 2
kill -HUP "$pid_web2"
wait_for grep -q "retiring 2 old workers" "$tmp/web2.log" || fail "web2 did not reload"
wait "$load"
check_load "$tmp/haproxy-load.json" "through haproxy (web1 drained and restarted, web2 reloaded)" \
  || fail "requests failed through haproxy"
for n in web1 web2 web3; do stop_backend $n; done
kill -TERM "$haproxy_pid"; wait "$haproxy_pid" || true

# ---- nginx: backends that close idle keep-alive connections after 1 s -------------------------
start_backend web1 "$b1" --set keepalive_timeout=1
start_backend web2 "$b2" --set keepalive_timeout=1
start_backend web3 "$b3" --set keepalive_timeout=1
{
  echo "pid $tmp/nginx.pid; error_log $tmp/nginx-error.log; events {}"
  echo "http { access_log off; client_body_temp_path $tmp; proxy_temp_path $tmp;"
  ports_in "$src/etc/examples/nginx.conf" | sed "s/127.0.0.1:$front;/127.0.0.1:$nginx_front;/"
  echo "}"
} >"$tmp/nginx.conf"
nginx -t -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" >/dev/null 2>&1 || fail "nginx rejects etc/examples/nginx.conf"
nginx -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" -g "daemon off; master_process off;" \
  >"$tmp/nginx.log" 2>&1 &
nginx_pid=$!
pids="$pids $nginx_pid"
wait_for http_ok "$nginx_front" || fail "nginx does not answer"
kill -0 "$nginx_pid" 2>/dev/null || fail "nginx is not running"
# Bursts separated by idle gaps longer than the backends' keepalive_timeout: nginx reuses pooled
# connections the backends have closed, and must retry instead of answering 502.
python3 "$src/tests/deploy/load.py" 127.0.0.1 "$nginx_front" 10 4 1.3 >"$tmp/nginx-load.json"
kill -0 "$nginx_pid" 2>/dev/null || fail "nginx died during the load"
retried=$(grep -c "upstream prematurely closed\|Connection reset by peer" "$tmp/nginx-error.log" || true)
echo "nginx met $retried closed or reset upstream connection(s) and retried them"
check_load "$tmp/nginx-load.json" "through nginx (backend keepalive_timeout 1 s, idle gaps 1.3 s)" \
  || fail "requests failed through nginx"

# ---- HAProxy send-proxy-v2: the access log names the real client --------------------------------
for n in web1 web2 web3; do stop_backend $n; done
kill -TERM "$nginx_pid"; wait "$nginx_pid" || true
# user = "root": the workers write the access log in this root-only temporary directory.
"$bin" --workers 2 \
  --set "listen=[{ address = \"127.0.0.1:$pp_backend\", proxy_protocol = true }]" \
  --set "access_log=\"$tmp/access.json\"" --set 'access_log_format="json"' --set 'user="root"' \
  >>"$tmp/pp.log" 2>&1 &
pids="$pids $!"
wait_for grep -q "ready:" "$tmp/pp.log" || fail "the PROXY protocol backend did not start"
cat >"$tmp/haproxy-pp.cfg" <<CFG
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend http
    bind 127.0.0.1:$pp_front
    default_backend prefork
backend prefork
    server web1 127.0.0.1:$pp_backend send-proxy-v2
CFG
haproxy -db -f "$tmp/haproxy-pp.cfg" >"$tmp/haproxy-pp.log" 2>&1 &
pp_haproxy=$!
pids="$pids $pp_haproxy"
# The client connects from 127.0.0.7; HAProxy reaches the backend from 127.0.0.1.
wait_for sh -c "[ \"\$(curl -s -m 2 --interface 127.0.0.7 http://127.0.0.1:$pp_front/proxied)\" = 'Hello, World!' ]" \
  || fail "no answer through haproxy send-proxy-v2"
wait_for grep -q 'GET /proxied' "$tmp/access.json" || fail "no access log line for the proxied request"
grep 'GET /proxied' "$tmp/access.json" | head -1
grep 'GET /proxied' "$tmp/access.json" | grep -q '127.0.0.7' \
  || fail "the access log does not name the real client 127.0.0.7"
echo "PROXY protocol v2 from haproxy: the access log names the real client 127.0.0.7"
echo "1 passed, 0 failed"
