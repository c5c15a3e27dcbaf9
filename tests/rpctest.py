# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers of the rpc front-end's tests: a vmhostd with the mocks and an
rpc instance on free ports of 127.0.0.1, the stock gRPC client
(python3-grpcio) with stubs generated from proto/ at test time
(grpc_tools.protoc, python3-grpc-tools), and a raw HTTP/2 client
(python3-h2) for what a stock client never sends.

    from rpctest import RpcDaemon, pb
    with RpcDaemon() as d:
        node = d.node()
        r = node.GetNodeInfo(pb.node.GetNodeInfoRequest())
"""
import collections
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resttest import free_port, import_h2  # noqa: E402
from vmhtest import Daemon, check, fail, mocks, skip  # noqa: E402

SRCDIR = os.environ.get("srcdir", os.path.dirname(os.path.abspath(__file__)))
TOP_SRCDIR = os.environ.get("top_srcdir", os.path.join(SRCDIR, ".."))
PROTO_DIR = os.path.join(TOP_SRCDIR, "proto")
PROTOS = ["vmhost/v1/node.proto", "grpc/health/v1/health.proto",
          "grpc/reflection/v1alpha/reflection.proto"]


def _import_grpc():
    """python3-grpcio and python3-grpc-tools are Debian's: a python3 that
    is not Debian's own (pyenv, say) finds them in dist-packages."""
    try:
        import grpc  # noqa: F401
        from grpc_tools import protoc  # noqa: F401
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            import grpc  # noqa: F401,F811
            from grpc_tools import protoc  # noqa: F401,F811
        except ImportError as e:
            skip(f"python3-grpcio / python3-grpc-tools missing: {e}")
    import grpc
    return grpc


grpc = _import_grpc()


def _stubs():
    """Generate the Python stubs of proto/ into a fresh directory.  The
    health and reflection protos are compiled from copies under other
    directories: their own paths (grpc/...) would make a Python package
    "grpc" that hides grpcio's (the wire names come from its package line, not its
    path)."""
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="vmhrpc-stubs.")
    src = os.path.join(out, "src")
    os.makedirs(os.path.join(src, "vmhost", "v1"))
    os.makedirs(os.path.join(src, "grpc_health_v1"))
    os.makedirs(os.path.join(src, "grpc_reflection_v1alpha"))
    shutil.copy(os.path.join(PROTO_DIR, PROTOS[0]),
                os.path.join(src, "vmhost", "v1"))
    shutil.copy(os.path.join(PROTO_DIR, PROTOS[1]),
                os.path.join(src, "grpc_health_v1"))
    shutil.copy(os.path.join(PROTO_DIR, PROTOS[2]),
                os.path.join(src, "grpc_reflection_v1alpha"))
    args = ["protoc", f"-I{src}", f"--python_out={out}",
            f"--grpc_python_out={out}", "vmhost/v1/node.proto",
            "grpc_health_v1/health.proto",
            "grpc_reflection_v1alpha/reflection.proto"]
    if protoc.main(args) != 0:
        fail("grpc_tools.protoc failed on", PROTOS)
    sys.path.insert(0, out)
    from vmhost.v1 import node_pb2, node_pb2_grpc
    from grpc_health_v1 import health_pb2, health_pb2_grpc
    from grpc_reflection_v1alpha import reflection_pb2, reflection_pb2_grpc
    return out, types.SimpleNamespace(node=node_pb2, node_grpc=node_pb2_grpc,
                                      health=health_pb2,
                                      health_grpc=health_pb2_grpc,
                                      refl=reflection_pb2,
                                      refl_grpc=reflection_pb2_grpc)


_STUB_DIR, pb = _stubs()
import atexit  # noqa: E402
atexit.register(shutil.rmtree, _STUB_DIR, True)


def code_of(e):
    return e.code() if isinstance(e, grpc.RpcError) else None


def expect_status(code, fn, *args, **kw):
    """Call fn, which must fail with the grpc.StatusCode code."""
    try:
        r = fn(*args, **kw)
    except grpc.RpcError as e:
        if e.code() != code:
            fail(f"expected {code}, got {e.code()}: {e.details()}")
        return e
    fail(f"expected {code}, got an answer:", r)


class EventWatch:
    """WatchEvents on node, read by a thread of its own: .events holds the
    events as they come (and the RpcError that ended the stream, unless
    it was cancelled); .call is the stream, .thread its reader."""

    def __init__(self, node):
        self.events = []
        self.call = node.WatchEvents(pb.node.WatchEventsRequest())
        self.thread = threading.Thread(target=self._collect)
        self.thread.start()

    def _collect(self):
        try:
            for ev in self.call:
                self.events.append(ev)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.events.append(e)

    def stop(self):
        """Cancel the stream; whether its reader ended."""
        self.call.cancel()
        self.thread.join(10)
        return not self.thread.is_alive()


