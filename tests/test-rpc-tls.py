#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""TLS and mTLS of the rpc front-end with the stock gRPC client: ALPN h2
over TLS against the generated certificate; with tls.client_ca set, a
client certificate from that CA is accepted, none or another CA's is
refused (and the refusal logged), cleartext stays as it was."""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpctest import (RpcDaemon, check, grpc, openssl_cert, pb,  # noqa: E402
                     read_bytes)
from resttest import require  # noqa: E402

require("openssl")
N = pb.node
tmp = tempfile.mkdtemp(prefix="vmhrpc-tls.")
openssl_cert(tmp, "ca")
openssl_cert(tmp, "otherca")
openssl_cert(tmp, "client", ca="ca")
openssl_cert(tmp, "intruder", ca="otherca")


def tls_call(d, cert=None, token=True):
    """GetNodeInfo over TLS, trusting the daemon's generated certificate
    (with the admin token unless token is False): the answer, or the
    grpc.StatusCode of the failure."""
    md = [("authorization", f"Bearer {d.token()}")] if token else []
    kw = {"root_certificates": read_bytes(d.cert_path())}
    if cert:
        kw["private_key"] = read_bytes(f"{tmp}/{cert}.key")
        kw["certificate_chain"] = read_bytes(f"{tmp}/{cert}.pem")
    creds = grpc.ssl_channel_credentials(**kw)
    with grpc.secure_channel(f"127.0.0.1:{d.tls_port}", creds,
                             options=[("grpc.ssl_target_name_override",
                                       "localhost")]) as ch:
        try:
            return pb.node_grpc.NodeServiceStub(ch).GetNodeInfo(
                N.GetNodeInfoRequest(), timeout=10, metadata=md)
        except grpc.RpcError as e:
            return e.code()


# Plain TLS: the generated certificate, ALPN h2 (gRPC insists on it).
with RpcDaemon() as d:
    r = tls_call(d)
    check(isinstance(r, N.NodeInfo) and r.hostname, "TLS call:", r)
    r = tls_call(d, cert="client")  # a certificate nobody asked for is fine
    check(isinstance(r, N.NodeInfo), "TLS call with a client cert:", r)
    check(d.stop() == 0)

# mTLS.
# The certificate's subject maps to a role (auth.clients).
with RpcDaemon(rpc=f"""    tls: {{ client_ca: {tmp}/ca.pem }}
    auth: {{ clients: [ {{ subject: "CN=client", role: reader }} ] }}
""") as d:
    r = tls_call(d, cert="client", token=False)
    check(isinstance(r, N.NodeInfo) and r.hostname, "good client refused:", r)
    r = tls_call(d, cert="client")
    check(isinstance(r, N.NodeInfo) and r.hostname, "client + token:", r)
    r = tls_call(d)
    check(r == grpc.StatusCode.UNAVAILABLE, "no client cert served:", r)
    r = tls_call(d, cert="intruder")
    check(r == grpc.StatusCode.UNAVAILABLE, "other CA's cert served:", r)
    check(d.log().count("TLS handshake with 127.0.0.1") >= 2, d.log()[-3000:])
    # Cleartext (loopback) is unaffected.
    check(d.node().GetNodeInfo(N.GetNodeInfoRequest()).hostname)
    check(d.stop() == 0)
shutil.rmtree(tmp)
print("ok")
