#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Records survive restarts and are reconciled with the hypervisor: VMs the
hypervisor lost are marked missing (and come back when it finds them), VMs
vmhostd did not make are reported and left alone; lifecycle events keep
the records current without asking the backend."""
from vmhtest import Daemon, check, expect, mocks, vm_spec

PERSIST = ", persist: true"
ORPHAN = (", preexisting: [ { id: 0f0f0f0f-0000-4000-8000-000000000001,"
          " name: stranger, state: running } ]")

with Daemon(mocks(hv=PERSIST + ORPHAN, st=PERSIST, net=PERSIST)) as d:
    log = d.log()
    check("did not make: 'stranger'" in log and "left alone" in log, log)
    check(d.ok(op="vm_list")["vms"] == [], "an orphan is not adopted")

    vm = d.ok(op="vm_create", spec=vm_spec("db", metadata={"tier": "gold"}))["vms"][0]
    check(vm["disks"][0]["source"]["type"] == "file", "source recorded:", vm)
    d.ok(op="vm_action", vm="db", action="pause")
    check(d.stop() == 0, "clean exit")

    d.start()
    check("loaded 1 VM record" in d.log(), d.log())
    again = d.ok(op="vm_get", vm="db")["vms"][0]
    for key in ("id", "name", "vcpus", "memory", "disks", "nics", "metadata"):
        check(again[key] == vm[key], f"{key} survives a restart:", again[key], vm[key])
    check(again["state"] == "paused", "state reconciled:", again)
    # The orphan is still there and still not ours.
    live = [v["name"] for v in d.ok(op="vm_list", live=True)["vms"]]
    check(live == ["db"], live)
    d.ok(op="vm_delete", vm="db")
    check(d.stop() == 0)

# A hypervisor that lost a VM: status missing, state unknown; operations are
# refused with a clear reason; delete still works.
with Daemon(mocks()) as d:
    d.ok(op="vm_create", spec=vm_spec("lost"))
    check(d.stop() == 0)
    d.start()
    vm = d.ok(op="vm_get", vm="lost")["vms"][0]
    check(vm["status"] == "missing" and vm["state"] == "unknown", vm)
    check("network 'net0' lacks 1 port that VM records say are bound" in d.log(),
          "lost port reported:\n" + d.log())
    r = expect(d.call(op="vm_action", vm="lost", action="start"), "invalid_state")
    check("missing" in r["message"], r)
    d.ok(op="vm_delete", vm="lost")

# A port the network has but no record knows (its record was removed by
# hand): reported at start, left alone.
import os

import vmhjournal
with Daemon(mocks(net=PERSIST)) as d:
    vm = d.ok(op="vm_create", spec=vm_spec("gone"))["vms"][0]
    check(d.stop() == 0)
    vmhjournal.remove(os.path.join(d.tmp, "state"), vm["id"])
    d.start()
    check(f"network 'net0' has a port for VM {vm['id']} NIC net0 that vmhostd did not make"
          in d.log(), d.log())
    check(d.ok(op="network_get", network="net0")["networks"][0]["n_ports"] == 1,
          "the unknown port is left alone")
