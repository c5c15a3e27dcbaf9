#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: what a by-name GET of one VM costs as the VMs grow, for one
or more builds of vmhostd side by side in one run (e.g. before and after a
change to the record table).

    tests/bench/lookup-scale.py [--vms 100,10000] [--requests N]
                                [--runs R] BUILDDIR...

Each BUILDDIR is a build tree without --enable-sanitizers holding at least
core/vmhostd and the mock and rest plugins.  For each build it starts
vmhostd (mocks + rest on cleartext HTTP/2, state dir in a temporary
directory, pinned to the last CPU when there are two or more), creates
VMs up to each count in --vms through POST /api/v1/vms, and at each count
prints the medians over --runs h2load runs (-c 10 -m 10) of vmhostd's CPU
time per request (utime + stime from /proc/PID/stat) for GET of the VM
created first and of the one created last, by name and by id.  The last
line per build is the ratio of the largest count's by-name cost to the
smallest's (the target of issue 20: <= 1.2x).
"""
import argparse
import concurrent.futures
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
h2 = importlib.import_module("rest-h2load")


def start(builddir, tmp, port, cpus, pool_keys=""):
    """vmhostd of builddir on port; pool_keys: more flow-style keys of the
    mock pool (", max_volumes: 100000")."""
    plugin_dirs = subprocess.run(
        ["find", os.path.join(builddir, "plugins"), "-type", "d", "-name",
         ".libs"], capture_output=True, text=True).stdout.split()
    env = dict(os.environ, VMHOST_PLUGIN_DIR=":".join(sorted(plugin_dirs)))
    with open(f"{tmp}/vmhostd.yaml", "w") as f:
        f.write(f"""daemon:
  state_dir: state
  log: {{ level: warn }}
  reconcile_interval: 0
hypervisors: [ {{ name: hv0, plugin: mock, max_vms: 1000000 }} ]
storage: [ {{ name: pool0, plugin: mock{pool_keys} }} ]
networks: [ {{ name: net0, plugin: mock }} ]
frontends:
  - name: rest
    plugin: rest
    access_log: false
    listen: [ {{ address: "127.0.0.1:{port}" }} ]
    limits: {{ requests_per_second: 1000000 }}
""")
    cmd = [os.path.join(builddir, "core", "vmhostd"), "--config",
           f"{tmp}/vmhostd.yaml"]
    if cpus:
        cmd = ["taskset", "-c", cpus[0]] + cmd
    return subprocess.Popen(cmd, env=env,
                            stderr=open(f"{tmp}/vmhostd.log", "w"))


def create(base, names):
    def one(name):
        req = urllib.request.Request(
            base + "/api/v1/vms", method="POST",
            data=json.dumps({"name": name, "vcpus": 1,
                             "memory": 1 << 28}).encode(),
            headers={"content-type": "application/json",
                     "authorization": h2.AUTH[1].split(": ", 1)[1]})
        return json.load(urllib.request.urlopen(req))["id"]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        return list(ex.map(one, names))


def cost(pid, url, args, cpus):
    h2.h2load([url], 1000, 10, 10, cpus)  # warm up
    runs = []
    for _ in range(args.runs):
        c0 = h2.cpu_s(pid)
        h2.h2load([url], args.requests, 10, 10, cpus)
        runs.append((h2.cpu_s(pid) - c0) / args.requests * 1e6)
    return statistics.median(runs)


def bench(builddir, counts, args, cpus):
    tmp = tempfile.mkdtemp(prefix="lookup-bench.")
    port = h2.free_port()
    vm = start(builddir, tmp, port, cpus)
    base = f"http://127.0.0.1:{port}"
    by_name = {}
    try:
        h2.wait_port(port)
        h2.use_token(tmp)
        print(f"{builddir}:")
        made = []
        for n in counts:
            names = [f"vm-{i}" for i in range(len(made), n)]
            made += create(base, names)
            first, last = "vm-0", f"vm-{n - 1}"
            row = []
            for label, key in (("first by name", first),
                               ("last by name", last),
                               ("last by id", made[-1])):
                c = cost(vm.pid, f"{base}/api/v1/vms/{key}", args, cpus)
                row.append(f"{label} {c:6.1f}")
                if label == "last by name":
                    by_name[n] = c
            print(f"  {n:6} VMs: us CPU/GET: " + ", ".join(row), flush=True)
        lo, hi = min(counts), max(counts)
        print(f"  by-name GET at {hi} VMs / at {lo}: "
              f"{by_name[hi] / by_name[lo]:.2f}x (target <= 1.2x)")
    finally:
        vm.terminate()
        vm.wait()
        shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", default="100,10000")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("builddirs", nargs="+")
    args = ap.parse_args()
    if not shutil.which("h2load"):
        sys.exit("h2load is not installed (package nghttp2-client)")
    counts = sorted(int(n) for n in args.vms.split(","))
    cpus = h2.pin()
    print(f"medians of {args.runs} runs of h2load -n {args.requests} "
          f"-c 10 -m 10; vmhostd pinned to CPU {cpus[0] if cpus else 'no'}")
    for b in args.builddirs:
        bench(os.path.abspath(b), counts, args, cpus)


if __name__ == "__main__":
    main()
