#!/usr/bin/env python3
"""Measurement driver of bench/run.sh (run it through run.sh, which installs, builds, and enters a
private network namespace first). Starts prefork-httpd, nginx and busybox httpd pinned to CPU 1,
drives them with wrk pinned to CPU 0, and writes raw results as JSON to bench/results/.

Every process started here is stopped here, by its own pid."""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BODY = b"Hello, World!"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU = "1"
CLIENT_CPU = "0"
PORTS = {"ours": 18080, "ours-perconn": 18081, "nginx": 18082, "busybox": 18083}


def log(*args):
    print("[bench]", *args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc accounting

def proc_stat(pid):
    """(ppid, (utime, stime), (cutime, cstime)) in ticks, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is state (field 3); utime is field 14 -> index 11.
    return int(fields[1]), (int(fields[11]), int(fields[12])), (int(fields[13]), int(fields[14]))


def descendants(root):
    """root and every live descendant."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st:
            children.setdefault(st[0], []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_us(root):
    """utime+stime of root and its live descendants plus what they reaped (cutime+cstime):
    a reaped child's time moves into its parent's cutime, so the sum never loses it."""
    user = system = 0
    for pid in descendants(root):
        st = proc_stat(pid)
        if st:
            user += st[1][0] + st[2][0]
            system += st[1][1] + st[2][1]
    return user * 1_000_000 // CLK_TCK, system * 1_000_000 // CLK_TCK


def rss_kib(pid, key="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tcp_counter(name):
    with open("/proc/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Tcp:")]
    return int(lines[1][lines[0].index(name)])


# ---------------------------------------------------------------- cgroup v2 cross-check

class Cgroup:
    """An optional cgroup v2 per server: counts the CPU of children that are reaped by nobody's
    wait (busybox httpd ignores SIGCHLD, so /proc's cutime never sees its children)."""

    def __init__(self, name):
        self.path = None
        for base in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
            if os.path.exists(os.path.join(base, "cgroup.procs")) and os.access(base, os.W_OK):
                path = os.path.join(base, f"prefork-bench-{os.getpid()}-{name}")
                try:
                    os.mkdir(path)
                    if os.path.exists(os.path.join(path, "cpu.stat")):
                        self.path = path
                        break
                    os.rmdir(path)
                except OSError:
                    pass

    def preexec(self):
        if self.path:
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write("0")

    def usage_us(self):
        if not self.path:
            return None
        with open(os.path.join(self.path, "cpu.stat")) as f:
            for line in f:
                if line.startswith("usage_usec"):
                    return int(line.split()[1])
        return None

    def remove(self):
        if self.path:
            for _ in range(50):
                try:
                    os.rmdir(self.path)
                    return
                except OSError:
                    time.sleep(0.1)


# ---------------------------------------------------------------- servers

class Server:
    def __init__(self, name, label, argv, port, tmp, env=None):
        self.name, self.label, self.argv, self.port, self.tmp = name, label, argv, port, tmp
        self.env = env
        self.proc = None
        self.cg = None

    def start(self):
        self.cg = Cgroup(self.name)
        logf = open(os.path.join(self.tmp, f"{self.name}.log"), "ab")
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + self.argv, stdout=logf,
                                     stderr=logf, stdin=subprocess.DEVNULL,
                                     preexec_fn=self.cg.preexec, env=self.env)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start, see {logf.name}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                time.sleep(0.3)  # let workers come up
                if self.proc.poll() is not None:  # someone else's server on our port
                    raise RuntimeError(f"{self.name} exited at start, see {logf.name}")
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} does not listen on {self.port}")

    @property
    def pid(self):
        return self.proc.pid

    def cpu_us(self):
        return tree_cpu_us(self.pid)

    def workers(self):
        return [p for p in descendants(self.pid) if p != self.pid]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop in 15 s; SIGKILL to its process group")
                self.proc.kill()
                self.proc.wait()
        if self.cg:
            self.cg.remove()
        self.proc = None


