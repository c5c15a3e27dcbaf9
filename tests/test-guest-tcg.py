#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmhost-agent in a real TCG guest through the libvirt plugin (a private
libvirtd): lvguest.py's kernel with a busybox initramfs whose /init
formats and mounts the VM's disk at /data and runs the static agent on
the virtio-serial port org.vmhost.agent.0.

First vmhostd with the guest front-end: it connects to the VM's channel
when the VM runs, shakes hands and gets telemetry.  Then, vmhostd stopped
(the guest runs on under libvirtd), the test speaks to the agent on the
channel socket itself: ping; telemetry matches the guest (hostname, kernel,
/data, its NIC-less network); exec allowed, refused by the allowlist, timed
out, output capped; a file written then read back, a path outside the
policy refused, the size cap; the clock set from the host; freeze: a
write to /data blocks while frozen and completes after the thaw, the
agent's log says so, and a freeze without a thaw is thawed by the agent's
own timeout; shutdown through the agent powers the guest off."""
import atexit
import os
import time

from agenttest import HostEnd, agent_binary, pb
from lvguest import (FIND_PORT, MODS, Libvirtd, build_initrd, guest_config,
                     kernel, require_qemu)
from vmhtest import Daemon, check, vm_spec, wait_for

EXT4 = ["crc16", "mbcache", "jbd2", "crc32c_generic", "ext4"]
CONF = """exec:
  allow: [/bin/busybox]
  timeout_ms: 5000
  max_output: 4096
files:
  read: [/tmp, /data, /etc]
  write: [/data]
  max_bytes: 65536
freeze_timeout_s: 30
"""
INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /tmp /data; mount -t tmpfs tmp /tmp
for m in %s; do insmod /lib/modules/$m.ko; done
hostname vmh-guest
for i in $(seq 1 500); do [ -e /dev/vda ] && break; usleep 20000; done
mke2fs -q /dev/vda && mount -t ext4 /dev/vda /data
%smkdir -p /dev/virtio-ports
ln -s $PORT /dev/virtio-ports/org.vmhost.agent.0
echo "GUEST: agent on ${PORT:-NOT FOUND}"
# As systemd's Restart=always would: the agent runs again if it dies.
(while true; do /sbin/vmhost-agent 2>>/tmp/agent.log; sleep 1; done) &
sleep 100000
"""
GUEST = """  - name: guest
    plugin: guest
    retry_ms: 200
    timeout_ms: 10000
    ping_ms: 1000
    telemetry_ms: 2000
"""

require_qemu()
vmlinuz, mods = kernel(extra=EXT4)
d = Daemon("", frontends=GUEST)
lv = Libvirtd(os.path.join(d.tmp, "libvirt"))
atexit.register(lv.cleanup)
conf = os.path.join(d.tmp, "agent.yaml")
with open(conf, "w") as f:
    f.write(CONF)
initrd = build_initrd(
    d.tmp, mods, init=INIT % (" ".join(MODS + EXT4), FIND_PORT),
    files=[(agent_binary(dev=False), "/sbin/vmhost-agent"),
           (conf, "/etc/vmhost/agent.yaml")])
pool = os.path.join(d.tmp, "pool")
os.makedirs(pool)
lv.start()
d.write_config(guest_config(lv.uri, pool))


def metric(name):
    for line in d.ok(op="metrics")["text"].splitlines():
        if line.startswith(f"vmhost_plugin_{name}{{") and \
                'instance="guest"' in line:
            return float(line.split()[-1])
    return 0


