#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Liveness, readiness and the health detail, as probes (Kubernetes, load
balancers) read them:

- /healthz is liveness: the daemon's own loop answers, 200 even when a
  backend is down (restarting vmhostd cannot bring libvirtd back);
- /readyz is readiness: 503 while a backend the node needs is down, 200
  when only an optional instance is missing (degraded, still serving);
- GET /api/v1/host/health names each instance and what is wrong (reader
  role), and grpc.health.v1.Health follows readiness.

A backend that is down is the mock hypervisor with a fault on its health
operation."""
from resttest import RestDaemon
from rpctest import RpcDaemon, pb
from vmhtest import check, mocks

V = "/api/v1"
DOWN = mocks(hv=", faults: [{op: health, mode: always, "
             "message: 'backend hv0 is down'}]")
# A second, optional hypervisor that cannot open: the node is degraded.
OPTIONAL = mocks().replace(
    "hypervisors:\n",
    "hypervisors:\n  - { name: spare, plugin: mock, optional: true, "
    "faults: [{op: open, mode: always}] }\n", 1)


def probe(d, path):
    st, _, v = d.request("GET", path, token=False)
    return st, v


# All well: alive and ready.
with RestDaemon() as d:
    check(probe(d, "/healthz") == (200, {"status": "alive"}), "healthz")
    check(probe(d, "/readyz") == (200, {"status": "ready"}), "readyz")
    h = d.ok("GET", V + "/host/health")
    check(h["status"] == "ok", h)
    check(d.stop() == 0)

# The hypervisor backend down: alive, not ready; the detail says which.
with RestDaemon(body=DOWN) as d:
    check(probe(d, "/healthz") == (200, {"status": "alive"}),
          "liveness follows a backend:", probe(d, "/healthz"))
    check(probe(d, "/readyz") == (503, {"status": "not_ready"}),
          "ready with its hypervisor down:", probe(d, "/readyz"))
    h = d.ok("GET", V + "/host/health")
    check(h["status"] == "failed", h)
    hv0 = [c for c in h["checks"] if c["name"] == "hv0"]
    check(len(hv0) == 1 and hv0[0]["status"] == "failed" and
          "backend hv0 is down" in hv0[0]["message"], h)
    check({c["status"] for c in h["checks"] if c["name"] != "hv0"} == {"ok"},
          h)
    # The detail is the reader role's; the probes are open.
    st, _, v = d.request("GET", V + "/host/health", token=False)
    check(st == 401, "health detail without a token:", st, v)
    check(d.stop() == 0)

# An optional instance not serving: degraded, but ready.
with RestDaemon(body=OPTIONAL) as d:
    check(probe(d, "/readyz") == (200, {"status": "ready"}),
          "not ready with an optional instance missing:",
          probe(d, "/readyz"))
    h = d.ok("GET", V + "/host/health")
    check(h["status"] == "degraded", h)
    check(d.stop() == 0)

# gRPC: the standard health service follows readiness, per service.
H = pb.health


def serving(d, service=""):
    return d.health().Check(H.HealthCheckRequest(service=service),
                            timeout=20).status


for body, want in ((mocks(), H.HealthCheckResponse.SERVING),
                   (DOWN, H.HealthCheckResponse.NOT_SERVING),
                   (OPTIONAL, H.HealthCheckResponse.SERVING)):
    with RpcDaemon(body=body) as d:
        for service in ("", "vmhost.v1.NodeService"):
            got = serving(d, service)
            check(got == want, f"service '{service}':", got, "expected", want)
        check(d.stop() == 0)
print("ok")
