# SPDX-License-Identifier: LGPL-2.1-or-later
"""A real guest with an iSCSI LUN, for test-iscsi-guest.py and
bench/iscsi-guest-io.py: lvguest.py's guest (TCG) on a private libvirtd,
vmhostd with the libvirt plugin and an iscsi pool "san" on a tgtd
(iscsitgt.py) with one target and its LUN 1.  QEMU logs in with its own
initiator name, so the target's ACL allows the address (127.0.0.1).

    g = GuestRig(IQN, INIT, 32 << 20, chap=("vmh", "secret12"))
    g.start()                      # tgtd, libvirtd, vmhostd's config
    with g.d:
        vm = g.create("name", [{"name": "vda", "pool": "san", ...}])
        s = g.hello(vm)            # the guest's channel, once it is up
"""
import atexit
import glob
import os
import time

from iscsitgt import Tgtd, require_iscsi
from lvguest import (Libvirtd, build_initrd, first_line, kernel,
                     require_qemu)
from vmhtest import Daemon, check, skip

MiB = 1 << 20


class GuestRig:
    """Skips (fails under CI) without QEMU, its iSCSI driver or tgtd.
    Everything it starts is stopped at exit."""

    def __init__(self, iqn, initiator, lun_size, chap=None, **daemon_kw):
        require_qemu()
        require_iscsi()
        if not glob.glob("/usr/lib/*/qemu/block-iscsi.so"):
            skip("QEMU has no iSCSI driver (qemu-block-extra)")
        self.iqn, self.initiator, self.lun_size = iqn, initiator, lun_size
        self.chap = chap
        self.vmlinuz, mods = kernel()
        self.d = Daemon("", **daemon_kw)
        self.lv = Libvirtd(os.path.join(self.d.tmp, "libvirt"))
        self.t = Tgtd(os.path.join(self.d.tmp, "tgt"))
        atexit.register(self.lv.cleanup)
        atexit.register(self.t.stop)
        self.initrd = build_initrd(self.d.tmp, mods)

    def start(self, storage_extra=""):
        """tgtd with the target and its LUN, libvirtd, and vmhostd's
        config (storage_extra: more storage instances, YAML list items)."""
        self.t.start()
        tid = self.t.target(self.iqn, allow="127.0.0.1")
        auth = ""
        if self.chap:
            user, password = self.chap
            self.t.chap(tid, user, password)
            secret = os.path.join(self.d.tmp, "chap.secret")
            with open(secret, "w") as f:
                f.write(password + "\n")
            os.chmod(secret, 0o600)
            auth = f"\n    username: {user}\n    password_file: {secret}"
        self.t.lun(tid, 1, self.lun_size)
        self.lv.start()
        self.d.write_config(f"""
hypervisors:
  - name: hv0
    plugin: libvirt
    uri: "{self.lv.uri}"
    domain_type: qemu
    machine: q35
storage:
  - name: san
    plugin: iscsi
    portals: ["{self.t.portal}"]
    initiator_name: {self.initiator}{auth}
{storage_extra}
networks:
  - {{ name: net0, plugin: mock }}
""")

    def create(self, name, disks, memory=128 * MiB):
        """Creates the guest VM with these disks; its record."""
        return self.d.ok(op="vm_create", spec={
            "name": name, "vcpus": 1, "memory": memory,
            "kernel": self.vmlinuz, "initrd": self.initrd,
            "cmdline": "console=ttyS0 quiet panic=-1", "guest_channel": True,
            "disks": disks, "nics": []})["vms"][0]

    def hello(self, vm, timeout=120):
        """The guest's channel socket once it said hello."""
        s, line = first_line(vm["channel"]["path"], time.time() + timeout)
        check(line.startswith("hello from guest"), line)
        return s
