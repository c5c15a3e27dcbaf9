#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The bridge network plugin's `ensure: absent`, inside a network namespace
this test makes (vmhb-*) and deletes.

Two networks: lan, a bridge the plugin creates with binding: tap (a foreign
veth is enslaved to it by the test too), and ext, a bridge the
test makes (create: false) with an uplink and binding: bridge.  A VM with a
NIC on each gets a tap on lan and a port record for ext.  Then:
  - ensure: maybe is refused by --check-config; --check-config of ensure:
    absent changes nothing;
  - vmhostd restarted with ensure: absent on both: lan's tap and bridge are
    gone (the veth released, not deleted), its "created" marker and files
    are gone; ext's bridge stays (same ifindex) with its uplink enslaved and
    the foreign port, its port record is gone;
  - the networks report down, health is OK, a create with a NIC on lan is
    refused with invalid_argument and leaves nothing; the old VM deletes;
  - a second start with ensure: absent finds nothing to do and starts.
"""
import vmhtest

vmhtest.require_netns()
import glob
import json
import os
import subprocess
import uuid

from vmhtest import VMHOSTD, Daemon, check, expect, fail, vm_spec

TAG = "vmhb-" + uuid.uuid4().hex[:6]
NS = TAG + "-h"
WRAP = ["ip", "netns", "exec", NS]
LAN, EXT = "vmhbr5", "vmhbr6"


def sh(*cmd, ok=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if ok and r.returncode != 0:
        fail(" ".join(cmd), "->", r.returncode, r.stdout, r.stderr)
    return r


def link(name):
    r = sh("ip", "-n", NS, "-j", "-d", "link", "show", "dev", name, ok=False)
    return json.loads(r.stdout)[0] if r.returncode == 0 else None


def links():
    return sorted(e["ifname"] for e in json.loads(
        sh("ip", "-n", NS, "-j", "link", "show").stdout))


def taps():
    return sorted(n for n in links() if n.startswith("vmh") and len(n) == 15)


def body(ensure="present"):
    return f"""
hypervisors:
  - {{ name: hv0, plugin: mock }}
storage:
  - {{ name: pool0, plugin: mock }}
networks:
  - name: lan
    plugin: bridge
    bridge: {LAN}
    binding: tap
    ensure: {ensure}
  - name: ext
    plugin: bridge
    bridge: {EXT}
    create: false
    uplink: vmhu0
    ensure: {ensure}
"""


def files(d):
    """The plugins' files in the state directory, relative to it."""
    root = os.path.join(d.tmp, "state")
    return sorted(os.path.relpath(p, root) for p in
                  glob.glob(os.path.join(root, "**", "*"), recursive=True)
                  if os.path.isfile(p) and ("/lan/" in p or "/ext/" in p))


def main():
    sh("ip", "netns", "add", NS)
    sh("ip", "-n", NS, "link", "set", "lo", "up")
    sh("ip", "-n", NS, "link", "add", EXT, "type", "bridge")
    sh("ip", "-n", NS, "link", "add", "vmhu0", "type", "veth", "peer", "name", "vmhu1")
    sh("ip", "-n", NS, "link", "add", "vmhfx0", "type", "veth", "peer", "name", "vmhfx1")
    sh("ip", "-n", NS, "link", "set", "vmhfx0", "master", EXT)
    sh("ip", "-n", NS, "link", "add", "vmhfl0", "type", "veth", "peer", "name", "vmhfl1")
    ext_idx = link(EXT)["ifindex"]

    d = Daemon(body(), wrapper=WRAP)
    try:
        d.start()
        check(link(LAN) is not None, "lan's bridge made")
        sh("ip", "-n", NS, "link", "set", "vmhfl0", "master", LAN)
        spec = vm_spec("vm-a", nics=2)
        spec["nics"][0]["network"] = "lan"
        spec["nics"][1]["network"] = "ext"
        vm = d.ok(op="vm_create", spec=spec)["vms"][0]
        tap = vm["nics"][0]["binding"]["tap"]
        check(taps() == [tap] and link(tap)["master"] == LAN, "tap on lan", links())
        check(link("vmhu0")["master"] == EXT, "uplink enslaved")
        have = files(d)
        check(any(f.endswith("/lan/created") for f in have), "created marker", have)
        check(sum("/ext/port-" in f for f in have) == 1, "ext's record", have)
        check(not any("/ext/created" in f for f in have), "ext adopted", have)
        check(d.stop() == 0, "SIGTERM: exit 0")

        # --check-config: a bad value is refused, absent changes nothing.
        before = links()
        d.write_config(body("maybe"))
        r = subprocess.run(WRAP + [VMHOSTD, "--check-config", "--config", d.config],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 2 and "ensure 'maybe' is not present or absent"
              in r.stdout + r.stderr, "ensure: maybe:", r.stdout, r.stderr)
        d.write_config(body("absent"))
        r = subprocess.run(WRAP + [VMHOSTD, "--check-config", "--config", d.config],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "ensure: absent checks:", r.stdout, r.stderr)
        check(links() == before and files(d) == have, "--check-config changed nothing")

        # ensure: absent removes what the plugin made, and nothing else.
        mark = len(d.log())
        d.start()
        log = d.log()[mark:]
        check(link(LAN) is None, "lan's bridge deleted", links())
        check(taps() == [], "tap deleted", links())
        fl = link("vmhfl0")
        check(fl is not None and "master" not in fl, "foreign port released", fl)
        check(link(EXT) is not None and link(EXT)["ifindex"] == ext_idx,
              "adopted bridge kept")
        check(link("vmhu0")["master"] == EXT, "its uplink left enslaved")
        check(link("vmhfx0")["master"] == EXT, "its foreign port left")
        check(files(d) == [], "marker and records removed:", files(d))
        check("network lan removed (ensure: absent): 1 tap and 0 port records "
              f"removed, bridge {LAN} deleted" in log, log)
        check("network ext removed (ensure: absent): 0 taps and 1 port record "
              f"removed, bridge {EXT} left (not made by this plugin)" in log, log)
        for name in ("lan", "ext"):
            net = d.ok(op="network_get", network=name)["networks"][0]
            check(net["up"] is False and net["n_ports"] == 0, net)
        check(d.ok(op="health")["code"] == 0, "healthy")

        # Serving nothing: a NIC on lan is refused and leaves nothing.
        before = links()
        vms = d.ok(op="vm_list")["vms"]
        spec = vm_spec("vm-b")
        spec["nics"][0]["network"] = "lan"
        r = expect(d.call(op="vm_create", spec=spec), "invalid_argument")
        check("network lan is configured ensure: absent; it binds no port"
              in r["message"], r)
        expect(d.call(op="vm_get", vm="vm-b"), "not_found")
        check(d.ok(op="vm_list")["vms"] == vms, "no VM left by the create")
        check(links() == before and files(d) == [], "nothing made")
        d.ok(op="vm_delete", vm="vm-a")
        check(d.stop() == 0, "SIGTERM: exit 0")

        # Again: nothing left to remove, the start still succeeds.
        mark = len(d.log())
        d.start()
        check("network lan removed (ensure: absent): 0 taps and 0 port "
              f"records removed, bridge {LAN} not present" in d.log()[mark:],
              d.log()[mark:])
        check(link(EXT)["ifindex"] == ext_idx, "adopted bridge kept")
        check(d.stop() == 0, "SIGTERM: exit 0")
    except BaseException:
        if d.proc:
            print(d.log())
        raise
    finally:
        if d.proc:
            d.proc.kill()
            d.proc.wait()
    subprocess.run(["rm", "-rf", d.tmp])


try:
    main()
finally:
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
