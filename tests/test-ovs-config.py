#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The OVS network plugin's config, open(), binding: ovs and ensure:
absent, against a private ovsdb-server and ovs-vswitchd (tests/ovsenv.py)
in a namespace this test makes (vmho-*):
  - bad configs are refused by --check-config with exit 2 and a message
    saying what to fix, and --check-config contacts no database;
  - at start: an unreachable OVSDB, create: false without the bridge, and
    a datapath_type other than the bridge's fail with a clear message and
    make nothing;
  - binding: ovs on an adopted bridge: the hypervisor gets bridge, port
    name, interface-id and VLAN; the record lives in the bridge's
    external_ids (no port is made: the hypervisor adds it), survives a
    restart, goes with the VM; a VLAN outside the allowed set is refused;
    with ovs-vswitchd stopped a bind times out and leaves nothing;
  - ensure: absent removes this network's ports, taps and records, the
    uplink port it added and the bridge it made, and nothing else (another
    bridge, a port someone added, an adopted bridge, its records only).
"""
import vmhtest

vmhtest.require_netns()
import ovsenv  # noqa: E402

ovsenv.require()
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402

from vmhtest import VMHOSTD, Daemon, check, expect, fail, ip_link, sh, vm_spec  # noqa: E402

TAG = "vmho-" + uuid.uuid4().hex[:6]
NS = TAG + "-h"
WRAP = ["ip", "netns", "exec", NS]


def link(name):
    return ip_link(NS, name)


def names():
    return sorted(x.split()[0] for x in sh("ip", "-n", NS, "-br", "link").stdout.splitlines())


def body(net):
    return ovsenv.config("  - name: lan\n    plugin: ovs\n" + net)


class Env:
    def __init__(self, ovs):
        self.ovs = ovs

    def net(self, extra, remote=None):
        dp = "" if "datapath_type" in extra else "    datapath_type: netdev\n"
        return f"    ovsdb: {remote or self.ovs.remote}\n{dp}    timeout: 5\n{extra}"

    def rows(self):
        return sorted(r["name"] for r in self.ovs.find("Port")) + \
            sorted("br:" + r["name"] for r in self.ovs.find("Bridge"))

    def run(self, net, *args):
        d = Daemon(body(net))
        try:
            r = subprocess.run(WRAP + [VMHOSTD, "--config", d.config, *args],
                               capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            fail("vmhostd", *args, "did not exit on", net)
        subprocess.run(["rm", "-rf", d.tmp])
        return r.returncode, r.stdout + r.stderr

    def refused(self, net, code, words, *args):
        before = self.rows()
        rc, out = self.run(net, *args)
        check(rc == code, f"exit {rc}, want {code}, for", net, out)
        check(words in out, f"no '{words}' in the output for", net, out)
        check(self.rows() == before, "nothing made by a refused config:",
              before, self.rows())


def check_config(e):
    cc = "--check-config"
    nowhere = "unix:/nonexistent/db.sock"
    for net, words in [
            ("    bridge: vmhovs-far-too-long", "is not an interface name"),
            ("    bridge: vmhovs1\n    binding: bridge", "binding 'bridge' is not ovs or tap"),
            ("    bridge: vmhovs1\n    datapath_type: dpdk", "datapath_type 'dpdk' is not system or netdev"),
            ("    bridge: vmhovs1\n    fail_mode: open", "fail_mode 'open' is not standalone or secure"),
            ("    bridge: vmhovs1\n    vlan: 4095", "vlan"),
            ("    bridge: vmhovs1\n    vlans: [10, 5000]", "'5000' is not a VLAN"),
            ("    bridge: vmhovs1\n    vlans: [\"20-10\"]", "'20-10' is not a VLAN"),
            ("    bridge: vmhovs1\n    vlans: [10, 20]\n    vlan: 30", "vlan 30 is not in vlans (10, 20)"),
            ("    bridge: vmhovs1\n    uplink: vmhovs1", "uplink"),
            ("    bridge: vmhovs1\n    ensure: gone", "ensure 'gone' is not present or absent"),
            ("    bridge: vmhovs1\n    mtuu: 1400", "mtuu"),
            ("    create: true", "bridge")]:
        e.refused(e.net(net, nowhere), 2, words, cc)
    e.refused("    bridge: vmhovs1\n    ovsdb: ssl:1.2.3.4:6640", 2,
              "ovsdb 'ssl:1.2.3.4:6640' is not unix:PATH or tcp:HOST:PORT", cc)
    rc, out = e.run(e.net("    bridge: vmhovs1\n    vlans: [10, \"100-199\"]\n"
                          "    vlan: 150\n    binding: tap\n    mtu: 1400",
                          nowhere), cc)
    check(rc == 0, "a good config, the database unreachable:", out)


def at_start(e):
    e.refused(e.net("    bridge: vmhovs1", "unix:/nonexistent/db.sock"), 1,
              "cannot reach OVSDB at unix:/nonexistent/db.sock")
    e.refused(e.net("    bridge: vmhovs1\n    create: false"), 1,
              "OVS bridge vmhovs1 does not exist and create is false")
    e.ovs.vsctl("add-br", "vmhadopt", "--", "set", "bridge", "vmhadopt",
                "datapath_type=netdev")
    e.refused("    bridge: vmhadopt\n    datapath_type: system\n"
              f"    ovsdb: {e.ovs.remote}", 2,
              "OVS bridge vmhadopt has datapath_type netdev, the config says system")


def binding_ovs(e):
    ovs = e.ovs
    net = e.net("    bridge: vmhadopt\n    create: false\n    vlans: [\"100-110\"]\n"
                "    vlan: 105\n    uplink: vmhup0")
    sh("ip", "-n", NS, "link", "add", "vmhup0", "type", "veth", "peer", "name", "vmhup1")
    before = e.rows()
    with Daemon(body(net), wrapper=WRAP) as d:
        check(set(e.rows()) == set(before + ["vmhup0"]), "the uplink port added:",
              before, e.rows())
        vm = d.ok(op="vm_create", spec=vm_spec("vm-a", nics=2))["vms"][0]
        b0, b1 = (n["binding"] for n in vm["nics"])
        check(b0["type"] == "ovs" and b0["bridge"] == "vmhadopt", b0)
        check(b0["port"].startswith("vmo") and b0["port"] != b1["port"], b0, b1)
        check(len(b0["interface_id"]) == 36 and b0["interface_id"] != b1["interface_id"], b0, b1)
        check(b0["vlan"] == 105 and not b0.get("tap"), "the default VLAN:", b0)
        ids = ovs.find("Bridge", "name=vmhadopt", columns="name,external_ids")[0]["external_ids"]
        key = f"vmhost-port:lan:{b0['port']}"
        check(ids.get(key) == f"{vm['id']} {b0['mac']} 105 net0", ids)
        check(not [r for r in e.rows() if r.startswith("vmo")], "no port made")
        # A VLAN outside the allowed set.
        spec = vm_spec("vm-b")
        spec["nics"][0]["vlan"] = 120
        r = expect(d.call(op="vm_create", spec=spec), "invalid_argument")
        check("VLAN 120 is not allowed on network lan (vlans: 100-110)" in r["message"], r)
        check(d.stop() == 0, "SIGTERM: exit 0")
        d.start()
        vm2 = d.ok(op="vm_get", vm="vm-a")["vms"][0]
        check(vm2["nics"][0]["binding"]["port"] == b0["port"], vm2)
        d.ok(op="vm_delete", vm="vm-a")
        ids = ovs.find("Bridge", "name=vmhadopt", columns="name,external_ids")[0]["external_ids"]
        check(not [k for k in ids if k.startswith("vmhost-port:")], "records removed", ids)
        # One left for ensure: absent to remove.
        d.ok(op="vm_create", spec=vm_spec("vm-c"))
        check(d.stop() == 0, "SIGTERM: exit 0")
    check(ovs.find("Bridge", "name=vmhadopt"), "the adopted bridge stays")
    return net


def absent(e, adopted_net):
    ovs = e.ovs
    # A network the plugin made, with a tap port, beside someone's port.
    net = e.net("    bridge: vmhmade\n    binding: tap")
    with Daemon(body(net), wrapper=WRAP) as d:
        tap = d.ok(op="vm_create", spec=vm_spec("vm-t"))["vms"][0]["nics"][0]["binding"]["tap"]
        check(link(tap) is not None, "tap made")
        # ovs-vswitchd stopped: a bind times out (timeout: 5); its port
        # and tap are removed again.
        before, links = e.rows(), names()
        os.kill(ovs.pids["ovs-vswitchd"], signal.SIGSTOP)
        try:
            r = expect(d.call(op="vm_create", spec=vm_spec("vm-u")), "timeout")
        finally:
            os.kill(ovs.pids["ovs-vswitchd"], signal.SIGCONT)
        check("ovs-vswitchd did not apply the change within 5000 ms" in r["message"], r)
        check(e.rows() == before, "no row left by the timed-out bind", e.rows())
        check(names() == links, "no tap left", links, names())
        check(d.stop() == 0, "SIGTERM: exit 0")
    ovs.vsctl("add-port", "vmhadopt", "someone0", "--", "set", "interface",
              "someone0", "type=internal")
    for n in (net, adopted_net):
        with Daemon(body(n + "\n    ensure: absent"), wrapper=WRAP) as d:
            check("removed (ensure: absent)" in d.log(), d.log())
            r = expect(d.call(op="vm_create", spec=vm_spec("vm-x")), "invalid_argument")
            check("ensure: absent" in r["message"], r)
            check(d.stop() == 0, "SIGTERM: exit 0")
    rows = e.rows()
    check("br:vmhmade" not in rows and tap not in rows, "made bridge removed", rows)
    check(link(tap) is None, "its tap removed")
    check("br:vmhadopt" in rows and "someone0" in rows, "others stay", rows)
    check("vmhup0" not in rows, "the uplink port it added removed", rows)
    ids = ovs.find("Bridge", "name=vmhadopt", columns="name,external_ids")[0]["external_ids"]
    check(not [k for k in ids if k.startswith("vmhost-")], "records removed", ids)


def main(tmp):
    sh("ip", "netns", "add", NS)
    sh("ip", "-n", NS, "link", "set", "lo", "up")
    with ovsenv.Ovs(tmp, NS) as ovs:
        e = Env(ovs)
        check_config(e)
        at_start(e)
        adopted = binding_ovs(e)
        absent(e, adopted)


tmp = tempfile.mkdtemp(prefix="vmhtest-ovs.")
try:
    main(tmp)
finally:
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["rm", "-rf", tmp])
