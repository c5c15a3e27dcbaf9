#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: GET /api/v1/vms of many VMs, for one or more builds of
vmhostd side by side in one run (e.g. main and a branch).

    tests/bench/list-scale.py [--vms 10000] [--runs 10] BUILDDIR...

Each BUILDDIR is a build tree without --enable-sanitizers holding
core/vmhostd and the mock and rest plugins.  For each build it starts
vmhostd as tests/bench/lookup-scale.py does (mocks + rest on cleartext,
pinned to one CPU when there are two or more), creates --vms VMs, then
prints, for lists over one kept-alive HTTP/1.1 connection (the body read,
not parsed):

  - first:     the first list after the creates (nothing encoded yet);
  - changed:   a list after one VM changed (pause or resume between
               lists): median of --runs;
  - unchanged: a list again, nothing changed: median of --runs;
  - page:      a page of 100 (limit=100) from the middle: median;
  - vmhostd's CPU per list (utime + stime over the changed and unchanged
    runs), the answer's size, and its RSS before the first list and after
    all of them (the target of issue 20: after <= 1.5x before).
"""
import argparse
import http.client
import importlib
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
h2 = importlib.import_module("rest-h2load")
ls = importlib.import_module("lookup-scale")


class Client:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.auth = {"authorization": h2.AUTH[1].split(": ", 1)[1]}

    def get(self, path, may_refuse=False):
        """(seconds, body bytes); None when refused and may_refuse (a
        build without pages)."""
        t = time.perf_counter()
        self.c.request("GET", path, headers=self.auth)
        r = self.c.getresponse()
        body = r.read()
        if r.status == 400 and may_refuse:
            return None
        if r.status != 200:
            sys.exit(f"GET {path}: {r.status} {body[:200]!r}")
        return time.perf_counter() - t, body

    def post(self, path):
        self.c.request("POST", path, body=b"{}", headers=dict(
            self.auth, **{"content-type": "application/json"}))
        r = self.c.getresponse()
        r.read()


def bench(builddir, n, runs, cpus):
    vm = ls.start(builddir, cpus)
    port = vm.port
    try:
        ls.create(vm.base, [f"vm-{i}" for i in range(n)])
        time.sleep(1)
        c = Client(port)
        rss0 = benchlib.rss_kb(vm.pid)
        first, body = c.get("/api/v1/vms")
        changed, unchanged, page = [], [], []
        cpu0 = benchlib.cpu_s(vm.pid)
        for i in range(runs):
            c.post(f"/api/v1/vms/vm-{n // 2}/{'pause' if i % 2 == 0 else 'resume'}")
            changed.append(c.get("/api/v1/vms")[0])
            unchanged.append(c.get("/api/v1/vms")[0])
        cpu = (benchlib.cpu_s(vm.pid) - cpu0) / (2 * runs)
        for _ in range(runs):
            p = c.get(f"/api/v1/vms?limit=100&state=running", True)
            if p:
                page.append(p[0])
        time.sleep(0.5)
        rss1 = benchlib.rss_kb(vm.pid)
        def ms(v):
            return f"{statistics.median(v) * 1e3:7.1f} ms" if v else "n/a"

        print(f"{builddir}: {n} VMs, answer {len(body) / 1e6:.1f} MB")
        print(f"  first {first * 1e3:7.1f} ms, changed {ms(changed)}, "
              f"unchanged {ms(unchanged)}, page of 100 {ms(page)}")
        print(f"  vmhostd CPU per list (changed + unchanged): "
              f"{cpu * 1e3:.1f} ms")
        print(f"  RSS before the first list {rss0 / 1024:.1f} MiB, after "
              f"{2 * runs + runs + 1} lists {rss1 / 1024:.1f} MiB: "
              f"{rss1 / rss0:.2f}x (target <= 1.5x)", flush=True)
    finally:
        vm.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("builddirs", nargs="+")
    args = ap.parse_args()
    cpus = benchlib.pin()
    print(f"vmhostd pinned to CPU {cpus[0] if cpus else 'no'}; medians of "
          f"{args.runs} lists")
    for b in args.builddirs:
        bench(os.path.abspath(b), args.vms, args.runs, cpus)


if __name__ == "__main__":
    main()
