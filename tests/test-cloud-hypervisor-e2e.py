#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Cloud Hypervisor plugin through vmhostd's core, on the fake VMM
(fakech.py, started as cloud-hypervisor from PATH): every operation and
its errors, lifecycle events from the event monitor, a VMM that dies on
its own (crashed), one that never answers (the API timeout; the create is
rolled back and nothing is left), one that fails at start, the vsock
CONNECT handshake to a fake guest, the console, the cloud-init seed,
snapshots, disk hot-plug, refused bindings.

With VMHOST_CH_REAL=1 (make check-cloud-hypervisor-real) the same
lifecycle runs on a real cloud-hypervisor and KVM; what only the fake can
do (fault injection, a fake guest) is left out."""
import os
import signal
import socket
import subprocess
import threading

import chtest
from chtest import REAL, api, hv_dir, vmm_pid, vmms
from vmhtest import (VMHOSTD, Daemon, Events, check, expect,
                     lsan_without_tls, snapshot_names, snapshot_pair, vm_spec,
                     wait_for)

lsan_without_tls()
ctl = chtest.setup()
NICS = 0 if REAL else 1


def state_of(d, vm, live=False):
    return d.ok(op="vm_get", vm=vm, live=live)["vms"][0]["state"]


def spec(name, **kw):
    kw.setdefault("nics", NICS)
    return vm_spec(name, **kw)


def files_of(d, vid):
    return sorted(f for f in os.listdir(hv_dir(d)) if f.startswith(vid))


def others(d, vid):
    """Files of the instance that are not vid's."""
    return [f for f in os.listdir(hv_dir(d))
            if not f.startswith(vid) and f != "snapshots"]


