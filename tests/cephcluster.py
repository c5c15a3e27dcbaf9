# SPDX-License-Identifier: LGPL-2.1-or-later
"""A throwaway Ceph cluster for the rbd plugin's tests and benchmarks: one
monitor and one memstore OSD (data in RAM, 1 GiB at most) on 127.0.0.1,
msgr2 only, cephx on, no mgr, every file under one directory; stopped by
PID (SIGTERM, then SIGKILL).

    with Ceph(tmp) as c:
        c.pool("vmh")                   # a pool initialised for RBD
        key = c.user("vmhost", "vmh")   # a client with `profile rbd`
        c.key_file("vmhost", "vmh", path)   # the same, its key in a file

The monitor's port comes from free_port(); the OSD picks its own within a
range of 100 ports chosen for this cluster.  The paxos settings make a new
cluster ready in ~4 s instead of ~10 s.  The OSD saves its memstore on a
clean stop (osd fast shutdown off), so stop_osd()/start_osd() keep the
data.  A client that dies lets go of the images it had open after 5 s
(osd client watch timeout; 30 s by default).  Without a mgr, usage statistics read as zero (rados_cluster_stat).
CEPH_ARGS / CEPH_KEYRING are removed from the environment of every
command here (librados reads them)."""
import os
import random
import shutil
import signal
import subprocess
import time
import uuid

from vmhtest import check, fail, free_port, skip

CONF = """[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{port}
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
ms bind port min = {lo}
ms bind port max = {hi}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = {d}/keyring
run dir = {d}/run
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
log file = {d}/log/$name.log
crash dir = {d}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
[mon]
mon data = {d}/mon/$cluster-$id
mon cluster log file = {d}/log/$cluster.$channel.log
paxos propose interval = 0.1
paxos min wait = 0.01
[osd]
osd data = {d}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = 1073741824
osd fast shutdown = false
osd client watch timeout = 5
"""


def require_ceph():
    """Skip (fail under CI) unless a monitor, an OSD and the tools are
    here, and we are root."""
    for tool, pkg in (("ceph-mon", "ceph-mon"), ("ceph-osd", "ceph-osd"),
                      ("ceph", "ceph-common"), ("rbd", "ceph-common"),
                      ("ceph-authtool", "ceph-common"),
                      ("monmaptool", "ceph-base")):
        if not shutil.which(tool) and not os.path.exists("/usr/bin/" + tool):
            skip(f"no {tool} ({pkg})")
    if os.geteuid() != 0:
        skip("the Ceph daemons run as root here")


class Ceph:
    """One mon + one OSD with every file under `root` (made if missing)."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.conf = os.path.join(self.root, "ceph.conf")
        self.port = None
        self.procs = {}
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("CEPH_ARGS", "CEPH_KEYRING")}
        self.env["CEPH_CONF"] = self.conf

    @property
    def monitor(self):
        return f"127.0.0.1:{self.port}"

    def run(self, *argv, ok=True, timeout=60, **kw):
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                           timeout=timeout, **kw)
        if ok:
            check(r.returncode == 0, " ".join(argv), "->", r.stdout, r.stderr)
        return r

    def _daemon(self, name, argv):
        log = open(os.path.join(self.root, "log", name + ".stdout"), "a")
        self.procs[name] = subprocess.Popen(argv, env=self.env, stdout=log,
                                            stderr=log)
        log.close()

    def _wait(self, what, cond, name, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.procs[name].poll() is not None:
                fail(f"ceph {name} exited", self.procs[name].returncode,
                     self.log(name))
            if cond():
                return
            time.sleep(0.1)
        fail(f"ceph: {what} not within {timeout} s:", self.log(name))

    def log(self, name):
        with open(os.path.join(self.root, "log", name + ".stdout"),
                  errors="replace") as f:
            return f.read()

    def start(self):
        """Makes the cluster (monitor, OSD) and waits until the OSD is up."""
        for sub in ("mon/ceph-a", "osd/ceph-0", "run", "log", "crash"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        fsid = str(uuid.uuid4())
        self.port = free_port()
        lo = random.randrange(20000, 30000, 100)
        with open(self.conf, "w") as f:
            f.write(CONF.format(fsid=fsid, port=self.port, lo=lo, hi=lo + 99,
                                d=self.root))
        keyring = os.path.join(self.root, "keyring")
        self.run("ceph-authtool", "--create-keyring", keyring, "--gen-key",
                 "-n", "mon.", "--cap", "mon", "allow *")
        self.run("ceph-authtool", keyring, "--gen-key", "-n", "client.admin",
                 "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                 "--cap", "mgr", "allow *")
        self.run("ceph-authtool", keyring, "--gen-key", "-n", "osd.0",
                 "--cap", "mon", "allow profile osd", "--cap", "osd",
                 "allow *")
        monmap = os.path.join(self.root, "monmap")
        self.run("monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                 f"[v2:{self.monitor}]", monmap)
        self.run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap)
        self.start_mon()
        osd_uuid = str(uuid.uuid4())
        check(self.run("ceph", "osd", "new", osd_uuid).stdout.strip() == "0",
              "osd id")
        self.run("ceph-osd", "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        self.start_osd()
        # Clone v2: clones of an unprotected snapshot.
        self.run("ceph", "osd", "set-require-min-compat-client", "mimic")
        return self

    def start_mon(self):
        self._daemon("mon", ["ceph-mon", "-f", "-i", "a"])
        self._wait("the monitor", lambda: self.run(
            "ceph", "--connect-timeout", "2", "mon", "stat", ok=False,
            timeout=10).returncode == 0, "mon")

    def start_osd(self):
        self._daemon("osd", ["ceph-osd", "-f", "-i", "0"])
        self._wait("osd.0 up", lambda: any(
            line.startswith("osd.0 up") for line in
            self.run("ceph", "osd", "dump", ok=False).stdout.splitlines()),
            "osd")

    def pool(self, name):
        """A pool initialised for RBD; returns when its PGs take writes."""
        self.run("ceph", "osd", "pool", "create", name, "8", "8")
        self.run("rbd", "pool", "init", name, timeout=120)

    def user(self, name, pool):
        """A cephx client with the rbd profiles on pool; its key (base64)."""
        self.run("ceph", "auth", "get-or-create", f"client.{name}", "mon",
                 "profile rbd", "osd", f"profile rbd pool={pool}")
        return self.run("ceph", "auth", "get-key",
                        f"client.{name}").stdout.strip()

    def key_file(self, name, pool, path):
        """user(name, pool), its key written to path (mode 0600, as the
        plugin wants it); the key."""
        key = self.user(name, pool)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                          0o600), "w") as f:
            f.write(key + "\n")
        return key

    def rbd(self, *args, ok=True):
        """The rbd tool as client.admin (output as text; give --no-progress
        to the commands that take it)."""
        return self.run("rbd", *args, ok=ok, timeout=120)

    def stop_one(self, name):
        p = self.procs.pop(name, None)
        if p is None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop_osd(self):
        self.stop_one("osd")

    def stop_mon(self):
        self.stop_one("mon")

    def stop(self):
        """Stops the OSD, then the monitor (by PID)."""
        self.stop_one("osd")
        self.stop_one("mon")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
