#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""RBD storage benchmark on a throwaway Ceph (tests/cephcluster.py: one
monitor, one memstore OSD on 127.0.0.1), in one run:

- N clones of one base image (default 100) made and then deleted through
  vmhostd (the ctl front-end, the core, the rbd plugin), against a plain
  librbd C loop making the same calls (bench/rbd-direct.c, compiled here
  with cc), in interleaved rounds;
- the import of a 256 MiB file of random bytes through vmhostd
  (image_import from file://: download, SHA-256, 4 MiB aio writes,
  snapshot) against `rbd import` of the same file, and against
  `sha256sum` followed by `rbd import` (what a careful operator does by
  hand), several runs each, medians.

    cd BUILDDIR && python3 SRCDIR/tests/bench/rbd.py \\
        [--clones 100] [--rounds 5] [--imports 3] [--size-mib 256]

Figures are printed, never asserted.
"""
import argparse
import hashlib
import os
import statistics
import subprocess
import tempfile
import time

import benchlib  # tests/bench, beside this script

ap = argparse.ArgumentParser()
ap.add_argument("--builddir", default=os.getcwd())
ap.add_argument("--clones", type=int, default=100)
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--imports", type=int, default=3)
ap.add_argument("--size-mib", type=int, default=256)
a = ap.parse_args()

here = os.path.dirname(os.path.abspath(__file__))
benchlib.setup(a.builddir)
from cephcluster import Ceph, require_ceph  # noqa: E402
from vmhtest import IMAGE_SOURCES, Daemon  # noqa: E402

require_ceph()
MiB = 1 << 20


def med(v):
    return statistics.median(v)


with tempfile.TemporaryDirectory(prefix="vmh-bench-rbd.") as tmp:
    exe = os.path.join(tmp, "rbd-direct")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(here, "rbd-direct.c"),
                    "-lrbd", "-lrados"], check=True)
    c = Ceph(os.path.join(tmp, "ceph"))
    try:
        c.start()
        c.pool("vmh")
        key_file = os.path.join(tmp, "vmhost.key")
        key = c.key_file("vmhost", "vmh", key_file)
        mon = f"v2:{c.monitor}"
        image = os.path.join(tmp, "image.raw")
        with open(image, "wb") as f:
            for _ in range(a.size_mib):
                f.write(os.urandom(MiB))
        with open(image, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        cfg = f"""
hypervisors:
  - {{ name: hv0, plugin: mock }}
networks:
  - {{ name: net0, plugin: mock }}
storage:
  - {{ name: ceph, plugin: rbd, monitors: ["{mon}"], pool: vmh,
       key_file: {key_file}, {IMAGE_SOURCES} }}
"""
        os.mkdir(os.path.join(tmp, "d"))
        with Daemon(cfg, tmp=os.path.join(tmp, "d"), log_level="info") as d:
            # Clones: the base is a small imported image.
            small = os.path.join(tmp, "small.raw")
            with open(small, "wb") as f:
                f.write(os.urandom(MiB))
            with open(small, "rb") as f:
                sdig = hashlib.file_digest(f, "sha256").hexdigest()
            d.ok(op="image_import", pool="ceph", image={
                "name": "base", "url": "file://" + small, "sha256": sdig})
            vc, vd, rc, rd = [], [], [], []
            for _ in range(a.rounds):
                t = time.perf_counter()
                for i in range(a.clones):
                    d.ok(op="volume_create", pool="ceph",
                         volume={"name": f"v{i}", "base_image": "base"})
                vc.append(time.perf_counter() - t)
                t = time.perf_counter()
                for i in range(a.clones):
                    d.ok(op="volume_delete", pool="ceph", volume=f"v{i}")
                vd.append(time.perf_counter() - t)
                out = subprocess.run([exe, mon, "vmhost", key, "vmh",
                                      "_image.base", str(a.clones)],
                                     capture_output=True, text=True,
                                     check=True).stdout.split()
                rc.append(float(out[0]))
                rd.append(float(out[1]))
            print(f"{a.clones} clones of one base, median of {a.rounds} "
                  f"rounds: create vmhostd {med(vc):.3f} s, librbd loop "
                  f"{med(rc):.3f} s (ratio {med(vc) / med(rc):.3f}); "
                  f"delete vmhostd {med(vd):.3f} s, librbd loop "
                  f"{med(rd):.3f} s (ratio {med(vd) / med(rd):.3f})")

            # Imports of the 256 MiB file.
            vi, ri, si = [], [], []
            for i in range(a.imports):
                t = time.perf_counter()
                d.ok(op="image_import", pool="ceph", image={
                    "name": "big", "url": "file://" + image,
                    "sha256": digest})
                vi.append(time.perf_counter() - t)
                d.ok(op="image_delete", pool="ceph", image="big")
                t = time.perf_counter()
                c.rbd("import", "--no-progress", image, "vmh/ref")
                ri.append(time.perf_counter() - t)
                c.rbd("rm", "--no-progress", "vmh/ref")
                t = time.perf_counter()
                subprocess.run(["sha256sum", image], check=True,
                               capture_output=True)
                c.rbd("import", "--no-progress", image, "vmh/ref")
                si.append(time.perf_counter() - t)
                c.rbd("rm", "--no-progress", "vmh/ref")
            print(f"import of {a.size_mib} MiB, median of {a.imports}: "
                  f"vmhostd {med(vi):.2f} s, rbd import {med(ri):.2f} s "
                  f"(ratio {med(vi) / med(ri):.3f}), sha256sum + rbd import "
                  f"{med(si):.2f} s (ratio {med(vi) / med(si):.3f})")
            d.ok(op="image_delete", pool="ceph", image="base")
            d.stop()
    finally:
        c.stop()
