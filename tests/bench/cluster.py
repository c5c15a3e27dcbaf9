#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The cluster front-end against a real etcd started here (etcdserver.py).

1. Heartbeats: vmhostd (mocks + cluster, heartbeat_interval 1 s) runs for
   --seconds; each heartbeat's round trip (the record built from the
   core's answers, one guarded txn) is read from the plugin's gauge after
   each one, p50/p99 printed.  Reference, same run, same etcd: the same
   txn (compare on the lease, put of a record of the same size under a
   lease) sent by this script over one kept-alive HTTP/1.1 connection.
   vmhostd's CPU per heartbeat: its CPU time over the run minus that of a
   vmhostd without the cluster front-end idling as long (measured first),
   divided by the heartbeats.

2. Inventory: --vms VMs created through the core (ctl, 8 clients at
   once); how many etcd transactions the plugin made for them (batching:
   changes that come while a txn is out are coalesced into the next, up to
   100 operations per txn) against the VMs, and the lag from
   the last create's answer to the last VM key in etcd; then the lease is
   revoked under the node and the full resync timed (re-registration and
   every VM again, 100 per txn).  Reference, same run: one txn per VM sent
   by this script, one after the other.

    tests/bench/cluster.py --builddir BUILD [--seconds 60] [--vms 1000]

Build BUILD without --enable-sanitizers (and make -C BUILD/tests
ctl/frontend-ctl.la) for meaningful figures.  Printed, never asserted.
"""
import argparse
import base64
import http.client
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--builddir", required=True)
ap.add_argument("--seconds", type=int, default=60)
ap.add_argument("--vms", type=int, default=1000)
args = ap.parse_args()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

benchlib.setup(os.path.abspath(args.builddir))
from etcdserver import Etcd, node_cluster_yaml  # noqa: E402
from vmhtest import Daemon, mocks, vm_spec, wait_for  # noqa: E402
from benchlib import cpu_s  # noqa: E402



def metric(d, name):
    text = d.ok(op="metrics")["text"]
    m = re.search(r'^vmhost_plugin_%s\{instance="cluster"\} (\d+)' % name,
                  text, re.M)
    return int(m.group(1)) if m else 0


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Gateway:
    """One kept-alive HTTP/1.1 connection to etcd's gateway."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def post(self, path, body):
        self.c.request("POST", path, json.dumps(body),
                       {"Content-Type": "application/json"})
        return json.loads(self.c.getresponse().read())


def heartbeats(e, tmp):
    # The idle floor: vmhostd without the cluster front-end.
    with Daemon(mocks(), log_level="info",
                tmp=tempfile.mkdtemp(dir=tmp)) as d:
        for i in range(20):
            d.ok(op="vm_create", spec=vm_spec(f"hb{i}"))
        c0 = cpu_s(d.proc.pid)
        t_end = time.time() + args.seconds
        while time.time() < t_end:  # polled as below: the same cost
            time.sleep(0.2)
            metric(d, "heartbeats_total")
        idle = cpu_s(d.proc.pid) - c0
    extra = ", heartbeat_interval: 1, lease_ttl: 30"
    with Daemon(mocks(), frontends=node_cluster_yaml(e, "bench", extra),
                log_level="info", tmp=tempfile.mkdtemp(dir=tmp)) as d:
        for i in range(20):
            d.ok(op="vm_create", spec=vm_spec(f"hb{i}"))
        c0, n0 = cpu_s(d.proc.pid), metric(d, "heartbeats_total")
        lat, seen = [], n0
        t_end = time.time() + args.seconds
        while time.time() < t_end:
            time.sleep(0.2)
            n = metric(d, "heartbeats_total")
            if n != seen:
                seen = n
                lat.append(metric(d, "heartbeat_latency_us") / 1000)
        busy = cpu_s(d.proc.pid) - c0
        beats = seen - n0
        rec = e.get("/vmhost/nodes/bench")
        lease = e.lease_of("/vmhost/nodes/bench")
    size = len(json.dumps(rec))
    # The reference: the same txn from here.
    g = Gateway(e.url)
    ref_lease = e.grant(60)
    key = "/vmhost/nodes/ref"
    e.put(key, json.dumps(rec), ref_lease)
    value = b64(json.dumps(rec))
    ref = []
    for _ in range(max(len(lat), 50)):
        t0 = time.perf_counter()
        g.post("/v3/kv/txn", {
            "compare": [{"key": b64(key), "target": "LEASE",
                         "result": "EQUAL", "lease": str(ref_lease)}],
            "success": [{"request_put": {"key": b64(key), "value": value,
                                         "lease": str(ref_lease)}}]})
        ref.append((time.perf_counter() - t0) * 1000)
    print(f"heartbeat ({beats} in {args.seconds} s, record {size} bytes, "
          f"lease {lease:x}):")
    print(f"  vmhostd      p50 {pct(lat, 50):.2f} ms  p99 {pct(lat, 99):.2f} ms"
          f"  max {max(lat):.2f} ms")
    print(f"  same txn     p50 {pct(ref, 50):.2f} ms  p99 {pct(ref, 99):.2f} ms"
          "  (this script, one connection)")
    print(f"  vmhostd CPU  {busy * 1000:.1f} ms with the plugin, "
          f"{idle * 1000:.1f} ms without, over {args.seconds} s: "
          f"{(busy - idle) * 1000 / max(beats, 1):.2f} ms per heartbeat "
          "(keepalives included)")


