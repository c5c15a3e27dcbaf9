#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmhost-agent in a real TCG guest through the libvirt plugin (a private
libvirtd): lvguest.py's kernel with a busybox initramfs whose /init
formats and mounts the VM's disk at /data and runs the static agent on
the virtio-serial port org.vmhost.agent.0.

First vmhostd with the guest front-end: it connects to the VM's channel
when the VM runs, shakes hands and gets telemetry.  Through the REST API
(curl on the rest instance's unix socket): the agent in VM info and GET
…/agent (telemetry matching the guest), exec allowed / refused by the
allowlist (403 with the agent's message) / timed out / output capped,
a file written and read back, one refused by the agent's policy, time
sync, and quiesced snapshots: the agent logs the freeze and the thaw
around the snapshot and /data takes writes after it, also when the
snapshot fails (a second snapshot of the same name, refused by libvirt).
Then, vmhostd stopped
(the guest runs on under libvirtd), the test speaks to the agent on the
channel socket itself: ping; telemetry matches the guest (hostname, kernel,
/data, its NIC-less network); exec allowed, refused by the allowlist, timed
out, output capped; a file written then read back, a path outside the
policy refused, the size cap; the clock set from the host; freeze: a
write to /data blocks while frozen and completes after the thaw, the
agent's log says so, and a freeze without a thaw is thawed by the agent's
own timeout; shutdown through the agent powers the guest off."""
import atexit
import base64
import json
import os
import subprocess
import time

from agenttest import HostEnd, agent_binary, frame, pb
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
  - name: rest
    plugin: rest
    listen:
      - {{ address: "{sock}" }}
"""

require_qemu()
vmlinuz, mods = kernel(extra=EXT4)
tmp = __import__("tempfile").mkdtemp(prefix="vmhtest.")
REST_SOCK = os.path.join(tmp, "rest.sock")
d = Daemon("", tmp=tmp, frontends=GUEST.format(sock=REST_SOCK))
d._own_tmp = True
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


def rest(method, path, body=None, data=None, headers=()):
    """curl on the rest socket (root: admin): (status, JSON or bytes,
    the response's header text)."""
    args = ["curl", "-sS", "--max-time", "120", "--unix-socket", REST_SOCK,
            "-X", method, "-D", "-", "-o", os.path.join(tmp, "out")]
    if body is not None:
        args += ["-H", "content-type: application/json", "--data-binary",
                 json.dumps(body)]
    if data is not None:
        with open(os.path.join(tmp, "in"), "wb") as f:
            f.write(data)
        args += ["-H", "content-type: application/octet-stream",
                 "--data-binary", "@" + os.path.join(tmp, "in")]
    for h in headers:
        args += ["-H", h]
    r = subprocess.run(args + ["http://vmhost" + path], capture_output=True,
                       text=True)
    check(r.returncode == 0, "curl", path, r.stderr)
    status = int(r.stdout.split("\r\n")[0].split()[1])
    with open(os.path.join(tmp, "out"), "rb") as f:
        out = f.read()
    if "application/json" in r.stdout.lower():
        out = json.loads(out)
    return status, out, r.stdout.lower()


def rest_ok(method, path, body=None, status=200, **kw):
    st, out, _ = rest(method, path, body, **kw)
    check(st == status, method, path, st, out)
    return out


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

    # ---- the same agent through the REST API ------------------------------
    vmj = rest_ok("GET", "/api/v1/vms/agent1")
    check(vmj["agent"]["state"] == "connected" and
          vmj["agent"]["version"], vmj["agent"])
    check(vmj["ips"] == [], "the guest has only lo:", vmj["ips"])
    a = rest_ok("GET", "/api/v1/vms/agent1/agent")
    check("freeze" in a["capabilities"] and a["telemetry"], a)
    check(a["telemetry"]["hostname"] == "vmh-guest" and
          a["telemetry"]["kernel"] == os.path.basename(vmlinuz)[
              len("vmlinuz-"):], a["telemetry"])
    check([fs for fs in a["telemetry"]["filesystems"]
           if fs["mountpoint"] == "/data" and fs["type"] == "ext4"],
          a["telemetry"]["filesystems"])

    def api_sh(*argv, **kw):
        return rest_ok("POST", "/api/v1/vms/agent1/agent/exec",
                       {"argv": ["/bin/busybox", *argv], **kw})

    x = api_sh("uname", "-n")
    check(x["exit_status"] == 0 and x["stdout"] == "vmh-guest\n" and
          x["stdout_encoding"] == "utf-8", x)
    st, e, _ = rest("POST", "/api/v1/vms/agent1/agent/exec",
                    {"argv": ["/bin/sh", "-c", "id"]})
    check(st == 403 and e["error"]["code"] == "PERMISSION_DENIED" and
          "/bin/sh" in e["error"]["message"], st, e)
    x = api_sh("sleep", "30", timeout_ms=500)
    check(x["timed_out"] and x["exit_status"] == -1, x)
    x = api_sh("head", "-c", "100000", "/dev/zero")
    check(x["stdout_truncated"] and x["stdout_encoding"] == "base64" and
          base64.b64decode(x["stdout"]) == b"\0" * 4096, x["stdout_truncated"])
    blob = bytes(range(256)) * 8
    w = rest_ok("PUT", "/api/v1/vms/agent1/agent/files?path=/data/api",
                data=blob)
    check(w == {"size": len(blob)}, w)
    st, back, hdrs = rest("GET", "/api/v1/vms/agent1/agent/files?path=/data/api")
    check(st == 200 and back == blob and f"x-file-size: {len(blob)}" in hdrs,
          st, hdrs)
    check(api_sh("md5sum", "/data/api")["stdout"].split()[0] ==
          __import__("hashlib").md5(blob).hexdigest(), "the guest's copy")
    st, e, _ = rest("PUT", "/api/v1/vms/agent1/agent/files?path=/etc/passwd",
                    data=b"x")
    check(st == 403 and e["error"]["code"] == "PERMISSION_DENIED", st, e)
    ts = rest_ok("POST", "/api/v1/vms/agent1/agent/time-sync", {})
    check(abs(ts["offset_ns"]) < 120 * 10**9, ts)

    # Quiesced snapshots: the agent freezes /data before the snapshot and
    # thaws it after (its log says so, in that order, and /data takes a
    # write again); a snapshot failing after the freeze is thawed too.
    def agent_log_text():
        st, out, _ = rest("GET",
                          "/api/v1/vms/agent1/agent/files?path=/tmp/agent.log")
        check(st == 200, st, out)
        return out

    def froze_thawed(log):
        return log.count(b"froze 1 filesystems"), log.count(
            b"thawed 1 filesystems")

    before = froze_thawed(agent_log_text())
    t0 = time.time()
    snap = rest_ok("POST", "/api/v1/vms/agent1/snapshots",
                   {"name": "q1", "quiesce": True}, status=201)
    print(f"quiesced snapshot took {time.time() - t0:.1f} s")
    check(snap["quiesced"] is True and snap["name"] == "q1", snap)
    log = agent_log_text()
    check(froze_thawed(log) == (before[0] + 1, before[1] + 1),
          "no freeze and thaw around the snapshot:", log.decode())
    check(log.rindex(b"froze 1 filesystems") <
          log.rindex(b"thawed 1 filesystems"), log.decode())
    check(api_sh("touch", "/data/after-q1", timeout_ms=3000)["exit_status"]
          == 0, "/data still frozen after the snapshot")
    snaps = rest_ok("GET", "/api/v1/vms/agent1/snapshots")["snapshots"]
    check([s["name"] for s in snaps] == ["q1"], snaps)
    rest_ok("DELETE", f"/api/v1/vms/agent1/snapshots/{snaps[0]['id']}",
            status=204)
    # A snapshot that fails after the freeze: a raw disk added to the VM
    # (libvirt takes no internal snapshot of a raw disk).  A name already
    # taken would not do: the core refuses it before any freeze.
    rest_ok("POST", "/api/v1/vms/agent1/disks",
            {"name": "vdb", "pool": "pool0", "size": "1MiB",
             "format": "raw"})
    st, e, _ = rest("POST", "/api/v1/vms/agent1/snapshots",
                    {"name": "q2", "quiesce": True})
    check(st >= 400, "a snapshot with a raw disk was taken", st, e)
    print("the failing snapshot:", st, e["error"]["message"])
    check(froze_thawed(agent_log_text()) == (before[0] + 2, before[1] + 2),
          "a failed snapshot left the guest frozen")
    check(api_sh("touch", "/data/after-q2", timeout_ms=3000)["exit_status"]
          == 0, "/data frozen after the failed snapshot")
    snaps = rest_ok("GET", "/api/v1/vms/agent1/snapshots")["snapshots"]
    check(snaps == [], snaps)
    froze_api = froze_thawed(agent_log_text())[0]
    d.stop()

    def call(h, **body):
        r = h.call(pb.Request(**body))
        check(not r.HasField("error"), body, r.error)
        return getattr(r, r.WhichOneof("body"))

    def sh(h, *argv, **kw):
        return call(h, exec=pb.ExecRequest(argv=["/bin/busybox", *argv],
                                           **kw))

    h = HostEnd(connect=chan)
    # As vmhostd does: a sync, and every frame before its answer dropped
    # (answers to what vmhostd asked before it stopped may still come).
    h.next_id = 1 << 40
    sync = pb.Request(id=h.next_id, sync=pb.SyncRequest())
    h.send(frame(sync.SerializeToString()))
    while True:
        r = pb.Response()
        r.ParseFromString(h.read_frame())
        if r.id == sync.id:
            break
    h.next_id += 1
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
    check(log.count(b"froze 1 filesystems") == froze_api + 2 and
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
