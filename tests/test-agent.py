#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmhost-agent on this machine, on a unix socket the test listens on:
handshake, ping, telemetry against what this machine has, exec (allowed,
refused, timed out, output capped, stdin), files (write then read back,
path policy, symlinks out, caps), the requests its config disables,
garbage and undecodable frames, reconnection, config errors.  Freeze,
shutdown and the clock are refused by config here (they would act on this
machine); the real guest test (test-guest-tcg.py) exercises them."""
import os
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agenttest import HostEnd, agent_binary, frame, pb  # noqa: E402
from vmhtest import check, fail  # noqa: E402

E = pb.ErrorCode
work = tempfile.mkdtemp(prefix="vmhagent-test.")
rdir = os.path.join(work, "read")
wdir = os.path.join(work, "write")
os.makedirs(rdir)
os.makedirs(wdir)
with open(os.path.join(rdir, "hello.txt"), "w") as f:
    f.write("hello from the guest\n")
os.symlink("/etc/passwd", os.path.join(rdir, "out-link"))
os.symlink("/etc", os.path.join(rdir, "out-dir"))
conf = os.path.join(work, "agent.yaml")
with open(conf, "w") as f:
    f.write(f"""
exec:
  allow: [/bin/echo, /bin/cat, /bin/false, /bin/sleep, /usr/bin/head]
  timeout_ms: 5000
  max_timeout_ms: 20000
  max_output: 4096
files:
  read: [{rdir}, {wdir}/]
  write: [{wdir}]
  max_bytes: 10000
