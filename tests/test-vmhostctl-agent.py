#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmhostctl vm agent exec / file get / file put against a real vmhostd
(mock plugins, REST, guest front-end) and a fake agent played by this test
on the mock VM's channel socket:
- exec: the guest's stdout and stderr (UTF-8 and binary) on vmhostctl's,
  its exit status as vmhostctl's, 124 timed out, 128+N signalled, cut
  streams said on stderr, --stdin bytes and --timeout reaching the agent,
  -o json the API's answer, a program the agent refuses: exit 6 with its
  message, no agent: exit 4, nothing after --: exit 2;
- file get: bytes as they are (also bytes that parse as JSON), a file
  larger than one read taken in several (offsets), -o FILE written whole,
  and not at all when a read fails half-way (the file left as it was);
- file put: bytes as they are with --mode, - for standard input, a file
  over the channel's cap refused before anything is sent."""
import json
import os
import subprocess
import tempfile

from agenttest import Peer, answer_properly, pb as apb
from ctltest import Ctl, daemon_token
from resttest import RestDaemon, validate
from vmhtest import check, mocks, vm_spec, wait_for

GUEST = """  - name: guest
    plugin: guest
    retry_ms: 50
    timeout_ms: 2000
    ping_ms: 200
    telemetry_ms: 0
    rescan_ms: 200
"""
CHUNK = 1000  # the most this fake agent reads at once


class Agent:
    """Answers exec by argv[0] and files from self.files; logs requests."""

    def __init__(self, path):
        self.files = {}
        self.log = []
        self.peer = Peer(path, self.serve)

    def serve(self, p):
        while (req := p.read_request()) is not None:
            kind = req.WhichOneof("body")
            if answer_properly(p, req, "1.0", ["ping", "exec"]):
                pass
            elif kind == "exec":
                self.log.append(("exec", list(req.exec.argv),
                                 req.exec.timeout_ms, req.exec.stdin))
                p.answer(req, **self.exec(req.exec))
            elif kind == "file_read":
                self.read(p, req)
            elif kind == "file_write":
                w = req.file_write
                self.files[w.path] = w.data
                self.log.append(("write", w.path, w.mode))
                p.answer(req, file_write=apb.FileWriteResponse(
                    size=len(w.data)))

    @staticmethod
    def exec(x):
        argv = list(x.argv)
        if argv[0] == "/bin/echo":
            return {"exec": apb.ExecResponse(
                exit_status=0, stdout=(" ".join(argv[1:]) + "\n").encode(),
                stderr=b"to stderr\n")}
        if argv[0] == "/bin/cat":
            return {"exec": apb.ExecResponse(exit_status=0, stdout=x.stdin)}
        if argv[0] == "/bin/fail":
            return {"exec": apb.ExecResponse(
                exit_status=3, stdout=b"\x00\xff\xfe", stdout_truncated=True)}
        if argv[0] == "/bin/sleep":
            return {"exec": apb.ExecResponse(exit_status=-1, timed_out=True)}
        if argv[0] == "/bin/killed":
            return {"exec": apb.ExecResponse(exit_status=-1, signal=9)}
        return {"error": apb.Error(
            code=apb.ErrorCode.ERROR_PERMISSION_DENIED,
            message=f"{argv[0]} is not on the allowlist")}

    def read(self, p, req):
        r = req.file_read
        self.log.append(("read", r.path, r.offset))
        data = self.files.get(r.path)
        if data is None or (r.path == "/broken" and r.offset > 0):
            p.answer(req, error=apb.Error(
                code=apb.ErrorCode.ERROR_NOT_FOUND,
                message=f"{r.path}: no such file"))
            return
        part = data[r.offset:r.offset + min(CHUNK, r.max_bytes or CHUNK)]
        p.answer(req, file_read=apb.FileReadResponse(
            data=part, size=len(data), eof=r.offset + len(part) >= len(data)))


