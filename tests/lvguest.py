# SPDX-License-Identifier: LGPL-2.1-or-later
"""A tiny real guest and a private libvirtd, for the libvirt plugin's tests
and benchmarks (tests/test-libvirt-*.py, tests/bench/libvirt-*.py).

The guest is the installed Debian kernel (linux-image-amd64: /boot/vmlinuz-*
and its modules) with a busybox initramfs built here (static busybox, or
the dynamic one with its libraries).  Its /init writes "hello from guest" on
the virtio-serial port org.vmhost.agent.0, then answers on that port:
  blocks    "blocks: NAMES" from /sys/block
  seed      "seed: label=VOLID | FILES | FIRST-LINE-OF-USER-DATA |" from the
            cloud-init seed CD-ROM
  write DEV TEXT  "wrote DEV: STATUS" after writing TEXT at the start of
            /dev/DEV
  read DEV  "read DEV: LINE", LINE the first line of /dev/DEV (letters,
            digits, space and ._- only)
  wseq DEV MIB / rseq DEV MIB  "wseq DEV: STATUS" / "rseq DEV: STATUS"
            after writing (zeroes) or reading the first MIB MiB of /dev/DEV
            sequentially in 1 MiB blocks, with O_DIRECT (the benchmarks)
  poweroff  "bye", then powers off
With "vmh.acpi=1" on its command line it honours an ACPI power-button
press (a graceful shutdown request) by powering off; without, it has no
ACPI handler and ignores the request.

Libvirtd runs a private libvirtd (system mode, as root) whose state lives
under one directory, isolated from any other libvirtd by a private mount
namespace (unshare --mount) in which that directory is bind-mounted over
libvirt's own paths (see LIBVIRTD_DIRS and class Libvirtd)."""
import glob
import gzip
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import vmhtest
from vmhtest import check

# In insmod order: virtio; SATA and the CD-ROM for the cloud-init seed;
# the ACPI power button and evdev for a graceful shutdown.
MODS = ["virtio_ring", "virtio", "virtio_pci_modern_dev",
        "virtio_pci_legacy_dev", "virtio_pci", "virtio_console", "virtio_blk",
        "scsi_common", "scsi_mod", "libata", "libahci", "ahci", "cdrom",
        "sr_mod", "isofs", "button", "evdev"]

# Shell: waits for the virtio-serial port org.vmhost.agent.0 and sets PORT
# to its device (empty when it never shows).
FIND_PORT = """PORT=""
for i in $(seq 1 500); do
  for p in /sys/class/virtio-ports/*; do
    [ -f "$p/name" ] && [ "$(cat $p/name)" = "org.vmhost.agent.0" ] &&
      PORT=/dev/$(basename $p)
  done
  [ -n "$PORT" ] && [ -e "$PORT" ] && break; PORT=""; usleep 20000
done
"""

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in %s; do insmod /lib/modules/$m.ko; done
if grep -q vmh.acpi=1 /proc/cmdline; then
  for i in /sys/class/input/input*; do
    if [ "$(cat $i/name)" = "Power Button" ]; then
      ev=$(basename $i/event*)
      # Any event on the button's device is a press: power off.
      (head -c 1 /dev/input/$ev >/dev/null; poweroff -f) &
    fi
  done
fi
%secho "GUEST: port ${PORT:-NOT FOUND}"
exec 3<>$PORT
echo "hello from guest, uptime $(cut -d' ' -f1 /proc/uptime)" >&3
while read -r line <&3; do
  case "$line" in
    blocks) echo "blocks: $(ls /sys/block | tr '\\n' ' ')" >&3 ;;
    seed) for i in $(seq 1 100); do   # the medium shows after a moment
            err=$(mount -t iso9660 -o ro /dev/sr0 /mnt 2>&1) && break
            usleep 100000
          done
          # The volume id: 32 bytes at byte 40 of the PVD (sector 16).
          vol=$(dd if=/dev/sr0 bs=1 skip=32808 count=32 2>/dev/null)
          echo "seed: label=$vol | $(ls /mnt | tr '\\n' ' ')|" \\
            "$(head -n 1 /mnt/user-data) | $err" >&3 ;;
    write\ *) set -- $line   # "write DEV TEXT": TEXT at the start of DEV
          dev=$2; shift 2
          echo "$*" | dd of=/dev/$dev conv=fsync 2>/dev/null
          echo "wrote $dev: $?" >&3 ;;
    read\ *) set -- $line
          # Only what prints plainly: binary stays off the channel.
          echo "read $2: $(head -c 256 /dev/$2 | head -n 1 |
                           tr -cd 'A-Za-z0-9._ -')" >&3 ;;
    wseq\ *) set -- $line
          dd if=/dev/zero of=/dev/$2 bs=1M count=$3 oflag=direct conv=fsync \
            2>/dev/null
          echo "wseq $2: $?" >&3 ;;
    rseq\ *) set -- $line
          dd if=/dev/$2 of=/dev/null bs=1M count=$3 iflag=direct 2>/dev/null
          echo "rseq $2: $?" >&3 ;;
    poweroff) echo "bye" >&3; poweroff -f ;;
  esac
