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
vmhostd's syncs per cycle come from its journal's counters (logged at exit).
Each figure is the median of --runs runs.  Numbers only, never asserted.

    tests/bench/libvirt-overhead.py --builddir BUILD [--cycles 1000]
                                    [--runs 3] [--disk-dir DIR]

BUILD: a build tree configured without --enable-sanitizers.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def build_clients(tmp):
    """Compile the two C clients; their paths."""
    out = {}
    for name, pkg in (("h2bench", "libnghttp2"), ("libvirt-direct", "libvirt")):
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", pkg],
                               capture_output=True, text=True,
                               check=True).stdout.split()
        out[name] = os.path.join(tmp, name)
        subprocess.run(["cc", "-O2", "-o", out[name],
                        os.path.join(HERE, name + ".c")] + flags, check=True)
    return out


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pin_all(pid, cpu):
    subprocess.run(["taskset", "-a", "-cp", cpu, str(pid)],
                   capture_output=True, check=True)


class Vmhostd:
    """vmhostd with the libvirt plugin and REST, state under parent."""

    def __init__(self, builddir, parent, hv, daemon=""):
        self.tmp = tempfile.mkdtemp(prefix="vmh-overhead.", dir=parent)
        self.port = free_port()
        dirs = subprocess.run(
            ["find", os.path.join(builddir, "plugins"), "-type", "d",
             "-name", ".libs"], capture_output=True, text=True).stdout.split()
        env = dict(os.environ, VMHOST_PLUGIN_DIR=":".join(sorted(dirs)))
        with open(f"{self.tmp}/vmhostd.yaml", "w") as f:
            f.write(f"""daemon:
  state_dir: state
  log: {{ level: info }}
  reconcile_interval: 0
{daemon}hypervisors: [ {hv} ]
storage: [ {{ name: pool0, plugin: mock }} ]
networks: [ {{ name: net0, plugin: mock }} ]
frontends:
  - name: rest
    plugin: rest
    access_log: false
    listen: [ {{ address: "127.0.0.1:{self.port}" }} ]
    limits: {{ requests_per_second: 1000000 }}
""")
        self.log = f"{self.tmp}/vmhostd.log"
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", os.path.join(builddir, "core", "vmhostd"),
             "--config", f"{self.tmp}/vmhostd.yaml"],
            env=env, stderr=open(self.log, "w"))
        deadline = time.time() + 30
        while "vmhostd ready" not in open(self.log).read():
            if self.proc.poll() is not None or time.time() > deadline:
                sys.exit("vmhostd did not start:\n" + open(self.log).read())
            time.sleep(0.05)
        with open(f"{self.tmp}/state/auth/admin.token") as f:
            self.token = f.read().strip()

    def stop(self):
        """Stop; the journal's syncs and records written (from its log)."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        m = re.findall(r"journal: (\d+) records? written in (\d+) syncs?",
                       open(self.log).read())
        shutil.rmtree(self.tmp)
        return (int(m[-1][1]), int(m[-1][0])) if m else (0, 0)


def run_vmhostd(args, clients, parent):
    d = Vmhostd(args.builddir, parent,
                '{ name: hv0, plugin: libvirt, uri: "test:///default" }')
    try:
        c0 = cpu_s(d.proc.pid)
        out = subprocess.run(
            ["taskset", "-c", "1", clients["h2bench"], "127.0.0.1",
             str(d.port), d.token, "cycle", str(args.cycles)],
            capture_output=True, text=True)
        if out.returncode:
            sys.exit("h2bench: " + out.stderr)
        cpu = cpu_s(d.proc.pid) - c0
        wall, client = map(float, out.stdout.split())
    finally:
        syncs, frames = d.stop()
    return wall, cpu, client, syncs


def run_libvirtd(args, clients, lv):
    uri = f"test+unix:///default?socket={lv.root}/run/libvirt-sock"
    c0 = cpu_s(lv.pid)
    out = subprocess.run(["taskset", "-c", "1", clients["libvirt-direct"],
                          uri, str(args.cycles)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit("libvirt-direct over RPC: " + out.stderr)
    cpu = cpu_s(lv.pid) - c0
    wall, client = map(float, out.stdout.split())
    return wall, cpu, client, 0


def run_inprocess(args, clients):
    out = subprocess.run(["taskset", "-c", "1", clients["libvirt-direct"],
                          "test:///default", str(args.cycles)],
                         capture_output=True, text=True, check=True)
    wall, client = map(float, out.stdout.split())
    return wall, client, client, 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--disk-dir", default=None)
    args = ap.parse_args()
    args.builddir = os.path.abspath(args.builddir)
    disk = args.disk_dir or "/var/tmp"
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        sys.exit("needs two CPUs and taskset")
    import lvguest
    with tempfile.TemporaryDirectory() as tmp:
        clients = build_clients(tmp)
        lv = lvguest.Libvirtd(os.path.join(tmp, "libvirtd"))
        lv.start()
        try:
            pin_all(lv.pid, "0")
            runs = {k: [] for k in ("libvirtd", "disk", "tmpfs", "inproc")}
            for _ in range(args.runs):
                runs["libvirtd"].append(run_libvirtd(args, clients, lv))
                runs["disk"].append(run_vmhostd(args, clients, disk))
                runs["tmpfs"].append(run_vmhostd(args, clients, "/dev/shm"))
                runs["inproc"].append(run_inprocess(args, clients))
        finally:
            lv.cleanup()
    med = {k: [statistics.median(r[i] for r in v) for i in range(4)]
           for k, v in runs.items()}
    us = 1e6 / args.cycles
    print(f"{args.cycles} cycles define+start / destroy / undefine on the "
          f"libvirt test driver, median of {args.runs} interleaved runs; "
          "daemons on CPU 0, clients on CPU 1; per cycle:")
    print(f"  {'':40} {'wall us':>9} {'daemon CPU us':>14} "
          f"{'client CPU us':>14} {'syncs':>6}")
    names = {"libvirtd": "libvirtd RPC (libvirt C API client)",
             "disk": f"vmhostd REST h2 (records on {disk})",
             "tmpfs": "vmhostd REST h2 (records on tmpfs)",
             "inproc": "in-process test driver (no daemon)"}
    for k, label in names.items():
        w, c, cl, s = med[k]
        print(f"  {label[:40]:40} {w * us:9.1f} {c * us:14.1f} "
              f"{cl * us:14.1f} {s / args.cycles:6.2f}")
    for k in ("disk", "tmpfs"):
        print(f"  vmhostd ({k}) / libvirtd: CPU "
              f"{med[k][1] / med['libvirtd'][1]:.2f}x (target <= 1.0x), "
              f"wall {med[k][0] / med['libvirtd'][0]:.2f}x")


if __name__ == "__main__":
    main()
