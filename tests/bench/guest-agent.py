#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The guest channel, measured side by side in one run:

1. Round trip of one request to an agent on a unix socket (the channel
   without the virtual hardware): vmhost-agent's ping and telemetry
   against QEMU's guest agent (qemu-ga --method unix-listen, the Debian
   package qemu-guest-agent) guest-ping and guest-info, both on this
   machine.  p50 / p99 in microseconds.
2. vmhostd's RSS per connected agent: a vmhostd (mocks + the guest
   front-end) with N mock VMs whose channels answer as an agent does,
   RSS before and after they connect, at max_frame 1 MiB and 64 KiB.

    tests/bench/guest-agent.py --builddir BUILD [--n 2000] [--vms 50]

BUILD is a build without sanitizers.  Figures are printed, never asserted.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--builddir", required=True)
ap.add_argument("--n", type=int, default=2000)
ap.add_argument("--vms", type=int, default=50)
args = ap.parse_args()
B = os.path.abspath(args.builddir)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402  (tests/bench, beside this script)
benchlib.setup(B)
os.environ.setdefault("top_builddir", B)
from startup import rss_kib  # noqa: E402
from agenttest import HostEnd, Peer, answer_properly, pb  # noqa: E402
from vmhtest import Daemon, mocks, vm_spec, wait_for  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def show(name, us):
    print(f"  {name:34s} p50 {pct(us, 50):7.1f} us   p99 {pct(us, 99):7.1f} us")


def timed(n, fn):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    return out


def vmhost_agent_rtt(tmp):
    conf = os.path.join(tmp, "agent.yaml")
    with open(conf, "w") as f:
        f.write("allow_freeze: false\nallow_shutdown: false\n"
                "allow_time_sync: false\n")
    with HostEnd() as h:
        p = subprocess.Popen([os.path.join(B, "agent", "vmhost-agent"),
                              "--config", conf, "--device", h.path],
                             stderr=subprocess.DEVNULL)
        try:
            h.accept()
            h.call(pb.Request(hello=pb.HelloRequest(version=1)))
            ping = timed(args.n, lambda: h.call(
                pb.Request(ping=pb.PingRequest())))
            tel = timed(args.n // 4, lambda: h.call(
                pb.Request(telemetry=pb.TelemetryRequest())))
        finally:
            p.terminate()
            p.wait()
    return ping, tel


def qga_rtt(tmp):
    qga = shutil.which("qemu-ga") or "/usr/sbin/qemu-ga"
    if not os.path.exists(qga):
        print("  qemu-ga: not installed (qemu-guest-agent): no reference")
        return None, None
    path = os.path.join(tmp, "qga.sock")
    p = subprocess.Popen([qga, "-m", "unix-listen", "-p", path, "-t", tmp],
                         stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(path), "qemu-ga's socket", 30)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        f = s.makefile("rb")

        def cmd(name):
            s.sendall(json.dumps({"execute": name}).encode() + b"\n")
            r = json.loads(f.readline())
            assert "return" in r, r

        ping = timed(args.n, lambda: cmd("guest-ping"))
        info = timed(args.n // 4, lambda: cmd("guest-info"))
        s.close()
    finally:
        p.terminate()
        p.wait()
    return ping, info


def metric(d, name):
    for line in d.ok(op="metrics")["text"].splitlines():
        if line.startswith(f"vmhost_plugin_{name}{{"):
            return float(line.split()[-1])
    return 0


def rss_per_agent(max_frame):
    fe = f"""  - name: guest
    plugin: guest
    ping_ms: 1000
    telemetry_ms: 2000
    max_frame: {max_frame}
"""
    with Daemon(mocks(), frontends=fe, log_level="info") as d:
        peers = []
        vms = []
        for i in range(args.vms):
            vm = d.ok(op="vm_create", spec=vm_spec(f"vm{i}", disks=0, nics=0,
                                                   guest_channel=False))
            vms.append(vm["vms"][0])
        time.sleep(1)
        before = rss_kib(d.proc.pid)
        for i in range(args.vms):
            d.ok(op="vm_delete", vm=f"vm{i}")
            vm = d.ok(op="vm_create", spec=vm_spec(f"vm{i}", disks=0, nics=0,
                                                   guest_channel=True))
            peers.append(Peer(vm["vms"][0]["channel"]["path"], serve))
        wait_for(lambda: metric(d, "agents_connected") == args.vms,
                 "every agent connected", 120)
        wait_for(lambda: metric(d, "telemetry_total") >= 2 * args.vms,
                 "telemetry from each", 120)
        after = rss_kib(d.proc.pid)
        d.stop()
    return before, after


def serve(p):
    while (req := p.read_request()) is not None:
        answer_properly(p, req)


tmp = tempfile.mkdtemp(prefix="vmhbench-guest.")
try:
    print(f"round trip on a unix socket, {args.n} pings, {args.n // 4} "
          "telemetry / guest-info:")
    ping, tel = vmhost_agent_rtt(tmp)
    qping, qinfo = qga_rtt(tmp)
    show("vmhost-agent ping", ping)
    if qping:
        show("qemu-ga guest-ping", qping)
    show("vmhost-agent telemetry", tel)
    if qinfo:
        show("qemu-ga guest-info", qinfo)
    print(f"vmhostd RSS with {args.vms} connected agents (mock VMs; the "
          "same VMs without a channel before):")
    for mf in ("1MiB", "64KiB"):
        b, a = rss_per_agent(mf)
        print(f"  max_frame {mf:6s}: {b} KiB -> {a} KiB, "
              f"{(a - b) / args.vms:.1f} KiB per agent")
finally:
    shutil.rmtree(tmp, True)
