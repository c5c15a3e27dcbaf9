# SPDX-License-Identifier: LGPL-2.1-or-later
"""A throwaway iSCSI target for the iscsi plugin's tests and benchmarks:
tgtd on 127.0.0.1 and a free port, with a private management socket
(TGT_IPC_SOCKET), its targets and LUNs made with tgtadm, stopped by PID.

tgtd ignores SIGTERM: it is stopped by deleting its targets and then the
"system" through tgtadm, with SIGKILL by PID as the fallback (a later
start copes with the stale socket files).  A target whose LU still runs a
command cannot be deleted ("this logical unit is still active"), and then
neither can the system: tgtd's WRITE SAME writes one block per pwrite(),
so a wipe's WRITE SAME of 65535 blocks keeps the LU busy for a while.
stop() therefore takes the targets offline first (new commands get BUSY)
and deletes each once its LU is idle.  LUN 0 of every target is tgtd's
controller; disks are LUN 1 and up.

    with Tgtd(tmp) as t:
        tid = t.target("iqn.2024-01.test:a")
        t.lun(tid, 1, 64 << 20)
"""
import os
import shutil
import socket
import subprocess
import sys
import time

from vmhtest import check, free_port, skip


def require_iscsi():
    """Skip (fail under CI) unless tgtd and libiscsi's tools are here."""
    for tool, pkg in (("tgtd", "tgt"), ("tgtadm", "tgt"),
                      ("iscsi-ls", "libiscsi-bin"),
                      ("iscsi-inq", "libiscsi-bin")):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            skip(f"no {tool} ({pkg})")
    if os.geteuid() != 0:
        skip("tgtd runs as root")


class Tgtd:
    """One tgtd with every file under `root` (made if missing)."""

    def __init__(self, root, port=None):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.env = dict(os.environ, TGT_IPC_SOCKET=os.path.join(root, "tgtd.sock"))
        self.port = port
        self.proc = None
        self.tids = []

    @property
    def portal(self):
        return f"127.0.0.1:{self.port}"

    def adm(self, *args, ok=True):
        r = subprocess.run(["tgtadm", "--lld", "iscsi", *args], env=self.env,
                           capture_output=True, text=True)
        if ok:
            check(r.returncode == 0, "tgtadm", " ".join(args), "->",
                  r.stdout, r.stderr)
        return r

    def start(self, timeout=30):
        """Starts tgtd (on a new free port unless one was given or used
        before) and waits until it answers tgtadm and accepts
        connections."""
        for _ in range(5):
            if self.port is None:
                self.port = free_port()
            log = open(os.path.join(self.root, "tgtd.log"), "a")
            self.proc = subprocess.Popen(
                ["tgtd", "-f", "--iscsi", f"portal={self.portal}"],
                env=self.env, stdout=log, stderr=log)
            log.close()
            if self._wait_ready(timeout):
                return self
            self.proc.wait()
            self.port = None   # lost the port to someone else: another
        check(False, "tgtd did not start:", self.log())

    def _wait_ready(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.adm("--mode", "sys", "--op", "show",
                        ok=False).returncode == 0:
                try:
                    socket.create_connection(("127.0.0.1", self.port),
                                             1).close()
                    return True
                except OSError:
                    pass
            time.sleep(0.05)
        return False

    def log(self):
        with open(os.path.join(self.root, "tgtd.log"), errors="replace") as f:
            return f.read()

    def target(self, iqn, allow="ALL"):
        """A new target; allow: an initiator address for the ACL, None for
        no address rule (then bind names with allow_name).  Its tid."""
        tid = max(self.tids, default=0) + 1
        self.adm("--mode", "target", "--op", "new", "--tid", str(tid),
                 "--targetname", iqn)
        if allow:
            self.adm("--mode", "target", "--op", "bind", "--tid", str(tid),
                     "--initiator-address", allow)
        self.tids.append(tid)
        return tid

    def allow_name(self, tid, initiator):
        self.adm("--mode", "target", "--op", "bind", "--tid", str(tid),
                 "--initiator-name", initiator)

    def chap(self, tid, user, password):
        """CHAP for the target: an account bound to it."""
        self.adm("--mode", "account", "--op", "new", "--user", user,
                 "--password", password)
        self.adm("--mode", "account", "--op", "bind", "--tid", str(tid),
                 "--user", user)

    def lun(self, tid, lun, size, create=True):
        """A LUN backed by a sparse file of size bytes (made anew unless
        create is False: then the file of an earlier lun() is used
        again); its path."""
        path = os.path.join(self.root, f"t{tid}-lun{lun}.img")
        if create:
            with open(path, "wb") as f:
                f.truncate(size)
        self.adm("--mode", "logicalunit", "--op", "new", "--tid", str(tid),
                 "--lun", str(lun), "--backing-store", path)
        return path

    def drop_lun(self, tid, lun):
        self.adm("--mode", "logicalunit", "--op", "delete", "--tid", str(tid),
                 "--lun", str(lun))

    def _delete_target(self, tid, timeout=30):
        """Deletes target tid once no command runs on its LUs (offline:
        none starts); the last tgtadm answer."""
        self.adm("--mode", "target", "--op", "update", "--tid", str(tid),
                 "--name", "state", "--value", "offline", ok=False)
        deadline = time.time() + timeout
        while True:
            r = self.adm("--mode", "target", "--op", "delete", "--force",
                         "--tid", str(tid), ok=False)
            if "still active" not in r.stderr or time.time() > deadline:
                return r
            time.sleep(0.05)

    def stop(self):
        """Deletes the targets and the system (tgtd then exits); SIGKILL
        by PID if it does not.  The targets are gone: a start() after
        this one makes them again."""
        if self.proc is None:
            return
        out = [self._delete_target(tid) for tid in self.tids]
        self.tids = []
        out.append(subprocess.run(["tgtadm", "--op", "delete", "--mode",
                                   "system"], env=self.env,
                                  capture_output=True, text=True))
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            print("tgtd still alive: SIGKILL;", [(r.returncode, r.stderr)
                                                 for r in out],
                  file=sys.stderr)
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
