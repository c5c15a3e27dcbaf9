#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Local storage benchmark: 1,000 qcow2 clones of one base image, made and
deleted through vmhostd (the ctl front-end, the core, the local plugin),
against the same `qemu-img create -b` loop and unlinks run directly in the
same run, on the same directory.  Then a pool of 10,000 volumes (raw
sparse files) listed through vmhostd, against 10,000 volumes of the
in-memory mock pool listed through the same vmhostd (the cost of the core,
the ctl front-end and the client) and os.scandir + stat in Python.

    cd BUILDDIR && python3 SRCDIR/tests/bench/local-clones.py \
        [--clones 1000] [--volumes 10000] [--dir /var/tmp]

Figures are printed, never asserted.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import benchlib  # tests/bench, beside this script

ap = argparse.ArgumentParser()
ap.add_argument("--builddir", default=os.getcwd())
ap.add_argument("--clones", type=int, default=1000)
ap.add_argument("--volumes", type=int, default=10000)
ap.add_argument("--lists", type=int, default=20)
ap.add_argument("--dir", default="/var/tmp")
a = ap.parse_args()

benchlib.setup(a.builddir)
from vmhtest import IMAGE_SOURCES, Daemon  # noqa: E402

top = tempfile.mkdtemp(prefix="vmh-bench-local.", dir=a.dir)
pool = os.path.join(top, "pool")
os.mkdir(pool)
base = os.path.join(top, "base.qcow2")
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "1G"],
               check=True)
digest = subprocess.run(["sha256sum", base], capture_output=True, text=True,
                        check=True).stdout.split()[0]

cfg = f"""
hypervisors:
  - {{ name: hv0, plugin: mock }}
networks:
  - {{ name: net0, plugin: mock }}
storage:
  - {{ name: pool0, plugin: local, path: {pool}, {IMAGE_SOURCES} }}
  - {{ name: mem, plugin: mock, max_volumes: 1000000, capacity: 100000T }}
"""
try:
    with Daemon(cfg) as d:
        d.ok(op="image_import", pool="pool0",
             image={"name": "base", "url": "file://" + base, "sha256": digest})
        cached = os.path.join(pool, ".images", "base")

        # Interleaved in rounds of 100, so that load from elsewhere on the
        # machine hits all three alike.  The third loop adds the fsync the
        # plugin does before its rename (a volume must be complete on disk
        # before it appears under its name).
        direct = os.path.join(top, "direct")
        os.mkdir(direct)
        t_vmh = t_del = t_q = t_qs = t_unl = 0.0
        step = 100
        for r0 in range(0, a.clones, step):
            rng = range(r0, min(r0 + step, a.clones))
            t = time.perf_counter()
            for i in rng:
                d.ok(op="volume_create", pool="pool0",
                     volume={"name": f"c{i}", "base_image": "base"})
            t_vmh += time.perf_counter() - t
            t = time.perf_counter()
            for i in rng:
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                                "-b", cached, "-F", "qcow2",
                                os.path.join(direct, f"c{i}"), "1073741824"],
                               check=True)
            t_q += time.perf_counter() - t
            t = time.perf_counter()
            for i in rng:
                p = os.path.join(direct, f"s{i}")
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                                "-b", cached, "-F", "qcow2", p, "1073741824"],
                               check=True)
                fd = os.open(p, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            t_qs += time.perf_counter() - t
        for r0 in range(0, a.clones, step):
            rng = range(r0, min(r0 + step, a.clones))
            t = time.perf_counter()
            for i in rng:
                d.ok(op="volume_delete", pool="pool0", volume=f"c{i}")
            t_del += time.perf_counter() - t
            t = time.perf_counter()
            for i in rng:
                os.unlink(os.path.join(direct, f"c{i}"))
            t_unl += time.perf_counter() - t
        for i in range(a.clones):
            os.unlink(os.path.join(direct, f"s{i}"))

        print(f"{a.clones} clones, create: vmhostd {t_vmh:.2f} s; qemu-img "
              f"loop {t_q:.2f} s (ratio {t_vmh / max(t_q, 1e-9):.3f}); "
              f"qemu-img + fsync loop {t_qs:.2f} s (ratio "
              f"{t_vmh / max(t_qs, 1e-9):.3f})")
        print(f"{a.clones} clones, delete: vmhostd {t_del:.3f} s, "
              f"unlink loop {t_unl:.3f} s")

        # 10,000 raw sparse volumes, made directly (as the plugin makes
        # them: a sparse file with its format xattr), then listed.
        for i in range(a.volumes):
            p = os.path.join(pool, f"v{i:05d}")
            with open(p, "wb") as f:
                f.truncate(1 << 30)
            os.setxattr(p, "user.vmhost.format", b"raw")
        n = len(d.ok(op="volume_list", pool="pool0")["volumes"])
        assert n == a.volumes, n
        times = []
        for _ in range(a.lists):
            t = time.perf_counter()
            d.ok(op="volume_list", pool="pool0")
            times.append(time.perf_counter() - t)
        # The same listing from the in-memory mock pool: what the core, the
        # ctl front-end and this client cost without any filesystem.
        for i in range(a.volumes):
            d.ok(op="volume_create", pool="mem",
                 volume={"name": f"v{i:05d}", "size": 1 << 30})
        mock = []
        for _ in range(a.lists):
            t = time.perf_counter()
            d.ok(op="volume_list", pool="mem")
            mock.append(time.perf_counter() - t)
        ref = []
        for _ in range(a.lists):
            t = time.perf_counter()
            for e in os.scandir(pool):
                e.stat(follow_symlinks=False)
            ref.append(time.perf_counter() - t)
        print(f"volume_list of {n} volumes through vmhostd: median "
              f"{statistics.median(times) * 1e3:.1f} ms (min "
              f"{min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}); "
              f"mock pool through vmhostd: "
              f"{statistics.median(mock) * 1e3:.1f} ms; "
              f"os.scandir+stat in Python: "
              f"{statistics.median(ref) * 1e3:.1f} ms")
        d.stop()
finally:
    shutil.rmtree(top, ignore_errors=True)
