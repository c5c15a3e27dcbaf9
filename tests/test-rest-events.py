#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""GET /api/v1/events (text/event-stream): subscribers over HTTP/1.1 and
HTTP/2 see a VM's create, start, stop and delete in order, each event with
an increasing id and the VM's name; many at once; one that does not read
(an HTTP/2 stream window of 0) is dropped with its memory bounded, while
the others keep getting events and the daemon keeps serving.

Resuming: Last-Event-ID (and ?since=) replays exactly the events a
reconnecting client missed, in order; an id older than the history
(daemon.event_history), of another run or never sent begins the stream with
`event: reset`; a replay too large for the stream's buffer too.  Filters
?vm= (id or name) and ?type= (repeatable, comma lists); bad values are 400.
The keepalive comment (events.keepalive) comes; a failed start is followed
by a vm_state back to stopped."""
import json
import re
import socket
import subprocess
import threading
import time

import jsonschema

from resttest import RestDaemon, import_h2, openapi, require
from vmhtest import VMHOSTD, check, fail, mocks

require("curl")
h2 = import_h2()

V = "/api/v1"
N_FLOOD = 30  # VMs made and deleted: some 130 KiB of events


class Stream:
    """A curl reading GET /api/v1/events, parsed as it comes: events as
    (id, type, data), comment lines apart."""

    def __init__(self, d, *args, query="", headers=()):
        hs = [x for h in headers for x in ("-H", h)]
        self.p = subprocess.Popen(
            ["curl", "-sN", "--max-time", "120", "-H", d.auth_line(), *hs,
             *args, d.base + V + "/events" + query],
            stdout=subprocess.PIPE, text=True)
        self.events, self.comments = [], []
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        cur = {}
        for line in self.p.stdout:
            line = line.rstrip("\n")
            if not line:
                if "event" in cur:
                    with self.cv:
                        self.events.append((cur.get("id"), cur["event"],
                                            json.loads(cur["data"])))
                        self.cv.notify_all()
                cur = {}
            elif line.startswith(":"):
                with self.cv:
                    self.comments.append(line)
                    self.cv.notify_all()
            else:
                k, _, v = line.partition(": ")
                cur[k] = v

    def wait(self, pred, what, timeout=60):
        with self.cv:
            if not self.cv.wait_for(lambda: pred(self), timeout):
                fail("stream: no", what, "in", timeout, "s:", self.events,
                     self.comments)

    def subscribed(self):
        """The first line, a comment, is sent once the subscription is
        made (and its replay held): events after it reach the stream."""
        self.wait(lambda s: s.comments, "start comment")
        check(self.comments[0] == ": vmhostd events", self.comments)
        return self

    def stop(self):
        self.p.terminate()
        self.p.wait()
        self.t.join()
        return self.events


EVENT = dict(openapi()["components"]["schemas"]["Event"],
             components=openapi()["components"])


def valid(evs):
    """Each event's data is an Event of openapi.yaml, with its id."""
    for i, t, e in evs:
        jsonschema.validate(e, EVENT, cls=jsonschema.Draft202012Validator)
        check(e["id"] == i and e["type"] == t, i, t, e)
    return evs


def seq(i):
    return int(i.rpartition("-")[2])


def vm_events(evs, vm_id):
    return [(t, e) for _, t, e in evs if e.get("vm_id") == vm_id]


