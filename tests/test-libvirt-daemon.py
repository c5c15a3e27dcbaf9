#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The libvirt plugin against a real libvirtd: a private one (system mode,
QEMU driver, state under this test's directory, its own mount namespace)
that the test restarts under a running vmhostd.  Accelerator: TCG
(domain_type: qemu) — on the build machines /dev/kvm exists but cannot run
a guest kernel.  The guest is lvguest.py's, booted with vmh.acpi=1 so that
it honours a graceful shutdown.

Checked: a guest created through vmhostd boots and talks on its channel; a
graceful stop the guest honours ends before the timeout, without a forced
power-off; with libvirtd stopped, a live call fails at once with the
"unavailable" error (io_error, HTTP 502, gRPC UNAVAILABLE) while reads from
memory keep answering; once libvirtd is back the plugin reconnects by
itself, the running guest is there again, and its lifecycle events reach
the core again (the guest's own power-off updates the record); a
restarted vmhostd finds the guest's channel again; delete
leaves no domain and no file.  Needs libvirt-daemon, and what
test-libvirt-qemu.py needs; skips without them, fails under CI=true."""
import atexit
import os
import subprocess
import time

from lvguest import (Libvirtd, build_initrd, check_nothing_left, first_line,
                     guest_config, kernel, require_qemu)
from vmhtest import Daemon, check, expect, vm_spec

require_qemu()
vmlinuz, mods = kernel()
d = Daemon("")
lv = Libvirtd(os.path.join(d.tmp, "libvirt"))
atexit.register(lv.cleanup)
initrd = build_initrd(d.tmp, mods)
pool = os.path.join(d.tmp, "pool")
os.makedirs(pool)
lv.start()
d.write_config(guest_config(lv.uri, pool))


def domains():
    r = subprocess.run(["virsh", "-c", lv.uri, "list", "--all", "--name"],
                       capture_output=True, text=True, check=True)
    return [x for x in r.stdout.split() if x]


def record(vm):
    return d.ok(op="vm_get", vm=vm)["vms"][0]


with d:
    print("accelerator: TCG (domain_type qemu)")
    vm = d.ok(op="vm_create",
              spec=vm_spec("guest1", disks=1, nics=0, vcpus=1,
                           memory=128 << 20, kernel=vmlinuz, initrd=initrd,
                           cmdline="console=ttyS0 quiet panic=-1 vmh.acpi=1",
                           guest_channel=True))["vms"][0]
    vid = vm["id"]
    chan = vm["channel"]["path"]
    check(domains() == ["guest1"], "libvirtd's domains:", domains())
    s, line = first_line(chan, time.time() + 120)
    check(line.startswith("hello from guest"), line)

    # A graceful stop the guest honours: it powers off on the ACPI
    # request, long before the timeout.
    t = time.time()
    r = d.ok(op="vm_action", vm="guest1", action="stop", timeout=60)
    check(r["vms"][0]["state"] == "stopped", r)
    print(f"graceful stop honoured after {time.time() - t:.1f} s")
    check(time.time() - t < 50, "the guest took the whole timeout")
    check("powering off" not in d.log(), "a forced power-off")
    s.close()

    d.ok(op="vm_action", vm="guest1", action="start")
    s, line = first_line(chan, time.time() + 120)
    check(line.startswith("hello from guest"), "after restart:", line)

    # libvirtd goes away (its guests keep running).
    lv.stop()
    deadline = time.time() + 30
    while True:
        r = d.call(op="vm_get", vm="guest1", live=True)
        if r["code"] != 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    r = expect(r, "io_error", "while libvirtd is down")
    check(r["http"] == 502 and "unavailable" in r["message"], r)
    t = time.time()
    expect(d.call(op="vm_action", vm="guest1", action="reboot"), "io_error")
    check(time.time() - t < 5, "a call while disconnected waited",
          time.time() - t)
    check(record("guest1")["state"] == "running", "the record answers")

    # Back: the plugin reconnects by itself and finds the guest running.
    t = time.time()
    lv.start()
    deadline = time.time() + 90
    while True:
        r = d.call(op="vm_get", vm="guest1", live=True)
        if r["code"] == 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    check(r["code"] == 0, "no reconnect:", r)
    print(f"answering again {time.time() - t:.1f} s after libvirtd started")
    check(r["vms"][0]["state"] == "running", r)
    check("reconnected to" in d.log(), "reconnect logged")

    # Events flow again: only the event tells the core of the guest's own
    # power-off.
    s.sendall(b"poweroff\n")
    deadline = time.time() + 60
    while time.time() < deadline and record("guest1")["state"] != "stopped":
        time.sleep(0.1)
    check(record("guest1")["state"] == "stopped",
          "the guest's power-off after the reconnect reached the record")
    s.close()

    # A restarted vmhostd reads the channel of a domain it did not define
    # itself from libvirt.
    check(d.stop() == 0, "SIGTERM: exit 0")
    d.start()
    live = d.ok(op="vm_get", vm="guest1", live=True)["vms"][0]
    check(live["channel"].get("path") == chan, "channel after restart:", live)

    d.ok(op="vm_delete", vm="guest1")
    check(domains() == [], "domains left:", domains())
    check_nothing_left(d, vid, pool)
    check(d.stop() == 0, "SIGTERM: exit 0")
