#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""PATCH /api/v1/vms/{vm} (issue 20): a VM's labels ("metadata") changed as
a JSON merge patch — a string sets, null removes, the rest stays; keys and
values checked as at create (Kubernetes-like keys, at most 128 labels),
nothing changed by a refused patch; the change saved (it survives a
restart), shown at once by GET, the list (its cached fragments) and the
?label= filter, and announced by a vm_updated event; ?wait=false runs it
as an operation; readers may not.  Answers are checked against
openapi.yaml."""
import json
import subprocess
import urllib.parse

from resttest import RestDaemon, require, validate
from vmhtest import check, fail

require("curl")
V = "/api/v1"
Q = urllib.parse.quote
MERGE = {"content-type": "application/merge-patch+json"}


with RestDaemon() as d:
    def call(method, path, body=None, status=200, token=True, headers=None):
        st, _, v = d.request(method, path, body, token=token, headers=headers)
        if st != status:
            fail(f"{method} {path}: expected {status}, got {st}:", v)
        validate(method, path.split("?")[0], st, v)
        return v

    def patch(vm, labels, status=200, headers=MERGE, token=True, query=""):
        return call("PATCH", f"{V}/vms/{vm}{query}", {"metadata": labels},
                    status=status, headers=headers, token=token)

    def refused(vm, body, words, status=400, code="INVALID_ARGUMENT",
                headers=MERGE):
        before = call("GET", f"{V}/vms/{vm}")["metadata"]
        st, _, v = d.request("PATCH", f"{V}/vms/{vm}", body, headers=headers)
        check(st == status and v["error"]["code"] == code, body, st, v)
        check(words in v["error"]["message"], words, v)
        validate("PATCH", V + "/vms/{vm}", st, v)
        check(call("GET", f"{V}/vms/{vm}")["metadata"] == before,
              "a refused patch changed nothing", body)

    def create(name, labels, status=201):
        return call("POST", V + "/vms", {"name": name, "vcpus": 1,
                                         "memory": 1 << 28, "start": False,
                                         "metadata": labels}, status=status)

    def listed(query=""):
        v = call("GET", f"{V}/vms" + (f"?{query}" if query else ""))
        return {x["name"]: x for x in v["vms"]}

    web = create("web", {"tier": "gold", "old": "x", "keep": "k"})
    create("db", {"tier": "gold"})
    listed()  # the fragments of both are cached now

    # -- merge semantics -------------------------------------------------------
    v = patch("web", {"tier": "silver", "old": None, "new": "1",
                      "never-there": None})
    want = {"tier": "silver", "keep": "k", "new": "1"}
    check(v["metadata"] == want, "merged", v["metadata"])
    check(call("GET", f"{V}/vms/{web['id']}")["metadata"] == want, "GET")
    check(listed()["web"]["metadata"] == want, "the list does not lag")
    check(listed()["db"]["metadata"] == {"tier": "gold"}, "others untouched")
    check(set(listed("label=tier=silver")) == {"web"}, "filter: new value")
    check(set(listed("label=tier=gold")) == {"db"}, "filter: old value gone")
    check(set(listed("label=old")) == set(), "filter: removed key")
    check(set(listed("label=new")) == {"web"}, "filter: added key")
    check(set(listed("label=tier!=silver")) == {"db"}, "filter: key!=value")
    check(set(listed("label=!new")) == {"db"}, "filter: !key")
    check(set(listed("label=tier!=gold&label=new")) == {"web"}, "both")
    check(set(listed(f"label={Q('tier!=silver')}&label=!old")) == {"db"},
          "escaped")
    token = call("GET", f"{V}/vms?limit=1&label=tier")["next_page_token"]
    check(token, "two VMs have a tier")
    st, _, v = d.request("GET", f"{V}/vms?limit=1&label=tier&label=!x&"
                         f"page_token={Q(token)}")
    check(st == 400 and "another filter" in v["error"]["message"], st, v)
    page = call("GET", f"{V}/vms?limit=1&label=new")
    check([x["metadata"] for x in page["vms"]] == [want], "a page", page)
    check(patch("web", {})["metadata"] == want, "an empty patch")
    # application/json is a merge patch too; by id as well as by name.
    v = patch(web["id"], {"example.com/role": "db", "a_b.c-d": "v"},
              headers=None)
    check(v["metadata"]["example.com/role"] == "db", v)
    patch("web", {"example.com/role": None, "a_b.c-d": None})

    # -- refusals: each names what to fix, and changes nothing ----------------
    for key in ("-lead", "trail-", "a" * 64, "sp ace", "Upper.COM/x", "/x",
                "a/", "a/b/c", "", "x=y", "é"):
        refused("web", {"metadata": {key: "v"}}, "key")
    refused("web", {"metadata": {"k": 1}}, "metadata.k")
    refused("web", {"metadata": {"k": ["v"]}}, "metadata.k")
    refused("web", {"metadata": ["k"]}, "'metadata' is required")
    refused("web", {"name": "other", "metadata": {}}, "'name' cannot")
    refused("web", {}, "'metadata' is required")
    refused("web", {"metadata": {"big": "v" * 65537}}, "65536")
    refused("web", {"metadata": {"k": "v"}}, "application/merge-patch+json",
            415, "UNSUPPORTED_MEDIA_TYPE", headers={"content-type":
                                                     "text/plain"})
    st, _, v = d.request("PATCH", f"{V}/vms/web", raw=b"{", headers=MERGE)
    check(st == 400 and "malformed JSON" in v["error"]["message"], v)
    st, _, v = d.request("PATCH", f"{V}/vms/nosuch", {"metadata": {"a": "b"}},
                         headers=MERGE)
    check(st == 404 and v["error"]["code"] == "NOT_FOUND", st, v)
    # At most 128 labels: 125 more fit beside the 3, 126 do not.
    many = {f"k{i}": str(i) for i in range(126)}
    refused("web", {"metadata": many}, "the limit is 128")
    del many["k125"]
    check(len(patch("web", many)["metadata"]) == 128, "128 labels")
    patch("web", {k: None for k in many})
    # Create follows the same key rule.
    st, _, v = d.request("POST", V + "/vms", {"name": "bad", "vcpus": 1,
                                              "memory": 1 << 28,
                                              "metadata": {"-x": "1"}})
    check(st == 400 and "key" in v["error"]["message"], "create: same rule",
          v)

    # -- roles -----------------------------------------------------------------
    st, _, v = d.request("POST", V + "/settings/tokens",
                         {"name": "watcher", "role": "reader"})
    reader = v["token"]
    st, _, v = d.request("PATCH", f"{V}/vms/web", {"metadata": {"a": "b"}},
                         headers=MERGE, token=reader)
    check(st == 403, "readers may not", st, v)

    # -- as an operation, and its event ----------------------------------------
    ev = subprocess.Popen(["curl", "-sN", "--max-time", "60", "-H",
                           d.auth_line(), d.base + V + "/events"],
                          stdout=subprocess.PIPE, text=True)
    try:
        first = ev.stdout.readline()
        check(first.startswith(": vmhostd events"), first)
        op = patch("web", {"stage": "queued"}, status=202,
                   query="?wait=false")
        check(op["kind"] == "vm.labels" and
          op["target"]["vm_id"] == web["id"], op)
        done = call("GET", f"{V}/operations/{op['id']}/wait?timeout=30")
        check(done["status"] == "succeeded", done)
        check(listed()["web"]["metadata"]["stage"] == "queued", "applied")
        event = None
        for line in ev.stdout:
            if line.startswith("event: vm_updated"):
                event = json.loads(ev.stdout.readline().partition(": ")[2])
                break
        check(event and event["vm_id"] == web["id"] and
              event["object"] == "labels", "vm_updated event", event)
    finally:
        ev.terminate()
        ev.wait()

    # -- saved: a restart keeps them -------------------------------------------
    want = call("GET", f"{V}/vms/web")["metadata"]
    d.stop()
    d.start()
    check(call("GET", f"{V}/vms/web")["metadata"] == want, "after a restart")
    check(set(listed(f"label={Q('stage=queued')}")) == {"web"},
          "filter after a restart")
print("ok")
