#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The nfs storage plugin through vmhostd against nfs-ganesha (FSAL_VFS)
started here, in the test's own network and mount namespaces (nfsserver.py):
every volume operation and refusal (exists, not found, shrink without the
flag, shrink qcow2, traversal names), records in .vmhost/, the reserve, an
export that fills up (no_space, nothing left), the image cache (file://,
wrong checksum, http:// imports cut half-way that resume, two clones share
a base, a base in use), VMH_SOURCE_LOCAL
refused, the server stopped and restarted under a running vmhostd
(io_error naming the server, the pool still listed with why, then
recovery), a server that drops packets (at open and under a running
vmhostd: the pool's timeout, not TCP's), leftovers of a crash removed at
the next start, hundreds of records read at once and a broken one
ignored, IPv6 servers by host name and by address.  Needs root
(namespaces, ganesha, nft)."""
import atexit
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time

from cuthttp import CutServer
from nfsserver import Ganesha, add_hosts, enter_namespace, pool_yaml
from vmhtest import Daemon, check, expect, quiet_call, wait_for

enter_namespace()
MiB = 1 << 20
top = tempfile.mkdtemp(prefix="vmhtest-nfs.")
g = Ganesha(os.path.join(top, "srv"), small="4m")
atexit.register(g.cleanup)
g.start()
pool = os.path.join(g.export, "pool")
records = os.path.join(pool, ".vmhost", "volumes")


def entries(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def volumes(d, name="nfs0"):
    return {v["name"]: v for v in d.ok(op="volume_list", pool=name)["volumes"]}


def qinfo(path):
    return json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", path], check=True,
        capture_output=True, text=True).stdout)


def nft(rule):
    r = subprocess.run(["nft"] + rule.split(), capture_output=True, text=True)
    check(r.returncode == 0, "nft", rule, r.stderr)


# A firewall of the test's own namespace: packets it drops never answer.
nft("add table inet vmhtest")
nft("add chain inet vmhtest out { type filter hook output priority 0 ; }")
subprocess.run(["ip", "route", "add", "198.51.100.0/24", "dev", "lo"],
               check=True)
nft("add rule inet vmhtest out ip daddr 198.51.100.1 drop")

body = ("hypervisors:\n  - { name: hv0, plugin: mock, persist: true }\n"
        "networks:\n  - { name: net0, plugin: mock }\nstorage:\n"
        + pool_yaml(extra=", path: pool, default_format: raw, timeout: 2")
        + pool_yaml("small", "/small", ", reserved: 0")
        + pool_yaml("resv", extra=", path: resv, reserved: 1000T"))

# Leftovers of a crash mid-create: a temporary volume and a record whose
# volume was never linked.  The next open removes both and says so.
os.makedirs(records)
open(os.path.join(pool, ".tmp-crashed.1234"), "w").close()
with open(os.path.join(records, "ghost"), "w") as f:
    f.write("format=qcow2\nvsize=1048576\n")

# A server that never answers: the pool's open gives up after its timeout
# (the daemon starts without it: optional) and says why.
far = ("hypervisors:\n  - { name: hv0, plugin: mock }\n"
       "networks:\n  - { name: net0, plugin: mock }\nstorage:\n"
       "  - { name: far, plugin: nfs, server: 198.51.100.1, "
       "export: /export, timeout: 2, optional: true }\n")
with Daemon(far) as d:
    r = expect(d.call(op="pool_get", pool="far"), "not_found")
    check("198.51.100.1 is unavailable: no answer to mounting /export"
          in r["message"] and "within 2 s" in r["message"], r)
    check(d.stop() == 0, "exit 0")

with Daemon(body) as d:
    log = d.log()
    check("removed 127.0.0.1:/export/pool/.tmp-crashed.1234" in log, log)
    check("removed 127.0.0.1:/export/pool/.vmhost/volumes/ghost" in log, log)
    check(entries(pool) == [".images", ".vmhost"], entries(pool))
    check(entries(records) == [], entries(records))

    p = d.ok(op="pool_get", pool="nfs0")["pools"][0]
    check(p["n_volumes"] == 0 and p["default_format"] == "raw"
          and 0 < p["available"] <= p["capacity"]
          and p["message"] is None, p)
    p = d.ok(op="pool_get", pool="resv")["pools"][0]
    check(p["available"] == 0 and "no room for volumes" in p["message"]
          and "127.0.0.1:/export" in p["message"], p)

    # Raw (the default): sparse on the server, recorded as raw.
    d.ok(op="volume_create", pool="nfs0",
         volume={"name": "disk-a", "size": 32 * MiB})
    st = os.stat(os.path.join(pool, "disk-a"))
    check(st.st_size == 32 * MiB and st.st_blocks * 512 < MiB, st)
    check("format=raw" in open(os.path.join(records, "disk-a")).read(),
          "record")
    v = d.ok(op="volume_get", pool="nfs0", volume="disk-a")["volumes"][0]
    check(v["format"] == "raw" and v["capacity"] == 32 * MiB
          and v["backing"] is None
          and v["location"] == "nfs://127.0.0.1/export/pool/disk-a", v)
    # A guest that writes a qcow2 header into a raw disk changes nothing.
    with open(os.path.join(pool, "disk-a"), "r+b") as f:
        f.write(b"QFI\xfb" + b"\0" * 60)
    v = d.ok(op="volume_get", pool="nfs0", volume="disk-a")["volumes"][0]
    check(v["format"] == "raw", v)

    # qcow2 through qemu-img on nfs://; qemu-img agrees.
    d.ok(op="volume_create", pool="nfs0",
         volume={"name": "disk-b", "size": 1 << 30, "format": "qcow2"})
    qi = qinfo(os.path.join(pool, "disk-b"))
    check(qi["format"] == "qcow2" and qi["virtual-size"] == 1 << 30, qi)
    vols = volumes(d)
    check(sorted(vols) == ["disk-a", "disk-b"], vols)
    check(vols["disk-b"]["capacity"] == 1 << 30
          and 0 < vols["disk-b"]["allocation"] < 4 * MiB
          and vols["disk-b"]["location"]
          == "nfs://127.0.0.1/export/pool/disk-b", vols)

    # Refusals.
    r = expect(d.call(op="volume_create", pool="nfs0",
                      volume={"name": "disk-a", "size": MiB}),
               "already_exists")
    check("pick another name" in r["message"], r)
    check(os.stat(os.path.join(pool, "disk-a")).st_size == 32 * MiB,
          "untouched")
    expect(d.call(op="volume_get", pool="nfs0", volume="nope"), "not_found")
    expect(d.call(op="volume_delete", pool="nfs0", volume="nope"),
           "not_found")
    expect(d.call(op="volume_resize", pool="nfs0", volume="nope", size=MiB),
           "not_found")
    expect(d.call(op="volume_create", pool="nfs0", volume={
        "name": "c", "size": MiB, "base_image": "nope"}), "not_found")
    for bad in ["../x", "a/b", ".hidden", "Upper", "x" * 64]:
        expect(d.call(op="volume_create", pool="nfs0",
                      volume={"name": bad, "size": MiB}), "invalid_argument")
    check(not os.path.exists(os.path.join(g.export, "x")), "no traversal")

    # Resize: grow both; shrink raw only with the flag, qcow2 never.
    d.ok(op="volume_resize", pool="nfs0", volume="disk-a", size=48 * MiB)
    check(os.stat(os.path.join(pool, "disk-a")).st_size == 48 * MiB, "grown")
    r = expect(d.call(op="volume_resize", pool="nfs0", volume="disk-a",
                      size=16 * MiB), "invalid_argument")
    check("shrink" in r["message"], r)
    d.ok(op="volume_resize", pool="nfs0", volume="disk-a", size=16 * MiB,
         shrink=True)
    check(os.stat(os.path.join(pool, "disk-a")).st_size == 16 * MiB, "shrunk")
    d.ok(op="volume_resize", pool="nfs0", volume="disk-b", size=2 << 30)
    check(qinfo(os.path.join(pool, "disk-b"))["virtual-size"] == 2 << 30, "")
    check(volumes(d)["disk-b"]["capacity"] == 2 << 30, "recorded")
    r = expect(d.call(op="volume_resize", pool="nfs0", volume="disk-b",
                      size=1 << 30, shrink=True), "invalid_argument")
    check("qcow2" in r["message"], r)

    # The reserve, and a full export: no_space, nothing left behind.
    r = expect(d.call(op="volume_create", pool="resv",
                      volume={"name": "r", "size": MiB, "format": "raw"}),
               "no_space")
    check("reserved" in r["message"], r)
    expect(d.call(op="volume_create", pool="small",
                  volume={"name": "big", "size": 64 * MiB, "format": "raw"}),
           "no_space")
    with open(os.path.join(g.small, "filler"), "wb") as f:
        try:
            while True:
                f.write(b"\1" * 65536)
        except OSError:
            pass
    os.truncate(os.path.join(g.small, "filler"),
                os.path.getsize(os.path.join(g.small, "filler")) - 65536)
    r = expect(d.call(op="volume_create", pool="small", volume={
        "name": "q", "size": 1 << 30, "format": "qcow2"}), "no_space")
    check("qemu-img" in r["message"] or "available" in r["message"], r)
    check([x for x in entries(g.small) if x not in
           (".images", ".vmhost", "filler")] == [], entries(g.small))
    check(entries(os.path.join(g.small, ".vmhost", "volumes")) == [],
          "no record left")
    os.unlink(os.path.join(g.small, "filler"))

    # Images: file://, checksum, clones sharing a base, delete in use.
    base = os.path.join(top, "base.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "64M"],
                   check=True)
    base_sum = hashlib.sha256(open(base, "rb").read()).hexdigest()
    r = expect(d.call(op="image_import", pool="nfs0", image={
        "name": "base", "url": "file://" + base, "sha256": "0" * 64}),
        "invalid_argument")
    check(base_sum not in r["message"], "the digest got is not said", r)
    check(entries(os.path.join(pool, ".images")) == [], "nothing kept")
    d.ok(op="image_import", pool="nfs0", image={
        "name": "base", "url": "file://" + base, "sha256": base_sum})
    img = d.ok(op="image_list", pool="nfs0")["images"]
    check(len(img) == 1 and img[0]["sha256"] == base_sum
          and img[0]["n_users"] == 0, img)
    for c in ("clone1", "clone2"):
        d.ok(op="volume_create", pool="nfs0",
             volume={"name": c, "base_image": "base"})
        qi = qinfo(os.path.join(pool, c))
        check(qi["backing-filename"] ==
              "nfs://127.0.0.1/export/pool/.images/base", qi)
    vols = volumes(d)
    check(vols["clone1"]["backing"] == "base"
          and vols["clone1"]["capacity"] == 64 * MiB, vols)
    check(d.ok(op="image_list", pool="nfs0")["images"][0]["n_users"] == 2,
          "two users")
    r = expect(d.call(op="image_delete", pool="nfs0", image="base"), "busy")
    expect(d.call(op="volume_create", pool="nfs0", volume={
        "name": "c3", "base_image": "base", "format": "raw"}),
        "invalid_argument")

    # Over HTTP: a transfer cut half-way resumes with a Range request; one
    # that keeps failing leaves its part, which the next import resumes.
    www = os.path.join(top, "www")
    os.mkdir(www)
    with open(os.path.join(www, "tiny.raw"), "wb") as f:
        f.write(os.urandom(3 * MiB))
    tiny_sum = hashlib.sha256(
        open(os.path.join(www, "tiny.raw"), "rb").read()).hexdigest()
    http = CutServer(www, top)
    atexit.register(http.stop)
    d.ok(op="image_import", pool="nfs0", image={
        "name": "cut", "url": f"{http.url}/cut/tiny.raw",
        "sha256": tiny_sum})
    reqs = http.requests()
    check(reqs[0] == "/cut/tiny.raw -"
          and reqs[1].startswith("/cut/tiny.raw bytes="), reqs)
    check("resuming" in d.log(), "resume logged")
    r = expect(d.call(op="image_import", pool="nfs0", image={
        "name": "kept", "url": f"{http.url}/always-cut/tiny.raw",
        "sha256": tiny_sum}), "io_error")
    check("next import resumes" in r["message"], r)
    part = os.path.join(pool, ".images", f".part-kept-{tiny_sum}")
    check(0 < os.path.getsize(part) < 3 * MiB, "part kept")
    http.check_resumes(lambda: d.ok(op="image_import", pool="nfs0", image={
        "name": "kept", "url": f"{http.url}/tiny.raw", "sha256": tiny_sum}),
        "/tiny.raw")
    check(not os.path.exists(part), "part linked into place")
    for name in ("cut", "kept"):
        check(hashlib.sha256(open(os.path.join(pool, ".images", name),
                                  "rb").read()).hexdigest() == tiny_sum, name)
        d.ok(op="image_delete", pool="nfs0", image=name)
    http.stop()

    # A VM's disk: an NFS source; a local path cannot be given.
    vm = d.ok(op="vm_create", spec={
        "name": "vm1", "vcpus": 1, "memory": 64 * MiB, "nics": [],
        "disks": [{"name": "vda", "pool": "nfs0", "volume": "clone1"}]})
    src = vm["vms"][0]["disks"][0]["source"]
    check(src["type"] == "nfs" and src["server"] == "127.0.0.1"
          and src["export_path"] == "/export"
          and src["path"] == "/pool/clone1" and src["format"] == "qcow2", src)

    # The server goes away: io_error naming it, at once; VMs still list
    # from memory; back again, the pool recovers by itself.
    g.stop()
    t0 = time.time()
    r = expect(d.call(op="volume_list", pool="nfs0"), "io_error")
    check("127.0.0.1" in r["message"] and "unavailable" in r["message"], r)
    expect(d.call(op="volume_create", pool="nfs0",
                  volume={"name": "down", "size": MiB}), "io_error")
    check(time.time() - t0 < 30, "failed fast")
    check(len(d.ok(op="vm_list")["vms"]) == 1, "VMs list from memory")
    # The pool list still answers: the pool that cannot is listed with why,
    # the others as they are.
    pools = {p["name"]: p for p in d.ok(op="pool_list")["pools"]}
    check("unavailable" in (pools["nfs0"]["message"] or "")
          and "127.0.0.1" in pools["nfs0"]["message"]
          and pools["nfs0"]["capacity"] == 0, pools)
    g.start()
    for _ in range(100):
        if d.call(op="volume_list", pool="nfs0")["code"] == 0:
            break
        time.sleep(0.1)
    # The server silent (its packets dropped) instead of gone: an operation
    # gives up after the pool's timeout (2 s) instead of hanging on TCP's
    # retries, and the pool recovers once packets flow again.
    nft("add rule inet vmhtest out tcp dport 2049 drop")
    r = expect(d.call(op="volume_create", pool="nfs0",
                      volume={"name": "silent", "size": MiB}), "io_error")
    check("127.0.0.1" in r["message"], r)
    nft("flush chain inet vmhtest out")
    for _ in range(100):
        if d.call(op="volume_list", pool="nfs0")["code"] == 0:
            break
        time.sleep(0.1)
    check(sorted(volumes(d)) == ["clone1", "clone2", "disk-a", "disk-b"],
          "recovered")
    d.ok(op="vm_delete", vm="vm1")
    for c in ("clone1", "clone2", "disk-a", "disk-b"):
        r = d.call(op="volume_delete", pool="nfs0", volume=c)
        check(r["error"] in ("ok", "not_found"), r)
    d.ok(op="image_delete", pool="nfs0", image="base")
    check(entries(pool) == [".images", ".vmhost"], entries(pool))
    check(entries(records) == [], entries(records))
    check(d.stop() == 0, "SIGTERM: exit 0")

# Restarted: the records are read again (the volume made above is known),
# many at once (more than the reader keeps in flight), a broken one
# ignored and said so.
with Daemon(body) as d:
    d.ok(op="volume_create", pool="nfs0",
         volume={"name": "kept", "size": MiB, "format": "qcow2"})
    check(d.stop() == 0, "exit 0")
for i in range(300):
    with open(os.path.join(pool, f"many-{i}"), "wb") as f:
        f.truncate(MiB + i)
    with open(os.path.join(records, f"many-{i}"), "w") as f:
        f.write("format=raw\nvsize=0\nbytes=0\nbacking=\nsha256=\n")
open(os.path.join(pool, "broken"), "wb").close()
with open(os.path.join(records, "broken"), "w") as f:
    f.write("format=floppy\n")
with Daemon(body) as d:
    v = d.ok(op="volume_get", pool="nfs0", volume="kept")["volumes"][0]
    check(v["format"] == "qcow2" and v["capacity"] == MiB, v)
    vols = volumes(d)
    check(len(vols) == 302 and all(
        vols[f"many-{i}"]["format"] == "raw"
        and vols[f"many-{i}"]["capacity"] == MiB + i for i in range(300)),
        len(vols))
    check("/export/pool/.vmhost/volumes/broken is not a record" in d.log()
          or "volumes/broken is not a record" in d.log(), d.log())
    check(vols["broken"]["format"] == "raw", vols["broken"])
    check(d.stop() == 0, "exit 0")
# vmhostd killed (-9) in the middle of a real create, its qcow2 data made on
# the server under a temporary name but not yet published: nothing is
# listed, the next start removes the leftover and says so, and the name can
# be used again.
slow = os.path.join(top, "slow-qemu-img")
mark = os.path.join(top, "slow.pid")
with open(slow, "w") as f:
    f.write(f"#!/bin/sh\nqemu-img \"$@\" || exit\necho $$ > {mark}.tmp\n"
            f"mv {mark}.tmp {mark}\nexec sleep 60\n")
os.chmod(slow, 0o755)
with Daemon(body.replace("default_format: raw",
                         f"default_format: raw, qemu_img: {slow}")) as d:
    threading.Thread(target=quiet_call, args=(d,), kwargs=dict(
        op="volume_create", pool="nfs0",
        volume={"name": "cut", "size": MiB, "format": "qcow2"}),
        daemon=True).start()
    wait_for(lambda: os.path.exists(mark), "qemu-img done, vmhostd waiting")
    check([e for e in entries(pool) if e.startswith(".tmp-cut.")],
          "the data under a temporary name", entries(pool))
    d.kill9()
    os.kill(int(open(mark).read()), signal.SIGKILL)
with Daemon(body) as d:
    check("removed 127.0.0.1:/export/pool/.tmp-cut." in d.log(), d.log())
    check("cut" not in volumes(d), volumes(d))
    check(not [e for e in entries(pool) if "cut" in e], entries(pool))
    d.ok(op="volume_create", pool="nfs0", volume={"name": "cut", "size": MiB})
    d.ok(op="volume_delete", pool="nfs0", volume="cut")
    check(d.stop() == 0, "exit 0")

# IPv6.  Named by a host name, everything works, qcow2 through qemu-img
# too, and the plugin's connections are IPv6 ones.  Named by address, raw
# volumes work and what needs qemu-img (which cannot reach an IPv6 address
# literal) is refused, saying what to do.
add_hosts({"nfs6.test": "::1"})
v6 = ("hypervisors:\n  - { name: hv0, plugin: mock }\n"
      "networks:\n  - { name: net0, plugin: mock }\nstorage:\n"
      + pool_yaml("byname", extra=", path: v6", server="nfs6.test")
      + pool_yaml("byaddr", extra=", path: v6a, default_format: raw",
                  server="[::1]"))
with Daemon(v6) as d:
    d.ok(op="volume_create", pool="byname",
         volume={"name": "q", "size": MiB, "format": "qcow2"})
    v = d.ok(op="volume_get", pool="byname", volume="q")["volumes"][0]
    check(v["format"] == "qcow2"
          and v["location"] == "nfs://nfs6.test/export/v6/q", v)
    check(qinfo(os.path.join(g.export, "v6", "q"))["format"] == "qcow2", v)
    ss = subprocess.run(["ss", "-Htnp6", "state", "established",
                         "( dport = :2049 )"], capture_output=True,
                        text=True).stdout
    check(f"pid={d.proc.pid}," in ss, "no IPv6 connection of vmhostd", ss)

    p = d.ok(op="pool_get", pool="byaddr")["pools"][0]
    check("raw volumes only" in (p["message"] or "")
          and "::1" in p["message"], p)
    d.ok(op="volume_create", pool="byaddr", volume={"name": "r", "size": MiB})
    v = d.ok(op="volume_get", pool="byaddr", volume="r")["volumes"][0]
    check(v["format"] == "raw" and v["location"]
          == "nfs://[::1]/export/v6a/r", v)
    check(os.path.getsize(os.path.join(g.export, "v6a", "r")) == MiB, v)
    r = expect(d.call(op="volume_create", pool="byaddr", volume={
        "name": "q", "size": MiB, "format": "qcow2"}), "not_supported")
    check("host name" in r["message"], r)
    check(not os.path.exists(os.path.join(g.export, "v6a", "q")), "no q")
    d.ok(op="volume_delete", pool="byaddr", volume="r")
    check(d.stop() == 0, "exit 0")

g.cleanup()
subprocess.run(["rm", "-rf", top])
