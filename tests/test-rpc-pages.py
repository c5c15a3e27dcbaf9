#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pages and labels over gRPC (issue 20), with the stock client:
ListVolumes and ListSnapshots with page_size / page_token /
next_page_token (AIP-158) in name order, complete and without duplicates
while objects are created and deleted between pages; tokens refused
(INVALID_ARGUMENT) when altered or made for another list (another pool,
another kind, the VM list); UpdateVMLabels (set, remove; the others stay)
checked as at create and nothing changed by a refused request, shown by
GetVM, ListVMs (its cached fragments), its labels and label_selectors
filters ("key", "key=value"), and a VM_UPDATED event; readers may not."""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pagetest import TWO_POOLS, churned_walk  # noqa: E402
from rpctest import (EventWatch, RpcDaemon, check, expect_status,  # noqa
                     fail, grpc, pb)

N = pb.node
SC = grpc.StatusCode


with RpcDaemon(body=TWO_POOLS) as d:
    node = d.node()
    rng = random.Random(20)

    def walk(call, field, size, between=None, **kw):
        names, token, pages = [], "", 0
        while True:
            r = call(page_size=size, page_token=token, **kw)
            got = [x.name for x in getattr(r, field)]
            check(len(got) <= size and got == sorted(got), "a page", got)
            names += got
            pages += 1
            token = r.next_page_token
            if between:
                between(got)
            if not token:
                return names, pages

    def churn(call, field, size, have, make, drop, **kw):
        return churned_walk(
            lambda between: walk(call, field, size, between, **kw)[0], have,
            make, drop)

    def refused(words, fn, **kw):
        e = expect_status(SC.INVALID_ARGUMENT, fn, **kw)
        check(words in e.details(), words, e.details())

    # -- volumes ---------------------------------------------------------------
    def vols(**kw):
        return node.ListVolumes(N.ListVolumesRequest(**kw))

    def make_vol(name, pool="pool0"):
        node.CreateVolume(N.CreateVolumeRequest(pool=pool, name=name,
                                                size=1 << 20))

    def drop_vol(name):
        node.DeleteVolume(N.VolumeRequest(pool="pool0", volume=name))

    names = [f"vol-{i:03}" for i in range(30)]
    rng.shuffle(names)
    for n in names:
        make_vol(n)
    make_vol("other", "pool1")
    r = vols(pool="pool0")
    check([v.name for v in r.volumes] == sorted(names) and
          r.next_page_token == "", "every volume, in name order")
    got, pages = walk(vols, "volumes", 7, pool="pool0")
    check(got == sorted(names) and pages == 5, "complete", pages)
    churn(vols, "volumes", 4, names, make_vol, drop_vol, pool="pool0")
    token = vols(pool="pool0", page_size=2).next_page_token
    alt = token[:50] + ("A" if token[50] != "A" else "B") + token[51:]
    refused("page_token was altered", vols, pool="pool0", page_size=2,
            page_token=alt)
    refused("another pool or VM", vols, pool="pool1", page_size=2,
            page_token=token)
    refused("page_size", vols, pool="pool0", page_size=-1)
    refused("another list",
            lambda **kw: node.ListVMs(N.ListVMsRequest(**kw)),
            page_size=2, page_token=token)
    refused("another list",
            lambda **kw: node.ListNetworks(N.ListNetworksRequest(**kw)),
            page_size=2, page_token=token)
    check(len(vols(pool="pool0", page_token=token).volumes) ==
          len(vols(pool="pool0").volumes) - 2, "a token alone: pages of 1000")

    # -- snapshots -------------------------------------------------------------
    def make_vm(name, labels=None):
        s = N.VmSpec(name=name, vcpus=1, memory=1 << 28)
        for k, v in (labels or {}).items():
            s.labels[k] = v
        return node.CreateVM(N.CreateVMRequest(spec=s, no_start=True))

    a, b = make_vm("a", {"tier": "gold", "old": "x"}), make_vm("b")

    def snaps(**kw):
        return node.ListSnapshots(N.ListSnapshotsRequest(**kw))

    def make_snap(name):
        node.CreateSnapshot(N.CreateSnapshotRequest(vm="a", name=name))

    def drop_snap(name):
        node.DeleteSnapshot(N.SnapshotRequest(vm="a", snapshot_id=name))

    names = [f"s-{i:02}" for i in range(20)]
    rng.shuffle(names)
    for n in names:
        make_snap(n)
    got, pages = walk(snaps, "snapshots", 6, vm="a")
    check(got == sorted(names) and pages == 4, "snapshots complete", got)
    churn(snaps, "snapshots", 3, names, make_snap, drop_snap, vm="a")
    token = snaps(vm="a", page_size=1).next_page_token
    refused("another pool or VM", snaps, vm="b", page_size=1,
            page_token=token)
    refused("another list", vols, pool="pool0", page_size=1, page_token=token)
    vm_token = node.ListVMs(N.ListVMsRequest(page_size=1)).next_page_token
    refused("another list", snaps, vm="a", page_size=1, page_token=vm_token)

    # -- labels ----------------------------------------------------------------
    watch = EventWatch(node)
    events = watch.events

    def wait_event(pred, what):
        for _ in range(600):  # only a hang's bound
            if any(not isinstance(e, Exception) and pred(e) for e in events):
                return
            time.sleep(0.05)
        fail("no event:", what, events)

    # The subscription is live once it has seen something.
    make_vm("probe")
    wait_event(lambda e: e.type == N.EVENT_TYPE_VM_CREATED, "probe created")

    def labels(**kw):
        return node.UpdateVMLabels(N.UpdateVMLabelsRequest(**kw))

    def listed(**kw):
        return {v.name: v for v in node.ListVMs(N.ListVMsRequest(**kw)).vms}

    listed()  # a's fragment is cached now
    vm = labels(vm="a", set={"tier": "silver", "new": "1"},
                remove=["old", "never-there"])
    want = {"tier": "silver", "new": "1"}
    check(dict(vm.spec.labels) == want, vm.spec.labels)
    check(dict(node.GetVM(N.VmRequest(vm=a.id)).spec.labels) == want, "GetVM")
    check(dict(listed()["a"].spec.labels) == want, "the list does not lag")
    check(set(listed(labels={"tier": "silver"})) == {"a"}, "labels filter")
    check(set(listed(label_selectors=["new"])) == {"a"}, "key exists")
    check(set(listed(label_selectors=["tier=silver"])) == {"a"}, "key=value")
    check(set(listed(label_selectors=["old"])) == set(), "removed key")
    check(set(listed(label_selectors=["tier!=gold"])) == {"a", "b", "probe"},
          "key!=value")
    check(set(listed(label_selectors=["!tier"])) == {"b", "probe"}, "!key")
    check(set(listed(label_selectors=["!new", "tier!=silver"])) ==
          {"b", "probe"}, "all of them")
    check(set(listed(label_selectors=["new"], labels={"tier": "gold"})) ==
          set(), "both must match")
    wait_event(lambda e: e.type == N.EVENT_TYPE_VM_UPDATED and
               e.vm_id == a.id and e.object == "labels", "VM_UPDATED")

    def unchanged(words, **kw):
        refused(words, labels, **kw)
        check(dict(node.GetVM(N.VmRequest(vm="a")).spec.labels) == want,
              "a refused request changed nothing", kw)

    unchanged("key", vm="a", set={"-bad": "v"})
    unchanged("key", vm="a", set={"a/b/c": "v"})
    unchanged("key", vm="a", set={"k" * 64: "v"})
    unchanged("changed twice", vm="a", set={"tier": "x"}, remove=["tier"])
    unchanged("the limit is 128", vm="a",
              set={f"k{i}": "v" for i in range(127)})
    unchanged("65536", vm="a", set={"big": "v" * 65537})
    refused("label_selectors[0]", listed, label_selectors=[""])
    expect_status(SC.NOT_FOUND, labels, vm="nosuch", set={"a": "b"})
    reader = node.CreateToken(N.CreateTokenRequest(name="watcher",
                                                   role="reader")).token
    rnode = d.node(d.channel(reader))
    expect_status(SC.PERMISSION_DENIED, rnode.UpdateVMLabels,
                  N.UpdateVMLabelsRequest(vm="a", set={"a": "b"}))
    check(watch.stop(), "WatchEvents did not end on cancel")

    for ch in d.channels:  # their connections end with the daemon
        ch.close()
    d.channels.clear()
    d.stop()
    d.start()
    node = d.node()
    check(dict(node.GetVM(N.VmRequest(vm="a"), wait_for_ready=True,
                          timeout=30).spec.labels) == want, "after a restart")
print("ok")
