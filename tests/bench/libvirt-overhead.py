#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Overhead of vmhostd over direct libvirt on test:///default.

N cycles of define+start / power off / undefine of a VM without disks or
NICs: through vmhostd's core (vm_create, vm_action stop force, vm_delete,
with the libvirt plugin on test:///default) and, in the same run, a plain
C loop calling libvirt (libvirt-direct.c, compiled here with cc and
pkg-config).  Figures are printed, never asserted.

vmhostd is driven two ways: through the test front-end (ctl: a unix
socket, a connection and a thread per call) and through the REST
front-end (HTTP/1.1 on one kept-alive connection, as an API client
would).

vmhostd runs twice: with its state directory on the disk (every VM record
written with fsync, as in production) and on tmpfs (/dev/shm: the same
code, the fsyncs cost nothing), which separates the price of durable
records from the rest of the core.  The main figure is CPU time per cycle
(vmhostd's from /proc/PID/stat, the C loop's own), steadier on a busy
machine than wall-clock time; the round trip of a read served from memory
(listing VMs) shows the floor each front-end and its Python client add to
each call.  Each figure is the median of --runs runs.

    tests/bench/libvirt-overhead.py --builddir BUILD [--cycles 1000] [--runs 3]

Build BUILD without --enable-sanitizers for meaningful figures.
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--builddir", required=True)
ap.add_argument("--cycles", type=int, default=1000)
ap.add_argument("--runs", type=int, default=3)
args = ap.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
tests = os.path.join(os.path.abspath(args.builddir), "tests")
os.environ["builddir"] = tests
os.environ.setdefault("VMHOSTD", os.path.join(args.builddir, "core", "vmhostd"))
os.environ["VMHOST_PLUGIN_DIR"] = subprocess.run(
    f"find {os.path.abspath(args.builddir)}/plugins -path '*/.libs/*-*.so' "
    "-exec dirname {} + | sort -u | paste -sd: -", shell=True,
    capture_output=True, text=True).stdout.strip()
sys.path.insert(0, os.path.join(here, ".."))
from resttest import RestDaemon  # noqa: E402
from vmhtest import Daemon  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
CFG = """
hypervisors:
  - { name: hv0, plugin: libvirt, uri: "test:///default" }
storage:
  - { name: pool0, plugin: mock }
networks:
  - { name: net0, plugin: mock }
"""
SPEC = {"vcpus": 1, "memory": 128 << 20, "disks": [], "nics": []}


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # utime + stime


def through_core(tmp_parent):
    """(wall s, vmhostd CPU s, ctl round trip s) for the cycles."""
    tmp = tempfile.mkdtemp(prefix="vmhbench.", dir=tmp_parent)
    try:
        with Daemon(CFG, tmp=tmp, log_level="info") as d:
            t = time.monotonic()
            for _ in range(200):
                d.ok(op="vm_list")
            rtt = (time.monotonic() - t) / 200
            c0, t = cpu_s(d.proc.pid), time.monotonic()
            for i in range(args.cycles):
                d.ok(op="vm_create", spec={**SPEC, "name": f"bench-{i}"})
                d.ok(op="vm_action", vm=f"bench-{i}", action="stop",
                     force=True)
                d.ok(op="vm_delete", vm=f"bench-{i}")
            wall, cpu = time.monotonic() - t, cpu_s(d.proc.pid) - c0
            d.stop()
    finally:
        subprocess.run(["rm", "-rf", tmp])
    return wall, cpu, rtt


def through_rest(tmp_parent):
    """(wall s, vmhostd CPU s, round trip s) for the cycles, over REST."""
    tmp = tempfile.mkdtemp(prefix="vmhbench.", dir=tmp_parent)
    try:
        # No access log (the other paths log no line per call either); no
        # rate limit in the way of one busy connection.
        rest = ("    access_log: false\n"
                "    limits: { requests_per_second: 1000000 }\n")
        with RestDaemon(rest=rest, body=CFG, tmp=tmp,
                        log_level="info") as d:
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)

            def call(method, path, body=None):
                c.request(method, path,
                          body=None if body is None else json.dumps(body),
                          headers={"content-type": "application/json",
                                   **d.auth()})
                r = c.getresponse()
                data = r.read()
                if r.status >= 300:
                    sys.exit(f"{method} {path}: {r.status} {data!r}")

            t = time.monotonic()
            for _ in range(200):
                call("GET", "/api/v1/vms")
            rtt = (time.monotonic() - t) / 200
            c0, t = cpu_s(d.proc.pid), time.monotonic()
            for i in range(args.cycles):
                call("POST", "/api/v1/vms", {**SPEC, "name": f"bench-{i}"})
                call("POST", f"/api/v1/vms/bench-{i}/stop", {"force": True})
                call("DELETE", f"/api/v1/vms/bench-{i}")
            wall, cpu = time.monotonic() - t, cpu_s(d.proc.pid) - c0
            c.close()
            d.stop()
    finally:
        subprocess.run(["rm", "-rf", tmp])
    return wall, cpu, rtt


with tempfile.TemporaryDirectory() as tmp:
    exe = os.path.join(tmp, "libvirt-direct")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libvirt"],
                           capture_output=True, text=True,
                           check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-o", exe,
                    os.path.join(here, "libvirt-direct.c")] + flags,
                   check=True)
    runs = {"direct": [], "disk": [], "tmpfs": [], "rest": [],
            "rest-tmpfs": []}
    for _ in range(args.runs):
        out = subprocess.run([exe, "test:///default", str(args.cycles)],
                             capture_output=True, text=True,
                             check=True).stdout.split()
        runs["direct"].append((float(out[0]), float(out[1]), 0.0))
        runs["disk"].append(through_core(None))
        runs["tmpfs"].append(through_core("/dev/shm"))
        runs["rest"].append(through_rest(None))
        runs["rest-tmpfs"].append(through_rest("/dev/shm"))

med = {k: tuple(statistics.median(r[i] for r in v) for i in range(3))
       for k, v in runs.items()}
us = 1e6 / args.cycles
print(f"{args.cycles} cycles define+start/destroy/undefine on test:///default,"
      f" median of {args.runs} runs; per cycle:")
print(f"  {'':34} {'wall us':>9} {'CPU us':>9}")
names = {"direct": "direct libvirt (C loop)",
         "disk": "ctl, records on disk (fsync)",
         "tmpfs": "ctl, records on tmpfs",
         "rest": "REST, records on disk (fsync)",
         "rest-tmpfs": "REST, records on tmpfs"}
kinds = ("direct", "disk", "tmpfs", "rest", "rest-tmpfs")
for k in kinds:
    print(f"  {names[k]:34} {med[k][0] * us:9.1f} {med[k][1] * us:9.1f}")
print(f"  round trip of a list from memory (3 calls per cycle): ctl "
      f"{med['disk'][2] * 1e6:.1f} us, REST {med['rest'][2] * 1e6:.1f} us")
for k in kinds[1:]:
    print(f"  ratio {k}: wall {med[k][0] / med['direct'][0]:.1f}x, "
          f"CPU {med[k][1] / med['direct'][1]:.1f}x (target <= 1.3x)")
