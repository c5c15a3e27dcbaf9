#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: vmhostd's gRPC front-end against a minimal C++ gRPC server
(tests/bench/rpc-ref-server.cc: libgrpc++'s callback API answering the
same message bytes), over cleartext HTTP/2 and over TLS (ALPN h2, the
same certificate for both), driven by h2load with the same request, side
by side in one run.

    tests/bench/rpc-h2load.py [--requests N] [--clients C] [--streams M]
        [--runs R] [--build NAME=DIR]...

Run it by hand on a build without --enable-sanitizers (numbers from an
ASan build mean nothing), from the build tree: it starts core/vmhostd
with the plugins built there, builds the reference with g++ and
pkg-config grpc++ (libgrpc++-dev) into a temporary directory, and needs
h2load (nghttp2-client) and python3-grpcio (the stubs come from
tests/rpctest.py).  With two or more CPUs each server is pinned to the
last one and h2load to the others.

For each method and server it prints calls per second and the server's
CPU time per call (medians of --runs runs, each server's runs taken in
turn), its context switches per call; once, each server's idle RSS.
`--build NAME=DIR` (repeated) compares build trees side by side, as
rest-h2load.py does.  Methods: GetNodeInfo
(a host_info call into the core) and ListVMs with 100 VMs (the records,
from memory).  The reference only copies bytes: the difference is what
vmhostd's protocol code, core call and protobuf-c encoding cost.
"""
import argparse
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
# The helpers of the REST benchmark (free_port, cpu_s, rss_kb, wait_port,
# pin, make_cert, start_vmhostd).
_spec = importlib.util.spec_from_file_location(
    "rest_h2load", os.path.join(HERE, "rest-h2load.py"))
rb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rb)

METHODS = ["GetNodeInfo", "ListVMs"]


def h2load(url, reqfile, args, cpus, n, auth):
    cmd = ["h2load", "-n", str(n), "-c", str(args.clients), "-m",
           str(args.streams), "-d", reqfile,
           "-H", "content-type: application/grpc", "-H", "te: trailers",
           *auth, url]
    if cpus:
        cmd = ["taskset", "-c", cpus[1]] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"finished in .*?, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded", out)
    if not m or not ok or int(ok.group(1)) != n:
        sys.exit("h2load failed:\n" + out)
    return float(m.group(1))


def run_once(pid, url, reqfile, args, cpus, auth):
    """One h2load run: (CPU us/call, switches/call, calls/s)."""
    c0, s0 = rb.cpu_s(pid), rb.switches(pid)
    rps = h2load(url, reqfile, args, cpus, args.requests, auth)
    return ((rb.cpu_s(pid) - c0) / args.requests * 1e6,
            (rb.switches(pid) - s0) / args.requests, rps)


def compare(servers, url_of, reqfile, args, cpus):
    """Each server (name, pid, auth) on one method, runs interleaved."""
    runs = {name: [] for name, _, _ in servers}
    for name, pid, auth in servers:  # warm up
        h2load(url_of(name), reqfile, args, cpus, min(1000, args.requests),
               auth)
    for _ in range(args.runs):
        for name, pid, auth in servers:
            runs[name].append(run_once(pid, url_of(name), reqfile, args,
                                       cpus, auth))
    med = statistics.median
    for name, _, _ in servers:
        cpu, sw, rps = (med(col) for col in zip(*runs[name]))
        print(f"  {name:8} {rps:10.0f} calls/s  {cpu:8.1f} us CPU/call  "
              f"{sw:5.2f} cs/call", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--build", action="append", type=rb.build_arg)
    args = ap.parse_args()
    for tool in ("h2load", "g++", "pkg-config", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")
    from rpctest import grpc, pb
    cpus = rb.pin()
    tmp = tempfile.mkdtemp(prefix="rpc-bench.")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "grpc++"],
                           capture_output=True, text=True)
    if flags.returncode != 0:
        sys.exit("grpc++ not found (libgrpc++-dev)")
    ref_bin = os.path.join(tmp, "rpc-ref-server")
    subprocess.run(["g++", "-O2", "-o", ref_bin,
                    os.path.join(HERE, "rpc-ref-server.cc")]
                   + flags.stdout.split(), check=True)

    rb.make_cert(tmp)
    builds, refs = [], {}
    try:
        for i, (name, top) in enumerate(args.build or [("vmhostd", TOP)]):
            port, tls = rb.free_port(), rb.free_port()
            proc = rb.start_vmhostd(tmp, "rpc", port, tls, cpus, top, str(i))
            builds.append((name, proc, port, tls))
            rb.wait_port(port)
            auth = rb.use_token(tmp, str(i))
            builds[-1] += (auth,)
            ch = grpc.insecure_channel(f"127.0.0.1:{port}")
            node = pb.node_grpc.NodeServiceStub(ch)
            md = [("authorization", auth[1].split(": ", 1)[1])]
            for j in range(100):
                node.CreateVM(pb.node.CreateVMRequest(
                    spec=pb.node.VmSpec(name=f"vm-{j}", vcpus=1,
                                        memory=1 << 30),
                    no_start=True), metadata=md)
            # The request (an empty message) and each method's answer as
            # bytes for the reference (from the first build).
            if i == 0:
                answers = {
                    "GetNodeInfo": node.GetNodeInfo(
                        pb.node.GetNodeInfoRequest(), metadata=md),
                    "ListVMs": node.ListVMs(pb.node.ListVMsRequest(),
                                            metadata=md),
                }
            ch.close()
        reqfile = os.path.join(tmp, "request")
        with open(reqfile, "wb") as f:
            f.write(b"\0\0\0\0\0")
        for m in METHODS:
            path = os.path.join(tmp, m)
            with open(path, "wb") as f:
                f.write(answers[m].SerializeToString())
            port, tls = rb.free_port(), rb.free_port()
            cmd = [ref_bin, f"127.0.0.1:{port}", path, f"127.0.0.1:{tls}",
                   f"{tmp}/cert.pem", f"{tmp}/key.pem"]
            if cpus:
                cmd = ["taskset", "-c", cpus[0]] + cmd
            refs[m] = (subprocess.Popen(cmd), port, tls)
            rb.wait_port(port)
            rb.wait_port(tls)
        time.sleep(0.5)
        print("idle RSS: " + ", ".join(
            f"{b[0]} {rb.rss_kb(b[1].pid)} kB" for b in builds) +
            f" (100 VMs, every mock plugin, rpc), reference "
            f"{rb.rss_kb(refs[METHODS[0]][0].pid)} kB")
        print(f"h2load -n {args.requests} -c {args.clients} -m {args.streams}"
              f", medians of {args.runs} interleaved runs; servers pinned: "
              f"{cpus[0] if cpus else 'no'}")
        for proto, scheme in (("h2c", "http"), ("TLS", "https")):
            for m in METHODS:
                size = len(answers[m].SerializeToString())
                print(f"{proto} /vmhost.v1.NodeService/{m} ({size} bytes)")
                path = f"/vmhost.v1.NodeService/{m}"
                ref, port, tls = refs[m]
                ports = {b[0]: b[2] if proto == "h2c" else b[3]
                         for b in builds}
                ports["grpc++"] = port if proto == "h2c" else tls
                compare([(b[0], b[1].pid, b[4]) for b in builds] +
                        [("grpc++", ref.pid, [])],
                        lambda name: f"{scheme}://127.0.0.1:{ports[name]}"
                        f"{path}", reqfile, args, cpus)
    finally:
        for p, _, _ in refs.values():
            p.terminate()
            p.wait()
        for b in builds:
            b[1].terminate()
            b[1].wait()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
