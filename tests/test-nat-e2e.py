#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The nat network end to end, inside network namespaces this test makes
(vmhn-*): vmhostd (mock hypervisor and storage, nat network) runs in a
"host" namespace with a veth to an "upstream" namespace that serves TCP and
has no route back to the NAT subnet.  A VM created through the core gets a
binding; a "guest" namespace plugged into the plugin's bridge with the
binding's MAC takes a DHCP lease (busybox udhcpc), which vm_get live=true
reports; the guest reaches upstream through the masquerade (upstream sees
the host's address), resolves "gateway" through dnsmasq; the host's ruleset
gains the plugin's table only; a vmhostd restart keeps rules (no duplicate),
dnsmasq (same pid) and the guest's open TCP connection; a killed dnsmasq is
restarted; ensure: absent removes bridge, table, dnsmasq and files and
nothing else."""
import vmhtest

vmhtest.require_netns()
import glob
import os
import shutil
import subprocess
import sys
import time

from vmhtest import Daemon, check, fail, mocks, wait_for

for tool in ("ip", "nft", "dnsmasq", "busybox"):
    if not shutil.which(tool):
        fail(f"{tool} is not installed")
if os.geteuid() != 0:
    fail("needs root (network namespaces)")

TAG = str(os.getpid())
H, U, G = f"vmhn-h{TAG}", f"vmhn-u{TAG}", f"vmhn-g{TAG}"
BR = "vmhnbr0"
SUBNET, GW = "192.168.77.0/24", "192.168.77.1"
HOST_WAN, UP_IP, PORT = "10.77.0.1", "10.77.0.2", 8080
procs = []


def sh(*args, check_rc=True, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        fail(" ".join(cmd), "->", r.returncode, r.stdout, r.stderr)
    return r


def nat_yaml(extra=""):
    # persist: the mock hypervisor keeps its VMs across the restart.
    return mocks(hv=", persist: true", st=", persist: true").replace(
        "{ name: net0, plugin: mock }",
        f"{{ name: net0, plugin: nat, bridge: {BR}, subnet: {SUBNET}, "
        f"dhcp_range: 192.168.77.50-192.168.77.99, "
        f"reservations: [{{ mac: '52:54:00:aa:bb:cc', ip: 192.168.77.10 }}]"
        f"{extra} }}")


def ruleset():
    return sh("nft", "list", "ruleset", ns=H).stdout


def our_table():
    return sh("nft", "list", "table", "inet", "vmhost-net0", ns=H).stdout


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().startswith(b"dnsmasq\0")
    except OSError:
        return False


def dnsmasqs(pidfile):
    """PIDs of the dnsmasq processes using this pid file."""
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/cmdline", "rb") as f:
                if f"--pid-file={pidfile}".encode() in f.read().split(b"\0"):
                    out.append(int(d[6:]))
        except OSError:
            pass
    return out


def read_pid(pidfile):
    with open(pidfile) as f:
        return int(f.read().split()[0])


SERVER = f"""
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{UP_IP}", {PORT})); s.listen(8)
def serve(c, a):
    c.sendall(("peer %s\\n" % a[0]).encode())
    while True:
        d = c.recv(4096)
        if not d: break
        c.sendall(b"echo " + d)
while True:
    c, a = s.accept(); threading.Thread(target=serve, args=(c, a), daemon=True).start()
"""

CLIENT = f"""
import socket, sys
c = socket.create_connection(("{UP_IP}", {PORT}), timeout=20)
f = c.makefile("rb")
print(f.readline().decode().strip(), flush=True)
for line in sys.stdin:
    c.sendall(line.encode())
    print(f.readline().decode().strip(), flush=True)
"""

DNS_CLIENT = r"""
import socket, struct, sys


def dns_query(server, name):
    # A records for name from server (plain UDP DNS).
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(q, (server, 53))
    r = s.recv(512)
    an = struct.unpack(">H", r[6:8])[0]
    i, ips = len(q), []
    for _ in range(an):
        i += 2 if r[i] & 0xC0 == 0xC0 else len(name) + 2
        typ, _, _, rdlen = struct.unpack(">HHIH", r[i:i + 10])
        i += 10
        if typ == 1:
            ips.append(socket.inet_ntoa(r[i:i + rdlen]))
        i += rdlen
    return ips


print(" ".join(dns_query(sys.argv[1], sys.argv[2])))
"""

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew) ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "lease $ip" ;;
esac
"""


def setup():
    for ns in (H, U, G):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", H, "link", "add", "wan0", "type", "veth", "peer", "name",
       "eth0", "netns", U)
    sh("ip", "-n", H, "addr", "add", f"{HOST_WAN}/24", "dev", "wan0")
    sh("ip", "-n", H, "link", "set", "wan0", "up")
    sh("ip", "-n", U, "addr", "add", f"{UP_IP}/24", "dev", "eth0")
    sh("ip", "-n", U, "link", "set", "eth0", "up")
    sh("ip", "-n", H, "route", "add", "default", "via", UP_IP)
    # Another table in the host's ruleset: the plugin must leave it alone.
    sh("nft", "add table inet bystander; add chain inet bystander c; "
       "add rule inet bystander c counter", ns=H)
    procs.append(subprocess.Popen(["ip", "netns", "exec", U, "python3", "-c",
                                   SERVER]))


