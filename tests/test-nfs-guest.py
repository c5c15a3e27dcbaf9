#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Volumes of an NFS pool as a real guest's disks: the nfs pool hands the
libvirt plugin NFS network sources, QEMU opens them with its own libnfs
driver, and the guest (lvguest.py's, TCG, on a private libvirtd in this
test's namespaces, where the private rpcbind answers on port 111) writes a
pattern on a raw volume, which the test reads back through libnfs
(nfs-cat); a qcow2 clone of a base image cached on the pool reads the
base's content in the guest.  One guest boot.  Needs what
test-libvirt-daemon.py and test-nfs-pool.py need, and QEMU's NFS driver
(qemu-block-extra); skips without them, fails under CI=true."""
import atexit
import glob
import hashlib
import os
import subprocess
import time

from lvguest import (Libvirtd, build_initrd, first_line, kernel, read_line,
                     require_qemu)
from nfsserver import Ganesha, enter_namespace, pool_yaml
from vmhtest import Daemon, check, skip

MiB = 1 << 20

enter_namespace()
require_qemu()
if not glob.glob("/usr/lib/*/qemu/block-nfs.so"):
    skip("QEMU has no NFS driver (qemu-block-extra)")
vmlinuz, mods = kernel()
d = Daemon("")
lv = Libvirtd(os.path.join(d.tmp, "libvirt"))
g = Ganesha(os.path.join(d.tmp, "nfs"))
atexit.register(g.cleanup)
atexit.register(lv.cleanup)
initrd = build_initrd(d.tmp, mods)
g.start()
lv.start()
d.write_config(f"""
hypervisors:
  - name: hv0
    plugin: libvirt
    uri: "{lv.uri}"
    domain_type: qemu
    machine: q35
storage:
{pool_yaml(extra=", path: pool")}
networks:
  - {{ name: net0, plugin: mock }}
""")

# The base image: a raw file whose first line the clone must show.
base_line = f"vmhost-nfs-base-{os.getpid()}"
base = os.path.join(d.tmp, "base.raw")
with open(base, "wb") as f:
    f.write(base_line.encode() + b"\n")
    f.truncate(8 * MiB)
base_sum = hashlib.sha256(open(base, "rb").read()).hexdigest()

with d:
    d.ok(op="volume_create", pool="nfs0",
         volume={"name": "data", "size": 8 * MiB, "format": "raw"})
    d.ok(op="image_import", pool="nfs0", image={
        "name": "base", "url": "file://" + base, "sha256": base_sum})
    d.ok(op="volume_create", pool="nfs0",
         volume={"name": "child", "base_image": "base"})
    vm = d.ok(op="vm_create", spec={
        "name": "nguest", "vcpus": 1, "memory": 128 * MiB,
        "kernel": vmlinuz, "initrd": initrd,
        "cmdline": "console=ttyS0 quiet panic=-1", "guest_channel": True,
        "nics": [],
        "disks": [{"name": "vda", "pool": "nfs0", "volume": "data"},
                  {"name": "vdb", "pool": "nfs0", "volume": "child"}]})
    vm = vm["vms"][0]
    xml = subprocess.run(["virsh", "-c", lv.uri, "dumpxml", "nguest"],
                         capture_output=True, text=True).stdout
    check("protocol='nfs'" in xml and "/export/pool/data" in xml, xml)

    deadline = time.time() + 120
    s, line = first_line(vm["channel"]["path"], deadline)
    check(line.startswith("hello from guest"), line)
    s.sendall(b"blocks\n")
    line = read_line(s, deadline)
    check({"vda", "vdb"} <= set(line.split()), line)
    pattern = f"vmhost-nfs-{os.getpid()}"
    s.sendall(f"write vda {pattern}\n".encode())
    check(read_line(s, deadline) == "wrote vda: 0", "the guest's write")
    s.sendall(b"read vdb\n")
    line = read_line(s, deadline)
    check(line == f"read vdb: {base_line}", "the clone in the guest:", line)
    s.close()

    r = subprocess.run(["nfs-cat", "nfs://127.0.0.1/export/pool/data"],
                       capture_output=True)
    check(r.returncode == 0 and r.stdout.startswith(pattern.encode() + b"\n"),
          "read back through libnfs:", r.stdout[:64], r.stderr)

    d.ok(op="vm_delete", vm="nguest")
    r = subprocess.run(["virsh", "-c", lv.uri, "list", "--all", "--name"],
                       capture_output=True, text=True)
    check(r.stdout.strip() == "", "domains left:", r.stdout)
    for v in ("data", "child"):
        d.ok(op="volume_delete", pool="nfs0", volume=v)
    d.ok(op="image_delete", pool="nfs0", image="base")
    check(d.stop() == 0, "SIGTERM: exit 0")
