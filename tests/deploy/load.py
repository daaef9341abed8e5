#!/usr/bin/env python3
"""A bounded HTTP load: THREADS clients send GET / back to back for SECONDS; prints a JSON summary.
usage: load.py HOST PORT SECONDS THREADS [PAUSE [close]]
Clients keep their connection alive, or with "close" send `Connection: close` and so open one
connection per request. A request fails when it raises or its status is not 200 with body
"Hello, World!". No retries: whatever is in front (a balancer, or nothing) must not lose one."""
import http.client
import json
import sys
import threading
import time

host, port, seconds, threads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0  # idle gap between bursts (s)
headers = {"Connection": "close"} if len(sys.argv) > 6 and sys.argv[6] == "close" else {}
lock = threading.Lock()
totals = {"requests": 0, "failed": 0, "statuses": {}, "errors": []}


def client():
    deadline = time.monotonic() + seconds
    conn = http.client.HTTPConnection(host, port, timeout=10)
    burst = 0
    while time.monotonic() < deadline:
        status, ok = 0, False
        try:
            conn.request("GET", "/", headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            status, ok = resp.status, resp.status == 200 and body == b"Hello, World!"
        except Exception as err:  # a failed request, counted; reconnect and go on
            with lock:
                totals["errors"].append(repr(err))
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
        with lock:
            totals["requests"] += 1
            totals["failed"] += 0 if ok else 1
            totals["statuses"][str(status)] = totals["statuses"].get(str(status), 0) + 1
        burst += 1
        if pause and burst % 20 == 0:
            time.sleep(pause)


workers = [threading.Thread(target=client) for _ in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
totals["errors"] = totals["errors"][:5]
print(json.dumps(totals))
