#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The guest front-end on a vsock channel (VMH_CHANNEL_VSOCK: a unix
socket bridging to a vsock port, as Cloud Hypervisor's, "CONNECT <port>"
then "OK <n>"), played by this test on a mock VM (mock hypervisor with
vsock_port): the bridge first closes (nothing listens in the guest yet),
then answers OK with the agent's first frame in the same write; the
front-end retries, keeps that frame for the reader, and connects."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agenttest import (Peer, answer_properly, frame,  # noqa: E402
                       guest_metric, pb)
from vmhtest import Daemon, check, mocks, vm_spec, wait_for  # noqa: E402

GUEST = """  - name: guest
    plugin: guest
    retry_ms: 50
    timeout_ms: 2000
    ping_ms: 100
    rescan_ms: 200
"""
lines = []


def bridge(p):
    line = b""
    while not line.endswith(b"\n") and len(line) < 64:
        c = p.conn.recv(1)
        if not c:
            return
        line += c
    lines.append(line)
    if len(lines) == 1:
        return   # nothing listens on the port in the guest yet: closed
    # OK, and a stale frame right behind it (the sync discards it).
    p.conn.sendall(b"OK 1073741824\n" + frame(
        pb.Response(id=7, ping=pb.PingResponse()).SerializeToString()))
    while (req := p.read_request()) is not None:
        answer_properly(p, req)


def metric(d, name):
    return guest_metric(d.ok(op="metrics")["text"], name)


with Daemon(mocks(hv=", vsock_port: 1024"), frontends=GUEST) as d:
    vm = d.ok(op="vm_create", spec=vm_spec("v", guest_channel=True))["vms"][0]
    check(vm["channel"]["type"] == "vsock" and vm["channel"]["port"] == 1024,
          vm["channel"])
    p = Peer(vm["channel"]["path"], bridge)
    wait_for(lambda: metric(d, "agents_connected") == 1, "connected over vsock")
    check(lines[:2] == [b"CONNECT 1024\n"] * 2, lines)
    check(p.connections >= 2, "no retry after the bridge closed")
    check(metric(d, "discarded_total") >= 1, "the frame after OK was lost")
    wait_for(lambda: p.requests.count("ping") >= 2, "pings over vsock")
