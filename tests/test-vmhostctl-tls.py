#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmhostctl over TLS and with credentials: the server's certificate
verified against --cacert (or VMHOST_CACERT, or ctl.yaml), refused without
it, skipped with --insecure; HTTP/2 through ALPN; client certificates
(mTLS) against a rest instance that requires them; the certificate
commands (show, generate, upload) against the API; the bearer token sent
as "Authorization: Bearer" (to a small HTTP/2 server here that records
it and answers 401, and to vmhostd); a non-API error answer."""
import json
import os
import socket
import threading

from ctltest import Ctl, daemon_token
from resttest import (RestDaemon, import_h2, make_ca, make_leaf, mtls_daemon,
                      require, served, validate)
from vmhtest import check, free_port

require("openssl")
h2 = import_h2()


def copy(src, dst):
    with open(src) as f, open(dst, "w") as g:
        g.write(f.read())


# ---- server verification, the certificate commands ------------------------
with RestDaemon() as d:
    t = d.tmpdir
    ctl = Ctl(d.tls_base, token=daemon_token(d))
    line = ctl.error(5, None, "host", "show")
    check("certificate" in line.lower(), "no CA:", line)
    selfsigned = os.path.join(t, "served.pem")
    copy(d.cert_path(), selfsigned)
    host = ctl.json("host", "show", "--cacert", selfsigned)
    validate("GET", "/api/v1/host", 200, host)
    check("proto=h2 " in d.log(), "not HTTP/2 over TLS")
    ctl.json("host", "show", "--insecure")
    ctl.json("host", "show", env={"VMHOST_CACERT": selfsigned})
    ctl.json("host", "show", env={"VMHOST_INSECURE": "true"})
    with open(os.path.join(ctl.home, "ctl.yaml"), "w") as f:
        f.write(f"cacert: {selfsigned}\n")
    ctl.json("host", "show", "--config", os.path.join(ctl.home, "ctl.yaml"))

    cert = ctl.json("cert", "show", "--cacert", selfsigned)
    st, _, api = d.get("/api/v1/settings/certificates")
    check(cert == api, cert, api)
    validate("GET", "/api/v1/settings/certificates", 200, cert)
    check(cert["sha256"] == served(d.tls_port), cert)
    out = ctl.ok("cert", "show", "--cacert", selfsigned)
    check(f"sha256       {cert['sha256']}" in out, out)

    # generate: a new certificate at once; the old one no longer verifies.
    new = ctl.json("cert", "generate", "--cacert", selfsigned)
    validate("POST", "/api/v1/settings/certificates/generate", 200, new)
    check(new["sha256"] != cert["sha256"] and new["self_signed"], new)
    check(served(d.tls_port) == new["sha256"], "not served")
    ctl.error(5, None, "host", "show", "--cacert", selfsigned)
    copy(d.cert_path(), selfsigned)
    ctl.json("host", "show", "--cacert", selfsigned)

    # upload: a chain of our CA; then --cacert ca.pem verifies it.
    make_ca(t, "ca")
    make_leaf(t, "node", "ca", san="IP:127.0.0.1,DNS:localhost")
    up = ctl.json("cert", "upload", f"{t}/node.pem", f"{t}/node.key",
                  "--insecure")
    validate("POST", "/api/v1/settings/certificates/upload", 200, up)
    check(up["subject"] == "CN=node" and not up["self_signed"], up)
    check(served(d.tls_port) == up["sha256"], "upload not served")
    ctl.json("host", "show", "--cacert", f"{t}/ca.pem")
    # A key that is not the leaf's: refused by the server, nothing changed.
    make_ca(t, "other")
    ctl.error(1, "INVALID_ARGUMENT", "cert", "upload", f"{t}/node.pem",
              f"{t}/other.key", "--cacert", f"{t}/ca.pem")
    check(served(d.tls_port) == up["sha256"], "a refused upload was used")
    line = ctl.error(2, None, "cert", "upload", f"{t}/node.pem",
                     f"{t}/missing.key", "--cacert", f"{t}/ca.pem")
    check("cannot read" in line and "missing.key" in line, line)
    missing = [c for c in ctl.not_run() if c.startswith("cert ")]
    check(not missing, "never ran", missing)

# ---- mTLS --------------------------------------------------------------
d = mtls_daemon()
t = d.tmpdir
with open(f"{t}/both.pem", "w") as f:
    f.write(open(f"{t}/client.pem").read() + open(f"{t}/client.key").read())
with d:
    ctl = Ctl(d.tls_base, env={"VMHOST_INSECURE": "1"},
              token=daemon_token(d))
    ctl.error(5, None, "host", "show")
    ctl.error(5, None, "host", "show", "--cert", f"{t}/intruder.pem", "--key",
              f"{t}/intruder.key")
    ctl.json("host", "show", "--cert", f"{t}/client.pem", "--key",
             f"{t}/client.key")
    ctl.json("host", "show", "--cert", f"{t}/both.pem")
    ctl.json("vm", "list", env={"VMHOST_CERT": f"{t}/client.pem",
                                "VMHOST_KEY": f"{t}/client.key"})
    line = ctl.error(2, None, "host", "show", "--key", f"{t}/client.key")
    check("needs --cert" in line, line)
    log = d.log()
    check("refused: Certificate is required" in log, log[-2000:])

# ---- bearer tokens -----------------------------------------------------
# A tiny HTTP/2 (prior knowledge) server: records each request's headers,
# answers what `answers` says for its path.
seen = []
answers = {
    "/api/v1/vms": (401, "application/json", json.dumps(
        {"error": {"code": "UNAUTHENTICATED",
                   "message": "a bearer token is required",
                   "request_id": "feed01"}})),
    "/api/v1/host": (502, "text/html", "<html>bad gateway</html>"),
    # A hostile server's terminal escapes, in an error and in a table.
    "/api/v1/networks/x": (404, "application/json", json.dumps(
        {"error": {"code": "NOT_FOUND", "message": "no \x1b[2J\nnetwork",
                   "request_id": "feed02\x1b[1m"}})),
    "/api/v1/storage/pools": (200, "application/json", json.dumps(
        {"pools": [{"name": "p\x1b]0;owned\x07", "type": "a\nb"}]})),
    # Pages that never end: the same token again, an empty page with more.
    "/api/v1/networks": (200, "application/json", json.dumps(
        {"networks": [{"name": "n"}], "next_page_token": "again"})),
    "/api/v1/storage/pools/p/volumes": (200, "application/json", json.dumps(
        {"volumes": [], "next_page_token": "more"})),
}


def serve_one(conn):
    c = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    c.initiate_connection()
    conn.sendall(c.data_to_send())
    while True:
        data = conn.recv(65536)
        if not data:
            return
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                hdrs = dict(ev.headers)
                seen.append(hdrs)
                status, ctype, body = answers[hdrs[":path"].split("?")[0]]
                c.send_headers(ev.stream_id, [
                    (":status", str(status)), ("content-type", ctype),
                    ("x-request-id", "feed01")])
                c.send_data(ev.stream_id, body.encode(), end_stream=True)
        conn.sendall(c.data_to_send())


port = free_port()
lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", port))
lsock.listen()


def accept_loop():
    while True:
        conn, _ = lsock.accept()
        with conn:
            serve_one(conn)


threading.Thread(target=accept_loop, daemon=True).start()
ctl = Ctl(f"http://127.0.0.1:{port}")
m = ctl.error(6, "UNAUTHENTICATED", "vm", "list", "--token", "s3cret")
check(m.group(3) == "feed01", m.group(0))
check(seen[-1].get("authorization") == "Bearer s3cret", seen[-1])
ctl.error(6, "UNAUTHENTICATED", "vm", "list", env={"VMHOST_TOKEN": "t2"})
check(seen[-1].get("authorization") == "Bearer t2", seen[-1])
tok = os.path.join(ctl.home, "token")
with open(tok, "w") as f:
    f.write("t3\n")
os.chmod(tok, 0o600)
ctl.error(6, "UNAUTHENTICATED", "vm", "list", "--token-file", tok)
check(seen[-1].get("authorization") == "Bearer t3", seen[-1])
ctl.error(6, "UNAUTHENTICATED", "vm", "list")
check("authorization" not in seen[-1], seen[-1])
check(seen[-1]["user-agent"].startswith("vmhostctl/"), seen[-1])
# Not the API's error shape: the status and the body's first line.
line = ctl.error(1, None, "host", "show")
check(line == "vmhostctl: HTTP 502: <html>bad gateway</html> "
      "(request feed01)", line)
m = ctl.error(3, None, "network", "show", "x")
check(m == "vmhostctl: NOT_FOUND: no ?[2J network (request feed02?[1m)", m)
out = ctl.ok("pool", "list")
# A list asked in pages from a server that answers it whole (without
# next_page_token): that answer is the list.
check(seen[-1][":path"] == "/api/v1/storage/pools?limit=500", seen[-1])
check("\x1b" not in out and "\x07" not in out, repr(out))
check(out.splitlines()[1].split()[:2] == ["p?]0;owned?", "a"], repr(out))
# A server whose pages do not advance is not asked forever.
for args, why in ((("network", "list"), "the same page token again"),
                  (("volume", "list", "p"), "an empty page, and more")):
    line = ctl.error(1, None, *args)
    check("pages do not advance" in line and why in line, args, line)
# vmhostd with a token: when its rest front-end checks tokens, the right
# one is taken and a wrong one refused with 401 (exit 6); before, any.
with RestDaemon() as d:
    tok = daemon_token(d)
    Ctl(d.base).json("vm", "list", "--token", tok or "s3cret")
    if tok:
        Ctl(d.base).error(6, "UNAUTHENTICATED", "vm", "list", "--token",
                          "wrong")
