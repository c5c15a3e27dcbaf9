#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Server streams of the rpc front-end: StreamMetrics samples at its
interval; Health.Watch answers now; a client's cancel (RST_STREAM) ends
each stream on the server; a reader too slow loses its stream (bounded
buffer) and the daemon goes on; SIGTERM ends open streams with
UNAVAILABLE."""
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpctest import RpcDaemon, check, fail, frame, grpc, pb, vm_spec  # noqa: E402
from resttest import import_h2  # noqa: E402

N = pb.node
H = pb.health
SC = grpc.StatusCode


def wait_for(cond, what, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    fail("timed out waiting for", what)


h2 = import_h2()


def unread_metrics(d, n):
    """n StreamMetrics streams (every 100 ms) on one connection whose
    window is 0: nothing is ever read.  (socket, its h2 connection)."""
    s = socket.create_connection(("127.0.0.1", d.port))
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True))
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    conn.initiate_connection()
    for _ in range(n):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [
            (":method", "POST"), (":scheme", "http"),
            (":path", "/vmhost.v1.NodeService/StreamMetrics"),
            (":authority", "x"), ("content-type", "application/grpc"),
            ("te", "trailers"), ("authorization", f"Bearer {d.token()}")])
        conn.send_data(sid, frame(N.StreamMetricsRequest(interval_ms=100)
                                  .SerializeToString()), end_stream=True)
    s.sendall(conn.data_to_send())
    return s, conn


with RpcDaemon(rpc="    limits: { stream_buffer: 64K }\n") as d:
    node = d.node()

    # StreamMetrics: a sample at once, then one per interval.
    t0 = time.time()
    it = node.StreamMetrics(N.StreamMetricsRequest(interval_ms=100))
    samples = [next(it) for _ in range(3)]
    took = time.time() - t0
    check(all(s.memory_total > 0 and "vmhost_" in s.prometheus
              for s in samples), samples[0])
    check(0.15 < took < 5, "3 samples at 100 ms took", took)
    # The front-end's own counters are among the daemon's.
    check('grpc_server_started_total{instance="rpc",grpc_type='
          '"server_stream",grpc_service="vmhost.v1.NodeService",'
          'grpc_method="StreamMetrics"} 1' in samples[-1].prometheus,
          samples[-1].prometheus[-2000:])
    it.cancel()
    expect = "stream ended with status 1"
    wait_for(lambda: d.log().count(expect) >= 1, "StreamMetrics to end")
    e = None
    try:
        next(it)
    except grpc.RpcError as err:
        e = err
    check(e is not None and e.code() == SC.CANCELLED, e)
    expect_status_bad = None
    try:
        next(node.StreamMetrics(N.StreamMetricsRequest(interval_ms=5)))
    except grpc.RpcError as err:
        expect_status_bad = err.code()
    check(expect_status_bad == SC.INVALID_ARGUMENT, expect_status_bad)

    # Health.Watch: SERVING now; an unknown service SERVICE_UNKNOWN.
    w = d.health().Watch(H.HealthCheckRequest())
    r = next(w)
    check(r.status == H.HealthCheckResponse.SERVING, "Watch:", r)
    w.cancel()
    w = d.health().Watch(H.HealthCheckRequest(service="no.Such"))
    r = next(w)
    check(r.status == H.HealthCheckResponse.SERVICE_UNKNOWN, "Watch:", r)
    w.cancel()
    wait_for(lambda: d.log().count(expect) >= 3, "Health.Watch to end")

    # WatchEvents cancelled by the client ends on the server.
    ev = node.WatchEvents(N.WatchEventsRequest())
    vm = node.CreateVM(N.CreateVMRequest(spec=vm_spec("a1"), no_start=True))
    r = next(ev)
    check(r.vm_id == vm.id and r.seq == 1, "event:", r)
    ev.cancel()
    wait_for(lambda: d.log().count(expect) >= 4, "WatchEvents to end")

    # A reader that never reads: its window is 0, samples (18K each) pile
    # up past the 64K buffer, and the server resets the stream.
    s, conn = unread_metrics(d, 1)
    wait_for(lambda: "reads too slowly" in d.log(), "the slow reader's drop")
    reset = False
    s.settimeout(5)
    try:
        while not reset:
            data = s.recv(65536)
            if not data:
                break
            for e in conn.receive_data(data):
                if isinstance(e, h2.events.StreamReset):
                    reset = True
    except socket.timeout:
        pass
    s.close()
    check(reset, "the slow reader's stream was not reset")
    check(len(node.ListVMs(N.ListVMsRequest()).vms) == 1)

    # SIGTERM: open streams end with UNAVAILABLE.
    results = {}

    def drain(name, it):
        try:
            for _ in it:
                pass
            results[name] = "ended without status"
        except grpc.RpcError as e:
            results[name] = (e.code(), e.details())
    streams = {"events": node.WatchEvents(N.WatchEventsRequest()),
               "metrics": node.StreamMetrics(
                   N.StreamMetricsRequest(interval_ms=200)),
               "health": d.health().Watch(H.HealthCheckRequest())}
    threads = [threading.Thread(target=drain, args=kv)
               for kv in streams.items()]
    for t in threads:
        t.start()
    time.sleep(0.5)
    d.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(20)
    rc = d.stop()
    check(rc == 0, "vmhostd exited", rc)
    for name in streams:
        r = results.get(name)
        check(r and r[0] == SC.UNAVAILABLE and "stopping" in r[1], name, r)

# Streams that are never read (issue 12, finding 7): one memory budget for
# all of the front-end's stream buffers (limits.stream_memory) cuts the
# slowest readers first, long before each reaches its own stream_buffer; a
# reader keeps its stream; one address opens at most max_streams_per_peer.

with RpcDaemon(rpc="    limits: { stream_buffer: 16M, stream_memory: 1M, "
               "max_streams_per_peer: 12 }\n") as d:
    node = d.node()
    reader = node.StreamMetrics(N.StreamMetricsRequest(interval_ms=100))
    next(reader)
    slow, _ = unread_metrics(d, 10)
    wait_for(lambda: "limits.stream_memory" in d.log(),
             "the budget to cut a slow reader", timeout=60)
    check("(limits.stream_buffer)" not in d.log(), "cut by its own buffer")
    got = [next(reader) for _ in range(5)]
    check(len(got) == 5, "the reader lost its stream")
    # One more connection from the same address: past the per-address
    # limit (the reader and 12 more, whatever the budget cut of the 10
    # unread), streams are cut at once.
    more, _ = unread_metrics(d, 12)
    wait_for(lambda: "limits.max_streams_per_peer" in d.log(),
             "the per-address stream limit")
    reader.cancel()
    slow.close()
    more.close()
print("ok")
