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
import os
import subprocess
import time

from iscsiguest import GuestRig
from lvguest import write_pattern
from vmhtest import BUILDDIR, check

MiB = 1 << 20
IQN = "iqn.2024-01.org.vmhost.test:guest"
INIT = "iqn.2024-01.org.vmhost.test:host1"
IO = os.path.join(BUILDDIR, "iscsi-io")

g = GuestRig(IQN, INIT, 32 * MiB, chap=("vmh", "guestsecret1"))
d, lv, t = g.d, g.lv, g.t
g.start()

with d:
    vol = d.ok(op="volume_list", pool="san")["volumes"][0]["name"]
    vm = g.create("iguest", [{"name": "vda", "pool": "san", "volume": vol}])
    xml = subprocess.run(["virsh", "-c", lv.uri, "dumpxml", "iguest"],
                         capture_output=True, text=True).stdout
    check("protocol='iscsi'" in xml and f"{IQN}/1" in xml
          and "<secret type='iscsi'" in xml, xml)
    check("guestsecret1" not in xml, "the secret is not in the XML")
    s = g.hello(vm)
    deadline = time.time() + 120
    pattern = write_pattern(s, "vda", "iscsi", deadline)
    r = subprocess.run([IO, INIT, f"iscsi://vmh%guestsecret1@{t.portal}/"
                        f"{IQN}/1", "read", "0", "512"], capture_output=True)
    check(r.returncode == 0 and r.stdout.startswith(pattern),
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
