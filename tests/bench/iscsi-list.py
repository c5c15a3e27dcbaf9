#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Listing 64 LUNs on 4 targets: vmhostd's iscsi pool answering from its
table (cached), the same pool reading the targets on every list
(refresh_interval: 0, the cost of one refresh), and a fresh discovery by
libiscsi's own iscsi-ls -s, side by side on one tgtd (127.0.0.1).  Prints
the figures; asserts no time.  Run by hand on a build without sanitizers,
as root, from the build tree:

    python3 tests/bench/iscsi-list.py [ROUNDS]
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
from iscsitgt import Tgtd, require_iscsi  # noqa: E402
from vmhtest import Daemon, check  # noqa: E402

require_iscsi()
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 50
INIT = "iqn.2024-01.org.vmhost.bench:host1"
TARGETS, LUNS = 4, 16

d = Daemon("", log_level="info")
t = Tgtd(os.path.join(d.tmp, "tgt"))


def per_call(fn, rounds):
    fn()
    t0 = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - t0) / rounds * 1e3


try:
    t.start()
    for i in range(TARGETS):
        tid = t.target(f"iqn.2024-01.org.vmhost.bench:t{i}")
        for lun in range(1, LUNS + 1):
            t.lun(tid, lun, (lun + 16 * i) << 20)
    d.write_config(f"""
hypervisors: [ {{ name: hv0, plugin: mock }} ]
networks: [ {{ name: net0, plugin: mock }} ]
storage:
  - {{ name: cached, plugin: iscsi, portals: ["{t.portal}"],
      initiator_name: "{INIT}", refresh_interval: 3600 }}
  - {{ name: fresh, plugin: iscsi, portals: ["{t.portal}"],
      initiator_name: "{INIT}", refresh_interval: 0 }}
""")
    with d:
        n = len(d.ok(op="volume_list", pool="cached")["volumes"])
        check(n == TARGETS * LUNS, "volumes:", n)
        cached = per_call(lambda: d.ok(op="volume_list", pool="cached"),
                          ROUNDS * 10)
        fresh = per_call(lambda: d.ok(op="volume_list", pool="fresh"), ROUNDS)
        ls = per_call(lambda: subprocess.run(
            ["iscsi-ls", "-s", "-i", INIT, f"iscsi://{t.portal}"],
            check=True, capture_output=True), ROUNDS)
        out = subprocess.run(["iscsi-ls", "-s", "-i", INIT,
                              f"iscsi://{t.portal}"], capture_output=True,
                             text=True).stdout
        check(out.count("DIRECT_ACCESS") == n, "iscsi-ls sees them all")
        print(f"{n} LUNs on {TARGETS} targets, {ROUNDS} rounds")
        print(f"  vmhostd volume_list, cached      {cached:8.3f} ms/call")
        print(f"  vmhostd volume_list, refreshing  {fresh:8.3f} ms/call"
              "  (= one refresh + the list)")
        print(f"  iscsi-ls -s (fresh discovery)    {ls:8.3f} ms/run"
              "  (process start included)")
        print(f"  cached is {ls / cached:.0f}x faster than iscsi-ls -s")
        check(d.stop() == 0, "clean stop")
        t.stop()
finally:
    t.stop()