class _Details(collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials",
                     "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    pass


class _Bearer(grpc.UnaryUnaryClientInterceptor,
              grpc.UnaryStreamClientInterceptor,
              grpc.StreamUnaryClientInterceptor,
              grpc.StreamStreamClientInterceptor):
    """Adds "authorization: Bearer <token>" to every call of a channel."""

    def __init__(self, token):
        self.md = ("authorization", f"Bearer {token}")

    def _with(self, d):
        md = list(d.metadata or []) + [self.md]
        return _Details(d.method, d.timeout, md, d.credentials,
                        getattr(d, "wait_for_ready", None),
                        getattr(d, "compression", None))

    def intercept_unary_unary(self, cont, details, req):
        return cont(self._with(details), req)

    def intercept_unary_stream(self, cont, details, req):
        return cont(self._with(details), req)

    def intercept_stream_unary(self, cont, details, it):
        return cont(self._with(details), it)

    def intercept_stream_stream(self, cont, details, it):
        return cont(self._with(details), it)


class RpcDaemon(Daemon):
    """vmhostd with an rpc instance: h2c on self.port, TLS on
    self.tls_port.  `rpc` adds keys to the instance (YAML lines indented
    by 4)."""

    PORTS = ("port", "tls_port")

    def __init__(self, rpc="", body=None, daemon_yaml="", **kw):
        self.port = free_port()
        self.tls_port = free_port()
        fe = f"""  - name: rpc
    plugin: rpc
    listen:
      - {{ address: "127.0.0.1:{self.port}" }}
      - {{ address: "127.0.0.1:{self.tls_port}", tls: true }}
{rpc}"""
        super().__init__(body if body is not None else mocks(), daemon_yaml,
                         frontends=fe, **kw)
        self.channels = []

    def token(self):
        """The admin token the first start wrote (STATE_DIR/auth)."""
        with open(os.path.join(self.tmp, "state", "auth",
                               "admin.token")) as f:
            return f.read().strip()

    def channel(self, token=True):
        """An h2c channel whose calls carry the admin token (or token, a
        string; none when False)."""
        ch = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.channels.append(ch)
        if token:
            tok = self.token() if token is True else token
            ch = grpc.intercept_channel(ch, _Bearer(tok))
        return ch

    def node(self, ch=None):
        return pb.node_grpc.NodeServiceStub(ch or self.channel())

    def health(self, ch=None):
        return pb.health_grpc.HealthStub(ch or self.channel())

    def cert_path(self):
        return os.path.join(self.tmp, "state", "plugins", "rpc", "tls",
                            "cert.pem")

    def __exit__(self, *exc):
        for ch in self.channels:
            ch.close()
        return super().__exit__(*exc)

    # -- raw HTTP/2 ---------------------------------------------------------
    def raw(self, path, body=b"", headers=None, method="POST",
            ctype="application/grpc", timeout=10, te=True, token=True):
        """One request on a fresh h2c connection: (headers, data, trailers)
        as dicts and bytes; trailers is None for a Trailers-Only answer or
        a reset stream."""
        h2 = import_h2()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        hdrs = [(":method", method), (":scheme", "http"), (":path", path),
                (":authority", f"127.0.0.1:{self.port}")]
        if ctype:
            hdrs.append(("content-type", ctype))
        hdrs += list((headers or {}).items())
        if token:
            hdrs.append(("authorization", f"Bearer {self.token()}"))
        if te:
            hdrs.append(("te", "trailers"))
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, hdrs, end_stream=not body)
        if body:
            conn.send_data(sid, body, end_stream=True)
        s.sendall(conn.data_to_send())
        resp, data, trailers, done = None, b"", None, False
        while not done:
            chunk = s.recv(65536)
            if not chunk:
                break
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived):
                    resp = {k.decode(): v.decode() for k, v in ev.headers}
                elif isinstance(ev, h2.events.DataReceived):
                    data += ev.data
                    conn.acknowledge_received_data(len(ev.data), sid)
                elif isinstance(ev, h2.events.TrailersReceived):
                    trailers = {k.decode(): v.decode() for k, v in ev.headers}
                elif isinstance(ev, (h2.events.StreamEnded,
                                     h2.events.StreamReset)):
                    done = True
            s.sendall(conn.data_to_send())
        s.close()
        return resp, data, trailers

    def raw_status(self, path, body=b"", **kw):
        """(grpc-status, grpc-message) from the trailers or a Trailers-Only
        answer."""
        resp, data, trailers = self.raw(path, body, **kw)
        check(resp is not None, path, "no response")
        src = trailers if trailers is not None else resp
        check("grpc-status" in src, path, "no grpc-status:", resp, trailers)
        return int(src["grpc-status"]), src.get("grpc-message", "")


def frame(msg_bytes, compressed=0, length=None):
    """A length-prefixed gRPC message."""
    n = len(msg_bytes) if length is None else length
    return struct.pack(">BI", compressed, n) + msg_bytes


def vm_spec(name, disks=1, nics=1):
    s = pb.node.VmSpec(name=name, vcpus=2, memory=1 << 30)
    for i in range(disks):
        s.disks.add(name=f"vd{chr(ord('a') + i)}", size=1 << 30)
    for i in range(nics):
        s.nics.add(name=f"net{i}")
    return s


def openssl_cert(d, name, ca=None):
    """An EC P-256 key and certificate d/name.{key,pem}: self-signed (a
    CA) or, with ca, issued by d/ca.{pem,key} (OpenSSL 3's req -CA)."""
    import subprocess
    args = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{d}/{name}.key",
            "-out", f"{d}/{name}.pem"]
    if ca:
        args += ["-CA", f"{d}/{ca}.pem", "-CAkey", f"{d}/{ca}.key",
                 "-addext", "basicConstraints=CA:FALSE",
                 "-addext", "extendedKeyUsage=clientAuth"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        fail("openssl:", r.stderr)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()
