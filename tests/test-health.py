#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Liveness, readiness and the health detail, as probes (Kubernetes, load
balancers) read them:

- /healthz is liveness: the daemon's own loop answers and its worker pool
  takes work, 200 even when a backend is down (restarting vmhostd cannot
  bring libvirtd back), 503 when every worker is stuck while work waits;
- /readyz is readiness: 503 while a backend the node needs is down, 200
  when only an optional instance is missing (degraded, still serving);
- GET /api/v1/host/health names each instance and what is wrong (reader
  role), and grpc.health.v1.Health follows readiness.

A backend that is down is the mock hypervisor with a fault on its health
operation."""
import subprocess

from resttest import RestDaemon
from rpctest import RpcDaemon, pb
from vmhtest import VMHOSTD, check, mocks, wait_for

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

# The worker pool wedged (every thread stuck in a slow backend call while
# more work waits): not alive, with why; unstuck: alive again.  Two
# threads, three starts of 8 s on three VMs (the third waits for a thread),
# daemon.liveness_stall 1 s.
with RestDaemon(body=mocks(hv=", latency: { start: 8s }"),
                daemon_yaml="  workers: 2\n  liveness_stall: 1\n") as d:
    ops = []
    for i in range(3):
        d.ok("POST", V + "/vms", {"name": f"w-{i}", "vcpus": 1,
                                  "memory": 1 << 30, "start": False},
             status=201)
    check(probe(d, "/healthz") == (200, {"status": "alive"}), "idle pool")
    for i in range(3):
        ops.append(d.ok("POST", V + f"/vms/w-{i}/start?wait=false",
                        status=202)["id"])
    st, v = wait_for(lambda: (lambda p: p if p[0] == 503 else None)(
        probe(d, "/healthz")), "healthz 503 with every worker blocked")
    check(v["status"] == "not_alive" and "wedged" in v["reason"] and
          "2 of 2 threads are busy" in v["reason"] and
          "liveness_stall" in v["reason"], v)
    # Readiness does not wait behind the stuck work: not ready, and the
    # detail says why.
    check(probe(d, "/readyz") == (503, {"status": "not_ready"}),
          "readyz with a wedged pool:", probe(d, "/readyz"))
    h = d.ok("GET", V + "/host/health")
    check(h["status"] == "failed" and [c["name"] for c in h["checks"]] ==
          ["workers"] and "wedged" in h["checks"][0]["message"], h)
    for op in ops:
        end = d.ok("GET", V + f"/operations/{op}/wait?timeout=120")
        check(end["status"] == "succeeded", end)
    check(probe(d, "/healthz") == (200, {"status": "alive"}),
          "alive again once the workers are free:", probe(d, "/healthz"))
    check(probe(d, "/readyz") == (200, {"status": "ready"}),
          "ready again once the workers are free:", probe(d, "/readyz"))
    check(d.stop() == 0)

# The key is checked.
for bad in ("liveness_stall: 0", "liveness_stall: 3601"):
    d = RestDaemon(daemon_yaml=f"  {bad}\n")
    r = subprocess.run([VMHOSTD, "--check-config", "--config", d.config],
                       capture_output=True, text=True)
    check(r.returncode != 0 and "liveness_stall" in r.stderr + r.stdout,
          bad, "accepted", r.stdout, r.stderr)
    d.__exit__(None, None, None)

# "Not ready" is never kept (a "ready" may be, for a second: readiness.h):
# a backend whose first check fails and the next passes is ready at the
# next probe, on either front-end.
RECOVERS = mocks(hv=", faults: [{op: health, mode: nth, n: 1}]")
with RestDaemon(body=RECOVERS) as d:
    check(probe(d, "/readyz") == (503, {"status": "not_ready"}),
          "ready with its first check failing:", probe(d, "/readyz"))
    check(probe(d, "/readyz") == (200, {"status": "ready"}),
          "not ready after a check that passed:", probe(d, "/readyz"))
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


with RpcDaemon(body=RECOVERS) as d:
    check(serving(d) == H.HealthCheckResponse.NOT_SERVING, "first check")
    check(serving(d) == H.HealthCheckResponse.SERVING, "check after it")
    check(d.stop() == 0)

for body, want in ((mocks(), H.HealthCheckResponse.SERVING),
                   (DOWN, H.HealthCheckResponse.NOT_SERVING),
                   (OPTIONAL, H.HealthCheckResponse.SERVING)):
    with RpcDaemon(body=body) as d:
        for service in ("", "vmhost.v1.NodeService"):
            got = serving(d, service)
            check(got == want, f"service '{service}':", got, "expected", want)
        check(d.stop() == 0)
print("ok")
