#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The guest front-end against hostile guests, played by this test on the
channel sockets of mock VMs (the mock hypervisor reports
<state>/<id>.agent, where the test listens as QEMU would): garbage, a
4 GiB length, a flood of frames, a stall in the middle of a frame,
answers with wrong ids.  Meanwhile a well-behaved agent on another VM
stays connected and answered, the API answers, vmhostd stays up, and the
metrics count each attack.  Also: the handshake (sync with a random id,
stale frames discarded, hello), reconnection when the agent restarts,
disconnection when the VM stops."""
import json
import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agenttest import MAGIC, Peer, answer_properly, frame, pb  # noqa: E402
from vmhtest import Daemon, check, mocks, vm_spec, wait_for  # noqa: E402

GUEST = """  - name: guest
    plugin: guest
    retry_ms: 50
    timeout_ms: 400
    ping_ms: 100
    telemetry_ms: 150
    cutoff_ms: 3600000
    rescan_ms: 200
    max_frame: 64KiB
    rate: 50
    burst: 50
    max_stray: 4
"""


def good(p):
    # A stale answer from before the connect: discarded by the sync.
    p.conn.sendall(frame(pb.Response(id=12345, ping=pb.PingResponse())
                         .SerializeToString()))
    while (req := p.read_request()) is not None:
        answer_properly(p, req)


def handshake(p):
    """Answers the sync and the hello; returns the next request."""
    while (req := p.read_request()) is not None:
        if req.WhichOneof("body") in ("sync", "hello"):
            answer_properly(p, req)
            if req.WhichOneof("body") == "hello":
                return p.read_request()
    return None


def garbage(p):
    junk = bytes(range(256)) * 64
    for _ in range(4):
        p.conn.sendall(junk.replace(b"V", b"v"))
    while p.read_request() is not None:
        pass


def huge(p):
    p.read_request()
    p.conn.sendall(MAGIC + b"\xff\xff\xff\xff" + b"x" * 1000)
    while p.read_request() is not None:
        pass


def flood(p):
    # Frames before the sync answer are discarded, not stray: only the
    # rate limit stops this one.
    p.read_request()
    one = frame(pb.Response(id=1, ping=pb.PingResponse())
                .SerializeToString())
    try:
        for _ in range(200):
            p.conn.sendall(one * 100)
    except OSError:
        pass  # cut off mid-flood


def stall(p):
    handshake(p)
    p.conn.sendall(MAGIC + struct.pack(">I", 100) + b"half a fr")
    while p.read_request() is not None:
        pass


def liar(p):
    while (req := p.read_request()) is not None:
        if req.WhichOneof("body") in ("sync", "hello"):
            answer_properly(p, req)
        else:
            p.answer(req, ping=pb.PingResponse())
            req.id += 1000
            p.answer(req, ping=pb.PingResponse())


def metric(d, name):
    text = d.ok(op="metrics")["text"]
    for line in text.splitlines():
        if line.startswith(f"vmhost_plugin_{name}{{") and 'instance="guest"' \
                in line:
            return float(line.split()[-1])
    return 0


class Events(threading.Thread):
    """The API's event stream (the ctl front-end's "events" op): the
    guest front-end's events, as (vm_id, reason, message)."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(d.sock)
        self.s.sendall(b'{"op":"events"}\n')
        self.f = self.s.makefile("rb")
        check(json.loads(self.f.readline()).get("code") == 0, "events")
        self.seen = []
        self.start()

    def run(self):
        for line in self.f:
            ev = json.loads(line).get("event", {})
            if ev.get("source") == "guest":
                self.seen.append((ev.get("vm_id"), ev.get("reason"),
                                  ev.get("message")))

    def has(self, vm_id, reason):
        return [e for e in self.seen if e[:2] == (vm_id, reason)]


with Daemon(mocks(), frontends=GUEST) as d:
    events = Events(d)
    ids = {}

    def new_vm(name, script):
        vm = d.ok(op="vm_create", spec=vm_spec(name, guest_channel=True))
        path = vm["vms"][0]["channel"]["path"]
        ids[name] = vm["vms"][0]["id"]
        return vm["vms"][0]["id"], Peer(path, script)

    gid, g = new_vm("good", good)
    wait_for(lambda: metric(d, "agents_connected") == 1, "the good agent")
    wait_for(lambda: "telemetry" in g.requests, "telemetry asked")
    check(g.requests[:2] == ["sync", "hello"], g.requests[:4])
    check(metric(d, "discarded_total") >= 1, "stale answer not discarded")
    check("agent test?[31m connected" in d.log(), "version not sanitised")
    wait_for(lambda: events.has(gid, "agent-connected"), "connected event")
    check(events.has(gid, "agent-connected")[0][2] == "test?[31m", events.seen)

    hostile = {n: new_vm(n, s)[1] for n, s in
               [("garbage", garbage), ("huge", huge), ("flood", flood),
                ("stall", stall), ("liar", liar)]}
    wait_for(lambda: metric(d, "garbage_bytes_total") >= 4 * 16384,
             "garbage counted")
    wait_for(lambda: metric(d, "oversize_frames_total") >= 1, "4 GiB length")
    wait_for(lambda: metric(d, "rate_limited_total") >= 1, "flood cut off")
    wait_for(lambda: metric(d, "stalls_total") >= 1, "stall cut off")
    wait_for(lambda: metric(d, "protocol_errors_total") >= 1, "liar cut off")
    check(metric(d, "stray_answers_total") >= 4, "wrong ids not counted")
    check(metric(d, "cutoffs_total") >= 3, "cut-offs")
    for n in ("flood", "stall", "liar"):
        wait_for(lambda: events.has(ids[n], "agent-cut-off"), f"{n} event")
        wait_for(hostile[n].closed.is_set, f"{n} disconnected")
        check(hostile[n].connections == 1, n, "reconnected while cut off")

    # The good agent was served all along, and still is; the API answers.
    before = len(g.requests)
    wait_for(lambda: len(g.requests) >= before + 4, "good agent still pinged")
    check(metric(d, "agents_connected") == 1, "good agent dropped")
    check(len(d.ok(op="vm_list")["vms"]) == 6, "vm_list")

    # The agent restarts: vmhostd reconnects and shakes hands again.
    g.closed.clear()
    g.conn.shutdown(socket.SHUT_RDWR)
    wait_for(lambda: g.connections == 2 and
             metric(d, "agents_connected") == 1, "reconnected")
    # The VM stops: the connection goes.
    g.closed.clear()
    d.ok(op="vm_action", vm=gid, action="stop", force=True)
    wait_for(g.closed.is_set, "disconnect when the VM stops")
    wait_for(lambda: len(events.has(gid, "agent-disconnected")) == 2,
             "disconnected events (agent restart, VM stop)")
    check(len(events.has(gid, "agent-connected")) == 2, events.seen)
    wait_for(lambda: metric(d, "agents_connected") == 0, "gauge back to 0")
    check(d.proc.poll() is None, "vmhostd died")
