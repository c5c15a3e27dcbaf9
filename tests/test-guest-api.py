#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The guest agent's API (REST with curl and http.client, gRPC with
python3-grpcio) against fake agents played by this test on the channel
sockets of mock VMs (as test-guest-hostile.py does): GET …/agent and the
agent in VM info (state, version, telemetry addresses filling the VM's
when the hypervisor has none), exec (UTF-8 and base64 output, refused by
the agent's allowlist → 403 with its message, no answer → 504, busy),
files both ways (bytes, headers, caps by content-length → 413, the
agent's not-found → 404), time sync, no agent → 409 "agent not connected
on vm 'x'", quiesced snapshots (freeze → snapshot → thaw; thaw also when
the snapshot fails, by the mock's fault injection; refused without an
agent unless "try"), and the same through gRPC with its status codes."""
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agenttest import Peer, pb as apb  # noqa: E402
from resttest import RestDaemon, import_h2, require, validate  # noqa: E402
from vmhtest import check, free_port, mocks, vm_spec, wait_for  # noqa: E402

require("curl")
try:
    import grpc  # noqa: F401
    from rpctest import _Bearer, expect_status, pb as npb  # noqa: E402
except ImportError as e:
    from vmhtest import skip
    skip(f"python3-grpcio missing: {e}")

RPC_PORT = free_port()
EXTRA = f"""  - name: guest
    plugin: guest
    retry_ms: 50
    timeout_ms: 600
    ping_ms: 200
    telemetry_ms: 300
    rescan_ms: 200
    exec_timeout_ms: 300
  - name: rpc
    plugin: rpc
    listen:
      - {{ address: "127.0.0.1:{RPC_PORT}" }}
"""
# The second snapshot of the VM fails (the mock's fault injection).
HV = (", faults: [{op: snapshot_create, mode: nth, n: 2, error: io_error, "
      "message: 'the disk is full'}]")


class FakeAgent:
    """A well-behaved agent with a few programs; it logs what it is asked
    (freeze, thaw, time_sync, file writes) in order."""

    def __init__(self, path):
        self.log = []
        self.files = {"/etc/hostname": b"fake\n"}
        self.slow = threading.Event()
        self.peer = Peer(path, self.serve)

    def serve(self, p):
        while (req := p.read_request()) is not None:
            kind = req.WhichOneof("body")
            if kind == "sync":
                p.answer(req, sync=apb.SyncRequest())
            elif kind == "hello":
                p.answer(req, hello=apb.HelloResponse(
                    version=1, agent_version="9.8.7",
                    capabilities=["ping", "exec", "freeze"]))
            elif kind == "ping":
                p.answer(req, ping=apb.PingResponse())
            elif kind == "telemetry":
                p.answer(req, telemetry=apb.TelemetryResponse(
                    hostname="fake", kernel="6.1.0", cpus=2,
                    filesystems=[apb.Filesystem(mountpoint="/", type="ext4",
                                                size=1 << 30, used=1 << 20)],
                    nics=[apb.Nic(name="lo", addresses=["127.0.0.1/8",
                                                         "::1/128"]),
                          apb.Nic(name="eth0", mac="52:54:00:00:00:01",
                                  addresses=["192.0.2.10/24",
                                             "fe80::1/64", "not an address",
                                             "2001:db8::10/64"])]))
            elif kind == "exec":
                self.exec(p, req)
            elif kind == "file_read":
                data = self.files.get(req.file_read.path)
                if data is None:
                    p.answer(req, error=apb.Error(
                        code=apb.ErrorCode.ERROR_NOT_FOUND,
                        message=f"{req.file_read.path}: no such file"))
                else:
                    p.answer(req, file_read=apb.FileReadResponse(
                        data=data, size=len(data), eof=True))
            elif kind == "file_write":
                w = req.file_write
                self.files[w.path] = w.data
                self.log.append(("write", w.path, w.mode))
                p.answer(req, file_write=apb.FileWriteResponse(
                    size=len(w.data)))
            elif kind == "time_sync":
                self.log.append(("time_sync", req.time_sync.unix_ns))
                p.answer(req, time_sync=apb.TimeSyncResponse(offset_ns=42))
            elif kind == "freeze":
                self.log.append(("freeze", req.freeze.timeout_s))
                p.answer(req, freeze=apb.FreezeResponse(frozen=["/"]))
            elif kind == "thaw":
                self.log.append(("thaw",))
                p.answer(req, thaw=apb.ThawResponse(thawed=1))

    def exec(self, p, req):
        argv = list(req.exec.argv)
        if argv[0] == "/bin/echo":
            p.answer(req, exec=apb.ExecResponse(
                exit_status=0, stdout=(" ".join(argv[1:]) + "\n").encode(),
                stderr=req.exec.stdin))
        elif argv[0] == "/bin/binary":
            p.answer(req, exec=apb.ExecResponse(
                exit_status=3, stdout=b"\x00\xff\xfe", stdout_truncated=True))
        elif argv[0] == "/bin/liar":  # the answer of another request
            p.answer(req, ping=apb.PingResponse())
        elif argv[0] == "/bin/ctrl":  # a message with escapes and newlines
            p.answer(req, error=apb.Error(
                code=apb.ErrorCode.ERROR_IO,
                message="\x1b[31mred\nsecond line\x00"))
        elif argv[0] == "/bin/slow":
            # 1 s: after the deadline of a 100 ms exec (its timeout plus
            # the front-end's timeout_ms, 600), well before a 2 s one's.
            self.slow.set()
            time.sleep(1)
            p.answer(req, exec=apb.ExecResponse(exit_status=0))
        else:
            p.answer(req, error=apb.Error(
                code=apb.ErrorCode.ERROR_PERMISSION_DENIED,
                message=f"{argv[0]} is not on the allowlist"))


d = RestDaemon(rest=EXTRA, body=mocks(hv=HV))
with d:
    def create(name, **kw):
        vm = d.ok("POST", "/api/v1/vms", vm_spec(name, nics=0,
                                                  guest_channel=True, **kw),
                  status=201)
        return vm

    a1 = create("a1")
    agent = FakeAgent(a1["channel"]["path"])
    create("b1")  # a channel nobody listens on: no agent
    check(a1["agent"] == {"state": "absent", "version": None}, a1["agent"])

    # ---- state in VM info; telemetry addresses fill the VM's ------------
    wait_for(lambda: d.ok("GET", "/api/v1/vms/a1")["agent"]["state"] ==
             "connected", "the agent connected in VM info")
    wait_for(lambda: d.ok("GET", "/api/v1/vms/a1")["ips"], "telemetry ips")
    vm = d.ok("GET", "/api/v1/vms/a1")
    validate("GET", "/api/v1/vms/a1", 200, vm)
    check(vm["agent"] == {"state": "connected", "version": "9.8.7"}, vm)
    check(vm["ips"] == ["192.0.2.10", "2001:db8::10"],
          "loopback, link-local and junk left out:", vm["ips"])
    lst = d.ok("GET", "/api/v1/vms")["vms"]
    check([v["agent"]["state"] for v in lst] == ["connected", "absent"], lst)

    # ---- GET …/agent ------------------------------------------------------
    a = d.ok("GET", "/api/v1/vms/a1/agent")
    validate("GET", "/api/v1/vms/a1/agent", 200, a)
    check(a["state"] == "connected" and a["version"] == "9.8.7" and
          a["capabilities"] == ["ping", "exec", "freeze"], a)
    t = a["telemetry"]
    check(t["hostname"] == "fake" and t["cpus"] == 2 and
          t["filesystems"][0]["mountpoint"] == "/" and
          t["nics"][1]["addresses"][0] == "192.0.2.10/24", t)
    check(abs(t["time_us"] / 1e6 - time.time()) < 60, t["time_us"])
    b = d.ok("GET", "/api/v1/vms/b1/agent")
    check(b == {"state": "absent", "version": None, "capabilities": [],
                "message": None, "thaw_pending": False,
                "telemetry": None}, b)
    d.error("GET", "/api/v1/vms/nope/agent", 404, "NOT_FOUND")
    # live: fresh telemetry (a round trip); ping.
    asked = agent.peer.requests.count("telemetry")
    a = d.ok("GET", "/api/v1/vms/a1/agent?live=true")
    validate("GET", "/api/v1/vms/a1/agent", 200, a)
    check(a["state"] == "connected" and a["telemetry"]["hostname"] == "fake"
          and agent.peer.requests.count("telemetry") > asked, a)
    d.error("GET", "/api/v1/vms/b1/agent?live=true", 409, "INVALID_STATE")
    d.error("GET", "/api/v1/vms/a1/agent?live=maybe", 400, "INVALID_ARGUMENT")
    pings = agent.peer.requests.count("ping")
    check(d.ok("POST", "/api/v1/vms/a1/agent/ping", {}) == {}, "ping")
    check(agent.peer.requests.count("ping") > pings, "no ping sent")
    d.error("POST", "/api/v1/vms/b1/agent/ping", 409, "INVALID_STATE", {})

    # ---- exec ---------------------------------------------------------------
    x = d.ok("POST", "/api/v1/vms/a1/agent/exec",
             {"argv": ["/bin/echo", "héllo", "world"], "stdin": "in"})
    validate("POST", "/api/v1/vms/a1/agent/exec", 200, x)
    check(x["stdout"] == "héllo world\n" and x["stdout_encoding"] == "utf-8"
          and x["stderr"] == "in" and x["exit_status"] == 0, x)
    x = d.ok("POST", "/api/v1/vms/a1/agent/exec",
             {"argv": ["/bin/echo"], "stdin": base64.b64encode(b"\x00\x01")
              .decode(), "stdin_encoding": "base64"})
    check(x["stderr_encoding"] == "base64" and
          base64.b64decode(x["stderr"]) == b"\x00\x01", x)
    x = d.ok("POST", "/api/v1/vms/a1/agent/exec", {"argv": ["/bin/binary"]})
    check(x["stdout_encoding"] == "base64" and x["stdout_truncated"] and
          base64.b64decode(x["stdout"]) == b"\x00\xff\xfe" and
          x["exit_status"] == 3, x)
    e = d.error("POST", "/api/v1/vms/a1/agent/exec", 403, "PERMISSION_DENIED",
                {"argv": ["/bin/sh", "-c", "id"]})
    check("/bin/sh is not on the allowlist" in e["error"]["message"] and
          "vm 'a1'" in e["error"]["message"], e)
    # A lying agent: an answer of the wrong kind, a message with escapes.
    e = d.error("POST", "/api/v1/vms/a1/agent/exec", 502, "IO_ERROR",
                {"argv": ["/bin/liar"]})
    check("answered with something else" in e["error"]["message"], e)
    e = d.error("POST", "/api/v1/vms/a1/agent/exec", 502, "IO_ERROR",
                {"argv": ["/bin/ctrl"]})
    check("?[31mred?second line" in e["error"]["message"] and
          "\x1b" not in e["error"]["message"], e)
    e = d.error("POST", "/api/v1/vms/b1/agent/exec", 409, "INVALID_STATE",
                {"argv": ["/bin/echo"]})
    check("agent not connected on vm 'b1'" in e["error"]["message"], e)
    for bad, why in [({"argv": []}, "argv"), ({"argv": ["echo"]}, "absolute"),
                     ({"argv": ["/bin/echo"], "shell": True}, "shell"),
                     ({"argv": ["/bin/echo", 3]}, "argv[1]"),
                     ({"argv": ["/bin/echo"], "stdin": "***",
                       "stdin_encoding": "base64"}, "base64"),
                     ({"argv": ["/bin/echo"], "timeout_ms": -1}, "timeout_ms")]:
        e = d.error("POST", "/api/v1/vms/a1/agent/exec", 400,
                    "INVALID_ARGUMENT", bad)
        check(why in e["error"]["message"], bad, e)

    # No answer in time: 504; the channel re-synchronises and serves again.
    t0 = time.time()
    e = d.error("POST", "/api/v1/vms/a1/agent/exec", 504, "TIMEOUT",
                {"argv": ["/bin/slow"], "timeout_ms": 100})
    check("no answer in time" in e["error"]["message"], e)
    check(time.time() - t0 < 10, "the timeout took", time.time() - t0)
    def answers(word):
        st, _, v = d.request("POST", "/api/v1/vms/a1/agent/exec",
                             {"argv": ["/bin/echo", word]})
        return st == 200 and v["stdout"] == word + "\n"

    wait_for(lambda: answers("back"), "the agent answering again")

    # One request at a time per agent: a second one meanwhile is busy.
    slow = {}
    th = threading.Thread(target=lambda: slow.update(r=d.request(
        "POST", "/api/v1/vms/a1/agent/exec",
        {"argv": ["/bin/slow"], "timeout_ms": 2000})))
    agent.slow.clear()
    th.start()
    wait_for(agent.slow.is_set, "the slow exec sent")
    e = d.error("POST", "/api/v1/vms/a1/agent/exec", 409, "BUSY",
                {"argv": ["/bin/echo"]})
    check("busy" in e["error"]["message"], e)
    th.join()
    check(slow["r"][0] == 200, slow)
    wait_for(lambda: d.ok("GET", "/api/v1/vms/a1/agent")["state"] ==
             "connected", "connected after the slow exec")

    # ---- files (curl: the bytes as they are) -------------------------------
    blob = bytes(range(256)) * 16
    src = os.path.join(d.tmpdir, "blob")
    with open(src, "wb") as f:
        f.write(blob)
    url = f"{d.base}/api/v1/vms/a1/agent/files?path=%2Fdata%2Fa%20b&mode=0600"
    r = d.curl("-X", "PUT", "-H", "content-type: application/octet-stream",
               "--data-binary", f"@{src}", "-w", "\n%{http_code}", url)
    body, code = r.stdout.rsplit("\n", 1)
    check(code == "200" and json.loads(body) == {"size": len(blob)}, r.stdout)
    check(agent.files["/data/a b"] == blob and
          ("write", "/data/a b", 0o600) in agent.log, agent.log)
    out = os.path.join(d.tmpdir, "back")
    r = d.curl("-D", "-", "-o", out,
               f"{d.base}/api/v1/vms/a1/agent/files?path=/data/a%20b")
    with open(out, "rb") as f:
        check(f.read() == blob, "the bytes read back differ")
    hdrs = r.stdout.lower()
    check(f"x-file-size: {len(blob)}" in hdrs and "x-file-eof: true" in hdrs
          and "application/octet-stream" in hdrs, hdrs)
    d.error("GET", "/api/v1/vms/a1/agent/files?path=/nope", 404, "NOT_FOUND")
    for q, why in [("", "'path'"), ("?path=rel", "absolute"),
                   ("?path=/x&offset=-1", "offset"),
                   ("?path=/x&bogus=1", "unknown query"),
                   ("?path=%zz", "malformed"), ("?path=/a%00b", "malformed")]:
        e = d.error("GET", f"/api/v1/vms/a1/agent/files{q}", 400,
                    "INVALID_ARGUMENT")
        check(why in e["error"]["message"], q, e)
    # Over the cap by its announced length: refused, nothing reaches the
    # agent.
    writes = len([x for x in agent.log if x[0] == "write"])
    st, _, v = d.request("PUT", "/api/v1/vms/a1/agent/files?path=/data/big",
                         raw=b"x" * ((1 << 20) - 8191),
                         headers={"content-type": "application/octet-stream"})
    check(st == 413 and v["error"]["code"] == "PAYLOAD_TOO_LARGE", st, v)
    # HTTP/2: the body taken as it comes and bounded before it is whole,
    # by its announced length or as it streams without one (curl -T -).
    h2 = ["--http2-prior-knowledge", "-X", "PUT", "-H",
          "content-type: application/octet-stream", "-w", "\n%{http_code}"]
    r = d.curl(*h2, "--data-binary", f"@{src}",
               f"{d.base}/api/v1/vms/a1/agent/files?path=/data/h2")
    check(r.stdout.endswith("\n200") and agent.files["/data/h2"] == blob,
          r.stdout)
    writes = len([x for x in agent.log if x[0] == "write"])
    big = os.path.join(d.tmpdir, "big")
    with open(big, "wb") as f:
        f.write(b"y" * (3 << 20))
    r = d.curl(*h2, "--data-binary", f"@{big}",
               f"{d.base}/api/v1/vms/a1/agent/files?path=/data/big", check_rc=False)
    check(r.stdout.endswith("\n413") and "PAYLOAD_TOO_LARGE" in r.stdout,
          r.stdout, r.stderr)
    with open(big, "rb") as f:
        r = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "-H", d.auth_line(), *h2[:1],
             "-T", "-", "-H", "content-type: application/octet-stream",
             "-w", "\n%{http_code}",
             f"{d.base}/api/v1/vms/a1/agent/files?path=/data/big"],
            stdin=f, capture_output=True, text=True)
    check(r.stdout.endswith("\n413") and "PAYLOAD_TOO_LARGE" in r.stdout,
          "streamed past the cap:", r.stdout, r.stderr)
    check(len([x for x in agent.log if x[0] == "write"]) == writes, agent.log)
    # A client gone mid-body: vmhostd carries on.
    sk = socket.create_connection(("127.0.0.1", d.port))
    h2c = import_h2()
    conn = h2c.connection.H2Connection()
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "PUT"), (":scheme", "http"),
                            (":authority", "x"), (":path",
                            "/api/v1/vms/a1/agent/files?path=/data/half"),
                            d.auth_h2()])
    conn.send_data(sid, b"z" * 1000)
    sk.sendall(conn.data_to_send())
    time.sleep(0.2)
    sk.close()
    check(d.ok("GET", "/api/v1/vms/a1/agent")["state"] == "connected",
          "after a client went mid-body")
    check("/data/half" not in agent.files, "half a body written")
    st, _, v = d.request("PUT", "/api/v1/vms/a1/agent/files?path=/data/j",
                         raw=b"{}", headers={"content-type": "text/plain"})
    check(st == 415, st, v)
    check(len([x for x in agent.log if x[0] == "write"]) == writes, agent.log)
    st, _, v = d.request("PUT", "/api/v1/vms/b1/agent/files?path=/data/x",
                         raw=b"x",
                         headers={"content-type": "application/octet-stream"})
    check(st == 409 and "agent not connected on vm 'b1'" in
          v["error"]["message"], st, v)

    # ---- time sync ------------------------------------------------------------
    t0 = time.time_ns()
    ts = d.ok("POST", "/api/v1/vms/a1/agent/time-sync", {})
    validate("POST", "/api/v1/vms/a1/agent/time-sync", 200, ts)
    check(ts == {"offset_ns": 42}, ts)
    sent = [x for x in agent.log if x[0] == "time_sync"][-1][1]
    check(abs(sent - t0) < 30 * 10**9, "the host's clock was sent", sent, t0)
    d.error("POST", "/api/v1/vms/a1/agent/time-sync", 400, "INVALID_ARGUMENT",
            {"when": 1})

    # A paused VM keeps its channel (a snapshot pauses the VM a moment):
    # the agent stays connected, on the same connection.
    conns = agent.peer.connections
    d.ok("POST", "/api/v1/vms/a1/pause", {})
    check(d.ok("GET", "/api/v1/vms/a1")["state"] == "paused", "not paused")
    pings = agent.peer.requests.count("ping")
    wait_for(lambda: agent.peer.requests.count("ping") >= pings + 3,
             "pings while paused")
    check(d.ok("GET", "/api/v1/vms/a1/agent")["state"] == "connected" and
          agent.peer.connections == conns, "dropped while paused")
    e = d.error("POST", "/api/v1/vms/a1/snapshots", 409, "INVALID_STATE",
                {"name": "paused", "quiesce": True})
    check("is not running" in e["error"]["message"], e)
    d.ok("POST", "/api/v1/vms/a1/resume", {})

    # ---- quiesced snapshots -------------------------------------------------
    agent.log.clear()
    s = d.ok("POST", "/api/v1/vms/a1/snapshots", {"name": "s1",
                                                   "quiesce": True},
             status=201)
    validate("POST", "/api/v1/vms/a1/snapshots", 201, s)
    check(s["quiesced"] is True, s)
    check([x[0] for x in agent.log] == ["freeze", "thaw"], agent.log)
    # The second snapshot fails (injected): thawed all the same.
    agent.log.clear()
    e = d.error("POST", "/api/v1/vms/a1/snapshots", 502, "IO_ERROR",
                {"name": "s2", "quiesce": True})
    check("the disk is full" in e["error"]["message"], e)
    check([x[0] for x in agent.log] == ["freeze", "thaw"], agent.log)
    e = d.error("POST", "/api/v1/vms/b1/snapshots", 409, "INVALID_STATE",
                {"name": "s3", "quiesce": True})
    check("agent not connected on vm 'b1'" in e["error"]["message"], e)
    check(d.ok("GET", "/api/v1/vms/b1/snapshots")["snapshots"] == [],
          "a refused quiesced snapshot was taken")
    s = d.ok("POST", "/api/v1/vms/b1/snapshots", {"name": "s4",
                                                   "quiesce": "try"},
             status=201)
    check(s["quiesced"] is False, s)
    s = d.ok("POST", "/api/v1/vms/a1/snapshots", {"name": "s5"}, status=201)
    check(s["quiesced"] is False and [x[0] for x in agent.log] ==
          ["freeze", "thaw"], s, agent.log)
    d.error("POST", "/api/v1/vms/a1/snapshots", 400, "INVALID_ARGUMENT",
            {"name": "s6", "quiesce": "yes"})

    # ---- gRPC -------------------------------------------------------------------
    ch = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{RPC_PORT}"),
                                _Bearer(d.token()))
    node = npb.node_grpc.NodeServiceStub(ch)
    N = npb.node
    g = node.GetAgent(N.VmRequest(vm="a1"))
    check(g.state == N.AGENT_STATE_CONNECTED and g.version == "9.8.7" and
          list(g.capabilities) == ["ping", "exec", "freeze"] and
          g.telemetry.hostname == "fake", g)
    g = node.GetAgent(N.VmRequest(vm="a1", live=True))
    check(g.state == N.AGENT_STATE_CONNECTED and g.telemetry.hostname ==
          "fake", g)
    node.AgentPing(N.VmRequest(vm="a1"))
    expect_status(grpc.StatusCode.FAILED_PRECONDITION, node.AgentPing,
                  N.VmRequest(vm="b1"))
    vm = node.GetVM(N.VmRequest(vm="a1"))
    check(vm.agent.state == N.AGENT_STATE_CONNECTED and
          vm.agent.version == "9.8.7" and
          list(vm.info.ips) == ["192.0.2.10", "2001:db8::10"], vm)
    x = node.AgentExec(N.AgentExecRequest(vm="a1", argv=["/bin/binary"]))
    check(x.exit_status == 3 and x.stdout == b"\x00\xff\xfe" and
          x.stdout_truncated, x)
    err = expect_status(grpc.StatusCode.PERMISSION_DENIED, node.AgentExec,
                        N.AgentExecRequest(vm="a1", argv=["/bin/rm"]))
    check("/bin/rm is not on the allowlist" in err.details(), err.details())
    err = expect_status(grpc.StatusCode.FAILED_PRECONDITION, node.AgentExec,
                        N.AgentExecRequest(vm="b1", argv=["/bin/echo"]))
    check("agent not connected on vm 'b1'" in err.details(), err.details())
    expect_status(grpc.StatusCode.INVALID_ARGUMENT, node.AgentExec,
                  N.AgentExecRequest(vm="a1", argv=["echo"]))
    expect_status(grpc.StatusCode.DEADLINE_EXCEEDED, node.AgentExec,
                  N.AgentExecRequest(vm="a1", argv=["/bin/slow"],
                                     timeout_ms=100))
    wait_for(lambda: node.GetAgent(N.VmRequest(vm="a1")).state ==
             N.AGENT_STATE_CONNECTED and
             node.AgentExec(N.AgentExecRequest(
                 vm="a1", argv=["/bin/echo", "x"])).stdout == b"x\n",
             "the agent answering again (gRPC)")
    w = node.AgentWriteFile(N.AgentWriteFileRequest(vm="a1", path="/data/g",
                                                    data=b"\x00gr"))
    check(w.size == 3 and agent.files["/data/g"] == b"\x00gr", w)
    f = node.AgentReadFile(N.AgentReadFileRequest(vm="a1", path="/data/g"))
    check(f.data == b"\x00gr" and f.size == 3 and f.eof, f)
    expect_status(grpc.StatusCode.NOT_FOUND, node.AgentReadFile,
                  N.AgentReadFileRequest(vm="a1", path="/none"))
    expect_status(grpc.StatusCode.INVALID_ARGUMENT, node.AgentWriteFile,
                  N.AgentWriteFileRequest(vm="a1", path="/x",
                                          data=b"x" * ((1 << 20) - 8191)))
    check(node.AgentTimeSync(N.VmRequest(vm="a1")).offset_ns == 42, "sync")
    agent.log.clear()
    s = node.CreateSnapshot(N.CreateSnapshotRequest(
        vm="a1", name="g1", quiesce=N.QUIESCE_YES))
    check(s.quiesced and [x[0] for x in agent.log] == ["freeze", "thaw"], s,
          agent.log)
    expect_status(grpc.StatusCode.FAILED_PRECONDITION, node.CreateSnapshot,
                  N.CreateSnapshotRequest(vm="b1", name="g2",
                                          quiesce=N.QUIESCE_YES))
    s = node.CreateSnapshot(N.CreateSnapshotRequest(
        vm="b1", name="g3", quiesce=N.QUIESCE_TRY))
    check(not s.quiesced, s)

    # ---- the agent goes: absent, no addresses of its own --------------------
    agent.peer.srv.close()
    agent.peer.conn.shutdown(2)
    wait_for(lambda: d.ok("GET", "/api/v1/vms/a1")["agent"]["state"] ==
             "absent", "absent after the agent went")
    check(d.ok("GET", "/api/v1/vms/a1")["ips"] == [], "stale agent addresses")
    e = d.error("POST", "/api/v1/vms/a1/agent/time-sync", 409,
                "INVALID_STATE", {})
    check(d.proc.poll() is None, "vmhostd died")
    # A clean stop: every call answered and freed (LeakSanitizer would
    # say otherwise), no sanitizer report.
    rc = d.stop()
    log = d.log()
    check(rc == 0 and "Sanitizer" not in log and "runtime error" not in log,
          "vmhostd stopped with", rc, log[-3000:])
