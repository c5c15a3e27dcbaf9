#!/usr/bin/env python3
"""Overhead of vmhostd over direct libvirt on test:///default.

N cycles of define+start / power off / undefine of a VM without disks or
NICs: through vmhostd's core (vm_create, vm_action stop force, vm_delete
over the ctl socket, with the libvirt plugin on test:///default) and, in
the same run, a plain C loop calling libvirt (libvirt-direct.c, compiled
here with cc and pkg-config).  Figures are printed, never asserted.

    tests/bench/libvirt-overhead.py --builddir BUILD [--cycles 1000]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--builddir", required=True)
ap.add_argument("--cycles", type=int, default=1000)
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
from vmhtest import Daemon  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    exe = os.path.join(tmp, "libvirt-direct")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libvirt"],
                           capture_output=True, text=True,
                           check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-o", exe,
                    os.path.join(here, "libvirt-direct.c")] + flags,
                   check=True)
    direct = float(subprocess.run([exe, "test:///default", str(args.cycles)],
                                  capture_output=True, text=True,
                                  check=True).stdout)

CFG = """
hypervisors:
  - { name: hv0, plugin: libvirt, uri: "test:///default" }
storage:
  - { name: pool0, plugin: mock }
networks:
  - { name: net0, plugin: mock }
"""
spec = {"vcpus": 1, "memory": 128 << 20, "disks": [], "nics": []}
with Daemon(CFG) as d:  # vmhtest logs at debug level
    t = time.monotonic()
    for i in range(args.cycles):
        d.ok(op="vm_create", spec={**spec, "name": f"bench-{i}"})
        d.ok(op="vm_action", vm=f"bench-{i}", action="stop", force=True)
        d.ok(op="vm_delete", vm=f"bench-{i}")
    core = time.monotonic() - t
    d.stop()

print(f"{args.cycles} cycles define+start/destroy/undefine on test:///default")
print(f"  direct libvirt (C loop):   {direct:8.3f} s  "
      f"{direct / args.cycles * 1e6:8.1f} us/cycle")
print(f"  through vmhostd (ctl):     {core:8.3f} s  "
      f"{core / args.cycles * 1e6:8.1f} us/cycle")
print(f"  ratio: {core / direct:.1f}x (target <= 1.3x)")
