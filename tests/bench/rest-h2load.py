#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: vmhostd's REST front-end against h2o serving the same JSON
bytes as a static file, over cleartext HTTP/2 (h2load's prior knowledge)
and over TLS (ALPN h2, the same certificate for both), side by side in one
run.

    tests/bench/rest-h2load.py [--requests N] [--runs R] [--rss-requests N]
        [--build NAME=DIR]... [--proto h2c|TLS]... [--shape C,M]...
        [--route PATH]...

Run it by hand on a build without --enable-sanitizers (numbers from an
ASan build mean nothing), from the build tree: it starts core/vmhostd
with the plugins built there (like ./run), and h2o (package h2o) and
h2load (package nghttp2-client) from PATH.  With two or more CPUs the
server is pinned to the last one and h2load to the others (taskset).
`--build NAME=DIR` (repeated) compares build trees instead, side by side:
one vmhostd of each, all pinned to the same CPU, each run of each route
taken in turn from every server (interleaved, so that a change of load
on a shared machine touches them all alike).  --proto, --shape and
--route choose a part of the table.

For each protocol, load shape (-c 10 -m 10, -c 100 -m 1, -c 1 -m 1),
route and server it prints the medians over --runs runs of the server's
CPU time per request (utime + stime of the process from /proc/PID/stat,
all threads, before and after the run: the main figure on a noisy
machine), its context switches per request (each one a thread hand-off
or a wait), requests per second and the latency percentiles p50/p99
(from h2load's per-request log).  Then each server's idle RSS, and vmhostd's
RSS after --rss-requests more requests over the three routes.  Routes:
/readyz (answered from memory), /api/v1/host (a host_info call into the
core), /api/v1/vms with 100 VMs (the records, from memory).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
# (Kept as this module's names: other benchmarks use them through it.)
from benchlib import (cpu_s, free_port, pin, pinned, plugin_path,  # noqa
                      rss_kb, start_h2o, switches, wait_port)


def make_cert(tmp):
    """A self-signed certificate and key: tmp/cert.pem, tmp/key.pem (the
    key readable by servers that drop root, as h2o does)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", f"{tmp}/key.pem",
                    "-out", f"{tmp}/cert.pem"], check=True,
                   capture_output=True)
    os.chmod(f"{tmp}/key.pem", 0o644)


def start_vmhostd(tmp, frontend, port, tls_port, cpus, top=TOP, name=""):
    """vmhostd of the build tree top (this one by default) on the mocks with
    one front-end instance (rest or rpc) on port (cleartext) and tls_port
    (tmp's certificate), no access log, no rate limit; pinned to the server
    CPU.  Its config, state and log in tmp, suffixed with name.  The
    Popen."""
    env = dict(os.environ, VMHOST_PLUGIN_DIR=plugin_path(top))
    with open(f"{tmp}/vmhostd{name}.yaml", "w") as f:
        f.write(f"""daemon:
  state_dir: state{name}
  log: {{ level: warn }}
  reconcile_interval: 0
hypervisors: [ {{ name: hv0, plugin: mock }} ]
storage: [ {{ name: pool0, plugin: mock }} ]
networks: [ {{ name: net0, plugin: mock }} ]
frontends:
  - name: {frontend}
    plugin: {frontend}
    access_log: false
    listen:
      - {{ address: "127.0.0.1:{port}" }}
      - {{ address: "127.0.0.1:{tls_port}", tls: true }}
    tls: {{ cert: {tmp}/cert.pem, key: {tmp}/key.pem }}
    limits: {{ requests_per_second: 1000000, max_connections_per_peer: 1000 }}
""")
    cmd = pinned([os.path.join(top, "core", "vmhostd"), "--config",
                  f"{tmp}/vmhostd{name}.yaml"], cpus[0] if cpus else None)
    return subprocess.Popen(cmd, env=env,
                            stderr=open(f"{tmp}/vmhostd{name}.log", "w"))


SHAPES = [(10, 10), (100, 1), (1, 1)]

# h2load's -H arguments: the admin token vmhostd wrote at its first start
# (the reference servers ignore it).
AUTH = []


def use_token(tmp, name=""):
    """Send vmhostd's admin token (in tmp's state dir) from now on; the
    -H arguments, also returned."""
    with open(f"{tmp}/state{name}/auth/admin.token") as f:
        AUTH[:] = ["-H", "authorization: Bearer " + f.read().strip()]
    return list(AUTH)


def h2load(urls, n, c, m, cpus, log=None, auth=None):
    """req/s of one h2load run; per-request latencies (us) into log; auth:
    the -H arguments (AUTH by default)."""
    cmd = ["h2load", "-n", str(n), "-c", str(c), "-m", str(m),
           *(AUTH if auth is None else auth)]
    if log:
        cmd += ["--log-file", log]
    cmd += urls
    if cpus:
        cmd = ["taskset", "-c", cpus[1]] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rate = re.search(r"finished in .*?, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded", out)
    if not rate or not ok or int(ok.group(1)) != n:
        sys.exit("h2load failed:\n" + out)
    return float(rate.group(1))


def latencies(log):
    """The durations (us) of an h2load --log-file, sorted."""
    with open(log) as f:
        return sorted(int(line.split()[2]) for line in f if line.strip())


def pct(sorted_us, p):
    return sorted_us[min(len(sorted_us) - 1, int(len(sorted_us) * p))]


def requests_of(args, shape):
    """Requests per run: a fifth with one client (each waits its turn)."""
    return args.requests if shape[0] > 1 else args.requests // 5


def run_once(pid, url, n, shape, cpus, tmp, auth=None):
    """One h2load run: (CPU us/req, switches/req, req/s, p50 us, p99 us)."""
    log = os.path.join(tmp, "h2load.log")
    if os.path.exists(log):
        os.unlink(log)  # h2load appends
    c0, s0 = cpu_s(pid), switches(pid)
    rps = h2load([url], n, shape[0], shape[1], cpus, log, auth)
    cpu = (cpu_s(pid) - c0) / n * 1e6
    sw = (switches(pid) - s0) / n
    lat = latencies(log)
    return cpu, sw, rps, pct(lat, 0.50), pct(lat, 0.99)


def report(name, runs):
    """One line of medians over runs (tuples of run_once); the CPU one."""
    med = statistics.median
    cpu, sw, rps, p50, p99 = (med(col) for col in zip(*runs))
    print(f"    {name:8} {cpu:8.1f} us CPU/req  {sw:5.2f} cs/req  "
          f"{rps:9.0f} req/s  p50 {p50 / 1000:7.3f} ms  "
          f"p99 {p99 / 1000:7.3f} ms", flush=True)
    return cpu


def measure(name, pid, url, args, shape, cpus, tmp):
    """One line: medians of CPU/request, req/s, p50, p99 over the runs."""
    n = requests_of(args, shape)
    h2load([url], min(1000, n), shape[0], shape[1], cpus)  # warm up
    return report(name, [run_once(pid, url, n, shape, cpus, tmp)
                         for _ in range(args.runs)])


class Server:
    """One server under test: its name, process, base URL per protocol and
    the -H arguments it wants."""

    def __init__(self, name, proc, bases, auth):
        self.name, self.proc, self.bases, self.auth = name, proc, bases, auth


def start_builds(args, tmp, cpus):
    """A vmhostd of each --build (this tree when none) with 100 VMs; the
    Servers."""
    out = []
    for i, (name, top) in enumerate(args.build or [("vmhostd", TOP)]):
        port, tls = free_port(), free_port()
        proc = start_vmhostd(tmp, "rest", port, tls, cpus, top, str(i))
        out.append(Server(name, proc, {"h2c": f"http://127.0.0.1:{port}",
                                       "TLS": f"https://127.0.0.1:{tls}"},
                          None))
        wait_port(port)
        out[-1].auth = use_token(tmp, str(i))
        base = out[-1].bases["h2c"]
        for j in range(100):
            req = urllib.request.Request(
                base + "/api/v1/vms", method="POST",
                data=json.dumps({"name": f"vm-{j}", "vcpus": 1,
                                 "memory": 1 << 30}).encode(),
                headers={"content-type": "application/json",
                         "authorization": AUTH[1].split(": ", 1)[1]})
            urllib.request.urlopen(req).read()
    return out


def save_bodies(server, routes, docs):
    """What server answers on each route, as files under docs (for h2o)."""
    for r in routes:
        body = urllib.request.urlopen(urllib.request.Request(
            server.bases["h2c"] + r,
            headers={"authorization": server.auth[1].split(": ", 1)[1]})
        ).read()
        path = os.path.join(docs, r.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)


def compare(servers, proto, shape, route, args, cpus, tmp):
    """Every server on one route, runs interleaved: {name: CPU us/req}."""
    n = requests_of(args, shape)
    runs = {s.name: [] for s in servers}
    for s in servers:  # warm up
        h2load([s.bases[proto] + route], min(1000, n), shape[0], shape[1],
               cpus, auth=s.auth)
    for _ in range(args.runs):
        for s in servers:
            runs[s.name].append(run_once(s.proc.pid, s.bases[proto] + route,
                                         n, shape, cpus, tmp, s.auth))
    return {s.name: report(s.name, runs[s.name]) for s in servers}


def build_arg(v):
    name, sep, top = v.partition("=")
    if not sep or not os.path.isfile(os.path.join(top, "core", "vmhostd")):
        raise argparse.ArgumentTypeError(
            f"'{v}': NAME=DIR, DIR a build tree with core/vmhostd")
    return name, os.path.abspath(top)


def shape_arg(v):
    c, _, m = v.partition(",")
    return int(c), int(m)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rss-requests", type=int, default=1000000)
    ap.add_argument("--build", action="append", type=build_arg)
    ap.add_argument("--proto", action="append", choices=("h2c", "TLS"))
    ap.add_argument("--shape", action="append", type=shape_arg)
    ap.add_argument("--route", action="append")
    args = ap.parse_args()
    for tool in ("h2o", "h2load", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")
    cpus = pin()
    tmp = tempfile.mkdtemp(prefix="rest-bench.")
    os.chmod(tmp, 0o755)  # h2o started as root serves as nobody
    hport, htls = free_port(), free_port()
    make_cert(tmp)  # one certificate for all servers' TLS
    servers, h2o = [], None
    try:
        servers = start_builds(args, tmp, cpus)
        # The same bytes as files for h2o.
        routes = args.route or ["/readyz", "/api/v1/host", "/api/v1/vms"]
        docs = os.path.join(tmp, "docs")
        save_bodies(servers[0], routes, docs)
        h2o = start_h2o(tmp, docs, hport, cpus[0] if cpus else None,
                        f"""listen:
  host: 127.0.0.1
  port: {htls}
  ssl:
    certificate-file: {tmp}/cert.pem
    key-file: {tmp}/key.pem
""")
        ref = Server("h2o", h2o, {"h2c": f"http://127.0.0.1:{hport}",
                                  "TLS": f"https://127.0.0.1:{htls}"}, [])
        time.sleep(0.5)
        idle = {s.name: rss_kb(s.proc.pid) for s in servers}
        print("idle RSS: " + ", ".join(f"{k} {v} kB" for k, v in idle.items())
              + f" (100 VMs, every mock plugin, rest), h2o "
              f"{rss_kb(h2o.pid)} kB")
        print(f"medians of {args.runs} interleaved runs of h2load -n "
              f"{args.requests} (-c 1: a fifth of it); servers pinned to CPU "
              f"{cpus[0] if cpus else 'no'}")
        for proto in args.proto or ["h2c", "TLS"]:
            for shape in args.shape or SHAPES:
                print(f"{proto}, -c {shape[0]} -m {shape[1]}")
                for r in routes:
                    size = os.path.getsize(os.path.join(docs, r.lstrip("/")))
                    print(f"  {r} ({size} bytes)")
                    cpu = compare(servers + [ref], proto, shape, r, args,
                                  cpus, tmp)
                    h = cpu.pop("h2o")
                    # (Too few requests for the clock tick: no ratio.)
                    print("    CPU/request vs h2o: " + ", ".join(
                        f"{k} {v / h:.2f}x" if h else f"{k} n/a"
                        for k, v in cpu.items()) + " (target <= 1.4x)")
        for s in servers if args.rss_requests else []:
            AUTH[:] = s.auth
            before = rss_kb(s.proc.pid)
            h2load([s.bases["h2c"] + r for r in routes], args.rss_requests,
                   10, 10, cpus)
            after = rss_kb(s.proc.pid)
            print(f"{s.name}: RSS after {args.rss_requests} more requests: "
                  f"{before} -> {after} kB "
                  f"({(after - before) / before * 100:+.1f}%; "
                  f"idle at start {idle[s.name]} kB)")
    finally:
        for p in [s.proc for s in servers] + ([h2o] if h2o else []):
            p.terminate()
            p.wait()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
