#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The REST API on the mock backends, over HTTP/1.1: every route, a VM's
whole life, each error status, validation at the edge; every JSON answer
checked against openapi.yaml."""
import json

from resttest import RestDaemon, validate
from vmhtest import check, fail

V = "/api/v1"

with RestDaemon() as d:
    def call(method, path, body=None, status=200, raw=None, headers=None):
        st, hdrs, v = d.request(method, path, body, raw=raw, headers=headers)
        if st != status:
            fail(f"{method} {path}: expected {status}, got {st}:", v)
        if isinstance(v, (dict, list)):
            validate(method, path, st, v)
        return v

    def err(method, path, status, code, body=None, raw=None, headers=None):
        v = d.error(method, path, status, code, body, raw=raw, headers=headers)
        validate(method, path, status, v)
        return v

    # Host, daemon.
    h = call("GET", V + "/host")
    check(h["cpu_threads"] >= 1 and h["n_vms"] == 0, h)
    check(set(call("GET", V + "/host/hardware")) >= {"cpu_model", "arch"}, "hw")
    check(call("GET", V + "/host/metrics")["n_vms"] == 0, "host metrics")
    check(call("GET", V + "/host/health")["status"] == "ok", "health")
    names = {p["name"] for p in call("GET", V + "/plugins")["plugins"]}
    check({"mock", "rest", "ctl"} <= names, names)
    check(call("GET", "/healthz")["status"] == "alive", "healthz")
    check(call("GET", "/readyz")["status"] == "ready", "readyz")

    # Storage and networks.
    check([p["name"] for p in call("GET", V + "/storage/pools")["pools"]] ==
          ["pool0"], "pools")
    check(call("GET", V + "/storage/pools/pool0")["message"] is None,
          "no pool message")
    vol = call("POST", V + "/storage/pools/pool0/volumes",
               {"name": "data-1", "size": 1 << 30, "format": "raw"},
               status=201)
    check(vol["name"] == "data-1" and vol["capacity"] == 1 << 30, vol)
    check(vol["location"].startswith("file:///")
          and vol["location"].endswith("/data-1"), vol)
    check([v["name"] for v in
           call("GET", V + "/storage/pools/pool0/volumes")["volumes"]] ==
          ["data-1"], "volumes")
    call("GET", V + "/storage/pools/pool0/volumes/data-1")
    v2 = call("PATCH", V + "/storage/pools/pool0/volumes/data-1",
              {"size": 2 << 30})
    check(v2["capacity"] == 2 << 30, v2)
    err("PATCH", V + "/storage/pools/pool0/volumes/data-1", 400,
        "INVALID_ARGUMENT", {"size": 1 << 30, "grow": True})
    call("DELETE", V + "/storage/pools/pool0/volumes/data-1", status=204)
    err("GET", V + "/storage/pools/pool0/volumes/data-1", 404, "NOT_FOUND")
    err("GET", V + "/storage/pools/nope", 404, "NOT_FOUND")
    # The ABI's one name rule (vmh_name_valid) allows '.' and '_': a volume
    # so named is read, attached and deleted like any other (below).
    odd = V + "/storage/pools/pool0/volumes/data_2.img"
    call("POST", V + "/storage/pools/pool0/volumes",
         {"name": "data_2.img", "size": 1 << 20, "format": "raw"}, status=201)
    check([v["name"] for v in
           call("GET", V + "/storage/pools/pool0/volumes")["volumes"]] ==
          ["data_2.img"], "volume data_2.img listed")
    check(call("GET", odd)["name"] == "data_2.img", "volume data_2.img read")
    nets = call("GET", V + "/networks")["networks"]
    check([n["name"] for n in nets] == ["net0"], nets)
    call("GET", V + "/networks/net0")
    err("GET", V + "/networks/nope", 404, "NOT_FOUND")

    def listed():
        """The VM list, checked against each VM's own GET: the list is
        served again from a cache while no record changes, and must never
        lag behind a change."""
        vms = call("GET", V + "/vms")["vms"]
        for x in vms:
            one = call("GET", V + "/vms/" + x["id"])
            check(x == one, "the list lags behind:", x, one)
        # Pages of one are made of the same cached JSON.
        paged, token = [], ""
        while True:
            page = call("GET", V + "/vms?limit=1" +
                        (f"&page_token={token}" if token else ""))
            paged += page["vms"]
            token = page["next_page_token"]
            if not token:
                break
        check(paged == vms, "pages of one lag behind:", paged, vms)
        return vms

    # A VM's life.
    spec = {"name": "web-1", "vcpus": 2, "memory": 1 << 30,
            "disks": [{"name": "vda", "size": 1 << 30}],
            "nics": [{"name": "net0"}], "metadata": {"owner": "ops"}}
    vm = call("POST", V + "/vms", spec, status=201)
    check(vm["state"] == "running" and vm["status"] == "ready", vm)
    vid = vm["id"]
    check(call("GET", V + "/vms/" + vid)["name"] == "web-1", "by id")
    # The disk's source as the pool gave it, recorded by the core.
    src = vm["disks"][0]["source"]
    check(src and src["type"] == "file" and
          src["path"].endswith("/web-1-vda"), vm["disks"])
    live = call("GET", V + "/vms/web-1?live=true")
    check(live["id"] == vid and live["disks"] == vm["disks"], "live by name")
    check([x["id"] for x in listed()] == [vid], "list")
    err("POST", V + "/vms", 409, "ALREADY_EXISTS", spec)
    err("POST", V + "/vms/web-1/start", 409, "INVALID_STATE")
    check(call("POST", V + "/vms/web-1/pause")["state"] == "paused", "paused")
    check(listed()[0]["state"] == "paused", "paused in the list")
    check(call("POST", V + "/vms/web-1/resume")["state"] == "running", "resumed")
    check(listed()[0]["state"] == "running", "running in the list")
    r = call("POST", V + "/vms/web-1/reboot")
    check(r["state"] == "running", r)
    c = call("GET", V + "/vms/web-1/console")
    check(c["type"] in ("vnc", "spice", "serial"), c)
    check(call("POST", V + "/vms/web-1/stop", {"force": True, "timeout_s": 5})
          ["state"] == "stopped", "stopped")
    check(listed()[0]["state"] == "stopped", "stopped in the list")
    err("POST", V + "/vms/web-1/stop", 400, "INVALID_ARGUMENT",
        {"force": "yes"})
    err("POST", V + "/vms/web-1/start", 400, "INVALID_ARGUMENT", {"force": True})
    call("POST", V + "/vms/web-1/start")
    snap = call("POST", V + "/vms/web-1/snapshots", {"name": "before"},
                status=201)
    snaps = call("GET", V + "/vms/web-1/snapshots")["snapshots"]
    check([s["id"] for s in snaps] == [snap["id"]], snaps)
    # One snapshot, by id or name (what the operation's result href GETs).
    one = call("GET", f"{V}/vms/web-1/snapshots/{snap['id']}")
    check(one == snaps[0], one, snaps)
    check(call("GET", f"{V}/vms/{vid}/snapshots/before") == one, "by name")
    m = err("GET", V + "/vms/web-1/snapshots/after", 404, "NOT_FOUND")
    check("no snapshot 'after'" in m["error"]["message"], m)
    err("GET", V + "/vms/web-2/snapshots/before", 404, "NOT_FOUND")
    err("GET", V + "/vms/web-1/snapshots/a%20b", 400, "INVALID_ARGUMENT")
    err("GET", V + "/vms/web-1/snapshots/before?live=true", 400,
        "INVALID_ARGUMENT")
    st, _, _ = d.request("POST", f"{V}/vms/web-1/snapshots/{snap['id']}/revert")
    check(st in (200, 204), "revert", st)
    call("DELETE", f"{V}/vms/web-1/snapshots/{snap['id']}", status=204)
    err("DELETE", f"{V}/vms/web-1/snapshots/{snap['id']}", 404, "NOT_FOUND")
    err("GET", f"{V}/vms/web-1/snapshots/{snap['id']}", 404, "NOT_FOUND")
    st, _, v = d.request("POST", V + "/vms/web-1/disks",
                         {"name": "vdb", "size": 1 << 30})
    check(st in (200, 204), "attach", st, v)
    check(any(x["name"] == "vdb" for x in
              call("GET", V + "/vms/web-1")["disks"]), "vdb attached")
    check(any(x["name"] == "vdb" for x in listed()[0]["disks"]), "vdb listed")
    vdb = call("GET", V + "/vms/web-1?live=true")["disks"][1]
    check(vdb["source"] and vdb["source"]["path"].endswith("/web-1-vdb"), vdb)
    st, _, v = d.request("DELETE", V + "/vms/web-1/disks/vdb")
    check(st in (200, 204), "detach", st, v)
    st, _, v = d.request("POST", V + "/vms/web-1/disks",
                         {"name": "vdc", "pool": "pool0",
                          "volume": "data_2.img"})
    check(st in (200, 204), "attach data_2.img", st, v)
    err("DELETE", odd, 409, "BUSY")
    st, _, v = d.request("DELETE", V + "/vms/web-1/disks/vdc")
    check(st in (200, 204), "detach data_2.img", st, v)
    call("DELETE", odd, status=204)
    err("GET", odd, 404, "NOT_FOUND")
    call("DELETE", V + "/vms/web-1", status=204)
    err("GET", V + "/vms/web-1", 404, "NOT_FOUND")
    check(listed() == [], "none left")

    # Validation at the edge: 400 naming the field.
    def bad(body, field, raw=None, path=V + "/vms"):
        v = err("POST", path, 400, "INVALID_ARGUMENT", body, raw=raw,
                headers={"content-type": "application/json"})
        check(field in v["error"]["message"], field, v)

    bad({"name": "x", "colour": "red"}, "colour")
    bad({"name": "x", "vcpus": "two"}, "vcpus")
    bad({"name": "x", "vcpus": 0}, "vcpus")
    bad({"name": "x", "vcpus": 100000}, "vcpus")
    bad({"name": "x", "memory": 1}, "memory")
    bad({"name": "Bad_Name"}, "name")
    bad({"name": "-x"}, "name")
    bad({"name": "a" * 64}, "name")
    bad({"vcpus": 1}, "name")
    bad({"name": "x", "disks": [{"name": "vda", "size": -1}]}, "disks[0].size")
    bad({"name": "x", "disks": [{"name": "vda", "bus": 1}]}, "disks[0].bus")
    bad({"name": "x", "nics": [{"name": "n", "vlan": 5000}]}, "nics[0].vlan")
    bad({"name": "x", "nics": ["net0"]}, "nics[0]")
    bad({"name": "x", "metadata": {"k": 1}}, "metadata.k")
    bad({"name": "x", "start": "no"}, "start")
    bad(None, "malformed JSON", raw=b'{"name": "x",')
    bad(None, "malformed JSON", raw=b'{"name": "\xff\xfe"}')
    bad(None, "malformed JSON", raw=b'{"name": "a", "name": "b"}')
    bad(None, "object", raw=b'["x"]')
    bad({"name": "v", "size": "big"}, "size",
        path=V + "/storage/pools/pool0/volumes")
    err("GET", V + "/vms/Not_A_Name", 400, "INVALID_ARGUMENT")
    err("GET", V + "/vms?colour=red", 400, "INVALID_ARGUMENT")

    # 404, 405, 415, 413.
    err("GET", V + "/nothing", 404, "NOT_FOUND")
    err("GET", "/api/v2/vms", 404, "NOT_FOUND")
    err("PUT", V + "/vms", 405, "METHOD_NOT_ALLOWED")
    st, hdrs, _ = d.request("PUT", V + "/vms/web-9")
    check(st == 405 and hdrs.get("allow") == "GET, HEAD, DELETE, PATCH", hdrs)
    err("DELETE", V + "/host", 405, "METHOD_NOT_ALLOWED")
    err("POST", V + "/vms", 415, "UNSUPPORTED_MEDIA_TYPE", raw=b"name=x",
        headers={"content-type": "application/x-www-form-urlencoded"})
    err("POST", V + "/vms", 413, "PAYLOAD_TOO_LARGE",
        raw=json.dumps({"name": "x", "user_data": "y" * (2 << 20)}).encode(),
        headers={"content-type": "application/json"})
    # The connection after a 413 is closed; the daemon serves the next one.
    call("GET", V + "/host")

    # Metrics: the core's, then per-route counters and histograms.
    st, hdrs, text = d.get("/metrics")
    check(st == 200 and hdrs["content-type"].startswith("text/plain"), hdrs)
    check('vmhost_http_requests_total{instance="rest",method="POST",'
          'route="/api/v1/vms",code="201"} 1' in text, text[-2000:])
    check('vmhost_http_request_duration_seconds_bucket{instance="rest",'
          'method="GET",route="/api/v1/host",le="+Inf"}' in text, "histogram")
    check("vmhost_" in text.split("vmhost_http_")[0], "core metrics first")

    # One structured access-log line per request.
    log = d.log()
    check("access id=" in log and "route=/api/v1/vms/{}" in log and
          "status=404" in log, log[-3000:])
    rc = d.stop()
    check(rc == 0, "exit status", rc)
