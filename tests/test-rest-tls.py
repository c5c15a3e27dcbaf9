#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""TLS of the REST front-end: client certificates (mTLS) required and
verified; the certificate API (read, regenerate, upload with validation);
new certificates used by new connections without a restart, including a
file replaced on disk.  Certificates are made here with openssl."""
import hashlib
import os
import ssl
import subprocess
import time

from resttest import RestDaemon, make_ca, make_leaf, require, served
from vmhtest import check

require("curl", "openssl")


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def self_signed(d, name, key, extra=()):
    """A self-signed certificate for 127.0.0.1 with openssl req: key is
    its -newkey argument (e.g. rsa:1024), extra more arguments."""
    args = ["openssl", "req", "-x509", "-nodes", "-days", "2", "-subj",
            f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.pem"]
    sh(*args[:3], "-newkey", *key.split(" "), *args[3:], *extra)


def dated(d, name, days_from, days_to):
    """A self-signed EC certificate valid from now + days_from to now +
    days_to (python3-cryptography: openssl req cannot date in the past)."""
    import datetime
    try:
        from cryptography import x509
    except ImportError:
        import sys
        sys.path.append("/usr/lib/python3/dist-packages")
        from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress
    k = ec.generate_private_key(ec.SECP256R1())
    n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(n).issuer_name(n)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now + datetime.timedelta(days=days_from))
         .not_valid_after(now + datetime.timedelta(days=days_to))
         .add_extension(x509.SubjectAlternativeName(
             [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
         .sign(k, hashes.SHA256()))
    with open(f"{d}/{name}.pem", "wb") as f:
        f.write(c.public_bytes(serialization.Encoding.PEM))
    with open(f"{d}/{name}.key", "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))


def read(path):
    with open(path) as f:
        return f.read()


# ---- mTLS -----------------------------------------------------------------
# Certificates map to roles by subject or fingerprint (auth.clients); one
# without the clientAuth key purpose (a server's, from the same CA) is
# refused at the handshake.
import tempfile  # noqa: E402
t = tempfile.mkdtemp(prefix="vmhrest.")
make_ca(t, "ca")
make_ca(t, "otherca")
make_leaf(t, "client", "ca", eku="clientAuth")
make_leaf(t, "unmapped", "ca", eku="clientAuth")
make_leaf(t, "server-only", "ca", eku="serverAuth")
make_leaf(t, "intruder", "otherca", eku="clientAuth")
make_leaf(t, "byfp", "ca", eku="clientAuth")
h = hashlib.sha256(ssl.PEM_cert_to_DER_cert(read(f"{t}/byfp.pem")))
fp = ":".join(f"{b:02x}" for b in h.digest())  # any case: lower here
d = RestDaemon(rest=f"""    tls: {{ client_ca: ca.pem }}
    auth:
      clients:
        - {{ subject: "CN=client", role: reader }}
        - {{ subject: "CN=server-only", role: admin }}
        - {{ sha256: "{fp}", role: operator }}""", tmp=t)
d._own_tmp = True  # removed when the test passes
with d:
    url = d.tls_base + "/api/v1/host"
    code = ["-o", "/dev/null", "-w", "%{http_code}", "-k"]
    r = d.curl(*code, url, check_rc=False, token=False)
    check(r.returncode != 0 or r.stdout != "200", "no cert served", r.stdout)
    r = d.curl(*code, "--cert", f"{t}/intruder.pem", "--key",
               f"{t}/intruder.key", url, check_rc=False, token=False)
    check(r.returncode != 0 or r.stdout != "200", "other CA served", r.stdout)
    r = d.curl(*code, "--cert", f"{t}/server-only.pem", "--key",
               f"{t}/server-only.key", url, check_rc=False, token=False)
    check(r.returncode != 0 or r.stdout not in ("200", "403"),
          "a certificate without clientAuth served", r.stdout)
    check("lacks the clientAuth extended key usage" in d.log(), d.log()[-2000:])
    r = d.curl(*code, "--cert", f"{t}/client.pem", "--key",
               f"{t}/client.key", url, token=False)
    check(r.stdout == "200", "good client cert refused", r.stdout, r.stderr)
    r = d.curl(*code, "--http1.1", "--cert", f"{t}/client.pem", "--key",
               f"{t}/client.key", url, token=False)
    check(r.stdout == "200", "good client cert over http/1.1", r.stdout)
    # Its role is reader: no VM create; a verified but unmapped one is 403.
    r = d.curl(*code, "-X", "POST", "-H", "content-type: application/json",
               "-d", '{"name":"x","vcpus":1,"memory":1048576}', "--cert",
               f"{t}/client.pem", "--key", f"{t}/client.key",
               d.tls_base + "/api/v1/vms", token=False)
    check(r.stdout == "403", "a reader certificate created a VM", r.stdout)
    check("cert:CN=client has role reader; this call needs operator"
          in d.log(), d.log()[-2000:])
    r = d.curl(*code, "--cert", f"{t}/unmapped.pem", "--key",
               f"{t}/unmapped.key", url, token=False)
    check(r.stdout == "403", "an unmapped certificate", r.stdout)
    # Mapped by fingerprint: operator, so it may create a VM.
    r = d.curl(*code, "-X", "POST", "-H", "content-type: application/json",
               "-d", '{"name":"fp","vcpus":1,"memory":1073741824}', "--cert",
               f"{t}/byfp.pem", "--key", f"{t}/byfp.key",
               d.tls_base + "/api/v1/vms", token=False)
    check(r.stdout == "201", "the fingerprint's role", r.stdout)
    log = d.log()
    check(log.count("TLS handshake with 127.0.0.1") >= 2, log[-3000:])
    # Each refusal says why.
    check("refused: Certificate is required" in log, log[-3000:])
    check("verification. (The certificate is NOT trusted. The certificate "
          "issuer is unknown.)" in log, log[-3000:])
    # Cleartext (loopback) says nothing of TLS, and grants nothing alone.
    r = d.curl("-o", "/dev/null", "-w", "%{http_code}", d.base + "/api/v1/host")
    check(r.stdout == "200", r.stdout)
    r = d.curl("-o", "/dev/null", "-w", "%{http_code}",
               d.base + "/api/v1/host", token=False)
    check(r.stdout == "401", r.stdout)

# ---- the certificate API ----------------------------------------------------
with RestDaemon() as d:
    t = d.tmpdir
    make_ca(t, "ca")
    make_leaf(t, "server", "ca", san="IP:127.0.0.1,DNS:localhost")
    make_leaf(t, "server2", "ca", san="IP:127.0.0.1")
    C = "/api/v1/settings/certificates"
    info = d.ok("GET", C)
    check(info["self_signed"] and "127.0.0.1" in info["names"], info)
    check(info["sha256"] == served(d.tls_port), info, served(d.tls_port))

    new = d.ok("POST", C + "/generate")
    check(new["sha256"] != info["sha256"], "same certificate after generate")
    check(served(d.tls_port) == new["sha256"], "new connections, old cert")

    # Upload: validated first.
    cert, key, ca = (read(f"{t}/server.pem"), read(f"{t}/server.key"),
                     read(f"{t}/ca.pem"))
    e = d.error("POST", C + "/upload", 400, "INVALID_ARGUMENT",
                {"cert": cert, "key": read(f"{t}/server2.key")})
    check("key" in e["error"]["message"].lower(), e)
    d.error("POST", C + "/upload", 400, "INVALID_ARGUMENT",
            {"cert": "-----BEGIN CERTIFICATE-----\nnope\n", "key": key})
    d.error("POST", C + "/upload", 400, "INVALID_ARGUMENT",
            {"cert": ca + cert, "key": key})  # leaf not first
    d.error("POST", C + "/upload", 400, "INVALID_ARGUMENT", {"cert": cert})
    d.error("POST", C + "/upload", 400, "INVALID_ARGUMENT",
            {"cert": cert, "key": key, "chain": ca})
    # Weak or wrong certificates (finding 1 of issue 12): each refused,
    # saying why.
    self_signed(t, "rsa1024", "rsa:1024")
    self_signed(t, "p224", "ec -pkeyopt ec_paramgen_curve:P-224")
    self_signed(t, "sha1", "ec -pkeyopt ec_paramgen_curve:P-256", ["-sha1"])
    dated(t, "expired", -10, -1)
    dated(t, "future", 5, 10)
    for name, why in (("rsa1024", "RSA key has 1024 bits"),
                      ("p224", "EC key is on SECP224R1"),
                      ("sha1", "signed with ECDSA-SHA1"),
                      ("expired", "has expired"),
                      ("future", "not valid yet")):
        e = d.error("POST", C + "/upload", 400, "INVALID_ARGUMENT",
                    {"cert": read(f"{t}/{name}.pem"),
                     "key": read(f"{t}/{name}.key")})
        check(why.lower() in e["error"]["message"].lower(), name, e)
    check(served(d.tls_port) == new["sha256"], "a refused upload changed it")

    up = d.ok("POST", C + "/upload", {"cert": cert + ca, "key": key})
    check(not up["self_signed"] and "CN=ca" in up["issuer"], up)
    check(served(d.tls_port) == up["sha256"], "upload not live")
    # The replaced pair is kept: restore puts it back, and again swaps.
    back = d.ok("POST", C + "/restore")
    check(back["sha256"] == new["sha256"] == served(d.tls_port), back, new)
    again = d.ok("POST", C + "/restore")
    check(again["sha256"] == up["sha256"] == served(d.tls_port), again, up)
    # Verified against the CA, by name, without -k.
    r = d.curl("--cacert", f"{t}/ca.pem", "-o", "/dev/null", "-w",
               "%{http_code}", d.tls_base + "/api/v1/host")
    check(r.stdout == "200", r.stdout, r.stderr)

    # A certificate replaced on disk is picked up within seconds.
    os.replace(f"{t}/server2.key", d.cert_path().replace("cert.pem", "key.pem"))
    with open(d.cert_path() + ".new", "w") as f:
        f.write(read(f"{t}/server2.pem"))
    os.replace(d.cert_path() + ".new", d.cert_path())
    want = d.ok("GET", C)["sha256"]
    deadline = time.time() + 10
    while served(d.tls_port) != want and time.time() < deadline:
        time.sleep(0.2)
    check(served(d.tls_port) == want, "file change not picked up")
    check("reloaded" in d.log(), "reload logged")
    d.stop()
    # It survives a restart (it lives in the state dir).
    d.start()
    check(served(d.tls_port) == want, "certificate lost at restart")
# The names of tls.hostnames must be in an uploaded certificate; nothing
# to restore before an upload.
with RestDaemon(rest="    tls: { hostnames: [ node1.example.com ] }") as d:
    t = d.tmpdir
    make_ca(t, "ca")
    make_leaf(t, "server", "ca", san="IP:127.0.0.1,DNS:localhost")
    C = "/api/v1/settings/certificates"
    d.error("POST", C + "/restore", 404, "NOT_FOUND")
    e = d.error("POST", C + "/upload", 400, "INVALID_ARGUMENT",
                {"cert": read(f"{t}/server.pem"),
                 "key": read(f"{t}/server.key")})
    check("does not name 'node1.example.com'" in e["error"]["message"], e)
    make_leaf(t, "node1", "ca", san="DNS:node1.example.com,IP:127.0.0.1")
    d.ok("POST", C + "/upload", {"cert": read(f"{t}/node1.pem"),
                                 "key": read(f"{t}/node1.key")})
