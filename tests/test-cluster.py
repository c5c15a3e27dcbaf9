#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The cluster front-end against a real etcd (etcdserver.py) started here on
127.0.0.1: the node record and the VM inventory after creates and deletes,
heartbeats, a duplicate node name refused, SIGTERM revoking the lease at
once, kill -9 leaving the record until the lease expires (and a restart
taking it over), etcd stopped (degraded, inventory changes meanwhile) and
back (up, inventory resynced), the lease lost under a running node (a
fresh one, no duplicate record), and TLS with client certificates."""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from etcdserver import Etcd, check_node, node_cluster_yaml  # noqa: E402
from vmhtest import (VMHOSTD, Daemon, check, mocks, vm_spec,  # noqa: E402
                     wait_for)

PREFIX = "/vmhost/nodes/"
FAST = (", heartbeat_interval: 1, lease_ttl: 5, timeout_ms: 1500"
        ", retry_max_ms: 500")


def node(e, name="n1", extra=FAST, tmp=None):
    return Daemon(mocks(), frontends=node_cluster_yaml(e, name, extra),
                  tmp=tmp)


def registered(e, name):
    """The node record, once there (start registers at once unless etcd
    is slow to answer: then the retry does)."""
    return wait_for(lambda: e.get(PREFIX + name), f"{name} registered")


def inventory(e, name):
    """{vm id: entry} of node name's inventory."""
    p = f"{PREFIX}{name}/vms/"
    return {k[len(p):]: json.loads(v) for k, (v, _) in e.kvs(p).items()}


def metric(d, name):
    text = d.ok(op="metrics")["text"]
    m = re.search(r'^vmhost_plugin_%s\{instance="cluster"\} (\d+)' % name, text,
                  re.M)
    return int(m.group(1)) if m else None


def lifecycle(e):
    with node(e) as d:
        rec = check_node(registered(e, "n1"), "n1")
        lease = e.lease_of(PREFIX + "n1")
        check(lease and e.ttl(lease) > 0, "the record is under a live lease")
        check(rec["lease"] == "%x" % lease, rec)
        check(rec["vms"] == {"total": 0, "running": 0}, rec)
        check(rec["capacity"]["cpus"] >= 1 and
              rec["capacity"]["memory"] > 0, rec)
        kinds = {(p["name"], p["kind"]) for p in rec["plugins"]}
        check(("cluster", "frontend") in kinds and
              ("mock", "hypervisor") in kinds, rec)
        check({"name": "cluster", "plugin": "cluster"} in rec["frontends"],
              rec)
        check(rec["version"], rec)
        # The core's admission numbers: the default reserve (2 vCPUs), no
        # VM yet.
        check(rec["reserved"]["vcpus"] == 2 and
              rec["reserved"]["memory"] > 0 and
              rec["allocated"]["vcpus"] == 0 and
              rec["allocated"]["memory"] == 0 and
              rec["available"]["vcpus"] > 0, rec)
        check(metric(d, "registered") == 1, "registered gauge")

        # Three VMs made, one deleted: the inventory follows.
        ids = [d.ok(op="vm_create", spec=vm_spec(f"vm{i}"))["vms"][0]["id"]
               for i in range(3)]
        inv = wait_for(lambda: (lambda i: i if len(i) == 3 else None)(
            inventory(e, "n1")), "three VMs in etcd")
        check(set(inv) == set(ids), inv)
        check(inv[ids[0]]["name"] == "vm0" and
              inv[ids[0]]["state"] == "running", inv)
        check("user_data" not in inv[ids[0]], "no cloud-init data", inv)
        for k, (_, kl) in e.kvs(f"{PREFIX}n1/vms/").items():
            check(kl == lease, k, "is under the node's lease")
        d.ok(op="vm_delete", vm=ids[1])
        d.ok(op="vm_action", vm=ids[2], action="stop", force=True)
        wait_for(lambda: set(inventory(e, "n1")) == {ids[0], ids[2]},
                 "the deleted VM gone from etcd")
        wait_for(lambda: inventory(e, "n1")[ids[2]]["state"] == "stopped",
                 "the stopped VM's state in etcd")

        # Heartbeats rewrite the record (every second here).
        wait_for(lambda: e.get(PREFIX + "n1")["vms"] ==
                 {"total": 2, "running": 1}, "the VM counts in a heartbeat")
        first = e.get(PREFIX + "n1")["heartbeat"]
        wait_for(lambda: e.get(PREFIX + "n1")["heartbeat"] > first,
                 "a later heartbeat")
        check(metric(d, "heartbeats_total") >= 1, "heartbeats counted")

        # A second vmhostd with the same node name is refused at start and
        # changes nothing.
        dup = node(e)
        dup.start(wait_ready=False)
        rc = dup.proc.wait(60)
        dup.proc = None
        dup.log_f.close()
        check(rc != 0, "the duplicate exits non-zero:", dup.log())
        check("node name 'n1' is taken" in dup.log() and
              "node_name" in dup.log(), dup.log())
        check(e.lease_of(PREFIX + "n1") == lease, "the record is untouched")
        check(len(inventory(e, "n1")) == 2, "the inventory is untouched")

        # SIGTERM: draining, then the lease revoked at once.
        check(d.stop() == 0, "clean stop")
        check(e.get(PREFIX + "n1") is None, "no record after SIGTERM")
        check(e.kvs(f"{PREFIX}n1/") == {}, "no inventory after SIGTERM")
        check(e.ttl(lease) == -1, "the lease is revoked")
        # The revoke was the last write; the one before it said draining.
        last = e.get_at(PREFIX + "n1", e.revision() - 1)
        check(last and last["status"] == "draining", last)


