#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The iscsi storage plugin through vmhostd against a real target: one
tgtd on 127.0.0.1 (iscsitgt.py) with two targets, the first in discovery
order wanting CHAP and naming our initiator in its ACL, LUNs of different
sizes; the mock hypervisor and network.

Checked: discovery lists every LUN of both targets, named after its device
identifier (stable across restarts), located by portal, IQN and LUN; a
wrong CHAP secret is an error that names the target (health, the pool's
message) and hides nothing else; a LUN added at run time shows at
the next refresh (cached pools keep their table); volume create/delete
answer not_supported; a VM gets a LUN, the claim survives a vmhostd
restart, a second VM cannot have it, the pool counts it; the LUN's data is
zeroed (read back through libiscsi) after the VM is deleted with
wipe_on_release; a LUN in use that vanishes is reported (log, event,
health) and kept, and is back when the target shows it again; tgtd
stopped: "unavailable" at once, then recovery by itself; the config
refusals (password file open to others, a bad portal).  Needs tgt and
libiscsi-bin; skips without them (fails under CI=true)."""
import json
import os
import socket
import subprocess
import threading
import time

from iscsitgt import Tgtd, require_iscsi
from vmhtest import BUILDDIR, VMHOSTD, Daemon, check, expect, wait_for

require_iscsi()
MiB = 1 << 20
INIT = "iqn.2024-01.org.vmhost.test:host1"
SECURE = "iqn.2024-01.org.vmhost.test:secure"
OPEN = "iqn.2024-01.org.vmhost.test:open"
IO = os.path.join(BUILDDIR, "iscsi-io")

d = Daemon("")
t = Tgtd(os.path.join(d.tmp, "tgt"))
good = os.path.join(d.tmp, "chap.secret")
bad = os.path.join(d.tmp, "wrong.secret")
for path, secret in ((good, "chapsecret12"), (bad, "notthesecret")):
    with open(path, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)


def make_targets(create=True):
    """The open target first, so that tgtd lists the CHAP one first."""
    tid = t.target(OPEN)
    for lun, size in ((1, 16), (2, 48), (3, 8)):
        t.lun(tid, lun, size * MiB, create=create)
    tid = t.target(SECURE, allow=None)
    t.allow_name(tid, INIT)
    t.chap(tid, "vmh", "chapsecret12")
    for lun, size in ((1, 64), (2, 32)):
        t.lun(tid, lun, size * MiB, create=create)


def pool(name, extra):
    return f"""  - name: {name}
    plugin: iscsi
    portals: ["{t.portal}"]
    initiator_name: {INIT}
{extra}"""


def config():
    return f"""
hypervisors:
  - {{ name: hv0, plugin: mock, persist: true }}
networks:
  - {{ name: net0, plugin: mock }}
storage:
{pool("san", f'''    target_auth:
      - {{ iqn: "{SECURE}", username: vmh, password_file: {good} }}
    refresh_interval: 3600
    wipe_on_release: true''')}
{pool("fresh", f'''    username: vmh
    password_file: chap.secret
    refresh_interval: 0''')}
{pool("wrong", f'''    username: vmh
    password_file: {bad}''')}
