#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""WatchEvents with the stock gRPC client (python3-grpcio): every event has
an id ("RUN-SEQ", increasing) and its VM's name; `since` replays exactly
what a client that lost its stream missed, in order; an id older than the
history (daemon.event_history), of another run or never sent begins the
stream with EVENT_TYPE_RESET; `vm` (id or name) and `types` filter; bad
values are INVALID_ARGUMENT; a failed start is followed by a VM_STATE back
to STOPPED; a replay too large for the stream's buffer is a reset too."""
import os
import re
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpctest import RpcDaemon, check, fail, grpc, mocks, pb, vm_spec  # noqa: E402

N = pb.node
SC = grpc.StatusCode


class Watch:
    """A WatchEvents call read on a thread."""

    def __init__(self, node, **req):
        self.call = node.WatchEvents(N.WatchEventsRequest(**req))
        self.events, self.error = [], None
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        try:
            for ev in self.call:
                with self.cv:
                    self.events.append(ev)
                    self.cv.notify_all()
        except grpc.RpcError as e:
            with self.cv:
                self.error = e
                self.cv.notify_all()

    def wait(self, pred, what, timeout=60):
        with self.cv:
            if not self.cv.wait_for(lambda: pred(self.events), timeout):
                fail("WatchEvents: no", what, self.events, self.error)

    def stop(self):
        self.call.cancel()
        self.t.join()
        return self.events


def seq(i):
    return int(i.rpartition("-")[2])


def has(t, vm_id=None):
    return lambda evs: any(e.type == t and (not vm_id or e.vm_id == vm_id)
                           for e in evs)


def key(e):
    return (e.id, e.type, e.vm_id, e.state, e.reason, e.operation)


# Starts that fail at once: most end before their caller made the
# operation visible (ops_close), and each must still show its transitional
# state.
FAULT = (", faults: [ { op: start, mode: always, error: timeout, "
         "message: 'mock: the guest did not come up' } ]")
