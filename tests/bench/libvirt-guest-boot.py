#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Time from a create request to the guest's first line on its channel:
through vmhostd (libvirt plugin, private libvirtd, TCG) and, in the same
run, for the same domain XML started by libvirt directly (virsh create),
alternating, --runs times each.  Figures are printed, never asserted.

The guest is tests/lvguest.py's (Debian kernel + busybox initramfs); the
VM has no disk, so both paths boot the same kernel and initramfs with the
same devices.  vmhostd's path includes its record writes, the ctl request
and the plugin's define + start; libvirt's path is virsh's own connection
and domain create.  Needs root, libvirt-daemon, qemu-system-x86,
linux-image-amd64, busybox.

    tests/bench/libvirt-guest-boot.py --builddir BUILD [--runs 3]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--builddir", required=True)
ap.add_argument("--runs", type=int, default=3)
args = ap.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
build = os.path.abspath(args.builddir)
os.environ["builddir"] = os.path.join(build, "tests")
os.environ.setdefault("VMHOSTD", os.path.join(build, "core", "vmhostd"))
os.environ["VMHOST_PLUGIN_DIR"] = subprocess.run(
    f"find {build}/plugins -path '*/.libs/*-*.so' "
    "-exec dirname {} + | sort -u | paste -sd: -", shell=True,
    capture_output=True, text=True).stdout.strip()
sys.path.insert(0, os.path.join(here, ".."))
from lvguest import (Libvirtd, build_initrd, first_line, kernel,  # noqa: E402
                     require_qemu)
from vmhtest import Daemon  # noqa: E402

require_qemu()
vmlinuz, mods = kernel()
tmp = tempfile.mkdtemp(prefix="vmhbench.")
lv = Libvirtd(os.path.join(tmp, "libvirt"))
try:
    os.makedirs(os.path.join(tmp, "vmhostd"))
    # In the daemon's directory: the test config's daemon.boot_dirs.
    initrd = build_initrd(os.path.join(tmp, "vmhostd"), mods)
    lv.start()
    d = Daemon(f"""
hypervisors:
  - {{ name: hv0, plugin: libvirt, uri: "{lv.uri}", domain_type: qemu,
      machine: q35 }}
storage:
  - {{ name: pool0, plugin: mock }}
networks:
  - {{ name: net0, plugin: mock }}
""", tmp=os.path.join(tmp, "vmhostd"))
    spec = {"vcpus": 1, "memory": 128 << 20, "disks": [], "nics": [],
            "kernel": vmlinuz, "initrd": initrd,
            "cmdline": "console=ttyS0 quiet panic=-1", "guest_channel": True}
    times = {"vmhostd": [], "libvirt": []}
    xml = None
    with d:
        for i in range(args.runs):
            t0 = time.monotonic()
            vm = d.ok(op="vm_create", spec={**spec, "name": f"boot-{i}"})
            vm = vm["vms"][0]
            s, line = first_line(vm["channel"]["path"], time.time() + 180)
            times["vmhostd"].append(time.monotonic() - t0)
            s.close()
            if xml is None:
                xml = subprocess.run(
                    ["virsh", "-c", lv.uri, "dumpxml", "--inactive",
                     f"boot-{i}"], capture_output=True, text=True,
                    check=True).stdout
                old_id = vm["id"]
            d.ok(op="vm_delete", vm=f"boot-{i}")

            # The same domain, another name and UUID (and so other
            # sockets), straight through libvirt.
            new_id = f"00000000-0000-4000-8000-{i:012d}"
            dx = re.sub(r"<name>[^<]*</name>", f"<name>direct-{i}</name>",
                        xml).replace(old_id, new_id)
            path = os.path.join(tmp, f"direct-{i}.xml")
            with open(path, "w") as f:
                f.write(dx)
            chan = re.search(r"<source mode=.bind. path=.([^'\"]*\.agent)",
                             dx).group(1)
            t0 = time.monotonic()
            subprocess.run(["virsh", "-c", lv.uri, "create", path],
                           capture_output=True, check=True)
            s, line = first_line(chan, time.time() + 180)
            times["libvirt"].append(time.monotonic() - t0)
            s.close()
            subprocess.run(["virsh", "-c", lv.uri, "destroy", f"direct-{i}"],
                           capture_output=True, check=True)
        d.stop()
finally:
    lv.cleanup()
    subprocess.run(["rm", "-rf", tmp])

print(f"create request -> first guest-channel line, TCG, {args.runs} runs "
      "each, alternating:")
for k, v in times.items():
    print(f"  {k:8} median {statistics.median(v):6.2f} s  "
          f"(runs: {', '.join(f'{x:.2f}' for x in v)})")
print(f"  ratio vmhostd/libvirt: "
      f"{statistics.median(times['vmhostd']) / statistics.median(times['libvirt']):.2f}x"
      " (target <= 1.2x)")
