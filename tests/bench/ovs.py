#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""OVS network benchmark, on a private ovsdb-server and ovs-vswitchd
(netdev datapath, tests/ovsenv.py) in a namespace of this script's, side
by side in one run:

  1. N ports bound then unbound through vmhostd: N VMs of one NIC created
     then deleted over the ctl front-end, on an OVS network of binding: tap
     (the plugin makes the tap, adds Port + Interface with tag and
     identities, waits for ovs-vswitchd), and the same on the mock network
     (what the core, ctl and mock hypervisor cost: the difference is the
     plugin's);
  2. the same rows through ovs-vsctl, one process per call (add-port with
     tag and external_ids, then del-port; taps made beforehand);
  3. the same rows through a C loop on libopenvswitch's IDL
     (bench/ovs-direct.c, compiled here with cc; taps made beforehand);
  4. idle RSS of vmhostd with the OVS plugin loaded (connected, its IDL
     replica filled) and with the mock network instead.

Every path waits for ovs-vswitchd to apply each change (cur_cfg).  Run by
hand as root on a build without sanitizers:

    python3 tests/bench/ovs.py [--ports 200] [--builddir DIR]

Figures are printed, never asserted.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid

import benchlib

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--ports", type=int, default=200)
ap.add_argument("--builddir", default=os.path.abspath(os.path.join(HERE, "..", "..")))
a = ap.parse_args()
benchlib.setup(a.builddir)
import ovsenv  # noqa: E402
from vmhtest import Daemon, vm_spec  # noqa: E402

NS = "vmho-bench-" + uuid.uuid4().hex[:4]
WRAP = ["ip", "netns", "exec", NS]
BR = "vmhbench"
N = a.ports


def through_vmhostd(network):
    """(idle RSS KiB, bind s, unbind s) for N one-NIC VMs."""
    with Daemon(ovsenv.config(network), wrapper=WRAP, log_level="info") as d:
        time.sleep(1)  # idle: after the start, before any request
        rss = benchlib.rss_kb(d.proc.pid)
        spec = vm_spec("x", disks=0)
        t0 = time.perf_counter()
        for i in range(N):
            d.ok(op="vm_create", spec={**spec, "name": f"vm{i}"})
        t1 = time.perf_counter()
        for i in range(N):
            d.ok(op="vm_delete", vm=f"vm{i}")
        t2 = time.perf_counter()
        d.stop()
    return rss, t1 - t0, t2 - t1


def taps(prefix, make):
    for i in range(N):
        subprocess.run(["ip", "-n", NS, "tuntap", "add" if make else "del",
                        "dev", f"{prefix}{i}", "mode", "tap"], check=True)
        if make:
            subprocess.run(["ip", "-n", NS, "link", "set", f"{prefix}{i}", "up"],
                           check=True)


def through_vsctl(ovs):
    taps("vsc", True)
    t0 = time.perf_counter()
    for i in range(N):
        p = f"vsc{i}"
        ovs.vsctl("add-port", BR, p, "tag=10", "--", "set", "interface", p,
                  "external_ids:iface-id=8a5d2f0e-1c3b-8a6d-9e7f-0b1c2d3e4f50",
                  "external_ids:attached-mac=52:54:00:12:34:56",
                  "external_ids:vm-id=3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
                  "external_ids:vmhost-network=bench",
                  f"external_ids:vmhost-nic={p}")
    t1 = time.perf_counter()
    for i in range(N):
        ovs.vsctl("del-port", BR, f"vsc{i}")
    t2 = time.perf_counter()
    taps("vsc", False)
    return t1 - t0, t2 - t1


def through_idl(ovs, exe):
    taps("idl", True)
    out = subprocess.run([exe, ovs.remote, BR, "idl", str(N)], check=True,
                         capture_output=True, text=True).stdout.split()
    taps("idl", False)
    return float(out[0]), float(out[1])


def main(tmp):
    exe = os.path.join(tmp, "ovs-direct")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "openvswitch-idl"],
                           capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "ovs-direct.c")]
                   + flags, check=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    with ovsenv.Ovs(tmp, NS) as ovs:
        net = (f"  - {{ name: lan, plugin: ovs, ovsdb: \"{ovs.remote}\", "
               f"bridge: {BR}, datapath_type: netdev, binding: tap, vlan: 10 }}")
        rss_ovs, bind, unbind = through_vmhostd(net)
        rss_mock, mbind, munbind = through_vmhostd(
            "  - { name: lan, plugin: mock }")
        vs_add, vs_del = through_vsctl(ovs)
        idl_add, idl_del = through_idl(ovs, exe)

    def row(what, add, rm):
        print(f"  {what:<44} {add / N * 1e3:8.2f} ms {rm / N * 1e3:8.2f} ms "
              f"{(add + rm):7.2f} s")

    print(f"\n{N} ports, bind (add) then unbind (remove), per port and total:")
    print(f"  {'':<44} {'bind':>11} {'unbind':>11} {'total':>9}")
    row("vmhostd, OVS plugin (VM create/delete)", bind, unbind)
    row("vmhostd, mock network (the same, no OVS)", mbind, munbind)
    row("  difference: the OVS plugin's own cost", bind - mbind, unbind - munbind)
    row("ovs-vsctl, one process per call", vs_add, vs_del)
    row("direct IDL loop (ovs-direct.c)", idl_add, idl_del)
    print("\nidle RSS of vmhostd:")
    print(f"  with the OVS plugin (connected)   {rss_ovs / 1024:7.1f} MiB")
    print(f"  with the mock network instead     {rss_mock / 1024:7.1f} MiB")
    print(f"  difference                        {(rss_ovs - rss_mock) / 1024:7.1f} MiB")


tmp = tempfile.mkdtemp(prefix="vmh-bench-ovs.", dir="/var/tmp")
try:
    main(tmp)
finally:
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["rm", "-rf", tmp])
    print(f"(the taps made by the loops live in {NS}, deleted with it)",
          file=sys.stderr)
