#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""ListVMs at scale (issue 20), with the stock gRPC client: page_size,
page_token and next_page_token (AIP-158) complete and without duplicates
while VMs are created and deleted between pages; tokens refused
(INVALID_ARGUMENT) when altered or made for other filters; the states and
labels filters; the list, made of each VM's cached message, equal to GetVM
after every change, for operators and readers."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpctest import RpcDaemon, check, expect_status, grpc, pb  # noqa: E402

N = pb.node
SC = grpc.StatusCode


with RpcDaemon() as d:
    node = d.node()

    def create(name, start=True, labels=None, user_data=""):
        s = N.VmSpec(name=name, vcpus=1, memory=1 << 28, user_data=user_data)
        for k, v in (labels or {}).items():
            s.labels[k] = v
        return node.CreateVM(N.CreateVMRequest(spec=s, no_start=not start))

    def ls(**kw):
        return node.ListVMs(N.ListVMsRequest(**kw))

    def walk(size, between=None, **kw):
        ids, token = [], ""
        while True:
            r = ls(page_size=size, page_token=token, **kw)
            check(len(r.vms) <= size, "page too long", r)
            ids += [v.id for v in r.vms]
            token = r.next_page_token
            if between:
                between(r)
            if not token:
                return ids

    made = [create(f"vm-{i:02}", start=i % 3 != 0,
                   labels={"tier": "gold" if i % 2 else "silver"})
            for i in range(24)]
    everything = list(ls().vms)
    check([v.id for v in everything] == [v.id for v in made],
          "in creation order")
    check(ls().next_page_token == "", "no token without page_size")

    # -- pages while VMs come and go --------------------------------------
    initial = [v.id for v in everything]
    gone, seen = set(), []

    def churn(page):
        seen.extend(v.id for v in page.vms)
        victims = [page.vms[-1].id] if page.vms else []
        later = [i for i in initial if i not in seen and i not in gone]
        if later:
            victims.append(later[-1])
        for vid in victims:
            node.DeleteVM(N.VmRequest(vm=vid))
            gone.add(vid)
        create(f"new-{len(seen)}")

    ids = walk(5, churn)
    check(len(ids) == len(set(ids)), "no VM twice:", ids)
    survivors = [i for i in initial if i not in gone]
    check([i for i in ids if i in survivors] == survivors,
          "every VM that stayed, in order")
    everything = list(ls().vms)
    check(walk(1000) == [v.id for v in everything], "one page")
    check(len(ls(page_size=100000).vms) == len(everything), "size capped")

    # -- filters -------------------------------------------------------------
    def names(vms):
        return sorted(v.name for v in vms)

    running = [v.name for v in everything
               if v.info.state == N.VM_STATE_RUNNING]
    stopped = [v.name for v in everything
               if v.info.state == N.VM_STATE_STOPPED]
    check(running and stopped, "both states")
    check(names(ls(states=[N.VM_STATE_RUNNING]).vms) == sorted(running))
    check(names(ls(states=[N.VM_STATE_STOPPED, N.VM_STATE_PAUSED]).vms) ==
          sorted(stopped))
    gold = [v.name for v in everything if v.spec.labels.get("tier") == "gold"]
    check(names(ls(labels={"tier": "gold"}).vms) == sorted(gold), "labels")
    check(list(ls(labels={"tier": "gold", "x": "y"}).vms) == [], "all labels")
    both = dict(states=[N.VM_STATE_STOPPED], labels={"tier": "gold"})
    check(walk(2, **both) == [v.id for v in ls(**both).vms], "filtered pages")

    # -- refusals -------------------------------------------------------------
    def refused(words, **kw):
        e = expect_status(SC.INVALID_ARGUMENT, ls, **kw)
        check(words in e.details(), words, e.details())

    refused("page_size", page_size=-1)
    refused("unknown VM state", states=[9])
    refused("label key", labels={"": "x"})
    refused("label key", labels={"k" * 64: "x"})
    refused("page_token is not a token", page_size=2, page_token="nope")
    token = ls(page_size=2).next_page_token
    check(len(token) == 92, token)
    alt = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    refused("page_token was altered", page_size=2, page_token=alt)
    refused("another filter", page_size=2, page_token=token,
            states=[N.VM_STATE_RUNNING])
    check(ls(page_token=token).vms[0].id == everything[2].id,
          "a token alone: pages of 1000")

    # -- the list never lags a change -------------------------------------
    reader = node.CreateToken(N.CreateTokenRequest(name="watcher",
                                                   role="reader")).token
    rnode = d.node(d.channel(reader))

    def same_as_get(n):
        vms = list(n.ListVMs(N.ListVMsRequest()).vms)
        for v in vms:
            check(v == n.GetVM(N.VmRequest(vm=v.id)), "the list lags:", v)
        return vms

    secret = create("secret", user_data="#cloud-config\npassword: hunter2\n")
    for n in (node, rnode, node):
        same_as_get(n)
    check("hunter2" not in str(same_as_get(rnode)), "hidden from readers")
    check("hunter2" in str(same_as_get(node)), "shown to operators")
    target = next(v.id for v in everything
                  if v.info.state == N.VM_STATE_RUNNING)
    for act, state in ((node.PauseVM, N.VM_STATE_PAUSED),
                       (node.ResumeVM, N.VM_STATE_RUNNING)):
        act(N.VmRequest(vm=target))
        for n in (node, rnode):
            vms = {v.id: v for v in same_as_get(n)}
            check(vms[target].info.state == state, vms[target])
            check(target in walk(3, states=[state]), "paged, filtered")
    node.AttachDisk(N.AttachDiskRequest(
        vm=target, disk=N.Disk(name="vdb", size=1 << 20)))
    vms = {v.id: v for v in same_as_get(node)}
    check([x.name for x in vms[target].spec.disks] == ["vdb"], "disk listed")
    # An answer past 256 KiB lives in a mapping of its own (vmpage.h).
    for i in range(6):
        create(f"big-{i}", labels={"blob": f"{i}" * 60000})
    check(sum(len(v.spec.labels.get("blob", "")) for v in same_as_get(node))
          == 360000, "big answer")
    node.DeleteVM(N.VmRequest(vm=target))
    check(target not in {v.id for v in same_as_get(node)}, "deleted")
print("ok")
