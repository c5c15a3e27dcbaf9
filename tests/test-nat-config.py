#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The nat network's config, inside a network namespace this test makes
(vmhn-*): bad configs are refused at start with a message naming what to
fix (subnet overlapping an interface's address, gateway or DHCP range
outside the subnet, bad reservation, bad bridge name, an interface of that
name that is not a bridge), and a refused start or a --check-config run
creates nothing (no bridge, no nftables table, no dnsmasq).  Config changes
across restarts: an existing bridge is adopted, dns: false runs dnsmasq
with --port=0, upstream picks the masquerade's interface, changed
reservations replace dnsmasq (never a second one), an unchanged config
adopts it; ensure: absent removes table, bridge, dnsmasq and files."""
import vmhtest

vmhtest.require_netns()
import glob
import os
import shutil
import subprocess

from vmhtest import VMHOSTD, Daemon, check, fail, mocks

for tool in ("ip", "nft", "dnsmasq"):
    if not shutil.which(tool):
        fail(f"{tool} is not installed")
if os.geteuid() != 0:
    fail("needs root (network namespaces)")

H = f"vmhn-c{os.getpid()}"
BR = "vmhncbr0"


def sh(*args, check_rc=True):
    r = subprocess.run(["ip", "netns", "exec", H] + list(args),
                       capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        fail(" ".join(args), "->", r.returncode, r.stdout, r.stderr)
    return r


def nat(keys):
    return mocks().replace("{ name: net0, plugin: mock }",
                           f"{{ name: net0, plugin: nat, bridge: {BR}{keys} }}")


def nothing_made(tmp):
    check(sh("ip", "link", "show", BR, check_rc=False).returncode != 0,
          "no bridge was made")
    check(sh("nft", "list", "ruleset").stdout.strip() == "", "no rule was made")
    for pidfile in glob.glob(os.path.join(tmp, "state", "plugins", "*",
                                          "dnsmasq.pid")):
        fail("a dnsmasq pid file was written:", pidfile)


BAD = [
    (", subnet: 10.77.0.0/16",
     "subnet 10.77.0.0/16 overlaps 10.77.0.1/24 on wan0"),
    (", subnet: 10.77.0.128/25",
     "subnet 10.77.0.128/25 overlaps 10.77.0.1/24 on wan0"),
    (", subnet: 192.168.77.0/24, gateway: 192.168.78.1",
     "gateway 192.168.78.1 is outside subnet 192.168.77.0/24"),
    (", subnet: 192.168.77.0/24, gateway: 192.168.77.255",
     "gateway 192.168.77.255 is outside subnet 192.168.77.0/24"),
    (", subnet: 192.168.77.0/24, dhcp_range: 192.168.77.10-192.168.78.20",
     "dhcp_range 192.168.77.10-192.168.78.20 is not inside subnet "
     "192.168.77.0/24"),
    (", subnet: 192.168.77.0/24, dhcp_range: 192.168.77.1-192.168.77.20",
     "contains the gateway 192.168.77.1"),
    (", subnet: 192.168.77.0/24, dhcp_range: 10-20",
     "dhcp_range '10-20' is not START-END"),
    (", subnet: 192.168.77.0/24, "
     "reservations: [{ mac: '52:54:00:00:00:01', ip: 10.1.1.1 }]",
     "reservation IP '10.1.1.1' is not a host address of subnet"),
    (", subnet: 192.168.77.0/24, "
     "reservations: [{ mac: '01:00:5e:00:00:01', ip: 192.168.77.5 }]",
     "reservation MAC '01:00:5e:00:00:01' is not a unicast MAC"),
    (", subnet: 192.168.77.1/24", "has host bits set"),
    (", subnet: 192.168.77.0", "is not an IPv4 network"),
    (", subnet: 192.168.77.0/24, ensure: maybe",
     "ensure: 'maybe' is not present or absent"),
]

def gone(pid):
    """pid has exited (a zombie counts: it has no command line)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() == b""
    except OSError:
        return True


