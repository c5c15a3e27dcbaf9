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
import atexit
import glob
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
from iscsitgt import Tgtd, require_iscsi  # noqa: E402
from lvguest import (Libvirtd, build_initrd, first_line, kernel,  # noqa: E402
                     read_line, require_qemu)
from vmhtest import Daemon, check, skip  # noqa: E402

require_qemu()
require_iscsi()
if not glob.glob("/usr/lib/*/qemu/block-iscsi.so"):
    skip("QEMU has no iSCSI driver (qemu-block-extra)")
MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 256
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
MiB = 1 << 20
IQN = "iqn.2024-01.org.vmhost.bench:guest"
INIT = "iqn.2024-01.org.vmhost.bench:host1"

vmlinuz, mods = kernel()
d = Daemon("", log_level="info")
lv = Libvirtd(os.path.join(d.tmp, "libvirt"))
t = Tgtd(os.path.join(d.tmp, "tgt"))
atexit.register(lv.cleanup)
atexit.register(t.stop)
initrd = build_initrd(d.tmp, mods)
pool = os.path.join(d.tmp, "pool")
os.makedirs(pool)

t.start()
# QEMU logs in with its own initiator name: the ACL allows the address.
t.lun(t.target(IQN, allow="127.0.0.1"), 1, MIB * MiB)
lv.start()
d.write_config(f"""
hypervisors:
  - name: hv0
    plugin: libvirt
    uri: "{lv.uri}"
    domain_type: qemu
    machine: q35
storage:
  - name: san
    plugin: iscsi
    portals: ["{t.portal}"]
    initiator_name: {INIT}
  - {{ name: local, plugin: local, path: {pool}, default_format: raw }}
networks:
  - {{ name: net0, plugin: mock }}
""")


def timed(s, deadline, cmd):
    t0 = time.perf_counter()
    s.sendall(cmd.encode() + b"\n")
    line = read_line(s, deadline)
    dt = time.perf_counter() - t0
    check(line.endswith(": 0"), cmd, "->", line)
    return dt


with d:
    lun = d.ok(op="volume_list", pool="san")["volumes"][0]["name"]
    vm = d.ok(op="vm_create", spec={
        "name": "bench", "vcpus": 1, "memory": 256 * MiB,
        "kernel": vmlinuz, "initrd": initrd,
        "cmdline": "console=ttyS0 quiet panic=-1", "guest_channel": True,
        "disks": [{"name": "vda", "pool": "san", "volume": lun},
                  {"name": "vdb", "pool": "local", "size": MIB * MiB,
                   "format": "raw"}],
        "nics": []})["vms"][0]
    deadline = time.time() + 120
    s, line = first_line(vm["channel"]["path"], deadline)
    check(line.startswith("hello from guest"), line)
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
