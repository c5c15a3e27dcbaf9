#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The rbd storage plugin against a real, throwaway Ceph (cephcluster.py:
one monitor, one memstore OSD, cephx, no mgr), started once for this file:
config refusals (key file readable by others, no key, no monitors), a
monitor that does not answer at start (exit 1 naming it, no hang), a wrong
key; volumes (create, get, list, grow, shrink only when asked, delete,
refusals); base images made with the rbd tool (as an import leaves them),
clones of them, a clone of a clone, deletes refused while snapshots or
clones exist; a VM on the mock hypervisor gets an RBD disk source with the
monitors and the key; the monitor and then the OSD stopped mid-run:
operations fail with io_error and work again once they are back, without
restarting vmhostd."""
import atexit
import hashlib
import http.server
import os
import subprocess
import threading
import time

from cephcluster import Ceph, require_ceph
from vmhtest import (IMAGE_SOURCES, VMHOSTD, Daemon, check, expect, free_port, quiet_call,
                     wait_for)

require_ceph()
MiB = 1 << 20

d = Daemon("")
c = Ceph(os.path.join(d.tmp, "ceph"))
atexit.register(c.stop)
c.start()
c.pool("vmh")
key_file = os.path.join(d.tmp, "vmhost.key")
key = c.key_file("vmhost", "vmh", key_file)
keyring = os.path.join(d.tmp, "vmhost.keyring")
with open(keyring, "w") as f:
    f.write(f"[client.other]\n\tkey = AQBxxx==\n[client.vmhost]\n\tkey = {key}\n")
os.chmod(keyring, 0o600)


base_file = os.path.join(d.tmp, "base.raw")
with open(base_file, "wb") as f:   # objects (4 MiB): data, zeros, data
    f.write(os.urandom(MiB) + bytes(7 * MiB) + os.urandom(MiB + 512))
qcow2_file = os.path.join(d.tmp, "base.qcow2")
with open(qcow2_file, "wb") as f:
    f.write(b"QFI\xfb" + bytes(MiB))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def export(spec):
    """The content of an RBD image (or snapshot) of pool vmh."""
    out = os.path.join(d.tmp, "export.raw")
    c.rbd("export", "--no-progress", "vmh/" + spec, out)
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    return data


class Stalling(http.server.BaseHTTPRequestHandler):
    """Serves base_file's first 5 MiB, then waits for server.stall."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        with open(base_file, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:5 * MiB])
        self.wfile.flush()
        self.server.stall.wait(120)


def config(**keys):
    """The daemon's config: mock hypervisor and network, an rbd pool with
    keys (YAML flow values) over the defaults."""
    keys = dict({"monitors": f'["v2:{c.monitor}"]', "pool": "vmh",
                 "key_file": key_file, "timeout": 3,
                 "image_sources": "{ " + IMAGE_SOURCES.split("{ ", 1)[1]},
                **keys)
    body = ", ".join(f"{k}: {v}" for k, v in keys.items() if v is not None)
    return f"""
hypervisors:
  - {{ name: hv0, plugin: mock }}
storage:
  - {{ name: ceph, plugin: rbd, {body} }}
networks:
  - {{ name: net0, plugin: mock }}
"""


def refused(text, *what, **keys):
    """vmhostd refuses this config (--check-config when text: exit 2) or
    cannot start on it (exit 1), its output saying each of what."""
    d.write_config(config(**keys))
    r = subprocess.run([VMHOSTD, *(["--check-config"] if text else []),
                        "--config", d.config], capture_output=True,
                       text=True, timeout=120)
    out = r.stdout + r.stderr
    check(r.returncode == (2 if text else 1), keys, "->", r.returncode, out)
    for w in what:
        check(w in out, f"'{w}' not in:", out)
    check(key not in out, "the key is never shown:", out)


# Config refusals, found by --check-config (nothing connects).
os.chmod(key_file, 0o640)
refused(True, "open to group or others", "chmod 600")
os.chmod(key_file, 0o600)
refused(True, "one of them", key_file=None)
refused(True, "one of them", keyring=keyring)
refused(True, "names them", monitors=None)
refused(True, "not a list of RBD features", default_features='"layering,nope"')
# Start: a monitor nobody answers on, a wrong key, a missing pool.
dead = f"127.0.0.1:{free_port()}"
t0 = time.time()
refused(False, "no Ceph monitor answered within 2 s", dead,
        monitors=f'["{dead}"]', timeout=2)
check(time.time() - t0 < 60, "bounded by the timeout")
bad_key = os.path.join(d.tmp, "bad.key")
with open(bad_key, "w") as f:
    f.write("AQBr7RVmAAAAABAAGc9n0Xb0yNHtYCOrkzEPxQ==\n")
