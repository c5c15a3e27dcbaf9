#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Crash safety: kill -9 vmhostd in the middle of a create; on restart the
record says what was made, reconciliation reports it, nothing is deleted by
itself, and a delete removes everything.  Also: a record is never half
written, leftovers of an interrupted write are removed, and a corrupt record
is set aside with a message."""
import glob
import os
import threading
import time

import vmhjournal

from vmhtest import Daemon, quiet_call, check, expect, mocks, vm_spec

PERSIST = ", persist: true"
# define takes long enough to kill the daemon while it runs.
with Daemon(mocks(hv=PERSIST + ", latency: { define: 5s }", st=PERSIST,
                  net=PERSIST)) as d:
    t = threading.Thread(target=lambda: quiet_call(d, op="vm_create",
                                                 spec=vm_spec("vm1", disks=2)))
    t.daemon = True
    t.start()
    # Wait until both volumes and the port are made (define is sleeping).
    deadline = time.time() + 20
    while time.time() < deadline:
        vols = d.ok(op="volume_list", pool="pool0")["volumes"]
        ports = d.ok(op="network_get", network="net0")["networks"][0]["n_ports"]
        if len(vols) == 2 and ports == 1:
            break
        time.sleep(0.05)
    check(len(vols) == 2 and ports == 1, "the create got to define")
    d.kill9()

    records = vmhjournal.records(os.path.join(d.tmp, "state"))
    check(len(records) == 1, "one record on disk:", records)

    mark = len(d.log())
    d.start()
    log = d.log()[mark:]
    for words in ["vm1", "interrupted by a restart",
                  "volume pool0/vm1-vda was created",
                  "volume pool0/vm1-vdb was created",
                  "NIC net0 is bound on network net0"]:
        check(words in log, f"restart log lacks '{words}':\n" + log)
    vm = d.ok(op="vm_get", vm="vm1")["vms"][0]
    check(vm["status"] == "failed" and "delete the VM" in vm["error"], vm)
    # Nothing deleted by itself.
    check(len(d.ok(op="volume_list", pool="pool0")["volumes"]) == 2, "volumes kept")
    # Actions are refused until it is deleted.
    expect(d.call(op="vm_action", vm="vm1", action="start"), "invalid_state")
    d.ok(op="vm_delete", vm="vm1")
    check(d.ok(op="volume_list", pool="pool0")["volumes"] == [], "volumes gone")
    check(d.ok(op="network_get", network="net0")["networks"][0]["n_ports"] == 0,
          "port gone")
    check(d.stop() == 0, "clean exit")

# Records on disk: a leftover temp file goes, a corrupt record is set aside,
# good records load.  (Records are frames of state/vms.journal: the leftover
# is a snapshot's temporary file, the corrupt record a damaged last frame.)
with Daemon(mocks(hv=PERSIST, st=PERSIST, net=PERSIST)) as d:
    d.ok(op="vm_create", spec=vm_spec("keep"))
    check(d.stop() == 0, "clean exit")
    state = os.path.join(d.tmp, "state")
    with open(os.path.join(state, ".vms.snapshot.AbC123"), "w") as f:
        f.write("{ half")
    bad = bytearray(vmhjournal.frame(vmhjournal.last_seq(state) + 1, "P",
                                     "11111111-1111-4111-8111-111111111111",
                                     '{ "not": "json"'))
    bad[-3] ^= 0xFF
    vmhjournal.append(state, bytes(bad))
    d.start()
    log = d.log()
    check("interrupted write" in log, log)
    check("torn or corrupt tail" in log, log)
    check(glob.glob(os.path.join(state, "vms.journal.corrupt-*")),
          "corrupt record set aside")
    check(not glob.glob(os.path.join(state, ".vms.snapshot.*")),
          "temp file removed")
    vm = d.ok(op="vm_get", vm="keep")["vms"][0]
    check(vm["status"] == "ready" and vm["state"] == "running", vm)
    # A second vmhostd on the same state directory is refused, exit 1.
    import subprocess
    from vmhtest import VMHOSTD
    p = subprocess.run([VMHOSTD, "--config", d.config], capture_output=True,
                       text=True, timeout=30)
    check(p.returncode == 1 and "another vmhostd is using state_dir" in p.stderr,
          p.returncode, p.stderr)
    check(d.stop() == 0, "clean exit")