def crash(e):
    tmp = tempfile.mkdtemp(prefix="vmhtest.")
    with node(e, "n2", tmp=tmp) as d:
        d.ok(op="vm_create", spec=vm_spec("c0"))
        wait_for(lambda: len(inventory(e, "n2")) == 1, "the VM in etcd")
        old = e.lease_of(PREFIX + "n2")
        d.kill9()
        check(e.get(PREFIX + "n2") is not None, "the record outlives kill -9")
        # A restart within the TTL takes its own record over.
        d.start()
        check_node(registered(e, "n2"), "n2")
        new = e.lease_of(PREFIX + "n2")
        check(new != old, "a fresh lease")
        check(e.ttl(old) == -1, "the old lease is revoked")
        wait_for(lambda: len(inventory(e, "n2")) == 1, "the VM back in etcd")
        check("took over the record" in d.log(), d.log())
        # Killed again: everything goes when the lease expires (5 s).
        d.kill9()
        wait_for(lambda: e.get(PREFIX + "n2") is None,
                 "the record gone with its lease")
        check(e.kvs(f"{PREFIX}n2/") == {}, "the inventory gone too")


def outage(e):
    with node(e, "n3") as d:
        a = d.ok(op="vm_create", spec=vm_spec("o0"))["vms"][0]["id"]
        wait_for(lambda: set(inventory(e, "n3")) == {a}, "o0 in etcd")
        e.stop()
        wait_for(lambda: metric(d, "degraded") == 1, "degraded")
        d.wait_log("degraded:")
        # The node keeps serving while etcd is away.
        b = d.ok(op="vm_create", spec=vm_spec("o1"))["vms"][0]["id"]
        d.ok(op="vm_delete", vm=a)
        e.start()
        wait_for(lambda: metric(d, "registered") == 1, "up again")
        d.wait_log("etcd answers again")
        wait_for(lambda: set(inventory(e, "n3")) == {b},
                 "the inventory resynced")
        check_node(e.get(PREFIX + "n3"), "n3")

        # The lease lost under the running node (as when etcd was away
        # longer than its TTL): a fresh lease, one record, a full resync.
        lease = e.lease_of(PREFIX + "n3")
        e.post("/v3/lease/revoke", {"ID": str(lease)})
        wait_for(lambda: e.lease_of(PREFIX + "n3") not in (None, lease),
                 "registered again")
        check(len([k for k in e.kvs(PREFIX) if k == PREFIX + "n3"]) == 1,
              "one record")
        wait_for(lambda: set(inventory(e, "n3")) == {b},
                 "the inventory written again")
        check(d.stop() == 0, "clean stop")


