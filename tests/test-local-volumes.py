#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The local storage plugin through vmhostd, on real files and real
qemu-img: every volume operation and refusal (exists, not found, shrink
without the flag, shrink qcow2, traversal names, a planted symlink), the
reserve and a full filesystem (nothing left behind either time), leftovers
of a crash removed at start.  Pools live on small tmpfs mounts made here
(needs root)."""
import json
import os
import shutil
import subprocess
import tempfile

from vmhtest import Daemon, check, expect, skip

if os.geteuid() != 0:
    skip("mounts a tmpfs, needs root")
if not shutil.which("qemu-img"):
    skip("no qemu-img (install qemu-utils)")

MiB = 1 << 20
top = tempfile.mkdtemp(prefix="vmhtest-local.")
mounts = []


def tmpfs(name, size):
    d = os.path.join(top, name)
    os.mkdir(d)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", d],
                   check=True)
    mounts.append(d)
    return d


def entries(d):
    """Everything in a pool directory but the image cache."""
    return sorted(x for x in os.listdir(d) if x != ".images")


def qinfo(path):
    return json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", path], check=True,
        capture_output=True, text=True).stdout)


def config(pools):
    body = "hypervisors:\n  - { name: hv0, plugin: mock, persist: true }\n"
    body += "networks:\n  - { name: net0, plugin: mock }\nstorage:\n"
    for name, path, extra in pools:
        body += f"  - {{ name: {name}, plugin: local, path: {path}{extra} }}\n"
    return body


try:
    pool = tmpfs("pool", "64m")
    small = tmpfs("small", "1m")
    resv = tmpfs("resv", "16m")
    outside = os.path.join(top, "secret")
    with open(outside, "w") as f:
        f.write("not yours\n")
    # Leftovers of a crashed create: removed at start, and said so.
    open(os.path.join(pool, ".tmp-crashed.1234"), "w").close()

    cfg = config([("pool0", pool, ", default_format: raw"),
                  ("small", small, ""),
                  ("resv", resv, ", reserved: 8MiB")])
    with Daemon(cfg) as d:
        check("removed " + pool + "/.tmp-crashed.1234" in d.log(),
              "leftover removal logged")
        check(entries(pool) == [], "leftover removed:", entries(pool))

        p = d.ok(op="pool_get", pool="pool0")["pools"][0]
        check(p["n_volumes"] == 0 and p["default_format"] == "raw", p)
        check(60 * MiB < p["capacity"] <= 64 * MiB, p)
        check(p["available"] <= p["capacity"], p)

        # Raw (the pool's default): sparse, exactly the size.
        v = d.ok(op="volume_create", pool="pool0",
                 volume={"name": "disk-a", "size": 32 * MiB})
        st = os.stat(os.path.join(pool, "disk-a"))
        check(st.st_size == 32 * MiB and st.st_blocks * 512 < MiB,
              "raw is sparse:", st)
        v = d.ok(op="volume_get", pool="pool0", volume="disk-a")["volumes"][0]
        check(v["format"] == "raw" and v["capacity"] == 32 * MiB
              and v["backing"] is None, v)
        check(v["location"] == "file://" + pool + "/disk-a", "location", v)

        # qcow2, asked for; qemu-img agrees with what the pool reports.
        d.ok(op="volume_create", pool="pool0",
             volume={"name": "disk-b", "size": 1 << 30, "format": "qcow2"})
        qi = qinfo(os.path.join(pool, "disk-b"))
        check(qi["format"] == "qcow2" and qi["virtual-size"] == 1 << 30, qi)
        v = d.ok(op="volume_get", pool="pool0", volume="disk-b")["volumes"][0]
        check(v["format"] == "qcow2" and v["capacity"] == 1 << 30
              and 0 < v["allocation"] < 4 * MiB, v)
        vols = d.ok(op="volume_list", pool="pool0")["volumes"]
        check(sorted(x["name"] for x in vols) == ["disk-a", "disk-b"], vols)
        check(d.ok(op="pool_get", pool="pool0")["pools"][0]["n_volumes"] == 2,
              "n_volumes")

        # A raw disk whose guest wrote a qcow2 header stays raw.
        with open(os.path.join(pool, "disk-a"), "r+b") as f:
            f.write(b"QFI\xfb" + b"\0" * 60)
        v = d.ok(op="volume_get", pool="pool0", volume="disk-a")["volumes"][0]
        check(v["format"] == "raw" and v["capacity"] == 32 * MiB, v)

        # Refusals.
        r = expect(d.call(op="volume_create", pool="pool0",
                          volume={"name": "disk-a", "size": MiB}),
                   "already_exists")
        check("pick another name" in r["message"], r)
        check(os.stat(os.path.join(pool, "disk-a")).st_size == 32 * MiB,
              "existing volume untouched")
        expect(d.call(op="volume_get", pool="pool0", volume="nope"), "not_found")
        expect(d.call(op="volume_resize", pool="pool0", volume="nope",
                      size=MiB), "not_found")
        expect(d.call(op="volume_create", pool="pool0",
                      volume={"name": "c", "size": MiB, "base_image": "nope"}),
               "not_found")
        for bad in ["../x", "a/b", ".hidden", "Upper", "x" * 64]:
            r = expect(d.call(op="volume_create", pool="pool0",
                              volume={"name": bad, "size": MiB}),
                       "invalid_argument", bad)
            expect(d.call(op="volume_get", pool="pool0", volume=bad),
                   "invalid_argument", bad)
        check(not os.path.exists(os.path.join(top, "x")), "no traversal")

        # A symlink planted in the pool is no volume and is never followed.
        os.symlink(outside, os.path.join(pool, "evil"))
        r = expect(d.call(op="volume_get", pool="pool0", volume="evil"),
                   "invalid_argument")
        check("symlink" in r["message"], r)
        expect(d.call(op="volume_resize", pool="pool0", volume="evil",
                      size=MiB), "invalid_argument")
        expect(d.call(op="volume_delete", pool="pool0", volume="evil"),
               "invalid_argument")
        expect(d.call(op="volume_create", pool="pool0",
                      volume={"name": "evil", "size": MiB}), "already_exists")
        check(open(outside).read() == "not yours\n"
              and os.stat(outside).st_size == 10, "target untouched")
        vols = d.ok(op="volume_list", pool="pool0")["volumes"]
        check("evil" not in [x["name"] for x in vols], vols)
        os.unlink(os.path.join(pool, "evil"))

        # Resize: grow both; shrink only raw and only when asked.
        d.ok(op="volume_resize", pool="pool0", volume="disk-a", size=48 * MiB)
        check(os.stat(os.path.join(pool, "disk-a")).st_size == 48 * MiB, "grown")
        r = expect(d.call(op="volume_resize", pool="pool0", volume="disk-a",
                          size=16 * MiB), "invalid_argument")
        check("shrink" in r["message"], r)
        d.ok(op="volume_resize", pool="pool0", volume="disk-a", size=16 * MiB,
             shrink=True)
        check(os.stat(os.path.join(pool, "disk-a")).st_size == 16 * MiB, "shrunk")
        d.ok(op="volume_resize", pool="pool0", volume="disk-b", size=2 << 30)
        check(qinfo(os.path.join(pool, "disk-b"))["virtual-size"] == 2 << 30,
              "qcow2 grown")
        r = expect(d.call(op="volume_resize", pool="pool0", volume="disk-b",
                          size=1 << 30, shrink=True), "invalid_argument")
        check("only raw" in r["message"], r)
        check(qinfo(os.path.join(pool, "disk-b"))["virtual-size"] == 2 << 30,
              "qcow2 not shrunk")

        # The reserve: 16 MiB filesystem, 8 MiB reserved.
        p = d.ok(op="pool_get", pool="resv")["pools"][0]
        check(p["available"] <= 8 * MiB, p)
        r = expect(d.call(op="volume_create", pool="resv",
                          volume={"name": "big", "size": 10 * MiB,
                                  "format": "raw"}), "no_space")
        check("reserved" in r["message"], r)
        check(entries(resv) == [], "nothing left:", entries(resv))
        d.ok(op="volume_create", pool="resv",
             volume={"name": "fits", "size": 4 * MiB, "format": "raw"})
        expect(d.call(op="volume_resize", pool="resv", volume="fits",
                      size=14 * MiB), "no_space")
        check(os.stat(os.path.join(resv, "fits")).st_size == 4 * MiB,
              "not grown past the reserve")

        # A full filesystem: qemu-img itself runs out of space; the error
        # is clean and no temporary file stays.
        with open(os.path.join(small, ".filler"), "wb") as f:
            try:
                f.write(b"\xff" * (1 << 20))
            except OSError:
                pass
        free = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
        check(free < 64 << 10, "filled:", free)
        r = expect(d.call(op="volume_create", pool="small",
                          volume={"name": "q", "size": 4096}), "no_space")
        check(entries(small) == [".filler"], "nothing left:", entries(small))
        os.truncate(os.path.join(small, ".filler"), (1 << 20) - (96 << 10))
        r = expect(d.call(op="volume_create", pool="small",
                          volume={"name": "q", "size": 64 << 10}), "no_space")
        check("qemu-img" in r["message"] and "No space" in r["message"], r)
        check(entries(small) == [".filler"], "nothing left:", entries(small))

        # Source for a hypervisor: a VM on the mock with an existing volume.
        vm = d.ok(op="vm_create", spec={
            "name": "vm1", "vcpus": 1, "memory": 1 << 30, "nics": [],
            "disks": [{"name": "vda", "pool": "pool0", "volume": "disk-b"}]})
        # The mock hypervisor keeps the source it was given in its state.
        found = subprocess.run(
            ["grep", "-rl", os.path.join(pool, "disk-b"),
             os.path.join(d.tmp, "state")], capture_output=True, text=True)
        check(found.stdout.strip() != "", "the hypervisor got the file path")
        # The record shows the source, live too, and after a restart.
        src = vm["vms"][0]["disks"][0]["source"]
        check(src and src["type"] == "file" and
              src["path"] == os.path.join(pool, "disk-b"), "source:", vm)
        live = d.ok(op="vm_get", vm="vm1", live=True)["vms"][0]
        check(live["disks"][0]["source"] == src, "live source:", live)
        check(d.stop() == 0, "SIGTERM: exit 0")
        d.start()
        again = d.ok(op="vm_get", vm="vm1")["vms"][0]["disks"][0]["source"]
        check(again == src, "the source survives a restart:", again, src)
        expect(d.call(op="volume_delete", pool="pool0", volume="disk-b"), "busy")
        d.ok(op="vm_delete", vm="vm1")

        d.ok(op="volume_delete", pool="pool0", volume="disk-a")
        d.ok(op="volume_delete", pool="pool0", volume="disk-b")
        d.ok(op="volume_delete", pool="resv", volume="fits")
        check(entries(pool) == [] and entries(resv) == [], "all deleted")
        check(d.stop() == 0, "SIGTERM: exit 0")
finally:
    for m in reversed(mounts):
        subprocess.run(["umount", "-l", m])
    shutil.rmtree(top, ignore_errors=True)
