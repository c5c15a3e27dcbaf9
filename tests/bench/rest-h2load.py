#!/usr/bin/env python3
"""Benchmark: vmhostd's REST front-end against h2o serving the same JSON
bytes as a static file, both over cleartext HTTP/2 (h2load's prior
knowledge), side by side in one run.

    tests/bench/rest-h2load.py [--requests N] [--clients C] [--streams M]

Run it by hand on a build without --enable-sanitizers (numbers from an
ASan build mean nothing), from the build tree: it starts core/vmhostd
with the plugins built there (like ./run), and h2o (package h2o) and
h2load (package nghttp2-client) from PATH.  With two or more CPUs the
server is pinned to the last one and h2load to the others (taskset).

For each route and server it prints requests per second, the server's
CPU time per request (utime + stime of the process from /proc/PID/stat,
all threads, before and after the run) and, once, each server's idle
RSS.  Routes: /readyz (answered from memory), /api/v1/host (a host_info
call into the core), /api/v1/vms with 100 VMs (the records, from memory).
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def pin():
    """(server cpus, client cpus) for taskset, or None with one CPU."""
    n = os.cpu_count() or 1
    if n < 2 or not shutil.which("taskset"):
        return None
    return str(n - 1), ",".join(str(i) for i in range(n - 1))


def h2load(url, args, cpus):
    cmd = ["h2load", "-n", str(args.requests), "-c", str(args.clients),
           "-m", str(args.streams), url]
    if cpus:
        cmd = ["taskset", "-c", cpus[1]] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"finished in .*?, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded", out)
    if not m or not ok or int(ok.group(1)) != args.requests:
        sys.exit("h2load failed:\n" + out)
    return float(m.group(1))


def measure(name, pid, url, args, cpus):
    h2load(url, argparse.Namespace(requests=min(1000, args.requests),
                                   clients=args.clients,
                                   streams=args.streams), cpus)  # warm up
    c0 = cpu_s(pid)
    rps = h2load(url, args, cpus)
    used = cpu_s(pid) - c0
    print(f"  {name:8} {rps:10.0f} req/s  {used / args.requests * 1e6:8.1f} "
          f"us CPU/request", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--streams", type=int, default=16)
    args = ap.parse_args()
    for tool in ("h2o", "h2load"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")
    cpus = pin()
    tmp = tempfile.mkdtemp(prefix="rest-bench.")
    os.chmod(tmp, 0o755)  # h2o started as root serves as nobody
    vport, hport = free_port(), free_port()
    plugin_dirs = subprocess.run(
        ["find", os.path.join(TOP, "plugins"), "-type", "d", "-name", ".libs"],
        capture_output=True, text=True).stdout.split()
    env = dict(os.environ, VMHOST_PLUGIN_DIR=":".join(sorted(plugin_dirs)))
    with open(f"{tmp}/vmhostd.yaml", "w") as f:
        f.write(f"""daemon:
  state_dir: state
  log: {{ level: warn }}
  reconcile_interval: 0
hypervisors: [ {{ name: hv0, plugin: mock }} ]
storage: [ {{ name: pool0, plugin: mock }} ]
networks: [ {{ name: net0, plugin: mock }} ]
frontends:
  - name: rest
    plugin: rest
    access_log: false
    listen: [ {{ address: "127.0.0.1:{vport}" }} ]
    limits: {{ requests_per_second: 1000000 }}
""")
    vcmd = [os.path.join(TOP, "core", "vmhostd"), "--config",
            f"{tmp}/vmhostd.yaml"]
    if cpus:
        vcmd = ["taskset", "-c", cpus[0]] + vcmd
    vm = subprocess.Popen(vcmd, env=env, stderr=open(f"{tmp}/vmhostd.log", "w"))
    wait_port(vport)
    base = f"http://127.0.0.1:{vport}"
    for i in range(100):
        req = urllib.request.Request(
            base + "/api/v1/vms", method="POST",
            data=json.dumps({"name": f"vm-{i}", "vcpus": 1,
                             "memory": 1 << 30}).encode(),
            headers={"content-type": "application/json"})
        urllib.request.urlopen(req).read()

    # The same bytes as files for h2o.
    routes = ["/readyz", "/api/v1/host", "/api/v1/vms"]
    docs = os.path.join(tmp, "docs")
    for r in routes:
        body = urllib.request.urlopen(base + r).read()
        path = os.path.join(docs, r.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)
    with open(f"{tmp}/h2o.conf", "w") as f:
        f.write(f"""listen: {{ host: 127.0.0.1, port: {hport} }}
num-threads: 1
access-log: /dev/null
error-log: {tmp}/h2o.log
hosts:
  default:
    paths:
      /:
        file.dir: {docs}
""")
    hcmd = ["h2o", "-c", f"{tmp}/h2o.conf"]
    if cpus:
        hcmd = ["taskset", "-c", cpus[0]] + hcmd
    h2o = subprocess.Popen(hcmd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    wait_port(hport)
    time.sleep(0.5)
    try:
        print(f"idle RSS: vmhostd {rss_kb(vm.pid)} kB (100 VMs, every mock "
              f"plugin, rest), h2o {rss_kb(h2o.pid)} kB")
        print(f"h2load -n {args.requests} -c {args.clients} -m {args.streams}"
              f", h2c; server pinned: {cpus[0] if cpus else 'no'}")
        for r in routes:
            print(r, f"({os.path.getsize(os.path.join(docs, r.lstrip('/')))}"
                  " bytes)")
            measure("vmhostd", vm.pid, base + r, args, cpus)
            measure("h2o", h2o.pid, f"http://127.0.0.1:{hport}" + r, args,
                    cpus)
    finally:
        vm.terminate()
        h2o.terminate()
        vm.wait()
        h2o.wait()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
