#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Admission control (resources: in vmhostd.yaml) end to end on the mocks,
through REST and gRPC: the numbers of GET /api/v1/host/resources, exact
refusals (409 INSUFFICIENT_CAPACITY / RESOURCE_EXHAUSTED) for vCPUs,
memory and pool space on create, disk attach and volume create, with
nothing left behind; concurrent creates racing for the last slots
(exactly as many succeed as fit); a failed create's rollback, a delete and
a restart giving back exactly what they should; the Prometheus gauges;
config validation; the host telemetry of GET /api/v1/host/metrics."""
import http.client
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resttest import RestDaemon, validate  # noqa: E402
from vmhtest import VMHOSTD, check, fail, mocks, wait_for  # noqa: E402

V = "/api/v1"
GIB = 1 << 30

# A simulated host of 16 CPUs and 16 GiB; a pool of 100 GiB.  The second
# define fails (rollback), the state survives restarts.
HV = (", persist: true, host_cpus: 16, host_memory: 16G"
      ", faults: [ { op: define, mode: nth, n: 2 } ]")
ST = ", persist: true, capacity: 100G"


def resources(cpu="1.0", mem="1.0", extra=""):
    return f"""resources:
  reserved_cpus: 2
  reserved_memory: 4G
  reserved_disk: 10G
  cpu_overcommit: {cpu}
  memory_overcommit: {mem}
{extra}"""


def body(**kw):
    return resources(**kw) + mocks(hv=HV, st=ST)


def spec(name, vcpus=1, memory=64 << 20, disks=()):
    return {"name": name, "vcpus": vcpus, "memory": memory,
            "disks": [{"name": n, "size": s} for n, s in disks]}


def run(d):
    def call(method, path, b=None, status=200):
        st, _, v = d.request(method, path, b)
        if st != status:
            fail(f"{method} {path}: expected {status}, got {st}:", v)
        if isinstance(v, (dict, list)):
            validate(method, path, st, v)
        return v

    def refused(method, path, b, message):
        v = d.error(method, path, 409, "INSUFFICIENT_CAPACITY", b)
        validate(method, path, 409, v)
        if v["error"]["message"] != message:
            fail(f"{method} {path}: message\n  {v['error']['message']!r}\n"
                 f"expected\n  {message!r}")

    def res():
        return call("GET", V + "/host/resources")

    def vms():
        return sorted(v["name"] for v in call("GET", V + "/vms")["vms"])

    def volumes():
        return sorted(v["name"] for v in
                      call("GET", V + "/storage/pools/pool0/volumes")["volumes"])

    # -- the numbers, empty -------------------------------------------------
    r = res()
    check(r["vcpus"] == {"host_cpus": 16, "overcommit": 1.0, "total": 16,
                         "reserved": 2, "allocated": 0, "available": 14}, r)
    check(r["memory"] == {"host_bytes": 16 * GIB, "overcommit": 1.0,
                          "total": 16 * GIB, "reserved": 4 * GIB,
                          "allocated": 0, "available": 12 * GIB}, r)
    pool = r["disk"]["pools"][0]
    check(pool["name"] == "pool0" and pool["total"] == 100 * GIB and
          pool["reserved"] == 10 * GIB and pool["allocated"] == 0 and
          pool["available"] == 90 * GIB and pool["sampled_us"] > 0, r)
    check(r["vms"] == 0, r)

    # -- vCPUs ---------------------------------------------------------------
    call("POST", V + "/vms", spec("big", vcpus=12, memory=GIB), status=201)
    refused("POST", V + "/vms", spec("b", vcpus=4),
            "VM 'b' needs 4 vCPUs; 2 of 16 are available (16 CPUs × 1.0 "
            "overcommit − 2 reserved − 12 allocated)")
    # -- memory --------------------------------------------------------------
    refused("POST", V + "/vms", spec("c", vcpus=1, memory=12 * GIB),
            "VM 'c' needs 12 GiB of memory; 11 GiB of 16 GiB are available "
            "(16 GiB × 1.0 overcommit − 4 GiB reserved − 1 GiB allocated)")
    # -- pool space: create, attach, volume create ---------------------------
    refused("POST", V + "/vms", spec("d", disks=[("vda", GIB),
                                                 ("vdb", 95 * GIB)]),
            "disk vdb needs 95 GiB in pool 'pool0'; 89 GiB of 100 GiB are "
            "available (100 GiB capacity − 10 GiB reserved − 1 GiB "
            "allocated)")
    refused("POST", V + "/vms/big/disks", {"name": "vdc", "size": 91 * GIB},
            "disk vdc needs 91 GiB in pool 'pool0'; 90 GiB of 100 GiB are "
            "available (100 GiB capacity − 10 GiB reserved − 0 bytes "
            "allocated)")
    refused("POST", V + "/storage/pools/pool0/volumes",
            {"name": "huge", "size": 90 * GIB + 1},
            "volume huge needs 90 GiB in pool 'pool0'; 90 GiB of 100 GiB "
            "are available (100 GiB capacity − 10 GiB reserved − 0 bytes "
            "allocated)")
    # Nothing of the refused requests was left behind.
    check(vms() == ["big"], vms())
    check(volumes() == [], volumes())
    r = res()
    check(r["vcpus"]["allocated"] == 12 and r["memory"]["allocated"] == GIB
          and r["disk"]["allocated"] == 0 and r["vms"] == 1, r)
    # What fits, fits exactly: the last 90 GiB of the pool.
    call("POST", V + "/storage/pools/pool0/volumes",
         {"name": "all", "size": 90 * GIB}, status=201)
    check(res()["disk"]["pools"][0]["available"] == 0, res())
    call("DELETE", V + "/storage/pools/pool0/volumes/all", status=204)

    # -- rollback frees: the second define fails -----------------------------
    st, _, v = d.request("POST", V + "/vms", spec("e", vcpus=2,
                                                   disks=[("vda", GIB)]))
    check(st == 502 and v["error"]["code"] == "IO_ERROR", st, v)
    r = res()
    check(r["vcpus"]["allocated"] == 12 and r["disk"]["allocated"] == 0 and
          r["vms"] == 1, "rollback did not free", r)
    check(vms() == ["big"] and volumes() == [], vms(), volumes())

    # -- 20 concurrent creates for the last 2 vCPUs --------------------------
    race(d, [spec(f"r{i}") for i in range(20)], V + "/vms", 2)
    check(res()["vcpus"]["available"] == 0, res())
    # -- 20 concurrent volume creates of 10 GiB for the pool's 90 GiB --------
    race(d, [{"name": f"v{i}", "size": 10 * GIB} for i in range(20)],
         V + "/storage/pools/pool0/volumes", 9)
    pool = res()["disk"]["pools"][0]
    check(pool["allocated"] == 90 * GIB and pool["available"] == 0, pool)

    # -- delete frees --------------------------------------------------------
    call("DELETE", V + "/vms/big", status=204)
    r = res()
    check(r["vcpus"]["allocated"] == 2 and r["vcpus"]["available"] == 12 and
          r["memory"]["allocated"] == 2 * (64 << 20) and r["vms"] == 2, r)

    # -- the gauges ----------------------------------------------------------
    st, _, text = d.request("GET", "/metrics")
    for line in ['vmhost_host_vcpus_allocated 2',
                 'vmhost_host_vcpus 16',
                 f'vmhost_host_memory_reserved_bytes {4 * GIB}',
                 f'vmhost_pool_capacity_bytes{{pool="pool0"}} {100 * GIB}',
                 '# TYPE vmhost_host_vcpus gauge']:
        check(line in text.splitlines(), "metrics lack", line)


def race(d, bodies, path, winners):
    """POST every body at once, each on its own connection: exactly
    `winners` get 201, the others 409 INSUFFICIENT_CAPACITY."""
    results = [None] * len(bodies)
    go = threading.Barrier(len(bodies))
    token = d.token()

    def one(i):
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
        c.connect()
        go.wait()
        c.request("POST", path, body=json.dumps(bodies[i]),
                  headers={"content-type": "application/json",
                           "authorization": f"Bearer {token}"})
        resp = c.getresponse()
        results[i] = (resp.status, json.loads(resp.read() or b"null"))
        c.close()

    threads = [threading.Thread(target=one, args=(i,))
               for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if r[0] == 201]
    lost = [r for r in results if r[0] == 409 and
            r[1]["error"]["code"] == "INSUFFICIENT_CAPACITY"]
    check(len(won) == winners and len(lost) == len(bodies) - winners,
          f"{path}: expected {winners} created and the rest refused:",
          results)


def restart_recomputes(d):
    d.stop()
    d.write_config(body(cpu="2.0", mem="1.5"), "  telemetry_interval: 1")
    d.start()
    st, _, r = d.request("GET", V + "/host/resources")
    check(st == 200, r)
    # Two VMs of 1 vCPU and 64 MiB from the records; the pool's 90 GiB
    # from the pool itself.
    check(r["vcpus"] == {"host_cpus": 16, "overcommit": 2.0, "total": 32,
                         "reserved": 2, "allocated": 2, "available": 28}, r)
    check(r["memory"]["total"] == 24 * GIB and
          r["memory"]["allocated"] == 128 << 20 and r["vms"] == 2, r)
    check(r["disk"]["pools"][0]["allocated"] == 90 * GIB, r)
    v = d.error("POST", V + "/vms", 409, "INSUFFICIENT_CAPACITY",
                spec("f", vcpus=29))
    check(v["error"]["message"] ==
          "VM 'f' needs 29 vCPUs; 28 of 32 are available (16 CPUs × 2.0 "
          "overcommit − 2 reserved − 2 allocated)", v)


def vm_usage(d):
    """A running mock VM's usage (deterministic: per second of running,
    1 MiB read and 256 KiB written per disk, 64 KiB in and 16 KiB out per
    NIC) in a live read and in the metrics."""
    vols = d.ok("GET", V + "/storage/pools/pool0/volumes")["volumes"]
    d.ok("DELETE", V + f"/storage/pools/pool0/volumes/{vols[0]['name']}",
         status=204)
    d.ok("POST", V + "/vms", {"name": "u", "vcpus": 1, "memory": 64 << 20,
                              "disks": [{"name": "vda", "size": GIB}],
                              "nics": [{"name": "net0"}]}, status=201)

    def live():
        v = d.ok("GET", V + "/vms/u?live=true")
        validate("GET", V + "/vms/u", 200, v)
        return v if v["disk_read_bytes"] > 0 else None

    v = wait_for(live, "a second of running")
    check(v["disk_read_bytes"] % (1 << 20) == 0 and
          v["disk_read_bytes"] == 4 * v["disk_write_bytes"] and
          v["net_rx_bytes"] == v["disk_read_bytes"] // 16 and
          v["net_rx_bytes"] == 4 * v["net_tx_bytes"] and
          v["memory_used"] == 32 << 20 and v["cpu_time_ns"] > 0, v)
    _, _, text = d.request("GET", "/metrics")
    line = (f'vmhost_vm_disk_read_bytes_total{{vm="u",id="{v["id"]}"}} '
            f'{v["disk_read_bytes"]}')
    check(line in text.splitlines(), "metrics lack", line)
    check("# TYPE vmhost_vm_cpu_seconds_total counter" in text, "no cpu")


def config_errors(tmp):
    """Each bad resources: is refused at --check-config with its place."""
    cases = [
        ("  cpu_overcommit: lots\n",
         "key 'cpu_overcommit': expected a ratio from 0.1 to 100 (a plain "
         "decimal such as 1.5), found 'lots'"),
        ("  memory_overcommit: 0.05\n", "found '0.05'"),
        ("  cpu_overcommit: 1.0001\n", "found '1.0001'"),
        ("  reserved_cpu: 2\n",
         "unknown key 'reserved_cpu' under resources (expected one of: "
         "reserved_cpus, reserved_memory, reserved_disk, cpu_overcommit, "
         "memory_overcommit)"),
        ("  reserved_disk: { pool9: 1G }\n",
         "resources.reserved_disk: no storage instance named 'pool9'"),
        ("  reserved_disk: [ 1G ]\n", "key 'reserved_disk': expected a size"),
        ("  reserved_memory: -1\n", "key 'reserved_memory'"),
    ]
    path = os.path.join(tmp, "bad.yaml")
    for text, message in cases:
        with open(path, "w") as f:
            f.write("resources:\n" + text + mocks())
        p = subprocess.run([VMHOSTD, "--check-config", "--config", path],
                           capture_output=True, text=True)
        check(p.returncode == 2 and message in p.stderr and
              "bad.yaml:" in p.stderr, text, p.returncode, p.stderr)
    # The defaults and a per-pool map pass.
    with open(path, "w") as f:
        f.write("resources:\n  reserved_disk: { pool0: 0 }\n"
                "  cpu_overcommit: 16\n" + mocks())
    p = subprocess.run([VMHOSTD, "--check-config", "--config", path],
                       capture_output=True, text=True)
    check(p.returncode == 0, p.stderr)


def telemetry(d):
    """GET /api/v1/host/metrics: the samples' shape and plausibility."""
    def metrics():
        st, _, v = d.request("GET", V + "/host/metrics")
        check(st == 200, st, v)
        validate("GET", V + "/host/metrics", st, v)
        return v

    # A sample taken after every change above (one taken while the
    # volumes were being made would show part of them), and one before it.
    after_us = time.time_ns() // 1000

    def fresh():
        m = metrics()
        return m if (m["sample"] and m["sample"]["time_us"] > after_us and
                     len(m["history"]) >= 2) else None

    m = wait_for(fresh, "a host sample taken after the changes")
    s = m["sample"]
    with open("/proc/meminfo") as f:
        total = int(next(x for x in f if x.startswith("MemTotal:")).split()[1])
    check(s["memory"]["total"] == total * 1024, s["memory"])
    check(s["memory"]["used"] + s["memory"]["available"] ==
          s["memory"]["total"], s["memory"])
    check(len(s["cpu"]["per_core"]) == os.cpu_count(), s["cpu"])
    check(0 <= s["cpu"]["usage"] <= 1 and s["interval_ms"] >= 900, s)
    check(s["load"]["load1"] >= 0, s["load"])
    fs = {f["name"]: f for f in s["filesystems"]}
    state = os.statvfs(os.path.join(d.tmpdir, "state"))
    check(fs["state"]["path"] == os.path.realpath(
        os.path.join(d.tmpdir, "state")) and
        fs["state"]["total"] == state.f_blocks * state.f_frsize, fs)
    check(fs["pool0"]["total"] == 100 * GIB and
          fs["pool0"]["used"] == 90 * GIB, fs)
    with open("/proc/net/dev") as f:
        names = {x.split(":")[0].strip() for x in f if ":" in x} - {"lo"}
    check({n["name"] for n in s["nics"]} <= names and
          all(n["rx_bytes_per_s"] * s["interval_ms"] // 1000 <= n["rx_bytes"]
              and n["tx_bytes_per_s"] * s["interval_ms"] // 1000 <=
              n["tx_bytes"] for n in s["nics"]),
          s["nics"], names)
    times = [h["time_us"] for h in m["history"]]
    check(times == sorted(times) and len(set(times)) == len(times), times)
    # A busy CPU shows: burn one until a sample says so.
    burn = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        wait_for(lambda: max(metrics()["sample"]["cpu"]["per_core"]) >= 0.5,
                 "a sample with a busy CPU")
    finally:
        burn.kill()
        burn.wait()


with RestDaemon(body=body(), daemon_yaml="  telemetry_interval: 1") as d:
    run(d)
    telemetry(d)
    restart_recomputes(d)
    vm_usage(d)
    config_errors(d.tmpdir)
print("ok")