def inventory(e, tmp):
    extra = ", heartbeat_interval: 3600, lease_ttl: 60"
    with Daemon(mocks(), frontends=node_cluster_yaml(e, "inv", extra),
                log_level="info", tmp=tempfile.mkdtemp(dir=tmp)) as d:
        t0n, o0 = metric(d, "inventory_txns_total"), \
            metric(d, "inventory_ops_total")
        rev0 = e.revision()
        names = [f"inv{i}" for i in range(args.vms)]
        last = [0.0]

        def worker(part):
            for n in part:
                d.ok(op="vm_create", spec=vm_spec(n, disks=1, nics=1))
            last[0] = max(last[0], time.perf_counter())

        t0 = time.perf_counter()
        ths = [threading.Thread(target=worker, args=(names[i::8],))
               for i in range(8)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        created = last[0] - t0
        p = "/vmhost/nodes/inv/vms/"

        def all_running():
            kvs = e.kvs(p)
            return len(kvs) == args.vms and all(
                json.loads(v)["state"] == "running" for v, _ in kvs.values())
        wait_for(all_running, "every VM in etcd", timeout=600)
        lag = time.perf_counter() - last[0]
        txns = metric(d, "inventory_txns_total") - t0n
        ops = metric(d, "inventory_ops_total") - o0
        revs = e.revision() - rev0
        # A full resync: the lease lost under the node (as after an etcd
        # outage longer than its TTL), every VM written again.
        t1, o1 = metric(d, "inventory_txns_total"), \
            metric(d, "inventory_ops_total")
        lease = e.lease_of("/vmhost/nodes/inv")
        regs = metric(d, "registrations_total")
        t0 = time.perf_counter()
        e.post("/v3/lease/revoke", {"ID": str(lease)})
        while metric(d, "registrations_total") == regs:
            time.sleep(0.005)
        t_reg = time.perf_counter()
        noticed = t_reg - t0
        wait_for(lambda: len(e.kvs(p)) == args.vms, "the resync",
                 timeout=600)
        resync = time.perf_counter() - t_reg
        rtxns = metric(d, "inventory_txns_total") - t1
        rops = metric(d, "inventory_ops_total") - o1
    # The reference: one txn per VM from here.
    g = Gateway(e.url)
    lease = e.grant(60)
    one = json.dumps({"id": "0" * 36, "name": "x", "state": "running"})
    t0 = time.perf_counter()
    for i in range(args.vms):
        g.post("/v3/kv/txn", {"compare": [], "success": [{"request_put": {
            "key": b64(f"/vmhost/nodes/ref/vms/{i}"), "value": b64(one),
            "lease": str(lease)}}]})
    ref = time.perf_counter() - t0
    print(f"inventory ({args.vms} VM creates, 8 clients, "
          f"{created:.2f} s to create):")
    print(f"  vmhostd      {txns} inventory txns for {args.vms} VMs "
          f"({ops} operations; {args.vms / max(txns, 1):.1f} VMs per txn; "
          f"{revs} etcd revisions), lag after the last create "
          f"{lag * 1000:.0f} ms")
    print(f"  resync       {args.vms} VMs in {rtxns} txns ({rops} "
          f"operations) after the lease was lost: {resync * 1000:.0f} ms "
          "from the re-registration to the last key (the loss noticed "
          f"after {noticed * 1000:.0f} ms: the next keepalive, every "
          "lease_ttl/3 = 20 s here)")
    print(f"  one txn/VM   {args.vms} txns in {ref * 1000:.0f} ms "
          "(this script, one connection, one after the other)")


def main():
    # On tmpfs when there is one: the VM records' fsyncs would pace the
    # creates, and the inventory would never see a burst.
    tmp = tempfile.mkdtemp(prefix="vmhbench.", dir="/dev/shm"
                           if os.path.isdir("/dev/shm") else None)
    with Etcd(tmp) as e:
        heartbeats(e, tmp)
        inventory(e, tmp)


main()