# ---- order, ids, names; a reader too slow ---------------------------------
with RestDaemon(rest="    limits: { stream_buffer: 32K }") as d:
    subs = [Stream(d, "--http1.1"), Stream(d, "--http2-prior-knowledge")]
    subs += [Stream(d, "--http2-prior-knowledge") for _ in range(18)]
    for s in subs:
        s.subscribed()

    vm = d.ok("POST", V + "/vms", {"name": "ev-1", "vcpus": 1,
                                    "memory": 1 << 30}, status=201)
    d.ok("POST", V + "/vms/ev-1/stop", {"force": True})
    d.request("DELETE", V + "/vms/ev-1")
    for i, s in enumerate(subs):
        s.wait(lambda s: any(t == "vm_deleted" for t, _ in
                             vm_events(s.events, vm["id"])), "vm_deleted")
        evs = valid(s.stop())
        ids = [i for i, _, _ in evs]
        check(all(i and re.fullmatch(r"[0-9a-f]{8}-[0-9]+", i) for i in ids),
              "an event without an id", ids)
        check(len({i.partition("-")[0] for i in ids}) == 1, ids)
        check([seq(i) for i in ids] == sorted(seq(i) for i in ids) and
              len(set(ids)) == len(ids), "ids not increasing", ids)
        mine = vm_events(evs, vm["id"])
        check(all(e["vm_name"] == "ev-1" for _, e in mine),
              "an event without the VM's name", mine)
        order = [t if t != "vm_state" else "state:" + e["state"]
                 for t, e in mine]
        try:
            a = order.index("state:running")
            b = order.index("vm_created")
            c = order.index("state:stopped", b)
            e = order.index("vm_deleted", c)
        except ValueError:
            fail(f"subscriber {i}: events out of order or missing:", order)
        check(a < b < c < e, order)
        # The hypervisor's own event (a plugin knows ids only) is named.
        check(any(e["source"] == "hv0" and e["vm_name"] == "ev-1"
                  for t, e in mine if t == "vm_state"), mine)

    # A reader that never opens its window: its stream is reset once its
    # buffer (32 KiB here) is full; the others still get everything.
    good = Stream(d, "--http2-prior-knowledge").subscribed()
    s = socket.create_connection(("127.0.0.1", d.port))
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                            (":authority", "127.0.0.1"),
                            (":path", V + "/events"), d.auth_h2()],
                      end_stream=True)
    s.sendall(conn.data_to_send())
    d.wait_log("/api/v1/events", start=0)
    rss0 = d.rss_kb()
    for i in range(N_FLOOD):
        d.ok("POST", V + "/vms", {"name": f"fl-{i}", "vcpus": 1,
                                   "memory": 1 << 30, "start": False},
             status=201)
        d.request("DELETE", V + f"/vms/fl-{i}")
    s.settimeout(10)
    reset = False
    deadline = time.time() + 10
    while not reset and time.time() < deadline:
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                reset = True
        s.sendall(conn.data_to_send())
    check(reset, "the slow reader was not dropped")
    check("reads too slowly" in d.log(), "drop not logged")
    s.close()
    check(d.rss_kb() - rss0 < 20000, "RSS grew", rss0, d.rss_kb())
    # Stopped once the last creation has come (not after a guessed wait).
    good.wait(lambda s: sum(t == "vm_created" for _, t, _ in s.events) >=
              N_FLOOD, "every vm_created")
    created = [e for _, t, e in valid(good.stop()) if t == "vm_created"]
    check(len(created) == N_FLOOD, "the good reader missed events:",
          len(created))
    # A replay larger than half the stream's buffer (16 KiB here): a reset,
    # not a stream cut again at every try.
    b = Stream(d, "--http1.1",
               headers=[f"Last-Event-ID: {good.events[0][0]}"]).subscribed()
    b.wait(lambda s: s.events, "reset")
    valid(b.events)
    check(b.events[0][1] == "reset" and
          b.events[0][2]["reason"] == "replay_too_large" and
          seq(b.events[0][0]) >= seq(good.events[-1][0]), b.events[0],
          good.events[-1])
    b.stop()
    d.ok("GET", V + "/host")
    check(d.stop() == 0, "exit")

# ---- resume, filters, keepalive, a failed start --------------------------
# Starts that fail at once: most end before their caller made the
# operation visible (ops_close), and each must still show its transitional
# state.
FAULT = (", faults: [ { op: start, mode: always, error: timeout, "
         "message: 'mock: the guest did not come up' } ]")
