#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: vmhostd's REST front-end against h2o serving the same JSON
bytes as a static file, over cleartext HTTP/2 (h2load's prior knowledge)
and over TLS (ALPN h2, the same certificate for both), side by side in one
run.

    tests/bench/rest-h2load.py [--requests N] [--runs R] [--rss-requests N]

Run it by hand on a build without --enable-sanitizers (numbers from an
ASan build mean nothing), from the build tree: it starts core/vmhostd
with the plugins built there (like ./run), and h2o (package h2o) and
h2load (package nghttp2-client) from PATH.  With two or more CPUs the
server is pinned to the last one and h2load to the others (taskset).

For each protocol, load shape (-c 10 -m 10, -c 100 -m 1, -c 1 -m 1),
route and server it prints the medians over --runs runs of the server's
CPU time per request (utime + stime of the process from /proc/PID/stat,
all threads, before and after the run: the main figure on a noisy
machine), requests per second and the latency percentiles p50/p99 (from
h2load's per-request log).  Then each server's idle RSS, and vmhostd's
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
                      rss_kb, start_h2o, wait_port)


def make_cert(tmp):
    """A self-signed certificate and key: tmp/cert.pem, tmp/key.pem (the
    key readable by servers that drop root, as h2o does)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", f"{tmp}/key.pem",
                    "-out", f"{tmp}/cert.pem"], check=True,
                   capture_output=True)
    os.chmod(f"{tmp}/key.pem", 0o644)


def start_vmhostd(tmp, frontend, port, tls_port, cpus):
    """vmhostd from this build tree on the mocks with one front-end instance
    (rest or rpc) on port (cleartext) and tls_port (tmp's certificate), no
    access log, no rate limit; pinned to the server CPU.  The Popen."""
    env = dict(os.environ, VMHOST_PLUGIN_DIR=plugin_path(TOP))
    with open(f"{tmp}/vmhostd.yaml", "w") as f:
        f.write(f"""daemon:
  state_dir: state
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
    cmd = pinned([os.path.join(TOP, "core", "vmhostd"), "--config",
                  f"{tmp}/vmhostd.yaml"], cpus[0] if cpus else None)
    return subprocess.Popen(cmd, env=env,
                            stderr=open(f"{tmp}/vmhostd.log", "w"))


SHAPES = [(10, 10), (100, 1), (1, 1)]

# h2load's -H arguments: the admin token vmhostd wrote at its first start
# (the reference servers ignore it).
AUTH = []


def use_token(tmp):
    """Send vmhostd's admin token (in tmp's state dir) from now on."""
    with open(f"{tmp}/state/auth/admin.token") as f:
        AUTH[:] = ["-H", "authorization: Bearer " + f.read().strip()]


def h2load(urls, n, c, m, cpus, log=None):
    """req/s of one h2load run; per-request latencies (us) into log."""
    cmd = ["h2load", "-n", str(n), "-c", str(c), "-m", str(m), *AUTH]
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


def measure(name, pid, url, args, shape, cpus, tmp):
    """One line: medians of CPU/request, req/s, p50, p99 over the runs."""
    c, m = shape
    n = args.requests if c > 1 else args.requests // 5
    h2load([url], min(1000, n), c, m, cpus)  # warm up
    cpu, rps, p50, p99 = [], [], [], []
    for _ in range(args.runs):
        log = os.path.join(tmp, "h2load.log")
        if os.path.exists(log):
            os.unlink(log)  # h2load appends
        c0 = cpu_s(pid)
        rps.append(h2load([url], n, c, m, cpus, log))
        cpu.append((cpu_s(pid) - c0) / n * 1e6)
        lat = latencies(log)
        p50.append(pct(lat, 0.50))
        p99.append(pct(lat, 0.99))
    med = statistics.median
    print(f"    {name:8} {med(cpu):8.1f} us CPU/req  {med(rps):9.0f} req/s  "
          f"p50 {med(p50) / 1000:7.3f} ms  p99 {med(p99) / 1000:7.3f} ms",
          flush=True)
    return med(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rss-requests", type=int, default=1000000)
    args = ap.parse_args()
    for tool in ("h2o", "h2load", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")
    cpus = pin()
    tmp = tempfile.mkdtemp(prefix="rest-bench.")
    os.chmod(tmp, 0o755)  # h2o started as root serves as nobody
    vport, hport = free_port(), free_port()
    vtls, htls = free_port(), free_port()
    make_cert(tmp)  # one certificate for both servers' TLS
    vm = start_vmhostd(tmp, "rest", vport, vtls, cpus)
    wait_port(vport)
    use_token(tmp)
    base = f"http://127.0.0.1:{vport}"
    for i in range(100):
        req = urllib.request.Request(
            base + "/api/v1/vms", method="POST",
            data=json.dumps({"name": f"vm-{i}", "vcpus": 1,
                             "memory": 1 << 30}).encode(),
            headers={"content-type": "application/json",
                     "authorization": AUTH[1].split(": ", 1)[1]})
        urllib.request.urlopen(req).read()

    # The same bytes as files for h2o.
    routes = ["/readyz", "/api/v1/host", "/api/v1/vms"]
    docs = os.path.join(tmp, "docs")
    for r in routes:
        body = urllib.request.urlopen(urllib.request.Request(
            base + r, headers={"authorization": AUTH[1].split(": ", 1)[1]})
        ).read()
        path = os.path.join(docs, r.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)
    h2o = start_h2o(tmp, docs, hport, cpus[0] if cpus else None, f"""listen:
  host: 127.0.0.1
  port: {htls}
  ssl:
    certificate-file: {tmp}/cert.pem
    key-file: {tmp}/key.pem
""")
    time.sleep(0.5)
    try:
        idle = rss_kb(vm.pid)
        print(f"idle RSS: vmhostd {idle} kB (100 VMs, every mock plugin, "
              f"rest), h2o {rss_kb(h2o.pid)} kB")
        print(f"medians of {args.runs} runs of h2load -n {args.requests} "
              f"(-c 1: a fifth of it); servers pinned to CPU "
              f"{cpus[0] if cpus else 'no'}")
        bases = {"h2c": (base, f"http://127.0.0.1:{hport}"),
                 "TLS": (f"https://127.0.0.1:{vtls}",
                         f"https://127.0.0.1:{htls}")}
        for proto, (vbase, hbase) in bases.items():
            for shape in SHAPES:
                print(f"{proto}, -c {shape[0]} -m {shape[1]}")
                for r in routes:
                    size = os.path.getsize(os.path.join(docs, r.lstrip("/")))
                    print(f"  {r} ({size} bytes)")
                    v = measure("vmhostd", vm.pid, vbase + r, args, shape,
                                cpus, tmp)
                    h = measure("h2o", h2o.pid, hbase + r, args, shape, cpus,
                                tmp)
                    # (Too few requests for the clock tick: no ratio.)
                    ratio = f"{v / h:.2f}x" if h else "n/a"
                    print(f"    CPU/request ratio {ratio} (target <= 1.4x)")
        if args.rss_requests:
            before = rss_kb(vm.pid)
            h2load([base + r for r in routes], args.rss_requests, 10, 10,
                   cpus)
            after = rss_kb(vm.pid)
            print(f"RSS after {args.rss_requests} more requests: {before} -> "
                  f"{after} kB ({(after - before) / before * 100:+.1f}%; "
                  f"idle at start {idle} kB)")
    finally:
        vm.terminate()
        h2o.terminate()
        vm.wait()
        h2o.wait()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
