#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The cloud-hypervisor plugin's cost over talking to the VMMs directly.

N VMs, one after the other, each created, seen running and deleted:
through vmhostd (ctl: vm_create with start, vm_get live, vm_delete; the
plugin spawns the VMM, waits for vmm.ping, vm.create, vm.boot, then
vm.info, vm.delete, vmm.shutdown and reaps it) and, in the same run, the
same sequence by hand: the stand-in cloud-hypervisor spawned with the same
flags, curl polling vmm.ping until the socket answers, then one curl with
--next for vm.create (the same VmConfig), vm.boot, vm.info, vm.delete and
vmm.shutdown on one kept-alive connection, and a wait for the exit.  Both
run the fake VMM (tests/fakech.py); figures are printed, never asserted.
The target: vmhostd's wall time at most 1.2 x the direct one.

vmhostd runs twice per run: with its state directory on the disk (every VM
record and the plugin's own record written with fsync, as in production)
and on tmpfs (/dev/shm: the same code, fsyncs for free), which separates
the price of durable records from the rest.  Each figure is the median of
--runs runs; the three measurements of a run follow each other.

    tests/bench/cloud-hypervisor.py --builddir BUILD [--vms 200] [--runs 3]

Build BUILD without --enable-sanitizers for meaningful figures.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ap = argparse.ArgumentParser()
ap.add_argument("--builddir", required=True)
ap.add_argument("--vms", type=int, default=200)
ap.add_argument("--runs", type=int, default=3)
args = ap.parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

benchlib.setup(os.path.abspath(args.builddir))
# chtest finds the fake VMM beside it in the source tree.
os.environ.setdefault("srcdir", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), ".."))
import chtest  # noqa: E402
from vmhtest import Daemon  # noqa: E402
from benchlib import cpu_s  # noqa: E402

SPEC = {"vcpus": 1, "memory": 128 << 20, "disks": [], "nics": []}


def through_vmhostd(parent=None):
    """(wall s, vmhostd CPU s) for the VMs, the daemon's files in a new
    directory under parent (None: the default temporary directory)."""
    tmp = tempfile.mkdtemp(prefix="vmhbench.", dir=parent)
    # The fake VMM's VMs count against this machine (admission control):
    # room for --vms of them, up to 100 per CPU.
    d = Daemon(chtest.config(body_extra="resources: { reserved_cpus: 0, "
                             "cpu_overcommit: 100 }"),
               tmp=tmp, log_level="info")
    try:
        d.start()
        c0 = cpu_s(d.proc.pid)
        t = time.monotonic()
        for i in range(args.vms):
            name = f"b{i}"
            d.ok(op="vm_create", spec=dict(SPEC, name=name))
            st = d.ok(op="vm_get", vm=name, live=True)["vms"][0]["state"]
            assert st == "running", st
            d.ok(op="vm_delete", vm=name)
        wall = time.monotonic() - t
        cpu = cpu_s(d.proc.pid) - c0
        d.stop()
        return wall, cpu
    finally:
        chtest.kill_vmms(tmp)
        if d.proc:
            d.proc.kill()
        subprocess.run(["rm", "-rf", tmp])


def curl(sock, *args):
    return subprocess.run(["curl", "-sf", "--unix-socket", sock, *args],
                          capture_output=True, text=True)


def direct():
    """(wall s) for the same sequence with curl."""
    tmp = tempfile.mkdtemp(prefix="vmhbench.")
    try:
        t = time.monotonic()
        for _ in range(args.vms):
            vid = str(uuid.uuid4())
            sock = os.path.join(tmp, vid + ".sock")
            ev = os.path.join(tmp, vid + ".events")
            os.mkfifo(ev)
            evfd = os.open(ev, os.O_RDWR | os.O_NONBLOCK)
            with open(os.path.join(tmp, vid + ".log"), "ab") as log:
                p = subprocess.Popen(
                    ["cloud-hypervisor", "--api-socket", "path=" + sock,
                     "--event-monitor", "path=" + ev],
                    stdout=log, stderr=log, start_new_session=True)
            url = "http://localhost/api/v1/"
            while curl(sock, url + "vmm.ping").returncode != 0:
                time.sleep(0.005)
            cfg = {"cpus": {"boot_vcpus": 1, "max_vcpus": 1},
                   "memory": {"size": 128 << 20},
                   "payload": {"firmware": "/fake/CLOUDHV.fd"},
                   "disks": [], "net": [], "rng": {"src": "/dev/urandom"},
                   "serial": {"mode": "Socket",
                              "socket": os.path.join(tmp, vid + ".console")},
                   "console": {"mode": "Off"},
                   "platform": {"system_uuid": vid}}
            # --next resets every option: each request names the socket.
            u = ["--unix-socket", sock]
            r = curl(sock, "-X", "PUT", "-H", "Content-Type: application/json",
                     "-d", json.dumps(cfg), url + "vm.create",
                     "--next", *u, "-X", "PUT", url + "vm.boot",
                     "--next", *u, url + "vm.info",
                     "--next", *u, "-X", "PUT", url + "vm.delete",
                     "--next", *u, "-X", "PUT", url + "vmm.shutdown")
            assert '"state": "Running"' in r.stdout, r.stdout + r.stderr
            p.wait()
            os.close(evfd)
            for suffix in (".sock", ".events", ".console", ".log"):
                try:
                    os.unlink(os.path.join(tmp, vid + suffix))
                except OSError:
                    pass
        return time.monotonic() - t
    finally:
        subprocess.run(["rm", "-rf", tmp])


ctl = chtest.setup()
rows = []
for run in range(args.runs):
    disk = through_vmhostd()
    shm = through_vmhostd("/dev/shm")
    wall_d = direct()
    rows.append((disk, shm, wall_d))
    print(f"run {run + 1}: vmhostd {disk[0]:.2f} s (tmpfs {shm[0]:.2f} s), "
          f"curl direct {wall_d:.2f} s", flush=True)
os.unlink(ctl.path)
n = args.vms
wd = statistics.median(r[2] for r in rows)
print(f"\n{n} VMs created, running, deleted (median of {args.runs} runs):")
for label, k in (("vmhostd, state on disk ", 0), ("vmhostd, state on tmpfs", 1)):
    wv = statistics.median(r[k][0] for r in rows)
    cv = statistics.median(r[k][1] for r in rows)
    print(f"  {label}  {wv:7.2f} s wall  {wv / n * 1000:6.1f} ms/VM  "
          f"vmhostd CPU {cv / n * 1000:5.2f} ms/VM  ratio {wv / wd:4.2f} x")
print(f"  curl direct              {wd:7.2f} s wall  {wd / n * 1000:6.1f} "
      "ms/VM")
print("  (target: ratio <= 1.2)")
