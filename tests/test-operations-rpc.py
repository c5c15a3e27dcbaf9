#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Long operations through gRPC with the stock client (python3-grpcio):
StartVMAsync answers with the Operation, the VM reads STARTING meanwhile,
WaitOperation follows it to its end, WatchEvents carries its events; a
call whose deadline passes while its work is queued is cancelled before
the backend sees it (the mock's counters say so), one whose work already
runs finishes as a visible operation; every *Async twin (UpdateVMLabelsAsync
too) answers the operation, which keeps its result; ListOperations filters,
CancelOperation of a running one is FAILED_PRECONDITION; refusals."""
import os
import re
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpctest import RpcDaemon, check, expect_status, fail, grpc, mocks, pb  # noqa: E402

N = pb.node
SC = grpc.StatusCode
OS = N.OperationStatus


def calls(node, op):
    """The mock hypervisor's calls of op, from the daemon's counters."""
    stream = node.StreamMetrics(N.StreamMetricsRequest())
    text = next(stream).prometheus
    stream.cancel()
    return sum(int(m.group(1)) for m in re.finditer(
        r'^vmhost_plugin_calls_total\{instance="hv0",op="' + op +
        r'",result="[a-z_]+"\} (\d+)$', text, re.M))


def spec(name):
    return N.CreateVMRequest(spec=N.VmSpec(name=name, vcpus=1,
                                           memory=1 << 30), no_start=True)


with RpcDaemon(body=mocks(hv=", latency: { start: 4s }")) as d:
    node = d.node()
    events = []
    cv = threading.Condition()
    watch = node.WatchEvents(N.WatchEventsRequest())

    def collect():
        try:
            for e in watch:
                with cv:
                    events.append(e)
                    cv.notify_all()
        except grpc.RpcError:
            pass
    threading.Thread(target=collect, daemon=True).start()

    # ---- StartVMAsync: the operation at once, the VM STARTING ----------
    vm = node.CreateVM(spec("r-1"))
    check(vm.info.state == N.VM_STATE_STOPPED, vm.info)
    op = node.StartVMAsync(N.VmRequest(vm="r-1"))
    check(re.match(r"^[0-9a-f-]{36}$", op.id) and op.kind == "vm.start" and
          op.vm_id == vm.id and op.vm_name == "r-1", op)
    check(op.status in (OS.Value("OPERATION_STATUS_QUEUED"),
                        OS.Value("OPERATION_STATUS_RUNNING")), op)
    check(node.GetVM(N.VmRequest(vm="r-1")).info.state ==
          N.VM_STATE_STARTING, "not STARTING during the start")

    # A stop whose deadline passes while it waits behind the start: it is
    # cancelled, never run.
    stops = calls(node, "stop")
    expect_status(SC.DEADLINE_EXCEEDED, node.StopVM,
                  N.StopVMRequest(vm="r-1"), timeout=0.5)
    gone = node.ListOperations(N.ListOperationsRequest(
        vm="r-1", status=OS.Value("OPERATION_STATUS_CANCELLED"))).operations
    check(len(gone) == 1 and gone[0].kind == "vm.stop" and
          gone[0].error_code == "canceled" and
          "caller went away" in gone[0].error_message, gone)

    # Cancel of the running start: FAILED_PRECONDITION.
    expect_status(SC.FAILED_PRECONDITION, node.CancelOperation,
                  N.OperationRequest(id=op.id))
    end = node.WaitOperation(N.WaitOperationRequest(id=op.id, timeout_s=60))
    check(end.status == OS.Value("OPERATION_STATUS_SUCCEEDED") and
          end.progress == 100 and not end.error_code, end)
    # It keeps what StartVM would have answered, by reference; the answer
    # of StartVMAsync (not ended yet) has none.
    check(end.result.WhichOneof("kind") == "vm" and
          end.result.vm.id == vm.id and end.result.vm.name == "r-1", end)
    check(not op.HasField("result"), op)
    check(node.GetVM(N.VmRequest(vm="r-1")).info.state ==
          N.VM_STATE_RUNNING, "not RUNNING after the start")
    node.RebootVM(N.VmRequest(vm="r-1"))  # after the cancelled stop's turn
    check(calls(node, "stop") == stops, "a cancelled stop reached the backend")

    with cv:
        # Its end, then the VM's state once it ended.
        if not cv.wait_for(lambda: any(
                e.type == N.EVENT_TYPE_VM_STATE and e.operation == op.id and
                e.state == N.VM_STATE_RUNNING for e in events), 60):
            fail("no end event", events)
        mine = [(e.type, e.reason) for e in events if e.operation == op.id
                and e.type != N.EVENT_TYPE_VM_STATE]
        states = [(e.state, e.reason) for e in events
                  if e.operation == op.id and e.type == N.EVENT_TYPE_VM_STATE]
    check(mine[0] == (N.EVENT_TYPE_OPERATION_CREATED, "queued") and
          (N.EVENT_TYPE_OPERATION_UPDATED, "running") in mine and
          mine[-1] == (N.EVENT_TYPE_OPERATION, "succeeded"), mine)
    # The transitional state, then the state once it ended.
    check(states == [(N.VM_STATE_STARTING, "vm.start"),
                     (N.VM_STATE_RUNNING, "vm.start")], states)
    with cv:
        check(any(e.type == N.EVENT_TYPE_VM_STATE and
                  e.state == N.VM_STATE_STARTING for e in events), events)

    # ---- a start whose deadline passes while it runs: it finishes -------
    node.CreateVM(spec("r-2"))
    expect_status(SC.DEADLINE_EXCEEDED, node.StartVM, N.VmRequest(vm="r-2"),
                  timeout=0.5)
    ops = node.ListOperations(N.ListOperationsRequest(vm="r-2")).operations
    check([o.kind for o in ops] == ["vm.start", "vm.create"], ops)
    end = node.WaitOperation(N.WaitOperationRequest(id=ops[0].id))
    check(end.status == OS.Value("OPERATION_STATUS_SUCCEEDED"), end)
    check(node.GetVM(N.VmRequest(vm="r-2")).info.state ==
          N.VM_STATE_RUNNING, "r-2 after its abandoned start")

    # ---- the other *Async methods, lists ------------------------------
    cr = node.CreateVMAsync(spec("r-3"))
    check(cr.kind == "vm.create" and cr.vm_name == "r-3", cr)
    node.WaitOperation(N.WaitOperationRequest(id=cr.id))
    de = node.DeleteVMAsync(N.VmRequest(vm="r-3"))
    check(node.WaitOperation(N.WaitOperationRequest(id=de.id)).status ==
          OS.Value("OPERATION_STATUS_SUCCEEDED"), de)

    # Every method that changes something has its *Async twin (REST: the
    # same route with ?wait=false), and its operation keeps the result.
    def run(method, request, kind, result):
        o = method(request)  # the mock may have ended it already
        check(o.kind == kind and re.match(r"^[0-9a-f-]{36}$", o.id), o)
        e = node.WaitOperation(N.WaitOperationRequest(id=o.id))
        check(e.status == OS.Value("OPERATION_STATUS_SUCCEEDED") and
              e.result.WhichOneof("kind") == result, method, e)
        return e
    r4 = N.VmRequest(vm="r-4")
    run(node.CreateVMAsync, spec("r-4"), "vm.create", "vm")
    run(node.StartVMAsync, r4, "vm.start", "vm")
    run(node.PauseVMAsync, r4, "vm.pause", "vm")
    check(node.GetVM(r4).info.state == N.VM_STATE_PAUSED, "paused")
    run(node.ResumeVMAsync, r4, "vm.resume", "vm")
    check(node.GetVM(r4).info.state == N.VM_STATE_RUNNING, "resumed")
    run(node.AttachDiskAsync, N.AttachDiskRequest(
        vm="r-4", disk=N.Disk(name="vdb", size=1 << 20)), "disk.attach", "vm")
    check([x.name for x in node.GetVM(r4).spec.disks] == ["vdb"], "attached")
    run(node.DetachDiskAsync, N.DetachDiskRequest(vm="r-4", disk="vdb"),
        "disk.detach", "vm")
    check(not node.GetVM(r4).spec.disks, "detached")
    sn = run(node.CreateSnapshotAsync,
             N.CreateSnapshotRequest(vm="r-4", name="s-1"),
             "snapshot.create", "snapshot")
    snaps = node.ListSnapshots(r4).snapshots
    check(sn.result.snapshot.vm_id == sn.vm_id and
          sn.result.snapshot.name == "s-1" and
          [x.id for x in snaps] == [sn.result.snapshot.id], sn, snaps)
    run(node.DeleteSnapshotAsync, N.SnapshotRequest(vm="r-4",
                                                    snapshot_id="s-1"),
        "snapshot.delete", None)
    check(not node.ListSnapshots(r4).snapshots, "snapshot deleted")
    lb = run(node.UpdateVMLabelsAsync, N.UpdateVMLabelsRequest(
        vm="r-4", set={"tier": "gold", "old": "x"}), "vm.labels", "vm")
    check(lb.result.vm.id == lb.vm_id and lb.result.vm.name == "r-4", lb)
    run(node.UpdateVMLabelsAsync, N.UpdateVMLabelsRequest(
        vm="r-4", remove=["old"]), "vm.labels", "vm")
    check(dict(node.GetVM(r4).spec.labels) == {"tier": "gold"},
          node.GetVM(r4).spec.labels)
    run(node.ForceStopVMAsync, r4, "vm.stop", "vm")
    check(node.GetVM(r4).info.state == N.VM_STATE_STOPPED, "stopped")
    vo = run(node.CreateVolumeAsync, N.CreateVolumeRequest(
        pool="pool0", name="rv-1", size=1 << 20), "volume.create", "volume")
    check(vo.result.volume.pool == "pool0" and
          vo.result.volume.name == "rv-1", vo)
    run(node.DeleteVolumeAsync, N.VolumeRequest(pool="pool0", volume="rv-1"),
        "volume.delete", None)
    expect_status(SC.NOT_FOUND, node.GetVolume,
                  N.VolumeRequest(pool="pool0", volume="rv-1"))

    every = node.ListOperations(N.ListOperationsRequest()).operations
    check(len(every) >= 8, every)
    check([o.id for o in node.ListOperations(
        N.ListOperationsRequest(limit=2)).operations] ==
          [o.id for o in every[:2]], "limit")
    check(node.GetOperation(N.OperationRequest(id=de.id)).kind == "vm.delete",
          de)

    # ---- refusals ------------------------------------------------------
    expect_status(SC.INVALID_ARGUMENT, node.GetOperation,
                  N.OperationRequest(id="x"))
    expect_status(SC.NOT_FOUND, node.GetOperation, N.OperationRequest(
        id="00000000-0000-4000-8000-000000000000"))
    expect_status(SC.INVALID_ARGUMENT, node.WaitOperation,
                  N.WaitOperationRequest(id=op.id, timeout_s=3601))
    expect_status(SC.INVALID_ARGUMENT, node.ListOperations,
                  N.ListOperationsRequest(vm="../x"))
    # No such VM, a bad label: refused, not an operation.
    expect_status(SC.NOT_FOUND, node.StartVMAsync, N.VmRequest(vm="nosuch"))
    expect_status(SC.NOT_FOUND, node.UpdateVMLabelsAsync,
                  N.UpdateVMLabelsRequest(vm="nosuch", set={"a": "b"}))
    expect_status(SC.INVALID_ARGUMENT, node.UpdateVMLabelsAsync,
                  N.UpdateVMLabelsRequest(vm="r-4", set={"Bad Key": "b"}))
    expect_status(SC.INVALID_ARGUMENT, node.UpdateVMLabelsAsync,
                  N.UpdateVMLabelsRequest(vm="r-4", set={"a": "b"},
                                          remove=["a"]))
    check(dict(node.GetVM(r4).spec.labels) == {"tier": "gold"},
          "a refused change changed the labels")
    check(len(node.ListOperations(N.ListOperationsRequest()).operations) ==
          len(every), "a refusal was listed")
    watch.cancel()
print("ok")
