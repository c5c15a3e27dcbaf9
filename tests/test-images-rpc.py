#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pool's image cache through gRPC with the stock client (python3-grpcio):
ImportImageAsync answers the operation, WaitOperation follows it to its end
and WatchEvents carries its byte progress; ImportImage answers the image;
a wrong sha256 keeps nothing; the URL policy (INVALID_ARGUMENT for a
scheme, PERMISSION_DENIED outside file_dirs); ListImages, GetImage,
DeleteImage (FAILED_PRECONDITION while a clone lives, naming it); CreateVM
from the image; refusals of bad input."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cuthttp import CutServer  # noqa: E402
from rpctest import RpcDaemon, check, expect_status, grpc, pb  # noqa: E402
from vmhtest import IMAGE_SOURCES, skip  # noqa: E402

if not shutil.which("qemu-img"):
    skip("no qemu-img (install qemu-utils)")

N = pb.node
TOP = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__),
                                                ".."))

# node.proto states the url limit of speclimits.h.
with open(os.path.join(TOP, "plugins", "common", "speclimits.h")) as f:
    URL_MAX = int(re.search(r"^#define SPEC_IMAGE_URL_MAX (\d+)$", f.read(),
                            re.M).group(1))
with open(os.path.join(TOP, "proto", "vmhost", "v1", "node.proto")) as f:
    msg = re.search(r"^message ImportImageRequest \{(.*?)^\}", f.read(),
                    re.M | re.S).group(1)
check(f"at most {URL_MAX} bytes" in msg, "node.proto ImportImageRequest.url",
      msg)
SC = grpc.StatusCode
OS = N.OperationStatus

top = tempfile.mkdtemp(prefix="vmhtest-images-rpc.")
server = None
try:
    www = os.path.join(top, "www")
    local = os.path.join(top, "local")
    for p in (www, local):
        os.mkdir(p)
    base = os.path.join(www, "base.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "32M"],
                   check=True)
    with open(base, "rb") as f:
        base_sum = hashlib.sha256(f.read()).hexdigest()
    size = os.path.getsize(base)
    server = CutServer(www, top)

    body = f"""
hypervisors:
  - {{ name: hv0, plugin: mock }}
storage:
  - {{ name: local0, plugin: local, path: {local}, {IMAGE_SOURCES} }}
  - {{ name: pool0, plugin: mock }}
networks:
  - {{ name: net0, plugin: mock }}
"""
    with RpcDaemon(body=body) as d:
        node = d.node()
        # Read in order once the import has ended (the deadline: a hang).
        watch = node.WatchEvents(N.WatchEventsRequest(), timeout=300)

        def imp(**kw):
            a = dict(pool="local0", name="base", url=f"{server.url}/base.qcow2",
                     sha256=base_sum)
            a.update(kw)
            return N.ImportImageRequest(**a)

        def listed(pool="local0"):
            return {i.name: i for i in node.ListImages(
                N.PoolRequest(pool=pool)).images}

        check(listed() == {}, "empty")

        # ---- refusals ----------------------------------------------------
        for kw, words in (({"name": ""}, "'name' is required"),
                          ({"url": ""}, "'url' is required"),
                          ({"sha256": ""}, "'sha256' is required"),
                          ({"sha256": "ab"}, "64 lower-case hex"),
                          ({"sha256": base_sum.upper()}, "64 lower-case hex"),
                          ({"name": "Bad/Name"}, "image"),
                          ({"url": "http://x/" + "a" * URL_MAX},
                           str(URL_MAX)),
                          ({"url": "ftp://example.com/a"}, "https://"),
                          ({"pool": ""}, "pool")):
            for m in (node.ImportImage, node.ImportImageAsync):
                e = expect_status(SC.INVALID_ARGUMENT, m, imp(**kw))
                check(words in e.details(), kw, e.details())
        expect_status(SC.NOT_FOUND, node.ImportImageAsync, imp(pool="nope"))
        expect_status(SC.NOT_FOUND, node.ListImages, N.PoolRequest(pool="nope"))
        e = expect_status(SC.NOT_FOUND, node.GetImage,
                          N.ImageRequest(pool="local0", image="base"))
        check("no image base" in e.details(), e.details())
        e = expect_status(SC.PERMISSION_DENIED, node.ImportImage,
                          imp(url="file:///etc/os-release"))
        check("image_sources.file_dirs" in e.details(), e.details())

        # A wrong digest: INVALID_ARGUMENT, or a failed operation; nothing
        # kept.
        expect_status(SC.INVALID_ARGUMENT, node.ImportImage,
                      imp(sha256="0" * 64))
        op = node.ImportImageAsync(imp(sha256="1" * 64))
        end = node.WaitOperation(N.WaitOperationRequest(id=op.id,
                                                        timeout_s=60))
        check(end.status == OS.Value("OPERATION_STATUS_FAILED") and
              end.error_code == "invalid_argument", end)
        check(listed() == {}, "kept")

        # ---- ImportImageAsync followed to its end ---------------------------
        op = node.ImportImageAsync(imp())
        check(op.kind == "image.import" and op.pool == "local0" and
              op.object == "base", op)
        end = node.WaitOperation(N.WaitOperationRequest(id=op.id,
                                                        timeout_s=60))
        check(end.status == OS.Value("OPERATION_STATUS_SUCCEEDED") and
              end.done == size and end.total == size, end)
        seen = []
        for e in watch:
            if e.operation == op.id:
                seen.append((e.type, e.done, e.total))
            if e.type == N.EVENT_TYPE_OPERATION and e.operation == op.id:
                break
        check((N.EVENT_TYPE_OPERATION_UPDATED, size, size) in seen and
              seen[-1][0] == N.EVENT_TYPE_OPERATION, "progress in bytes",
              seen)
        img = node.GetImage(N.ImageRequest(pool="local0", image="base"))
        check(img.name == "base" and img.size == size and
              img.sha256 == base_sum and img.n_users == 0, img)
        check(list(listed()) == ["base"], listed())
        expect_status(SC.ALREADY_EXISTS, node.ImportImage, imp())
        # The waiting call answers the image (file:// under file_dirs).
        img2 = node.ImportImage(imp(name="copy", url="file://" + base))
        check(img2.name == "copy" and img2.sha256 == base_sum, img2)
        node.DeleteImage(N.ImageRequest(pool="local0", image="copy"))

        # ---- a VM from it; busy while its clone lives ---------------------
        vm = node.CreateVM(N.CreateVMRequest(spec=N.VmSpec(
            name="from-image", vcpus=1, memory=64 << 20,
            disks=[N.Disk(name="vda", pool="local0", base_image="base")])))
        vol = vm.spec.disks[0].volume
        check(vol, vm)
        e = expect_status(SC.FAILED_PRECONDITION, node.DeleteImage,
                          N.ImageRequest(pool="local0", image="base"))
        check(vol in e.details(), e.details())
        check(listed()["base"].n_users == 1, listed())
        node.DeleteVM(N.VmRequest(vm="from-image"))
        node.DeleteImage(N.ImageRequest(pool="local0", image="base"))
        check(listed() == {}, "deleted")
        expect_status(SC.NOT_FOUND, node.DeleteImage,
                      N.ImageRequest(pool="local0", image="base"))

        # The mock pool answers the same calls.
        node.ImportImage(imp(pool="pool0", name="m",
                             url="https://example.com/m.img"))
        check(list(listed("pool0")) == ["m"], listed("pool0"))
        node.DeleteImage(N.ImageRequest(pool="pool0", image="m"))
        watch.cancel()
finally:
    if server:
        server.stop()
    shutil.rmtree(top, ignore_errors=True)
