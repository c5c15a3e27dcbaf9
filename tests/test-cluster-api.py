#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The cluster front-end's state through the API, on a real etcd
(etcdserver.py): REST GET /api/v1/cluster (checked against openapi.yaml)
and gRPC GetClusterStatus, up, degraded while etcd is away, up again; and
NOT_FOUND from both when no cluster front-end is configured.  The REST and
gRPC front-ends reach it through the core (vmh_core.plugin_status), never
through the plugin itself."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from etcdserver import Etcd, node_cluster_yaml  # noqa: E402
from resttest import RestDaemon, validate  # noqa: E402
from rpctest import RpcDaemon, expect_status, grpc, pb  # noqa: E402
from vmhtest import check, free_port, wait_for  # noqa: E402

FAST = (", heartbeat_interval: 1, lease_ttl: 5, timeout_ms: 1500"
        ", retry_max_ms: 500")


def rest_status(d):
    st, _, v = d.get("/api/v1/cluster")
    validate("GET", "/api/v1/cluster", st, v)
    return st, v


def rest(e):
    # The first endpoint answers nothing: the second serves (failover).
    dead = f"http://127.0.0.1:{free_port()}"
    fe = node_cluster_yaml(e, "a1", FAST).replace(
        f'endpoints: [ "{e.url}" ]', f'endpoints: [ "{dead}", "{e.url}" ]')
    with RestDaemon(rest=fe) as d:
        st, v = rest_status(d)
        check(st == 200 and v["status"] == "up", st, v)
        lease = e.lease_of("/vmhost/nodes/a1")
        check(v["lease_id"] == "%x" % lease, v, lease)
        check(v["node_name"] == "a1" and v["key"] == "/vmhost/nodes/a1", v)
        check(v["endpoints"] == [dead, e.url] and v["endpoint"] == e.url, v)
        check(v["error"] is None and v["registrations"] == 1, v)
        wait_for(lambda: rest_status(d)[1]["heartbeats"] >= 1,
                 "a heartbeat")
        v = rest_status(d)[1]
        check(v["last_heartbeat"] > 0 and v["heartbeat_latency_ms"] > 0, v)
        e.stop()
        v = wait_for(lambda: (lambda v: v if v["status"] == "degraded"
                              else None)(rest_status(d)[1]), "degraded")
        check(e.url in v["error"], "the error names the endpoint:", v)
        e.start()
        v = wait_for(lambda: (lambda v: v if v["status"] == "up" and
                              v["error"] is None else None)(
            rest_status(d)[1]), "up again")
        check(d.stop() == 0, "clean stop")
    with RestDaemon() as d:
        st, v = rest_status(d)
        check(st == 404 and v["error"]["code"] == "NOT_FOUND", st, v)
        check("cluster" in v["error"]["message"], v)


def rpc(e):
    with RpcDaemon(rpc=node_cluster_yaml(e, "g1", FAST)) as d:
        s = d.node().GetClusterStatus(pb.node.GetClusterStatusRequest())
        check(s.status == "up" and s.node_name == "g1", s)
        lease = e.lease_of("/vmhost/nodes/g1")
        check(s.lease_id == "%x" % lease, s, lease)
        check(list(s.endpoints) == [e.url] and s.heartbeat_interval == 1, s)
        check(s.error == "" and s.registrations == 1, s)
        check(d.stop() == 0, "clean stop")
    with RpcDaemon() as d:
        expect_status(grpc.StatusCode.NOT_FOUND, d.node().GetClusterStatus,
                      pb.node.GetClusterStatusRequest())


def main():
    tmp = tempfile.mkdtemp(prefix="vmhtest.")
    with Etcd(tmp) as e:
        rest(e)
        rpc(e)


main()
