#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: the volumes of one pool in pages (issue 20), for one or more
builds of vmhostd side by side in one run.  Volumes come from the storage
backend whole; the REST front-end sorts the answer by name and cuts the
page after the token's name (plugins/frontend/common/vmpage.h), so a page
costs the backend's whole list.  This measures what that costs.

    tests/bench/named-pages.py [--volumes 10000] [--runs 10] BUILDDIR...

Each BUILDDIR is a build tree without --enable-sanitizers (core/vmhostd,
the mock and rest plugins).  vmhostd runs as tests/bench/lookup-scale.py
starts it (pinned to one CPU when there are two or more); --volumes
volumes are made in pool0 (the mock), then over one kept-alive HTTP/1.1
connection, medians of --runs: the whole list; the first page of 100; a
page of 100 from the middle (after a token); and a walk through every
page of 1000; with vmhostd's CPU (utime + stime) per request.
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
P = "/api/v1/storage/pools/pool0/volumes"


def make(vm, names):
    def one(name):
        req = urllib.request.Request(
            vm.base + P, method="POST",
            data=json.dumps({"name": name, "size": 4096}).encode(),
            headers={"content-type": "application/json", **vm.auth()})
        urllib.request.urlopen(req).read()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(one, names))


class Client:
    def __init__(self, vm):
        self.c = http.client.HTTPConnection("127.0.0.1", vm.port, timeout=120)
        self.auth = vm.auth()
        self.pid = vm.pid

    def get(self, path):
        """(wall seconds, vmhostd CPU seconds, the answer)."""
        c0, t = benchlib.cpu_s(self.pid), time.perf_counter()
        self.c.request("GET", path, headers=self.auth)
        r = self.c.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit(f"GET {path}: {r.status} {body[:200]!r}")
        return time.perf_counter() - t, benchlib.cpu_s(self.pid) - c0, \
            json.loads(body)

    def walk(self, limit):
        wall = cpu = 0.0
        token, pages = "", 0
        while True:
            q = f"?limit={limit}" + (
                f"&page_token={urllib.parse.quote(token)}" if token else "")
            w, c, v = self.get(P + q)
            wall, cpu, pages = wall + w, cpu + c, pages + 1
            token = v["next_page_token"]
            if not token:
                return wall, cpu, pages


def bench(builddir, n, runs, cpus):
    vm = benchlib.Vmhostd(builddir, cpu=cpus[0] if cpus else None,
                          log_level="warn", prefix="pages-bench.",
                          pool_keys=f", max_volumes: {n}, capacity: {n * 4096}")
    try:
        make(vm, [f"vol-{i:05}" for i in range(n)])
        c = Client(vm)
        mid = c.get(f"{P}?limit={n // 2}")[2]["next_page_token"]
        rows = {"whole list": P, "first page of 100": f"{P}?limit=100",
                "page of 100 from the middle":
                f"{P}?limit=100&page_token={urllib.parse.quote(mid)}"}
        print(f"{builddir}: {n} volumes")
        for name, path in rows.items():
            got = [c.get(path)[:2] for _ in range(runs)]
            print(f"  {name:28} {statistics.median(g[0] for g in got) * 1e3:7.2f}"
                  f" ms wall, {statistics.median(g[1] for g in got) * 1e3:7.2f}"
                  f" ms vmhostd CPU")
        wall, cpu, pages = c.walk(1000)
        print(f"  walk in pages of 1000        {wall * 1e3:7.2f} ms wall, "
              f"{cpu * 1e3:7.2f} ms vmhostd CPU ({pages} pages)", flush=True)
    finally:
        vm.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--volumes", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("builddirs", nargs="+")
    args = ap.parse_args()
    cpus = benchlib.pin()
    print(f"vmhostd pinned to CPU {cpus[0] if cpus else 'no'}; medians of "
          f"{args.runs} requests")
    for b in args.builddirs:
        bench(os.path.abspath(b), args.volumes, args.runs, cpus)


if __name__ == "__main__":
    main()
