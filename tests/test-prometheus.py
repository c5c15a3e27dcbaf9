#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""GET /metrics against the Prometheus conventions, on a vmhostd with the
REST and gRPC front-ends, VMs, two pools and two networks: `promtool check
metrics` (Debian's prometheus package) finds nothing to say; the counters
move by exactly what was done (N REST requests of a route, N gRPC calls of
a method, N calls of a plugin operation); per-VM, per-pool, per-network
and per-instance series are there with their values; StreamMetrics carries
the same families; every family of the scrape is documented in
docs/metrics.md with its type."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resttest import RestDaemon, free_port  # noqa: E402
from rpctest import _Bearer, grpc, pb  # noqa: E402
from vmhtest import check, fail, skip, vm_spec  # noqa: E402

V = "/api/v1"
N = pb.node
TOP_SRCDIR = os.environ.get(
    "top_srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               ".."))
PROMTOOL = shutil.which("promtool")
if not PROMTOOL:
    skip("promtool missing (Debian package prometheus)")

BODY = """
hypervisors:
  - { name: hv0, plugin: mock }
storage:
  - { name: pool0, plugin: mock, capacity: 100G }
  - { name: pool1, plugin: mock, capacity: 10G }
networks:
  - { name: net0, plugin: mock }
  - { name: net1, plugin: mock }
"""


class Both(RestDaemon):
    """The rest instance, and an rpc instance named grpc beside it."""
    PORTS = ("port", "tls_port", "rpc_port")

    def __init__(self):
        self.rpc_port = free_port()
        super().__init__(body=BODY, rest=f"""  - name: grpc
    plugin: rpc
    listen:
      - {{ address: "127.0.0.1:{self.rpc_port}" }}
""")

    def node(self):
        ch = grpc.insecure_channel(f"127.0.0.1:{self.rpc_port}")
        return pb.node_grpc.NodeServiceStub(
            grpc.intercept_channel(ch, _Bearer(self.token()))), ch


# A sample line: name, labels (as written), value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')


def parse(text):
    """{(name, labels): value} and {family: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        m = re.match(r"^# TYPE (\S+) (\S+)$", line)
        if m:
            check(m.group(1) not in types, "family twice:", m.group(1))
            types[m.group(1)] = m.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        check(m, "not a sample line:", line)
        key = (m.group(1), m.group(2) or "")
        check(key not in samples, "series twice:", line)
        samples[key] = float(m.group(3))
    return samples, types


def value(samples, name, **labels):
    """The value of the one series of name whose labels include these."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    hits = [v for (n, lab), v in samples.items()
            if n == name and all(w in lab for w in want)]
    check(len(hits) <= 1, "more than one series:", name, labels, hits)
    return hits[0] if hits else 0.0


def has(samples, name, **labels):
    """Whether a series of name has these labels."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return any(n == name and all(w in lab for w in want)
               for (n, lab) in samples)


def promtool(text):
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       capture_output=True)
    if p.returncode != 0 or p.stdout.strip() or p.stderr.strip():
        fail("promtool check metrics:", p.returncode, p.stdout.decode(),
             p.stderr.decode())


def documented():
    """{family: type} from docs/metrics.md's tables: | `name` | type | …"""
    fams = {}
    with open(os.path.join(TOP_SRCDIR, "docs", "metrics.md")) as f:
        for line in f:
            m = re.match(r"^\| `([a-z_:][a-z0-9_:]*)` \| (counter|gauge|"
                         r"histogram) \|", line)
            if m:
                fams[m.group(1)] = m.group(2)
    return fams


with Both() as d:
    def scrape():
        st, hdrs, text = d.get("/metrics")
        check(st == 200, st, text)
        check(hdrs["content-type"].startswith("text/plain; version=0.0.4"),
              hdrs)
        return text

    def ok(method, path, body=None, status=200):
        st, _, v = d.request(method, path, body)
        check(st == status, method, path, st, v)
        return v

    # Two VMs: web-1 on net0 and net1 (two NICs), db-1 on net1, running.
    nics = [{"name": "net0", "network": "net0"},
            {"name": "net1", "network": "net1"}]
    web = ok("POST", V + "/vms", vm_spec("web-1", nics=0) |
             {"nics": nics, "start": False}, 201)
    db = ok("POST", V + "/vms", vm_spec("db-1", nics=0, vcpus=4) |
            {"nics": [{"name": "net0", "network": "net1"}],
             "disks": [{"name": "vda", "size": 1 << 30, "pool": "pool1"}]},
            201)

    text = scrape()
    if os.environ.get("VMH_SHOW"):
        print(text)
    promtool(text)
    s0, types = parse(text)

    # ---- the process, the build ------------------------------------------
    for fam in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                "process_virtual_memory_bytes", "process_open_fds",
                "process_max_fds", "process_start_time_seconds"):
        check((fam, "") in s0, "missing", fam)
    check(s0[("process_resident_memory_bytes", "")] > 1 << 20, "rss")
    check(any(n == "vmhost_build_info" and 'abi="1.2"' in lab and v == 1
              for (n, lab), v in s0.items()), "build info")

    # ---- per VM, pool, network, instance ----------------------------------
    check(value(s0, "vmhost_vm_state", vm="db-1", state="running") == 1,
          "db-1 running")
    check(value(s0, "vmhost_vm_state", vm="web-1", state="stopped") == 1,
          "web-1 stopped")
    check(value(s0, "vmhost_vm_vcpus", vm="db-1", id=db["id"]) == 4, "vcpus")
    check(value(s0, "vmhost_vm_memory_bytes", vm="web-1") == 1 << 30, "mem")
    check(("vmhost_vm_cpu_seconds_total",
           f'{{vm="db-1",id="{db["id"]}"}}') in s0, "cpu seconds")
    check(value(s0, "vmhost_network_ports", network="net0") == 1 and
          value(s0, "vmhost_network_ports", network="net1") == 2, "ports")
    check(value(s0, "vmhost_pool_capacity_bytes", pool="pool1") == 10 << 30,
          "pool1 capacity")
    check(value(s0, "vmhost_pool_allocation_bytes", pool="pool1") >= 1 << 30,
          "pool1 allocation")
    check(value(s0, "vmhost_host_vcpus_allocated") == 6, "vcpus allocated")
    for inst, kind in (("hv0", "hypervisor"), ("pool1", "storage"),
                       ("net1", "network"), ("rest", "frontend"),
                       ("grpc", "frontend")):
        check(value(s0, "vmhost_instance_up", instance=inst, kind=kind,
                    reason="ok") == 1, "up", inst)

    # ---- exact deltas: REST, gRPC, plugin calls ---------------------------
    route = dict(instance="rest", method="GET", route="/api/v1/vms/{}")
    rest_before = value(s0, "vmhost_http_requests_total", code="200", **route)
    miss_before = value(s0, "vmhost_http_requests_total", code="404", **route)
    hist_before = value(s0, "vmhost_http_request_duration_seconds_count",
                        **route)
    for _ in range(7):
        ok("GET", V + f"/vms/{web['id']}")
    for _ in range(2):
        ok("GET", V + "/vms/nosuch", status=404)

    node, ch = d.node()
    grpc_m = dict(instance="grpc", grpc_service="vmhost.v1.NodeService",
                  grpc_method="GetVM", grpc_type="unary")
    g_ok = value(s0, "grpc_server_handled_total", grpc_code="OK", **grpc_m)
    g_nf = value(s0, "grpc_server_handled_total", grpc_code="NotFound",
                 **grpc_m)
    for _ in range(5):
        node.GetVM(N.VmRequest(vm="web-1"))
    for _ in range(3):
        try:
            node.GetVM(N.VmRequest(vm="nosuch"))
            fail("GetVM nosuch succeeded")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, e)

    op = dict(instance="hv0", op="start")
    starts = value(s0, "vmhost_plugin_calls_total", result="ok", **op)
    stops = value(s0, "vmhost_plugin_calls_total", result="ok",
                  instance="hv0", op="stop")
    for _ in range(3):
        ok("POST", V + f"/vms/{web['id']}/start")
        ok("POST", V + f"/vms/{web['id']}/stop", {"force": True})

    # StreamMetrics carries the same families, ours included.
    stream = node.StreamMetrics(N.StreamMetricsRequest())
    sample = next(stream).prometheus
    stream.cancel()
    if os.environ.get("VMH_SHOW"):
        open("/tmp/m-sample.txt", "w").write(sample)
    promtool(sample)
    check("vmhost_http_requests_total{" in sample and
          "grpc_server_handled_total{" in sample, sample[-2000:])
    ch.close()

    text = scrape()
    promtool(text)
    s1, types = parse(text)
    check(value(s1, "vmhost_http_requests_total", code="200", **route) ==
          rest_before + 7, "7 more 200s of GET /api/v1/vms/{}")
    check(value(s1, "vmhost_http_requests_total", code="404", **route) ==
          miss_before + 2, "2 more 404s")
    check(value(s1, "vmhost_http_request_duration_seconds_count", **route) ==
          hist_before + 9, "9 more in the histogram")
    check(value(s1, "vmhost_http_request_duration_seconds_bucket", le="+Inf",
                **route) == hist_before + 9, "+Inf bucket")
    check(value(s1, "grpc_server_handled_total", grpc_code="OK", **grpc_m) ==
          g_ok + 5, "5 more OK GetVM")
    check(value(s1, "grpc_server_handled_total", grpc_code="NotFound",
                **grpc_m) == g_nf + 3, "3 more NotFound GetVM")
    check(value(s1, "grpc_server_started_total", **grpc_m) ==
          value(s0, "grpc_server_started_total", **grpc_m) + 8, "started")
    check(value(s1, "grpc_server_handling_seconds_count", **grpc_m) ==
          value(s0, "grpc_server_handling_seconds_count", **grpc_m) + 8,
          "handling seconds")
    check(value(s1, "vmhost_plugin_calls_total", result="ok", **op) ==
          starts + 3, "3 more vm_start calls",
          [k for k in s1 if k[0] == "vmhost_plugin_calls_total"])
    check(value(s1, "vmhost_plugin_calls_total", result="ok",
                instance="hv0", op="stop") == stops + 3, "3 more stops")
    # Route templates, never raw paths or ids.
    check(not any(web["id"] in lab or "nosuch" in lab
                  for (n, lab) in s1 if n.startswith(("vmhost_http",
                                                      "grpc_server"))),
          "an id in a request label")

    # ---- every family documented, with its type ---------------------------
    docs = documented()
    for fam, typ in types.items():
        check(fam in docs, f"{fam} is not in docs/metrics.md")
        check(docs[fam] == typ, f"{fam}: docs say {docs.get(fam)}, is {typ}")

    # A VM name is user input, but the name rule keeps \ " and newlines
    # out of it (docs/api.md): refused at the edge, never in a label.
    # (Escaping itself: tests/test-metrics.c.)
    for bad in ('we"b', "we\\b", "we\nb"):
        st, _, v = d.request("POST", V + "/vms", vm_spec(bad))
        check(st == 400, bad, st, v)

