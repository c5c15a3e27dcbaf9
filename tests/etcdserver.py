# SPDX-License-Identifier: LGPL-2.1-or-later
"""A throwaway etcd (Debian's etcd-server, 3.4) for the cluster plugin's
tests and benchmark: one member on 127.0.0.1, client and peer ports chosen
here, data under the test's directory (on /dev/shm when there is one: the
WAL preallocates 64 MB), stopped by PID.  TLS with client certificates on
request (certificates made with openssl, as the REST tests make theirs).

    e = Etcd(tmpdir).start()          # e.url: http://127.0.0.1:PORT
    e.get("/vmhost/nodes/n1")         # the decoded JSON value, or None
    e.stop(); e.start()               # gone and back, same data and ports

Keys and values go base64 through etcd's JSON gateway (/v3/...), as the
plugin sends them.
"""
import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from vmhtest import check, fail, free_port, skip


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s).decode()


def prefix_end(p):
    return p[:-1] + chr(ord(p[-1]) + 1)


class Etcd:
    def __init__(self, tmp, tls=False):
        """tls: serve https only, requiring client certificates issued by
        tmp/ca.pem (made here with the server's and a client's:
        tmp/client.pem, tmp/client.key)."""
        if not shutil.which("etcd"):
            skip("no etcd (etcd-server)")
        self.tmp = tmp
        base = "/dev/shm" if os.path.isdir("/dev/shm") else tmp
        self.data = tempfile.mkdtemp(prefix="vmhtest-etcd.", dir=base)
        self.tls = tls
        self.client_port, self.peer_port = free_port(), free_port()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.client_port}"
        self.proc = None
        self.ctx = None
        if tls:
            from resttest import make_ca, make_leaf
            make_ca(tmp, "ca")
            # etcd's gateway dials etcd's own gRPC port with the server's
            # certificate: it must be good for client auth too.
            make_leaf(tmp, "etcd", "ca", san="IP:127.0.0.1",
                      eku="serverAuth,clientAuth")
            make_leaf(tmp, "client", "ca")
            self.ctx = ssl.create_default_context(cafile=f"{tmp}/ca.pem")
            self.ctx.load_cert_chain(f"{tmp}/client.pem", f"{tmp}/client.key")

    def start(self):
        tls = []
        if self.tls:
            tls = ["--cert-file", f"{self.tmp}/etcd.pem", "--key-file",
                   f"{self.tmp}/etcd.key", "--trusted-ca-file",
                   f"{self.tmp}/ca.pem", "--client-cert-auth"]
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.log = open(os.path.join(self.tmp, "etcd.log"), "a")
        self.proc = subprocess.Popen(
            ["etcd", "--name", "t", "--data-dir", self.data,
             "--listen-client-urls", self.url,
             "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"t={peer}",
             "--initial-cluster-state", "new", "--logger", "zap",
             "--log-outputs", "stderr"] + tls,
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                with open(os.path.join(self.tmp, "etcd.log")) as f:
                    self.cleanup()
                    fail("etcd exited:", f.read()[-3000:])
            try:
                self.post("/v3/maintenance/status", {})
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        # __exit__ does not run when __enter__ fails: stop it here.
        self.cleanup()
        fail("etcd not ready in 30 s")

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            self.proc.wait(30)
            self.proc = None
            self.log.close()

    def cleanup(self):
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.data, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # -- the gateway --------------------------------------------------------
    def post(self, path, body):
        req = urllib.request.Request(self.url + path,
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type":
                                              "application/json"})
        with urllib.request.urlopen(req, timeout=10, context=self.ctx) as r:
            return json.loads(r.read())

    def kvs(self, prefix):
        """{key: (value, lease)} of every key under prefix."""
        r = self.post("/v3/kv/range", {"key": b64(prefix),
                                       "range_end": b64(prefix_end(prefix))})
        return {unb64(kv["key"]): (unb64(kv.get("value", "")),
                                   int(kv.get("lease", "0")))
                for kv in r.get("kvs", [])}

    def get(self, key):
        """The JSON value of key, or None."""
        r = self.post("/v3/kv/range", {"key": b64(key)})
        kvs = r.get("kvs", [])
        return json.loads(unb64(kvs[0]["value"])) if kvs else None

    def get_at(self, key, revision):
        """The JSON value key had at revision (etcd keeps the history)."""
        r = self.post("/v3/kv/range", {"key": b64(key),
                                       "revision": str(revision)})
        kvs = r.get("kvs", [])
        return json.loads(unb64(kvs[0]["value"])) if kvs else None

    def lease_of(self, key):
        r = self.post("/v3/kv/range", {"key": b64(key)})
        kvs = r.get("kvs", [])
        return int(kvs[0].get("lease", "0")) if kvs else None

    def ttl(self, lease):
        """The lease's remaining TTL, -1 when it is gone."""
        r = self.post("/v3/lease/timetolive", {"ID": str(lease)})
        return int(r.get("TTL", "-1"))

    def put(self, key, value, lease=0):
        body = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        self.post("/v3/kv/put", body)

    def grant(self, ttl):
        return int(self.post("/v3/lease/grant", {"TTL": str(ttl)})["ID"])

    def revision(self):
        return int(self.post("/v3/kv/range", {"key": b64("/")})
                   ["header"]["revision"])


def node_cluster_yaml(e, name="n1", extra=""):
    """The cluster front-end's entry of a vmhostd config, on etcd e."""
    tls = ""
    if e.tls:
        tls = (f", ca: {e.tmp}/ca.pem, cert: {e.tmp}/client.pem, "
               f"key: {e.tmp}/client.key")
    return (f"  - {{ name: cluster, plugin: cluster, endpoints: [ \"{e.url}\" ]"
            f", node_name: {name}{tls}{extra} }}\n")


def check_node(rec, name, status="up"):
    check(rec is not None, "no node record")
    check(rec["name"] == name and rec["status"] == status, rec)
    return rec
