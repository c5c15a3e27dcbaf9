#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmhostctl's cost per command, beside curl making the same request in the
same run: N runs each of `vm list` (h2c; --output json and the table), and
of the same list over TLS verified against the node's certificate, on a
vmhostd with the mocks and a few VMs.  Wall time and CPU (user + system,
of the client process) per call; the daemon's share is the same for both
clients.

Run by hand on a build without sanitizers, from the top of the tree:

    python3 tests/bench/vmhostctl.py [--runs 200] [--vms 20] [--builddir .]

Figures are printed, never asserted.
"""
import argparse
import os
import resource
import subprocess
import time

import benchlib

ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=200)
ap.add_argument("--vms", type=int, default=20)
ap.add_argument("--builddir", default=".")
a = ap.parse_args()
benchlib.setup(os.path.abspath(a.builddir))
from resttest import RestDaemon  # noqa: E402

CTL = os.path.join(os.path.abspath(a.builddir), "cli", "vmhostctl")


def measure(argv):
    """Mean wall and CPU milliseconds of argv per run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for _ in range(a.runs):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - \
        (before.ru_utime + before.ru_stime)
    return wall / a.runs * 1000, cpu / a.runs * 1000


with RestDaemon() as d:
    for i in range(a.vms):
        subprocess.run([CTL, "--url", d.base, "vm", "create", f"b{i}",
                        "--vcpus", "1", "--memory", "64M", "--disk",
                        "vda,size=1G", "--nic", "net0"], check=True,
                       stdout=subprocess.DEVNULL)
    ca = d.cert_path()
    cases = (
        ("vmhostctl vm list -o json (h2c)",
         [CTL, "--url", d.base, "vm", "list", "-o", "json"]),
        ("vmhostctl vm list, table (h2c)",
         [CTL, "--url", d.base, "vm", "list"]),
        ("curl --http2-prior-knowledge",
         ["curl", "-sS", "--http2-prior-knowledge", d.base + "/api/v1/vms"]),
        ("vmhostctl vm list -o json (TLS)",
         [CTL, "--url", d.tls_base, "--cacert", ca, "vm", "list", "-o",
          "json"]),
        ("curl --cacert (TLS, ALPN h2)",
         ["curl", "-sS", "--cacert", ca, d.tls_base + "/api/v1/vms"]),
    )
    print(f"{a.runs} runs each, {a.vms} VMs listed")
    for name, argv in cases:
        wall, cpu = measure(argv)
        print(f"  {name:34s} {wall:7.2f} ms wall  {cpu:6.2f} ms CPU per call")
