#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The VM record journal end to end (core/journal.h): vmhostd killed at each
step of a group commit and of a compaction (VMHOSTD_FAULT), a torn tail, a
corrupt record in the middle, a damaged snapshot, compaction under load,
1,000 concurrent creates with kill -9 in the middle, and the migration of a
state directory in the layout before the journal (one JSON file per VM).

Every acknowledged change survives; an unacknowledged create is either
absent or present whole, marked as interrupted; nothing else changes."""
import concurrent.futures
import glob
import json
import os
import subprocess
import threading

import vmhjournal
from vmhtest import Daemon, VMHOSTD, check, mocks, quiet_call, vm_spec

PERSIST = ", persist: true"
SMALL = "  journal_compact_size: 4096\n"


def plain(name):
    return vm_spec(name, disks=0, nics=0)


def state_of(d):
    return os.path.join(d.tmp, "state")


def names(d):
    return {v["name"]: v for v in d.ok(op="vm_list")["vms"]}


def start_with_fault(d, point):
    os.environ["VMHOSTD_FAULT"] = point
    try:
        d.start()
    finally:
        del os.environ["VMHOSTD_FAULT"]


def died(d):
    """vmhostd killed itself at its fault point (SIGKILL)."""
    rc = d.proc.wait(60)
    d.proc = None
    d.log_f.close()
    return rc == -9


def restart_clean(d):
    """Start without a fault; the records as loaded."""
    d.start()
    return names(d)


# ---- a group commit, killed at each step ---------------------------------
# Two VMs acknowledged (2 syncs each: creating, then ready); the third
# create's first sync is the one killed.
for point, durable in (("journal-before-write", False),
                       ("journal-torn-write", False),
                       ("journal-after-write", True),
                       ("journal-after-sync", True)):
    with Daemon(mocks(hv=PERSIST)) as d:
        d.stop()
        start_with_fault(d, point + ":5")
        acked = [d.ok(op="vm_create", spec=plain(n))["vms"][0]
                 for n in ("a", "b")]
        r = quiet_call(d, op="vm_create", spec=plain("c"))
        check(r is None, point, ": the create that died was not answered", r)
        check(died(d), point, ": vmhostd killed itself")
        check(f"fault point {point} reached" in d.log(), d.log())
        mark = len(d.log())
        vms = restart_clean(d)
        log = d.log()[mark:]
        for a in acked:
            check(vms.get(a["name"], {}).get("status") == "ready" and
                  vms[a["name"]]["id"] == a["id"],
                  point, ": acknowledged VM", a["name"], "survives:", vms)
        if durable:
            # Written before the kill: the page cache keeps it (the process
            # died, not the machine); whole, and marked interrupted.
            check(vms.get("c", {}).get("status") == "failed" and
                  "interrupted" in vms["c"]["error"], point, vms)
        else:
            check("c" not in vms, point, ": nothing of c:", vms)
        if point == "journal-torn-write":
            check("torn or corrupt tail" in log and
                  glob.glob(state_of(d) + "/vms.journal.corrupt-*"),
                  "torn tail cut off and set aside:\n" + log)
        # The journal works on: a new VM, a restart, the same records.
        d.ok(op="vm_create", spec=plain("d"))
        before = names(d)
        check(d.stop() == 0)
        check(restart_clean(d).keys() == before.keys(), "stable")
        check(d.stop() == 0)

# ---- a compaction, killed at each step -----------------------------------
for point in ("compact-after-rotate", "compact-after-write",
              "compact-after-rename"):
    with Daemon(mocks(), daemon_yaml=SMALL) as d:
        d.stop()
        start_with_fault(d, point)
        acked, deleted = {}, set()
        for i in range(200):
            r = quiet_call(d, op="vm_create", spec=plain(f"vm{i}"))
            if r is None:
                break
            check(r["code"] == 0, r)
            acked[f"vm{i}"] = r["vms"][0]["id"]
            if i % 3 == 0:
                if quiet_call(d, op="vm_delete", vm=f"vm{i}") is None:
                    del acked[f"vm{i}"]  # a delete not acknowledged: either
                    break
                deleted.add(f"vm{i}")
        check(died(d), point, ": the compaction point was reached")
        mark = len(d.log())
        vms = restart_clean(d)
        log = d.log()[mark:]
        for n, vid in acked.items():
            if n in deleted:
                check(n not in vms, point, ": deleted", n, "stays deleted")
            else:
                check(vms.get(n, {}).get("id") == vid, point, ": acked", n,
                      "survives")
        check("interrupted compaction" in log, point, log)
        if point == "compact-after-write":
            check("left by an interrupted write" in log, point, log)
        # The compaction is finished on restart; records stay the same.
        check(d.stop() == 0)
        check(not glob.glob(state_of(d) + "/.vms.snapshot.*"),
              point, ": no temporary snapshot file left")
        check(not os.path.exists(state_of(d) + "/vms.journal.compacting"),
              point, ": the old log is merged and removed")
        check(restart_clean(d).keys() == vms.keys(), point, ": stable")
        check(d.stop() == 0)

# ---- damage ----------------------------------------------------------------
with Daemon(mocks()) as d:
    ids = [d.ok(op="vm_create", spec=plain(f"vm{i}"))["vms"][0]["id"]
           for i in range(5)]
    check(d.stop() == 0)
    log_path = os.path.join(state_of(d), "vms.journal")
    with open(log_path, "rb") as f:
        good = f.read()
    good_end = vmhjournal.end(state_of(d))

    # A torn tail: half a frame at the end.
    whole = vmhjournal.frame(vmhjournal.last_seq(state_of(d)) + 1, "P",
                             ids[0], '{"name": "never"}')
    vmhjournal.append(state_of(d), whole[:len(whole) // 2])
    mark = len(d.log())
    check(set(restart_clean(d)) == {f"vm{i}" for i in range(5)},
          "all five after a torn tail")
    log = d.log()[mark:]
    check("cut off a torn or corrupt tail of" in log and
          "never acknowledged" in log, log)
    aside = glob.glob(log_path + ".corrupt-*")
    check(len(aside) == 1 and os.path.getsize(aside[0]) == len(whole) // 2,
          "the tail set aside:", aside)
    check(d.stop() == 0)
    with open(log_path, "rb") as f:
        now = f.read()
    check(now[:good_end] == good[:good_end] and
          vmhjournal.end(state_of(d)) == good_end and
          not now[good_end:].strip(b"\0"),
          "the log cut back to its last good frame")

    # A corrupt record in the middle: refuses to start, changes nothing.
    frames, _ = vmhjournal.frames(log_path)
    damaged = bytearray(good)
    damaged[frames[2][0] + 30] ^= 0x40
    with open(log_path, "wb") as f:
        f.write(damaged)
    p = subprocess.run([VMHOSTD, "--config", d.config], capture_output=True,
                       text=True, timeout=60)
    out = p.stdout + p.stderr
    check(p.returncode != 0, "refused:", p.returncode, out)
    for words in ("is damaged at byte", "valid records follow",
                  "Restore the state directory from a backup",
                  f"truncate -s {frames[2][0]}"):
        check(words in out, f"the refusal says '{words}':\n" + out)
    with open(log_path, "rb") as f:
        check(f.read() == bytes(damaged), "nothing changed by the refusal")
    # Doing what it says works: the records before the damage.
    os.truncate(log_path, frames[2][0])
    check(len(restart_clean(d)) >= 1, "starts after the truncate")
    check(d.stop() == 0)

with Daemon(mocks(), daemon_yaml=SMALL) as d:
    for i in range(60):
        d.ok(op="vm_create", spec=plain(f"vm{i}"))
    check(d.stop() == 0)
    snap = os.path.join(state_of(d), "vms.snapshot")
    check(os.path.exists(snap), "a snapshot was written")
    with open(snap, "r+b") as f:
        f.seek(60)
        b = f.read(1)
        f.seek(60)
        f.write(bytes([b[0] ^ 1]))
    p = subprocess.run([VMHOSTD, "--config", d.config], capture_output=True,
                       text=True, timeout=60)
    check(p.returncode != 0 and "vms.snapshot is damaged" in p.stdout + p.stderr,
          "a damaged snapshot refuses:", p.stdout + p.stderr)

# ---- compaction under load ------------------------------------------------
with Daemon(mocks(), daemon_yaml=SMALL) as d:
    acked, lock = {}, threading.Lock()

    def churn(t):
        for i in range(40):
            n = f"t{t}-{i}"
            vid = d.ok(op="vm_create", spec=plain(n))["vms"][0]["id"]
            if i % 2:
                d.ok(op="vm_delete", vm=n)
            else:
                with lock:
                    acked[n] = vid

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(churn, range(8)))
    check(names(d).keys() == acked.keys(), "live records match")
    # Killed wherever the compactions are (how far they got depends on the
    # machine's load: not asserted).
    d.kill9()
    vms = restart_clean(d)
    check({n: v["id"] for n, v in vms.items()} == acked,
          "after kill -9 the records are the acknowledged ones")
    check(d.stop() == 0)
    # A clean stop waits for the compaction in progress.
    check(os.path.exists(os.path.join(state_of(d), "vms.snapshot")) and
          not os.path.exists(os.path.join(state_of(d),
                                          "vms.journal.compacting")),
          "compacted")
    check({n: v["id"] for n, v in restart_clean(d).items()} == acked,
          "the same records from the snapshot")
    check(d.stop() == 0)

# ---- 1,000 concurrent creates, kill -9 in the middle ----------------------
with Daemon(mocks()) as d:
    acked, lock, killed = {}, threading.Lock(), threading.Event()

    def create(i):
        r = quiet_call(d, op="vm_create", spec=plain(f"vm{i}"))
        if r is not None and r.get("code") == 0:
            with lock:
                acked[f"vm{i}"] = r["vms"][0]["id"]
                if len(acked) == 500:
                    killed.set()

    with concurrent.futures.ThreadPoolExecutor(32) as ex:
        futs = [ex.submit(create, i) for i in range(1000)]
        killed.wait(600)
        d.kill9()
        for f in futs:
            f.result()
    check(len(acked) >= 500, "500 acknowledged before the kill", len(acked))
    on_disk = vmhjournal.records(state_of(d))
    vms = restart_clean(d)
    for n, vid in acked.items():
        check(n in vms and vms[n]["id"] == vid and vms[n]["status"] != "failed",
              "acknowledged", n, "survives whole:", vms.get(n))
    for n, v in vms.items():
        if n not in acked:
            check(v["status"] == "failed" and "interrupted" in v["error"] or
                  v["status"] in ("ready", "missing"),
                  "an unacknowledged create is whole or marked", v)
        rec = on_disk[v["id"]]
        check(rec["name"] == n, "loaded as written")
    print(f"1,000 creates, kill -9 after {len(acked)} acknowledged: "
          f"{len(vms)} records, {sum(1 for n in vms if n not in acked)} "
          "unacknowledged")
    check(d.stop() == 0)

# ---- migration from one file per VM ----------------------------------------
with Daemon(mocks(hv=PERSIST)) as d:
    made = {n: d.ok(op="vm_create", spec=vm_spec(n, disks=0, nics=0))["vms"][0]
            for n in ("m1", "m2", "m3")}
    check(d.stop() == 0)
    st = state_of(d)
    recs = vmhjournal.records(st)
    for name in ("vms.journal", "vms.snapshot"):
        if os.path.exists(os.path.join(st, name)):
            os.unlink(os.path.join(st, name))
    vmsdir = os.path.join(st, "vms")
    os.mkdir(vmsdir)
    for vid, rec in recs.items():
        with open(os.path.join(vmsdir, vid + ".json"), "w") as f:
            json.dump(rec, f, indent=2)
    with open(os.path.join(vmsdir, ".00000000-0000-4000-8000-000000000000.json.tmp"), "w") as f:
        f.write("{ half")
    with open(os.path.join(vmsdir, "11111111-1111-4111-8111-111111111111.json"), "w") as f:
        f.write("{ not json")
    mark = len(d.log())
    vms = restart_clean(d)
    log = d.log()[mark:]
    check("migrated 3 VM records" in log, log)
    check("interrupted write" in log and "not a valid VM record" in log, log)
    for n, v in made.items():
        check(vms[n]["id"] == v["id"] and vms[n]["status"] == "ready",
              "migrated", n, vms.get(n))
    moved = glob.glob(vmsdir + ".migrated-*")
    check(len(moved) == 1 and not os.path.exists(vmsdir), "vms/ set aside",
          moved)
    check(os.path.exists(os.path.join(
        moved[0], "11111111-1111-4111-8111-111111111111.json.corrupt")),
        "the unreadable file set aside")
    check(vmhjournal.records(st).keys() == recs.keys(), "in the journal")
    d.ok(op="vm_delete", vm="m2")
    check(d.stop() == 0)
    mark = len(d.log())
    vms = restart_clean(d)
    check("migrated" not in d.log()[mark:], "migrated once")
    check(set(vms) == {"m1", "m3"}, vms)
    check(d.stop() == 0)
