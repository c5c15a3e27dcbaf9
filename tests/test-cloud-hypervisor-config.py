#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Cloud Hypervisor plugin's request bodies for every spec shape
(tests/ch-configgen), validated against the API's schema tables
(chschema.py: unknown fields, types, ranges, required fields, enums), and
every shape the plugin must refuse refused with a message saying why."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.environ.get("srcdir", os.path.dirname(__file__)))
import chschema  # noqa: E402
from vmhtest import check  # noqa: E402

GEN = os.path.join(os.environ.get("builddir", "."), "ch-configgen")

out = subprocess.run([GEN], capture_output=True, text=True, check=True).stdout
lines = {j["shape"]: j for j in map(json.loads, out.splitlines())}

# The validator itself refuses what CH refuses.
for bad, why in [({"payload": {}, "cpu": {}}, "unknown field `cpu`"),
                 ({"cpus": {"boot_vcpus": 1, "max_vcpus": 1}},
                  "missing field `payload`"),
                 ({"payload": {}, "memory": {"size": "1G"}},
                  "expected an integer"),
                 ({"payload": {}, "serial": {"mode": "Fifo"}},
                  "unknown variant"),
                 ({"payload": {}, "vsock": {"cid": 2, "socket": "/s"}},
                  "invalid value: 2"),
                 ({"payload": {}, "disks": [{"readonly": 1}]},
                  "expected a boolean")]:
    try:
        chschema.validate("VmConfig", bad)
        check(False, "the validator took", bad)
    except chschema.Invalid as e:
        check(why in str(e), why, "not in", e)

accepted = ["minimal-firmware", "direct-kernel", "disks-nics-channel",
            "with-seed", "limits", "hotplug-qcow2", "hotplug-block-readonly"]
for name in accepted:
    j = lines.get(name)
    check(j is not None and "body" in j, name, "refused:", j)
    try:
        chschema.validate(j["schema"], j["body"])
    except chschema.Invalid as e:
        check(False, name, "is not a valid", j["schema"], ":", e)

b = lines["minimal-firmware"]["body"]
check(b["payload"] == {"firmware": "/fw/CLOUDHV.fd"}, b)
check(b["cpus"] == {"boot_vcpus": 2, "max_vcpus": 2}, b)
check(b["memory"] == {"size": 1 << 30}, b)
check("vsock" not in b and b["disks"] == [] and b["net"] == [], b)
check(b["serial"]["mode"] == "Socket" and b["console"] == {"mode": "Off"}, b)
check(b["platform"]["system_uuid"] == "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
      b)
b = lines["direct-kernel"]["body"]
check(b["payload"] == {"kernel": "/boot/vmlinuz",
                       "initramfs": "/boot/initrd.img",
                       "cmdline": "console=ttyS0 root=/dev/vda1"}, b)
b = lines["disks-nics-channel"]["body"]
check([d["id"] for d in b["disks"]] == ["vdc", "vdb", "vda"],
      "boot order first:", b["disks"])
check(b["disks"][2] == {"id": "vda", "path": "/pool/vda", "readonly": False,
                        "image_type": "Qcow2", "backing_files": True},
      b["disks"])
check(b["disks"][1]["readonly"] is True and
      b["disks"][1]["image_type"] == "Raw", b["disks"])
check(b["net"] == [{"id": "net0", "tap": "tap7", "mac": "52:54:00:00:00:07",
                    "mtu": 9000},
                   {"id": "net1", "tap": "tap8",
                    "mac": "52:54:00:00:00:08"}], b["net"])
check(b["vsock"]["cid"] == 3 and b["vsock"]["socket"].endswith(".vsock"), b)
check(b["rng"] == {"src": "/dev/urandom"}, b)
b = lines["with-seed"]["body"]
check(b["disks"][-1] == {"id": "cidata", "path":
                         "/state/3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
                         ".seed.iso", "readonly": True,
                         "image_type": "Raw"}, b["disks"])

refused = {
    "no-kernel-no-firmware": "no kernel", "zero-vcpus": "vcpus 0",
    "too-many-vcpus": "vcpus 256", "memory-not-pages": "multiple of 4096",
    "bios": "firmware 'bios'", "cmdline-without-kernel": "need a kernel",
    "rbd-source": "only local files", "iscsi-source": "only local files",
    "nfs-source": "only local files", "no-source": "gave no source",
    "scsi-bus": "only virtio disks", "reserved-disk-id": "'_disk0'",
    "seed-disk-id": "'cidata'", "duplicate-disk": "two disks named vda",
    "bridge-binding": "only tap devices", "ovs-binding": "only tap devices",
    "no-binding": "only tap devices", "vlan": "cannot tag VLANs",
    "e1000": "only virtio-net"}
for name, why in refused.items():
    j = lines.get(name)
    check(j is not None and j.get("refused") == -1,
          name, "not refused as invalid_argument:", j)
    check(why in j["message"], name, ":", why, "not in", j["message"])
check(set(lines) == set(accepted) | set(refused), "shapes:", sorted(lines))
print("ok:", len(accepted), "bodies valid,", len(refused), "shapes refused")
