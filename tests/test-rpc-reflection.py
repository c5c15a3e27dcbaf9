#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Server reflection (grpc.reflection.v1alpha.ServerReflection) of the rpc
front-end, a bidirectional stream: the stock client asks several
questions on one stream and gets the answers in order (services; the
file of a symbol, a FileDescriptorProto that describes every method; a
file by name; an unknown symbol, even in our package, as an
error_response).  A raw HTTP/2 client splits a request message across
DATA frames (reassembled) and sends garbage (INTERNAL); the daemon goes
on."""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpctest import RpcDaemon, check, frame, pb  # noqa: E402
from resttest import import_h2  # noqa: E402

from google.protobuf import descriptor_pb2  # noqa: E402

R = pb.refl
PATH = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

with RpcDaemon() as d:
    stub = pb.refl_grpc.ServerReflectionStub(d.channel())
    SYM, FILE, EXT = ("file_containing_symbol", "file_by_filename",
                      "all_extension_numbers_of_type")
    asked = [("list_services", ""),
             (SYM, "vmhost.v1.NodeService"),
             (FILE, "grpc/health/v1/health.proto"),
             (SYM, "vmhost.v1.VmSpec"),
             (SYM, "no.such.Thing"),
             (FILE, "nope.proto"),
             (EXT, "vmhost.v1.Vm"),
             # A symbol of our package that no file declares is not found
             # either; members, methods and enum values are found.
             (SYM, "vmhost.v1.Nope"),
             (SYM, "vmhost.v1.VmSpec.nope"),
             (EXT, "vmhost.v1.Nope"),
             (SYM, "vmhost.v1.VmSpec.vcpus"),
             (SYM, "vmhost.v1.NodeService.CreateVM"),
             (SYM, "vmhost.v1.VM_STATE_RUNNING"),
             (SYM, "vmhost.v1.VmState")]
    reqs = [R.ServerReflectionRequest(**{k: v}) for k, v in asked]
    answers = list(stub.ServerReflectionInfo(iter(reqs), timeout=20))
    check(len(answers) == len(reqs), answers)
    for q, a in zip(reqs, answers):
        check(a.original_request == q, q, a)
    names = {s.name for s in answers[0].list_services_response.service}
    check(names == {"vmhost.v1.NodeService", "grpc.health.v1.Health",
                    "grpc.reflection.v1alpha.ServerReflection"}, names)

    fd = descriptor_pb2.FileDescriptorProto.FromString(
        answers[1].file_descriptor_response.file_descriptor_proto[0])
    check(fd.name == "vmhost/v1/node.proto" and fd.package == "vmhost.v1", fd)
    svc = {s.name: s for s in fd.service}["NodeService"]
    methods = {m.name for m in svc.method}
    want = {m.name for m in
            pb.node.DESCRIPTOR.services_by_name["NodeService"].methods}
    check(methods == want, methods ^ want)
    check(any(m.server_streaming for m in svc.method
              if m.name == "WatchEvents"), "WatchEvents is not a stream")
    fd = descriptor_pb2.FileDescriptorProto.FromString(
        answers[2].file_descriptor_response.file_descriptor_proto[0])
    check(fd.name == "grpc/health/v1/health.proto", fd.name)
    check(answers[3].file_descriptor_response.file_descriptor_proto[0] ==
          answers[1].file_descriptor_response.file_descriptor_proto[0])
    check(answers[4].error_response.error_code == 5, answers[4])
    check(answers[5].error_response.error_code == 5, answers[5])
    check(answers[6].all_extension_numbers_response.base_type_name ==
          "vmhost.v1.Vm", answers[6])
    for a in answers[7:10]:
        check(a.error_response.error_code == 5, "not NOT_FOUND:",
              a.original_request, a.WhichOneof("message_response"))
    for a in answers[10:]:
        check(a.file_descriptor_response.file_descriptor_proto[0] ==
              answers[1].file_descriptor_response.file_descriptor_proto[0],
              "not node.proto:", a)

    # Raw HTTP/2: one request split over three DATA frames, then the end.
    h2 = import_h2()
    import socket
    s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                            (":path", PATH), (":authority", "x"),
                            ("content-type", "application/grpc"),
                            ("te", "trailers"),
                            ("authorization", f"Bearer {d.token()}")])
    msg = frame(R.ServerReflectionRequest(list_services="").SerializeToString())
    for part in (msg[:2], msg[2:7], msg[7:]):
        conn.send_data(sid, part)
        s.sendall(conn.data_to_send())
    data, trailers = b"", None
    while len(data) < 5 or len(data) < 5 + struct.unpack(">I", data[1:5])[0]:
        for ev in conn.receive_data(s.recv(65536)):
            if isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(len(ev.data), sid)
        s.sendall(conn.data_to_send())
    a = R.ServerReflectionResponse.FromString(data[5:])
    check(len(a.list_services_response.service) == 3, a)
    conn.end_stream(sid)
    s.sendall(conn.data_to_send())
    while trailers is None:
        for ev in conn.receive_data(s.recv(65536)):
            if isinstance(ev, h2.events.TrailersReceived):
                trailers = {k.decode(): v.decode() for k, v in ev.headers}
        s.sendall(conn.data_to_send())
    s.close()
    check(trailers.get("grpc-status") == "0", trailers)

    # Garbage: INTERNAL; a message over the limit: RESOURCE_EXHAUSTED; an
    # empty stream: OK and no answers.
    st, _ = d.raw_status(PATH, frame(b"\xff\xff\xff"))
    check(st == 13, st)
    st, _ = d.raw_status(PATH, frame(b"", length=1 << 30))
    check(st == 8, st)
    st, _ = d.raw_status(PATH, frame(b"x", length=3))
    check(st == 13, st)
    resp, data, tr = d.raw(PATH, b"")
    check(data == b"" and (tr or resp).get("grpc-status") == "0", resp, tr)

    check(d.node().GetNodeInfo(pb.node.GetNodeInfoRequest()).hostname)
    check(d.stop() == 0)
print("ok")
