#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Admission control and host telemetry through the rpc front-end (stock
gRPC client): GetNodeInfo carries the resources and the newest host
sample; a create over the limit is RESOURCE_EXHAUSTED with the numbers in
its details and leaves nothing behind; StreamMetrics samples carry both."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpctest import RpcDaemon, check, expect_status, grpc, mocks, pb  # noqa: E402
from vmhtest import wait_for  # noqa: E402

N = pb.node
GIB = 1 << 30
BODY = """resources:
  reserved_cpus: 2
  reserved_memory: 4G
  reserved_disk: 10G
  cpu_overcommit: 1.0
""" + mocks(hv=", host_cpus: 16, host_memory: 16G", st=", capacity: 100G")

with RpcDaemon(body=BODY, daemon_yaml="  telemetry_interval: 1") as d:
    node = d.node()
    info = wait_for(lambda: (lambda i: i if i.HasField("sample") else None)(
        node.GetNodeInfo(N.GetNodeInfoRequest())), "a host sample")
    r = info.resources
    check(r.host_cpus == 16 and r.cpu_overcommit == 1.0 and
          (r.vcpus.total, r.vcpus.reserved, r.vcpus.allocated,
           r.vcpus.available) == (16, 2, 0, 14), r)
    check(r.host_memory == 16 * GIB and r.memory.available == 12 * GIB, r)
    check([p.name for p in r.pools] == ["pool0"] and
          r.pools[0].space.total == 100 * GIB and
          r.pools[0].space.reserved == 10 * GIB and r.pools[0].sampled_us > 0,
          r)
    s = info.sample
    check(len(s.cpu_per_core) == os.cpu_count() and 0 <= s.cpu_usage <= 1 and
          s.memory_used + s.memory_available == s.memory_total and
          {f.name for f in s.filesystems} == {"state", "pool0"}, s)

    node.CreateVM(N.CreateVMRequest(spec=N.VmSpec(name="a", vcpus=12,
                                                  memory=GIB)))
    e = expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, node.CreateVM,
                      N.CreateVMRequest(spec=N.VmSpec(name="b", vcpus=3,
                                                      memory=GIB)))
    check(e.details() == "VM 'b' needs 3 vCPUs; 2 of 16 are available "
          "(16 CPUs × 1.0 overcommit − 2 reserved − 12 allocated)",
          e.details())
    e = expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, node.CreateVolume,
                      N.CreateVolumeRequest(pool="pool0", name="v",
                                            size=91 * GIB))
    check("volume v needs 91 GiB in pool 'pool0'" in e.details(), e.details())
    vms = node.ListVMs(N.ListVMsRequest()).vms
    check([v.name for v in vms] == ["a"], vms)

    stream = node.StreamMetrics(N.StreamMetricsRequest(interval_ms=100))
    m = next(stream)
    check(m.resources.vcpus.allocated == 12 and m.resources.n_vms == 1 and
          m.HasField("sample") and m.sample.memory_total > 0, m.resources)
    stream.cancel()
print("ok")