with d:
    vm = d.ok(op="vm_create", spec=vm_spec(
        "agent1", disks=1, nics=0, vcpus=1, memory=256 << 20,
        kernel=vmlinuz, initrd=initrd, cmdline="console=ttyS0 quiet panic=-1",
        guest_channel=True))["vms"][0]
    chan = vm["channel"]["path"]
    t0 = time.time()
    d.wait_log(f"vm {vm['id']}: agent ", timeout=300)
    print(f"agent connected {time.time() - t0:.1f} s after create")
    wait_for(lambda: metric("telemetry_total") >= 1, "telemetry", 120)
    check(metric("agents_connected") == 1, "gauge")
    d.stop()

    def call(h, **body):
        r = h.call(pb.Request(**body))
        check(not r.HasField("error"), body, r.error)
        return getattr(r, r.WhichOneof("body"))

    def sh(h, *argv, **kw):
        return call(h, exec=pb.ExecRequest(argv=["/bin/busybox", *argv],
                                           **kw))

    h = HostEnd(connect=chan)
    call(h, sync=pb.SyncRequest())
    hello = call(h, hello=pb.HelloRequest(version=1))
    check(hello.version == 1 and "freeze" in hello.capabilities, hello)
    call(h, ping=pb.PingRequest())

    t = call(h, telemetry=pb.TelemetryRequest())
    check(t.hostname == "vmh-guest", t.hostname)
    check(t.kernel == os.path.basename(vmlinuz)[len("vmlinuz-"):], t.kernel)
    check(t.cpus == 1 and 0 < t.memory_total <= 256 << 20, t)
    data = [fs for fs in t.filesystems if fs.mountpoint == "/data"]
    check(data and data[0].type == "ext4" and data[0].size > 0, t.filesystems)
    check(list(t.nics) == [], "the guest has no NIC:", t.nics)

    x = sh(h, "uname", "-n")
    check(x.exit_status == 0 and x.stdout == b"vmh-guest\n", x)
    r = h.call(pb.Request(exec=pb.ExecRequest(argv=["/bin/sh", "-c", "id"])))
    check(r.error.code == pb.ErrorCode.ERROR_PERMISSION_DENIED, r)
    x = sh(h, "sleep", "30", timeout_ms=500)
    check(x.timed_out, x)
    x = sh(h, "head", "-c", "100000", "/dev/zero")
    check(x.stdout_truncated and len(x.stdout) == 4096, len(x.stdout))

    call(h, file_write=pb.FileWriteRequest(path="/data/hello", data=b"hi\n"))
    f = call(h, file_read=pb.FileReadRequest(path="/data/hello"))
    check(f.data == b"hi\n" and f.eof, f)
    x = sh(h, "cat", "/data/hello")
    check(x.stdout == b"hi\n", "the guest sees the file:", x)
    r = h.call(pb.Request(file_write=pb.FileWriteRequest(
        path="/etc/passwd", data=b"x")))
    check(r.error.code == pb.ErrorCode.ERROR_PERMISSION_DENIED, r)
    r = h.call(pb.Request(file_write=pb.FileWriteRequest(
        path="/data/big", data=b"x" * 65537)))
    check(r.error.code == pb.ErrorCode.ERROR_TOO_LARGE, r)

    # The clock: set an hour ahead of the host's, then back.
    ahead = time.time_ns() + 3600 * 10**9
    call(h, time_sync=pb.TimeSyncRequest(unix_ns=ahead))
    g = int(sh(h, "date", "+%s").stdout)
    check(abs(g - (time.time() + 3600)) < 120, "guest clock", g)
    ts = call(h, time_sync=pb.TimeSyncRequest(unix_ns=time.time_ns()))
    check(abs(ts.offset_ns + 3600 * 10**9) < 120 * 10**9, ts)

    # Freeze: a write to /data blocks until the thaw.
    fr = call(h, freeze=pb.FreezeRequest(timeout_s=25))
    check(list(fr.frozen) == ["/data"], "frozen:", fr.frozen)
    x = sh(h, "touch", "/data/during", timeout_ms=1500)
    check(x.timed_out, "a write went through while frozen:", x)
    th = call(h, thaw=pb.ThawRequest())
    check(th.thawed == 1, th)
    wait_for(lambda: sh(h, "ls", "/data").stdout.split().count(b"during"),
             "the blocked write to complete after the thaw")
    # A freeze nobody thaws: the agent thaws by itself.
    call(h, freeze=pb.FreezeRequest(timeout_s=2))
    wait_for(lambda: sh(h, "touch", "/data/after",
                        timeout_ms=1000).exit_status == 0,
             "the agent's own thaw")

    def agent_log():
        return call(h, file_read=pb.FileReadRequest(path="/tmp/agent.log")).data

    # The watchdog logs right after its thaw: wait for the line.
    wait_for(lambda: b"no thaw came within 2s" in agent_log(),
             "the watchdog's log line")
    log = agent_log()
    check(log.count(b"froze 1 filesystems") == 2 and
          b"thawed 1 filesystems" in log, log.decode())

    # Shutdown through the agent: QEMU ends, libvirt sees the domain off.
    call(h, shutdown=pb.ShutdownRequest())
    h.conn.settimeout(120)
    try:
        rest = h.conn.recv(1)
    except OSError:
        rest = b""
    check(rest == b"", "the channel stays open after a shutdown")
    h.close()
    d.start()
    wait_for(lambda: d.ok(op="vm_get", vm="agent1", live=True)["vms"][0]
             ["state"] == "stopped", "the guest off", 120)
