#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The bridge network plugin end to end, inside network namespaces this test
makes (vmhb-*) and deletes.

vmhostd runs in a "host" namespace with the mock hypervisor and storage and
a bridge network with binding: tap, an MTU and an uplink.  Three VMs are
created through the core.  The plugin makes a persistent tap per NIC,
enslaved to its bridge.

With bridge VLAN filtering in the kernel (CONFIG_BRIDGE_VLAN_FILTERING,
probed first), the network has vlan_filtering: true, a and b are on VLAN 10
and c on VLAN 20 (PVID/untagged on the tap).  Without it (the kernel of the
machines this was written on lacks it), all three are untagged and a NIC
asking for a VLAN must be refused with invalid_argument, leaving no tap.  The mock hypervisor opens no tap, so the test plays
the hypervisor: for each VM it opens the plugin's tap (as QEMU or Cloud
Hypervisor would) and pumps frames between it and a veth pair whose other
end sits in a "guest" namespace (tests/tappump.py).  Then:
  - the structure is checked (bridge up, MTU, vlan_filtering, uplink, taps
    enslaved with their VLAN, alias);
  - a pings b (same VLAN, through the plugin's taps and bridge);
  - with VLANs: a cannot ping c (VLAN 20); without: a pings c too;
  - deleting c removes its tap; restarting vmhostd leaves the bridge and the
    other taps as they were (same ifindex) and a still pings b.
"""
import vmhtest

vmhtest.require_netns()
import json
import subprocess
import uuid

import tappump
from vmhtest import Daemon, check, expect, fail, vm_spec  # noqa: E402

TAG = "vmhb-" + uuid.uuid4().hex[:6]
HOST = TAG + "-h"
GUESTS = {v: f"{TAG}-{v}" for v in "abc"}
BR = "vmhbr0"
IP = {"a": "10.77.0.1", "b": "10.77.0.2", "c": "10.77.0.3"}
pumps = []


def sh(*cmd, ok=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if ok and r.returncode != 0:
        fail(" ".join(cmd), "->", r.returncode, r.stdout, r.stderr)
    return r


def hj(*cmd):
    """`ip -j` / `bridge -j` in the host namespace, parsed."""
    return json.loads(sh(*cmd[:1], "-n", HOST, "-j", *cmd[1:]).stdout or "[]")


def link(name):
    r = sh("ip", "-n", HOST, "-j", "-d", "link", "show", "dev", name, ok=False)
    return json.loads(r.stdout)[0] if r.returncode == 0 else None


def ping(src, dst_ip, tries=1):
    """One echo answered within a second, in up to `tries` attempts (a busy
    machine may be slow to resolve ARP the first time)."""
    for _ in range(tries):
        if sh("ip", "netns", "exec", GUESTS[src], "busybox", "ping", "-c", "1",
              "-W", "1", dst_ip, ok=False).returncode == 0:
            return True
    return False


def reaches(src, dst_ip):
    return ping(src, dst_ip, tries=10)


def cut_off(src, dst_ip):
    return not ping(src, dst_ip, tries=3)


def kernel_vlan_filtering():
    """Can a bridge filter VLANs here?  Asked in a scratch namespace."""
    ns = TAG + "-probe"
    sh("ip", "netns", "add", ns)
    try:
        return sh("ip", "-n", ns, "link", "add", "br0", "type", "bridge",
                  "vlan_filtering", "1", ok=False).returncode == 0
    finally:
        sh("ip", "netns", "del", ns)


def cleanup():
    for p in pumps:
        p.kill()
        p.wait()
    for ns in [HOST, *GUESTS.values()]:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main():
    vlans = kernel_vlan_filtering()
    VLAN = {"a": 10, "b": 10, "c": 20} if vlans else {"a": 0, "b": 0, "c": 0}
    print("kernel bridge VLAN filtering:", vlans)
    for ns in [HOST, *GUESTS.values()]:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    # The uplink: one end of a veth pair, the other stays in the host ns.
    sh("ip", "-n", HOST, "link", "add", "upl0", "type", "veth", "peer", "name", "upl0p")

    body = f"""
hypervisors:
  - {{ name: hv0, plugin: mock }}
storage:
  - {{ name: pool0, plugin: mock }}
networks:
  - name: lan
    plugin: bridge
    bridge: {BR}
    create: true
    mtu: 1400
    vlan_filtering: {'true' if vlans else 'false'}
    uplink: upl0
    binding: tap
"""
    with Daemon(body, wrapper=["ip", "netns", "exec", HOST]) as d:
        br = link(BR)
        check(br is not None, "bridge made")
        check(br["mtu"] == 1400 and "UP" in br["flags"], br)
        check(br["linkinfo"]["info_kind"] == "bridge", br)
        check(br["linkinfo"]["info_data"].get("vlan_filtering", 0) == vlans, br)
        check(link("upl0")["master"] == BR, "uplink enslaved")
        net = d.ok(op="network_get", network="lan")["networks"][0]
        check(net["bridge"] == BR and net["mtu"] == 1400 and net["up"], net)

        vms = {}
        for v in "abc":
            spec = vm_spec("vm-" + v, nics=1)
            spec["nics"][0]["vlan"] = VLAN[v]
            vm = d.ok(op="vm_create", spec=spec)["vms"][0]
            b = vm["nics"][0]["binding"]
            check(b["type"] == "tap" and b["tap"].startswith("vmh"), b)
            check(b["mac"].startswith("52:54:00:"), b)
            vms[v] = (vm["id"], b["tap"])
        taps = {v: vms[v][1] for v in vms}
        check(len(set(taps.values())) == 3, "three taps:", taps)

        # Structure of each tap: ours, on the bridge, MTU, VLAN, alias.
        vl = {e["ifname"]: e["vlans"] for e in hj("bridge", "vlan", "show")}
        for v, tap in taps.items():
            t = link(tap)
            check(t is not None, "tap", tap, "exists")
            check(t["master"] == BR and t["mtu"] == 1400, t)
            check(t["linkinfo"]["info_kind"] == "tun", t)
            check(t.get("ifalias", "").startswith(f"vmhost {vms[v][0]} "), t)
            if vlans:
                check(vl.get(tap) == [{"vlan": VLAN[v], "flags": ["PVID", "Egress Untagged"]}],
                      tap, vl.get(tap))
        net = d.ok(op="network_get", network="lan")["networks"][0]
        check(net["n_ports"] == 4, "3 taps + uplink:", net)

        # Play the hypervisor: open each tap, wire it to a guest namespace.
        for v, tap in taps.items():
            sh("ip", "-n", HOST, "link", "add", "w" + v, "type", "veth", "peer",
               "name", "eth0", "netns", GUESTS[v])
            sh("ip", "-n", HOST, "link", "set", "w" + v, "up")
            sh("ip", "-n", GUESTS[v], "addr", "add", IP[v] + "/24", "dev", "eth0")
            sh("ip", "-n", GUESTS[v], "link", "set", "eth0", "mtu", "1400", "up")
            pumps.append(tappump.start(HOST, tap, "w" + v))

        check(reaches("a", IP["b"]), "a reaches b (same VLAN, or untagged)")
        check(reaches("b", IP["a"]), "b reaches a")
        if vlans:
            check(cut_off("a", IP["c"]), "a must not reach c (VLAN 20)")
            check(cut_off("c", IP["b"]), "c must not reach b (VLAN 10)")
        else:
            check(reaches("a", IP["c"]), "a reaches c (no VLANs)")
            # A VLAN cannot be honoured: refused, and no tap is left.
            names = {e["ifname"] for e in hj("ip", "link", "show")}
            spec = vm_spec("vm-v")
            spec["nics"][0]["vlan"] = 30
            r = expect(d.call(op="vm_create", spec=spec), "invalid_argument")
            check("vlan_filtering" in r["message"], r)
            check({e["ifname"] for e in hj("ip", "link", "show")} == names,
                  "no interface left by the refused NIC")
            expect(d.call(op="vm_get", vm="vm-v"), "not_found")

        # Delete c: its tap goes, the others stay.
        pumps[2].kill()
        pumps[2].wait()
        d.ok(op="vm_delete", vm="vm-c")
        check(link(taps["c"]) is None, "tap of c removed")
        before = {n: link(n)["ifindex"] for n in [BR, taps["a"], taps["b"]]}

        # Restart: the bridge and the remaining taps are untouched.
        check(d.stop() == 0, "SIGTERM: exit 0")
        check(link(BR) is not None and link(taps["a"]) is not None, "kept over stop")
        d.start()
        after = {n: link(n)["ifindex"] for n in before}
        check(before == after, "same interfaces after restart:", before, after)
        check(link(taps["a"])["master"] == BR, "tap a still on the bridge")
        vl = {e["ifname"]: e["vlans"] for e in hj("bridge", "vlan", "show")}
        if vlans:
            check(vl.get(taps["a"])[0]["vlan"] == 10, vl)
        check(reaches("a", IP["b"]), "a still reaches b after the restart")
        vm = d.ok(op="vm_get", vm="vm-a")["vms"][0]
        check(vm["nics"][0]["binding"]["tap"] == taps["a"], vm)

        # A NIC asking for VLAN 5000 is refused (by the core or the plugin).
        spec = vm_spec("vm-x")
        spec["nics"][0]["vlan"] = 5000
        expect(d.call(op="vm_create", spec=spec), "invalid_argument")

        for p in pumps:  # the hypervisor lets go of the taps first
            p.kill()
            p.wait()
        for v in "ab":
            d.ok(op="vm_delete", vm="vm-" + v)
            check(link(taps[v]) is None, "tap of", v, "removed")
        check(link(BR) is not None, "the bridge stays")
        check(d.stop() == 0, "SIGTERM: exit 0")


try:
    main()
finally:
    cleanup()
