#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Signals: SIGTERM drains an operation in flight before exiting 0; a
drain deadline bounds the wait; SIGHUP reopens the log file (rotation) and
re-reads the log levels; JSON log lines are valid JSON."""
import json
import os
import signal
import threading
import time

from vmhtest import Daemon, quiet_call, check, mocks, vm_spec

# SIGTERM while a create is in flight: it completes, then exit 0.
with Daemon(mocks(hv=", latency: { define: 1s }")) as d:
    result = {}
    t = threading.Thread(target=lambda: result.update(
        d.call(op="vm_create", spec=vm_spec("slow"))))
    t.start()
    time.sleep(0.3)  # the create is inside define now
    rc = d.stop()
    t.join(10)
    check(rc == 0, "exit 0 after draining, got", rc)
    check(result.get("code") == 0, "the in-flight create finished:", result)
    check("draining" in d.log() and "vmhostd stopped" in d.log(), d.log())

# The drain deadline bounds the wait.
with Daemon(mocks(hv=", latency: { define: 10s }"),
            daemon_yaml="  drain_timeout: 1") as d:
    t = threading.Thread(target=lambda: quiet_call(d, op="vm_create", spec=vm_spec("slower")))
    t.daemon = True
    t.start()
    time.sleep(0.3)
    rc = d.stop()
    check(rc == 0, "exit 0 at the deadline")
    check("drain deadline passed: 1 running task(s) abandoned" in d.log(), d.log())

# Work still queued at the deadline is answered "canceled", never left
# hanging: one worker is busy with a slow create, a second create waits.
with Daemon(mocks(hv=", latency: { define: 10s }"),
            daemon_yaml="  workers: 1\n  drain_timeout: 1") as d:
    first = threading.Thread(target=lambda: quiet_call(d, op="vm_create", spec=vm_spec("busy")))
    first.daemon = True
    first.start()
    time.sleep(0.3)
    second = {}
    t = threading.Thread(target=lambda: second.update(
        quiet_call(d, op="vm_create", spec=vm_spec("queued")) or {}))
    t.start()
    time.sleep(0.3)
    check(d.stop() == 0, "exit 0")
    t.join(10)
    check(second.get("error") == "canceled", "the queued create was cancelled:", second)
    check("stopped before the create could run" in second.get("message", ""), second)

# SIGHUP: log rotation and levels; JSON lines.
d = Daemon(mocks())
log2 = os.path.join(d.tmp, "file.log")
d.write_config(mocks(), "")
with open(d.config) as f:
    text = f.read()
text = text.replace("  log: { level: debug }",
                    f"  log: {{ level: info, format: json, file: {log2} }}")
with open(d.config, "w") as f:
    f.write(text)
d.start(wait_ready=False)
deadline = time.time() + 20
while time.time() < deadline and not (os.path.exists(log2) and "vmhostd ready" in open(log2).read()):
    time.sleep(0.02)
lines = open(log2).read().splitlines()
check(lines, "the log file has lines")
for line in lines:
    obj = json.loads(line)
    check({"time", "level", "source", "msg"} <= obj.keys(), obj)
os.rename(log2, log2 + ".1")
with open(d.config, "w") as f:
    f.write(text.replace("level: info", "level: debug"))
d.proc.send_signal(signal.SIGHUP)
deadline = time.time() + 20
while time.time() < deadline and not os.path.exists(log2):
    time.sleep(0.02)
check(os.path.exists(log2), "SIGHUP reopened the log at its path")
d.ok(op="vm_create", spec=vm_spec("after-hup"))
new = open(log2).read()
check('"level":"debug"' in new.replace(" ", ""), "debug level after SIGHUP:\n" + new)
check("after-hup" in new, new)
check(d.stop() == 0)
