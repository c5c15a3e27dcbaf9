#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Control path: vmhostd against libvirtd's RPC on the same test driver.

N cycles of define+start / destroy / undefine of a VM without disks or
NICs, side by side in one run, the sides interleaved run by run:

  libvirtd   a private libvirtd (tests/lvguest.py) serving test:///default;
             the client is libvirt-direct.c on
             test+unix:///default?socket=... (libvirt's C API, its RPC)
  vmhostd    vmhostd with the libvirt plugin on test:///default (in
             process) and the REST front-end; the client is h2bench.c, one
             kept-alive cleartext HTTP/2 connection (POST /api/v1/vms,
             POST .../stop {"force": true}, DELETE .../NAME); records on
             the disk (--disk-dir, default /var/tmp: ext4 here), and
             again with the state directory on tmpfs (/dev/shm)
  in-process libvirt-direct.c on test:///default in its own process: what
             the driver alone costs (a floor, not a target)

Daemons are pinned to CPU 0, clients to CPU 1 (taskset; needs 2 CPUs).  The
main figure is each daemon's CPU time per cycle (utime + stime of the
process, all threads, /proc/PID/stat); wall time per cycle beside it.
vmhostd's syncs per cycle come from its journal's counters (logged at exit);
what they cost shows as the difference between disk and tmpfs, beside what a
bare synced 4 KiB write costs in the same directory;
context switches per cycle (all threads of the daemon, /proc/PID/task/*/
status) are the steadier figure when the machine is shared.
Each figure is the median of --runs runs.  Numbers only, never asserted.
With several builds (e.g. main and a branch) each run goes through every
build in turn, so all of them see the same load.

    tests/bench/libvirt-overhead.py [--cycles 1000] [--runs 3]
                                    [--disk-dir DIR] BUILD...

BUILD: a build tree configured without --enable-sanitizers (--builddir
BUILD is accepted too).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
from benchlib import cpu_s  # noqa: E402

LIBVIRT_HV = '{ name: hv0, plugin: libvirt, uri: "test:///default" }'


def run_vmhostd(args, build, clients, parent):
    d = benchlib.Vmhostd(build, parent, LIBVIRT_HV,
                         prefix="vmh-overhead.")
    try:
        c0, s0 = cpu_s(d.pid), benchlib.switches(d.pid)
        out = subprocess.run(
            ["taskset", "-c", "1", clients["h2bench"], "127.0.0.1",
             str(d.port), d.token, "cycle", str(args.cycles)],
            capture_output=True, text=True)
        if out.returncode:
            sys.exit("h2bench: " + out.stderr)
        cpu = cpu_s(d.pid) - c0
        sw = benchlib.switches(d.pid) - s0
        wall, client = map(float, out.stdout.split())
    finally:
        syncs, frames = d.stop()
    return wall, cpu, client, syncs, sw


def run_libvirtd(args, clients, lv):
    uri = f"test+unix:///default?socket={lv.root}/run/libvirt-sock"
    c0, s0 = cpu_s(lv.pid), benchlib.switches(lv.pid)
    out = subprocess.run(["taskset", "-c", "1", clients["libvirt-direct"],
                          uri, str(args.cycles)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit("libvirt-direct over RPC: " + out.stderr)
    cpu = cpu_s(lv.pid) - c0
    sw = benchlib.switches(lv.pid) - s0
    wall, client = map(float, out.stdout.split())
    return wall, cpu, client, 0, sw


def run_inprocess(args, clients):
    out = subprocess.run(["taskset", "-c", "1", clients["libvirt-direct"],
                          "test:///default", str(args.cycles)],
                         capture_output=True, text=True, check=True)
    wall, client = map(float, out.stdout.split())
    return wall, client, client, 0, 0


def synced_write_cpu(d, n=1000, pause=0.0005):
    """CPU seconds one 4 KiB O_DIRECT|O_DSYNC overwrite costs in directory d
    (the journal's durable write, made bare), one every `pause` seconds as
    requests make them: the kernel's and the disk's price per synced write,
    whoever makes it.  (Paced, because a write in a new clock tick changes
    the file's mtime, and ext4 without a journal, as here, then writes the
    inode block too before the sync returns: back-to-back writes cost half
    as much.)  None where d refuses O_DIRECT."""
    import mmap
    import resource
    path = os.path.join(d, f"vmh-synced-write.{os.getpid()}")
    buf = mmap.mmap(-1, 4096)
    buf.write(b"\1" * 4096)
    try:
        with open(path, "wb") as f:
            f.write(b"\0" * (64 * 4096))
            os.fsync(f.fileno())
        fd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC)
    except OSError:
        return None
    try:
        def cpu():
            r = resource.getrusage(resource.RUSAGE_SELF)
            return r.ru_utime + r.ru_stime
        c0 = cpu()
        for i in range(n):
            time.sleep(pause)
            os.pwrite(fd, buf, (i % 64) * 4096)
        return (cpu() - c0) / n
    finally:
        os.close(fd)
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", action="append", default=[])
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--disk-dir", default=None)
    ap.add_argument("builds", nargs="*")
    args = ap.parse_args()
    builds = [os.path.abspath(b) for b in args.builddir + args.builds]
    if not builds:
        ap.error("name at least one build tree")
    disk = args.disk_dir or "/var/tmp"
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        sys.exit("needs two CPUs and taskset")
    benchlib.setup(builds[0])
    import lvguest
    with tempfile.TemporaryDirectory() as tmp:
        clients = benchlib.build_clients(tmp)
        lv = lvguest.Libvirtd(os.path.join(tmp, "libvirtd"))
        lv.start()
        try:
            benchlib.pin_all(lv.pid, 0)
            runs = {"libvirtd": [], "inproc": []}
            for _ in range(args.runs):
                runs["libvirtd"].append(run_libvirtd(args, clients, lv))
                for b in builds:
                    for where, parent in (("disk", disk),
                                          ("tmpfs", "/dev/shm")):
                        runs.setdefault((b, where), []).append(
                            run_vmhostd(args, b, clients, parent))
                runs["inproc"].append(run_inprocess(args, clients))
            bare = synced_write_cpu(disk)
        finally:
            lv.cleanup()
    med = {k: [statistics.median(r[i] for r in v) for i in range(5)]
           for k, v in runs.items()}
    us = 1e6 / args.cycles
    print(f"{args.cycles} cycles define+start / destroy / undefine on the "
          f"libvirt test driver, median of {args.runs} interleaved runs; "
          "daemons on CPU 0, clients on CPU 1; per cycle:")
    print(f"  {'':40} {'wall us':>9} {'daemon CPU us':>14} "
          f"{'client CPU us':>14} {'syncs':>6} {'switches':>8}")
    names = {"libvirtd": "libvirtd RPC (libvirt C API client)",
             "inproc": "in-process test driver (no daemon)"}
    for b in builds:
        names[(b, "disk")] = f"vmhostd REST h2, records on {disk}"
        names[(b, "tmpfs")] = "vmhostd REST h2, records on tmpfs"

    def row(k):
        w, c, cl, s, sw = med[k]
        print(f"  {names[k][:40]:40} {w * us:9.1f} {c * us:14.1f} "
              f"{cl * us:14.1f} {s / args.cycles:6.2f} "
              f"{sw / args.cycles:8.1f}")
    for k in ("libvirtd", "inproc"):
        row(k)
    for b in builds:
        print(f"  {b}:")
        for where in ("disk", "tmpfs"):
            row((b, where))
        for where in ("disk", "tmpfs"):
            m = med[(b, where)]
            print(f"    vmhostd ({where}) / libvirtd: CPU "
                  f"{m[1] / med['libvirtd'][1]:.2f}x (target <= 1.0x), "
                  f"wall {m[0] / med['libvirtd'][0]:.2f}x")
        d, t = med[(b, "disk")], med[(b, "tmpfs")]
        if d[3]:
            print(f"    disk - tmpfs: {(d[1] - t[1]) * us:.0f} us CPU and "
                  f"{(d[0] - t[0]) * us:.0f} us wall per cycle for "
                  f"{d[3] / args.cycles:.2f} synced writes "
                  f"({(d[1] - t[1]) / d[3] * 1e6:.0f} us CPU each)")
    if bare is not None:
        print(f"  a bare 4 KiB O_DIRECT|O_DSYNC overwrite every 0.5 ms in "
              f"{disk}: {bare * 1e6:.0f} us CPU (libvirtd's test driver "
              "writes nothing; vmhostd's records are durable before it "
              "answers)")


if __name__ == "__main__":
    main()
