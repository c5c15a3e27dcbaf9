# SPDX-License-Identifier: LGPL-2.1-or-later
"""A throwaway NFS server for the nfs plugin's tests and benchmarks:
nfs-ganesha (FSAL_VFS) exporting a directory, with a private rpcbind.

QEMU's NFS driver (qemu-img, and QEMU under libvirt) finds the server's
ports through the portmapper on port 111, and ganesha will not start
unless it can register NFSv3 with one.  So each test FILE runs in a network
and mount namespace of its own (enter_namespace(): the test re-executes
itself under `unshare --net --mount`): rpcbind listens on that namespace's
port 111, ganesha on port 2049 of 127.0.0.1 and ::1, and vmhostd, qemu-img and the private
libvirtd the test starts see them and nothing else; /run is a private
tmpfs there, so rpcbind's socket and lock stay private too.  Everything is
stopped by PID.

    enter_namespace()            # first thing in the test
    g = Ganesha(root).start()    # exports root/export as /export
    g.stop(); g.start()          # the server goes away and comes back
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from vmhtest import IMAGE_SOURCES, check, skip, skip_unsupported

INNER = "VMHOST_NFS_NAMESPACE"


def require_nfs():
    """Skip (fail under CI) unless ganesha, rpcbind and libnfs's tools are
    here, and we are root."""
    for tool, pkg in (("ganesha.nfsd", "nfs-ganesha"), ("rpcbind", "rpcbind"),
                      ("nfs-cat", "libnfs-utils"), ("unshare", "util-linux")):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            skip(f"no {tool} ({pkg})")
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so") \
            and not any("libfsalvfs" in f for _, _, fs in
                        os.walk("/usr/lib") for f in fs):
        skip("no ganesha FSAL_VFS (nfs-ganesha-vfs)")
    if os.geteuid() != 0:
        skip("ganesha and rpcbind run as root")


def enter_namespace():
    """Re-executes this test inside new network and mount namespaces (once),
    then sets them up: loopback up with a second address of each family
    (getaddrinfo's AI_ADDRCONFIG ignores 127.0.0.1 and ::1, and ganesha
    resolves its bind address with it), a private tmpfs on /run."""
    require_nfs()
    if os.environ.get(INNER) != str(os.getppid()):
        env = dict(os.environ, **{INNER: str(os.getpid())})
        r = subprocess.run(["unshare", "--net", "--mount", "--propagation",
                            "private", "true"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            skip_unsupported("network and mount namespaces cannot be made "
                             f"here ({r.stderr.strip()})")
        # unshare execs the program: its pid is our child's.
        proc = subprocess.Popen(["unshare", "--net", "--mount",
                                 "--propagation", "private", "--",
                                 sys.executable] + sys.argv, env=env)
        sys.exit(proc.wait())
    for cmd in (["ip", "link", "set", "lo", "up"],
                ["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"],
                ["ip", "addr", "add", "2001:db8::1/128", "dev", "lo"],
                ["mount", "-t", "tmpfs", "-o", "size=16m,mode=755", "tmpfs",
                 "/run"]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        check(r.returncode == 0, " ".join(cmd), r.stderr)


def add_hosts(names):
    """Host names for this namespace only ({name: address}): /etc/hosts
    and these lines, bind-mounted over /etc/hosts in the private mount
    namespace (enter_namespace first)."""
    if not os.path.exists("/etc/hosts"):  # a bare chroot may have none
        open("/etc/hosts", "w").close()
    path = os.path.join("/run", "hosts")
    with open("/etc/hosts") as f, open(path, "w") as out:
        out.write(f.read())
        out.writelines(f"{addr} {name}\n" for name, addr in names.items())
    r = subprocess.run(["mount", "--bind", path, "/etc/hosts"],
                       capture_output=True, text=True)
    check(r.returncode == 0, "mount --bind", path, "/etc/hosts", r.stderr)


# Bind_addr ::, a dual-stack socket: the server answers on IPv4 and IPv6.
CONF = """NFS_CORE_PARAM {{
    Bind_addr = ::;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Protocols = 3, 4;
    Mount_Path_Pseudo = true;
}}
NFSV4 {{
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = {root}/recov;
    Only_Numeric_Owners = true;
}}
LOG {{ Default_Log_Level = EVENT; }}
"""
EXPORT = """EXPORT {{
    Export_Id = {id};
    Path = {root}/{name};
    Pseudo = /{name};
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
"""


class Ganesha:
    """ganesha exporting root/export as /export on 127.0.0.1 (port 2049),
    registered with a private rpcbind.  small: also export a tmpfs of that
    size (root/small) as /small, to fill it up."""

    def __init__(self, root, small=None):
        self.root = root
        self.export = os.path.join(root, "export")
        self.small = os.path.join(root, "small")
        self.proc = self.rpcbind = None
        for d in ("export", "recov", "small"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        if small:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={small}",
                            "tmpfs", self.small], check=True)
        with open(os.path.join(root, "ganesha.conf"), "w") as f:
            f.write(CONF.format(root=root))
            f.write(EXPORT.format(id=1, root=root, name="export"))
            if small:
                f.write(EXPORT.format(id=2, root=root, name="small"))

    def start(self, timeout=30):
        if self.rpcbind is None:
            os.makedirs("/run/rpcbind", exist_ok=True)
            shutil.chown("/run/rpcbind", "_rpc")
            self.rpcbind = subprocess.Popen(["rpcbind", "-f", "-w"],
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
            wait_until(lambda: os.path.exists("/run/rpcbind.sock"), timeout,
                       "rpcbind's socket")
        log = os.path.join(self.root, "ganesha.log")
        mark = os.path.getsize(log) if os.path.exists(log) else 0
        self.proc = subprocess.Popen(
            ["ganesha.nfsd", "-F", "-f", os.path.join(self.root,
                                                      "ganesha.conf"),
             "-L", log, "-p", os.path.join(self.root, "ganesha.pid"),
             "-N", "NIV_EVENT"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

        def ready():
            check(self.proc.poll() is None, "ganesha exited:", self.log())
            try:
                with open(log, errors="replace") as f:
                    f.seek(mark)
                    if "NFS SERVER INITIALIZED" not in f.read():
                        return False
            except FileNotFoundError:
                return False
            try:
                socket.create_connection(("127.0.0.1", 2049), 1).close()
                return True
            except OSError:
                return False
        wait_until(ready, timeout, "ganesha")
        return self

    def log(self):
        try:
            with open(os.path.join(self.root, "ganesha.log"),
                      errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        """Stops ganesha by PID (SIGKILL after 10 s); rpcbind stays."""
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cleanup(self):
        """Stops ganesha and rpcbind, unmounts the small export."""
        self.stop()
        if self.rpcbind:
            self.rpcbind.terminate()
            self.rpcbind.wait()
            self.rpcbind = None
        subprocess.run(["umount", self.small], capture_output=True)


def wait_until(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    check(False, what, "not ready in time")


def pool_yaml(name="nfs0", export="/export", extra="", server="127.0.0.1"):
    """A storage entry for the nfs plugin on the test server."""
    return (f"  - {{ name: {name}, plugin: nfs, server: '{server}', "
            f"export: {export}{extra}, {IMAGE_SOURCES} }}\n")
