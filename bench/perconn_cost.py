#!/usr/bin/env python3
"""Per-connection cost, side by side: prefork-httpd in per-connection mode and busybox httpd,
each in its own cgroup v2 (busybox ignores SIGCHLD, so only a cgroup sees its children's CPU),
serving N sequential `Connection: close` requests, rounds alternating between the servers.

Prints per server the medians of: server CPU per connection (cgroup usage_usec delta / N), and
for prefork-httpd also the master's mappings and the minor faults per child (the master's
cminflt delta / N; busybox's children are reaped by no wait(), so it has none).

  sudo bench/perconn_cost.py --binary build/prefork-httpd [--requests 2000] [--rounds 3]
                             [--before OTHER_BUILD] [--cpu N] [--no-busybox]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Cgroup, fresh_copy  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def one_request(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(REQUEST)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1.") or b" 200 " not in data.split(b"\r\n", 1)[0] or \
            not data.endswith(b"Hello, World!"):
        raise RuntimeError(f"bad reply from port {port}: {data[:200]!r}")


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3): minflt 10, cminflt 11, utime 14 .. cstime 17
    return {"cminflt": int(fields[8]), "minflt": int(fields[7])}


def mappings(pid):
    with open(f"/proc/{pid}/maps") as f:
        return sum(1 for _ in f)


class Server:
    def __init__(self, name, argv, port, cpu):
        self.name, self.argv, self.port, self.cpu = name, argv, port, cpu

    def __enter__(self):
        self.cg = Cgroup(self.name)
        if not self.cg.path:
            raise SystemExit("needs a writable cgroup v2 with cpu.stat (run as root)")
        argv = (["taskset", "-c", self.cpu] if self.cpu else []) + self.argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(f"/tmp/perconn_cost-{self.name}.log", "ab"),
                                     preexec_fn=self.cg.preexec)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} does not listen on {self.port}")
                time.sleep(0.05)
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.cg.remove()

    def measure(self, n):
        for _ in range(20):  # warm-up: caches, the first fork's faults
            one_request(self.port)
        time.sleep(0.2)
        pid = self.proc.pid
        st0, cpu0 = proc_stat(pid), self.cg.usage_us()
        t0 = time.monotonic()
        for _ in range(n):
            one_request(self.port)
        time.sleep(0.3)  # the last children exit and are reaped
        elapsed = time.monotonic() - t0
        st1, cpu1 = proc_stat(pid), self.cg.usage_us()
        return {"cpu_us": (cpu1 - cpu0) / n, "faults": (st1["cminflt"] - st0["cminflt"]) / n,
                "master_faults": (st1["minflt"] - st0["minflt"]) / n,
                "maps": mappings(pid), "conn_per_s": n / elapsed}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu", default="", help="pin the servers to this CPU (taskset -c)")
    ap.add_argument("--no-busybox", action="store_true")
    ap.add_argument("--before", default="", help="another prefork-httpd build, measured alike")
    args = ap.parse_args()
    www = tempfile.mkdtemp(prefix="perconn-www-")
    binary = fresh_copy(args.binary, os.path.join(www, "ours"))
    before = fresh_copy(args.before, os.path.join(www, "before")) if args.before else ""
    busybox = fresh_copy(shutil.which("busybox") or "/bin/busybox", www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("Hello, World!")
    servers = {"ours": Server("ours", [binary, "--mode", "per-connection", "--listen",
                                       "127.0.0.1:18091", "--set", 'log_level="warn"'],
                              18091, args.cpu)}
    if args.before:
        servers["before"] = Server("before", [before, "--mode", "per-connection", "--listen",
                                              "127.0.0.1:18093", "--set", 'log_level="warn"'],
                                   18093, args.cpu)
    if not args.no_busybox:
        servers["busybox"] = Server("busybox", [busybox, "httpd", "-f", "-p", "127.0.0.1:18092",
                                                "-h", www], 18092, args.cpu)
    rows = {name: [] for name in servers}
    try:
        for r in range(args.rounds):
            for name, server in servers.items():
                with server:
                    m = server.measure(args.requests)
                rows[name].append(m)
                print(f"round {r + 1} {name:8s} cpu {m['cpu_us']:7.1f} us/conn  "
                      f"child faults {m['faults']:5.1f}  master faults {m['master_faults']:5.2f}  "
                      f"maps {m['maps']}  {m['conn_per_s']:6.0f} conn/s", flush=True)
    finally:
        shutil.rmtree(www, ignore_errors=True)
    med = {name: {k: statistics.median(m[k] for m in ms) for k in ms[0]} for name, ms in rows.items()}
    for name, m in med.items():
        print(f"median   {name:8s} cpu {m['cpu_us']:7.1f} us/conn  child faults {m['faults']:5.1f}  "
              f"master faults {m['master_faults']:5.2f}  maps {m['maps']:.0f}  "
              f"{m['conn_per_s']:6.0f} conn/s")
    if "busybox" in med:
        print(f"ratio ours/busybox cpu per connection: "
              f"{med['ours']['cpu_us'] / med['busybox']['cpu_us']:.2f} (per-round: " +
              ", ".join(f"{a['cpu_us'] / b['cpu_us']:.2f}"
                        for a, b in zip(rows['ours'], rows['busybox'])) + ")")


if __name__ == "__main__":
    main()
