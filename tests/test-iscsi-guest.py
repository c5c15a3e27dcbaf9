#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""An iSCSI LUN as a real guest's disk: the iscsi pool hands the libvirt
plugin a network source with CHAP (a libvirt secret), QEMU opens it with
its own libiscsi driver, the guest (lvguest.py's, TCG, on a private
libvirtd) writes a pattern on it, and the test reads the pattern back
through libiscsi (iscsi-io).  Delete leaves no domain and releases the
LUN.  One guest boot.  Needs what test-libvirt-daemon.py and
test-iscsi-pool.py need, and qemu-block-extra (QEMU's iSCSI driver);
skips without them, fails under CI=true."""
import atexit
import glob
import os
import subprocess
import time

from iscsitgt import Tgtd, require_iscsi
from lvguest import (Libvirtd, build_initrd, first_line, kernel, read_line,
                     require_qemu)
from vmhtest import BUILDDIR, Daemon, check, skip

require_qemu()
require_iscsi()
if not glob.glob("/usr/lib/*/qemu/block-iscsi.so"):
    skip("QEMU has no iSCSI driver (qemu-block-extra)")
MiB = 1 << 20
IQN = "iqn.2024-01.org.vmhost.test:guest"
INIT = "iqn.2024-01.org.vmhost.test:host1"
IO = os.path.join(BUILDDIR, "iscsi-io")

vmlinuz, mods = kernel()
d = Daemon("")
lv = Libvirtd(os.path.join(d.tmp, "libvirt"))
t = Tgtd(os.path.join(d.tmp, "tgt"))
atexit.register(lv.cleanup)
atexit.register(t.stop)
initrd = build_initrd(d.tmp, mods)
secret = os.path.join(d.tmp, "chap.secret")
with open(secret, "w") as f:
    f.write("guestsecret1\n")
os.chmod(secret, 0o600)

t.start()
# QEMU logs in with its own initiator name: the ACL allows the address.
tid = t.target(IQN, allow="127.0.0.1")
t.chap(tid, "vmh", "guestsecret1")
t.lun(tid, 1, 32 * MiB)
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
    username: vmh
    password_file: {secret}
networks:
  - {{ name: net0, plugin: mock }}
""")

with d:
    vol = d.ok(op="volume_list", pool="san")["volumes"][0]["name"]
    vm = d.ok(op="vm_create", spec={
        "name": "iguest", "vcpus": 1, "memory": 128 * MiB,
        "kernel": vmlinuz, "initrd": initrd,
        "cmdline": "console=ttyS0 quiet panic=-1", "guest_channel": True,
        "disks": [{"name": "vda", "pool": "san", "volume": vol}],
        "nics": []})["vms"][0]
    xml = subprocess.run(["virsh", "-c", lv.uri, "dumpxml", "iguest"],
                         capture_output=True, text=True).stdout
    check("protocol='iscsi'" in xml and f"{IQN}/1" in xml
          and "<secret type='iscsi'" in xml, xml)
    check("guestsecret1" not in xml, "the secret is not in the XML")
    deadline = time.time() + 120
    s, line = first_line(vm["channel"]["path"], deadline)
    check(line.startswith("hello from guest"), line)
    s.sendall(b"blocks\n")
    line = read_line(s, deadline)
    check("vda" in line.split(), line)
    pattern = f"vmhost-iscsi-{os.getpid()}"
    s.sendall(f"write vda {pattern}\n".encode())
    check(read_line(s, deadline) == "wrote vda: 0", "the guest's write")
    s.close()
    r = subprocess.run([IO, INIT, f"iscsi://vmh%guestsecret1@{t.portal}/"
                        f"{IQN}/1", "read", "0", "512"], capture_output=True)
    check(r.returncode == 0 and r.stdout.startswith(pattern.encode() + b"\n"),
          "read back through libiscsi:", r.stdout[:64], r.stderr)
    check(d.ok(op="pool_get", pool="san")["pools"][0]["allocation"]
          == 32 * MiB, "in use")

    d.ok(op="vm_delete", vm="iguest")
    r = subprocess.run(["virsh", "-c", lv.uri, "list", "--all", "--name"],
                       capture_output=True, text=True)
    check(r.stdout.strip() == "", "domains left:", r.stdout)
    check(d.ok(op="pool_get", pool="san")["pools"][0]["allocation"] == 0,
          "released")
    check(d.stop() == 0, "SIGTERM: exit 0")
    t.stop()   # before d's directory, which holds tgtd's socket, goes
