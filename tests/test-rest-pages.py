#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Volumes, snapshots, pools and networks in pages (issue 20): ?limit= and
?page_token= over the backends' whole answers, in name order; a walk
through the pages is complete and without duplicates while objects are
created and deleted between pages (the token's own anchor included);
tokens refused when altered, or made for another list (another pool or
VM, another kind of object, the VM list, and a volume token on the VM
list); every answer checked against openapi.yaml."""
import random
import urllib.parse

from pagetest import TWO_POOLS, churned_walk
from resttest import RestDaemon, validate
from vmhtest import check, fail

V = "/api/v1"
Q = urllib.parse.quote


def spec_path(path):
    """The openapi path of a request's path."""
    p = path.split("?")[0].split("/")
    names = {"pools": "{pool}", "vms": "{vm}", "volumes": "{volume}"}
    for i in range(len(p) - 1):
        if p[i] in names and i + 1 < len(p) and p[i + 1] and \
                not (p[i] == "pools" and p[i - 1] != "storage"):
            p[i + 1] = names[p[i]]
    return "/".join(p)


with RestDaemon(body=TWO_POOLS) as d:
    def call(method, path, body=None, status=200):
        st, _, v = d.request(method, path, body)
        if st != status:
            fail(f"{method} {path}: expected {status}, got {st}:", v)
        if isinstance(v, dict):
            validate(method, spec_path(path), st, v)
        return v

    def refused(path, query, words):
        st, _, v = d.request("GET", f"{path}?{query}")
        check(st == 400 and v["error"]["code"] == "INVALID_ARGUMENT",
              path, query, st, v)
        check(words in v["error"]["message"], words, v)

    def walk(path, key, limit, between=None):
        """Every page, limit at a time: (names in order, pages)."""
        names, token, pages = [], None, 0
        while True:
            q = f"limit={limit}" + (f"&page_token={Q(token)}" if token else "")
            v = call("GET", f"{path}?{q}")
            got = [x["name"] for x in v[key]]
            check(len(got) <= limit and got == sorted(got), "a page", q, got)
            names += got
            pages += 1
            token = v["next_page_token"]
            if between:
                between(got)
            if not token:
                return names, pages

    def churn(path, key, limit, have, make, drop):
        return churned_walk(lambda between: walk(path, key, limit, between)[0],
                            have, make, drop)

    # -- volumes -------------------------------------------------------------
    rng = random.Random(20)
    P0 = V + "/storage/pools/pool0/volumes"
    P1 = V + "/storage/pools/pool1/volumes"

    def make_vol(name, path=P0):
        call("POST", path, {"name": name, "size": 1 << 20}, status=201)

    def drop_vol(name):
        st, _, v = d.request("DELETE", f"{P0}/{name}")
        check(st in (200, 204), "delete", name, st, v)

    vols = [f"vol-{i:03}" for i in range(40)]
    rng.shuffle(vols)  # creation order is not name order
    for n in vols:
        make_vol(n)
    make_vol("other", P1)
    v = call("GET", P0)
    check([x["name"] for x in v["volumes"]] == sorted(vols), "name order")
    check("next_page_token" not in v, "no token without limit", v)
    names, pages = walk(P0, "volumes", 7)
    check(names == sorted(vols) and pages == 6, "complete", pages, names)
    names, pages = walk(P0, "volumes", 40)
    check(names == sorted(vols) and pages == 1, "one page", pages)
    v = call("GET", P0 + "?limit=5000")
    check(len(v["volumes"]) == 40 and v["next_page_token"] == "", "big limit")
    churn(P0, "volumes", 5, vols, make_vol, drop_vol)

    # -- tokens --------------------------------------------------------------
    first = call("GET", P0 + "?limit=3")
    token = first["next_page_token"]
    check(len(token) == 120 and token.replace("-", "").replace("_", "")
          .isalnum(), token)
    rest = call("GET", f"{P0}?page_token={Q(token)}")["volumes"]
    everything = [x["name"] for x in call("GET", P0)["volumes"]]
    check([x["name"] for x in first["volumes"] + rest] == everything,
          "a token alone: pages of 1000")
    for i in (4, 30, 80, 119):
        c = "A" if token[i] != "A" else "B"
        refused(P0, "limit=3&page_token=" + Q(token[:i] + c + token[i + 1:]),
                "page_token was altered")
    refused(P0, "limit=3&page_token=" + Q(token[:-4]), "is not a token")
    refused(P0, "limit=3&page_token=garbage", "is not a token")
    refused(P1, "limit=3&page_token=" + Q(token), "another pool or VM")
    refused(V + "/networks", "limit=3&page_token=" + Q(token), "another list")
    refused(V + "/vms", "limit=3&page_token=" + Q(token), "another list")
    call("POST", V + "/vms", {"name": "a", "vcpus": 1, "memory": 1 << 28,
                              "start": False}, status=201)
    call("POST", V + "/vms", {"name": "b", "vcpus": 1, "memory": 1 << 28,
                              "start": False}, status=201)
    vm_token = call("GET", V + "/vms?limit=1")["next_page_token"]
    refused(P0, "limit=3&page_token=" + Q(vm_token), "another list")
    for q, words in (("limit=0", "'limit'"), ("limit=-1", "'limit'"),
                     ("limit=x", "'limit'"), ("limit=", "'limit'"),
                     ("colour=red", "unknown query parameter")):
        refused(P0, q, words)

    # -- snapshots -----------------------------------------------------------
    S = V + "/vms/a/snapshots"

    def make_snap(name):
        call("POST", S, {"name": name}, status=201)

    def drop_snap(name):
        st, _, v = d.request("DELETE", f"{S}/{name}")
        check(st in (200, 204), "delete", name, st, v)

    snaps = [f"s-{i:02}" for i in range(24)]
    rng.shuffle(snaps)
    for n in snaps:
        make_snap(n)
    check([x["name"] for x in call("GET", S)["snapshots"]] == sorted(snaps),
          "snapshots in name order")
    names, pages = walk(S, "snapshots", 5)
    check(names == sorted(snaps) and pages == 5, "snapshots complete", names)
    churn(S, "snapshots", 4, snaps, make_snap, drop_snap)
    token = call("GET", S + "?limit=2")["next_page_token"]
    refused(V + "/vms/b/snapshots", "limit=2&page_token=" + Q(token),
            "another pool or VM")
    refused(P0, "limit=2&page_token=" + Q(token), "another list")

    # -- pools and networks: the same pages ----------------------------------
    names, pages = walk(V + "/storage/pools", "pools", 1)
    check(names == ["pool0", "pool1"] and pages == 2, names, pages)
    names, pages = walk(V + "/networks", "networks", 1)
    check(names == ["net0", "net1"] and pages == 2, "in name order", names)
    check([x["name"] for x in call("GET", V + "/networks")["networks"]] ==
          ["net0", "net1"], "unpaged too")
print("ok")