done
sleep 100000
""" % (" ".join(MODS), FIND_PORT)


def guest_config(uri, pool):
    """vmhostd's config for the guest tests: the libvirt plugin on uri
    (TCG, q35), a local qcow2 pool in the directory pool, a mock network."""
    return f"""
hypervisors:
  - name: hv0
    plugin: libvirt
    uri: "{uri}"
    domain_type: qemu
    machine: q35
    shutdown_timeout: 60
storage:
  - {{ name: pool0, plugin: local, path: {pool}, default_format: qcow2 }}
networks:
  - {{ name: net0, plugin: mock }}
"""


def check_nothing_left(d, vm_id, pool):
    """After a delete: no file of the VM in the plugin's state dir (sockets,
    seed), no volume in the pool's directory."""
    state_dir = os.path.join(d.tmp, "state", "plugins", "hv0")
    left = [f for f in os.listdir(state_dir) if vm_id in f]
    check(left == [], "files left:", left)
    vols = [f for f in os.listdir(pool) if not f.startswith(".")]
    check(vols == [], "volumes left:", vols)


def require_qemu():
    """Skip unless QEMU, libvirt's QEMU driver and root are here."""
    for tool in ("qemu-system-x86_64", "qemu-img", "cpio"):
        if not shutil.which(tool):
            vmhtest.skip(f"no {tool} (qemu-system-x86, qemu-utils, cpio)")
    if not glob.glob(
            "/usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so"):
        vmhtest.skip("no libvirt QEMU driver (libvirt-daemon-driver-qemu)")
    if os.geteuid() != 0:
        vmhtest.skip("QEMU under libvirt's system driver runs as root here")


def kernel(extra=()):
    """The newest /boot/vmlinuz-* that has every module of MODS (and of
    extra, which an init of the test's own loads)."""
    for k in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        kver = k[len("/boot/vmlinuz-"):]
        mods = {}
        for m in MODS + list(extra):
            found = glob.glob(f"/lib/modules/{kver}/kernel/**/{m}.ko",
                              recursive=True)
            if found:
                mods[m] = found[0]
        if len(mods) == len(MODS) + len(extra):
            return k, mods
    vmhtest.skip("no /boot/vmlinuz-* with the guest's modules (linux-image-amd64)")


def build_initrd(tmp, mods, init=INIT, files=()):
    """The guest's initramfs (gzip'ed newc cpio) under tmp; its path.
    init: the /init script (INIT by default); files: (source, path in the
    guest) pairs copied in as well."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        vmhtest.skip("no busybox (busybox or busybox-static)")
    root = os.path.join(tmp, "ir")
    for d in ("bin", "dev", "proc", "sys", "mnt", "lib/modules"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(busybox, os.path.join(root, "bin", "busybox"))
    # busybox and busybox-static conflict, and either may be installed:
    # a dynamic one brings its libraries (libc, the loader) along.
    ldd = subprocess.run(["ldd", busybox], capture_output=True, text=True)
    for lib in re.findall(r"(/\S+\.so[.\d]*)", ldd.stdout):
        dst = os.path.join(root, lib.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(lib, dst)
    for m, path in mods.items():
        shutil.copy(path, os.path.join(root, "lib", "modules", m + ".ko"))
    for src, dst in files:
        dst = os.path.join(root, dst.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(src, dst)
    with open(os.path.join(root, "init"), "w") as f:
        f.write(init)
    os.chmod(os.path.join(root, "init"), 0o755)
    files = subprocess.run(["find", "."], cwd=root, capture_output=True,
                           check=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root,
                          input=files, capture_output=True, check=True).stdout
    path = os.path.join(tmp, "initrd.gz")
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(cpio)
    return path


def read_line(sock, deadline):
    """One line from a socket, before the deadline (time.time())."""
    buf = b""
    while not buf.endswith(b"\n"):
        sock.settimeout(max(0.1, deadline - time.time()))
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            check(False, "no line from the guest in time; got", buf)
        check(chunk, "the guest closed its channel; got", buf)
        buf += chunk
    return buf.decode().strip()


def write_pattern(s, dev, tag, deadline):
    """Through the guest's channel s: checks that the guest sees /dev/DEV,
    has it write "vmhost-TAG-PID" and a newline at its start, and closes
    s.  The pattern written, as bytes with its newline."""
    s.sendall(b"blocks\n")
    line = read_line(s, deadline)
    check(dev in line.split(), line)
    pattern = f"vmhost-{tag}-{os.getpid()}"
    s.sendall(f"write {dev} {pattern}\n".encode())
    check(read_line(s, deadline) == f"wrote {dev}: 0", "the guest's write")
    s.close()
    return pattern.encode() + b"\n"


def first_line(path, deadline):
    """Connects to a guest channel socket and reads its first line;
    returns (socket, line)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s, read_line(s, deadline)


