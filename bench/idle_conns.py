#!/usr/bin/env python3
"""Opens N keep-alive connections to HOST PORT, sends one GET on each and checks the reply
(200, "Hello, World!"), then keeps them all open and idle until stdin closes.
Prints "ready N" (or "error ...") on stdout once all are open."""
import resource
import socket
import sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < n + 100:
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, n + 100), max(hard, n + 100)))
req = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
socks = []
try:
    for i in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf or not buf.endswith(b"Hello, World!"):
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError(f"connection {i} closed by server")
            buf += chunk
        if not buf.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(f"connection {i}: {buf[:40]!r}")
        socks.append(s)
except Exception as e:  # report, keep what is open for the caller to see
    print(f"error after {len(socks)} connections: {e}", flush=True)
    sys.exit(1)
print(f"ready {len(socks)}", flush=True)
sys.stdin.read()
for s in socks:
    s.close()