allow_freeze: false
allow_shutdown: false
allow_time_sync: false
""")


def err(resp, code, what):
    check(resp.HasField("error"), what, "succeeded:", resp)
    check(resp.error.code == code, what, "answered", resp.error)
    check(resp.error.message, what, "has no message")
    check(resp.WhichOneof("body") is None, what, "has a body with its error")
    return resp.error.message


def ok(resp, body, what):
    check(not resp.HasField("error"), what, "failed:", resp.error)
    check(resp.WhichOneof("body") == body, what, "answered", resp)
    return getattr(resp, body)


def execute(h, *argv, **kw):
    return h.call(pb.Request(exec=pb.ExecRequest(argv=list(argv), **kw)))


def read(h, path, **kw):
    return h.call(pb.Request(file_read=pb.FileReadRequest(path=path, **kw)))


def write(h, path, data, **kw):
    return h.call(pb.Request(file_write=pb.FileWriteRequest(
        path=path, data=data, **kw)))


# A config with a typo is refused with its line.
bad = os.path.join(work, "bad.yaml")
with open(bad, "w") as f:
    f.write("exec:\n  alow: [/bin/true]\n")
r = subprocess.run([agent_binary(), "--config", bad], capture_output=True,
                   text=True, timeout=60)
check(r.returncode == 2 and "bad.yaml:2" in r.stderr and "alow" in r.stderr,
      "typo in config:", r.returncode, r.stderr)

with HostEnd() as h:
    agent = subprocess.Popen([agent_binary(), "--config", conf, "--device",
                              h.path], stderr=subprocess.PIPE, text=True)
    try:
        h.accept()
        hello = ok(h.call(pb.Request(hello=pb.HelloRequest(version=1))),
                   "hello", "hello")
        check(hello.version == 1 and hello.agent_version, hello)
        caps = set(hello.capabilities)
        check({"ping", "telemetry", "exec", "file_read", "file_write"} <= caps
              and not {"freeze", "shutdown", "time_sync"} & caps, caps)
        ok(h.call(pb.Request(ping=pb.PingRequest())), "ping", "ping")

        t = ok(h.call(pb.Request(telemetry=pb.TelemetryRequest())),
               "telemetry", "telemetry")
        u = os.uname()
        check(t.hostname == socket.gethostname(), t.hostname)
        check(t.kernel == u.release and t.arch == u.machine, t)
        check(t.cpus == os.cpu_count(), t.cpus)
        check(t.memory_total > t.memory_available > 0, t)
        check(t.uptime_s > 0 and t.os_name, t)
        root = [fs for fs in t.filesystems if fs.mountpoint == "/"]
        check(root and root[0].size >= root[0].used > 0, t.filesystems)
        nics = {n.name: n for n in t.nics}
        for name in os.listdir("/sys/class/net"):
            if name != "lo":
                check(name in nics, name, "missing from", list(nics))
        check("lo" not in nics, "loopback listed")

        x = ok(execute(h, "/bin/echo", "hi", "there"), "exec", "echo")
        check(x.exit_status == 0 and x.stdout == b"hi there\n", x)
        x = ok(execute(h, "/bin/cat", stdin=b"fed in"), "exec", "cat")
        check(x.stdout == b"fed in", x)
        x = ok(execute(h, "/bin/false"), "exec", "false")
        check(x.exit_status == 1 and not x.timed_out, x)
        m = err(execute(h, "/bin/sh", "-c", "id"), E.ERROR_PERMISSION_DENIED,
                "sh")
        check("allowlist" in m, m)
        err(execute(h, "echo", "x"), E.ERROR_INVALID_ARGUMENT, "relative")
        err(execute(h, "/bin/../bin/sh"), E.ERROR_PERMISSION_DENIED, "dotdot")
        x = ok(execute(h, "/bin/sleep", "30", timeout_ms=300), "exec", "sleep")
        check(x.timed_out and x.signal == signal.SIGKILL, x)
        x = ok(execute(h, "/usr/bin/head", "-c", "100000", "/dev/zero"),
               "exec", "head")
        check(x.stdout_truncated and len(x.stdout) == 4096 and
              x.exit_status == 0, len(x.stdout), x.exit_status)
        x = ok(execute(h, "/usr/bin/head", "-c", "100", "/dev/zero",
                       max_output=10), "exec", "head 10")
        check(x.stdout_truncated and len(x.stdout) == 10, x)
        err(execute(h, "/bin/cat", stdin=b"x" * 5000), E.ERROR_TOO_LARGE,
            "stdin cap")

        f = ok(write(h, wdir + "/new.txt", b"written", mode=0o600),
               "file_write", "write")
        check(f.size == 7, f)
        check(os.stat(wdir + "/new.txt").st_mode & 0o777 == 0o600, "mode")
        f = ok(read(h, wdir + "/new.txt"), "file_read", "read back")
        check(f.data == b"written" and f.eof and f.size == 7, f)
        f = ok(read(h, rdir + "/hello.txt", offset=5, max_bytes=5),
               "file_read", "part")
        check(f.data == b" from" and not f.eof, f)
        err(write(h, rdir + "/x", b"no"), E.ERROR_PERMISSION_DENIED,
            "write in a read-only dir")
        err(write(h, wdir + "/../escape", b"no"), E.ERROR_PERMISSION_DENIED,
            "write through ..")
        check(not os.path.exists(work + "/escape"), "escape written")
        err(read(h, rdir + "/out-link"), E.ERROR_PERMISSION_DENIED,
            "symlink out")
        err(read(h, rdir + "/out-dir/passwd"), E.ERROR_PERMISSION_DENIED,
            "symlinked dir out")
        err(read(h, "/etc/passwd"), E.ERROR_PERMISSION_DENIED, "outside")
        err(read(h, "relative"), E.ERROR_INVALID_ARGUMENT, "relative")
        err(read(h, rdir + "/absent"), E.ERROR_NOT_FOUND, "absent")
        err(read(h, rdir), E.ERROR_INVALID_ARGUMENT, "a directory")
        err(write(h, wdir + "/big", b"b" * 10001), E.ERROR_TOO_LARGE, "cap")
        check(not os.path.exists(wdir + "/big"), "big written")
        check(sorted(os.listdir(wdir)) == ["new.txt"], os.listdir(wdir))

        err(h.call(pb.Request(freeze=pb.FreezeRequest())),
            E.ERROR_PERMISSION_DENIED, "freeze")
        err(h.call(pb.Request(shutdown=pb.ShutdownRequest())),
            E.ERROR_PERMISSION_DENIED, "shutdown")
        err(h.call(pb.Request(time_sync=pb.TimeSyncRequest(unix_ns=1))),
            E.ERROR_PERMISSION_DENIED, "time_sync")
        err(h.call(pb.Request()), E.ERROR_UNSUPPORTED, "empty request")

        # Garbage, a lying length, an undecodable frame: the agent skips
        # them and answers the next request.
        h.send(b"garbage" + frame(b"", 1 << 30) + frame(b"\xff\xff\xff"))
        ok(h.call(pb.Request(ping=pb.PingRequest())), "ping", "after garbage")

        # The host goes away and comes back: the agent reconnects.
        h.conn.close()
        h.accept()
        ok(h.call(pb.Request(ping=pb.PingRequest())), "ping", "reconnected")
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            _, log = agent.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            agent.kill()
            fail("the agent did not stop on SIGTERM")
    check(agent.returncode == 0, "agent exit", agent.returncode, log)
    check("dropped a frame" in log, log)
subprocess.run(["rm", "-rf", work])
