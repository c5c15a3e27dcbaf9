#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmhost-agent listening for the host (agent.yaml transport: vsock /
unix-listen) behind the Cloud Hypervisor plugin's vsock channel.

This machine has no vhost-vsock device for a guest, so the VMM is the fake
one (tests/fakech.py): it takes "CONNECT 1024" on the VM's vsock socket and
forwards to <vsock socket>.guest-1024, where the real agent (the -dev
build) listens with transport unix-listen, as it listens on AF_VSOCK port
1024 in a real guest.  Checked:
- vmhostd's guest front-end connects through the VMM to the agent (state
  connected, its version; exec answered by the agent);
- a newer host connection replaces the one served (the host reconnected):
  a client of the test takes over, then vmhostd connects again;
- the agent outlives the host's connections and a listener file left
  behind by an earlier run;
- transport: vsock binds AF_VSOCK port N (the port is then taken: a second
  bind fails with EADDRINUSE), and config errors are named."""
import errno
import os
import socket
import subprocess
import tempfile
import time

import chtest
from agenttest import HostEnd, agent_binary, guest_metric, pb
from vmhtest import (Daemon, check, lsan_without_tls, skip_unsupported,
                     vm_spec, wait_for)

lsan_without_tls()
ctl = chtest.setup()
if chtest.REAL:
    skip_unsupported("the agent behind a real VMM's vsock needs a guest")
AGENT = agent_binary()
GUEST = """  - name: guest
    plugin: guest
    retry_ms: 50
    timeout_ms: 2000
    ping_ms: 100
    telemetry_ms: 0
    rescan_ms: 200
"""
tmp = tempfile.mkdtemp(prefix="vmhagent-vsock.")


def start_agent(yaml):
    cfg = os.path.join(tmp, "agent.yaml")
    with open(cfg, "w") as f:
        f.write(yaml)
    log = open(os.path.join(tmp, "agent.log"), "w+")
    p = subprocess.Popen([AGENT, "--config", cfg], stderr=log)
    return p, log


def stop_agent(p, log):
    p.terminate()
    p.wait(timeout=60)
    log.seek(0)
    text = log.read()
    log.close()
    check(p.returncode == 0, "agent exit", p.returncode, text)
    return text


def metric(d, name):
    return guest_metric(d.ok(op="metrics")["text"], name)


def agent_state(d):
    return d.ok(op="vm_get", vm="v1")["vms"][0].get("agent", {})


# ---- config errors ------------------------------------------------------------
for bad, words in (("transport: tcp\n", "not device, vsock or unix-listen"),
                   ("transport: vsock\nvsock_port: 0\n", "vsock_port"),
                   ("vsock_port: 4294967295\n", "vsock_port")):
    cfg = os.path.join(tmp, "bad.yaml")
    with open(cfg, "w") as f:
        f.write(bad)
    r = subprocess.run([AGENT, "--config", cfg], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 2 and words in r.stderr, bad, r.returncode, r.stderr)

# ---- AF_VSOCK: the agent binds the port ------------------------------------
try:
    probe = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    probe.close()
    have_vsock = True
except OSError as e:
    have_vsock = False
    print("no AF_VSOCK here (", e, "): the vsock bind is not checked")
if have_vsock:
    port = 40000 + os.getpid() % 20000
    p, log = start_agent(f"transport: vsock\nvsock_port: {port}\n")
    taken = False
    for _ in range(600):
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        try:
            s.bind((socket.VMADDR_CID_ANY, port))
        except OSError as e:
            check(e.errno == errno.EADDRINUSE, "bind:", e)
            taken = True
        s.close()
        if taken:
            break
        time.sleep(0.1)
    check(taken, f"the agent does not listen on vsock port {port}")
    text = stop_agent(p, log)
    check(f"serving vsock port {port}" in text, text)

# ---- behind the (fake) Cloud Hypervisor's vsock ---------------------------
d = Daemon(chtest.config(), frontends=GUEST)
with chtest.running(d, ctl):
    vm = d.ok(op="vm_create", spec=vm_spec("v1", nics=0,
                                           guest_channel=True))["vms"][0]
    ch = vm["channel"]
    check(ch["type"] == "vsock" and ch["port"] == 1024, ch)
    listen = ch["path"] + ".guest-1024"
    # A socket file an earlier agent left: replaced, not an error.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(listen)
    stale.close()
    p, log = start_agent(f"transport: unix-listen\ndevice: {listen}\n"
                         "exec:\n  allow: [/bin/echo]\n")
    try:
        wait_for(lambda: metric(d, "agents_connected") == 1 and
                 agent_state(d).get("state") == "connected",
                 "vmhostd connected to the listening agent through the VMM")
        check(agent_state(d).get("version"), agent_state(d))
        connects = metric(d, "connects_total")

        # A newer host connection (through the VMM too) replaces vmhostd's.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(60)
        c.connect(ch["path"])
        c.sendall(b"CONNECT 1024\n")
        f = c.makefile("rb")
        check(f.readline().startswith(b"OK "), "the VMM's handshake")
        h = HostEnd(sock=c)
        r = h.call(pb.Request(hello=pb.HelloRequest(version=1)))
        check(r.hello.version == 1 and "exec" in r.hello.capabilities, r)
        r = h.call(pb.Request(exec=pb.ExecRequest(
            argv=["/bin/echo", "over", "vsock"])))
        check(r.exec.stdout == b"over vsock\n", r)
        # vmhostd lost its connection and makes a new one, which replaces
        # the test's: the test's ends.
        wait_for(lambda: metric(d, "connects_total") > connects,
                 "vmhostd reconnected")
        wait_for(lambda: agent_state(d).get("state") == "connected",
                 "vmhostd's agent connected again")
        c.settimeout(60)
        rest = c.recv(1 << 16)
        while rest:
            rest = c.recv(1 << 16)
        c.close()
    finally:
        text = stop_agent(p, log)
    check(f"listening on {listen}" in text and
          "the older connection closed" in text, text)
    check(not os.path.exists(listen), "the agent left its socket behind")
    wait_for(lambda: agent_state(d).get("state") != "connected",
             "vmhostd saw the agent go")
print("ok")
