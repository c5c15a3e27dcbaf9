#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The REST front-end at SIGTERM: a request in flight in a slow backend
still gets its answer, events streams end cleanly, the I/O thread never
waited on the backend meanwhile (other requests were answered during the
slow one), and vmhostd exits 0."""
import http.client
import json
import subprocess
import threading
import time

from resttest import RestDaemon, require
from vmhtest import check, mocks

require("curl")

with RestDaemon(body=mocks(hv=", latency: { define: 1500ms }")) as d:
    events = subprocess.Popen(["curl", "-sN", "-H", d.auth_line(),
                               "--http2-prior-knowledge",
                               d.base + "/api/v1/events"],
                              stdout=subprocess.PIPE, text=True)
    check(events.stdout.readline().startswith(": vmhostd events"), "events")

    result = {}

    def create():
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        c.request("POST", "/api/v1/vms", json.dumps(
            {"name": "slow-1", "vcpus": 1, "memory": 1 << 30}),
            {"content-type": "application/json", **d.auth()})
        r = c.getresponse()
        result["status"] = r.status
        result["body"] = json.loads(r.read())

    t = threading.Thread(target=create)
    t.start()
    time.sleep(0.3)
    # The slow define does not hold the I/O thread: others are answered.
    t0 = time.time()
    for _ in range(20):
        d.ok("GET", "/api/v1/host")
    check(time.time() - t0 < 1.0, "answers waited on the backend")

    d.proc.send_signal(15)
    t.join(30)
    check(result.get("status") == 201, "in-flight create lost", result)
    check(result["body"]["name"] == "slow-1", result)
    out = events.communicate(timeout=30)[0]
    check("vm_created" in out, "events stream did not end cleanly", out)
    rc = d.proc.wait(30)
    d.proc = None
    d.log_f.close()
    check(rc == 0, "exit status", rc)
