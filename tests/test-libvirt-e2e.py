#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The libvirt hypervisor plugin through vmhostd's core, on libvirt's
in-process test driver (test:///default, no daemon): every operation,
its error cases, and lifecycle events reaching the core from the plugin's
event-loop thread.  Mock storage and network (their FILE sources and
bridge bindings are fake, which the test driver does not mind)."""
import os
import subprocess
import tempfile
import time

from vmhtest import (Daemon, Events, check, expect, lsan_without_tls,
                     snapshot_names, snapshot_pair, vm_spec)

lsan_without_tls()

# The test driver simulates a node of 16 CPUs and 3 GiB, which admission
# control counts (vmhostd.yaml(5), resources): overcommitted, it has room
# for this test's VMs.
CFG = """
resources: { memory_overcommit: 8 }
hypervisors:
  - { name: hv0, plugin: libvirt, uri: "test:///default", shutdown_timeout: 5 }
storage:
  - { name: pool0, plugin: mock }
networks:
  - { name: net0, plugin: mock }
"""


def state_of(d, vm, live=False):
    return d.ok(op="vm_get", vm=vm, live=live)["vms"][0]["state"]


def read_seed(path):
    """The volume id and the files of an ISO image, read with xorriso."""
    out = tempfile.mkdtemp()
    try:
        r = subprocess.run(["xorriso", "-indev", path, "-pvd_info", "-osirrox",
                            "on", "-extract", "/", out],
                           capture_output=True, text=True)
        check(r.returncode == 0, "xorriso:", r.stderr)
        m = [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines()
             if ln.startswith("Volume Id")]
        files = {}
        for f in os.listdir(out):
            with open(os.path.join(out, f), encoding="utf-8") as fh:
                files[f] = fh.read()
        return (m[0] if m else None), files
    finally:
        subprocess.run(["rm", "-rf", out])


with Daemon(CFG) as d:
    hv_dir = os.path.join(d.tmp, "state", "plugins", "hv0")
    check("domain type test (auto) on test:///default" in d.log(),
          "the auto domain type is logged once")
    ev = Events(d.sock)

    # The test driver's own domain is reported, not adopted.
    check("did not make: 'test'" in d.log(), "foreign domain reported")
    check(d.ok(op="vm_list")["vms"] == [], "nothing adopted")

    spec = vm_spec("web-1", disks=2, nics=1, guest_channel=True,
                   metadata={"owner": "ops <&'\">"})
    vm = d.ok(op="vm_create", spec=spec)["vms"][0]
    vid = vm["id"]
    check(vm["state"] == "running", vm)
    check(vm["channel"]["type"] == "unix" and
          vm["channel"]["path"].endswith(vid + ".agent"), vm)
    check(vm["metadata"] == {"owner": "ops <&'\">"}, vm)
    ev.wait(lambda e: e.get("vm_id") == vid and e.get("source") == "hv0"
            and e.get("state") == "running", "started from hv0")

    # The live view comes from libvirt.
    live = d.ok(op="vm_get", vm="web-1", live=True)["vms"][0]
    check(live["state"] == "running" and live["vcpus"] == 2 and
          live["memory"] == 1 << 30, live)
    check(live["cpu_time_ns"] > 0, "cpu time", live)
    check(live["ips"], "addresses from the driver", live)
    expect(d.call(op="vm_get", vm="no-such-vm", live=True), "not_found")

    # Same name again → already_exists, nothing new made.
    expect(d.call(op="vm_create", spec=vm_spec("web-1")), "already_exists")

    # Lifecycle and illegal transitions (the plugin's own checks: the test
    # driver would reboot a paused domain).
    r = expect(d.call(op="vm_action", vm="web-1", action="start"),
               "invalid_state")
    check(r["http"] == 409 and "running" in r["message"], r)
    check(d.ok(op="vm_action", vm="web-1", action="pause")["vms"][0]["state"]
          == "paused", "paused")
    ev.wait(lambda e: e.get("vm_id") == vid and e.get("state") == "paused",
            "paused")
    expect(d.call(op="vm_action", vm="web-1", action="reboot"), "invalid_state")
    expect(d.call(op="vm_action", vm="web-1", action="pause"), "invalid_state")
    check(state_of(d, "web-1", live=True) == "paused", "paused in libvirt")
    d.ok(op="vm_action", vm="web-1", action="resume")
    expect(d.call(op="vm_action", vm="web-1", action="resume"), "invalid_state")
    d.ok(op="vm_action", vm="web-1", action="reboot")
    check(state_of(d, "web-1", live=True) == "running", "running after reboot")
    # Graceful stop: the test driver honours the ACPI request at once.
    check(d.ok(op="vm_action", vm="web-1", action="stop")["vms"][0]["state"]
          == "stopped", "stopped")
    ev.wait(lambda e: e.get("vm_id") == vid and e.get("state") == "stopped"
            and e.get("reason") == "shutdown", "graceful stop")
    expect(d.call(op="vm_action", vm="web-1", action="stop"), "invalid_state")
    expect(d.call(op="vm_action", vm="web-1", action="pause"), "invalid_state")
    expect(d.call(op="vm_console", vm="web-1"), "invalid_state")
    d.ok(op="vm_action", vm="web-1", action="start")
    check(d.ok(op="vm_action", vm="web-1", action="stop", force=True)
          ["vms"][0]["state"] == "stopped", "forced stop")
    ev.wait(lambda e: e.get("vm_id") == vid and e.get("reason") == "destroyed",
            "destroyed")
    d.ok(op="vm_action", vm="web-1", action="start")

    # Console: the serial console's unix socket, from the live XML.
    c = d.ok(op="vm_console", vm="web-1")["console"]
    check(c["type"] == "serial" and c["path"].endswith(vid + ".console"), c)

    # Snapshots.  A revert to a running snapshot of a stopped VM starts
    # it: only the plugin's event tells the core, so the core's record
    # (read from memory, not live) shows it.
    snapshot_pair(d, "web-1")
    d.ok(op="vm_action", vm="web-1", action="stop", force=True)
    check(state_of(d, "web-1") == "stopped", "stopped before revert")
    d.ok(op="snapshot_revert", vm="web-1", id="before")
    deadline = time.time() + 10
    while state_of(d, "web-1") != "running" and time.time() < deadline:
        time.sleep(0.02)
    check(state_of(d, "web-1") == "running",
          "the revert's start reached the core's record by an event")
    expect(d.call(op="snapshot_revert", vm="web-1", id="nope"), "not_found")
    d.ok(op="snapshot_delete", vm="web-1", id="after")
    expect(d.call(op="snapshot_delete", vm="web-1", id="after"), "not_found")
    check([x["name"] for x in d.ok(op="snapshot_list", vm="web-1")
           ["snapshots"]] == ["before"], "one left")
    snapshot_names(d, "web-1")

    # Hot-plug: the test driver has no device attach, so the plugin's
    # "unsupported" reaches the caller and the core undoes the new volume.
    r = expect(d.call(op="disk_attach", vm="web-1",
                      disk={"name": "vdc", "size": 1 << 20}), "not_supported")
    check("virDomainAttachDeviceFlags" in r["message"], r)
    vols = sorted(v["name"] for v in d.ok(op="volume_list", pool="pool0")
                  ["volumes"])
    check(vols == ["web-1-vda", "web-1-vdb"], "no volume left:", vols)
    check([x["name"] for x in d.ok(op="vm_get", vm="web-1")["vms"][0]
           ["disks"]] == ["vda", "vdb"], "record unchanged")
    expect(d.call(op="disk_attach", vm="web-1",
                  disk={"name": "vda", "size": 1 << 20}), "already_exists")
    expect(d.call(op="disk_detach", vm="web-1", disk="vdz"), "not_found")

    # A second VM, defined but not started; list sees all.
    vm2 = d.ok(op="vm_create", spec=vm_spec("db-1", nics=0),
               no_start=True)["vms"][0]
    check(vm2["state"] == "stopped", vm2)
    names = sorted(v["name"] for v in d.ok(op="vm_list", live=True)["vms"])
    check(names == ["db-1", "web-1"], names)

    # Cloud-init: user-data gives the VM a NoCloud seed on a CD-ROM, an
    # ISO 9660 image with the volume id "cidata"; meta-data defaults to
    # the VM's id and name.
    ud = "#cloud-config\nhostname: ci-1\n# ünïcödé\n"
    ci = d.ok(op="vm_create", spec=vm_spec("ci-1", nics=0, user_data=ud))
    cid = ci["vms"][0]["id"]
    seed = os.path.join(hv_dir, cid + ".seed.iso")
    check(os.path.exists(seed), "no seed image at", seed)
    check(os.stat(seed).st_mode & 0o777 == 0o600, "seed mode (user-data "
          "may hold secrets):", oct(os.stat(seed).st_mode))
    volid, files = read_seed(seed)
    check(volid == "cidata", "volume id:", volid)
    check(files == {"user-data": ud, "meta-data":
                    f"instance-id: {cid}\nlocal-hostname: ci-1\n"}, files)
    # Given meta-data is kept as it is; network-config joins the seed.
    nc = "version: 2\nethernets:\n  eth0: {dhcp4: true}\n"
    ci2 = d.ok(op="vm_create", spec=vm_spec(
        "ci-2", disks=0, nics=0, meta_data="instance-id: mine\n",
        network_config=nc))
    cid2 = ci2["vms"][0]["id"]
    check(ci2["vms"][0]["network_config"] == nc, "in the record", ci2)
    check(read_seed(os.path.join(hv_dir, cid2 + ".seed.iso"))[1] ==
          {"meta-data": "instance-id: mine\n", "network-config": nc},
          "meta-data and network-config")
    # Without either, no seed.
    check(not os.path.exists(os.path.join(hv_dir, vid + ".seed.iso")),
          "a seed for a VM without cloud-init documents")
    d.ok(op="vm_delete", vm="ci-1")
    d.ok(op="vm_delete", vm="ci-2")
    check(not os.path.exists(seed), "seed left after delete")
    check(not [f for f in os.listdir(hv_dir) if f.endswith(".tmp")],
          "temporary files left:", os.listdir(hv_dir))

    # Delete a running VM: the core powers it off and undefines it;
    # libvirt keeps nothing of it, snapshots included.
    d.ok(op="vm_delete", vm="web-1")
    d.ok(op="vm_delete", vm="db-1")
    mark = len(d.log())
    check(d.ok(op="vm_list", live=True)["vms"] == [], "nothing left")
    # A domain libvirt still had would now be a VM "vmhostd did not make".
    check("did not make: 'web-1'" not in d.log()[mark:] and
          "did not make: 'db-1'" not in d.log()[mark:],
          "domains left in libvirt:", d.log()[mark:])
    expect(d.call(op="vm_get", vm="web-1"), "not_found")
    check(d.ok(op="volume_list", pool="pool0")["volumes"] == [], "volumes")
    log = d.log()
    check(f"undefined {vid}" in log, "undefined in libvirt")
    left = [f for f in os.listdir(hv_dir) if vid in f] \
        if os.path.isdir(hv_dir) else []
    check(left == [], "sockets left:", left)

    # caps: the core checks vCPUs against the driver's maximum.
    r = expect(d.call(op="vm_create", spec=vm_spec("big", vcpus=64)),
               "invalid_argument")
    check("allows (32)" in r["message"], "max vCPUs from libvirt:", r)

    # A creation libvirt refuses (the test driver's own domain has that
    # name) leaves nothing: the core undoes the volume and the port.
    r = expect(d.call(op="vm_create", spec=vm_spec("test")), "already_exists")
    check("'test'" in r["message"], r)
    check(d.ok(op="vm_list", live=True)["vms"] == [], "nothing of it")
    check(d.ok(op="volume_list", pool="pool0")["volumes"] == [], "no volume")

    # The test driver's domains live as long as the process: after a
    # restart the core's record has no domain: the core marks it missing
    # (from the plugin's list), and the plugin's not_found on undefine is
    # what lets the core's delete finish.
    gid = d.ok(op="vm_create", spec=vm_spec("ghost", nics=0,
                                            user_data="#cloud-config\n"))[
        "vms"][0]["id"]
    check(os.path.exists(os.path.join(hv_dir, gid + ".seed.iso")),
          "no seed for ghost")
    check(d.stop() == 0, "SIGTERM: exit 0")
    d.start()
    r = d.call(op="vm_get", vm="ghost", live=True)
    check(r["code"] != 0 or r["vms"][0]["state"] != "running",
          "no domain behind 'ghost':", r)
    r = expect(d.call(op="vm_action", vm="ghost", action="start"),
               "invalid_state")
    check("missing" in r["message"], r)
    d.ok(op="vm_delete", vm="ghost")
    check(d.ok(op="vm_list")["vms"] == [], "ghost deleted")
    left = [f for f in os.listdir(hv_dir) if gid in f]
    check(left == [], "files of the missing VM left:", left)

    # Unknown flags are refused.
    expect(d.call(op="vm_list", flags=1 << 30), "invalid_argument")
    check(d.stop() == 0, "SIGTERM: exit 0")