def fresh_copy(path, tmp):
    """The executable at `path`, written anew into `tmp` in 1 MiB writes, as a package install
    writes it. How a file was written (a linker's many small writes, dpkg's, cp's) decides the
    page-cache folios its code is served from, and so how many pages one page fault maps: the same
    bytes of prefork-httpd cost a forked child 4 more faults (55 against 51) run from the linker's
    output. Every executable measured, ours and busybox alike, is copied the same way."""
    os.makedirs(os.path.join(tmp, "bin"), exist_ok=True)
    out = os.path.join(tmp, "bin", os.path.basename(path))
    with open(path, "rb") as src, open(out, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    os.chmod(out, 0o755)
    return out


def make_servers(args, tmp, names, extra_ours=(), nginx_conns=1024, nginx_user=""):
    servers = {}
    nofile = min(args.nofile, max(4096, nginx_conns + 1024))
    for name in names:
        port = PORTS[name]
        if name == "ours":
            argv = [args.binary, "--listen", f"127.0.0.1:{port}", "--workers", "1",
                    "--set", "log_level=\"warn\""] + list(extra_ours)
            servers[name] = Server(name, "prefork-httpd (prefork)", argv, port, tmp)
        elif name == "ours-perconn":
            argv = [args.binary, "--listen", f"127.0.0.1:{port}", "--workers", "1",
                    "--mode", "per-connection", "--set", "log_level=\"warn\""]
            servers[name] = Server(name, "prefork-httpd (per-connection)", argv, port, tmp)
        elif name == "nginx":
            ndir = os.path.join(tmp, "nginx")
            os.makedirs(os.path.join(ndir, "logs"), exist_ok=True)
            conf = os.path.join(ndir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(f"""# written by bench/bench.py
worker_processes 1;
{nginx_user}daemon off;
master_process on;
pid {ndir}/nginx.pid;
error_log {ndir}/error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections {nginx_conns}; }}
http {{
    access_log off;
    client_body_temp_path {ndir}/body;
    proxy_temp_path {ndir}/proxy;
    fastcgi_temp_path {ndir}/fastcgi;
    uwsgi_temp_path {ndir}/uwsgi;
    scgi_temp_path {ndir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "Hello, World!"; }}
    }}
}}
""")
            argv = ["nginx", "-p", ndir, "-c", conf, "-e", f"{ndir}/error.log"]
            servers[name] = Server(name, "nginx " + args.versions.get("nginx", ""), argv, port,
                                   tmp)
        elif name == "busybox":
            www = os.path.join(tmp, "www")
            os.makedirs(www, exist_ok=True)
            with open(os.path.join(www, "index.html"), "wb") as f:
                f.write(BODY)
            argv = [args.busybox, "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", www]
            servers[name] = Server(name, "busybox httpd", argv, port, tmp)
    return servers


# ---------------------------------------------------------------- verification

def read_response(sock, buf):
    """One HTTP/1.x response from sock (buf: bytes already read). Returns (status, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"connection closed mid-head: {buf[:200]!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if length is None:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest, b""
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed mid-body")
        rest += chunk
    return status, rest[:length], rest[length:]


def verify(server, scenario):
    """Before timing: every reply is 200 with the exact body, in the form the scenario uses."""
    url = f"http://127.0.0.1:{server.port}/"
    for extra in ([], ["-H", "Connection: close"]):
        out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *extra, url],
                             capture_output=True, timeout=10).stdout
        body, _, code = out.rpartition(b"\n")
        if code != b"200" or body != BODY:
            raise RuntimeError(f"{server.name}: curl {extra} got {code!r} {body[:80]!r}")
    if scenario == "pipelined":
        req = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode() * 16
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(req)
            buf = b""
            for i in range(16):
                status, body, buf = read_response(s, buf)
                if status != 200 or body != BODY:
                    raise RuntimeError(f"{server.name}: pipelined reply {i}: {status} {body!r}")


# ---------------------------------------------------------------- wrk

UNITS = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def to_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(out):
    r = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    r["requests"] = int(m.group(1))
    r["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        r[f"p{pct}_us"] = to_us(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    return r


SCENARIOS = {
    # name: (wrk extra args, description)
    "keep-alive": ([], "keep-alive, 50 connections"),
    "close": (["-H", "Connection: close"], "connection per request (Connection: close), 50 conc."),
    "pipelined": (["-s", os.path.join(HERE, "pipeline.lua")],
                  "pipelined, 16 requests per write, 50 connections"),
    "perconn-close": (["-H", "Connection: close"],
                      "per-connection mode, connection per request, 50 conc."),
}


def run_wrk(server, scenario, duration, connections=50):
    extra, _ = SCENARIOS[scenario]
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
           "--latency", *extra, f"http://127.0.0.1:{server.port}/"]
    opens0 = tcp_counter("PassiveOpens")
    cpu0, cg0 = server.cpu_us(), server.cg.usage_us()
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    elapsed = time.time() - t0
    cpu1, cg1 = server.cpu_us(), server.cg.usage_us()
    opens1 = tcp_counter("PassiveOpens")
    r = parse_wrk(out)
    n = max(r["requests"], 1)
    r["user_us_per_req"] = (cpu1[0] - cpu0[0]) / n
    r["sys_us_per_req"] = (cpu1[1] - cpu0[1]) / n
    r["cpu_us_per_req"] = r["user_us_per_req"] + r["sys_us_per_req"]
    r["cpu_util"] = (sum(cpu1) - sum(cpu0)) / 1e6 / elapsed
    r["cg_cpu_us_per_req"] = (cg1 - cg0) / max(r["requests"], 1) if cg0 is not None else None
    r["accepts_per_req"] = (opens1 - opens0) / max(r["requests"], 1)
    r["command"] = " ".join(cmd)
    return r


# ---------------------------------------------------------------- scenarios

def run_load(args, tmp, results):
    pairs = {
        "keep-alive": ["ours", "nginx"],
        "close": ["ours", "nginx"],
        "pipelined": ["ours", "nginx"],
        "perconn-close": ["ours-perconn", "busybox"],
    }
    if args.scenarios:
        pairs = {k: v for k, v in pairs.items() if k in args.scenarios.split(",")}
    names = sorted({n for pair in pairs.values() for n in pair})
    results["runs"] = []
    for rnd in range(args.rounds):
        servers = make_servers(args, tmp, names)
        try:
            for s in servers.values():
                s.start()
            for si, (scenario, pair) in enumerate(pairs.items()):
                k = (rnd + si) % len(pair)
                order = pair[k:] + pair[:k]
                for name in order:
                    s = servers[name]
                    verify(s, scenario)
                    run_wrk(s, scenario, 1)  # warm-up, not recorded
                    r = run_wrk(s, scenario, args.duration)
                    r.update(round=rnd, scenario=scenario, server=name)
                    log(f"round {rnd} {scenario:14} {name:13} {r['rps']:>10.0f} req/s  "
                        f"cpu {r['cpu_us_per_req']:6.1f} us/req (usr {r['user_us_per_req']:.1f}, cgroup "
                        f"{r['cg_cpu_us_per_req'] or 0:.1f})  p50 {r['p50_us']} p99 {r['p99_us']}"
                        f"  accepts/req {r['accepts_per_req']:.3f}  errors {r['socket_errors']}"
                        f" non2xx {r['non2xx']}")
                    results["runs"].append(r)
        finally:
            for s in servers.values():
                s.stop()


def master_image(args, tmp):
    """Mappings and anonymous memory of a per-connection master that served a few connections:
    the size the image variant of the fork micro-benchmark is made to have."""
    servers = make_servers(args, tmp, ["ours-perconn"])
    server = servers["ours-perconn"].start()
    try:
        verify(server, "perconn-close")
        with open(f"/proc/{server.pid}/maps") as f:
            maps = sum(1 for _ in f)
        anon = 0
        with open(f"/proc/{server.pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Anonymous:"):
                    anon = int(line.split()[1])
        return {"mappings": maps, "anon_kib": anon}
    finally:
        server.stop()


def fork_rounds(args, argv):
    vals, info = [], {}
    for _ in range(args.rounds):
        out = subprocess.run(["taskset", "-c", SERVER_CPU, *argv],
                             capture_output=True, text=True, check=True).stdout
        vals.append(float(re.search(r"forks_per_sec (\S+)", out).group(1)))
        info = {k: int(v) for k, v in re.findall(r"^(mappings|anon_kib) (\d+)$", out, re.M)}
    return vals, info


def run_fork_limit(args, tmp, results):
    vals, info = fork_rounds(args, [args.fork_limit, "3"])
    results["fork_limit"] = vals
    results["fork_limit_process"] = info
    log(f"fork+exit+waitpid (tiny process, {info}): {vals} per second")
    if args.fork_limit_image:
        image = master_image(args, tmp)
        vals, info = fork_rounds(args, [args.fork_limit_image, "3", "0", str(image["anon_kib"])])
        results["fork_limit_image"] = vals
        results["fork_limit_image_process"] = info
        results["perconn_master"] = image
        log(f"fork+exit+waitpid (our image, {info}; master {image}): {vals} per second")


def run_memory(args, tmp, results):
    mem = {}
    n = args.idle_conns
    for name in ("ours", "nginx"):
        servers = make_servers(args, tmp, [name], extra_ours=["--set", "max_connections=20000"],
                               nginx_conns=n + 2000)
        s = servers[name]
        s.start()
        try:
            verify(s, "keep-alive")
            subprocess.run(["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c10", "-d1s",
                            f"http://127.0.0.1:{s.port}/"], capture_output=True, check=True)
            time.sleep(0.5)
            workers = s.workers()
            before = {"master_kib": rss_kib(s.pid), "master_pss_kib": pss_kib(s.pid),
                      "workers_kib": [rss_kib(p) for p in workers],
                      "workers_pss_kib": [pss_kib(p) for p in workers]}
            client = subprocess.Popen(
                ["taskset", "-c", CLIENT_CPU, sys.executable, os.path.join(HERE, "idle_conns.py"),
                 "127.0.0.1", str(s.port), str(n)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            line = client.stdout.readline().strip()
            if not line.startswith("ready"):
                client.kill()
                client.wait()
                raise RuntimeError(f"idle_conns: {line!r}")
            time.sleep(1.0)
            after = {"master_kib": rss_kib(s.pid),
                     "workers_kib": [rss_kib(p) for p in s.workers()]}
            still = subprocess.run(["ss", "-Htn", "state", "established", f"sport = :{s.port}"],
                                   capture_output=True, text=True).stdout.count("\n")
            client.stdin.close()
            client.wait(timeout=60)
            growth = (sum(after["workers_kib"]) + after["master_kib"]
                      - sum(before["workers_kib"]) - before["master_kib"])
            mem[name] = {"idle": before, "loaded": after, "connections": n,
                         "established_at_measure": still,
                         "bytes_per_conn": growth * 1024 / n,
                         "client": line}
            log(f"memory {name}: idle {before}, with {n} idle conns {after} -> "
                f"{growth * 1024 / n:.0f} B/conn ({still} established)")
        finally:
            s.stop()
    results["memory"] = mem


def run_micro(args, results):
    out = subprocess.run(["taskset", "-c", SERVER_CPU, args.micro, "--benchmark_format=json",
                          "--benchmark_min_time=1", "--benchmark_repetitions=3",
                          "--benchmark_report_aggregates_only=true"],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    results["micro"] = [b for b in data["benchmarks"] if b.get("aggregate_name") == "median"]
    for b in results["micro"]:
        log(f"micro {b['name']}: {b['cpu_time']:.0f} {b['time_unit']}")


def run_profile(args, tmp, results):
    """Instructions per request under callgrind (user space only), and syscalls per request
    under strace -c, for our worker and nginx's, in keep-alive and pipelined."""
    prof = {"callgrind": {}, "strace": {}}
    # Instructions of the worker process under load minus those of an identical run without
    # load (start-up, the master's part before fork, the checks): per function and in total.
    def annotate(path):
        ann = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
                             capture_output=True, text=True).stdout
        m = re.search(r"^([\d,]+).*PROGRAM TOTALS", ann, re.M)
        fns = {}
        for line in ann.splitlines():
            m2 = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)$", line)
            if m2 and "PROGRAM TOTALS" not in line:
                fns[m2.group(2)] = fns.get(m2.group(2), 0) + int(m2.group(1).replace(",", ""))
        return (int(m.group(1).replace(",", "")) if m else 0), fns

    def worker_dump(s, outdir, load_seconds):
        s.start()
        try:
            time.sleep(2)
            verify(s, "keep-alive")
            worker = s.workers()[-1]
            r = run_wrk(s, "keep-alive", load_seconds) if load_seconds else {"requests": 0}
        finally:
            s.stop()
        path = os.path.join(outdir, f"callgrind.out.{worker}")
        return path, r["requests"]

    if shutil.which("valgrind") and shutil.which("callgrind_annotate"):
        for name in ("ours", "nginx"):
            outdir = os.path.join(tmp, f"callgrind-{name}")
            os.makedirs(outdir, exist_ok=True)
            os.chmod(tmp, 0o755)  # nginx's worker writes its dump after dropping root
            os.chmod(outdir, 0o1777)
            runs = []
            for load in (0, args.profile_seconds):
                s = make_servers(args, tmp, [name])[name]
                s.argv = ["valgrind", "--tool=callgrind", "--trace-children=yes",
                          f"--callgrind-out-file={outdir}/callgrind.out.%p"] + s.argv
                runs.append(worker_dump(s, outdir, load))
            (base_path, _), (load_path, requests) = runs
            if not (os.path.exists(base_path) and os.path.exists(load_path)) or not requests:
                log(f"callgrind {name}: missing dumps in {outdir}")
                continue
            base_total, base_fns = annotate(base_path)
            total, fns = annotate(load_path)
            diff = sorted(((v - base_fns.get(k, 0), k) for k, v in fns.items()), reverse=True)
            net = total - base_total
            top = [(v, 100.0 * v / net, k) for v, k in diff[:15]]
            prof["callgrind"][name] = {"requests": requests, "ir_per_request": net / requests,
                                      "top": top}
            shutil.copy(load_path, os.path.join(args.results_dir, f"callgrind.{name}.out"))
            log(f"callgrind {name}: {net / requests:.0f} Ir/request")
    if shutil.which("strace"):
        for name in ("ours", "nginx"):
            for scenario in ("keep-alive", "pipelined"):
                s = make_servers(args, tmp, [name])[name]
                s.start()
                try:
                    verify(s, scenario)
                    worker = s.workers()[-1]
                    out = os.path.join(tmp, f"strace-{name}-{scenario}.txt")
                    st = subprocess.Popen(["strace", "-c", "-o", out, "-p", str(worker)],
                                          stderr=subprocess.DEVNULL)
                    time.sleep(0.5)
                    r = run_wrk(s, scenario, 3)
                    st.send_signal(signal.SIGINT)
                    st.wait(timeout=30)
                finally:
                    s.stop()
                calls = {}
                with open(out) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                            calls[parts[-1]] = int(parts[3])
                per = {k: v / max(r["requests"], 1) for k, v in sorted(calls.items(),
                                                                    key=lambda kv: -kv[1])}
                prof["strace"][f"{name}/{scenario}"] = {"requests": r["requests"],
                                                        "per_request": per}
                log(f"strace {name} {scenario}: " +
                    ", ".join(f"{k} {v:.3f}" for k, v in list(per.items())[:6]))
    results["profile"] = prof


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--fork-limit", required=True)
    ap.add_argument("--fork-limit-image", default="",
                    help="fork_limit linked as prefork-httpd is (bench/run.sh builds it)")
    ap.add_argument("--micro", required=True)
    ap.add_argument("--results-dir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--profile-seconds", type=int, default=5)
    ap.add_argument("--only", default="load,fork,memory,micro,profile")
    ap.add_argument("--scenarios", default="",
                    help="load scenarios to run, comma-separated (default: all)")
    ap.add_argument("--versions", default="{}")
    args = ap.parse_args()
    args.versions = json.loads(args.versions)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args.nofile = hard
    if hard < args.idle_conns + 1024:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} is too low for {args.idle_conns} connections")
    os.makedirs(args.results_dir, exist_ok=True)
    results = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "rounds": args.rounds,
               "duration": args.duration}
    only = args.only.split(",")
    tmp = tempfile.mkdtemp(prefix="prefork-bench-")
    args.busybox = shutil.which("busybox") or "busybox"
    for attr in ("binary", "busybox", "fork_limit", "fork_limit_image"):
        if getattr(args, attr) and os.path.exists(getattr(args, attr)):
            setattr(args, attr, fresh_copy(getattr(args, attr), tmp))
    try:
        if "load" in only:
            run_load(args, tmp, results)
        if "fork" in only:
            run_fork_limit(args, tmp, results)
        if "memory" in only:
            run_memory(args, tmp, results)
        if "micro" in only:
            run_micro(args, results)
        if "profile" in only:
            run_profile(args, tmp, results)
    finally:
        with open(os.path.join(args.results_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        keep = os.path.join(args.results_dir, "logs")
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(tmp, keep, ignore=shutil.ignore_patterns("callgrind.out.*", "www"))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
