#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`vmhostd --check-config` reports every mistake in one run: the file's
(core keys, instance names, unknown keys, ranges), a plugin that does not
exist (named with the plugins that do, not a directory list) and each
instance's unknown keys (with the key the plugin asked for that they
misspell).  A start on that file refuses with the same lines.  Listen
addresses: a port outside 0..65535 is refused at the check, and a listener
on port 0 logs the port the kernel chose."""
import os
import re
import subprocess
import tempfile

from resttest import RestDaemon
from vmhtest import VMHOSTD, check

tmp = tempfile.mkdtemp(prefix="vmhcheck.")


def vmhostd(text, *args):
    path = os.path.join(tmp, "c.yaml")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([VMHOSTD, *args, "--config", path],
                       capture_output=True, text=True, timeout=120)
    return r, path


SEVEN = f"""daemon:
  state_dir: {tmp}/state
  wokrers: 4
  drain_timeout: 99999
  log:
    level: loud
hypervisors:
  - name: hv0
    plugin: mock
    max_vcpu: 4
storage:
  - name: pool0
    plugin: mock
    sed: 3
networks:
  - name: net0
    plugin: mokc
  - name: Net1
    plugin: mock
bogus: 1
"""
WANT = [
    ":3:3: unknown key 'wokrers' under daemon (expected one of: ",
    "did you mean 'workers'?",
    ":4:3: key 'drain_timeout': 99999 is out of range 0..3600",
    ":6:5: key 'level': expected one of error, warn, info, debug, found "
    "'loud'",
    ":18:5: key 'name': 'Net1' is not a valid instance name",
    ":20:1: unknown key 'bogus' at the top level",
    ":16:5: network 'net0': no plugin 'mokc' (kind network); available: ",
    ":14:5: unknown key 'sed' for plugin 'mock' (storage 'pool0'); did you "
    "mean 'seed'?",
    ":10:5: unknown key 'max_vcpu' for plugin 'mock' (hypervisor 'hv0'); did "
    "you mean 'max_vcpus'?",
]

for args in (["--check-config"], []):
    r, path = vmhostd(SEVEN, *args)
    what = " ".join(args) or "a start"
    check(r.returncode == 2, what, "exit", r.returncode, r.stderr)
    lines = [x for x in r.stderr.splitlines() if "error: " in x]
    for w in WANT:
        check(sum(w in x for x in lines) == 1, what, "does not say once:", w,
              "\n" + r.stderr)
    check(len(lines) == 8, what, "reports", len(lines), "errors, not 8:\n" +
          r.stderr)
    check(f"vmhostd: 8 errors in {path}" in r.stderr, r.stderr)
    at = [int(re.search(r"\.yaml:(\d+):", x).group(1)) for x in lines]
    check(at == sorted(at), "not in the order of the file:", at)
    # The plugins that exist, not where they were looked for.
    m = re.search(r"available: ([a-z0-9._, -]+); did you mean 'mock'\?",
                  r.stderr)
    check(m and "mock" in m.group(1).split(", "), r.stderr)
    check("plugin directory" not in r.stderr and len(r.stderr) < 4000,
          r.stderr)
    check(not os.path.exists(os.path.join(tmp, "state")),
          what, "made the state dir")

# One mistake: one line, no count.
r, _ = vmhostd(f"daemon:\n  state_dir: {tmp}/state\n  workers: 0\n",
               "--check-config")
check(r.returncode == 2 and r.stderr.count("error: ") == 1 and
      "errors in" not in r.stderr, r.stderr)


# Listen addresses: ports are checked at --check-config.
def rest(address):
    return f"""daemon:
  state_dir: {tmp}/state
frontends:
  - name: rest
    plugin: rest
    listen:
      - {{ address: "{address}" }}
"""


for bad, why in (("127.0.0.1:80800", "0 (any free port) to 65535"),
                 ("127.0.0.1:-1", "0 (any free port) to 65535"),
                 ("127.0.0.1:", "0 (any free port) to 65535"),
                 ("127.0.0.1:http", "0 (any free port) to 65535"),
                 ("[::1]:123456", "0 (any free port) to 65535"),
                 ("::1:8080", "in brackets"),
                 ("localhost", "host:port")):
    r, _ = vmhostd(rest(bad), "--check-config")
    check(r.returncode == 2 and f"listener '{bad}'" in r.stderr and
          why in r.stderr, bad, r.returncode, r.stderr)
r, _ = vmhostd(rest("127.0.0.1:8080"), "--check-config")
check(r.returncode == 0, r.stderr)


# Other addresses with ports, in the plugins this build has.
def built(kind, name):
    dirs = os.environ.get("VMHOST_PLUGIN_DIR", "").split(":")
    return any(os.path.exists(os.path.join(d, f"{kind}-{name}.so"))
               for d in dirs if d)


if built("network", "ovs"):
    r, _ = vmhostd(f"""daemon:
  state_dir: {tmp}/state
networks:
  - {{ name: o, plugin: ovs, bridge: br-x, ovsdb: "tcp:127.0.0.1:99999" }}
""", "--check-config")
    check(r.returncode == 2 and "1 to 65535" in r.stderr, r.stderr)
if built("storage", "rbd"):
    r, _ = vmhostd(f"""daemon:
  state_dir: {tmp}/state
storage:
  - {{ name: c, plugin: rbd, pool: vms, key_file: /etc/hostname,
      monitors: ["v2:10.0.0.1:99999"] }}
""", "--check-config")
    check(r.returncode == 2 and "monitor '10.0.0.1:99999'" in r.stderr and
          "1 to 65535" in r.stderr, r.stderr)

# Port 0: the log names the port the kernel chose, which answers.
with RestDaemon(rest='      - { address: "127.0.0.1:0" }',
                listen_extra=True) as d:
    m = re.search(r"listening on 127\.0\.0\.1:(\d+) \(configured as "
                  r"127\.0\.0\.1:0\)", d.log())
    check(m and int(m.group(1)) > 0, "no chosen port in the log")
    d.port = int(m.group(1))
    st, _, v = d.request("GET", "/healthz", token=False)
    check(st == 200, "the logged port does not answer:", st, v)
    check(d.stop() == 0)
print("ok")
