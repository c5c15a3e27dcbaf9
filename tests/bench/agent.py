#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The guest agent through the API vs QEMU's guest agent through libvirt,
side by side in one run, to the same TCG guest:

1. One busybox guest (tests/lvguest.py's kernel and initramfs) through
   vmhostd's libvirt plugin on a private libvirtd, with both agents in
   it: vmhost-agent on org.vmhost.agent.0 and qemu-ga (Debian's
   qemu-guest-agent, its binary and libraries copied into the initramfs)
   on org.qemu.guest_agent.0, a channel hot-plugged through libvirt.
2. Round trips, alternating in rounds so both see the same machine load:
   REST (a kept-alive HTTP/1.1 connection on the rest instance's unix
   socket) POST /api/v1/vms/{vm}/agent/ping and GET …/agent?live=true
   (fresh telemetry), against libvirt_qemu.qemuAgentCommand guest-ping and
   guest-info (python3-libvirt, one kept connection).  p50 / p99, µs.
   Telemetry and guest-info are not like for like: telemetry reads
   /proc, statfs of every mount and the NICs; guest-info lists qemu-ga's
   commands.
3. vmhostd's RSS per connected agent: tests/bench/guest-agent.py's
   measure (mock VMs, fake agents), run from here.

    tests/bench/agent.py --builddir BUILD [--n 300]

BUILD is a build without sanitizers.  Figures are printed, never asserted.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--builddir", required=True)
ap.add_argument("--n", type=int, default=300)
ap.add_argument("--rounds", type=int, default=6)
args = ap.parse_args()
B = os.path.abspath(args.builddir)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
benchlib.setup(B)
os.environ.setdefault("top_builddir", B)
sys.path.append("/usr/lib/python3/dist-packages")  # python3-libvirt
import libvirt  # noqa: E402
import libvirt_qemu  # noqa: E402
libvirt.registerErrorHandler(lambda *_: None, None)  # "not connected yet"
from lvguest import (FIND_PORT, MODS, Libvirtd, build_initrd,  # noqa: E402
                     guest_config, kernel, require_qemu)
from vmhtest import Daemon, vm_spec, wait_for  # noqa: E402

EXT4 = ["crc16", "mbcache", "jbd2", "crc32c_generic", "ext4"]
CONF = """exec:
  allow: [/bin/busybox]
files:
  read: [/tmp]
  write: [/tmp]
"""
# qemu-ga starts once its port shows (it is hot-plugged after boot).
INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /tmp /var/run /data; mount -t tmpfs tmp /tmp
for m in %s; do insmod /lib/modules/$m.ko; done
hostname vmh-bench
%smkdir -p /dev/virtio-ports
ln -s $PORT /dev/virtio-ports/org.vmhost.agent.0
(while true; do /sbin/vmhost-agent 2>>/tmp/agent.log; sleep 1; done) &
(while true; do
   for p in /sys/class/virtio-ports/*; do
     [ "$(cat $p/name 2>/dev/null)" = org.qemu.guest_agent.0 ] &&
       /sbin/qemu-ga -m virtio-serial -p /dev/$(basename $p) \\
         -t /tmp 2>>/tmp/qga.log
   done
   sleep 1
 done) &
sleep 100000
"""
QGA_CHANNEL = """<channel type='unix'>
  <source mode='bind'/>
  <target type='virtio' name='org.qemu.guest_agent.0'/>
</channel>"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def show(name, us):
    print(f"  {name:44s} p50 {pct(us, 50):8.1f} us   p99 {pct(us, 99):8.1f} us"
          f"   (n={len(us)})")


def timed(n, fn, out):
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("vmhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def qemu_ga_files():
    """qemu-ga and the libraries it loads, as (source, path in guest)."""
    qga = shutil.which("qemu-ga") or "/usr/sbin/qemu-ga"
    if not os.path.exists(qga):
        sys.exit("qemu-ga is not installed (qemu-guest-agent)")
    ldd = subprocess.run(["ldd", qga], capture_output=True, text=True).stdout
    libs = re.findall(r"(/\S+\.so[.\d]*)", ldd)
    return [(qga, "/sbin/qemu-ga")] + [(lib, lib) for lib in libs]


require_qemu()
tmp = tempfile.mkdtemp(prefix="vmhbench-agent.")
sock = os.path.join(tmp, "rest.sock")
fe = f"""  - name: guest
    plugin: guest
    retry_ms: 200
    timeout_ms: 10000
    ping_ms: 10000
    telemetry_ms: 60000
  - name: rest
    plugin: rest
    listen:
      - {{ address: "{sock}" }}
"""
try:
    vmlinuz, mods = kernel(extra=EXT4)
    d = Daemon("", tmp=tmp, frontends=fe, log_level="info")
    lv = Libvirtd(os.path.join(tmp, "libvirt"))
    conf = os.path.join(tmp, "agent.yaml")
    with open(conf, "w") as f:
        f.write(CONF)
    initrd = build_initrd(
        tmp, mods, init=INIT % (" ".join(MODS + EXT4), FIND_PORT),
        files=[(os.path.join(B, "agent", "vmhost-agent"), "/sbin/vmhost-agent"),
               (conf, "/etc/vmhost/agent.yaml")] + qemu_ga_files())
    pool = os.path.join(tmp, "pool")
    os.makedirs(pool)
    lv.start()
    d.write_config(guest_config(lv.uri, pool))
    with d:
        vm = d.ok(op="vm_create", spec=vm_spec(
            "bench", disks=0, nics=0, vcpus=1, memory=256 << 20,
            kernel=vmlinuz, initrd=initrd, cmdline="console=ttyS0 quiet",
            guest_channel=True))["vms"][0]
        d.wait_log(f"vm {vm['id']}: agent ", timeout=300)
        conn = libvirt.open(lv.uri)
        dom = conn.lookupByUUIDString(vm["id"])
        dom.attachDeviceFlags(QGA_CHANNEL, libvirt.VIR_DOMAIN_AFFECT_LIVE)

        def qga(cmd):
            return json.loads(libvirt_qemu.qemuAgentCommand(
                dom, json.dumps({"execute": cmd}), 30, 0))["return"]

        def qga_up():
            try:
                qga("guest-ping")
                return True
            except libvirt.libvirtError:
                return False

        wait_for(qga_up, "qemu-ga answering through libvirt", 300)
        h = UnixHTTP(sock)

        def rest(method, path, body=None):
            h.request(method, path, body=body and json.dumps(body),
                      headers={"content-type": "application/json"}
                      if body is not None else {})
            r = h.getresponse()
            data = r.read()
            assert r.status == 200, (r.status, data)
            return data

        tel = json.loads(rest("GET", "/api/v1/vms/bench/agent?live=true"))
        print(f"guest: {tel['telemetry']['kernel']}, agent "
              f"{tel['version']}, qemu-ga {qga('guest-info')['version']}; "
              "TCG, 1 vCPU")
        res = {k: [] for k in ("rest ping", "qga ping", "rest tel", "qga info")}
        n = max(1, args.n // args.rounds)
        for _ in range(args.rounds):
            timed(n, lambda: rest("POST", "/api/v1/vms/bench/agent/ping", {}),
                  res["rest ping"])
            timed(n, lambda: qga("guest-ping"), res["qga ping"])
            timed(n // 4 or 1, lambda: rest(
                "GET", "/api/v1/vms/bench/agent?live=true"), res["rest tel"])
            timed(n // 4 or 1, lambda: qga("guest-info"), res["qga info"])
        print(f"round trip to the TCG guest, {args.rounds} alternating rounds:")
        show("REST POST …/agent/ping (vmhost-agent)", res["rest ping"])
        show("libvirt guest-ping (qemu-ga)", res["qga ping"])
        show("REST GET …/agent?live=true (telemetry)", res["rest tel"])
        show("libvirt guest-info (qemu-ga)", res["qga info"])
        h.close()
        conn.close()
        d.stop()
    lv.cleanup()
finally:
    shutil.rmtree(tmp, True)

print("vmhostd RSS per connected agent (tests/bench/guest-agent.py):")
sys.stdout.flush()
subprocess.run([sys.executable, os.path.join(HERE, "guest-agent.py"),
                "--builddir", B, "--n", "200", "--vms", "50"])