# A hypervisor whose health check fails and an optional one that cannot
# open: up 0 with the reason; injected faults counted.
DOWN = BODY.replace(
    "  - { name: hv0, plugin: mock }\n",
    "  - { name: hv0, plugin: mock, faults: [{op: health, mode: always, "
    "message: 'backend hv0 is down'}] }\n"
    "  - { name: spare, plugin: mock, optional: true, "
    "faults: [{op: open, mode: always}] }\n")
with RestDaemon(body=DOWN) as d:
    st, _, _ = d.request("GET", "/readyz", token=False)
    check(st == 503, "readyz", st)
    text = d.get("/metrics")[2]
    promtool(text)
    s, _ = parse(text)
    check(has(s, "vmhost_instance_up", instance="hv0",
              reason="health_failed") and
          value(s, "vmhost_instance_up", instance="hv0") == 0,
          "hv0 health_failed")
    check(("vmhost_instance_up", '{instance="spare",kind="hypervisor",'
           'plugin="mock",reason="not_open"}') in s and
          value(s, "vmhost_instance_up", instance="spare") == 0,
          "spare not_open")
    check(value(s, "vmhost_instance_up", instance="pool0", reason="ok") == 1,
          "pool0 up")
    check(value(s, "vmhost_plugin_faults_injected_total", instance="hv0") >=
          1, "faults counted")
    check(any(n == "vmhost_plugin_calls_total" and 'instance="hv0"' in lab
              and 'op="health"' in lab and 'result="ok"' not in lab
              for (n, lab) in s), "health failures")
