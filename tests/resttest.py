# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers of the REST front-end's tests: a vmhostd with the mocks and a
rest instance on free ports of 127.0.0.1, HTTP/1.1 calls with http.client,
the other protocols through real clients (curl, nghttp, python-h2), and
responses checked against plugins/frontend/rest/openapi.yaml.

    from resttest import RestDaemon
    with RestDaemon() as d:
        st, hdrs, body = d.get("/api/v1/host")
"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmhtest import Daemon, check, fail, free_port, mocks, skip  # noqa: E402,F401

SRCDIR = os.environ.get("srcdir", os.path.dirname(os.path.abspath(__file__)))
TOP_SRCDIR = os.environ.get("top_srcdir", os.path.join(SRCDIR, ".."))
OPENAPI = os.path.join(TOP_SRCDIR, "plugins", "frontend", "rest", "openapi.yaml")


def import_h2():
    """python-h2 (Debian's python3-h2).  When python3 is not Debian's own
    (a pyenv build, say) it lacks Debian's packages: look there too."""
    try:
        import h2  # noqa: F401
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            import h2  # noqa: F401,F811
        except ImportError:
            skip("python3-h2 is not installed")
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.exceptions
    import h2.settings
    return h2


def require(*cmds):
    for c in cmds:
        if not shutil.which(c):
            skip(f"{c} is not installed")


