#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Creates per second on the mock hypervisor, records on a real disk, for
one or more builds of vmhostd side by side in one run (e.g. main before
the record journal and after).

For each build and each state location (--disk-dir, default /var/tmp: a
real disk here, and /dev/shm) it starts vmhostd (mocks + REST, pinned to CPU 0)
and runs h2bench.c on CPU 1: --vms creates (define+start) over one HTTP/2
connection with --inflight streams open at once, then, on a fresh daemon,
--seq creates one at a time.  It prints VMs/s, the seconds each thousand
took (the last thousand / the first: flat is 1.0) and the journal's syncs
per create (a build without the journal prints "-"), and vmhostd's CPU
time and context switches per create (steadier than VMs/s on a shared
machine).  Medians of --runs, the builds interleaved run by run.

    tests/bench/create-rate.py [--vms 10000] [--inflight 16] [--seq 1000]
                               [--runs 1] [--disk-dir DIR] [--workers N]
                               [--where disk,tmpfs] BUILDDIR...

BUILDDIRs: build trees configured without --enable-sanitizers.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

MOCK_HV = "{ name: hv0, plugin: mock, max_vms: 1000000 }"


def one(builddir, parent, clients, n, inflight, daemon=""):
    """(VMs/s, [seconds per thousand], syncs per create, vmhostd CPU us
    per create, its context switches per create)."""
    d = benchlib.Vmhostd(builddir, parent, MOCK_HV, daemon)
    try:
        c0, s0 = benchlib.cpu_s(d.pid), benchlib.switches(d.pid)
        out = subprocess.run(
            ["taskset", "-c", "1", clients["h2bench"], "127.0.0.1",
             str(d.port), d.token, "create", str(n), str(inflight)],
            capture_output=True, text=True)
        if out.returncode:
            sys.exit("h2bench: " + out.stderr)
        cpu = (benchlib.cpu_s(d.pid) - c0) / n * 1e6
        sw = (benchlib.switches(d.pid) - s0) / n
        lines = out.stdout.strip().splitlines()
        thousands = [float(x) for x in lines[0].split()] if len(lines) > 1 \
            else []
        wall = float(lines[-1].split()[0])
    finally:
        syncs, frames = d.stop()
    return n / wall, thousands, (syncs / n if frames else None), cpu, sw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=10000)
    ap.add_argument("--inflight", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--disk-dir", default=None)
    ap.add_argument("--workers", type=int, default=0,
                    help="daemon.workers (default: vmhostd's, 8)")
    ap.add_argument("--where", default="disk,tmpfs")
    ap.add_argument("builddirs", nargs="+")
    args = ap.parse_args()
    builds = [os.path.abspath(b) for b in args.builddirs]
    disk = args.disk_dir or "/var/tmp"
    print(f"creates on the mock hypervisor over one HTTP/2 connection; "
          f"vmhostd on CPU 0, client on CPU 1; median of {args.runs}")
    with tempfile.TemporaryDirectory() as tmp:
        clients = benchlib.build_clients(tmp, (("h2bench", "libnghttp2"),))
        daemon = f"  workers: {args.workers}\n" if args.workers else ""
        for where, parent in (("disk", disk), ("tmpfs", "/dev/shm")):
            if where not in args.where.split(","):
                continue
            # Run by run through every build: all see the same load.
            par = {b: [] for b in builds}
            seq = {b: [] for b in builds}
            for _ in range(args.runs):
                for b in builds:
                    par[b].append(one(b, parent, clients, args.vms,
                                      args.inflight, daemon))
                    seq[b].append(one(b, parent, clients, args.seq, 1,
                                      daemon))
            for b in builds:
                par_b, seq_b = par[b], seq[b]
                rate = statistics.median(p[0] for p in par_b)
                th = par_b[len(par_b) // 2][1]
                flat = th[-1] / th[0] if len(th) >= 2 else float("nan")
                syncs = par_b[0][2]
                cpu = statistics.median(p[3] for p in par_b)
                sw = statistics.median(p[4] for p in par_b)
                sq = seq_b[0][2]
                print(f"  {where:5} {b}:\n"
                      f"    {args.vms} creates, {args.inflight} in flight: "
                      f"{rate:8.0f} VMs/s; last/first thousand {flat:.2f}x; "
                      f"syncs/create "
                      f"{'-' if syncs is None else f'{syncs:.3f}'}\n"
                      f"      vmhostd CPU {cpu:.0f} us/create, "
                      f"{sw:.1f} context switches/create\n"
                      f"      s per thousand: "
                      + " ".join(f"{t:.3f}" for t in th) + "\n"
                      f"    {args.seq} creates one at a time: "
                      f"{statistics.median(s[0] for s in seq_b):8.0f} VMs/s; "
                      f"syncs/create "
                      f"{'-' if sq is None else f'{sq:.2f}'}",
                      flush=True)


if __name__ == "__main__":
    if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        sys.exit("needs two CPUs and taskset")
    main()
