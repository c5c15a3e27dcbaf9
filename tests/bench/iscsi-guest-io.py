#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sequential I/O of one guest on an iSCSI LUN vs on a local raw file: the
guest of lvguest.py (TCG, a private libvirtd) gets two data disks of the
same size, vda an iSCSI LUN of the iscsi pool (QEMU's libiscsi to tgtd on
127.0.0.1, its backing file under the run's directory) and vdb a raw volume
of the local pool in the same directory, and writes then reads each
sequentially with O_DIRECT (1 MiB blocks), timed from the host round by
round.  The pool only hands QEMU the LUN's coordinates: the data path is
QEMU - libiscsi - tgtd, and the figures say what it costs against a file.
Prints the figures; asserts no time.  Run by hand on a build without
sanitizers, as root, from the build tree:

    python3 tests/bench/iscsi-guest-io.py [MIB [ROUNDS]]
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
from iscsiguest import GuestRig  # noqa: E402
from lvguest import read_line  # noqa: E402
from vmhtest import check  # noqa: E402

MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 256
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
MiB = 1 << 20

g = GuestRig("iqn.2024-01.org.vmhost.bench:guest",
             "iqn.2024-01.org.vmhost.bench:host1", MIB * MiB,
             log_level="info")
d, t = g.d, g.t
pool = os.path.join(d.tmp, "pool")
os.makedirs(pool)
g.start(f"  - {{ name: local, plugin: local, path: {pool}, "
        "default_format: raw }")


def timed(s, deadline, cmd):
    t0 = time.perf_counter()
    s.sendall(cmd.encode() + b"\n")
    line = read_line(s, deadline)
    dt = time.perf_counter() - t0
    check(line.endswith(": 0"), cmd, "->", line)
    return dt


with d:
    lun = d.ok(op="volume_list", pool="san")["volumes"][0]["name"]
    vm = g.create("bench", [
        {"name": "vda", "pool": "san", "volume": lun},
        {"name": "vdb", "pool": "local", "size": MIB * MiB, "format": "raw"}],
        memory=256 * MiB)
    s = g.hello(vm)
    deadline = time.time() + 120
    s.sendall(b"blocks\n")
    line = read_line(s, deadline)
    check({"vda", "vdb"} <= set(line.split()), line)

    results = {}
    for dev, what in (("vda", "iSCSI LUN"), ("vdb", "local raw file")):
        for op in ("wseq", "rseq"):
            times = []
            for _ in range(ROUNDS):
                deadline = time.time() + 600
                times.append(timed(s, deadline, f"{op} {dev} {MIB}"))
            results[(what, op)] = times
    s.close()

    print(f"{MIB} MiB sequential, O_DIRECT, 1 MiB blocks, {ROUNDS} rounds, "
          "one TCG guest (MiB/s: median, min-max)")
    for what in ("iSCSI LUN", "local raw file"):
        for op, name in (("wseq", "write"), ("rseq", "read")):
            rates = [MIB / x for x in results[(what, op)]]
            print(f"  {what:15} {name:5}  {statistics.median(rates):7.1f}"
                  f"  ({min(rates):.1f}-{max(rates):.1f})")
    for op, name in (("wseq", "write"), ("rseq", "read")):
        ratio = (statistics.median(results[("iSCSI LUN", op)])
                 / statistics.median(results[("local raw file", op)]))
        print(f"  {name}: the LUN takes {ratio:.2f}x the file's time")

    d.ok(op="vm_delete", vm="bench")
    check(d.stop() == 0, "SIGTERM: exit 0")
    t.stop()   # before d's directory, which holds tgtd's socket, goes