os.chmod(bad_key, 0o600)
refused(False, "refused client.vmhost", "check its key", key_file=bad_key)
refused(False, "no pool 'nope'", pool="nope")


def vol(name):
    return d.ok(op="volume_get", pool="ceph", volume=name)["volumes"][0]


def images():
    return {i["name"]: i for i in
            d.ok(op="image_list", pool="ceph")["images"]}


def rbd_names():
    return sorted(c.rbd("ls", "vmh").stdout.split())


# The keyring form of the key, the monitors from a ceph.conf.
d.write_config(config(keyring=keyring, key_file=None, monitors=None,
                      ceph_conf=c.conf))
with d:
    # Volumes.
    d.ok(op="volume_create", pool="ceph", volume={"name": "a", "size": 32 * MiB})
    v = vol("a")
    check(v["capacity"] == 32 * MiB and v["allocation"] == 0
          and v["format"] == "raw" and v["backing"] is None
          and v["location"] == "rbd:vmh/a", v)
    check(rbd_names() == ["a"], rbd_names())
    # Written data counts as allocated (librbd's own view, whole objects).
    c.rbd("bench", "--io-type", "write", "--io-size", "4096", "--io-total",
          "4096", "vmh/a")
    check(vol("a")["allocation"] == 4 * MiB, vol("a"))
    expect(d.call(op="volume_create", pool="ceph",
                  volume={"name": "a", "size": MiB}), "already_exists")
    expect(d.call(op="volume_create", pool="ceph",
                  volume={"name": "q", "size": MiB, "format": "qcow2"}),
           "not_supported")
    expect(d.call(op="volume_get", pool="ceph", volume="nope"), "not_found")
    expect(d.call(op="volume_delete", pool="ceph", volume="nope"), "not_found")
    expect(d.call(op="volume_resize", pool="ceph", volume="nope", size=MiB),
           "not_found")
    d.ok(op="volume_resize", pool="ceph", volume="a", size=64 * MiB)
    check(vol("a")["capacity"] == 64 * MiB, "grown")
    r = expect(d.call(op="volume_resize", pool="ceph", volume="a",
                      size=16 * MiB), "invalid_argument")
    check("shrink" in r["message"], r)
    d.ok(op="volume_resize", pool="ceph", volume="a", size=16 * MiB,
         shrink=True)
    check(vol("a")["capacity"] == 16 * MiB, "shrunk")
    p = d.ok(op="pool_get", pool="ceph")["pools"][0]
    # No mgr: the cluster reports no usage, and the pool says so.
    check(p["n_volumes"] == 1 and p["capacity"] == 0
          and "no usage" in p["message"], p)

    # The image cache: an import streams into an RBD image, verified
    # before it can be used; a wrong digest or a qcow2 file keeps nothing.
    url = "file://" + base_file
    for spec, err in (({"sha256": "0" * 64}, "invalid_argument"),
                      ({"url": "file://" + qcow2_file,
                        "sha256": sha256(qcow2_file)}, "invalid_argument")):
        expect(d.call(op="image_import", pool="ceph", image=dict(
            {"name": "base", "url": url}, **spec)), err)
        check(rbd_names() == ["a"], "nothing kept:", rbd_names())
    d.ok(op="image_import", pool="ceph", image={
        "name": "base", "url": url, "sha256": sha256(base_file)})
    check(images() == {"base": {"name": "base", "size": 9 * MiB + 512,
                                "sha256": sha256(base_file), "n_users": 0}},
          images())
    expect(d.call(op="image_import", pool="ceph", image={
        "name": "base", "url": url, "sha256": sha256(base_file)}),
        "already_exists")
    # Zeros are not written: the base holds two objects of three.
    du = c.rbd("du", "--format", "json", "vmh/_image.base").stdout
    check(f'"used_size":{5 * MiB + 512}' in du.replace(" ", ""), du)
    check(export("_image.base@base") == open(base_file, "rb").read(),
          "the image holds the file")
    d.ok(op="volume_create", pool="ceph",
         volume={"name": "c1", "base_image": "base"})
    d.ok(op="volume_create", pool="ceph",
         volume={"name": "c2", "base_image": "base", "size": 16 * MiB})
    check(vol("c1")["backing"] == "base"
          and vol("c1")["capacity"] == 9 * MiB + 512, vol("c1"))
    check(vol("c2")["capacity"] == 16 * MiB, vol("c2"))
    r = expect(d.call(op="volume_create", pool="ceph", volume={
        "name": "c3", "base_image": "base", "size": 8 * MiB}),
        "invalid_argument")
    check("less than its image" in r["message"], r)
    expect(d.call(op="volume_create", pool="ceph", volume={
        "name": "c3", "base_image": "nope"}), "not_found")
    check("c3" not in rbd_names(), "a refused clone leaves nothing")
    check(images()["base"]["n_users"] == 2, images())
    r = expect(d.call(op="image_delete", pool="ceph", image="base"), "busy")
    check("c1" in r["message"] and "c2" in r["message"], r)
    vols = sorted(x["name"] for x in
                  d.ok(op="volume_list", pool="ceph")["volumes"])
    check(vols == ["a", "c1", "c2"], "images are no volumes:", vols)

    # A clone of a clone (made with the rbd tool): its parent is named;
    # the middle volume cannot go while it has a snapshot, nor once the
    # snapshot is in the trash (clone v2) while the clone lives.
    c.rbd("snap", "create", "vmh/c1@s1")
    c.rbd("clone", "vmh/c1@s1", "vmh/cc")
    check(vol("cc")["backing"] == "c1@s1", vol("cc"))
    r = expect(d.call(op="volume_delete", pool="ceph", volume="c1"), "busy")
    check("snapshots: s1" in r["message"], r)
    c.rbd("snap", "rm", "--no-progress", "vmh/c1@s1")
    r = expect(d.call(op="volume_delete", pool="ceph", volume="c1"), "busy")
    check("clones: cc" in r["message"], r)
    d.ok(op="volume_delete", pool="ceph", volume="cc")
    d.ok(op="volume_delete", pool="ceph", volume="c1")

    # A VM's disk: a network source with the monitors and the key.
    vm = d.ok(op="vm_create", spec={
        "name": "vm1", "vcpus": 1, "memory": 1 << 30, "nics": [],
        "disks": [{"name": "vda", "pool": "ceph", "base_image": "base"}]})
    disk = vm["vms"][0]["disks"][0]
    check(vol(disk["volume"])["backing"] == "base", disk)
    src = disk.get("source", {})
    check(src.get("type") == "rbd" and src.get("pool") == "vmh"
          and src.get("image") == disk["volume"]
          and src.get("monitors") == [c.monitor]
          and src.get("auth_user") == "vmhost", disk)
    d.ok(op="vm_delete", vm="vm1")
    check(disk["volume"] not in rbd_names(), "the VM's clone is gone")

    # The monitor stops: what needs it fails fast, then works again.
    c.stop_mon()
    t0 = time.time()
    r = expect(d.call(op="pool_get", pool="ceph"), "io_error")
    check("unavailable" in r["message"] and c.monitor in r["message"], r)
    check(time.time() - t0 < 60, "bounded by the timeout")
    c.start_mon()
    wait_for(lambda: d.call(op="pool_get", pool="ceph")["code"] == 0,
             "recovery once the monitor is back")
    # The OSD stops: volume operations fail fast, then work again.
    c.stop_osd()
    r = expect(d.call(op="volume_create", pool="ceph",
                      volume={"name": "b", "size": MiB}), "io_error")
    check("unavailable" in r["message"], r)
    c.start_osd()
    wait_for(lambda: d.call(op="volume_get", pool="ceph",
                            volume="a")["code"] == 0,
             "recovery once the OSD is back")
    d.call(op="volume_delete", pool="ceph", volume="b")
    d.ok(op="volume_create", pool="ceph", volume={"name": "b", "size": MiB})

    for name in ("a", "b", "c2"):
        d.ok(op="volume_delete", pool="ceph", volume=name)
    d.ok(op="image_delete", pool="ceph", image="base")
    expect(d.call(op="image_delete", pool="ceph", image="base"), "not_found")
    check(rbd_names() == [], "all gone:", rbd_names())

    # vmhostd killed mid-import: after a restart the half image is not
    # seen, and an import of the name starts over (refused as busy while
    # the OSD still counts the dead client as watching the part).
    stall = threading.Event()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    srv.stall = stall
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    slow = f"http://127.0.0.1:{srv.server_address[1]}/base.raw"
    threading.Thread(target=quiet_call, args=(d,), daemon=True, kwargs={
        "op": "image_import", "pool": "ceph", "image": {
            "name": "slow", "url": slow, "sha256": sha256(base_file)}}).start()
    wait_for(lambda: "_part.slow" in rbd_names(), "the import to begin")
    d.kill9()
    stall.set()
    srv.shutdown()
    d.start()
    check(images() == {}, "no half image:", images())
    check("_part.slow" in rbd_names(), "the leftover is hidden")
    wait_for(lambda: d.call(op="image_import", pool="ceph", image={
        "name": "slow", "url": url, "sha256": sha256(base_file)})["code"] == 0,
        "the dead client's watch to expire")
    check(list(images()) == ["slow"] and rbd_names() == ["_image.slow"],
          images(), rbd_names())
    d.ok(op="image_delete", pool="ceph", image="slow")
    check(d.stop() == 0, "SIGTERM: exit 0")
c.stop()