def kill_qemus(marker=None, mntns=None):
    """Ends (SIGKILL) every QEMU whose command line mentions marker, or
    that runs in the mount namespace mntns (a readlink of /proc/PID/ns/mnt).
    """
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            ns = os.readlink(f"/proc/{pid}/ns/mnt")
        except OSError:
            continue
        if not cmd or not cmd[0].endswith(b"qemu-system-x86_64"):
            continue
        if (marker and any(marker.encode() in a for a in cmd)) or \
                (mntns and ns == mntns):
            os.kill(int(pid), signal.SIGKILL)


LIBVIRTD_CONF = """unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""
# root: /dev/kvm and the files are root's; "file": no virtlogd; no private
# mount namespace for QEMU (a chroot cannot make one).
QEMU_CONF = """user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
namespaces = []
"""
# What libvirtd (system mode) owns on the host, each bound to a directory
# of ours inside its mount namespace.
LIBVIRTD_DIRS = {"etc": "/etc/libvirt", "run": "/run/libvirt",
                 "lib": "/var/lib/libvirt", "log": "/var/log/libvirt",
                 "cache": "/var/cache/libvirt"}


class Libvirtd:
    """A private libvirtd with every file under `root`; stopped by PID."""

    def __init__(self, root):
        if not shutil.which("libvirtd") and \
                not os.path.exists("/usr/sbin/libvirtd"):
            vmhtest.skip("no libvirtd (libvirt-daemon)")
        if not shutil.which("unshare"):
            vmhtest.skip("no unshare (util-linux)")
        # A private mount namespace keeps libvirtd's binds away from the
        # host's libvirt.  A chroot whose / is no mount point cannot make
        # one: the machine truly lacks the facility (a skip even in CI).
        r = subprocess.run(["unshare", "--mount", "--propagation", "private",
                            "true"], capture_output=True, text=True)
        if r.returncode != 0:
            vmhtest.skip_unsupported(
                "a private mount namespace cannot be made here "
                f"({r.stderr.strip()}): no private libvirtd")
        self.root = root
        self.pid = None
        self.mntns = []   # of every libvirtd started: their QEMUs' too
        self.uri = f"qemu:///system?socket={root}/run/libvirt-sock"
        for sub in LIBVIRTD_DIRS:
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        with open(os.path.join(root, "etc", "libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF)
        with open(os.path.join(root, "etc", "qemu.conf"), "w") as f:
            f.write(QEMU_CONF)

    def start(self, timeout=120):
        binds = []
        for sub, where in LIBVIRTD_DIRS.items():
            os.makedirs(where, exist_ok=True)   # the mount points
            binds.append(f"mount --bind {self.root}/{sub} {where}")
        pidfile = os.path.join(self.root, "run", "libvirtd.pid")
        script = " && ".join(binds) + \
            f" && exec /usr/sbin/libvirtd --pid-file {pidfile}"
        log = open(os.path.join(self.root, "libvirtd.out"), "a")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--",
             "/bin/sh", "-c", script], stdout=log, stderr=log,
            start_new_session=True)
        log.close()
        self.pid = self.proc.pid
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                check(False, "libvirtd exited", self.proc.returncode,
                      self.output())
            r = subprocess.run(["virsh", "-c", self.uri, "version"],
                               capture_output=True)
            if r.returncode == 0:
                self.mntns.append(os.readlink(f"/proc/{self.pid}/ns/mnt"))
                return self
            time.sleep(0.1)
        check(False, "libvirtd not ready in time:", self.output())

    def output(self):
        with open(os.path.join(self.root, "libvirtd.out"),
                  errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM and wait: running guests stay up (libvirtd leaves
        them to the next libvirtd)."""
        if self.pid is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.pid = None

    def cleanup(self):
        """Stops libvirtd and ends every guest it started."""
        self.stop()
        for ns in self.mntns:
            kill_qemus(mntns=ns)
