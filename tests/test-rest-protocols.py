#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The REST front-end's protocols with real clients: curl over cleartext
HTTP/2 (prior knowledge, and Upgrade: h2c), HTTP/1.1, HTTPS with ALPN h2
and http/1.1, a unix socket; nghttp; TLS 1.2 refused unless allowed; the
generated certificate names the listeners' addresses."""
import json
import os
import socket
import subprocess
import time

from resttest import TOP_SRCDIR, RestDaemon, require
from vmhtest import VMHOSTD, check

require("curl", "nghttp", "openssl")

W = ["-w", "\\n%{http_version} %{http_code}"]

# The documented example and the default config are valid.
for cfg in ("etc/plugins/rest.yaml", "etc/vmhostd.yaml"):
    r = subprocess.run([VMHOSTD, "--check-config", "--config",
                        os.path.join(TOP_SRCDIR, cfg)],
                       capture_output=True, text=True)
    check(r.returncode == 0, cfg, r.stderr)


def parse(r):
    body, _, tail = r.stdout.rpartition("\n")
    ver, code = tail.split()
    return ver, int(code), body


with RestDaemon() as d:
    path = "/api/v1/host"
    cases = {
        "h2c prior knowledge": (["--http2-prior-knowledge", d.base + path], "2"),
        "h2c upgrade": (["--http2", d.base + path], "2"),
        "http/1.1": (["--http1.1", d.base + path], "1.1"),
        "https h2 (ALPN)": (["-k", "--http2", d.tls_base + path], "2"),
        "https http/1.1 (ALPN)": (["-k", "--http1.1", d.tls_base + path], "1.1"),
        "unix socket, http/1.1": (["--unix-socket", d.usock,
                                   "http://localhost" + path], "1.1"),
        "unix socket, h2c": (["--http2-prior-knowledge", "--unix-socket",
                              d.usock, "http://localhost" + path], "2"),
    }
    for name, (args, want) in cases.items():
        ver, code, body = parse(d.curl(*W, *args))
        check(code == 200 and ver == want, name, ver, code, body)
        check("hostname" in json.loads(body), name, body)

    # A POST through the h2c upgrade and through TLS h2.
    spec = json.dumps({"name": "up-1", "vcpus": 1, "memory": 1 << 30,
                       "start": False})
    for args in (["--http2", d.base], ["-k", "--http2", d.tls_base]):
        name = "up-1" if args[0] == "--http2" else "up-2"
        ver, code, body = parse(d.curl(
            *W, "-X", "POST", "-H", "content-type: application/json",
            "-d", spec.replace("up-1", name), args[-1] + "/api/v1/vms",
            *args[:-1]))
        check(code == 201 and ver == "2" and json.loads(body)["name"] == name,
              args, ver, code, body)

    # The VM list over every protocol, answered again from its cached body
    # (shared between answers, never copied): the same bytes each time,
    # and the same as a fresh encoding after a change.
    lists = {}
    for name in ("h2c prior knowledge", "http/1.1", "https h2 (ALPN)",
                 "unix socket, h2c"):
        args = [a.replace(path, "/api/v1/vms") for a in cases[name][0]]
        for _ in range(3):
            ver, code, body = parse(d.curl(*W, *args))
            check(code == 200, name, code, body)
            lists.setdefault(body, []).append(name)
    check(len(lists) == 1, "the list differs between answers:", lists)
    check([v["name"] for v in json.loads(next(iter(lists)))["vms"]] ==
          ["up-1", "up-2"], lists)
    d.ok("DELETE", "/api/v1/vms/up-2", status=204)
    ver, code, body = parse(d.curl(*W, *cases["h2c prior knowledge"][0][:-1],
                                   d.base + "/api/v1/vms"))
    check([v["name"] for v in json.loads(body)["vms"]] == ["up-1"], body)

    # The answer's x-request-id; a client's own id is kept.
    r = d.curl("-sk", "--http2", "-D", "-", "-o", "/dev/null", "-H",
               "x-request-id: abc-123", d.tls_base + path)
    check("x-request-id: abc-123" in r.stdout, r.stdout)
    r = d.curl("-s", "--http2-prior-knowledge", "-X", "PUT", "-D", "-", "-o",
               "/dev/null", d.base + "/api/v1/vms")
    check("allow: GET, HEAD, POST" in r.stdout, "405 over h2 without allow",
          r.stdout)

    # HEAD: the GET's status and headers, its content-length, no body;
    # over HTTP/1.1 (the connection stays usable) and HTTP/2.
    get = parse(d.curl(*W, "--http1.1", d.base + path))[2]
    # (curl 7.88 reuses an h2 connection badly after a HEAD: one URL each;
    # nghttp sends two HEADs on one connection.)
    for args in (["--http1.1", d.base + path, d.base + "/readyz"],
                 ["--http2-prior-knowledge", d.base + path]):
        r = d.curl("-s", "-I", *args)
        heads = r.stdout.lower()
        check(heads.count(" 200") == len(args) - 1, args, "HEAD:", r.stdout)
        check(f"content-length: {len(get)}" in heads, args,
              "HEAD's content-length", len(get), r.stdout)
        check("hostname" not in r.stdout, args, "HEAD sent a body:",
              r.stdout)
    r = subprocess.run(["nghttp", "-H", d.auth_line(), "-nv", "-H", ":method: HEAD", d.base + path,
                        d.base + "/readyz"], capture_output=True, text=True,
                       timeout=20)
    check(r.returncode == 0 and r.stdout.count(":status: 200") == 2 and
          "recv DATA" not in r.stdout, "two HEADs on one h2 connection:",
          r.stdout[-1500:])
    r = d.curl("-s", "--http2-prior-knowledge", "-I",
               d.base + "/api/v1/vms/no-such-vm")
    check(" 404" in r.stdout and "{" not in r.stdout, "HEAD 404:", r.stdout)
    r = d.curl("-s", "--http1.1", "-I", "-m", "5", d.base + "/api/v1/events")
    check(r.returncode == 0 and " 200" in r.stdout and
          "text/event-stream" in r.stdout, "HEAD on the events stream:",
          r.stdout, r.returncode)

    # nghttp (nghttp2's own client) over TLS and cleartext.
    for url in (d.tls_base + path, d.base + "/api/v1/vms"):
        r = subprocess.run(["nghttp", "-H", d.auth_line(), "-v", url], capture_output=True,
                           text=True, timeout=20)
        check(r.returncode == 0 and ":status: 200" in r.stdout, url,
              r.stdout[-2000:], r.stderr)
    r = subprocess.run(["nghttp", "-H", d.auth_line(), "-nv", "-m", "20",
                        d.base + path],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode == 0 and r.stdout.count(":status: 200") == 20,
          "20 requests on one connection", r.stdout[-1500:])

    # TLS 1.3 only by default.
    r = d.curl("-k", "--tlsv1.2", "--tls-max", "1.2", d.tls_base + path,
               check_rc=False)
    check(r.returncode != 0, "TLS 1.2 accepted", r.stdout)
    check("TLS handshake with 127.0.0.1" in d.log(), "refusal logged")

    # The generated certificate: self-signed, with the listener's address.
    r = subprocess.run(["openssl", "x509", "-noout", "-text", "-in",
                        d.cert_path()], capture_output=True, text=True)
    check("IP Address:127.0.0.1" in r.stdout and "DNS:localhost" in r.stdout,
          r.stdout)
    check(os.stat(d.cert_path().replace("cert.pem", "key.pem")).st_mode
          & 0o077 == 0, "key readable by others")
    check(d.stop() == 0, "exit")

