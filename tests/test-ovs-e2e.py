#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The OVS network plugin end to end, against a real Open vSwitch: a
private ovsdb-server and ovs-vswitchd (netdev datapath) started once for
this file (tests/ovsenv.py), vmhostd and vswitchd in a "host" namespace
this test makes (vmho-*), guests played by namespaces.

vmhostd runs the mock hypervisor and storage and an OVS network with
binding: tap, allowed VLANs 10 and 20 and an uplink (a veth whose other
end sits in a "wan" namespace, untagged; this kernel has no 802.1Q
devices, so the tagged side is checked by a packet socket there that
reads each frame's VLAN, "--sniff").  The mock hypervisor opens no tap, so the test plays
the hypervisor (tests/tappump.py): frames between each tap the plugin made
and a veth to the VM's guest namespace.  Then:
  - the rows: each NIC's Port has its tag, its Interface the identities
    (iface-id, attached-mac, vm-id, vmhost-network); the uplink trunks;
  - a and b (VLAN 10) reach each other, c (VLAN 20) reaches neither; d
    (untagged) reaches the untagged side of the uplink and a the tagged
    (VLAN 10) side, and not the other way round;
  - a VLAN outside the allowed set is refused with a message, leaving no
    tap and no row;
  - deleting c removes its port and tap, and nothing else: the other
    ports, a port someone else added to the bridge, another bridge;
  - restarting vmhostd keeps the ports (same rows) and connectivity; a
    port whose VM record is gone is listed (the core's reconcile reports
    it);
  - ovsdb-server stopped: a bind fails at once with io_error (unavailable)
    and leaves nothing; started again: the IDL reconnects, the ports are
    still there, a new bind succeeds.
"""
import socket
import struct
import sys


def sniff(iface, mac):
    """Print the VLAN of the first frame from mac seen on iface (0:
    untagged): the kernel hands the tag over as auxiliary data."""
    SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 0x10
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((iface, 0))
    print("sniffing", flush=True)
    want = bytes.fromhex(mac.replace(":", ""))
    while True:
        data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(64))
        if data[6:12] != want:
            continue
        vlan = 0
        for level, kind, aux in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _, _, _, _, tci = struct.unpack_from("IIIHHH", aux)
                if status & TP_STATUS_VLAN_VALID:
                    vlan = tci & 0xfff
        if data[12:14] == b"\x81\x00":  # not offloaded: in the frame
            vlan = struct.unpack_from("!H", data, 14)[0] & 0xfff
        print(vlan, flush=True)
        return


if len(sys.argv) == 4 and sys.argv[1] == "--sniff":
    sniff(sys.argv[2], sys.argv[3])
    sys.exit(0)

import vmhtest  # noqa: E402

vmhtest.require_netns()
import ovsenv  # noqa: E402

ovsenv.require()
import os  # noqa: E402
import select  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402

import tappump  # noqa: E402
import vmhjournal  # noqa: E402
from vmhtest import Daemon, check, expect, ip_link, sh, vm_spec, wait_for  # noqa: E402

TAG = "vmho-" + uuid.uuid4().hex[:6]
HOST = TAG + "-h"
WAN = TAG + "-w"
VMS = "abcde"
GUESTS = {v: f"{TAG}-{v}" for v in VMS}
BR = "vmhovs0"
VLAN = {"a": 10, "b": 10, "c": 20, "d": 0, "e": 20, "f": 20}
IP = {v: f"10.77.0.{i + 1}" for i, v in enumerate(VMS)}
IP_WAN = "10.77.0.9"
pumps = {}


def link(name):
    return ip_link(HOST, name)


def ping(src_ns, dst_ip, tries):
    """One echo answered within a second, in up to `tries` attempts (a busy
    machine may be slow to resolve ARP the first time)."""
    for _ in range(tries):
        if sh("ip", "netns", "exec", src_ns, "busybox", "ping", "-c", "1",
              "-W", "1", dst_ip, ok=False).returncode == 0:
            return True
    return False


def reaches(src, dst_ip):
    return ping(GUESTS.get(src, src), dst_ip, 10)


def cut_off(src, dst_ip):
    return not ping(GUESTS.get(src, src), dst_ip, 3)


def plug(v, tap, mac):
    """The hypervisor's side of VM v: its tap wired to its guest ns, whose
    NIC has the MAC of the binding."""
    sh("ip", "-n", HOST, "link", "add", "w" + v, "type", "veth", "peer",
       "name", "eth0", "address", mac, "netns", GUESTS[v])
    sh("ip", "-n", HOST, "link", "set", "w" + v, "up")
    sh("ip", "-n", GUESTS[v], "addr", "add", IP[v] + "/24", "dev", "eth0")
    sh("ip", "-n", GUESTS[v], "link", "set", "eth0", "up")
    pumps[v] = tappump.start(HOST, tap, "w" + v)


def unplug(v):
    p = pumps.pop(v)
    p.kill()
    p.wait()
    sh("ip", "-n", HOST, "link", "del", "w" + v)


def setup_namespaces():
    for ns in [HOST, WAN, *GUESTS.values()]:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    # The uplink: upl0 in the host ns, its peer in wan.
    sh("ip", "-n", HOST, "link", "add", "upl0", "type", "veth", "peer", "name",
       "eth0", "netns", WAN)
    sh("ip", "-n", HOST, "link", "set", "upl0", "up")
    sh("ip", "-n", WAN, "addr", "add", IP_WAN + "/24", "dev", "eth0")
    sh("ip", "-n", WAN, "link", "set", "eth0", "up")


def cleanup():
    for p in pumps.values():
        p.kill()
        p.wait()
    for ns in [HOST, WAN, *GUESTS.values()]:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def config(ovs):
    return ovsenv.config(f"""  - name: lan
    plugin: ovs
    ovsdb: {ovs.remote}
    bridge: {BR}
    datapath_type: netdev
    uplink: upl0
    vlans: [10, 20]
    binding: tap
    timeout: 20""")


def create(d, v):
    spec = vm_spec("vm-" + v, nics=1)
    spec["nics"][0]["vlan"] = VLAN[v]
    vm = d.ok(op="vm_create", spec=spec)["vms"][0]
    b = vm["nics"][0]["binding"]
    check(b["type"] == "tap" and b["tap"].startswith("vmo") and
          b["port"] == b["tap"] and b["bridge"] == BR, b)
    check(b["mac"].startswith("52:54:00:"), b)
    return vm["id"], b


def ports(ovs):
    """Port name -> row (uuid, tag, trunks), over the whole database."""
    return {r["name"]: r for r in ovs.find("Port", columns="_uuid,name,tag,trunks")}


def check_rows(ovs, vms):
    rows = ports(ovs)
    ifaces = {r["name"]: r for r in ovs.find(
        "Interface", columns="name,external_ids")}
    for v, (vm_id, b) in vms.items():
        tap = b["tap"]
        check(tap in rows, "port", tap, "in OVSDB:", rows)
        check(rows[tap]["tag"] == (VLAN[v] or []), tap, rows[tap])
        ids = ifaces[tap]["external_ids"]
        check(ids.get("vm-id") == vm_id and ids.get("attached-mac") == b["mac"]
              and ids.get("iface-id") == b["interface_id"]
              and ids.get("vmhost-network") == "lan", ids)
        check(link(tap) is not None, "tap", tap, "exists")
    check(sorted(rows["upl0"]["trunks"]) == [0, 10, 20], rows["upl0"])
    br = ovs.find("Bridge", "name=" + BR, columns="name,datapath_type,external_ids")
    check(br and br[0]["datapath_type"] == "netdev" and
          br[0]["external_ids"].get("vmhost-created") == "lan", br)


def uplink_vlan(v, mac):
    """The VLAN of v's frames on the far side of the uplink (v asks for an
    address nobody has: its ARP requests flood out)."""
    p = subprocess.Popen(["ip", "netns", "exec", WAN, sys.executable,
                          os.path.abspath(__file__), "--sniff", "eth0", mac],
                         stdout=subprocess.PIPE, text=True)
    try:
        check(p.stdout.readline().strip() == "sniffing", "sniffer started")
        pinger = subprocess.Popen(["ip", "netns", "exec", GUESTS[v], "busybox",
                                   "ping", "-c", "30", "-W", "1", "10.77.0.99"],
                                  stdout=subprocess.DEVNULL)
        # A bound on waiting only: the frame comes within a second.
        ready, _, _ = select.select([p.stdout], [], [], 60)
        check(ready, "no frame of", v, "reached the uplink's far side")
        line = p.stdout.readline().strip()
        pinger.kill()
        pinger.wait()
        return int(line)
    finally:
        p.kill()
        p.wait()


def connectivity(vms):
    check(reaches("a", IP["b"]), "a reaches b (VLAN 10)")
    check(reaches("b", IP["a"]), "b reaches a")
    check(cut_off("a", IP["c"]), "a must not reach c (VLAN 20)")
    check(cut_off("c", IP["b"]), "c must not reach b (VLAN 10)")
    check(reaches("d", IP_WAN), "d (untagged) reaches the uplink's far side")
    check(cut_off("a", IP_WAN), "a (VLAN 10) must not reach the untagged side")
    for v in "acd":
        got = uplink_vlan(v, vms[v][1]["mac"])
        check(got == VLAN[v], v, "leaves the uplink with VLAN", got, "not", VLAN[v])


def main(tmp):
    setup_namespaces()
    with ovsenv.Ovs(tmp, HOST) as ovs, \
            Daemon(config(ovs), wrapper=["ip", "netns", "exec", HOST]) as d:
        net = d.ok(op="network_get", network="lan")["networks"][0]
        check(net["bridge"] == BR and net["up"], net)
        # Someone else's: a bridge, and a port on ours.
        ovs.vsctl("add-br", "vmhother", "--", "set", "bridge", "vmhother",
                  "datapath_type=netdev")
        ovs.vsctl("add-port", BR, "foreign0", "--", "set", "interface",
                  "foreign0", "type=internal")

        vms = {v: create(d, v) for v in "abcd"}
        check_rows(ovs, vms)
        for v in "abcd":
            plug(v, vms[v][1]["tap"], vms[v][1]["mac"])
        connectivity(vms)

        # A VLAN outside 10, 20: refused, nothing left behind.
        before_links = sh("ip", "-n", HOST, "-br", "link").stdout.count("\n")
        before_rows = sorted(ports(ovs))
        spec = vm_spec("vm-x")
        spec["nics"][0]["vlan"] = 30
        r = expect(d.call(op="vm_create", spec=spec), "invalid_argument")
        check("VLAN 30 is not allowed" in r["message"] and "10, 20" in r["message"], r)
        check(sh("ip", "-n", HOST, "-br", "link").stdout.count("\n") == before_links,
              "no interface left by the refused NIC")
        check(sorted(ports(ovs)) == before_rows, "no row left by the refused NIC")

        # Delete c: its port and tap go; nothing else.
        unplug("c")
        d.ok(op="vm_delete", vm="vm-c")
        rows = ports(ovs)
        check(vms["c"][1]["tap"] not in rows, "port of c removed", rows)
        check(link(vms["c"][1]["tap"]) is None, "tap of c removed")
        for name in ["foreign0", "vmhother", "upl0", BR] + \
                [vms[v][1]["tap"] for v in "abd"]:
            check(name in rows, name, "still there", rows)
        del vms["c"]

        # Restart: the same rows, the same connectivity.  A port whose VM
        # record is gone (f's, its record removed while vmhostd is down)
        # is reported by the core's reconcile and left alone.
        f_id, f = create(d, "f")
        uuids = {n: r["_uuid"] for n, r in ports(ovs).items()}
        check(d.stop() == 0, "SIGTERM: exit 0")
        vmhjournal.remove(os.path.join(d.tmp, "state"), f_id)
        d.start()
        check({n: r["_uuid"] for n, r in ports(ovs).items()} == uuids,
              "same ports after the restart")
        check(d.log().count("that vmhostd did not make") == 1 and
              f"network 'lan' has a port for VM {f_id} NIC net0 that vmhostd "
              "did not make" in d.log(), "the stale port reported:", d.log())
        ovs.vsctl("del-port", f["port"])
        sh("ip", "-n", HOST, "link", "del", f["tap"])
        del uuids[f["port"]]
        check(reaches("a", IP["b"]), "a still reaches b after the restart")
        vm = d.ok(op="vm_get", vm="vm-a")["vms"][0]
        check(vm["nics"][0]["binding"]["tap"] == vms["a"][1]["tap"], vm)

        # ovsdb-server gone: fails at once as unavailable, leaves nothing.
        ovs.stop("ovsdb-server")
        wait_for(lambda: "OVSDB unix:" in d.log() and "connection lost" in d.log(),
                 "the plugin to notice the lost connection")
        r = expect(d.call(op="vm_create", spec=vm_spec("vm-e")), "io_error")
        check("unavailable" in r["message"], r)
        expect(d.call(op="vm_get", vm="vm-e"), "not_found")
        check(link(vms["a"][1]["tap"]) is not None, "taps stay")
        # Back: reconnects by itself; the ports are still there.
        ovs.start_db()
        wait_for(lambda: d.call(op="network_get", network="lan").get("code") == 0,
                 "the plugin to reconnect")
        check({n: r["_uuid"] for n, r in ports(ovs).items()} == uuids,
              "same ports after the ovsdb-server restart")
        vms["e"] = create(d, "e")
        check_rows(ovs, vms)
        check(reaches("a", IP["b"]), "a reaches b after the ovsdb-server restart")

        for v in list(pumps):
            unplug(v)
        for v in vms:
            d.ok(op="vm_delete", vm="vm-" + v)
            check(link(vms[v][1]["tap"]) is None, "tap of", v, "removed")
        rows = ports(ovs)
        check(not [n for n in rows if n.startswith("vmo")], "no port left", rows)
        check("foreign0" in rows and "vmhother" in rows, rows)
        check(d.stop() == 0, "SIGTERM: exit 0")
        check(ovs.find("Bridge", "name=" + BR), "close() leaves the bridge")


tmp = tempfile.mkdtemp(prefix="vmhtest-ovs.")
try:
    main(tmp)
finally:
    cleanup()
    subprocess.run(["rm", "-rf", tmp])
