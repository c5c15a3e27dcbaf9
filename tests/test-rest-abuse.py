#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The REST front-end under abuse: oversized headers and bodies (431, 413)
over HTTP/1.1 and HTTP/2; 10,000 HTTP/2 streams opened and reset at once
(rapid reset, CVE-2023-44487: GOAWAY); request bodies held per HTTP/2
connection bounded by its flow-control window; slowloris (requests and TLS
handshakes that never finish); a connection flood past max_connections.
Through all of it the daemon keeps serving others and its RSS stays
bounded."""
import socket
import ssl
import subprocess
import time

from resttest import RestDaemon, import_h2, require
from vmhtest import check

require("curl", "nghttp")
h2 = import_h2()

LIMITS = """    limits:
      max_connections: 100
      max_header_size: 8K
      max_body_size: 64K
      max_connection_buffer: 256K
      request_timeout: 2
      handshake_timeout: 2
      resets_per_second: 100
      requests_per_second: 50
"""


def closed_within(s, seconds):
    """Whether the server closes s (EOF or reset) within seconds."""
    s.settimeout(seconds)
    try:
        while True:
            if not s.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def serving(d):
    r = d.curl("-o", "/dev/null", "-w", "%{http_code}",
               d.base + "/api/v1/host", check_rc=False)
    return r.stdout == "200"


with RestDaemon(rest=LIMITS) as d:
    rss0 = d.rss_kb()

    # Oversized headers and bodies, both protocols.
    d.error("GET", "/api/v1/host", 431, "HEADERS_TOO_LARGE",
            headers={"x-big": "a" * 9000})
    for proto in ("--http1.1", "--http2-prior-knowledge"):
        r = d.curl(proto, "-o", "/dev/null", "-w", "%{http_code}", "-H",
                   "x-big: " + "a" * 9000, d.base + "/api/v1/host",
                   check_rc=False)
        check(r.stdout == "431", proto, "headers", r.stdout, r.stderr)
    big = '{"name":"x","user_data":"' + "y" * 100000 + '"}'
    for proto in ("--http1.1", "--http2-prior-knowledge"):
        r = subprocess.run(["curl", "-sS", "-H", d.auth_line(), proto, "-o", "/dev/null", "-w",
                            "%{http_code}", "-H",
                            "content-type: application/json",
                            "--data-binary", "@-", d.base + "/api/v1/vms"],
                           input=big, capture_output=True, text=True,
                           timeout=20)
        check(r.stdout == "413", proto, "body", r.stdout, r.stderr)
    check(serving(d), "not serving after oversized requests")

    # More than requests_per_second (50) on one connection: 429.
    r = subprocess.run(["nghttp", "-H", d.auth_line(), "-n", "-v", "-m", "200",
                        d.base + "/api/v1/host"], capture_output=True,
                       text=True, timeout=30)
    n429 = r.stdout.count(":status: 429")
    check("retry-after: 1" in r.stdout, "429 without retry-after")
    check(r.stdout.count(":status: 200") >= 50 and n429 >= 100,
          "rate limit:", n429, "429s", r.stdout[-1000:])
    check(serving(d), "a new connection is refused after the rate limit")

    # Request bodies held per HTTP/2 connection are bounded (limit
    # max_connection_buffer, 256 KiB): of 20 streams that each send 60 KB
    # and never end, those that would pass it are answered 503 at once; the
    # connection keeps serving, and so does the daemon.
    s = socket.create_connection(("127.0.0.1", d.port))
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    answers = {}

    def pump(seconds):
        s.settimeout(seconds)
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        answers[ev.stream_id] = dict(ev.headers)[b":status"]
                s.sendall(conn.data_to_send())
        except socket.timeout:
            pass

    pump(0.3)
    post = [(":method", "POST"), (":scheme", "http"),
            (":authority", "127.0.0.1"), (":path", "/api/v1/vms"), d.auth_h2(),
            ("content-type", "application/json")]
    sids = []
    for _ in range(20):
        sids.append(conn.get_next_available_stream_id())
        conn.send_headers(sids[-1], post)
    sent = dict.fromkeys(sids, 0)
    for _ in range(8):
        for sid in sids:
            room = min(conn.local_flow_control_window(sid),
                       60000 - sent[sid], 8192)
            if room > 0 and sid not in answers:
                conn.send_data(sid, b"x" * room)
                sent[sid] += room
        s.sendall(conn.data_to_send())
        pump(0.1)
    pump(0.5)
    open_ = [sid for sid in sids if sid not in answers]
    held = sum(sent[sid] for sid in open_)
    print(f"{len(answers)} of 20 uploads refused, {held} bytes held",
          flush=True)
    check(answers and set(answers.values()) == {b"503"},
          "no 503 for the uploads past the budget:", answers)
    check(held <= 256 << 10 and open_, "held on one connection:", held)
    conn.send_headers(conn.get_next_available_stream_id(),
                      [(":method", "GET"), (":scheme", "http"),
                       (":authority", "127.0.0.1"),
                       (":path", "/api/v1/host"), d.auth_h2()], end_stream=True)
    s.sendall(conn.data_to_send())
    pump(1)
    check(b"200" in answers.values(), "the connection stopped serving")
    check(serving(d), "not serving others")
    s.close()

    # Many bodies through one connection, more than the budget in all but
    # a few at a time: nothing refused, nothing stalls.
    with open(d.tmpdir + "/body.json", "w") as f:
        f.write('{"name": "' + "z" * 60000 + '"}')
    r = subprocess.run(["nghttp", "-H", d.auth_line(), "-n", "-m", "4", "-v", "-H",
                        "content-type: application/json", "-d",
                        d.tmpdir + "/body.json", d.base + "/api/v1/vms"],
                       capture_output=True, text=True, timeout=30)
    check(r.stdout.count(":status: 400") == 4, "4 bodies of 60 KB:",
          r.stdout[-800:], r.stderr[-300:])

    # Rapid reset: 10,000 streams opened and cancelled at once.
    s = socket.create_connection(("127.0.0.1", d.port))
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    hdrs = [(":method", "GET"), (":scheme", "http"),
            (":authority", "127.0.0.1"), (":path", "/api/v1/host"),
            d.auth_h2()]
    sent, goaway = 0, None
    s.settimeout(0.001)
    try:
        for i in range(10000):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, hdrs, end_stream=True)
            conn.reset_stream(sid)
            sent += 1
            if i % 50 == 49:
                s.sendall(conn.data_to_send())
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    data = None
                if data == b"":
                    break
                for ev in conn.receive_data(data or b""):
                    if isinstance(ev, h2.events.ConnectionTerminated):
                        goaway = ev
                if goaway:
                    break
    except (BrokenPipeError, ConnectionResetError,
            h2.exceptions.ProtocolError):
        pass
    s.settimeout(5)
    try:
        while not goaway:
            data = s.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ConnectionTerminated):
                    goaway = ev
    except (ConnectionResetError, socket.timeout, h2.exceptions.ProtocolError):
        pass
    s.close()
    check(goaway is not None and goaway.error_code ==
          h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
          "no GOAWAY ENHANCE_YOUR_CALM after", sent, "resets:", goaway)
    print("GOAWAY after", sent, "streams reset", flush=True)
    check(sent < 10000, "all 10,000 resets taken")
    check("streams in a second: GOAWAY" in d.log() or goaway, "not logged")
    check(serving(d), "not serving after rapid reset")

    # Slowloris: headers that never end, a TLS handshake never begun, a
    # body that never comes; each closed after its timeout (2 s here).
    slow = []
    for i in range(20):
        c = socket.create_connection(("127.0.0.1", d.port))
        c.sendall(b"GET /api/v1/host HTTP/1.1\r\nHost: x\r\n" + d.auth_h1() +
                  b"X-a: ")
        slow.append(c)
    c = socket.create_connection(("127.0.0.1", d.port))
    c.sendall(b"POST /api/v1/vms HTTP/1.1\r\nHost: x\r\n" + d.auth_h1() +
              b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    slow.append(c)
    slow.append(socket.create_connection(("127.0.0.1", d.tls_port)))
    slow.append(socket.create_connection(("127.0.0.1", d.port)))  # silent
    check(serving(d), "not serving during slowloris")
    t0 = time.time()
    for c in slow:
        check(closed_within(c, 6), "a slow connection was kept open")
        c.close()
    check(time.time() - t0 < 8, "timeouts too slow")

    # Connection flood past max_connections (100): the excess is refused
    # at once, the slots come back after the handshake timeout.
    flood = [socket.create_connection(("127.0.0.1", d.port))
             for _ in range(300)]
    refused = sum(closed_within(c, 0.05) for c in flood[100:])
    check(refused >= 190, "excess connections kept:", 300 - 100 - refused)
    check("max_connections" in d.log(), "refusals not logged")
    for c in flood[:100]:
        closed_within(c, 4)
        c.close()
    for c in flood[100:]:
        c.close()
    deadline = time.time() + 5
    while not serving(d) and time.time() < deadline:
        time.sleep(0.2)
    check(serving(d), "not serving after the flood")

    # A TLS client still gets through.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", d.tls_port)) as raw:
        with ctx.wrap_socket(raw) as t:
            t.sendall(b"GET /api/v1/host HTTP/1.1\r\nHost: x\r\n" + d.auth_h1() +
                      b"Connection: close\r\n\r\n")
            check(t.recv(100).startswith(b"HTTP/1.1 200"), "TLS after abuse")

    rss1 = d.rss_kb()
    print(f"RSS: {rss0} kB before, {rss1} kB after", flush=True)
    check(rss1 - rss0 < 64 * 1024, "RSS grew by", rss1 - rss0, "kB")
    check(d.stop() == 0, "exit")

# Connection slots (issue 12, finding 6): idle connections that never start
# TLS, from one address, take at most max_connections_per_peer; from many
# addresses, the oldest silent ones give their slots back to new clients;
# the unix socket has a reserve of its own.
with RestDaemon(rest="    limits: { max_connections: 32, "
                "max_connections_per_peer: 8 }") as d:
    def idle(src, n):
        socks = []
        for _ in range(n):
            s = socket.socket()
            s.bind((src, 0))
            s.connect(("127.0.0.1", d.tls_port))
            socks.append(s)
        return socks

    def served_from(src):
        r = d.curl("--interface", src, "-o", "/dev/null", "-w",
                   "%{http_code}", d.base + "/api/v1/host", check_rc=False)
        return r.stdout == "200"

    one = idle("127.0.0.1", 40)
    kept = [s for s in one if not closed_within(s, 0.3)]
    check(len(kept) == 8, "one address holds", len(kept), "slots, not 8")
    check("max_connections_per_peer" in d.log(), "refusal not logged")
    check(served_from("127.0.0.2"), "another address starved")
    many = [s for i in range(3, 7) for s in idle(f"127.0.0.{i}", 8)]
    time.sleep(1.2)  # silent for a second: first to give their slots
    check(served_from("127.0.0.50"), "a new address starved by silent ones")
    r = d.curl("--unix-socket", d.usock, "-o", "/dev/null", "-w",
               "%{http_code}", "http://x/api/v1/host", check_rc=False)
    check(r.stdout == "200", "the unix socket starved", r.stdout)
    check("slot taken back" in d.log(), "no silent connection was evicted")
    for s in one + many:
        s.close()