class RestDaemon(Daemon):
    """vmhostd with a rest instance: cleartext on self.port, TLS on
    self.tls_port, a unix socket at self.usock.  `rest` adds keys to the
    instance (YAML lines, indented by 4); with listen_extra, `rest` is
    more listeners instead (list items, indented by 6)."""

    PORTS = ("port", "tls_port")

    def __init__(self, rest="", body=None, daemon_yaml="", listen_extra=False,
                 **kw):
        self.port = free_port()
        self.tls_port = free_port()
        tmp = kw.pop("tmp", None)
        import tempfile
        self.tmpdir = tmp or tempfile.mkdtemp(prefix="vmhrest.")
        self.usock = os.path.join(self.tmpdir, "rest.sock")
        fe = f"""  - name: rest
    plugin: rest
    listen:
      - {{ address: "127.0.0.1:{self.port}" }}
      - {{ address: "127.0.0.1:{self.tls_port}", tls: true }}
      - {{ address: "{self.usock}" }}
{rest if listen_extra else ""}
{"" if listen_extra else rest}"""
        super().__init__(body if body is not None else mocks(), daemon_yaml,
                         tmp=self.tmpdir, frontends=fe, **kw)
        self._own_tmp = tmp is None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_base(self):
        return f"https://127.0.0.1:{self.tls_port}"

    def token(self):
        """The admin token the first start wrote (STATE_DIR/auth)."""
        with open(os.path.join(self.tmpdir, "state", "auth",
                               "admin.token")) as f:
            return f.read().strip()

    def auth(self):
        """The header that carries it."""
        return {"authorization": f"Bearer {self.token()}"}

    def auth_line(self):
        """It as a header line for curl -H and nghttp -H."""
        return f"authorization: Bearer {self.token()}"

    def auth_h2(self):
        """It as an HTTP/2 header field (python-h2)."""
        return ("authorization", f"Bearer {self.token()}")

    def auth_h1(self):
        """It as the bytes of an HTTP/1.1 header line."""
        return f"Authorization: Bearer {self.token()}\r\n".encode()

    def cert_path(self):
        return os.path.join(self.tmpdir, "state", "plugins", "rest", "tls",
                            "cert.pem")

    # -- HTTP/1.1 ---------------------------------------------------------
    def request(self, method, path, body=None, headers=None, raw=None,
                token=True):
        """(status, headers dict (lower-case names), parsed JSON or text).
        With the admin token, unless token is False or another string."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if token is True:
            h.setdefault("authorization", f"Bearer {self.token()}")
        elif token:
            h.setdefault("authorization", f"Bearer {token}")
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("content-type", "application/json")
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        ctype = hdrs.get("content-type", "")
        val = json.loads(text) if ctype.startswith("application/json") \
            and method != "HEAD" else text.decode(errors="replace")
        check("x-request-id" in hdrs, method, path, "no x-request-id", hdrs)
        return r.status, hdrs, val

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def ok(self, method, path, body=None, status=200):
        st, _, v = self.request(method, path, body)
        if st != status:
            fail(f"{method} {path}: expected {status}, got {st}:", v)
        return v

    def error(self, method, path, status, code, body=None, **kw):
        """A request that must fail with status and error code."""
        st, hdrs, v = self.request(method, path, body, **kw)
        if st != status or not isinstance(v, dict) or \
                v.get("error", {}).get("code") != code:
            fail(f"{method} {path}: expected {status} {code}, got {st}:", v)
        check(v["error"]["request_id"] == hdrs["x-request-id"], v, hdrs)
        return v

    # -- other clients ----------------------------------------------------
    def curl(self, *args, check_rc=True, token=True):
        """curl, with the admin token unless token is False."""
        auth = ["-H", f"authorization: Bearer {self.token()}"] if token else []
        r = subprocess.run(["curl", "-sS", "--max-time", "20"] + auth +
                           list(args), capture_output=True, text=True)
        if check_rc and r.returncode != 0:
            fail("curl", *args, "exited", r.returncode, r.stderr)
        return r

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def req(d, method, path, body=None, status=None, **kw):
    """d.request, its answer checked against openapi.yaml (and its status,
    when given)."""
    st, hdrs, v = d.request(method, path, body, **kw)
    if status is not None and st != status:
        fail(f"{method} {path}: expected {status}, got {st}:", v)
    validate(method, path, st, v)
    return st, hdrs, v


class Sse:
    """GET /api/v1/events with curl (d: a RestDaemon), its events parsed as
    they come (test-operations.py, test-images.py)."""

    def __init__(self, d):
        self.events = []
        self.cv = threading.Condition()
        self.proc = subprocess.Popen(
            ["curl", "-sN", "-H", d.auth_line(), "--http2-prior-knowledge",
             d.base + "/api/v1/events"], stdout=subprocess.PIPE, text=True)
        check(self.proc.stdout.readline().startswith(": vmhostd events"),
              "events stream")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("data: "):
                with self.cv:
                    self.events.append(json.loads(line[6:]))
                    self.cv.notify_all()

    def wait(self, pred, what, timeout=60):
        with self.cv:
            if not self.cv.wait_for(
                    lambda: any(pred(e) for e in self.events), timeout):
                fail("no event:", what, self.events)

    def of(self, op_id):
        with self.cv:
            return [e for e in self.events if e.get("operation") == op_id]

    def close(self):
        self.proc.kill()
        self.proc.wait()


# -- certificates (openssl) -------------------------------------------------

def _openssl(*args):
    subprocess.run(args, check=True, capture_output=True)


def make_ca(d, name):
    """A self-signed CA: d/name.pem and d/name.key."""
    _openssl("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-keyout", f"{d}/{name}.key", "-out",
             f"{d}/{name}.pem")


def make_leaf(d, name, ca, san=None, eku=None):
    """A certificate d/name.pem (key d/name.key) issued by the CA d/ca.pem:
    a server's with subjectAltName san, else a client's (clientAuth); eku
    names its extended key usage instead (e.g. serverAuth)."""
    _openssl("openssl", "req", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr")
    extfile = f"{d}/{name}.ext"
    with open(extfile, "w") as f:
        f.write(f"subjectAltName={san}\n" if san else
                "basicConstraints=CA:FALSE\n")
        if eku or not san:
            f.write(f"extendedKeyUsage={eku or 'clientAuth'}\n")
    _openssl("openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA",
             f"{d}/{ca}.pem", "-CAkey", f"{d}/{ca}.key", "-CAcreateserial",
             "-days", "2", "-out", f"{d}/{name}.pem", "-extfile", extfile)


def mtls_daemon(**kw):
    """A RestDaemon whose TLS listener requires client certificates issued
    by its tmpdir/ca.pem; made there too: otherca, client (issued by ca)
    and intruder (issued by otherca)."""
    d = RestDaemon(rest="    tls: { client_ca: ca.pem }", **kw)
    make_ca(d.tmpdir, "ca")
    make_ca(d.tmpdir, "otherca")
    make_leaf(d.tmpdir, "client", "ca")
    make_leaf(d.tmpdir, "intruder", "otherca")
    return d


def served(port):
    """SHA-256 of the certificate a new connection to port gets, as the API
    writes it (hex pairs with colons)."""
    import hashlib
    import ssl
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    h = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


# -- OpenAPI ---------------------------------------------------------------

_spec = None


def openapi():
    global _spec
    if _spec is None:
        import yaml
        with open(OPENAPI) as f:
            _spec = yaml.safe_load(f)
    return _spec


def _operation(method, path):
    spec = openapi()
    for pattern, item in spec["paths"].items():
        rx = "^" + re.sub(r"\{[^}]+\}", "[^/]+", pattern) + "$"
        if re.match(rx, path) and method.lower() in item:
            return item[method.lower()]
    return None


def validate(method, path, status, value):
    """Check a JSON answer against the document's schema for it."""
    import jsonschema
    op = _operation(method, path.split("?")[0])
    if op is None:
        # Only errors (404, 405) may answer what the document lacks.
        check(status >= 400, f"{method} {path} is not in openapi.yaml")
        op = {"responses": {"default": {"$ref": "#/components/responses/Error"}}}
    resp = op["responses"].get(str(status)) or op["responses"].get("default")
    if "$ref" in resp:
        resp = openapi()["components"]["responses"][resp["$ref"].split("/")[-1]]
    check(resp is not None, f"{method} {path}: status {status} not documented")
    content = resp.get("content", {})
    media = content.get("application/json")
    if media is None:
        return
    schema = dict(media["schema"])
    schema["components"] = openapi()["components"]
    # The document's references are #/components/...: resolve them
    # against a schema that carries the components at its root.
    jsonschema.validate(value, schema,
                        cls=jsonschema.Draft202012Validator)
