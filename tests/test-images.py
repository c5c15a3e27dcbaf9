#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pool's image cache through REST (plugins/frontend/rest/images.c): import
over HTTP from a server started here (tests/cuthttp.py) into the local pool
as an operation, followed with ?wait=false to its end with byte progress on
the event stream; the default (waiting) import answers 201 with the image;
a wrong sha256 fails and keeps nothing; schemes refused at the edge (400),
file:// inside and outside the pool's image_sources.file_dirs, loopback on
a pool without allow_private (403); the refusals of bad input; list, get,
delete; a delete refused (409) while a clone uses the image, naming it;
image_sources.schemes ([ https ]: http:// refused, an unknown scheme a
config mistake);
then a VM created from the image (it was 404 "import it first") on the
local and the mock pool; at most two imports run at once, the others
wait queued and can be cancelled.  Every answer is checked against openapi.yaml."""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

from cuthttp import CutServer
from resttest import RestDaemon, Sse, openapi, req, require, validate
from vmhtest import IMAGE_SOURCES, VMHOSTD, check, skip

require("curl")
if not shutil.which("qemu-img"):
    skip("no qemu-img (install qemu-utils)")

V = "/api/v1"
TOP = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__),
                                                ".."))
MiB = 1 << 20

# The url limit is one number: speclimits.h, openapi.yaml, the daemon.
with open(os.path.join(TOP, "plugins", "common", "speclimits.h")) as f:
    URL_MAX = int(re.search(r"^#define SPEC_IMAGE_URL_MAX (\d+)$", f.read(),
                            re.M).group(1))
imp = openapi()["components"]["schemas"]["ImageImport"]
check(imp["properties"]["url"]["maxLength"] == URL_MAX, imp)
check(set(imp["required"]) == {"name", "url", "sha256"}, imp)


def refused(d, method, path, body, status, code, *words):
    """An error answer whose message says each of words."""
    v = d.error(method, path, status, code, body=body)
    validate(method, path, status, v)
    for w in words:
        check(w in v["error"]["message"], method, path, body, "says", w, v)
    return v


def images(d, pool):
    return {i["name"]: i for i in
            req(d, "GET", f"{V}/storage/pools/{pool}/images",
                status=200)[2]["images"]}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


top = tempfile.mkdtemp(prefix="vmhtest-images.")
server = None
try:
    www = os.path.join(top, "www")
    local = os.path.join(top, "local")
    strict = os.path.join(top, "strict")
    tlsonly = os.path.join(top, "tlsonly")
    for p in (www, local, strict, tlsonly):
        os.mkdir(p)
    base = os.path.join(www, "base.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "64M"],
                   check=True)
    raw = os.path.join(www, "tiny.raw")
    with open(raw, "wb") as f:
        f.write(os.urandom(3 * MiB))
    base_sum, raw_sum = sha256(base), sha256(raw)
    server = CutServer(www, top)
    url = server.url

    body = f"""
hypervisors:
  - {{ name: hv0, plugin: mock }}
storage:
  - {{ name: pool0, plugin: mock }}
  - {{ name: slow, plugin: mock, latency: {{ image_import: 4s }} }}
  - {{ name: local0, plugin: local, path: {local}, {IMAGE_SOURCES} }}
  - {{ name: strict, plugin: local, path: {strict} }}
  - {{ name: tlsonly, plugin: local, path: {tlsonly},
       image_sources: {{ schemes: [ https ], allow_private: true }} }}
networks:
  - {{ name: net0, plugin: mock }}
