#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The gRPC wire protocol of the rpc front-end, with a raw HTTP/2 client
(python3-h2) sending what stock clients never send: wrong method and
content-type, no te, unknown methods, truncated prefixes, lengths larger
than the body or over the limit, compressed messages without
grpc-encoding, gzip, garbage protobuf, grpc-timeout.  After each the
daemon keeps answering."""
import gzip
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpctest import TOP_SRCDIR, RpcDaemon, check, frame, mocks, pb  # noqa: E402
from vmhtest import VMHOSTD  # noqa: E402

N = pb.node
INFO = "/vmhost.v1.NodeService/GetNodeInfo"
GET = "/vmhost.v1.NodeService/GetVM"
START = "/vmhost.v1.NodeService/StartVM"


def ok_info(d):
    """A well-formed call still answers."""
    resp, data, tr = d.raw(INFO, frame(b""))
    check(resp[":status"] == "200" and tr and tr["grpc-status"] == "0",
          resp, tr)
    check(data[0] == 0 and int.from_bytes(data[1:5], "big") == len(data) - 5,
          data[:5])
    m = N.NodeInfo.FromString(data[5:])
    check(m.hostname, m)
    return resp


# The documented example and the default config are valid.
for cfg in ("etc/plugins/rpc.yaml", "etc/vmhostd.yaml"):
    r = subprocess.run([VMHOSTD, "--check-config", "--config",
                        os.path.join(TOP_SRCDIR, cfg)],
                       capture_output=True, text=True)
    check(r.returncode == 0, cfg, r.stderr)

with RpcDaemon(body=mocks(hv=", latency: { start: 2s }"),
               rpc="    max_message_size: 2K\n") as d:
    resp = ok_info(d)
    check(resp["content-type"] == "application/grpc", resp)
    check("gzip" in resp.get("grpc-accept-encoding", ""), resp)

    # Not gRPC at all: HTTP statuses.
    resp, _, _ = d.raw(INFO, frame(b""), ctype="application/json")
    check(resp[":status"] == "415", resp)
    resp, _, _ = d.raw(INFO, frame(b""), ctype=None)
    check(resp[":status"] == "415", resp)
    resp, _, _ = d.raw(INFO, method="GET", ctype="application/grpc")
    check(resp[":status"] == "405", resp)
    # application/grpc+proto is gRPC.
    resp, _, tr = d.raw(INFO, frame(b""), ctype="application/grpc+proto")
    check(tr and tr["grpc-status"] == "0", resp, tr)

    # Trailers-Only errors: one HEADERS frame with the status in it.
    resp, data, tr = d.raw("/vmhost.v1.NodeService/NoSuch", frame(b""))
    check(resp[":status"] == "200" and resp["grpc-status"] == "12" and
          tr is None and data == b"", resp, tr, data)
    check("NoSuch" in resp["grpc-message"], resp)
    st, _ = d.raw_status("/no.Such/Service", frame(b""))
    check(st == 12, st)

    # A VM that is not there: NOT_FOUND, with a percent-encoded message.
    req = N.VmRequest(vm="nope").SerializeToString()
    st, msg = d.raw_status(GET, frame(req))
    check(st == 5, st, msg)
    # A string with a NUL byte is refused, not cut at it ("web-1\0junk"
    # would be web-1), in a nested message too.
    import vmhtest
    d.ok(op="vm_create", spec=vmhtest.vm_spec("web-1"))
    st, msg = d.raw_status(GET, frame(N.VmRequest(vm="web-1")
                                      .SerializeToString()))
    check(st == 0, "GetVM web-1", st, msg)
    st, msg = d.raw_status(GET, frame(N.VmRequest(vm="web-1\0junk")
                                      .SerializeToString()))
    check(st == 3 and "NUL" in msg, "GetVM with a NUL:", st, msg)
    spec = N.CreateVMRequest()
    spec.spec.name = "web-2"
    spec.spec.vcpus = 1
    spec.spec.memory = 1 << 20
    disk = spec.spec.disks.add()
    disk.name = "vda\0x"
    st, msg = d.raw_status("/vmhost.v1.NodeService/CreateVM",
                           frame(spec.SerializeToString()))
    check(st == 3 and "NUL" in msg, "a NUL in a nested string:", st, msg)
    # A name with bytes outside ASCII comes back percent-encoded.
    req = N.VmRequest(vm="caf\u00e9").SerializeToString()
    resp, _, _ = d.raw(GET, frame(req))
    check(resp["grpc-status"] == "3" and "%C3%A9" in resp["grpc-message"],
          resp)

    # te: trailers is required.
    st, msg = d.raw_status(INFO, frame(b""), te=False)
    check(st == 13 and "te" in msg, st, msg)

    # Malformed framing.
    for body, want, what in [
            (b"", 13, "no message"),
            (b"\x00\x00\x00", 13, "truncated prefix"),
            (frame(b"ab", length=10), 13, "length larger than the body"),
            (frame(b"ab", length=1), 13, "bytes after the message"),
            (frame(b"", length=1 << 30), 8, "length over the limit"),
            (frame(b"x" * 3000), 8, "message over the limit"),
            (b"\x07\x00\x00\x00\x00", 13, "bad compressed flag"),
            (frame(b"\x0a\x04web", compressed=1), 13,
             "compressed without grpc-encoding"),
            (frame(b"\xff\xff\xff\xff"), 13, "garbage protobuf"),
            (frame(b"\x0a\x05ab"), 13, "truncated protobuf field")]:
        st, msg = d.raw_status(GET, body)
        check(st == want, what, "->", st, msg)
        ok_info(d)

    # A body larger than the limit is refused as it comes.
    st, msg = d.raw_status(GET, frame(b"x" * 9000))
    check(st == 8, "body over the limit ->", st, msg)
    ok_info(d)

    # gzip: accepted; an encoding we lack is UNIMPLEMENTED; bad gzip
    # INTERNAL; a bomb that inflates past the limit RESOURCE_EXHAUSTED.
    req = N.VmRequest(vm="nope").SerializeToString()
    st, msg = d.raw_status(GET, frame(gzip.compress(req), compressed=1),
                           headers={"grpc-encoding": "gzip"})
    check(st == 5, "gzip ->", st, msg)
    st, _ = d.raw_status(GET, frame(req), headers={"grpc-encoding": "br"})
    check(st == 12, st)
    st, _ = d.raw_status(GET, frame(b"notgzip", compressed=1),
                         headers={"grpc-encoding": "gzip"})
    check(st == 13, st)
    bomb = gzip.compress(b"\x0a\x80\x80\x04" + b"a" * 65536)
    st, _ = d.raw_status(GET, frame(bomb, compressed=1),
                         headers={"grpc-encoding": "gzip"})
    check(st == 8, st)
    ok_info(d)

    # grpc-timeout: the server's own deadline (the raw client has none).
    vm = N.CreateVMRequest(spec=N.VmSpec(name="slow", vcpus=1,
                                         memory=1 << 30), no_start=True)
    st, msg = d.raw_status("/vmhost.v1.NodeService/CreateVM",
                           frame(vm.SerializeToString()))
    check(st == 0, st, msg)
    t0 = time.time()
    st, msg = d.raw_status(START, frame(N.VmRequest(vm="slow")
                                        .SerializeToString()),
                           headers={"grpc-timeout": "300m"})
    took = time.time() - t0
    check(st == 4 and took < 1.5, "DEADLINE_EXCEEDED ->", st, msg, took)
    for bad in ["1x", "123456789S", "S", "-1S"]:
        st, _ = d.raw_status(INFO, frame(b""), headers={"grpc-timeout": bad})
        check(st == 13, bad, st)
    st, _ = d.raw_status(INFO, frame(b""), headers={"grpc-timeout": "5S"})
    check(st == 0, st)
    # HTTP/1.1 is no gRPC.
    r = d.raw  # noqa: F841
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    c.request("POST", INFO, body=frame(b""),
              headers={"content-type": "application/grpc"})
    check(c.getresponse().status == 505)
    c.close()

    ok_info(d)
    rc = d.stop()
    check(rc == 0, "vmhostd exited", rc, d.log())
print("ok")
