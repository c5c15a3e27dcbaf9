#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A thaw that cannot be delivered is owed, not lost: a fake agent (on a
mock VM's channel socket) answers a quiesced snapshot's freeze and drops
the connection at once, so the snapshot's thaw finds no agent; the VM's
agent state says thaw_pending (REST and gRPC) while the agent is away;
when it comes back (the test lets its handshake through) the front-end
sends the thaw first thing, the agent's answer clears thaw_pending and
counts in thaws_resent_total.  A second drop while the re-sent thaw is
unanswered keeps it owed until an answer comes."""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agenttest import (Peer, answer_properly, guest_metric,  # noqa: E402
                       pb as apb)
from resttest import RestDaemon, validate  # noqa: E402
from rpctest import _Bearer, grpc, pb as npb  # noqa: E402
from vmhtest import check, free_port, mocks, vm_spec, wait_for  # noqa: E402

# The guest front-end quick to notice and retry; gRPC for GetAgent.
RPC_PORT = free_port()
EXTRA = f"""  - name: rpc
    plugin: rpc
    listen:
      - {{ address: "127.0.0.1:{RPC_PORT}" }}
  - name: guest
    plugin: guest
    rescan_ms: 200
    retry_ms: 50
    ping_ms: 200
    telemetry_ms: 0
    timeout_ms: 2000
"""


class DroppingAgent:
    """Connection 1 answers everything and drops right after answering a
    freeze.  Connection 2 waits for `gate` before it answers anything, and
    drops when it gets the thaw (without answering it).  Connection 3 on
    answers everything.  `log` holds (connection, request kind) of the
    freezes and thaws."""

    def __init__(self, path):
        self.log = []
        self.gate = threading.Event()
        self.peer = Peer(path, self.serve)

    def serve(self, p):
        n = p.connections
        if n == 2:
            self.gate.wait(120)
        while (req := p.read_request()) is not None:
            kind = req.WhichOneof("body")
            if kind in ("freeze", "thaw"):
                self.log.append((n, kind))
            if kind == "freeze":
                p.answer(req, freeze=apb.FreezeResponse(frozen=["/"]))
                if n == 1:
                    break
            elif kind == "thaw":
                if n == 2:
                    break
                p.answer(req, thaw=apb.ThawResponse(thawed=1))
            else:
                answer_properly(p, req, "1.0", ["ping", "freeze", "thaw"])
        p.conn.close()


def metric(d, name):
    return guest_metric(d.request("GET", "/metrics")[2], name)


with RestDaemon(rest=EXTRA, body=mocks()) as d:
    vm = d.ok("POST", "/api/v1/vms", vm_spec("t1", nics=0, guest_channel=True),
              status=201)
    agent = DroppingAgent(vm["channel"]["path"])
    wait_for(lambda: d.ok("GET", "/api/v1/vms/t1/agent")["state"] ==
             "connected", "the agent connected")
    a = d.ok("GET", "/api/v1/vms/t1/agent")
    check(a["thaw_pending"] is False, a)

    # The freeze is answered, then the connection drops: the thaw that
    # follows the snapshot has no agent to go to.
    s = d.ok("POST", "/api/v1/vms/t1/snapshots",
             {"name": "s1", "quiesce": True}, status=201)
    check(s["quiesced"] is True, s)
    check(agent.log == [(1, "freeze")], agent.log)
    a = d.ok("GET", "/api/v1/vms/t1/agent")
    validate("GET", "/api/v1/vms/t1/agent", 200, a)
    check(a["state"] != "connected" and a["thaw_pending"] is True, a)
    ch = grpc.intercept_channel(
        grpc.insecure_channel(f"127.0.0.1:{RPC_PORT}"), _Bearer(d.token()))
    node = npb.node_grpc.NodeServiceStub(ch)
    check(node.GetAgent(npb.node.VmRequest(vm="t1")).thaw_pending,
          "gRPC GetAgent: thaw_pending not set")
    check(metric(d, "thaws_resent_total") == 0, "a thaw counted too early")

    # The agent comes back; its first connection after the gate gets the
    # thaw and drops before answering it: still owed.
    agent.gate.set()
    wait_for(lambda: (2, "thaw") in agent.log, "the owed thaw re-sent")
    wait_for(lambda: agent.peer.connections >= 3, "the third connection")
    # The third connection answers it.
    wait_for(lambda: (3, "thaw") in agent.log, "the thaw sent once more")
    wait_for(lambda: not d.ok("GET", "/api/v1/vms/t1/agent")["thaw_pending"],
             "thaw_pending cleared by the agent's answer")
    check(agent.log == [(1, "freeze"), (2, "thaw"), (3, "thaw")], agent.log)
    check(metric(d, "thaws_resent_total") == 1, "thaws_resent_total")
    a = d.ok("GET", "/api/v1/vms/t1/agent")
    check(a["state"] == "connected", a)

    # Once delivered, nothing more is re-sent on later connections.
    n = agent.peer.connections
    agent.peer.conn.close()
    wait_for(lambda: agent.peer.connections > n and
             d.ok("GET", "/api/v1/vms/t1/agent")["state"] == "connected",
             "reconnected")
    check(agent.log == [(1, "freeze"), (2, "thaw"), (3, "thaw")],
          "a thaw re-sent after it was delivered:", agent.log)
print("ok")