# An IPv6 listener, where the host has IPv6 loopback.
try:
    probe = socket.socket(socket.AF_INET6)
    probe.bind(("::1", 0))
    v6port = probe.getsockname()[1]
    probe.close()
except OSError:
    v6port = None
if v6port:
    with RestDaemon(rest=f'      - {{ address: "[::1]:{v6port}", tls: true }}',
                    listen_extra=True) as d:
        r = d.curl("-k", "-g", "-o", "/dev/null", "-w", "%{http_version} "
                   "%{http_code}", f"https://[::1]:{v6port}/api/v1/host")
        check(r.stdout == "2 200", r.stdout)
        r = subprocess.run(["openssl", "x509", "-noout", "-text", "-in",
                            d.cert_path()], capture_output=True, text=True)
        check("IP Address:0:0:0:0:0:0:0:1" in r.stdout, "no ::1 SAN",
              r.stdout)
else:
    print("no IPv6 loopback: [v6]:port listener not tested")

# min_version: "1.2" lets TLS 1.2 in; the same certificate is kept.
with RestDaemon(rest='    tls: { min_version: "1.2" }') as d:
    r = d.curl("-k", "--tlsv1.2", "--tls-max", "1.2", "-w", "%{http_code}",
               "-o", "/dev/null", d.tls_base + "/api/v1/host")
    check(r.stdout == "200", r.stdout, r.stderr)
    # AEAD suites only: no CBC (with SHA-1 or SHA-256 MACs), whichever the
    # client asks for.
    for cbc in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384",
                "ECDHE-ECDSA-AES128-SHA256"):
        r = subprocess.run(["openssl", "s_client", "-connect",
                            f"127.0.0.1:{d.tls_port}", "-tls1_2", "-cipher",
                            cbc], input="", capture_output=True, text=True,
                           timeout=20)
        check("Cipher is (NONE)" in r.stdout, cbc, "accepted:",
              r.stdout[-800:])
    r = subprocess.run(["openssl", "s_client", "-connect",
                        f"127.0.0.1:{d.tls_port}", "-tls1_2", "-cipher",
                        "ECDHE-ECDSA-AES128-GCM-SHA256"], input="",
                       capture_output=True, text=True, timeout=20)
    check("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256" in r.stdout, r.stdout)

# An idle keep-alive connection is closed after idle_timeout; one with a
# request in flight or answered just now is not.
with RestDaemon(rest="    limits: { idle_timeout: 2 }") as d:
    c = socket.create_connection(("127.0.0.1", d.port))
    c.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    c.settimeout(5)
    check(c.recv(4096).startswith(b"HTTP/1.1 200"), "keep-alive answer")
    t0 = time.time()
    c.settimeout(8)
    try:
        while c.recv(4096):
            pass
    except OSError:
        pass
    check(1.5 < time.time() - t0 < 6, "idle close after", time.time() - t0)
    c.close()
