# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers of the guest channel's tests: Python stubs of
proto/vmhost/agent/v1/agent.proto (grpc_tools.protoc, python3-grpc-tools,
generated at test time), the frame format, and HostEnd -- the host's end
of a channel (a unix socket the agent connects to, or that a test plays
the guest on).

    from agenttest import pb, HostEnd
    with HostEnd() as h:
        ... start vmhost-agent --device h.path ...
        h.accept()
        r = h.call(pb.Request(ping=pb.PingRequest()))
"""
import os
import socket
import struct
import sys
import tempfile
import shutil
import atexit
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmhtest import check, fail, skip  # noqa: E402

TOP_SRCDIR = os.environ.get("top_srcdir", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), ".."))
TOP_BUILDDIR = os.environ.get("top_builddir", TOP_SRCDIR)
MAGIC = b"VMH\x01"


def _stubs():
    try:
        from grpc_tools import protoc
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            from grpc_tools import protoc
        except ImportError as e:
            skip(f"python3-grpc-tools missing: {e}")
    out = tempfile.mkdtemp(prefix="vmhagent-stubs.")
    atexit.register(shutil.rmtree, out, True)
    args = ["protoc", "-I" + os.path.join(TOP_SRCDIR, "proto"),
            f"--python_out={out}", "vmhost/agent/v1/agent.proto"]
    if protoc.main(args) != 0:
        fail("grpc_tools.protoc failed on agent.proto")
    sys.path.insert(0, out)
    from vmhost.agent.v1 import agent_pb2
    return agent_pb2


pb = _stubs()


def frame(payload, length=None):
    n = len(payload) if length is None else length
    return MAGIC + struct.pack(">I", n) + payload


def guest_metric(text, name):
    """vmhost_plugin_<name>{instance="guest"} in a metrics text (the ctl
    front-end's op=metrics or REST's /metrics); 0 when not there yet."""
    for line in text.splitlines():
        if line.startswith(f"vmhost_plugin_{name}{{") and \
                'instance="guest"' in line:
            return float(line.split()[-1])
    return 0


def agent_binary(dev=True):
    """The agent of the build tree: the sanitized -dev build by default."""
    name = "vmhost-agent-dev" if dev else "vmhost-agent"
    path = os.path.join(TOP_BUILDDIR, "agent", name)
    if not os.path.exists(path):
        fail(path, "is not built")
    return path


class HostEnd:
    """A listening unix socket; accept() takes the agent's connection (or a
    test's own peer).  HostEnd(connect=PATH) connects to PATH instead (a
    QEMU channel socket, the guest's agent behind it); HostEnd(sock=S)
    speaks on a socket already connected (past a vsock bridge's
    handshake)."""

    def __init__(self, path=None, connect=None, sock=None):
        self.conn = sock
        self.buf = b""
        self.next_id = 1
        self.dir = None
        self.srv = None
        if sock:
            return
        if connect:
            self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.conn.settimeout(60)
            self.conn.connect(connect)
            return
        self.dir = tempfile.mkdtemp(prefix="vmhagent.")
        self.path = path or os.path.join(self.dir, "chan.sock")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(4)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.conn:
            self.conn.close()
        if self.srv:
            self.srv.close()
            shutil.rmtree(self.dir, True)

    def accept(self, timeout=60):
        self.srv.settimeout(timeout)
        try:
            self.conn, _ = self.srv.accept()
        except socket.timeout:
            fail("nothing connected to", self.path, "within", timeout, "s")
        self.conn.settimeout(timeout)
        self.buf = b""

    def send(self, data):
        self.conn.sendall(data)

    def read_frame(self):
        """The next frame's payload (the agent's frames are well formed)."""
        while True:
            if len(self.buf) >= 8:
                if self.buf[:4] != MAGIC:
                    fail("no magic at the start of a frame:", self.buf[:16])
                n = struct.unpack(">I", self.buf[4:8])[0]
                if len(self.buf) >= 8 + n:
                    p, self.buf = self.buf[8:8 + n], self.buf[8 + n:]
                    return p
            try:
                chunk = self.conn.recv(1 << 16)
            except socket.timeout:
                fail("no answer from the agent")
            if not chunk:
                fail("the agent closed the channel")
            self.buf += chunk

    def call(self, req):
        """Sends req (a Request, id set here) and returns its Response."""
        req.id = self.next_id
        self.next_id += 1
        self.send(frame(req.SerializeToString()))
        resp = pb.Response()
        resp.ParseFromString(self.read_frame())
        if resp.id != req.id:
            fail("answer id", resp.id, "to request", req.id)
        return resp


class Peer(threading.Thread):
    """The guest side of one channel: listens on the VM's socket path,
    takes vmhostd's connections one after another, runs `script` on each."""

    def __init__(self, path, script):
        super().__init__(daemon=True)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.script = script
        self.requests = []
        self.connections = 0
        self.closed = threading.Event()
        self.conn = None
        self.start()

    def run(self):
        while True:
            try:
                self.conn, _ = self.srv.accept()
            except OSError:
                return
            self.connections += 1
            self.buf = b""
            try:
                self.script(self)
            except OSError:
                pass
            self.closed.set()

    def read_request(self):
        """The next request, or None at EOF."""
        while True:
            if len(self.buf) >= 8:
                check(self.buf[:4] == MAGIC, "vmhostd sent no magic")
                n = struct.unpack(">I", self.buf[4:8])[0]
                if len(self.buf) >= 8 + n:
                    req = pb.Request()
                    req.ParseFromString(self.buf[8:8 + n])
                    self.buf = self.buf[8 + n:]
                    self.requests.append(req.WhichOneof("body"))
                    return req
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def answer(self, req, **body):
        self.conn.sendall(frame(pb.Response(id=req.id, **body)
                                .SerializeToString()))


def answer_properly(p, req, agent_version="test\x1b[31m",
                    capabilities=("ping",)):
    """Answers sync, hello (with agent_version and capabilities), ping and
    telemetry as an agent does; False for any other request."""
    kind = req.WhichOneof("body")
    if kind == "sync":
        p.answer(req, sync=pb.SyncRequest())
    elif kind == "hello":
        p.answer(req, hello=pb.HelloResponse(
            version=1, agent_version=agent_version,
            capabilities=list(capabilities)))
    elif kind == "ping":
        p.answer(req, ping=pb.PingResponse())
    elif kind == "telemetry":
        p.answer(req, telemetry=pb.TelemetryResponse(hostname="good"))
    else:
        return False
    return True
