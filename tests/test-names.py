#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The one name rule (docs/api.md, "Names") through both stock clients:

- instances named with '.' and '_' load (the config follows the rule the
  APIs follow), and their names address pools and networks;
- a VM, volume and snapshot name with '.' and '_' is taken by REST and
  gRPC alike, one with a capital or a leading '-' refused by both;
- a VM name of the form of a UUID (another VM's id, or any) is refused by
  both, so a lookup by that string can only find the VM with that id;
- a snapshot answers to its name as well as its id (the mock's ids are
  "snap-N"), names are unique per VM."""
from resttest import RestDaemon
from rpctest import RpcDaemon, expect_status, grpc, pb
from vmhtest import check, mocks

V = "/api/v1"
N = pb.node
SC = grpc.StatusCode
# Instances named as the rule allows, '.' and '_' included.
BODY = mocks().replace("name: pool0", "name: pool_0.fast").replace(
    "name: net0", "name: net_0.lan")


def spec(name):
    return {"name": name, "vcpus": 1, "memory": "64MiB",
            "disks": [{"name": "vda", "size": "1MiB"}],
            "nics": [{"name": "net0"}]}


with RestDaemon(body=BODY) as d:
    pools = [p["name"] for p in d.ok("GET", V + "/storage/pools")["pools"]]
    check(pools == ["pool_0.fast"], pools)
    d.ok("GET", V + "/storage/pools/pool_0.fast")
    d.ok("GET", V + "/networks/net_0.lan")

    vm = d.ok("POST", V + "/vms", spec("web_1.prod"), status=201)
    check(vm["name"] == "web_1.prod", vm)
    vid = vm["id"]
    check(d.ok("GET", V + "/vms/web_1.prod")["id"] == vid, "by name")
    d.ok("POST", V + "/storage/pools/pool_0.fast/volumes",
         {"name": "data_1.img", "size": 1 << 20}, status=201)
    for bad in ("Web-1", "-web", ".web", "web/1", "a" * 64):
        d.error("POST", V + "/vms", 400, "INVALID_ARGUMENT", spec(bad))

    # Names of the form of a UUID: another VM's id, or any.
    for name in (vid, "00000000-0000-4000-8000-000000000000"):
        v = d.error("POST", V + "/vms", 400, "INVALID_ARGUMENT", spec(name))
        check("UUID" in v["error"]["message"], v)
    check(len(d.ok("GET", V + "/vms")["vms"]) == 1, "a VM was made")
    check(d.ok("GET", V + "/vms/" + vid)["name"] == "web_1.prod", "lookup")

    # Snapshots by name and by id.
    snaps = V + "/vms/web_1.prod/snapshots"
    s = d.ok("POST", snaps, {"name": "before-upgrade"}, status=201)
    check(s["name"] == "before-upgrade" and s["id"] != s["name"], s)
    v = d.error("POST", snaps, 409, "ALREADY_EXISTS",
                {"name": "before-upgrade"})
    check("before-upgrade" in v["error"]["message"], v)
    d.error("POST", snaps, 409, "ALREADY_EXISTS", {"name": s["id"]})
    d.ok("POST", snaps + "/before-upgrade/revert", status=204)
    d.ok("POST", snaps + "/" + s["id"] + "/revert", status=204)
    v = d.error("POST", snaps + "/after-upgrade/revert", 404, "NOT_FOUND")
    check("after-upgrade" in v["error"]["message"], v)
    d.ok("DELETE", snaps + "/before-upgrade", status=204)
    d.error("DELETE", snaps + "/" + s["id"], 404, "NOT_FOUND")
    check(d.ok("GET", snaps)["snapshots"] == [], "deleted by name")
    check(d.stop() == 0)

with RpcDaemon(body=BODY) as d:
    node = d.node()

    def grpc_spec(name):
        return N.VmSpec(name=name, vcpus=1, memory=64 << 20,
                        disks=[N.Disk(name="vda", size=1 << 20)],
                        nics=[N.Nic(name="net0")])

    vm = node.CreateVM(N.CreateVMRequest(spec=grpc_spec("db_1.prod")))
    check(vm.name == "db_1.prod", vm)
    for bad in ("Db-1", "-db", "db/1"):
        expect_status(SC.INVALID_ARGUMENT, node.CreateVM,
                      N.CreateVMRequest(spec=grpc_spec(bad)))
    e = expect_status(SC.INVALID_ARGUMENT, node.CreateVM,
                      N.CreateVMRequest(spec=grpc_spec(vm.id)))
    check("UUID" in e.details(), e.details())
    check(len(node.ListVMs(N.ListVMsRequest()).vms) == 1, "a VM was made")

    # A snapshot's name is required (node.proto and the core agree).
    e = expect_status(SC.INVALID_ARGUMENT, node.CreateSnapshot,
                      N.CreateSnapshotRequest(vm=vm.id))
    check("'name' is required" in e.details(), e.details())
    snap = node.CreateSnapshot(
        N.CreateSnapshotRequest(vm=vm.id, name="before-upgrade"))
    check(snap.id != snap.name, snap)
    expect_status(SC.ALREADY_EXISTS, node.CreateSnapshot,
                  N.CreateSnapshotRequest(vm=vm.id, name="before-upgrade"))
    node.RevertSnapshot(
        N.SnapshotRequest(vm=vm.id, snapshot_id="before-upgrade"))
    expect_status(SC.NOT_FOUND, node.RevertSnapshot,
                  N.SnapshotRequest(vm=vm.id, snapshot_id="nope"))
    node.DeleteSnapshot(
        N.SnapshotRequest(vm=vm.id, snapshot_id="before-upgrade"))
    check(not node.ListSnapshots(N.ListSnapshotsRequest(vm=vm.id)).snapshots, "gone")
    check(d.stop() == 0)
print("ok")