def cleanup(d, statedir):
    if d is not None and d.proc:  # before dnsmasq: its supervisor restarts it
        d.proc.kill()
        d.proc.wait()
        d.proc = None
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if statedir:
        for pid in dnsmasqs(os.path.join(statedir, "dnsmasq.pid")):
            os.kill(pid, 9)
    for ns in (G, U, H):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


statedir = d = None
try:
    setup()
    before = ruleset()
    d = Daemon(nat_yaml(), wrapper=["ip", "netns", "exec", H])
    d.start()
    statedir = os.path.join(d.tmp, "state", "plugins", "net0")
    pidfile = os.path.join(statedir, "dnsmasq.pid")

    # The bridge with the gateway address, our table only, forwarding on.
    addr = sh("ip", "-n", H, "-4", "-o", "addr", "show", "dev", BR).stdout
    check(f"{GW}/24" in addr, "gateway address on the bridge:", addr)
    check(sh("cat", "/proc/sys/net/ipv4/ip_forward", ns=H).stdout.strip() == "1",
          "forwarding on")
    after = ruleset()
    check(after.startswith(before.rstrip("\n")) or before in after,
          "the old ruleset is kept:", before, after)
    table = our_table()
    check(after.replace(table, "").strip() == before.strip(),
          "only table inet vmhost-net0 was added:\n", before, "\n---\n", after)
    check(table.count("masquerade") == 1, table)
    check('oifname "wan0" masquerade' in table,
          "masquerade towards the default route's interface:", table)
    info = d.ok(op="network_list")
    net = [x for x in info["networks"] if x["name"] == "net0"][0]
    check(net["bridge"] == BR and net["cidr"] == SUBNET and
          net["gateway"] == GW and net["up"], net)

    # dnsmasq: one, ours.
    pid1 = read_pid(pidfile)
    check(dnsmasqs(pidfile) == [pid1], "one dnsmasq:", dnsmasqs(pidfile))
    with open(f"/proc/{pid1}/status") as f:
        blk = [l for l in f if l.startswith("SigBlk:")][0]
    check(int(blk.split()[1], 16) & (1 << 14) == 0,
          "dnsmasq does not inherit vmhostd's blocked SIGTERM:", blk)

    # A VM through the core: its NIC gets a bridge binding with a MAC.
    # Defined, not started: the mock hypervisor reports an address of its own
    # for a running VM with a NIC, and the core asks the network only when
    # the hypervisor reports none.  The namespace "guest" below stands in
    # for the VM.
    vm = d.ok(op="vm_create", no_start=True, spec={"name": "g1", "vcpus": 1,
                                    "memory": 1 << 28, "disks": [],
                                    "nics": [{"name": "net0"}]})["vms"][0]
    b = vm["nics"][0]["binding"]
    check(b["type"] == "bridge" and b["bridge"] == BR, b)
    mac = b["mac"]
    check(mac.startswith("52:54:00:"), mac)
    with open(os.path.join(statedir, "ports")) as f:
        check(f.read() == f"{vm['id']}\tnet0\t{mac}\n", "port recorded")
    net = d.ok(op="network_get", network="net0")["networks"][0]
    check(net["n_ports"] == 1 and net["mtu"] > 0, net)
    check(not d.ok(op="vm_get", vm="g1", live=True)["vms"][0].get("ips"),
          "no address before the lease")

    # The "guest": a veth whose host end is a port of the bridge.
    sh("ip", "-n", H, "link", "add", "vmhng0", "type", "veth", "peer",
       "name", "eth0", "netns", G)
    sh("ip", "-n", H, "link", "set", "vmhng0", "master", BR, "up")
    sh("ip", "-n", G, "link", "set", "eth0", "address", mac)
    sh("ip", "-n", G, "link", "set", "eth0", "up")
    script = os.path.join(d.tmp, "udhcpc.sh")
    with open(script, "w") as f:
        f.write(UDHCPC_SCRIPT)
    os.chmod(script, 0o755)
    r = sh("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "10",
           "-T", "1", "-s", script, ns=G)
    lease = [l.split()[1] for l in r.stdout.splitlines() if l.startswith("lease ")]
    check(len(lease) == 1, "udhcpc got a lease:", r.stdout, r.stderr)
    ip = lease[0]
    check(ip.startswith("192.168.77.") and 50 <= int(ip.split(".")[3]) <= 99,
          "lease inside dhcp_range:", ip)

    # The lease shows up as the VM's address.
    ips = d.ok(op="vm_get", vm="g1", live=True)["vms"][0].get("ips")
    check(ips == [ip], "vm_get live=true reports the lease:", ips, ip)

    # Through the NAT: upstream has no route back, and sees the host's address.
    client = subprocess.Popen(["ip", "netns", "exec", G, "python3", "-u", "-c",
                               CLIENT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    procs.append(client)
    first = client.stdout.readline().strip()
    check(first == f"peer {HOST_WAN}", "upstream sees the host's address:", first)
    client.stdin.write("one\n")
    client.stdin.flush()
    check(client.stdout.readline().strip() == "echo one", "echo one")

    # DNS: dnsmasq answers for the gateway.
    r = sh("python3", "-c", DNS_CLIENT, GW, "gateway", ns=G)
    check(r.stdout.split() == [GW], "gateway resolves:", r.stdout, r.stderr)

    # Restart vmhostd: same rules (none duplicated), same dnsmasq, the
    # guest's connection still open and working.
    check(d.stop() == 0, "clean stop")
    check(read_pid(pidfile) == pid1 and pid_alive(pid1), "dnsmasq kept running")
    check(ruleset() == after, "rules kept while vmhostd is down")
    d.start()
    check(ruleset() == after, "no duplicated or changed rule after restart:\n",
          ruleset())
    check(read_pid(pidfile) == pid1 and dnsmasqs(pidfile) == [pid1],
          "dnsmasq adopted, not duplicated:", dnsmasqs(pidfile))
    check("adopted running dnsmasq" in d.log(), "adoption logged")
    client.stdin.write("two\n")
    client.stdin.flush()
    check(client.stdout.readline().strip() == "echo two",
          "the guest's TCP connection survived the restart")
    ips = d.ok(op="vm_get", vm="g1", live=True)["vms"][0].get("ips")
    check(ips == [ip], "address after restart:", ips)

    # A dnsmasq that dies is restarted by the supervisor.
    os.kill(pid1, 9)
    pid2 = wait_for(lambda: (os.path.exists(pidfile) and read_pid(pidfile) != pid1
                             and pid_alive(read_pid(pidfile)) and read_pid(pidfile)),
                    "dnsmasq restarted")
    check(dnsmasqs(pidfile) == [pid2], "one dnsmasq again:", dnsmasqs(pidfile))
    d.ok(op="health")
    r = sh("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "10",
           "-T", "1", "-s", script, ns=G)
    check(f"lease {ip}" in r.stdout, "same lease from the new dnsmasq:", r.stdout)

    # Deleting the VM unbinds its port.
    d.ok(op="vm_delete", vm="g1")
    with open(os.path.join(statedir, "ports")) as f:
        check(f.read() == "", "port record removed")
    check(d.stop() == 0, "clean stop")

    # ensure: absent removes the network and nothing else.
    client.kill()
    client.wait()
    d.write_config(nat_yaml(", ensure: absent"))
    d.start()
    check(sh("ip", "-n", H, "link", "show", BR, check_rc=False).returncode != 0,
          "bridge removed")
    check(ruleset() == before, "ruleset back to what it was:\n", ruleset())
    check(not pid_alive(pid2) and dnsmasqs(pidfile) == [], "dnsmasq stopped")
    left = sorted(os.listdir(statedir))
    check(left == [], "files removed:", left)
    check(sh("ip", "-n", H, "link", "show", "wan0").returncode == 0, "wan0 kept")
    check(d.stop() == 0, "clean stop")
    shutil.rmtree(d.tmp)
finally:
    cleanup(d, statedir)
print("ok")
