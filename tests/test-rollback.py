#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Orchestration with rollback: a failure injected at each step of a VM
create leaves nothing behind; a failure while deleting keeps the record
(status failed) and a second delete finishes the job; delete tolerates
parts that are already gone."""
from vmhtest import Daemon, check, expect, mocks, vm_spec


def leftovers(d):
    """Everything the backends hold: (vms, volumes, ports)."""
    vms = d.ok(op="vm_list", live=True)["vms"]
    vols = d.ok(op="volume_list", pool="pool0")["volumes"]
    ports = d.ok(op="network_get", network="net0")["networks"][0]["n_ports"]
    return vms, vols, ports


def assert_clean(d, why):
    vms, vols, ports = leftovers(d)
    check(vms == [] and vols == [] and ports == 0,
          f"{why}: left behind vms={vms} volumes={vols} ports={ports}")


# (which mock, the op, the fault's extra keys) for every step of create.
CREATE_STEPS = [
    ("st", "vol_create", "mode: always"),          # first volume
    ("st", "vol_create", "mode: nth, n: 2"),       # second volume
    ("st", "vol_source", "mode: always"),          # resolving a disk source
    ("net", "port_bind", "mode: always"),          # first NIC
    ("net", "port_bind", "mode: nth, n: 2"),       # second NIC
    ("hv", "caps", "mode: always"),                # before define
    ("hv", "define", "mode: always"),              # define + start
]

for who, op, how in CREATE_STEPS:
    fault = f", faults: [ {{ op: {op}, {how}, error: no_space }} ]"
    with Daemon(mocks(**{who: fault})) as d:
        r = d.call(op="vm_create", spec=vm_spec("vm1", disks=2, nics=2))
        expect(r, "no_space", f"create with {op} failing ({how})")
        check("injected fault" in (r.get("message") or ""),
              "the message names the injected fault:", r)
        assert_clean(d, f"{op} ({how})")
        # The name is free again and a create without the fault works.
        check(d.ok(op="vm_list")["vms"] == [], "record removed")
        check(d.stop() == 0, "clean exit")

# Rollback that itself fails: define fails, and deleting the volume during
# the undo fails too → the VM stays, status failed, with both reasons; a
# delete once the fault has passed (nth) removes everything.
fault_st = ", faults: [ { op: vol_delete, mode: nth, n: 1, error: io_error } ]"
fault_hv = ", faults: [ { op: define, mode: always, error: internal } ]"
with Daemon(mocks(hv=fault_hv, st=fault_st)) as d:
    r = d.call(op="vm_create", spec=vm_spec("vm1"))
    expect(r, "internal")
    check("undoing it also failed" in r["message"], r)
    vm = d.ok(op="vm_get", vm="vm1")["vms"][0]
    check(vm["status"] == "failed", "status failed:", vm)
    check("undoing it also failed" in vm["error"], vm)
    d.ok(op="vm_delete", vm="vm1")
    assert_clean(d, "delete after a failed rollback")

# A failure while deleting keeps the record; the next delete finishes.
fault_net = ", faults: [ { op: port_unbind, mode: nth, n: 1, error: io_error } ]"
with Daemon(mocks(net=fault_net)) as d:
    d.ok(op="vm_create", spec=vm_spec("vm1"))
    r = d.call(op="vm_delete", vm="vm1")
    expect(r, "io_error")
    vm = d.ok(op="vm_get", vm="vm1")["vms"][0]
    check(vm["status"] == "failed", vm)
    d.ok(op="vm_delete", vm="vm1")
    assert_clean(d, "second delete")
    expect(d.call(op="vm_get", vm="vm1"), "not_found")

# Delete tolerates parts already gone: the backends forget everything across
# a restart (no persist), the records stay; delete still succeeds.
with Daemon(mocks()) as d:
    d.ok(op="vm_create", spec=vm_spec("vm1"))
    check(d.stop() == 0, "clean exit")
    d.start()
    vm = d.ok(op="vm_get", vm="vm1")["vms"][0]
    check(vm["status"] == "missing", "the hypervisor lost it:", vm)
    check("does not know it" in d.log(), "reconcile reported it")
    d.ok(op="vm_delete", vm="vm1")
    assert_clean(d, "delete with parts gone")

# A failed create never deletes a volume it did not make: the user's own
# volume happens to carry the name the VM's second disk would get, and the
# first disk fails.  The user's volume stays.
fault = ", faults: [ { op: vol_create, mode: nth, n: 2, error: io_error } ]"
with Daemon(mocks(st=fault)) as d:
    d.ok(op="volume_create", pool="pool0", volume={"name": "vm1-vdb", "size": 1 << 20})
    expect(d.call(op="vm_create", spec=vm_spec("vm1", disks=2)), "io_error")
    vols = [v["name"] for v in d.ok(op="volume_list", pool="pool0")["volumes"]]
    check(vols == ["vm1-vdb"], "the user's volume survives a rollback:", vols)

# A delete whose hypervisor undefine fails touches nothing else: the disks
# and NICs stay (the domain still uses them), the VM keeps its status, the
# message says so; a delete once the fault has passed removes everything.
fault_hv = ", faults: [ { op: undefine, mode: nth, n: 1, error: io_error } ]"
with Daemon(mocks(hv=fault_hv)) as d:
    d.ok(op="vm_create", spec=vm_spec("vm1", disks=2, nics=2))
    before = leftovers(d)
    status = d.ok(op="vm_get", vm="vm1")["vms"][0]["status"]
    r = d.call(op="vm_delete", vm="vm1")
    expect(r, "io_error")
    check("left untouched" in (r.get("message") or ""), r)
    after = leftovers(d)
    check(len(after[1]) == 2 and after[2] == 2 and len(after[0]) == 1,
          "undefine failed: disks and NICs kept:", before, after)
    vm = d.ok(op="vm_get", vm="vm1")["vms"][0]
    check(vm["status"] == status, "status kept:", status, vm)
    d.ok(op="vm_delete", vm="vm1")
    assert_clean(d, "delete after a failed undefine")