def tls():
    tmp = tempfile.mkdtemp(prefix="vmhtest.")
    with Etcd(tmp, tls=True) as e:
        with node(e, "t1") as d:
            check_node(registered(e, "t1"), "t1")
            # etcd offers h2 in its TLS handshake (ALPN): libcurl takes it.
            check("over HTTP/2 (lease" in d.log(), d.log())
            d.ok(op="vm_create", spec=vm_spec("t0"))
            wait_for(lambda: len(inventory(e, "t1")) == 1, "the VM in etcd")
            check(d.stop() == 0, "clean stop")
            check(e.get(PREFIX + "t1") is None, "revoked over TLS")
        # Without a client certificate etcd refuses: the node serves,
        # degraded, and says why.
        plain = (f"  - {{ name: cluster, plugin: cluster, endpoints: "
                 f"[ \"{e.url}\" ], node_name: t2, ca: {tmp}/ca.pem"
                 f"{FAST} }}\n")
        with Daemon(mocks(), frontends=plain) as d:
            d.wait_log("degraded:")
            check(metric(d, "degraded") == 1, "degraded")
            check(e.get(PREFIX + "t2") is None, "not registered")
            check(d.stop() == 0, "clean stop")


def check_config(keys):
    """vmhostd --check-config on a config whose cluster entry has keys:
    (exit status, output)."""
    d = Daemon(mocks(), frontends="  - { name: cluster, plugin: cluster"
               f"{keys} }}\n")
    r = subprocess.run([VMHOSTD, "--check-config", "--config", d.config],
                       capture_output=True, text=True)
    subprocess.run(["rm", "-rf", d.tmp])
    return r.returncode, r.stdout + r.stderr


def config():
    """Every key checked at start, with a message naming what to fix; the
    documented example passes."""
    tmp = tempfile.mkdtemp(prefix="vmhtest.")
    open(f"{tmp}/c.pem", "w").close()
    ep = ', endpoints: [ "http://127.0.0.1:1" ]'
    rc, out = check_config(ep)
    check(rc == 0, out)
    for keys, want in (
            ("", "endpoints"),
            (", endpoints: []", "give 1 to 16 etcd client URLs"),
            (', endpoints: [ "etcd:2379" ]', "is not an etcd client URL"),
            (', endpoints: [ "http://h:1/v3" ]', "no path"),
            (', endpoints: [ "https://h:1" ], cert: ' + tmp + '/c.pem',
             "cert and key go together"),
            (ep + ", ca: " + tmp + "/c.pem", "no endpoint is https://"),
            (', endpoints: [ "https://h:1" ], ca: /nonexistent/ca.pem',
             "cannot read /nonexistent/ca.pem"),
            (ep + ", prefix: vmhost", "prefix 'vmhost' must start and end"),
            (ep + ", prefix: /a//b/", "must start and end with '/'"),
            (ep + ", node_name: Node_1", "node_name 'Node_1'"),
            (ep + ", heartbeat_interval: 0", "heartbeat_interval"),
            (ep + ", lease_ttl: 5, timeout_ms: 2000",
             "shorter than three request timeouts"),
            (ep + ", addresses: [ 10.0.0.300 ]",
             "'10.0.0.300' is not an IP address"),
            (ep + ", api_endpoints: [ ftp://x ]", "is not a URL"),
            (ep + ", heartbeat: 5", "heartbeat")):
        rc, out = check_config(keys)
        check(rc != 0 and want in out, keys, "->", rc, out)
    example = os.path.join(os.environ.get("top_srcdir", ".."), "etc",
                           "plugins", "cluster.yaml")
    d = Daemon(mocks())
    with open(example) as f, open(d.config, "a") as out:
        out.write("".join(f.readlines()[1:]).replace("frontends:\n", ""))
    r = subprocess.run([VMHOSTD, "--check-config", "--config", d.config],
                       capture_output=True, text=True)
    check(r.returncode == 0, "the documented example:", r.stdout, r.stderr)


def main():
    config()
    tmp = tempfile.mkdtemp(prefix="vmhtest.")
    with Etcd(tmp) as e:
        lifecycle(e)
        crash(e)
        outage(e)
    tls()


main()
