#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""NFS pool benchmark, on nfs-ganesha (FSAL_VFS) in this script's own
namespaces (nfsserver.py), side by side in one run:

  1. N raw volumes created then deleted through vmhostd (ctl front-end, the
     core, the nfs plugin) against nfs-direct.c, a C loop making the same
     libnfs calls on one context (compiled here with cc);
  2. N qcow2 clones of one cached base image through vmhostd against a
     `qemu-img create -b nfs://…` loop on the same export;
  3. a pool of M volumes (sparse files and their records, made directly on
     the exported directory) opened by vmhostd, then listed through the
     REST API (HTTP/1.1, one kept-alive connection; the response read,
     not parsed).

Run by hand as root on a build without sanitizers, from the build tree:

    python3 tests/bench/nfs.py [--volumes 1000] [--clones 1000] \
        [--list 10000] [--lists 20] [--only ops|list]

Figures are printed, never asserted.
"""
import argparse
import glob
import hashlib
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
# The plugins of this build tree, as `make check` finds them.
os.environ.setdefault("VMHOST_PLUGIN_DIR", ":".join(sorted({
    os.path.dirname(so) for so in glob.glob(os.path.join(
        TOP, "plugins", "**", ".libs", "*-*.so"), recursive=True)})))
sys.path.insert(0, os.path.join(HERE, ".."))
from nfsserver import Ganesha, enter_namespace, pool_yaml  # noqa: E402
from resttest import RestDaemon  # noqa: E402
from vmhtest import Daemon  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "ctl"))
from vmhctl import Client  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--volumes", type=int, default=1000)
ap.add_argument("--clones", type=int, default=1000)
ap.add_argument("--list", type=int, default=10000)
ap.add_argument("--lists", type=int, default=20)
ap.add_argument("--only", choices=("ops", "list"),
                help="run only parts 1 and 2 (ops) or part 3 (list)")
a = ap.parse_args()

enter_namespace()
SIZE = 1 << 30
top = tempfile.mkdtemp(prefix="vmh-bench-nfs.", dir="/var/tmp")
g = Ganesha(os.path.join(top, "srv"))
exe = os.path.join(top, "nfs-direct")
subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "nfs-direct.c")]
               + subprocess.run(["pkg-config", "--cflags", "--libs", "libnfs"],
                                capture_output=True, text=True,
                                check=True).stdout.split(), check=True)
mocks = ("hypervisors:\n  - { name: hv0, plugin: mock }\n"
         "networks:\n  - { name: net0, plugin: mock }\nstorage:\n")
MEM = ("  - { name: mem, plugin: mock, max_volumes: 1000000, "
       "capacity: 100000T }\n")


def timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def ok(c, **req):
    r = c.request(req)
    assert r["code"] == 0, r
    return r


def raw_volumes(d):
    """Create then delete: (create s, delete s) through vmhostd (one kept
    connection to the ctl front-end), and the same from nfs-direct."""
    c = Client(d.sock)
    vmh_c = timed(lambda: [ok(c, op="volume_create", pool="nfs0", volume={
        "name": f"v{i}", "size": SIZE}) for i in range(a.volumes)])
    vmh_d = timed(lambda: [ok(c, op="volume_delete", pool="nfs0",
                              volume=f"v{i}") for i in range(a.volumes)])
    out = subprocess.run([exe, "127.0.0.1", "/export", "/direct",
                          str(a.volumes), str(SIZE)], capture_output=True,
                         text=True, check=True).stdout.split()
    dir_c, dir_d = float(out[0]), float(out[1])
    # The same calls on the in-memory mock pool: what the client, the ctl
    # front-end and the core cost without any storage.
    mem = timed(lambda: [ok(c, op="volume_create", pool="mem", volume={
        "name": f"v{i}", "size": SIZE}) for i in range(a.volumes)])
    mem += timed(lambda: [ok(c, op="volume_delete", pool="mem",
                             volume=f"v{i}") for i in range(a.volumes)])
    c.close()
    print(f"{a.volumes} raw volumes: create vmhostd {vmh_c:.2f} s, libnfs "
          f"loop {dir_c:.2f} s (ratio {vmh_c / dir_c:.2f}); delete vmhostd "
          f"{vmh_d:.2f} s, libnfs loop {dir_d:.2f} s (ratio "
          f"{vmh_d / dir_d:.2f}); create+delete ratio "
          f"{(vmh_c + vmh_d) / (dir_c + dir_d):.2f}; the same on the mock "
          f"pool (client, ctl and core only) {mem:.2f} s")


def clones(d):
    base = os.path.join(top, "base.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "1G"],
                   check=True)
    digest = hashlib.sha256(open(base, "rb").read()).hexdigest()
    d.ok(op="image_import", pool="nfs0", image={
        "name": "base", "url": "file://" + base, "sha256": digest})
    url = "nfs://127.0.0.1/export/pool/.images/base"
    os.makedirs(os.path.join(g.export, "qdirect"))
    # Interleaved in rounds of 100: load from elsewhere hits both alike.
    t_vmh = t_q = 0.0
    for r0 in range(0, a.clones, 100):
        rng = range(r0, min(r0 + 100, a.clones))
        t_vmh += timed(lambda: [d.ok(op="volume_create", pool="nfs0", volume={
            "name": f"c{i}", "base_image": "base"}) for i in rng])
        t_q += timed(lambda: [subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", url, "-F",
             "qcow2", f"nfs://127.0.0.1/export/qdirect/c{i}", str(SIZE)],
            check=True) for i in rng])
    print(f"{a.clones} qcow2 clones: vmhostd {t_vmh:.2f} s, qemu-img loop "
          f"{t_q:.2f} s (ratio {t_vmh / t_q:.3f})")


def make_big():
    """M volumes made directly in the exported directory, as the plugin
    makes them (before ganesha starts: it caches directories)."""
    pool = os.path.join(g.export, "big")
    os.makedirs(os.path.join(pool, ".vmhost", "volumes"))
    for i in range(a.list):
        with open(os.path.join(pool, f"v{i:05d}"), "wb") as f:
            f.truncate(SIZE)
        with open(os.path.join(pool, ".vmhost", "volumes", f"v{i:05d}"),
                  "w") as f:
            f.write("format=raw\nvsize=0\nbytes=0\nbacking=\nsha256=\n")


def get_times(d, path):
    """(seconds of each of --lists GETs of path after a first one, size)."""
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    times, size = [], 0
    for _ in range(a.lists + 1):
        t = time.perf_counter()
        c.request("GET", path, headers=d.auth())
        r = c.getresponse()
        size = len(r.read())
        times.append(time.perf_counter() - t)
        assert r.status == 200, r.status
    c.close()
    assert size > a.list * 50, size
    return times[1:], size


def ms(times):
    return (f"median {statistics.median(times) * 1e3:.1f} ms (min "
            f"{min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f})")


def listing():
    """vmhostd started on make_big()'s pool (open time), which is then
    listed over REST; the same number of volumes of the in-memory mock
    pool listed the same way (what the core and the REST front-end cost
    without NFS); one READDIRPLUS of the directory by nfs-ls."""
    d = RestDaemon(body=mocks + pool_yaml("big", extra=", path: big") + MEM,
                   log_level="info")
    t = time.perf_counter()
    with d:
        opened = time.perf_counter() - t
        nfs, size = get_times(d, "/api/v1/storage/pools/big/volumes")
        for i in range(a.list):
            Daemon.ok(d, op="volume_create", pool="mem",
                      volume={"name": f"v{i:05d}", "size": SIZE})
        mem, _ = get_times(d, "/api/v1/storage/pools/mem/volumes")
        ls = [timed(lambda: subprocess.run(
            ["nfs-ls", "nfs://127.0.0.1/export/big"], check=True,
            capture_output=True)) for _ in range(a.lists)]
        print(f"{a.list} volumes: vmhostd start with the pool {opened:.2f} s; "
              f"REST list ({size} bytes): nfs pool {ms(nfs)}; mock pool "
              f"{ms(mem)}; nfs-ls (one READDIRPLUS, process included) "
              f"{ms(ls)}")
        d.stop()


try:
    if a.only != "ops":
        make_big()
    g.start()
    if a.only != "list":
        d = Daemon(mocks + pool_yaml(extra=", path: pool, default_format: raw")
                   + MEM, log_level="info")
        with d:
            raw_volumes(d)
            clones(d)
            d.stop()
    if a.only != "ops":
        listing()
finally:
    g.cleanup()
    subprocess.run(["rm", "-rf", top])
