#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""An RBD clone as a real guest's disk: the rbd pool imports a base image
into a throwaway Ceph (cephcluster.py), a VM made from it gets an RBD clone
that the libvirt plugin hands QEMU as a network disk with a cephx secret
(QEMU's own rbd driver), the guest (lvguest.py's, TCG, on a private
libvirtd) writes a pattern on it, and the test reads the pattern back
through librbd (rbd export) and checks the base is untouched.  Delete
leaves no domain and no clone.  One guest boot.  Needs what
test-libvirt-daemon.py and test-rbd-pool.py need, and qemu-block-extra
(QEMU's rbd driver); skips without them, fails under CI=true."""
import atexit
import glob
import hashlib
import os
import subprocess
import time

from cephcluster import Ceph, require_ceph
from lvguest import (Libvirtd, build_initrd, first_line, kernel, require_qemu,
                     write_pattern)
from vmhtest import IMAGE_SOURCES, Daemon, check, lsan_without_tls, skip

require_qemu()
require_ceph()
lsan_without_tls()
if not glob.glob("/usr/lib/*/qemu/block-rbd.so"):
    skip("QEMU has no rbd driver (qemu-block-extra)")
MiB = 1 << 20

vmlinuz, mods = kernel()
d = Daemon("")
lv = Libvirtd(os.path.join(d.tmp, "libvirt"))
c = Ceph(os.path.join(d.tmp, "ceph"))
atexit.register(lv.cleanup)
atexit.register(c.stop)
initrd = build_initrd(d.tmp, mods)
c.start()
c.pool("vmh")
key_file = os.path.join(d.tmp, "vmhost.key")
key = c.key_file("vmhost", "vmh", key_file)
base = os.path.join(d.tmp, "base.raw")
with open(base, "wb") as f:
    f.write(b"the base image\n" + bytes(16 * MiB - 15))
with open(base, "rb") as f:
    base_sha = hashlib.sha256(f.read()).hexdigest()


def export(spec):
    """The first KiB of an RBD image (or snapshot) of pool vmh, read
    through librbd."""
    out = os.path.join(d.tmp, "export.raw")
    c.rbd("export", "--no-progress", "vmh/" + spec, out)
    with open(out, "rb") as f:
        data = f.read(1024)
    os.unlink(out)
    return data


lv.start()
d.write_config(f"""
hypervisors:
  - name: hv0
    plugin: libvirt
    uri: "{lv.uri}"
    domain_type: qemu
    machine: q35
storage:
  - name: ceph
    plugin: rbd
    monitors: ["v2:{c.monitor}"]
    pool: vmh
    key_file: {key_file}
    {IMAGE_SOURCES}
networks:
  - {{ name: net0, plugin: mock }}
""")

with d:
    d.ok(op="image_import", pool="ceph", image={
        "name": "base", "url": "file://" + base, "sha256": base_sha})
    vm = d.ok(op="vm_create", spec={
        "name": "rguest", "vcpus": 1, "memory": 128 * MiB,
        "kernel": vmlinuz, "initrd": initrd,
        "cmdline": "console=ttyS0 quiet panic=-1", "guest_channel": True,
        "disks": [{"name": "vda", "pool": "ceph", "base_image": "base"}],
        "nics": []})["vms"][0]
    vol = vm["disks"][0]["volume"]
    xml = subprocess.run(["virsh", "-c", lv.uri, "dumpxml", "rguest"],
                         capture_output=True, text=True).stdout
    check("protocol='rbd'" in xml and f"vmh/{vol}" in xml
          and "<secret type='ceph'" in xml and c.monitor.split(":")[1] in xml,
          xml)
    check(key not in xml, "the key is not in the XML")
    deadline = time.time() + 120
    s, line = first_line(vm["channel"]["path"], deadline)
    check(line.startswith("hello from guest"), line)
    pattern = write_pattern(s, "vda", "rbd", deadline)
    check(export(vol).startswith(pattern),
          "read back through librbd:", export(vol)[:64])
    check(export("_image.base@base").startswith(b"the base image\n"),
          "the base is untouched")
    check(d.ok(op="image_list", pool="ceph")["images"][0]["n_users"] == 1,
          "the base has one clone")

    d.ok(op="vm_delete", vm="rguest")
    r = subprocess.run(["virsh", "-c", lv.uri, "list", "--all", "--name"],
                       capture_output=True, text=True)
    check(r.stdout.strip() == "", "domains left:", r.stdout)
    check(vol not in c.rbd("ls", "vmh").stdout.split(), "the clone is gone")
    d.ok(op="image_delete", pool="ceph", image="base")
    check(d.stop() == 0, "SIGTERM: exit 0")
