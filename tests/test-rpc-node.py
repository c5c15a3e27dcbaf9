#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Interoperability with a second stock client: Node's @grpc/grpc-js with
@grpc/proto-loader (tests/rpc-node-smoke.js).  The npm packages are
installed by this test into the build tree (tests/node-grpc/), once."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpctest import PROTO_DIR, SRCDIR, RpcDaemon, check, skip  # noqa: E402
from vmhtest import BUILDDIR  # noqa: E402

for cmd in ("node", "npm"):
    if not shutil.which(cmd):
        skip(f"{cmd} is not installed")
mods = os.path.join(BUILDDIR, "node-grpc")
if not os.path.isdir(os.path.join(mods, "node_modules", "@grpc", "grpc-js")):
    os.makedirs(mods, exist_ok=True)
    r = subprocess.run(["npm", "install", "--prefix", mods, "--no-audit",
                        "--no-fund", "--silent", "@grpc/grpc-js@1",
                        "@grpc/proto-loader@0.7"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        skip("npm could not install @grpc/grpc-js: " + r.stderr[-500:])

with RpcDaemon() as d:
    env = dict(os.environ, NODE_PATH=os.path.join(mods, "node_modules"))
    r = subprocess.run(["node", os.path.join(SRCDIR, "rpc-node-smoke.js"),
                        PROTO_DIR, f"127.0.0.1:{d.port}", d.token()],
                       capture_output=True, text=True, timeout=60, env=env)
    check(r.returncode == 0 and "ok" in r.stdout, "node client:", r.stdout,
          r.stderr)
    check(d.stop() == 0)
print("ok")
