#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Long operations through REST (core/operations.c): ?wait=false answers 202
with the operation and its Location; the operation is followed to its end
(wait with a timeout, progress on the event stream, the VM `starting`
meanwhile); list and its filters; cancel of a queued operation (it never
reaches the backend: the mock's call counters say so) and of a running one
(409); a client that goes away (curl -m 1, over HTTP/2 and HTTP/1.1) leaves a visible operation
that completes, and its queued work is cancelled; the bounds (count,
retention); refusals of bad input."""
import re
import subprocess

from resttest import RestDaemon, Sse, req, require
from vmhtest import VMHOSTD, Daemon, check, mocks, wait_for

require("curl")

SLOW = mocks(hv=", latency: { start: 4s }")


def op_of(d, op_id):
    return req(d, "GET", f"/api/v1/operations/{op_id}", status=200)[2]


def calls(d, op):
    """How many times the mock hypervisor was called for op (metrics)."""
    _, _, text = d.get("/metrics")
    n = 0
    for m in re.finditer(r'^vmhost_plugin_calls_total\{instance="hv0",op="'
                         + op + r'",result="[a-z_]+"\} (\d+)$', text, re.M):
        n += int(m.group(1))
    return n


def vm_state(d, vm):
    return req(d, "GET", f"/api/v1/vms/{vm}", status=200)[2]["state"]


def create(d, name):
    req(d, "POST", "/api/v1/vms", {"name": name, "vcpus": 1,
                                   "memory": 1 << 30, "start": False},
        status=201)


def give_up(d, proto, vm, action):
    """POST /vms/VM/ACTION with curl PROTO, which gives up after 1 s."""
    r = d.curl("-m", "1", proto, "-X", "POST",
               d.base + f"/api/v1/vms/{vm}/{action}", check_rc=False)
    check(r.returncode == 28, "curl -m 1", proto, action, "did not time out",
          r.returncode, r.stderr)


def ops_of(d, vm, status):
    """VM's operations in status, once there are any."""
    return wait_for(lambda: req(
        d, "GET", f"/api/v1/operations?vm={vm}&status={status}",
        status=200)[2]["operations"], f"a {status} operation of {vm}")


def client_gone(d, proto, vm):
    """A client (curl PROTO) that gives up on a start while it runs leaves
    a visible operation that completes; one that gives up on a stop queued
    behind it has the stop cancelled: the backend never sees it."""
    create(d, vm)
    give_up(d, proto, vm, "start")
    start = ops_of(d, vm, "running")
    check(len(start) == 1 and start[0]["kind"] == "vm.start", proto, start)
    stops = calls(d, "stop")
    give_up(d, proto, vm, "stop")
    gone = ops_of(d, vm, "cancelled")
    check(len(gone) == 1 and gone[0]["kind"] == "vm.stop" and
          "caller went away" in gone[0]["error"]["message"], proto, gone)
    end = req(d, "GET", f"/api/v1/operations/{start[0]['id']}/wait",
              status=200)[2]
    check(end["status"] == "succeeded", proto, "the abandoned start", end)
    req(d, "POST", f"/api/v1/vms/{vm}/reboot", status=200)
    check(calls(d, "stop") == stops, proto, "a gone stop reached the backend")
    check(vm_state(d, vm) == "running", proto, vm)


with RestDaemon(body=SLOW) as d:
    sse = Sse(d)
    create(d, "op-1")
    check(vm_state(d, "op-1") == "stopped", "created stopped")

    # ---- ?wait=false: 202, Location, the operation ---------------------
    # A list first: each VM's encoding is kept by its generation, and an
    # operation changes what the VM shows without a write to its record.
    vms = req(d, "GET", "/api/v1/vms", status=200)[2]["vms"]
    check([v["state"] for v in vms if v["name"] == "op-1"] == ["stopped"],
          vms)
    st, hdrs, start = req(d, "POST", "/api/v1/vms/op-1/start?wait=false",
                          status=202)
    check(hdrs.get("location") == f"/api/v1/operations/{start['id']}",
          "Location", hdrs)
    check(start["kind"] == "vm.start" and
          start["status"] in ("queued", "running"), start)
    check(start["target"]["vm_name"] == "op-1" and
          re.match(r"^[0-9a-f-]{36}$", start["target"]["vm_id"]), start)
    check(start["error"] is None, start)

    # Running: the VM reads `starting`, never `stopped`, in GET and list.
    sse.wait(lambda e: e["type"] == "operation_updated" and
             e["operation"] == start["id"] and e["reason"] == "running",
             "start running")
    check(vm_state(d, "op-1") == "starting", "state during the start")
    vms = req(d, "GET", "/api/v1/vms", status=200)[2]["vms"]
    check([v["state"] for v in vms if v["name"] == "op-1"] == ["starting"],
          vms)
    sse.wait(lambda e: e["type"] == "vm_state" and e["state"] == "starting",
             "vm_state starting")

    # A wait that times out answers the operation as it is.
    w = req(d, "GET", f"/api/v1/operations/{start['id']}/wait?timeout=0",
            status=200)[2]
    check(w["status"] == "running" and w["progress"]["percent"] is None, w)

    # ---- a stop queued behind it (same VM): cancelled, never run -------
    _, _, stop = req(d, "POST", "/api/v1/vms/op-1/stop?wait=false",
                     status=202)
    check(stop["status"] == "queued", "stop not queued", stop)
    check(vm_state(d, "op-1") == "starting", "the running op's state wins")
    # Announced while the start still runs: no worker sends its events (the
    # VM's is busy with the start, the others run nothing), the operations'
    # timer does.
    sse.wait(lambda e: e["type"] == "operation_created" and
             e["operation"] == stop["id"], "the queued stop announced")
    check(req(d, "GET", f"/api/v1/operations/{start['id']}",
              status=200)[2]["status"] == "running", "the start still runs")
    _, _, c = req(d, "DELETE", f"/api/v1/operations/{stop['id']}",
                  status=200)
    check(c["status"] == "cancelled" and c["error"]["code"] != 0, c)
    check("cancelled" in c["error"]["message"], c)
    # Cancelling a running one, or an ended one: 409.
    d.error("DELETE", f"/api/v1/operations/{start['id']}", 409,
            "INVALID_STATE")
    d.error("DELETE", f"/api/v1/operations/{stop['id']}", 409,
            "INVALID_STATE")

    # ---- followed to its end -------------------------------------------
    end = req(d, "GET", f"/api/v1/operations/{start['id']}/wait?timeout=60",
              status=200)[2]
    check(end["status"] == "succeeded", end)
    check(end["progress"]["percent"] == 100, end)
    check(vm_state(d, "op-1") == "running", "state after the start")
    # It keeps its result: the VM the synchronous start answers, by
    # reference; none while it ran, none for the cancelled stop.
    vm1_id = start["target"]["vm_id"]
    check(end["result"] == {"kind": "vm", "id": vm1_id, "name": "op-1",
                            "href": f"/api/v1/vms/{vm1_id}"}, end)
    check(start["result"] is None and w["result"] is None, start, w)
    check(op_of(d, stop["id"])["result"] is None, "a cancelled op's result")
    check(op_of(d, start["id"])["result"] == end["result"], "kept")
    vms = req(d, "GET", "/api/v1/vms", status=200)[2]["vms"]
    check([v["state"] for v in vms if v["name"] == "op-1"] == ["running"],
          vms)
    # Its end, then the VM's state once it ended (docs/api.md, Events).
    sse.wait(lambda e: e["type"] == "vm_state" and e["state"] == "running"
             and e["operation"] == start["id"], "start ended")
    kinds = [(e["type"], e["reason"]) for e in sse.of(start["id"])
             if e["type"] != "vm_state"]
    check(kinds[0] == ("operation_created", "queued") and
          ("operation_updated", "running") in kinds and
          kinds[-1] == ("operation_ended", "succeeded"), kinds)
    states = [e["state"] for e in sse.of(start["id"])
              if e["type"] == "vm_state"]
    check(states == ["starting", "running"], states)
    sse.wait(lambda e: e["type"] == "operation_ended" and
             e["operation"] == stop["id"], "stop ended")
    check([(e["type"], e["reason"]) for e in sse.of(stop["id"])] ==
          [("operation_created", "queued"),
           ("operation_ended", "cancelled")], sse.of(stop["id"]))

    # The cancelled stop's turn has come and gone (a reboot after it on
    # the same VM ran): the backend never saw a stop.
    req(d, "POST", "/api/v1/vms/op-1/reboot", status=200)
    check(calls(d, "reboot") == 1, "the reboot ran")
    check(calls(d, "stop") == 0, "a cancelled stop reached the backend")
    check(vm_state(d, "op-1") == "running", "the cancelled stop stopped it")

    # A create with steps reports its progress.
    _, _, cr = req(d, "POST", "/api/v1/vms?wait=false",
                   {"name": "op-steps", "vcpus": 1, "memory": 1 << 30,
                    "start": False,
                    "disks": [{"name": "vda", "size": 1 << 20}],
                    "nics": [{"name": "net0"}]}, status=202)
    check(cr["kind"] == "vm.create" and cr["target"]["vm_name"] == "op-steps",
          cr)
    end = req(d, "GET", f"/api/v1/operations/{cr['id']}/wait", status=200)[2]
    check(end["status"] == "succeeded" and end["progress"]["total"] == 3, end)
    check(end["result"]["kind"] == "vm" and
          end["result"]["name"] == "op-steps" and
          end["result"]["id"] == end["target"]["vm_id"], end)

    # Results of the other kinds: a snapshot, a volume; a delete has none.
    _, _, sn = req(d, "POST", "/api/v1/vms/op-steps/snapshots?wait=false",
                   {"name": "snap-a"}, status=202)
    end = req(d, "GET", f"/api/v1/operations/{sn['id']}/wait", status=200)[2]
    snaps = req(d, "GET", "/api/v1/vms/op-steps/snapshots",
                status=200)[2]["snapshots"]
    vm_id = sn["target"]["vm_id"]
    check(end["result"] == {"kind": "snapshot", "vm_id": vm_id,
                            "id": snaps[0]["id"], "name": "snap-a",
                            "href": f"/api/v1/vms/{vm_id}/snapshots/"
                                    f"{snaps[0]['id']}"}, end, snaps)
    check(req(d, "GET", end["result"]["href"], status=200)[2] == snaps[0],
          "the href's snapshot")
    _, _, vo = req(d, "POST", "/api/v1/storage/pools/pool0/volumes?wait=false",
                   {"name": "vol-r", "size": 1 << 20}, status=202)
    end = req(d, "GET", f"/api/v1/operations/{vo['id']}/wait", status=200)[2]
    check(end["result"] == {
        "kind": "volume", "pool": "pool0", "name": "vol-r",
        "href": "/api/v1/storage/pools/pool0/volumes/vol-r"}, end)
    req(d, "GET", end["result"]["href"], status=200)
    _, _, vd = req(d, "DELETE",
                   "/api/v1/storage/pools/pool0/volumes/vol-r?wait=false",
                   status=202)
    end = req(d, "GET", f"/api/v1/operations/{vd['id']}/wait", status=200)[2]
    check(end["status"] == "succeeded" and end["result"] is None, end)
    sse.wait(lambda e: e["type"] == "operation_ended" and
             e["operation"] == cr["id"], "create ended")
    msgs = [e["message"] for e in sse.of(cr["id"])
            if e["type"] == "operation_updated"]
    check("disk vda" in msgs and "NIC net0" in msgs, msgs)

    # ---- a client that gives up (curl -m 1): over HTTP/2 the stream's
    # reset and the connection's close tell the server, over HTTP/1.1 the
    # connection's close (client_gone) ----------------------------------
    client_gone(d, "--http2-prior-knowledge", "op-2")
    client_gone(d, "--http1.1", "op-3")
    check(re.search(r"proto=http/1\.1 method=POST path=/api/v1/vms/op-3/stop "
                    r".* status=499 ", d.log()),
          "no 499 logged for the gone HTTP/1.1 client")

    # ---- lists and filters ---------------------------------------------
    allops = req(d, "GET", "/api/v1/operations", status=200)[2]["operations"]
    check(len(allops) >= 8, allops)
    check([o["created_us"] for o in allops] ==
          sorted((o["created_us"] for o in allops), reverse=True),
          "newest first")
    one = req(d, "GET", "/api/v1/operations?vm=op-1", status=200)[2]
    check({o["kind"] for o in one["operations"]} ==
          {"vm.create", "vm.start", "vm.stop", "vm.reboot"}, one)
    vm1 = one["operations"][0]["target"]["vm_id"]
    by_id = req(d, "GET", f"/api/v1/operations?vm={vm1}", status=200)[2]
    check(by_id == one, "by id and by name")
    c = req(d, "GET", "/api/v1/operations?status=cancelled", status=200)[2]
    check(len(c["operations"]) == 3 and
          all(o["status"] == "cancelled" for o in c["operations"]), c)
    lim = req(d, "GET", "/api/v1/operations?limit=2", status=200)[2]
    check(lim["operations"] == allops[:2], lim)

    # ---- refusals ------------------------------------------------------
    d.error("GET", "/api/v1/operations/nope", 400, "INVALID_ARGUMENT")
    d.error("GET", "/api/v1/operations/00000000-0000-4000-8000-000000000000",
            404, "NOT_FOUND")
    d.error("DELETE",
            "/api/v1/operations/00000000-0000-4000-8000-000000000000", 404,
            "NOT_FOUND")
    d.error("GET", f"/api/v1/operations/{start['id']}/wait?timeout=3601",
            400, "INVALID_ARGUMENT")
    d.error("GET", f"/api/v1/operations/{start['id']}/wait?t=1", 400,
            "INVALID_ARGUMENT")
    d.error("GET", "/api/v1/operations?status=done", 400, "INVALID_ARGUMENT")
    d.error("GET", "/api/v1/operations?vm=../x", 400, "INVALID_ARGUMENT")
    d.error("GET", "/api/v1/operations?limit=-1", 400, "INVALID_ARGUMENT")
    d.error("POST", "/api/v1/vms/op-1/start?wait=maybe", 400,
            "INVALID_ARGUMENT")
    d.error("POST", "/api/v1/vms/op-1/start?live=true", 400,
            "INVALID_ARGUMENT")
    # A refusal before any work is no operation, even with wait=false.
    n = len(req(d, "GET", "/api/v1/operations", status=200)[2]["operations"])
    d.error("POST", "/api/v1/vms/nosuch/start?wait=false", 404, "NOT_FOUND")
    d.error("POST", "/api/v1/vms?wait=false", 400, "INVALID_ARGUMENT",
            {"name": "bad", "vcpus": 0, "memory": 1 << 30})
    check(len(req(d, "GET", "/api/v1/operations",
                  status=200)[2]["operations"]) == n, "refusals listed")
    # A failed operation says why.
    _, _, dup = req(d, "POST", "/api/v1/vms/op-1/start?wait=false",
                    status=202)
    end = req(d, "GET", f"/api/v1/operations/{dup['id']}/wait",
              status=200)[2]
    check(end["status"] == "failed" and end["error"]["message"], end)
    # An image import (through the test front-end: images have no REST
    # route yet): the pool's byte progress is the operation's progress.
    r = Daemon.ok(d, op="image_import", pool="pool0", flags=1 << 31,
                  image={"name": "base",
                         "url": "http://127.0.0.1:1/base.img",
                         "sha256": "0" * 64})
    imp = r["operations"][0]
    check(imp["kind"] == "image.import" and
          imp["target"]["pool"] == "pool0" and
          imp["target"]["object"] == "base", imp)
    end = req(d, "GET", f"/api/v1/operations/{imp['id']}/wait",
              status=200)[2]
    check(end["status"] == "succeeded" and
          end["progress"]["total"] == 1 << 30, end)
    # Its result GETs the image.
    check(end["result"] == {
        "kind": "image", "pool": "pool0", "name": "base",
        "href": "/api/v1/storage/pools/pool0/images/base"}, end)
    check(req(d, "GET", end["result"]["href"], status=200)[2]["name"] ==
          "base", "the href's image")
    sse.wait(lambda e: e["type"] == "operation_updated" and
             e["operation"] == imp["id"] and e["total"] == 1 << 30,
             "import progress")
    sse.close()

# ---- bounds: count and retention ---------------------------------------
with RestDaemon(daemon_yaml="  operations_max: 3\n"
                "  operations_retention: 2\n") as d:
    for i in range(5):
        create(d, f"b-{i}")
    ops = req(d, "GET", "/api/v1/operations", status=200)[2]["operations"]
    check([o["target"]["vm_name"] for o in ops] == ["b-4", "b-3", "b-2"],
          "the newest 3 kept", ops)
    wait_for(lambda: not req(d, "GET", "/api/v1/operations",
                             status=200)[2]["operations"],
             "operations forgotten after their retention")
    d.error("GET", f"/api/v1/operations/{ops[0]['id']}", 404, "NOT_FOUND")

# The config's bounds are checked, with a message naming the key.
for bad in ("operations_max: 0", "operations_retention: 0",
            "operations_retention: 604801", "operations_max: many"):
    d = RestDaemon(daemon_yaml=f"  {bad}\n")
    r = subprocess.run([VMHOSTD, "--check-config", "--config", d.config],
                       capture_output=True, text=True)
    check(r.returncode != 0 and bad.split(":")[0] in r.stderr + r.stdout,
          bad, "accepted", r.stdout, r.stderr)
    d.__exit__(None, None, None)
print("ok")