"""


def volumes(p):
    """{capacity in MiB: volume} of pool p."""
    return {v["capacity"] // MiB: v
            for v in d.ok(op="volume_list", pool=p)["volumes"]}


def pool_info(p):
    return d.ok(op="pool_get", pool=p)["pools"][0]


def health(name):
    checks = d.call(op="health").get("checks", [])
    return [c for c in checks if c["name"] == name][0]


def lun_bytes(iqn, lun, length, offset=0):
    r = subprocess.run([IO, INIT, f"iscsi://vmh%chapsecret12@{t.portal}/"
                        f"{iqn}/{lun}", "read", str(offset), str(length)],
                       capture_output=True)
    check(r.returncode == 0, "iscsi-io read:", r.stderr)
    return r.stdout


def lun_write(iqn, lun, data, offset=0):
    r = subprocess.run([IO, INIT, f"iscsi://vmh%chapsecret12@{t.portal}/"
                        f"{iqn}/{lun}", "write", str(offset)], input=data,
                       capture_output=True)
    check(r.returncode == 0, "iscsi-io write:", r.stderr)


def vm(name, pool_name, volume):
    return {"name": name, "vcpus": 1, "memory": 256 * MiB,
            "disks": [{"name": "vda", "pool": pool_name, "volume": volume}],
            "nics": []}


class Events:
    """The daemon's event stream, read by a thread."""

    def __init__(self):
        self.lines = []
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(d.sock)
        self.s.sendall(b'{"op":"events"}\n')
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        buf = b""
        while True:
            try:
                chunk = self.s.recv(65536)
            except OSError:   # closed by the test
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.lines.append(json.loads(line))

    def wait(self, reason, timeout=30, **fields):
        """The first event with `reason` and `fields` (object=…, vm_id=…)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for e in self.lines:
                ev = e.get("event") or {}
                if ev.get("reason") == reason and all(
                        ev.get(k) == v for k, v in fields.items()):
                    return ev
            time.sleep(0.05)
        check(False, "no event", reason, fields, "in", self.lines)


def check_config_refused(body, words):
    path = os.path.join(d.tmp, "refused.yaml")
    with open(path, "w") as f:
        f.write(f"daemon: {{ state_dir: state }}\n{body}")
    r = subprocess.run([VMHOSTD, "--check-config", "--config", path],
                       capture_output=True, text=True)
    check(r.returncode == 2 and all(w in r.stderr for w in words),
          "refused with", words, "->", r.returncode, r.stderr)


try:
    t.start()
    make_targets()
    d.write_config(config())
    with d:
        # Discovery: every LUN of both targets, the CHAP target listed
        # first by tgtd; names from the device identifier.
        r = subprocess.run(["iscsi-ls", "-i", INIT, f"iscsi://{t.portal}"],
                           capture_output=True, text=True)
        check(r.stdout.split("\n")[0].startswith(f"Target:{SECURE}"),
              "the CHAP target is first in discovery:", r.stdout)
        san = volumes("san")
        check(sorted(san) == [8, 16, 32, 48, 64], "san:", san)
        names = {size: v["name"] for size, v in san.items()}
        check(all(n.startswith("naa.") for n in names.values()), names)
        check(len(set(names.values())) == 5, "names differ:", names)
        check({s: v["name"] for s, v in volumes("fresh").items()} == names,
              "the same names in every pool")
        p = pool_info("san")
        check(p["capacity"] == 168 * MiB and p["allocation"] == 0
              and p["available"] == 168 * MiB and p["n_volumes"] == 5
              and p["message"] is None, p)
        v = d.ok(op="volume_get", pool="san", volume=names[64])["volumes"][0]
        check(v["capacity"] == 64 * MiB and v["format"] == "raw", v)
        # Where it lives: portal, target IQN and LUN.
        check(v["location"] == f"iscsi://{t.portal}/{SECURE}/1", v)
        check(san[16]["location"] == f"iscsi://{t.portal}/{OPEN}/1", san)
        expect(d.call(op="volume_get", pool="san", volume="naa.00"),
               "not_found")

        # A wrong secret: the CHAP target is refused, named, and hides
        # nothing else.
        check(sorted(volumes("wrong")) == [8, 16, 48], volumes("wrong"))
        h = health("wrong")
        check(h["status"] != "ok" and SECURE in h["message"]
              and "refused the login" in h["message"], h)
        p = pool_info("wrong")
        check(SECURE in p["message"] and "refused the login" in p["message"]
              and OPEN not in p["message"], "the pool says who refused", p)
        check(SECURE in d.log() and "Authentication failure" in d.log(),
              "the refusal is logged")
        check(health("san")["status"] == "ok", health("san"))

        # LUNs are made on the array, not here.
        r = expect(d.call(op="volume_create", pool="san",
                          volume={"name": "new", "size": MiB}),
                   "not_supported")
        check("provisioned on the array" in r["message"], r)
        expect(d.call(op="volume_delete", pool="san", volume=names[8]),
               "not_supported")

        # A LUN added at run time: at once where every list refreshes;
        # a cached pool keeps its table until its refresh is due.
        t.lun(1, 4, 24 * MiB)
        check(24 in volumes("fresh"), "new LUN listed:", volumes("fresh"))
        check(24 not in volumes("san"), "the cached pool waits")
        names[24] = volumes("fresh")[24]["name"]

        # A VM with a LUN: the pool counts it; the claim survives a
        # restart; a second VM cannot have it.
        lun_write(SECURE, 1, b"\xa5" * 4096)
        d.ok(op="vm_create", spec=vm("a", "san", names[64]))
        p = pool_info("san")
        check(p["allocation"] == 64 * MiB
              and p["available"] == 104 * MiB, p)
        check(d.stop() == 0, "clean stop")
        state = os.path.join(d.tmp, "state", "plugins", "san", "claims")
        with open(state) as f:
            check(f.read().startswith("used " + names[64]), "claims file")
        check(os.stat(state).st_mode & 0o777 == 0o600, "claims mode")
        d.start()
        p = pool_info("san")
        check(p["allocation"] == 64 * MiB, "claim kept:", p)
        check(p["n_volumes"] == 6, "a start scans anew:", p)
        expect(d.call(op="vm_create", spec=vm("b", "san", names[64])), "busy")

        # Deleted with wipe_on_release: zeroes, then offered again.
        check(lun_bytes(SECURE, 1, 4096) == b"\xa5" * 4096, "pattern there")
        d.ok(op="vm_delete", vm="a")
        wait_for(lambda: "wiped " + names[64] in d.log(), "the wipe")
        check(lun_bytes(SECURE, 1, 64 * MiB) == bytes(64 * MiB),
              "the LUN reads as zeroes")
        p = pool_info("san")
        check(p["allocation"] == 0 and p["available"] == 192 * MiB, p)
        d.ok(op="vm_create", spec=vm("b", "san", names[64]))
        d.ok(op="vm_delete", vm="b")

        # A LUN in use vanishes: reported by the pool and on the VM, kept,
        # and back when it returns.
        ev = Events()
        c = d.ok(op="vm_create", spec=vm("c", "fresh", names[8]))["vms"][0]
        t.drop_lun(1, 3)
        check(8 in volumes("fresh"), "a used LUN is never dropped")
        h = health("fresh")
        check(h["status"] != "ok" and "vanished" in h["message"], h)
        check("vanished" in pool_info("fresh")["message"], pool_info("fresh"))
        e = ev.wait("volume-vanished", object=names[8])
        check(OPEN in e["message"] and "in use" in e["message"], e)
        e = ev.wait("volume-vanished", vm_id=c["id"])
        check(e["type"] == "vm_state" and e["source"] == "core"
              and "VM 'c': disk vda" in e["message"], e)
        r = d.ok(op="vm_get", vm="c")["vms"][0]
        check(r["status"] == "ready" and r["error"].startswith(
            f"disk vda: volume fresh/{names[8]} vanished"), r)
        check("vanished from the target" in d.log(), "logged")
        metrics = d.ok(op="metrics")["text"]
        check('vmhost_plugin_luns_vanished{instance="fresh"} 1' in metrics,
              "gauge")
        t.lun(1, 3, 8 * MiB, create=False)
        check(8 in volumes("fresh"), "back")
        ev.wait("volume-back", object=names[8])
        ev.wait("volume-back", vm_id=c["id"])
        check(d.ok(op="vm_get", vm="c")["vms"][0]["error"] is None, "cleared")
        check(health("fresh")["status"] == "ok", health("fresh"))
        check(pool_info("fresh")["message"] is None, pool_info("fresh"))
        d.ok(op="vm_delete", vm="c")
        ev.s.close()

        # The target goes away: "unavailable" at once; back by itself.
        t.stop()
        tm = time.time()
        r = expect(d.call(op="volume_list", pool="fresh"), "io_error")
        check("unavailable" in r["message"] and t.portal in r["message"], r)
        check(time.time() - tm < 5, "failed fast:", time.time() - tm)
        check(health("fresh")["status"] != "ok", "health while down")
        t.start()
        make_targets(create=False)
        check(sorted(volumes("fresh")) == [8, 16, 32, 48, 64],
              "recovered:", volumes("fresh"))
        check(health("fresh")["status"] == "ok", health("fresh"))
        check(d.stop() == 0, "clean stop")

        # Config refusals (vmhostd --check-config).
        os.chmod(good, 0o644)
        check_config_refused(
            "storage:\n" + pool("s", f"    username: vmh\n"
                                     f"    password_file: {good}"),
            ["password_file", "chmod 600"])
        os.chmod(good, 0o600)
        check_config_refused(
            "storage:\n  - { name: s, plugin: iscsi, portals: [\"::1:3260\"] }",
            ["IPv6", "brackets"])
        check_config_refused(
            "storage:\n" + pool("s", "    username: vmh"), ["password_file"])
        example = os.path.join(os.environ.get("top_srcdir", ".."), "etc",
                               "plugins", "iscsi.yaml")
        r = subprocess.run([VMHOSTD, "--check-config", "--config", example],
                           capture_output=True, text=True)
        check(r.returncode == 0, "the documented example:", r.stderr)
        t.stop()   # before d's directory, which holds tgtd's socket, goes
finally:
    t.stop()
