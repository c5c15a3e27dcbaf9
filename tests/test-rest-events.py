#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""GET /api/v1/events (text/event-stream): subscribers over HTTP/1.1 and
HTTP/2 see a VM's create, start, stop and delete in order; many at once;
one that does not read (an HTTP/2 stream window of 0) is dropped with its
memory bounded, while the others keep getting events and the daemon keeps
serving."""
import json
import socket
import subprocess
import time

from resttest import RestDaemon, import_h2, require
from vmhtest import check, fail

require("curl")
h2 = import_h2()

V = "/api/v1"


def sse(proc_out):
    """The events (type, data) in a text/event-stream text."""
    out = []
    for block in proc_out.split("\n\n"):
        ev = {}
        for line in block.splitlines():
            k, _, v = line.partition(": ")
            ev[k] = v
        if "event" in ev:
            out.append((ev["event"], json.loads(ev["data"])))
    return out


def subscribe(d, *args):
    return subprocess.Popen(["curl", "-sN", "--max-time", "30", "-H",
                             d.auth_line(), *args,
                             d.base + V + "/events"],
                            stdout=subprocess.PIPE, text=True)


def stop_all(procs):
    outs = []
    for p in procs:
        p.terminate()
        outs.append(p.seen + p.communicate()[0])
    return outs


def wait_subscribed(procs):
    """Each stream's first line, a comment, is sent after the subscription
    is made (same I/O-thread turn): once read, events reach it."""
    for p in procs:
        p.seen = p.stdout.readline()
        check(p.seen.startswith(": vmhostd events"), "stream start", p.seen)


with RestDaemon(rest="    limits: { stream_buffer: 4096 }") as d:
    subs = [subscribe(d, "--http1.1"), subscribe(d, "--http2-prior-knowledge")]
    subs += [subscribe(d, "--http2-prior-knowledge") for _ in range(18)]
    wait_subscribed(subs)

    vm = d.ok("POST", V + "/vms", {"name": "ev-1", "vcpus": 1,
                                    "memory": 1 << 30}, status=201)
    d.ok("POST", V + "/vms/ev-1/stop", {"force": True})
    d.request("DELETE", V + "/vms/ev-1")
    time.sleep(0.5)
    outs = stop_all(subs)
    for i, out in enumerate(outs):
        evs = [(t, e) for t, e in sse(out) if e.get("vm_id") == vm["id"]]
        seq = [t if t != "vm_state" else "state:" + e["state"] for t, e in evs]
        try:
            a = seq.index("state:running")
            b = seq.index("vm_created")
            c = seq.index("state:stopped", b)
            e = seq.index("vm_deleted", c)
        except ValueError:
            fail(f"subscriber {i}: events out of order or missing:", seq)
        check(a < b < c < e, seq)

    # A reader that never opens its window: its stream is reset once its
    # buffer (4 KiB here) is full; the others still get everything.
    good = subscribe(d, "--http2-prior-knowledge")
    wait_subscribed([good])
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
    time.sleep(0.5)
    rss0 = d.rss_kb()
    for i in range(15):
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
    out = stop_all([good])[0]
    created = [e for t, e in sse(out) if t == "vm_created"]
    check(len(created) == 15, "the good reader missed events:", len(created))
    d.ok("GET", V + "/host")
    check(d.stop() == 0, "exit")
