#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The rpc front-end with the stock gRPC client (python3-grpcio): every
unary method of vmhost.v1.NodeService on the mocks, a VM's whole life,
the error statuses from the core's table, grpc.health.v1 Check, and
WatchEvents seeing a VM's life in order."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpctest import EventWatch, RpcDaemon, check, expect_status, fail, grpc, mocks, pb, vm_spec  # noqa: E402

N = pb.node
SC = grpc.StatusCode

# console: the 2nd call fails as the backend lacking it (UNIMPLEMENTED);
# start sleeps 3 s (DEADLINE_EXCEEDED for a client in a hurry).
HV = (", faults: [ { op: console, mode: nth, n: 2, error: not_supported } ]"
      ", latency: { start: 3s }")

with RpcDaemon(body=mocks(hv=HV, st=", message: 'shelf 2 offline'")) as d:
    ch = d.channel()
    node = d.node(ch)

    # -- WatchEvents, from the start ---------------------------------------
    w = EventWatch(node)
    events, watch, t = w.events, w.call, w.thread
    time.sleep(0.3)

    # -- node, plugins, health -----------------------------------------------
    info = node.GetNodeInfo(N.GetNodeInfoRequest())
    check(info.hostname and info.cpu_threads > 0 and info.memory_total > 0,
          info)
    plugins = node.ListPlugins(N.ListPluginsRequest()).plugins
    names = {p.name for p in plugins}
    check({"mock", "rpc"} <= names, names)
    hc = node.HealthCheck(N.HealthCheckRequest())
    check(hc.status == N.CHECK_STATUS_OK and
          {c.name for c in hc.checks} >= {"core", "hv0", "pool0", "net0"}, hc)
    h = d.health(ch)
    check(h.Check(pb.health.HealthCheckRequest()).status ==
          pb.health.HealthCheckResponse.SERVING)
    check(h.Check(pb.health.HealthCheckRequest(
        service="vmhost.v1.NodeService")).status ==
        pb.health.HealthCheckResponse.SERVING)
    expect_status(SC.NOT_FOUND, h.Check,
                  pb.health.HealthCheckRequest(service="no.Such"))

    # -- storage and networks ------------------------------------------------
    pools = node.ListPools(N.ListPoolsRequest()).pools
    check([p.name for p in pools] == ["pool0"] and pools[0].type == "mock",
          pools)
    p = node.GetPool(N.PoolRequest(pool="pool0"))
    check(p.capacity > 0 and p.message == "shelf 2 offline", p)
    vol = node.CreateVolume(N.CreateVolumeRequest(
        pool="pool0", name="data-1", size=1 << 20, format=N.DISK_FORMAT_RAW))
    check(vol.name == "data-1" and vol.capacity == 1 << 20, vol)
    check(vol.location.startswith("file:///")
          and vol.location.endswith("/data-1"), vol)
    check(node.GetVolume(N.VolumeRequest(pool="pool0", volume="data-1"))
          .capacity == 1 << 20)
    vol = node.ResizeVolume(N.ResizeVolumeRequest(pool="pool0",
                                                  volume="data-1",
                                                  size=2 << 20))
    check([v.name for v in node.ListVolumes(N.ListVolumesRequest(pool="pool0"))
           .volumes] == ["data-1"])
    check(node.GetVolume(N.VolumeRequest(pool="pool0", volume="data-1"))
          .capacity == 2 << 20)
    node.DeleteVolume(N.VolumeRequest(pool="pool0", volume="data-1"))
    expect_status(SC.NOT_FOUND, node.GetVolume,
                  N.VolumeRequest(pool="pool0", volume="data-1"))
    nets = node.ListNetworks(N.ListNetworksRequest()).networks
    check([n.name for n in nets] == ["net0"], nets)
    check(node.GetNetwork(N.NetworkRequest(network="net0")).bridge ==
          "mockbr0")

    # -- a VM's life -----------------------------------------------------------
    vm = node.CreateVM(N.CreateVMRequest(spec=vm_spec("web-1"),
                                         no_start=True))
    check(vm.name == "web-1" and len(vm.id) == 36 and
          vm.status == N.VM_STATUS_READY and
          vm.info.state == N.VM_STATE_STOPPED, vm)
    check(vm.spec.disks[0].volume and vm.spec.nics[0].binding.bridge ==
          "mockbr0", vm.spec)
    # The disk's source as the pool gave it, recorded by the core.
    src = vm.spec.disks[0].source
    check(vm.spec.disks[0].HasField("source") and
          src.type == N.SOURCE_TYPE_FILE and
          src.path.endswith("/" + vm.spec.disks[0].volume), vm.spec.disks)
    vid = vm.id
    # The 3 s start: a client with 0.5 s gets DEADLINE_EXCEEDED ...
    t0 = time.time()
    expect_status(SC.DEADLINE_EXCEEDED, node.StartVM, N.VmRequest(vm=vid),
                  timeout=0.5)
    check(time.time() - t0 < 2.5, "the deadline was not kept")
    # ... and the start goes on in the core: wait for it.
    for _ in range(100):
        if node.GetVM(N.VmRequest(vm=vid)).info.state == N.VM_STATE_RUNNING:
            break
        time.sleep(0.1)
    else:
        fail("the VM never ran")
    st = node.GetVMStatus(N.VmRequest(vm="web-1"))
    check(st.id == vid and st.info.state == N.VM_STATE_RUNNING, st)
    def listed():
        """ListVMs, checked against each VM's own GetVM: the list is served
        again from a cache while no record changes, and must never lag
        behind a change."""
        vms = list(node.ListVMs(N.ListVMsRequest()).vms)
        for v in vms:
            check(v == node.GetVM(N.VmRequest(vm=v.id)), "the list lags:", v)
        return vms

    check([v.id for v in listed()] == [vid])
    check([v.id for v in node.ListVMs(N.ListVMsRequest(live=True)).vms] ==
          [vid])
    check(node.PauseVM(N.VmRequest(vm=vid)).info.state ==
          N.VM_STATE_PAUSED)
    check(listed()[0].info.state == N.VM_STATE_PAUSED, "paused in the list")
    check(node.ResumeVM(N.VmRequest(vm=vid)).info.state ==
          N.VM_STATE_RUNNING)
    check(listed()[0].info.state == N.VM_STATE_RUNNING, "running, listed")
    node.RebootVM(N.VmRequest(vm=vid))
    con = node.GetConsole(N.VmRequest(vm=vid))
    check(con.type != N.CONSOLE_TYPE_NONE, con)
    expect_status(SC.UNIMPLEMENTED, node.GetConsole, N.VmRequest(vm=vid))

    snap = node.CreateSnapshot(N.CreateSnapshotRequest(vm=vid, name="s1"))
    check(snap.name == "s1" and snap.id, snap)
    check([s.id for s in node.ListSnapshots(N.ListSnapshotsRequest(vm=vid))
           .snapshots] == [snap.id])
    # One snapshot, by id or by name.
    for key in (snap.id, "s1"):
        check(node.GetSnapshot(N.SnapshotRequest(vm=vid, snapshot_id=key)) ==
              snap, key)
    expect_status(SC.NOT_FOUND, node.GetSnapshot,
                  N.SnapshotRequest(vm=vid, snapshot_id="s2"))
    expect_status(SC.NOT_FOUND, node.GetSnapshot,
                  N.SnapshotRequest(vm="nosuch", snapshot_id="s1"))
    expect_status(SC.INVALID_ARGUMENT, node.GetSnapshot,
                  N.SnapshotRequest(vm=vid, snapshot_id="a b"))
    expect_status(SC.INVALID_ARGUMENT, node.GetSnapshot,
                  N.SnapshotRequest(vm=vid))
    node.RevertSnapshot(N.SnapshotRequest(vm=vid, snapshot_id=snap.id))
    node.DeleteSnapshot(N.SnapshotRequest(vm=vid, snapshot_id=snap.id))
    check(not node.ListSnapshots(N.ListSnapshotsRequest(vm=vid)).snapshots)
    expect_status(SC.NOT_FOUND, node.GetSnapshot,
                  N.SnapshotRequest(vm=vid, snapshot_id=snap.id))

    node.AttachDisk(N.AttachDiskRequest(
        vm=vid, disk=N.Disk(name="vdb", size=1 << 20)))
    disks = [x.name for x in node.GetVM(N.VmRequest(vm=vid)).spec.disks]
    check(disks == ["vda", "vdb"], disks)
    check([x.name for x in listed()[0].spec.disks] == ["vda", "vdb"])
    vdb = node.GetVM(N.VmRequest(vm=vid, live=True)).spec.disks[1]
    check(vdb.source.type == N.SOURCE_TYPE_FILE and vdb.source.path, vdb)
    node.DetachDisk(N.DetachDiskRequest(vm=vid, disk="vdb"))
    disks = [x.name for x in node.GetVM(N.VmRequest(vm=vid)).spec.disks]
    check(disks == ["vda"], disks)

    # -- error statuses --------------------------------------------------------
    expect_status(SC.NOT_FOUND, node.GetVM, N.VmRequest(vm="nope"))
    expect_status(SC.ALREADY_EXISTS, node.CreateVM,
                  N.CreateVMRequest(spec=vm_spec("web-1")))
    e = expect_status(SC.INVALID_ARGUMENT, node.CreateVM,
                      N.CreateVMRequest(spec=N.VmSpec(name="web-2", vcpus=0,
                                                      memory=1 << 30)))
    check("vcpus" in e.details(), e.details())
    e = expect_status(SC.INVALID_ARGUMENT, node.GetVM,
                      N.VmRequest(vm="Not A Name"))
    check("'vm'" in e.details(), e.details())
    expect_status(SC.INVALID_ARGUMENT, node.StopVM,
                  N.StopVMRequest(vm=vid, timeout_s=3601))
    # A volume in use cannot go.
    expect_status(SC.FAILED_PRECONDITION, node.DeleteVolume,
                  N.VolumeRequest(pool="pool0",
                                  volume=vm.spec.disks[0].volume))

    check(node.StopVM(N.StopVMRequest(vm=vid, timeout_s=5)).info.state ==
          N.VM_STATE_STOPPED)
    node.StartVM(N.VmRequest(vm=vid))
    check(node.ForceStopVM(N.VmRequest(vm=vid)).info.state ==
          N.VM_STATE_STOPPED)
    node.DeleteVM(N.VmRequest(vm=vid))
    expect_status(SC.NOT_FOUND, node.GetVM, N.VmRequest(vm=vid))
    check(not listed())

    # -- a client that cancels a unary call ---------------------------------
    # The stream is reset (access log: 499); the core's start goes on and
    # its late answer is dropped.
    slow = node.CreateVM(N.CreateVMRequest(spec=vm_spec("slow-1"),
                                           no_start=True))
    f = node.StartVM.future(N.VmRequest(vm=slow.id))
    time.sleep(0.5)
    check(f.cancel(), "the call could not be cancelled")
    for _ in range(100):
        if "path=/vmhost.v1.NodeService/StartVM route=/vmhost.v1." \
           "NodeService/StartVM status=499" in d.log():
            break
        time.sleep(0.05)
    else:
        fail("no access-log line for the cancelled call")
    for _ in range(100):
        if node.GetVM(N.VmRequest(vm=slow.id)).info.state == \
                N.VM_STATE_RUNNING:
            break
        time.sleep(0.1)
    else:
        fail("the cancelled call's start did not go on")
    node.DeleteVM(N.VmRequest(vm=slow.id))

    # -- the events, in order ------------------------------------------------
    time.sleep(0.5)
    watch.cancel()
    t.join(10)
    check(not t.is_alive(), "WatchEvents did not end on cancel")
    errs = [e for e in events if isinstance(e, Exception)]
    check(not errs, errs)
    seqs = [e.seq for e in events]
    check(seqs == list(range(1, len(seqs) + 1)), seqs)
    mine = [(e.type, e.state) for e in events if e.vm_id == vid and e.type in
            (N.EVENT_TYPE_VM_CREATED, N.EVENT_TYPE_VM_STATE,
             N.EVENT_TYPE_VM_DELETED)]
    want = [(N.EVENT_TYPE_VM_CREATED, None),
            (N.EVENT_TYPE_VM_STATE, N.VM_STATE_RUNNING),
            (N.EVENT_TYPE_VM_STATE, N.VM_STATE_STOPPED),
            (N.EVENT_TYPE_VM_DELETED, None)]
    i = 0
    for ty, state in mine:
        w = want[i] if i < len(want) else None
        if w and ty == w[0] and (w[1] is None or state == w[1]):
            i += 1
    check(i == len(want), "events out of order or missing:", mine)

    # The daemon still answers, and stops cleanly.
    check(node.GetNodeInfo(N.GetNodeInfoRequest()).hostname)
    rc = d.stop()
    check(rc == 0, "vmhostd exited", rc, d.log())
print("ok")
