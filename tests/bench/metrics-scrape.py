#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: the cost of a Prometheus scrape (GET /metrics) as VMs grow,
beside GET /api/v1/vms of the same VMs measured in the same run.

    tests/bench/metrics-scrape.py [--vms 100,10000] [--runs 20] BUILDDIR...

Each BUILDDIR is a build tree without --enable-sanitizers holding
core/vmhostd and the mock and rest plugins.  For each build and each count
it starts vmhostd as tests/bench/lookup-scale.py does (mocks + rest on
cleartext, pinned to one CPU when there are two or more), creates the VMs,
then over one kept-alive HTTP/1.1 connection prints, medians of --runs:
the scrape's wall time, vmhostd's CPU per scrape (utime + stime), the
scrape's size and series; the same for a full list of the VMs (the
reference: the other answer that grows with the VMs); vmhostd's RSS
before and after.  Figures are printed, never asserted.
"""
import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
h2 = importlib.import_module("rest-h2load")
ls = importlib.import_module("lookup-scale")
lst = importlib.import_module("list-scale")


def measure(c, pid, path, runs):
    """(median wall s, CPU s per request, body) of GET path."""
    c.get(path)  # warm
    walls = []
    cpu0 = h2.cpu_s(pid)
    for _ in range(runs):
        t, body = c.get(path)
        walls.append(t)
    return statistics.median(walls), (h2.cpu_s(pid) - cpu0) / runs, body


def bench(builddir, n, runs, cpus):
    tmp = tempfile.mkdtemp(prefix="metrics-bench.")
    port = h2.free_port()
    vm = ls.start(builddir, tmp, port, cpus)
    try:
        h2.wait_port(port)
        h2.use_token(tmp)
        ls.create(f"http://127.0.0.1:{port}", [f"vm-{i}" for i in range(n)])
        time.sleep(1)
        c = lst.Client(port)
        rss0 = h2.rss_kb(vm.pid)
        sw, scpu, sbody = measure(c, vm.pid, "/metrics", runs)
        lw, lcpu, lbody = measure(c, vm.pid, "/api/v1/vms", runs)
        rss1 = h2.rss_kb(vm.pid)
        series = sum(1 for line in sbody.split(b"\n")
                     if line and not line.startswith(b"#"))
        print(f"{builddir}: {n} VMs")
        print(f"  GET /metrics      {sw * 1e3:8.2f} ms wall, "
              f"{scpu * 1e3:8.2f} ms CPU, {len(sbody) / 1e6:6.2f} MB, "
              f"{series} series")
        print(f"  GET /api/v1/vms   {lw * 1e3:8.2f} ms wall, "
              f"{lcpu * 1e3:8.2f} ms CPU, {len(lbody) / 1e6:6.2f} MB")
        print(f"  RSS {rss0 / 1024:.1f} MiB before, {rss1 / 1024:.1f} MiB "
              f"after {2 * (runs + 1)} requests", flush=True)
    finally:
        vm.terminate()
        vm.wait()
        shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", default="100,10000")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("builddirs", nargs="+")
    args = ap.parse_args()
    cpus = h2.pin()
    print(f"vmhostd pinned to CPU {cpus[0] if cpus else 'no'}; medians of "
          f"{args.runs} requests")
    for b in args.builddirs:
        for n in (int(x) for x in args.vms.split(",")):
            bench(os.path.abspath(b), n, args.runs, cpus)


if __name__ == "__main__":
    main()
