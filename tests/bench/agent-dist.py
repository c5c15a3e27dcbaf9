#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: the agent's download from vmhostd's REST front-end
(GET /api/v1/agent/linux/ARCH, a file of agent.paths held in memory)
against h2o serving the same file, over cleartext HTTP/2 (h2load's prior
knowledge), side by side in one run; and GET /api/v1/agent/install.sh
(made per request) against h2o serving a copy of the script.

    tests/bench/agent-dist.py [--builddir DIR] [--requests N] [--runs R]

Run it on a build without --enable-sanitizers.  The file served is the
static agent of that build (agent/vmhost-agent), or --file.  Figures per
route and server, medians over --runs: server CPU per request, requests
per second, p50/p99 latency (rest-h2load.py's measure), for h2load
-c 10 -m 1 and -c 1 -m 1; then vmhostd's RSS."""
import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
rh = importlib.import_module("rest-h2load")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", default=os.path.join(HERE, "..", ".."))
    ap.add_argument("--file", help="the file to serve (default: the agent)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for tool in ("h2o", "h2load"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")
    build = os.path.abspath(args.builddir)
    src = args.file or os.path.join(build, "agent", "vmhost-agent")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
    tmp = tempfile.mkdtemp(prefix="vmhbench.")
    os.chmod(tmp, 0o755)  # h2o started as root serves as nobody
    docs = f"{tmp}/docs"
    os.makedirs(f"{docs}/linux")
    shutil.copy(src, f"{docs}/linux/{arch}")
    os.chmod(f"{docs}/linux/{arch}", 0o644)
    size = os.path.getsize(f"{docs}/linux/{arch}")
    cpus = rh.pin()
    hport = rh.free_port()
    vmhostd = benchlib.Vmhostd(build, log_level="warn",
                               cpu=cpus[0] if cpus else None,
                               rest_extra=f"""    agent:
      paths: [ {docs} ]
      requests_per_minute: 600000
      burst: 100000
""")
    port = vmhostd.port
    base = f"http://127.0.0.1:{port}"
    # The script as vmhostd makes it, for h2o to serve as a file.
    subprocess.run(["curl", "-sf", "-o", f"{docs}/install.sh",
                    f"{base}/api/v1/agent/install.sh"], check=True)
    os.chmod(f"{docs}/install.sh", 0o644)
    h2o = benchlib.start_h2o(tmp, docs, hport, cpus[0] if cpus else None)
    try:
        print(f"agent linux/{arch}: {size} bytes; vmhostd idle RSS "
              f"{rh.rss_kb(vmhostd.pid)} kB, h2o {rh.rss_kb(h2o.pid)} kB")
        routes = ((f"/api/v1/agent/linux/{arch}", f"/linux/{arch}"),
                  ("/api/v1/agent/install.sh", "/install.sh"))
        for ours, theirs in routes:
            for shape in ((10, 1), (1, 1)):
                print(f"  {ours}  -c {shape[0]} -m {shape[1]}")
                rh.measure("vmhostd", vmhostd.pid, base + ours, args, shape,
                           cpus, tmp)
                rh.measure("h2o", h2o.pid, f"http://127.0.0.1:{hport}" +
                           theirs, args, shape, cpus, tmp)
        print(f"vmhostd RSS after the runs: {rh.rss_kb(vmhostd.pid)} kB")
    finally:
        vmhostd.stop()
        h2o.terminate()
        h2o.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