N_BAD = 30  # failing starts (on 2 CPUs some 5 end before ops_close)
with RestDaemon(body=mocks(hv=FAULT),
                rest="    events: { keepalive: 1 }",
                daemon_yaml="  event_history: 24") as d:
    def make(name):
        return d.ok("POST", V + "/vms", {"name": name, "vcpus": 1,
                                         "memory": 1 << 30, "start": False},
                    status=201)

    # The keepalive comment, every second here.
    watch = Stream(d, "--http1.1").subscribed()
    watch.wait(lambda s: ": keepalive" in s.comments, "keepalive comment")

    # A client reads some events, loses its stream, and comes back with the
    # last id it got: it gets exactly what it missed, in order (the
    # watcher, which never left, saw the same).
    a = Stream(d, "--http2-prior-knowledge").subscribed()
    v1 = make("r-1")
    a.wait(lambda s: any(t == "vm_created" for _, t, _ in s.events),
           "vm_created")
    last = a.stop()[-1][0]
    v2 = make("r-2")
    d.request("DELETE", V + "/vms/r-2")
    watch.wait(lambda s: any(t == "vm_deleted" for _, t, _ in s.events),
               "vm_deleted")
    missed = [e for e in watch.events if seq(e[0]) > seq(last)]
    check(any(t == "vm_deleted" for _, t, _ in missed), missed)
    for how in ({"headers": [f"Last-Event-ID: {last}"]},
                {"query": f"?since={last}"},
                # The header (an EventSource's reconnect) wins over since=.
                {"query": "?since=00000000-1",
                 "headers": [f"Last-Event-ID: {last}"]}):
        b = Stream(d, "--http1.1", **how).subscribed()
        b.wait(lambda s: len(s.events) >= len(missed), "the replay")
        check(b.stop()[:len(missed)] == missed, how, "replay", b.events,
              "missed", missed)

    # Too old (24 kept, more sent since), another run, never sent: reset
    # first, carrying the newest id; then live events.
    first = watch.events[0][0]
    for i in range(4):
        make(f"old-{i}")
        d.request("DELETE", V + f"/vms/old-{i}")
    run = first.partition("-")[0]
    other = ("1" if run[0] != "1" else "2") + run[1:]
    newest = None
    for since, why in ((first, "older than the 24 events kept"),
                       (f"{other}-1", "from another run"),
                       (f"{run}-999999", "was never sent")):
        b = Stream(d, "--http1.1",
                   headers=[f"Last-Event-ID: {since}"]).subscribed()
        b.wait(lambda s: s.events, "reset")
        rid, t, e = valid(b.events)[0]
        check(t == "reset" and e["type"] == "reset" and why in e["message"]
              and rid == e["id"], since, b.events[0])
        check(newest is None or seq(rid) >= newest, rid)
        newest = seq(rid)
        make(f"after-{newest}")
        b.wait(lambda s: any(t == "vm_created" for _, t, _ in s.events),
               "a live event after the reset")
        check(seq(b.stop()[-1][0]) > seq(rid), b.events)

    # Filters: the VM (name or id), types (repeated, comma lists).
    by_name = Stream(d, "--http1.1", query="?vm=r-1").subscribed()
    by_id = Stream(d, "--http1.1", query=f"?vm={v1['id']}").subscribed()
    types = Stream(d, "--http1.1",
                   query="?type=vm_created,vm_deleted&type=vm_state")\
        .subscribed()
    make("other")
    d.request("DELETE", V + "/vms/other")
    d.request("DELETE", V + "/vms/r-1")
    for s in (by_name, by_id):
        s.wait(lambda s: any(t == "vm_deleted" for _, t, _ in s.events),
               "r-1 deleted")
        evs = s.stop()
        check(all(e["vm_id"] == v1["id"] for _, _, e in evs), evs)
    types.wait(lambda s: sum(t == "vm_deleted" for _, t, _ in s.events) >= 2,
               "two deletes")
    check({t for _, t, _ in types.stop()} <=
          {"vm_created", "vm_deleted", "vm_state"}, types.events)
    for q, what in (("?type=bogus", "'bogus' is not an event type"),
                    ("?type=reset", "'reset' is not an event type"),
                    ("?vm=Bad%20Name", "neither a VM id nor a VM name"),
                    ("?since=yesterday", "not an event id"),
                    ("?color=red", "unknown query parameter 'color'")):
        err = d.error("GET", V + "/events" + q, 400, "INVALID_ARGUMENT")
        check(what in err["error"]["message"], q, err)
    st, _, err = d.request("GET", V + "/events",
                           headers={"last-event-id": "nope"})
    check(st == 400 and "not an event id" in err["error"]["message"], err)

    # Starts that fail at once, with no hypervisor event: each shows, in
    # order, its operation created, running, the VM starting, the failed
    # end, and the VM back to stopped.
    v3 = make("bad-start")
    for _ in range(N_BAD):
        st, _, err = d.request("POST", V + "/vms/bad-start/start")
        check(st == 504 and "did not come up" in err["error"]["message"],
              st, err)

    def back(s):
        return sum(t == "vm_state" and e["state"] == "stopped" and
                   e["reason"] == "vm.start" for t, e in
                   vm_events(s.events, v3["id"]))
    watch.wait(lambda s: back(s) == N_BAD, "every vm_state back to stopped")
    per_op = {}
    for t, e in vm_events(valid(watch.stop()), v3["id"]):
        check(e["vm_name"] == "bad-start", e)
        if "vm.start" in (e.get("object"), e.get("reason")):
            per_op.setdefault(e["operation"], []).append(
                e.get("state") if t == "vm_state" else f"{t}:{e.get('reason')}")
    check(len(per_op) == N_BAD, per_op)
    for op, seen in per_op.items():
        check(seen == ["operation_created:queued", "operation_updated:running",
                       "starting", "operation_ended:failed", "stopped"],
              op, seen)
    check(d.ok("GET", V + "/vms/bad-start")["state"] == "stopped")
    check(d.stop() == 0, "exit")

# A bad keepalive or history is refused, naming the key.
for rest, daemon, what in (("    events: { keepalive: -1 }", "", "keepalive"),
                           ("    events: { keepalive: 3601 }", "",
                            "keepalive"),
                           ("", "  event_history: many", "event_history"),
                           ("", "  event_history: 1048577",
                            "event_history")):
    d = RestDaemon(rest=rest, daemon_yaml=daemon)
    r = subprocess.run([VMHOSTD, "--check-config", "--config", d.config],
                       capture_output=True, text=True)
    check(r.returncode != 0 and what in r.stderr + r.stdout, rest, daemon,
          "accepted", r.stdout, r.stderr)
    d.__exit__(None, None, None)
print("ok")
