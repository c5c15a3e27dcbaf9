# SPDX-License-Identifier: LGPL-2.1-or-later
"""A private Open vSwitch for the OVS plugin's tests and benchmark: its own
ovsdb-server (database, socket, pid and log files in a directory of the
test's) and ovs-vswitchd with the userspace (netdev) datapath, running in
a network namespace the test made — these kernels have no openvswitch
module, and netdev ports are taps made in vswitchd's namespace.  Both are
stopped by PID.

    with Ovs(tmpdir, ns) as ovs:
        ovs.vsctl("add-br", "br0")
        ovs.restart_db()          # ovsdb-server stopped and started again
"""
import json
import os
import shutil
import signal
import subprocess
import time

import vmhtest

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
TOOLS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl")


def config(networks):
    """A vmhostd config body: the mock hypervisor and storage, and the
    networks given (YAML list items)."""
    return f"""
hypervisors:
  - {{ name: hv0, plugin: mock, max_vms: 100000 }}
storage:
  - {{ name: pool0, plugin: mock }}
networks:
{networks}
"""


def require():
    """Skip (a failure under CI) without the OVS tools or the library."""
    for t in TOOLS:
        if shutil.which(t) is None:
            vmhtest.skip(f"{t} not found (openvswitch-switch)")
    if not os.path.exists(SCHEMA):
        vmhtest.skip(f"{SCHEMA} not found (openvswitch-common)")


def wait_gone(pid, what, timeout=30):
    """Wait for a process we signalled to exit (a bound on waiting)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    vmhtest.fail(what, pid, "did not exit on SIGTERM")


class Ovs:
    def __init__(self, tmp, ns):
        self.dir = os.path.join(tmp, "ovs")
        self.ns = ns
        self.db = os.path.join(self.dir, "conf.db")
        self.sock = os.path.join(self.dir, "db.sock")
        self.remote = "unix:" + self.sock
        self.pids = {}
        os.makedirs(self.dir, exist_ok=True)

    def _pidfile(self, name):
        return os.path.join(self.dir, name + ".pid")

    def _daemon(self, name, args, wrapper=()):
        pidfile = self._pidfile(name)
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_DBDIR=self.dir,
                   OVS_LOGDIR=self.dir)
        r = subprocess.run([*wrapper, name, *args, "--pidfile=" + pidfile,
                            "--unixctl=" + os.path.join(self.dir, name + ".ctl"),
                            "--log-file=" + os.path.join(self.dir, name + ".log"),
                            "--detach", "--no-chdir"],
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            vmhtest.fail(name, "did not start:", r.stderr)
        with open(pidfile) as f:
            self.pids[name] = int(f.read())

    def start_db(self):
        """ovsdb-server on the database (made, with its Open_vSwitch row,
        the first time)."""
        new = not os.path.exists(self.db)
        if new:
            subprocess.run(["ovsdb-tool", "create", self.db, SCHEMA], check=True)
        self._daemon("ovsdb-server", [self.db, "--remote=punix:" + self.sock])
        if new:
            self.vsctl("--no-wait", "init")

    def stop(self, name):
        pid = self.pids.pop(name, None)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            wait_gone(pid, name)

    def restart_db(self):
        self.stop("ovsdb-server")
        self.start_db()

    def start(self):
        self.start_db()
        self._daemon("ovs-vswitchd", [self.remote], ["ip", "netns", "exec", self.ns])
        # Ready when it has applied the database once (what ovs-vsctl
        # waits for after every change).
        self.vsctl("--timeout=30", "wait-until", "Open_vSwitch", ".", "cur_cfg>=0")
        return self

    def close(self):
        for name in ("ovs-vswitchd", "ovsdb-server"):
            self.stop(name)

    def vsctl(self, *args, ok=True):
        r = subprocess.run(["ovs-vsctl", "--db=" + self.remote, *args],
                           capture_output=True, text=True)
        if ok and r.returncode != 0:
            vmhtest.fail("ovs-vsctl", *args, "->", r.stderr)
        return r.stdout.strip() if ok else r

    def find(self, table, *conditions, columns="_uuid,name"):
        """Rows of table as dicts (ovs-vsctl find, JSON), values decoded."""
        out = json.loads(self.vsctl("--format=json", "--columns=" + columns,
                                    "find", table, *conditions))
        return [{h: decode(v) for h, v in zip(out["headings"], row)}
                for row in out["data"]]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def decode(v):
    """OVSDB JSON: ["map", [[k, v]…]] → dict, ["set", […]] → list,
    ["uuid", u] → u."""
    if isinstance(v, list) and v and v[0] == "map":
        return {k: decode(x) for k, x in v[1]}
    if isinstance(v, list) and v and v[0] == "set":
        return [decode(x) for x in v[1]]
    if isinstance(v, list) and v and v[0] == "uuid":
        return v[1]
    return v