"""
    with RestDaemon(body=body) as d:
        sse = Sse(d)
        P = f"{V}/storage/pools/local0/images"
        check(images(d, "local0") == {}, "an empty cache")

        # ---- refused at the edge: nothing queued, 400 naming the field ----
        good = {"name": "base", "url": f"{url}/base.qcow2",
                "sha256": base_sum}
        for key in ("name", "url", "sha256"):
            refused(d, "POST", P, {k: v for k, v in good.items() if k != key},
                    400, "INVALID_ARGUMENT", f"'{key}' is required")
        refused(d, "POST", P, dict(good, sha256="0" * 63), 400,
                "INVALID_ARGUMENT", "'sha256'", "64")
        refused(d, "POST", P, dict(good, sha256=base_sum.upper()), 400,
                "INVALID_ARGUMENT", "'sha256'")
        refused(d, "POST", P, dict(good, name="Bad/Name"), 400,
                "INVALID_ARGUMENT", "name")
        refused(d, "POST", P, dict(good, format="qcow2"), 400,
                "INVALID_ARGUMENT", "format")
        refused(d, "POST", P, dict(good, url=5), 400, "INVALID_ARGUMENT",
                "url")
        refused(d, "POST", P, dict(good, url="http://x/" + "a" * URL_MAX),
                400, "INVALID_ARGUMENT", str(URL_MAX))
        for bad in ("ftp://example.com/x.img", "/etc/passwd",
                    "gopher://x/"):
            for q in ("", "?wait=false"):
                refused(d, "POST", P + q, dict(good, url=bad), 400,
                        "INVALID_ARGUMENT", "http://", "https://")
        refused(d, "POST", P + "?wait=maybe", good, 400, "INVALID_ARGUMENT",
                "wait")
        st, _, v = d.request("POST", P, raw=b"[1]",
                             headers={"content-type": "application/json"})
        check(st == 400 and "object" in v["error"]["message"], st, v)
        st, _, v = d.request("POST", P, raw=b"{",
                             headers={"content-type": "application/json"})
        check(st == 400 and "malformed JSON" in v["error"]["message"], st, v)
        # No such pool: 404 at once, also asynchronously.
        for q in ("", "?wait=false"):
            refused(d, "POST", f"{V}/storage/pools/nope/images{q}", good, 404,
                    "NOT_FOUND", "nope")
        refused(d, "GET", f"{V}/storage/pools/nope/images", None, 404,
                "NOT_FOUND", "nope")
        refused(d, "GET", f"{P}/base", None, 404, "NOT_FOUND",
                "no image base")
        refused(d, "DELETE", f"{P}/base", None, 404, "NOT_FOUND", "base")
        check(images(d, "local0") == {}, "nothing made by a refusal")

        # ---- the pool's image_sources --------------------------------------
        # file:// outside file_dirs, and any on a pool without it: 403, one
        # message whether the file exists or not.
        for pool, src, dirs in (
                ("local0", "file:///etc/os-release", tempfile.gettempdir()),
                ("local0", "file:///no/such/file", tempfile.gettempdir()),
                ("strict", "file://" + raw, "the config names none")):
            refused(d, "POST", f"{V}/storage/pools/{pool}/images",
                    dict(good, url=src, sha256=raw_sum), 403,
                    "PERMISSION_DENIED", f"image_sources.file_dirs ({dirs})")
        # Loopback without allow_private.
        refused(d, "POST", f"{V}/storage/pools/strict/images", good, 403,
                "PERMISSION_DENIED", "private address")
        check(images(d, "strict") == {}, "strict keeps nothing")
        # schemes: [ https ] refuses http:// (400, naming what it takes).
        v = refused(d, "POST", f"{V}/storage/pools/tlsonly/images", good, 400,
                    "INVALID_ARGUMENT")
        check(v["error"]["message"].endswith("must start with file:// or "
                                             "https://"), v)
        check(images(d, "tlsonly") == {}, "tlsonly keeps nothing")

        # ---- a wrong sha256: a failed operation, nothing kept --------------
        v = refused(d, "POST", P, dict(good, sha256="0" * 64), 400,
                    "INVALID_ARGUMENT", "sha256")
        check(base_sum not in v["error"]["message"], v)
        _, hdrs, op = req(d, "POST", P + "?wait=false",
                          dict(good, sha256="1" * 64), status=202)
        _, _, op = req(d, "GET", f"{V}/operations/{op['id']}/wait?timeout=60",
                       status=200)
        check(op["status"] == "failed" and op["error"]["code"] == -1 and
              "sha256" in op["error"]["message"], op)
        check(images(d, "local0") == {}, "a wrong digest keeps nothing")
        check(os.listdir(os.path.join(local, ".images")) == [],
              "nothing left:", os.listdir(os.path.join(local, ".images")))

        # ---- import over HTTP, followed: 202, progress in bytes, the end ---
        _, hdrs, op = req(d, "POST", P + "?wait=false", good, status=202)
        check(hdrs.get("location") == f"{V}/operations/{op['id']}", hdrs)
        check(op["kind"] == "image.import" and
              op["target"]["pool"] == "local0" and
              op["target"]["object"] == "base", op)
        _, _, op = req(d, "GET", f"{V}/operations/{op['id']}/wait?timeout=60",
                       status=200)
        size = os.path.getsize(base)
        check(op["status"] == "succeeded" and op["error"] is None, op)
        check(op["progress"]["done"] == size and
              op["progress"]["total"] == size, op)
        sse.wait(lambda e: e["type"] == "operation_updated" and
                 e["operation"] == op["id"] and e["done"] == size and
                 e["total"] == size, "progress in bytes")
        sse.wait(lambda e: e["type"] == "operation_ended" and
                 e["operation"] == op["id"] and e["code"] == 0, "the end")
        img = req(d, "GET", f"{P}/base", status=200)[2]
        check(img == {"name": "base", "size": size, "sha256": base_sum,
                      "n_users": 0}, img)
        check(images(d, "local0") == {"base": img}, images(d, "local0"))
        refused(d, "POST", P, good, 409, "ALREADY_EXISTS", "base")

        # The default waits and answers the image; file:// under file_dirs.
        _, _, tiny = req(d, "POST", P, {"name": "tiny",
                                        "url": "file://" + raw,
                                        "sha256": raw_sum}, status=201)
        check(tiny == {"name": "tiny", "size": 3 * MiB, "sha256": raw_sum,
                       "n_users": 0}, tiny)
        req(d, "DELETE", f"{P}/tiny", status=204)
        refused(d, "GET", f"{P}/tiny", None, 404, "NOT_FOUND", "tiny")

        # ---- a VM made from it; the image busy while its clone lives -------
        vm = req(d, "POST", f"{V}/vms", {
            "name": "from-image", "vcpus": 1, "memory": "64MiB",
            "disks": [{"name": "vda", "pool": "local0",
                       "base_image": "base"}]}, status=201)[2]
        check(vm["state"] == "running", vm)
        vol = vm["disks"][0]["volume"]
        vinfo = req(d, "GET", f"{V}/storage/pools/local0/volumes/{vol}",
                    status=200)[2]
        check(vinfo["backing"] == "base" and vinfo["capacity"] == 64 * MiB,
              vinfo)
        check(req(d, "GET", f"{P}/base", status=200)[2]["n_users"] == 1,
              "one clone")
        for q in ("", "?wait=false"):
            if q:
                _, _, op = req(d, "DELETE", f"{P}/base{q}", status=202)
                op = req(d, "GET", f"{V}/operations/{op['id']}/wait",
                         status=200)[2]
                check(op["status"] == "failed" and
                      vol in op["error"]["message"], op)
            else:
                refused(d, "DELETE", f"{P}/base", None, 409, "BUSY", vol)
        refused(d, "POST", f"{V}/vms", {
            "name": "no-image", "vcpus": 1, "memory": "64MiB",
            "disks": [{"name": "vda", "pool": "local0",
                       "base_image": "debian-12"}]}, 404, "NOT_FOUND",
            "debian-12")
        req(d, "DELETE", f"{V}/vms/from-image", status=204)
        check(images(d, "local0")["base"]["n_users"] == 0, "clone gone")
        _, _, op = req(d, "DELETE", f"{P}/base?wait=false", status=202)
        check(op["kind"] == "image.delete", op)
        op = req(d, "GET", f"{V}/operations/{op['id']}/wait", status=200)[2]
        check(op["status"] == "succeeded", op)
        check(images(d, "local0") == {}, "deleted")
        check(os.listdir(os.path.join(local, ".images")) == [],
              os.listdir(os.path.join(local, ".images")))

        # ---- the mock pool (it downloads nothing): the same API ------------
        M = f"{V}/storage/pools/pool0/images"
        img = req(d, "POST", M, {"name": "mock-base",
                                 "url": "https://example.com/base.img",
                                 "sha256": base_sum}, status=201)[2]
        check(img["name"] == "mock-base" and img["sha256"] == base_sum, img)
        req(d, "POST", f"{V}/vms", {
            "name": "mock-vm", "vcpus": 1, "memory": "64MiB",
            "disks": [{"name": "vda", "base_image": "mock-base"}]},
            status=201)
        check(images(d, "pool0")["mock-base"]["n_users"] == 1, "mock clone")
        refused(d, "DELETE", f"{M}/mock-base", None, 409, "BUSY", "mock-base")
        req(d, "DELETE", f"{V}/vms/mock-vm", status=204)
        req(d, "DELETE", f"{M}/mock-base", status=204)
        check(images(d, "pool0") == {}, "mock deleted")

        # ---- at most two downloads hold a worker; the rest wait queued ---
        S = f"{V}/storage/pools/slow/images"
        ops = [req(d, "POST", S + "?wait=false",
                   {"name": f"s{i}", "url": f"https://example.com/{i}",
                    "sha256": base_sum}, status=202)[2] for i in range(3)]
        for o in ops[:2]:
            sse.wait(lambda e, o=o: e["type"] == "operation_updated" and
                     e["operation"] == o["id"] and e["reason"] == "running",
                     "two imports running")
        check(req(d, "GET", f"{V}/operations/{ops[2]['id']}",
                  status=200)[2]["status"] == "queued", "the third queued")
        # Other work still finds a worker meanwhile.
        req(d, "POST", f"{V}/storage/pools/pool0/volumes",
            {"name": "meanwhile", "size": "1MiB"}, status=201)
        c = req(d, "DELETE", f"{V}/operations/{ops[2]['id']}",
                status=200)[2]
        check(c["status"] == "cancelled", c)
        for o in ops[:2]:
            end = req(d, "GET", f"{V}/operations/{o['id']}/wait?timeout=60",
                      status=200)[2]
            check(end["status"] == "succeeded", end)
        check(sorted(images(d, "slow")) == ["s0", "s1"], images(d, "slow"))

        # The operations of this test, as listed.
        ops = req(d, "GET", f"{V}/operations", status=200)[2]["operations"]
        kinds = {o["kind"] for o in ops}
        check({"image.import", "image.delete"} <= kinds, kinds)
        sse.close()

    # A scheme image_sources does not know is a config mistake.
    cfg = os.path.join(top, "bad.yaml")
    with open(cfg, "w") as f:
        f.write(f"""daemon: {{ state_dir: {top}/bad-state }}
storage:
  - {{ name: p, plugin: local, path: {local},
       image_sources: {{ schemes: [ https, ftp ] }} }}
""")
    r = subprocess.run([VMHOSTD, "--check-config", "--config", cfg],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode != 0 and "image_sources.schemes: 'ftp'" in r.stderr,
          r.returncode, r.stderr)
finally:
    if server:
        server.stop()
    shutil.rmtree(top, ignore_errors=True)
