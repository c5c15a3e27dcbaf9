#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmhostd killed (-9) under running Cloud Hypervisor VMMs: they keep
running (each leads its own process group), and the restarted daemon
adopts them from their pid files and API sockets -- never starting a VM
twice -- with their lifecycle events (the event monitor's FIFO, reopened)
and their exits (a pidfd on a process that is no longer our child).  A
VMM that died while vmhostd was down reads as crashed and its stale
socket and pid file are removed, as are the files of a VM without a
record; a VM that was stopped stays stopped.

With VMHOST_CH_REAL=1 the same runs on a real cloud-hypervisor."""
import os
import signal
import uuid

import chtest
from chtest import hv_dir, vmm_pid, vmms
from vmhtest import Daemon, Events, check, expect, lsan_without_tls, vm_spec
from vmhtest import wait_for

lsan_without_tls()
ctl = chtest.setup()
NICS = 0 if chtest.REAL else 1


def live_state(d, vm):
    return d.ok(op="vm_get", vm=vm, live=True)["vms"][0]["state"]


d = Daemon(chtest.config())
with chtest.running(d, ctl):
    ids, pids = {}, {}
    for name in ("keep", "die-later", "gone"):
        vm = d.ok(op="vm_create", spec=vm_spec(name, nics=NICS))["vms"][0]
        ids[name] = vm["id"]
        pids[name] = vmm_pid(d, vm["id"])
    off = d.ok(op="vm_create", spec=vm_spec("off", nics=NICS),
               no_start=True)["vms"][0]["id"]
    d.ok(op="vm_action", vm="keep", action="pause")

    check(d.kill9() == -signal.SIGKILL, "vmhostd killed")
    check(all(p in vmms(d.tmp) for p in pids.values()),
          "the VMMs outlive vmhostd")
    # One VMM dies while nobody watches: its socket and pid file stay.
    os.kill(pids["gone"], signal.SIGKILL)
    wait_for(lambda: pids["gone"] not in vmms(d.tmp), "the VMM gone")
    gone_sock = os.path.join(hv_dir(d), ids["gone"] + ".sock")
    check(os.path.exists(gone_sock), "a stale socket")

    # The files of a VM nobody has a record of, its VMM gone.
    orphan = os.path.join(hv_dir(d), str(uuid.uuid4()))
    for suffix, text in ((".sock", ""), (".pid", f"{pids['gone']}\n")):
        with open(orphan + suffix, "w") as f:
            f.write(text)

    d.start()
    ev = Events(d.sock)
    check(not os.path.exists(orphan + ".sock") and
          not os.path.exists(orphan + ".pid"), "orphan files removed")
    check(f"removing the stale socket {orphan}.sock" in d.log(), "logged")
    log = d.log()
    check(f"VM {ids['keep']}: adopted its running VMM (pid {pids['keep']}, "
          "paused)" in log, "keep adopted")
    check(f"VM {ids['die-later']}: adopted" in log, "die-later adopted")
    check(vmm_pid(d, ids["keep"]) == pids["keep"] and
          sorted(vmms(d.tmp)) == sorted([pids["keep"], pids["die-later"]]),
          "nothing started twice:", vmms(d.tmp), pids)
    check(live_state(d, "keep") == "paused", "state from the VMM")
    check(live_state(d, "gone") == "crashed", "a VMM gone is a crash")
    check(not os.path.exists(gone_sock) and vmm_pid(d, ids["gone"]) is None,
          "the stale socket and pid file removed")
    check(live_state(d, "off") == "stopped" and vmm_pid(d, off) is None,
          "a stopped VM stays stopped")
    expect(d.call(op="vm_action", vm="keep", action="start"),
           "invalid_state")

    # The adopted VMM's events come through its reopened FIFO.
    d.ok(op="vm_action", vm="keep", action="resume")
    ev.wait(lambda e: e.get("vm_id") == ids["keep"] and
            e.get("reason") == "resumed", "resumed, from the event monitor")
    # An adopted VMM that dies (not our child: its pidfd tells).
    os.kill(pids["die-later"], signal.SIGKILL)
    ev.wait(lambda e: e.get("vm_id") == ids["die-later"] and
            e.get("state") == "crashed" and e.get("reason") == "vmm-gone",
            "crash of an adopted VMM")
    # An adopted VMM stopped through its API exits cleanly.
    d.ok(op="vm_action", vm="keep", action="stop", force=True)
    ev.wait(lambda e: e.get("vm_id") == ids["keep"] and
            e.get("state") == "stopped", "adopted VMM stopped")
    check(pids["keep"] not in vmms(d.tmp), "its VMM exited")
    for name in ("keep", "gone"):
        d.ok(op="vm_action", vm=name, action="start")
        check(live_state(d, name) == "running", name, "runs again")
    for name in ("keep", "die-later", "gone", "off"):
        d.ok(op="vm_delete", vm=name)
    check(vmms(d.tmp) == [], "no VMM left")
    check(d.stop() == 0, "clean exit")
print("ok")