def fake_guest(path, reply):
    """A listener 'inside the guest' on a vsock port: answers one line."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def run():
        c, _ = srv.accept()
        data = c.recv(1024)
        c.sendall(reply + data)
        c.close()
        srv.close()
        os.unlink(path)
    threading.Thread(target=run, daemon=True).start()


d = Daemon(chtest.config(body_extra="""
  - { name: net-br, plugin: mock, binding: bridge, bridge: mockbr1,
      cidr: 10.1.0.0/24 }"""))
# The documented example is valid; check-only mode spawns nothing and
# writes nothing.
for cfg in (os.path.join(os.environ.get("top_srcdir", ".."), "etc",
                         "plugins", "cloud-hypervisor.yaml"), d.config):
    r = subprocess.run([VMHOSTD, "--check-config", "--config", cfg],
                       capture_output=True, text=True)
    check(r.returncode == 0, "check-config", cfg, r.stdout, r.stderr)
check(not os.path.exists(os.path.join(d.tmp, "state")), "nothing written")
# Bad keys are refused with what to fix.
for extra, words in ((", binary: bin/ch", "give an absolute path"),
                     (", agent_port: 0", "agent_port"),
                     (", api_timout: 5", "api_timout")):
    bad = os.path.join(d.tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write("daemon: { state_dir: state }\n" +
                chtest.config(hv_extra=extra))
    r = subprocess.run([VMHOSTD, "--check-config", "--config", bad],
                       capture_output=True, text=True)
    check(r.returncode != 0 and words in r.stderr + r.stdout, extra,
          r.stderr)
check(vmms(d.tmp) == [], "no VMM started by --check-config")

with chtest.running(d, ctl):
    ev = Events(d.sock)

    s = spec("web-1", disks=2, guest_channel=True,
             user_data="#cloud-config\nhostname: web-1\n")
    vm = d.ok(op="vm_create", spec=s)["vms"][0]
    vid = vm["id"]
    check(vm["state"] == "running", vm)
    ch = vm["channel"]
    check(ch["type"] == "vsock" and ch["port"] == 1024 and
          ch["path"] == os.path.join(hv_dir(d), vid + ".vsock"), ch)
    ev.wait(lambda e: e.get("vm_id") == vid and e.get("state") == "running"
            and e.get("reason") == "booted" and e.get("source") == "hv0",
            "booted, from the event monitor")
    pid = vmm_pid(d, vid)
    check(pid and pid in vmms(d.tmp), "one VMM per VM, in its pid file")
    check(os.getpgid(pid) == pid, "the VMM leads its own process group")
    sock = os.path.join(hv_dir(d), vid + ".sock")

    # What the VMM was given: the spec's disks, the seed, the tap, vsock.
    st, info = api(sock, "GET", "vm.info")
    check(st == 200 and info["state"] == "Running", st, info)
    cfg = info["config"]
    check([x["id"] for x in cfg["disks"]] == ["vda", "vdb", "cidata"],
          cfg["disks"])
    check(cfg["cpus"]["boot_vcpus"] == 2 and
          cfg["memory"]["size"] == 1 << 30, cfg)
    if not REAL:
        nic = vm["nics"][0]["binding"]
        check(cfg["net"] == [{"id": "net0", "tap": nic["tap"],
                              "mac": nic["mac"], "mtu": nic["mtu"]}],
              cfg["net"])
    check(cfg["vsock"]["cid"] >= 3 and
          cfg["vsock"]["socket"] == ch["path"], cfg)
    seed = os.path.join(hv_dir(d), vid + ".seed.iso")
    check(cfg["disks"][2]["path"] == seed and cfg["disks"][2]["readonly"],
          cfg["disks"])
    with open(seed, "rb") as f:
        pvd = f.read(0x8048)[0x8000:]
    check(pvd[1:6] == b"CD001" and pvd[40:46] == b"cidata",
          "an ISO 9660 image labelled cidata")

    live = d.ok(op="vm_get", vm="web-1", live=True)["vms"][0]
    check(live["state"] == "running" and live["vcpus"] == 2 and
          live["memory"] == 1 << 30 and live["memory_used"] == 1 << 30, live)
    expect(d.call(op="vm_get", vm="no-such-vm", live=True), "not_found")
    expect(d.call(op="vm_create", spec=spec("web-1")), "already_exists")

    # Lifecycle and illegal transitions.
    r = expect(d.call(op="vm_action", vm="web-1", action="start"),
               "invalid_state")
    check("running" in r["message"], r)
    check(d.ok(op="vm_action", vm="web-1", action="pause")["vms"][0]
          ["state"] == "paused", "paused")
    ev.wait(lambda e: e.get("vm_id") == vid and e.get("state") == "paused",
            "paused event")
    expect(d.call(op="vm_action", vm="web-1", action="reboot"),
           "invalid_state")
    expect(d.call(op="vm_action", vm="web-1", action="pause"),
           "invalid_state")
    d.ok(op="vm_action", vm="web-1", action="resume")
    ev.wait(lambda e: e.get("vm_id") == vid and e.get("reason") == "resumed",
            "resumed event")
    expect(d.call(op="vm_action", vm="web-1", action="resume"),
           "invalid_state")
    d.ok(op="vm_action", vm="web-1", action="reboot")
    ev.wait(lambda e: e.get("vm_id") == vid and e.get("reason") == "rebooted",
            "rebooted event")
    check(state_of(d, "web-1", live=True) == "running", "running")

    # Graceful stop: the power button; the guest powers off and its VMM
    # exits; nothing of the VMM is left.
    if not REAL:
        check(d.ok(op="vm_action", vm="web-1", action="stop")["vms"][0]
              ["state"] == "stopped", "stopped")
        ev.wait(lambda e: e.get("vm_id") == vid and
                e.get("state") == "stopped" and e.get("reason") == "shutdown",
                "graceful stop")
        check(pid not in vmms(d.tmp), "the VMM exited")
        check(files_of(d, vid) == [vid + ".json", vid + ".log",
                                   vid + ".seed.iso"], files_of(d, vid))
        expect(d.call(op="vm_action", vm="web-1", action="stop"),
               "invalid_state")
        expect(d.call(op="vm_action", vm="web-1", action="pause"),
               "invalid_state")
        expect(d.call(op="vm_console", vm="web-1"), "invalid_state")
        d.ok(op="vm_action", vm="web-1", action="start")
        check(vmm_pid(d, vid) != pid, "a new VMM")
        # A guest that ignores the power button: powered off at the
        # timeout (the API's vm.shutdown, vmm.shutdown).
        ctl.set(ignore_power_button=True)
        d.ok(op="vm_action", vm="web-1", action="stop", timeout=1)
        ev.wait(lambda e: e.get("vm_id") == vid and
                e.get("reason") == "destroyed", "powered off at the timeout")
        check("did not shut down within 1 s" in d.log(), "logged")
        ctl.set()
        d.ok(op="vm_action", vm="web-1", action="start")
    d.ok(op="vm_action", vm="web-1", action="stop", force=True)
    ev.wait(lambda e: e.get("vm_id") == vid and e.get("reason") == "destroyed"
            and e.get("state") == "stopped", "forced stop")
    check(vmm_pid(d, vid) is None, "no VMM")
    d.ok(op="vm_action", vm="web-1", action="start")

    # Console: the serial port's unix socket.
    c = d.ok(op="vm_console", vm="web-1")["console"]
    check(c["type"] == "serial" and
          c["path"] == os.path.join(hv_dir(d), vid + ".console"), c)
    if not REAL:
        con = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        con.connect(c["path"])
        check(con.recv(100).startswith(b"fake cloud-hypervisor serial"),
              "the console answers")
        con.close()

        # The guest channel: CONNECT <port> through the vsock socket to a
        # listener in the guest; a port nobody listens on is closed.
        fake_guest(ch["path"] + ".guest-1024", b"pong:")
        a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        a.settimeout(30)
        a.connect(ch["path"])
        a.sendall(b"CONNECT 1024\n")
        f = a.makefile("rb")
        check(f.readline().startswith(b"OK "), "handshake")
        a.sendall(b"ping")
        check(f.read(9) == b"pong:ping", "bytes both ways")
        a.close()
        b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        b.settimeout(30)
        b.connect(ch["path"])
        b.sendall(b"CONNECT 4444\n")
        check(b.recv(100) == b"", "no listener on 4444: closed")
        b.close()

    # Snapshots (CH snapshots a paused VM: the plugin pauses and resumes).
    snapshot_pair(d, "web-1")
    check(state_of(d, "web-1", live=True) == "running", "resumed after")
    d.ok(op="vm_action", vm="web-1", action="stop", force=True)
    expect(d.call(op="snapshot_create", vm="web-1", name="off"),
           "invalid_state")
    d.ok(op="snapshot_revert", vm="web-1", id="before")
    check(state_of(d, "web-1", live=True) == "running", "restored, resumed")
    ev.wait(lambda e: e.get("vm_id") == vid and e.get("reason") == "restored",
            "restored event")
    check([x["current"] for x in d.ok(op="snapshot_list", vm="web-1")
           ["snapshots"]] == [True, False], "current after revert")
    expect(d.call(op="snapshot_revert", vm="web-1", id="nope"), "not_found")
    d.ok(op="snapshot_delete", vm="web-1", id="after")
    expect(d.call(op="snapshot_delete", vm="web-1", id="after"), "not_found")
    check([x["name"] for x in d.ok(op="snapshot_list", vm="web-1")
           ["snapshots"]] == ["before"], "one left")
    snapshot_names(d, "web-1")

    # Disk hot-plug.
    sock = os.path.join(hv_dir(d), vid + ".sock")
    d.ok(op="disk_attach", vm="web-1", disk={"name": "vdc", "size": 1 << 20})
    ids = [x["id"] for x in api(sock, "GET", "vm.info")[1]["config"]["disks"]]
    check("vdc" in ids, ids)
    expect(d.call(op="disk_attach", vm="web-1",
                  disk={"name": "vda", "size": 1 << 20}), "already_exists")
    d.ok(op="disk_detach", vm="web-1", disk="vdc")
    ids = [x["id"] for x in api(sock, "GET", "vm.info")[1]["config"]["disks"]]
    check("vdc" not in ids, ids)
    expect(d.call(op="disk_detach", vm="web-1", disk="vdz"), "not_found")
    expect(d.call(op="disk_detach", vm="web-1", disk="cidata"), "not_found")

    # A VM defined, not started: no process until it starts.
    vm2 = d.ok(op="vm_create", spec=spec("db-1", nics=0),
               no_start=True)["vms"][0]
    check(vm2["state"] == "stopped" and vmm_pid(d, vm2["id"]) is None, vm2)
    names = sorted(v["name"] for v in d.ok(op="vm_list", live=True)["vms"])
    check(names == ["db-1", "web-1"], names)
    d.ok(op="vm_delete", vm="db-1")

    if not REAL:
        # The VMM's error array reaches the caller, mapped to a code.
        ctl.set(fail={"vm.pause": [500, ["Error from API",
                                         "The VM could not be paused",
                                         "boom"]]})
        r = expect(d.call(op="vm_action", vm="web-1", action="pause"),
                   "io_error")
        check("The VM could not be paused: boom (HTTP 500)" in r["message"],
              r)
        ctl.set(fail={"vm.reboot": [405, ["Invalid state transition"]]})
        expect(d.call(op="vm_action", vm="web-1", action="reboot"),
               "invalid_state")
        ctl.set()

        # A VMM that exits on its own: crashed, with an event; its files go;
        # the VM starts again.
        pid = vmm_pid(d, vid)
        os.kill(pid, signal.SIGKILL)
        ev.wait(lambda e: e.get("vm_id") == vid and
                e.get("state") == "crashed" and
                e.get("reason") == "vmm-killed-by-signal-9", "crashed")
        check(state_of(d, "web-1") == "crashed", "crashed in the record")
        wait_for(lambda: not os.path.exists(sock), "the socket removed")
        d.ok(op="vm_action", vm="web-1", action="start")
        check(state_of(d, "web-1", live=True) == "running", "running again")

        # A VMM that never answers: the API timeout, then nothing left of
        # the VM (no record, no files, no process, no volume).
        ctl.set(hang=["vmm.ping"])
        before = set(vmms(d.tmp))
        r = expect(d.call(op="vm_create", spec=spec("slow-1")), "timeout")
        check("did not answer within 10000 ms" in r["message"], r)
        ctl.set()
        check(set(vmms(d.tmp)) == before, "the hung VMM was killed")
        check([v["name"] for v in d.ok(op="vm_list")["vms"]] == ["web-1"],
              "no VM left")
        check(others(d, vid) == [], "no files left:", others(d, vid))
        vols = [v["name"] for v in d.ok(op="volume_list", pool="pool0")
                ["volumes"]]
        check(not any(v.startswith("slow-1") for v in vols), vols)

        # A VMM that fails at start: its last words in the error.
        ctl.set(exit_at_start=3)
        r = expect(d.call(op="vm_create", spec=spec("bad-1")), "io_error")
        check("exited before its API was up" in r["message"] and
              "fake failure at start" in r["message"], r)
        ctl.set()
        check(others(d, vid) == [], "nothing left:", others(d, vid))

        # What CH cannot attach is refused before anything runs.
        r = expect(d.call(op="vm_create",
                          spec=vm_spec("br-1", nics=0, disks=1) |
                          {"nics": [{"name": "net0", "network": "net-br"}]}),
                   "not_supported")
        check("cannot attach" in r["message"], "the caps say tap only:", r)
        r = expect(d.call(op="vm_create", spec=spec("bios-1",
                                                      firmware="bios")),
                   "invalid_argument")
        check("firmware 'bios'" in r["message"], r)
        check(set(vmms(d.tmp)) == before, "no VMM for refused VMs")

    # Delete: VM, VMM, files and snapshots gone.
    pid = vmm_pid(d, vid)
    d.ok(op="vm_delete", vm="web-1")
    check(pid not in vmms(d.tmp), "the VMM exited")
    check(os.listdir(hv_dir(d)) in ([], ["snapshots"]), os.listdir(hv_dir(d)))
    check(not os.path.exists(os.path.join(hv_dir(d), "snapshots", vid)),
          "snapshots removed")
    check(vmms(d.tmp) == [], "no VMM left")
    check(d.stop() == 0, "clean exit")

# Without the event monitor: states from vm.info and the operations, exits
# from the process (our child's wait status).
if not REAL:
    ctl = chtest.setup()
    d = Daemon(chtest.config(hv_extra=", event_monitor: false"))
    with chtest.running(d, ctl):
        ev = Events(d.sock)
        vid = d.ok(op="vm_create", spec=spec("quiet-1"))["vms"][0]["id"]
        args = [a for p in vmms(d.tmp)
                for a in open(f"/proc/{p}/cmdline").read().split("\0")]
        check("--event-monitor" not in args, "no event monitor:", args)
        check(d.ok(op="vm_action", vm="quiet-1", action="pause")["vms"][0]
              ["state"] == "paused", "paused, from vm.info")
        d.ok(op="vm_action", vm="quiet-1", action="resume")
        os.kill(vmm_pid(d, vid), signal.SIGKILL)
        ev.wait(lambda e: e.get("vm_id") == vid and
                e.get("state") == "crashed", "crashed without the monitor")
        d.ok(op="vm_action", vm="quiet-1", action="start")
        d.ok(op="vm_action", vm="quiet-1", action="stop")
        ev.wait(lambda e: e.get("vm_id") == vid and
                e.get("state") == "stopped" and e.get("reason") == "shutdown",
                "a guest power-off (exit 0) is a stop")
        d.ok(op="vm_delete", vm="quiet-1")
        check(d.stop() == 0, "clean exit")
print("ok")
