#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The core enforces each plugin's thread model and orders operations per
VM.  The probe hypervisor (tests/probe) records how many of its calls ran at
once — in the plugin, per instance and per VM — and can insist (barrier)
that N calls be inside it at the same time, so parallelism is proven by
synchronisation, not by timing."""
import os
import re
import threading

from vmhtest import BUILDDIR, Daemon, check, expect, vm_spec

PROBE = os.path.join(BUILDDIR, "probe", ".libs", "hypervisor-probe-{}.so")


def config(model, instances=1, barrier=0, hold_ms=100):
    hvs = "".join(
        f"  - {{ name: hv{i}, plugin: probe-{model}, file: {PROBE.format(model)},"
        f" barrier: {barrier}, hold_ms: {hold_ms} }}\n" for i in range(instances))
    return ("hypervisors:\n" + hvs +
            "storage:\n  - { name: pool0, plugin: mock }\n"
            "networks:\n  - { name: net0, plugin: mock }\n")


def gauges(d):
    text = d.ok(op="metrics")["text"]
    out = {}
    for m in re.finditer(r'^vmhost_plugin_(max_inflight_\w+)\{instance="(\w+)"\} (\d+)$',
                         text, re.M):
        out[m.group(1)] = max(out.get(m.group(1), 0), int(m.group(3)))
    return out


def together(d, requests):
    """Send the requests at once, each on its own connection."""
    results = [None] * len(requests)

    def go(i):
        results[i] = d.call(**requests[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def creates(n, hvs=1):
    return [{"op": "vm_create",
             "spec": vm_spec(f"vm{i}", disks=0, nics=0, hypervisor=f"hv{i % hvs}")}
            for i in range(n)]


# parallel: different VMs run at once (a barrier of 3 defines is met).
with Daemon(config("parallel", barrier=3)) as d:
    for r in together(d, creates(3)):
        expect(r, "ok", "parallel creates meet the barrier")
    check(gauges(d)["max_inflight_plugin"] >= 3, gauges(d))

# ...but operations on one VM are serialized, in order.
with Daemon(config("parallel", hold_ms=150)) as d:
    d.ok(op="vm_create", spec=vm_spec("vm0", disks=0, nics=0), no_start=True)
    rs = together(d, [{"op": "vm_action", "vm": "vm0",
                       "action": "start" if i % 2 == 0 else "stop"}
                      for i in range(6)])
    for r in rs:
        expect(r, "ok")
    check(gauges(d)["max_inflight_vm"] == 1, "one VM, one call at a time:", gauges(d))

# serialize_instance: one call at a time per instance, instances in parallel.
with Daemon(config("instance", instances=2, barrier=2)) as d:
    for r in together(d, creates(2, hvs=2)):
        expect(r, "ok", "two instances run at once")
with Daemon(config("instance", instances=1, hold_ms=100)) as d:
    for r in together(d, creates(4)):
        expect(r, "ok")
    check(gauges(d)["max_inflight_instance"] == 1, gauges(d))

# serialize_all: one call at a time in the whole plugin, whatever the
# instance; a barrier of 2 can never be met.
with Daemon(config("all", instances=2, hold_ms=100)) as d:
    for r in together(d, creates(4, hvs=2)):
        expect(r, "ok")
    check(gauges(d)["max_inflight_plugin"] == 1, gauges(d))