N_BAD = 30  # failing starts (on 2 CPUs some 5 end before ops_close)
with RpcDaemon(body=mocks(hv=FAULT), daemon_yaml="  event_history: 24") as d:
    node = d.node()

    def make(name):
        return node.CreateVM(N.CreateVMRequest(spec=vm_spec(name),
                                               no_start=True))

    watch = Watch(node)
    # The stream is subscribed once an event comes through it.
    for i in range(60):
        make(f"probe-{i}")
        with watch.cv:
            if watch.cv.wait_for(lambda: watch.events, 1):
                break
    v1 = make("r-1")
    watch.wait(has(N.EVENT_TYPE_OPERATION, v1.id), "r-1's create ended")
    first = next(e for e in watch.events if e.vm_name == "r-1")
    check(re.fullmatch(r"[0-9a-f]{8}-[0-9]+", first.id), first)
    created = [e for e in watch.events if e.type == N.EVENT_TYPE_VM_CREATED
               and e.vm_id == v1.id]
    check(created[0].vm_name == "r-1", created)
    # The hypervisor's own VM_STATE (a plugin knows ids only) is named.
    check(any(e.source == "hv0" and e.vm_name == "r-1"
              for e in watch.events if e.type == N.EVENT_TYPE_VM_STATE),
          watch.events)
    ops = [e for e in watch.events if e.type == N.EVENT_TYPE_OPERATION and
           e.vm_id == v1.id]
    check(ops and ops[0].vm_name == "r-1", ops)

    # Resume: what a client reading up to `last` missed, in order.
    last = watch.events[-1].id
    v2 = make("r-2")
    node.DeleteVM(N.VmRequest(vm="r-2"))
    watch.wait(has(N.EVENT_TYPE_VM_DELETED, v2.id), "r-2 deleted")
    missed = [key(e) for e in watch.events if seq(e.id) > seq(last)]
    again = Watch(node, since=last)
    again.wait(lambda evs: len(evs) >= len(missed), "the replay")
    check([key(e) for e in again.stop()][:len(missed)] == missed,
          again.events, missed)
    ids = [seq(e.id) for e in watch.events]
    check(ids == sorted(set(ids)), "ids not increasing", ids)

    # Too old (24 kept), another run, never sent: RESET first, then live.
    for i in range(4):
        make(f"old-{i}")
        node.DeleteVM(N.VmRequest(vm=f"old-{i}"))
    run = first.id.partition("-")[0]
    other = ("1" if run[0] != "1" else "2") + run[1:]
    for since, why in ((first.id, "older than the 24 events kept"),
                       (f"{other}-1", "from another run"),
                       (f"{run}-999999", "was never sent")):
        w = Watch(node, since=since)
        w.wait(lambda evs: evs, "reset")
        r = w.events[0]
        check(r.type == N.EVENT_TYPE_RESET and why in r.message and r.id,
              since, r)
        v = make(f"after-{seq(r.id)}")
        w.wait(has(N.EVENT_TYPE_VM_CREATED, v.id), "a live event")
        check(seq(w.stop()[-1].id) > seq(r.id), w.events)

    # Filters.
    by_name = Watch(node, vm="r-1")
    by_id = Watch(node, vm=v1.id)
    types = Watch(node, types=[N.EVENT_TYPE_VM_CREATED,
                               N.EVENT_TYPE_VM_DELETED])
    v3 = make("other")
    node.DeleteVM(N.VmRequest(vm="other"))
    node.DeleteVM(N.VmRequest(vm="r-1"))
    for w in (by_name, by_id):
        w.wait(has(N.EVENT_TYPE_VM_DELETED, v1.id), "r-1 deleted")
        check(all(e.vm_id == v1.id for e in w.stop()), w.events)
    types.wait(has(N.EVENT_TYPE_VM_DELETED, v1.id), "r-1 deleted")
    check({e.type for e in types.stop()} ==
          {N.EVENT_TYPE_VM_CREATED, N.EVENT_TYPE_VM_DELETED}, types.events)
    for req, what in (({"since": "yesterday"}, "not an event id"),
                      ({"vm": "Bad Name"}, "neither a VM id nor a VM name"),
                      ({"types": [N.EVENT_TYPE_RESET]}, "types[0]"),
                      ({"types": [N.EVENT_TYPE_VM_STATE, 0]}, "types[1]"),
                      ({"types": [42]}, "types[0]")):
        w = Watch(node, **req)
        w.t.join(60)
        check(w.error is not None and
              w.error.code() == SC.INVALID_ARGUMENT and
              what in w.error.details(), req, w.error)

    # Starts that fail at once: each shows, in order, its operation
    # created, running, STARTING, the failed end, and back to STOPPED.
    v4 = make("bad-start")
    for _ in range(N_BAD):
        try:
            node.StartVM(N.VmRequest(vm="bad-start"))
            fail("the start did not fail")
        except grpc.RpcError as e:
            check(e.code() == SC.DEADLINE_EXCEEDED and
                  "did not come up" in e.details(), e)

    def back(evs):
        return sum(e.vm_id == v4.id and e.reason == "vm.start" and
                   e.type == N.EVENT_TYPE_VM_STATE and
                   e.state == N.VM_STATE_STOPPED for e in evs)
    watch.wait(lambda evs: back(evs) == N_BAD, "every start back to STOPPED")
    T = N.EVENT_TYPE_VM_STATE
    per_op = {}
    for e in watch.stop():
        if e.vm_id == v4.id and "vm.start" in (e.object, e.reason):
            check(e.vm_name == "bad-start", e)
            per_op.setdefault(e.operation, []).append(
                (e.type, e.state if e.type == T else e.reason))
    check(len(per_op) == N_BAD, per_op)
    for op, seen in per_op.items():
        check(seen == [(N.EVENT_TYPE_OPERATION_CREATED, "queued"),
                       (N.EVENT_TYPE_OPERATION_UPDATED, "running"),
                       (T, N.VM_STATE_STARTING),
                       (N.EVENT_TYPE_OPERATION, "failed"),
                       (T, N.VM_STATE_STOPPED)], op, seen)
    check(d.stop() == 0, "exit")

# A replay larger than half the stream's buffer (2 KiB here): a reset, not a
# stream cut again at every try.
with RpcDaemon(rpc="    limits: { stream_buffer: 4096 }") as d:
    node = d.node()
    for i in range(4):
        node.CreateVM(N.CreateVMRequest(spec=vm_spec(f"v-{i}"), no_start=True))
    w = Watch(node, since="00000000-0")
    w.wait(lambda evs: evs, "reset")
    run = w.stop()[0].id.partition("-")[0]
    w = Watch(node, since=f"{run}-0")
    w.wait(lambda evs: evs, "reset")
    r = w.stop()[0]
    check(r.type == N.EVENT_TYPE_RESET and r.reason == "replay_too_large" and
          seq(r.id) >= 30, r)
    check(d.stop() == 0, "exit")
print("ok")
