#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The service manager's notify protocol (sd_notify(3), Type=notify):
vmhostd sends STATUS= while it opens its instances, READY=1 with a STATUS=
once it serves, RELOADING=1 + MONOTONIC_USEC= then READY=1 around a SIGHUP,
STOPPING=1 with EXTEND_TIMEOUT_USEC= when it drains; on a socket path and
on an abstract one (@name).  The socket is the test's own: this machine
has no systemd as PID 1.  A daemon that cannot start says why in
STATUS=; an unusable NOTIFY_SOCKET is refused with a warning."""
import os
import signal
import socket
import subprocess

from vmhtest import Daemon, check, fail, mocks


class Listener:
    """The manager's end: an AF_UNIX datagram socket."""

    def __init__(self, tmp, abstract):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"vmhtest-notify-{os.getpid()}"
            self.s.bind("\0" + name)
            self.env = "@" + name
        else:
            self.env = os.path.join(tmp, "notify.sock")
            self.s.bind(self.env)
        self.s.settimeout(60)  # only catches a hang
        self.seen = []

    def until(self, key):
        """Messages up to and including the first one holding key=...;
        returns that message as a dict."""
        while True:
            try:
                data = self.s.recv(4096).decode()
            except socket.timeout:
                fail(f"no {key}= message; got {self.seen}")
            self.seen.append(data)
            fields = dict(line.split("=", 1) for line in data.split("\n")
                          if line)
            if key in fields:
                return fields


def run(abstract):
    d = Daemon(mocks())
    lis = Listener(d.tmp, abstract)
    os.environ["NOTIFY_SOCKET"] = lis.env
    with d:
        del os.environ["NOTIFY_SOCKET"]
        ready = lis.until("READY")
        check(ready["READY"] == "1", ready)
        check(ready.get("STATUS", "").startswith("serving: 4 instances"),
              "the READY message carries the status:", ready)
        check(any(m.startswith("STATUS=opening 4 instances")
                  for m in lis.seen[:-1]),
              "a STATUS= before READY=1:", lis.seen)

        d.proc.send_signal(signal.SIGHUP)
        rel = lis.until("RELOADING")
        check(int(rel.get("MONOTONIC_USEC", "0")) > 0, rel)
        check(lis.until("READY")["READY"] == "1", lis.seen)

        d.proc.send_signal(signal.SIGTERM)
        stop = lis.until("STOPPING")
        check(stop.get("STATUS", "").startswith("draining"), stop)
        # drain_timeout defaults to 30 s: 45 s with the margin.
        check(stop.get("EXTEND_TIMEOUT_USEC") == "45000000", stop)
        check(d.stop() == 0, "exit 0 after the drain")


run(abstract=False)
run(abstract=True)

# A daemon that cannot start tells the manager why: a plugin that is not
# there.
d = Daemon(mocks().replace("plugin: mock }", "plugin: nosuch }", 1))
lis = Listener(d.tmp, abstract=False)
env = dict(os.environ, NOTIFY_SOCKET=lis.env)
with open(d.logfile, "w") as log:
    rc = subprocess.run([os.environ.get("VMHOSTD", "vmhostd"), "--config",
                         d.config], env=env, stdout=log, stderr=log,
                        timeout=120).returncode
check(rc != 0, "the daemon started anyway:", d.log())
msgs = []
lis.s.settimeout(0.5)
try:
    while True:
        msgs.append(lis.s.recv(4096).decode())
except socket.timeout:
    pass
check(any(m.startswith("STATUS=cannot start: ") for m in msgs),
      "no STATUS=cannot start:", msgs, d.log())
check(not any("READY=1" in m for m in msgs), "READY=1 from a failed start:",
      msgs)

# A NOTIFY_SOCKET that is neither a path nor @name is refused, loudly, and
# the daemon serves on.
d = Daemon(mocks())
os.environ["NOTIFY_SOCKET"] = "relative/notify.sock"
with d:
    del os.environ["NOTIFY_SOCKET"]
    check("NOTIFY_SOCKET 'relative/notify.sock' is not an absolute path"
          in d.log(), d.log())
    check(d.stop() == 0, "exit 0")
