#!/usr/bin/env python3
"""A bounded HTTP load: THREADS keep-alive clients send GET / for SECONDS; prints a JSON summary.
A request fails when it raises or its status is not 200 with body "Hello, World!". No retries:
the balancer in front must absorb backend stops, restarts and reloads."""
import http.client
import json
import sys
import threading
import time

host, port, seconds, threads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0  # idle gap between bursts (s)
lock = threading.Lock()
totals = {"requests": 0, "failed": 0, "statuses": {}, "errors": []}


def client():
    deadline = time.monotonic() + seconds
    conn = http.client.HTTPConnection(host, port, timeout=10)
    burst = 0
    while time.monotonic() < deadline:
        status, ok = 0, False
        try:
            conn.request("GET", "/")
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