def kill_all(d):
    """A vmhostd that started after all (a test failing), then its dnsmasq."""
    if d is None:
        return
    if d.proc:
        d.proc.kill()
        d.proc.wait()
        d.proc = None
    for pidfile in glob.glob(os.path.join(d.tmp, "state", "plugins", "*",
                                          "dnsmasq.pid")):
        try:
            with open(pidfile) as f:
                pid = int(f.read().split()[0])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f"--pid-file={pidfile}".encode() in f.read().split(b"\0"):
                    os.kill(pid, 9)
        except (OSError, ValueError, IndexError):
            pass


d = None
try:
    subprocess.run(["ip", "netns", "add", H], check=True)
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wan1")
    sh("ip", "addr", "add", "10.77.0.1/24", "dev", "wan0")
    sh("ip", "link", "set", "wan0", "up")

    for keys, msg in BAD:
        d = Daemon(nat(keys), wrapper=["ip", "netns", "exec", H])
        d.start(wait_ready=False)
        try:
            rc = d.proc.wait(30)
        except subprocess.TimeoutExpired:
            fail("vmhostd started with", keys, "\n", d.log())
        d.proc = None
        check(rc != 0, "vmhostd refused", keys)
        check(msg in d.log(), f"message '{msg}' for", keys, "\n", d.log())
        check("Sanitizer" not in d.log(), "sanitizer report:\n", d.log())
        nothing_made(d.tmp)
        shutil.rmtree(d.tmp)

    # A bridge name longer than IFNAMSIZ - 1.
    d = Daemon(nat(", subnet: 192.168.77.0/24").replace(
        f"bridge: {BR}", "bridge: abcdefghijklmnop"),
        wrapper=["ip", "netns", "exec", H])
    d.start(wait_ready=False)
    check(d.proc.wait(30) != 0, "long bridge name refused")
    d.proc = None
    check("bridge 'abcdefghijklmnop' is not an interface name" in d.log(),
          d.log())
    shutil.rmtree(d.tmp)

    # An existing interface of the bridge's name that is not a bridge.
    d = Daemon(nat(", subnet: 192.168.77.0/24").replace(
        f"bridge: {BR}", "bridge: wan1"), wrapper=["ip", "netns", "exec", H])
    d.start(wait_ready=False)
    check(d.proc.wait(30) != 0, "non-bridge refused")
    d.proc = None
    check("interface wan1 exists and is not a bridge" in d.log(), d.log())
    check(sh("nft", "list", "ruleset").stdout.strip() == "", "no rule made")
    shutil.rmtree(d.tmp)

    # An existing bridge is adopted; dns: false runs dnsmasq without DNS;
    # upstream names the masquerade's interface.
    sh("ip", "link", "add", BR, "type", "bridge")
    RES_A = "[{ mac: '52:54:00:00:00:0a', ip: 192.168.88.10 }]"
    RES_B = "[{ mac: '52:54:00:00:00:0b', ip: 192.168.88.11 }]"
    d = Daemon(nat(f", subnet: 192.168.88.0/24, dns: false, upstream: wan0, "
                   f"reservations: {RES_A}"),
               wrapper=["ip", "netns", "exec", H])
    d.start()
    sdir = os.path.join(d.tmp, "state", "plugins", "net0")
    pidfile = os.path.join(sdir, "dnsmasq.pid")

    def dnsmasq():
        with open(pidfile) as f:
            pid = int(f.read().split()[0])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return pid, f.read().split(b"\0")

    def conf():
        with open(os.path.join(sdir, "dnsmasq.conf")) as f:
            return f.read()

    check("192.168.88.1/24" in sh("ip", "-4", "-o", "addr", "show", "dev",
                                  BR).stdout, "gateway on the adopted bridge")
    table = sh("nft", "list", "table", "inet", "vmhost-net0").stdout
    check('ip daddr != 192.168.88.0/24 oifname "wan0" masquerade' in table,
          table)
    pid1, argv = dnsmasq()
    check(b"--port=0" in argv and not any(a.startswith(b"--host-record")
                                          for a in argv), "no DNS:", argv)
    check("dhcp-host=52:54:00:00:00:0a,192.168.88.10" in conf(), conf())
    check(d.stop() == 0, "clean stop")

    # Changed reservations and no upstream (and no default route here):
    # dnsmasq is replaced, not duplicated; the rule follows.
    d.write_config(nat(f", subnet: 192.168.88.0/24, dns: false, "
                       f"reservations: {RES_B}"))
    d.start()
    pid2, argv = dnsmasq()
    check(pid2 != pid1 and gone(pid1), "old dnsmasq stopped, new one started",
          pid1, pid2)
    check("dhcp-host=52:54:00:00:00:0b,192.168.88.11" in conf() and
          "0a," not in conf(), conf())
    table = sh("nft", "list", "table", "inet", "vmhost-net0").stdout
    check("ip daddr != 192.168.88.0/24 masquerade" in table and
          "oifname \"wan0\"" not in table, table)
    check(sh("nft", "list", "tables").stdout.split("\n").count(
        "table inet vmhost-net0") == 1, "one table")
    check(d.stop() == 0, "clean stop")

    # The same config again: the running dnsmasq is adopted.
    d.start()
    check(dnsmasq()[0] == pid2, "adopted")
    d.ok(op="health")

    # The bridge deleted under vmhostd: health says so; at the next start
    # it is made again, and dnsmasq (whose sockets belonged to the old
    # bridge) replaced.
    sh("ip", "link", "del", BR)
    r = d.call(op="health")
    check(r["code"] != 0 and f"bridge {BR} is gone" in str(r), r)
    check(d.stop() == 0, "clean stop")
    d.start()
    check("192.168.88.1/24" in sh("ip", "-4", "-o", "addr", "show", "dev",
                                  BR).stdout, "bridge made again")
    pid3 = dnsmasq()[0]
    check(pid3 != pid2 and gone(pid2), "dnsmasq replaced", pid2, pid3)
    check(d.stop() == 0, "clean stop")
    pid2 = pid3

    # ensure: absent removes what the network made, the adopted bridge too.
    d.write_config(nat(", subnet: 192.168.88.0/24, ensure: absent"))
    d.start()
    check(d.ok(op="network_get", network="net0")["networks"][0]["up"] is False,
          "absent network reports down")
    check(sh("nft", "list", "ruleset").stdout.strip() == "", "table deleted")
    check(sh("ip", "link", "show", BR, check_rc=False).returncode != 0,
          "bridge deleted")
    check(gone(pid2), "dnsmasq stopped")
    check(os.listdir(sdir) == [], "files removed:", os.listdir(sdir))
    check(sh("ip", "link", "show", "wan0").returncode == 0, "wan0 kept")
    check(d.stop() == 0, "clean stop")
    shutil.rmtree(d.tmp)

    # --check-config: a good config passes and makes nothing; a bad one is
    # refused with the same message.
    d = Daemon(nat(", subnet: 192.168.77.0/24, dns: false, upstream: wan0"),
               wrapper=["ip", "netns", "exec", H])
    r = subprocess.run(["ip", "netns", "exec", H, VMHOSTD, "--check-config",
                        "--config", d.config], capture_output=True, text=True)
    check(r.returncode == 0, "good config:", r.stdout, r.stderr)
    nothing_made(d.tmp)
    d.write_config(nat(", subnet: 192.168.77.0/24, gateway: 10.0.0.1"))
    r = subprocess.run(["ip", "netns", "exec", H, VMHOSTD, "--check-config",
                        "--config", d.config], capture_output=True, text=True)
    check(r.returncode == 2 and "gateway 10.0.0.1 is outside subnet"
          in r.stdout + r.stderr, "bad config:", r.stdout, r.stderr)
    nothing_made(d.tmp)
    shutil.rmtree(d.tmp)

    # The documented example passes --check-config.
    example = os.path.join(os.environ.get("top_srcdir", ".."), "etc",
                           "plugins", "nat.yaml")
    r = subprocess.run(["ip", "netns", "exec", H, VMHOSTD, "--check-config",
                        "--config", example], capture_output=True, text=True)
    check(r.returncode == 0, example, r.stdout, r.stderr)
finally:
    kill_all(d)
    subprocess.run(["ip", "netns", "del", H], capture_output=True)
print("ok")