tmp = tempfile.mkdtemp(prefix="vmhctl-agent.")
with RestDaemon(rest=GUEST, body=mocks()) as d:
    ctl = Ctl(d.base, token=daemon_token(d))

    def raw(*args, stdin=b""):
        """vmhostctl with bytes in and out: (rc, stdout, stderr)."""
        r = subprocess.run(ctl.argv(args), input=stdin, capture_output=True,
                           env=ctl.env, timeout=120)
        ctl.ran.add(" ".join(a for a in args if not a.startswith("-")))
        check(b"AddressSanitizer" not in r.stderr and
              b"runtime error" not in r.stderr, args, r.stderr)
        return r.returncode, r.stdout, r.stderr

    vm = d.ok("POST", "/api/v1/vms", vm_spec("g1", nics=0,
                                              guest_channel=True), status=201)
    d.ok("POST", "/api/v1/vms", vm_spec("g2", nics=0, guest_channel=True),
         status=201)  # nobody listens on its channel
    agent = Agent(vm["channel"]["path"])
    wait_for(lambda: d.ok("GET", "/api/v1/vms/g1/agent")["state"] ==
             "connected", "the agent connected")

    # ---- exec -------------------------------------------------------------
    rc, out, err = raw("vm", "agent", "exec", "g1", "--", "/bin/echo", "héllo",
                       "--not-an-option")
    check(rc == 0 and out == "héllo --not-an-option\n".encode() and
          err == b"to stderr\n", rc, out, err)
    check(agent.log[-1][:2] == ("exec", ["/bin/echo", "héllo",
                                         "--not-an-option"]), agent.log[-1])
    rc, out, err = raw("vm", "agent", "exec", "g1", "--", "/bin/fail")
    check(rc == 3 and out == b"\x00\xff\xfe" and b"stdout was cut" in err,
          rc, out, err)
    rc, out, err = raw("vm", "agent", "exec", "g1", "--timeout", "7", "--",
                       "/bin/sleep", "100")
    check(rc == 124 and b"timed out" in err, rc, err)
    check(agent.log[-1][2] == 7000, "timeout_ms sent:", agent.log[-1])
    rc, out, err = raw("vm", "agent", "exec", "g1", "--", "/bin/killed")
    check(rc == 128 + 9 and b"signal 9" in err, rc, err)
    # --stdin: bytes (not UTF-8) from a file and from standard input.
    src = os.path.join(tmp, "in.bin")
    with open(src, "wb") as f:
        f.write(b"\x01\x02\xff")
    rc, out, _ = raw("vm", "agent", "exec", "g1", "--stdin", src, "--",
                     "/bin/cat")
    check(rc == 0 and out == b"\x01\x02\xff", rc, out)
    rc, out, _ = raw("vm", "agent", "exec", "g1", "--stdin", "-", "--",
                     "/bin/cat", stdin=b"piped\n")
    check(rc == 0 and out == b"piped\n", rc, out)
    # -o json: the API's answer, and still the guest's status.
    rc, out, _ = raw("vm", "agent", "exec", "g1", "-o", "json", "--",
                     "/bin/fail")
    res = json.loads(out)
    validate("POST", "/api/v1/vms/g1/agent/exec", 200, res)
    check(rc == 3 and res["exit_status"] == 3 and
          res["stdout_encoding"] == "base64" and res["stdout_truncated"],
          rc, res)
    # Refusals: the agent's (6, its message), no agent (4), usage (2).
    rc, _, err = raw("vm", "agent", "exec", "g1", "--", "/bin/rm", "-rf", "/")
    check(rc == 6 and b"/bin/rm is not on the allowlist" in err, rc, err)
    rc, _, err = raw("vm", "agent", "exec", "g2", "--", "/bin/echo")
    check(rc == 4 and b"agent not connected on vm 'g2'" in err, rc, err)
    rc, _, err = raw("vm", "agent", "exec", "g1", "--")
    check(rc == 2 and b"nothing after --" in err, rc, err)
    rc, _, err = raw("vm", "agent", "exec", "g1", "--", "echo")
    check(rc == 2 and b"absolute path" in err, rc, err)
    rc, _, err = raw("vm", "agent", "exec", "g1", "--timeout", "0", "--",
                     "/bin/echo")
    check(rc == 2 and b"--timeout" in err, rc, err)

    # ---- file put ------------------------------------------------------------
    big = bytes(range(256)) * 20  # 5120 bytes: six reads of the fake
    src = os.path.join(tmp, "big.bin")
    with open(src, "wb") as f:
        f.write(big)
    res = json.loads(ctl.ok("vm", "agent", "file", "put", "g1", "/data/big",
                            src, "--mode", "0600", "-o", "json"))
    check(res == {"size": len(big)}, res)
    check(agent.files["/data/big"] == big and
          agent.log[-1] == ("write", "/data/big", 0o600), agent.log[-1])
    rc, out, _ = raw("vm", "agent", "file", "put", "g1", "/data/json", "-",
                     stdin=b'{"not": "parsed"}')
    check(rc == 0 and agent.files["/data/json"] == b'{"not": "parsed"}',
          rc, out)
    huge = os.path.join(tmp, "huge.bin")
    with open(huge, "wb") as f:
        f.write(b"x" * (1040384 + 1))
    writes = len([e for e in agent.log if e[0] == "write"])
    rc, _, err = raw("vm", "agent", "file", "put", "g1", "/data/huge", huge)
    check(rc == 2 and b"over 1040384 bytes" in err, rc, err)
    check(len([e for e in agent.log if e[0] == "write"]) == writes,
          "a refused put was sent")
    rc, _, err = raw("vm", "agent", "file", "put", "g1", "/data/x", src,
                     "--mode", "999")
    check(rc == 1 and b"mode" in err, rc, err)

    # ---- file get ------------------------------------------------------------
    rc, out, _ = raw("vm", "agent", "file", "get", "g1", "/data/big")
    check(rc == 0 and out == big, rc, len(out))
    offsets = [e[2] for e in agent.log if e[:2] == ("read", "/data/big")]
    check(offsets == list(range(0, len(big), CHUNK)), offsets)
    rc, out, _ = raw("vm", "agent", "file", "get", "g1", "/data/json")
    check(rc == 0 and out == b'{"not": "parsed"}', rc, out)
    dst = os.path.join(tmp, "out.bin")
    ctl.ok("vm", "agent", "file", "get", "g1", "/data/big", "-o", dst)
    with open(dst, "rb") as f:
        check(f.read() == big, "-o FILE")
    # A read that fails half-way: nothing written, the old file kept.
    agent.files["/broken"] = b"y" * 2500
    rc, _, err = raw("vm", "agent", "file", "get", "g1", "/broken", "--out",
                     dst)
    check(rc == 3 and b"no such file" in err, rc, err)
    with open(dst, "rb") as f:
        check(f.read() == big, "a failed get touched -o FILE")
    check(sorted(os.listdir(tmp)) == ["big.bin", "huge.bin", "in.bin",
                                      "out.bin"], os.listdir(tmp))
    rc, _, err = raw("vm", "agent", "file", "get", "g1", "/nope")
    check(rc == 3 and b"/nope: no such file" in err, rc, err)
    rc, _, err = raw("vm", "agent", "file", "get", "g1", "relative")
    check(rc == 1 and b"absolute" in err, rc, err)

    # The man page and the completion know the new commands.
    comp = ctl.ok("completion", "bash")
    check('"vm agent file")' in comp and "--max-output" in comp, "completion")
print("ok")
