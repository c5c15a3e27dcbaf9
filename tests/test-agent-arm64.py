#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The arm64 vmhost-agent (configure --enable-agent-arm64, cross-compiled):
readelf says AArch64, static (no program interpreter, no shared library);
it runs under qemu-aarch64-static (qemu-user-static): --version, and a
frame round trip on a unix socket it connects to (hello, ping, telemetry
saying aarch64, an allowed exec); the REST front-end serves those exact
bytes at /api/v1/agent/linux/arm64 from the directory `make install` puts
them in (agentdistdir/linux/arm64), beside the amd64 one."""
import os
import shutil
import subprocess
import tempfile
import http.client

from agenttest import HostEnd, TOP_BUILDDIR, pb
from resttest import RestDaemon
from vmhtest import check, skip

QEMU = shutil.which("qemu-aarch64-static")
if not QEMU:
    skip("qemu-aarch64-static missing (qemu-user-static)")
for cmd in ("readelf", "file"):
    if not shutil.which(cmd):
        skip(f"{cmd} missing (binutils, file)")
AGENT = os.path.join(TOP_BUILDDIR, "agent", "vmhost-agent-arm64")
check(os.path.exists(AGENT), AGENT, "is not built")
with open(AGENT, "rb") as f:
    BYTES = f.read()


def run(*argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, argv, r.stdout, r.stderr)
    return r.stdout


# ---- what the binary is ------------------------------------------------------
hdr = run("readelf", "-h", AGENT)
check("AArch64" in hdr and "ELF64" in hdr and "EXEC" in hdr, hdr)
progs = run("readelf", "-l", AGENT)
check("INTERP" not in progs, "a program interpreter: not static", progs)
dyn = run("readelf", "-d", AGENT)
check("NEEDED" not in dyn, "shared libraries needed", dyn)
desc = run("file", "-b", AGENT)
check("ARM aarch64" in desc and "statically linked" in desc, desc)

# ---- it runs (under qemu-user) -----------------------------------------------
out = run(QEMU, AGENT, "--version")
check(out.startswith("vmhost-agent ") and out.strip() != "vmhost-agent", out)

tmp = tempfile.mkdtemp(prefix="vmhagent-arm64.")
try:
    cfg = os.path.join(tmp, "agent.yaml")
    with open(cfg, "w") as f:
        f.write("exec:\n  allow: [/bin/echo]\n")
    with HostEnd() as h:
        agent = subprocess.Popen([QEMU, AGENT, "--config", cfg,
                                  "--device", h.path],
                                 stderr=subprocess.PIPE, text=True)
        try:
            h.accept(timeout=120)
            r = h.call(pb.Request(hello=pb.HelloRequest(version=1)))
            check(r.hello.version == 1 and "exec" in r.hello.capabilities and
                  r.hello.agent_version == out.split()[1], r)
            r = h.call(pb.Request(ping=pb.PingRequest()))
            check(r.WhichOneof("body") == "ping", r)
            r = h.call(pb.Request(telemetry=pb.TelemetryRequest()))
            check(r.telemetry.arch == "aarch64" and r.telemetry.kernel, r)
            r = h.call(pb.Request(exec=pb.ExecRequest(
                argv=["/bin/echo", "from", "arm64"], timeout_ms=60000)))
            check(r.exec.exit_status == 0 and
                  r.exec.stdout == b"from arm64\n", r)
            r = h.call(pb.Request(exec=pb.ExecRequest(argv=["/bin/sh"])))
            check(r.error.code == pb.ErrorCode.ERROR_PERMISSION_DENIED, r)
        finally:
            agent.terminate()
            _, err = agent.communicate(timeout=60)
        check(agent.returncode == 0, "exit", agent.returncode, err)
        check("stopped" in err, err)

    # ---- served by the node, as installed ------------------------------------
    dist = os.path.join(tmp, "dist")
    os.makedirs(os.path.join(dist, "linux"))
    shutil.copy(AGENT, os.path.join(dist, "linux", "arm64"))
    shutil.copy(os.path.join(TOP_BUILDDIR, "agent", "vmhost-agent"),
                os.path.join(dist, "linux", "amd64"))
    with RestDaemon(rest=f"    agent:\n      paths: [ {dist} ]\n") as d:
        for arch in ("arm64", "aarch64"):
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
            c.request("GET", f"/api/v1/agent/linux/{arch}")
            resp = c.getresponse()
            body = resp.read()
            c.close()
            check(resp.status == 200 and body == BYTES, arch, resp.status,
                  len(body), len(BYTES))
        got = os.path.join(tmp, "downloaded")
        with open(got, "wb") as f:
            f.write(body)
        os.chmod(got, 0o755)
        check(run(QEMU, got, "--version") == out, "the download runs")
finally:
    shutil.rmtree(tmp, True)
print("ok")
