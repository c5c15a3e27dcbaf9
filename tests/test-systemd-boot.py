# SPDX-License-Identifier: LGPL-2.1-or-later
"""The packages under a real systemd: a Debian 12 machine booted with QEMU
(TCG), systemd as its PID 1.

  1. The packages of this tree (tests/debbuild.sh: built once per tree,
     shared with test-deb-install.sh).
  2. A Debian 12 root (mmdebstrap) with systemd-sysv, dbus, and vmhostd,
     vmhost-plugin-rest and vmhost-cli installed by apt from the .deb
     files, as the operator does; the three .deb files stay in /root/debs.
     The test adds its check (tests/systemd-boot-check.sh, run by the
     oneshot unit vmhost-boot-check.service after vmhostd.service), and the
     commands of README's "Packages and the service" block (the lines
     between <!-- install-commands --> and <!-- /install-commands -->; the
     first, dpkg-buildpackage, is what step 1 ran) in /root/readme.sh, to
     run in /root/debs/vmhost (an empty directory: the tree's place).
  3. The root becomes an ext4 image (mkfs.ext4 -d), booted by QEMU with the
     host's Debian kernel and an initramfs built here (lvguest.py's
     busybox, the virtio and ext4 modules) that mounts it and hands over to
     /sbin/init: systemd, systemd.unit=multi-user.target.  The console is
     the serial port (a file); the check's results come on the
     virtio-serial port org.vmhost.results.0 (another file).
  4. The check powers the guest off; every line it wrote must say "ok"
     (systemd-boot-check.sh lists them).  A check missing or failed fails
     the test with the guest's results and the end of its console.
It prints the time of each step, the guest's boot times and the unit's
exposure score as the running systemd rates it."""
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import lvguest
import vmhtest
from vmhtest import check, fail

SRCDIR = os.environ.get("srcdir", os.path.dirname(os.path.abspath(__file__)))
TOP_SRCDIR = os.environ.get("top_srcdir", os.path.join(SRCDIR, ".."))
# The root's ext4, on top of lvguest's virtio modules, in insmod order.
EXT4_MODS = ["crc16", "mbcache", "jbd2", "crc32c_generic", "ext4"]
# The three packages of README's apt line.
PACKAGES = ["vmhostd", "vmhost-plugin-rest", "vmhost-cli"]
# What the check must report "ok" for, besides readme-1..N (one per
# command of README after dpkg-buildpackage).
CHECKS = ["enabled", "active", "status", "hardening", "sandbox", "verify",
          "reload", "vm-create",
          "vm-list", "security", "journal", "journal-priority", "restart",
          "stop", "purge", "readme-vm", "readme-service"]
# Bounds on waiting (not timed assertions): mmdebstrap, and the guest from
# power-on to power-off (a TCG boot on a loaded machine takes minutes).
MMDEBSTRAP_TIMEOUT = 1200
GUEST_TIMEOUT = 1500

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in %s; do insmod /lib/modules/$m.ko; done
for i in $(seq 1 500); do [ -b /dev/vda ] && break; usleep 20000; done
mkdir -p /newroot
if ! mount -t ext4 -o rw /dev/vda /newroot; then
  echo "INITRAMFS: cannot mount /dev/vda"; poweroff -f
fi
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
"""

UNIT = """[Unit]
Description=vmhost boot test: vmhostd under systemd (test-systemd-boot.py)
Wants=vmhostd.service
After=vmhostd.service multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/vmhost-boot-check
StandardOutput=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"""

t0 = time.time()


def step(what):
    print(f"[{time.time() - t0:.0f} s] {what}", flush=True)


def requirements():
    if os.geteuid() != 0:
        vmhtest.skip("needs root: mmdebstrap's root mode, mkfs.ext4 -d of "
                     "a root owned by root")
    for tool, pkg in (("mmdebstrap", "mmdebstrap"),
                      ("qemu-system-x86_64", "qemu-system-x86"),
                      ("mkfs.ext4", "e2fsprogs"), ("cpio", "cpio"),
                      ("git", "git")):
        if not shutil.which(tool):
            vmhtest.skip(f"no {tool} ({pkg})")


def can_mount(tmp):
    """mmdebstrap's root mode mounts /proc, /sys and /dev into the new
    root; a machine (or a chroot in it) that cannot mount cannot make one
    (test-deb-install.sh asks the same)."""
    probe = os.path.join(tmp, "probe")
    os.mkdir(probe)
    r = subprocess.run(["mount", "-t", "proc", "proc", probe],
                       capture_output=True, text=True)
    if r.returncode != 0:
        vmhtest.skip_unsupported(f"cannot mount here ({r.stderr.strip()}): "
                                 "mmdebstrap cannot make a root")
    subprocess.run(["umount", probe], check=True)


def readme_commands():
    """The lines of README's install-commands block: the build debbuild.sh
    runs, "cd ..", then apt install of the three packages, then the
    others."""
    with open(os.path.join(TOP_SRCDIR, "README.md")) as f:
        text = f.read()
    m = re.search(r"<!-- install-commands -->\n```sh\n(.*?)```\n"
                  r"<!-- /install-commands -->", text, re.S)
    check(m, "README.md lacks the <!-- install-commands --> block "
          "(a ```sh fence between the markers)")
    lines = [ln for ln in m.group(1).splitlines() if ln.strip()]
    check(len(lines) >= 4 and lines[:2] == ["dpkg-buildpackage -us -uc -b",
                                             "cd .."],
          "README's install commands must start with "
          "'dpkg-buildpackage -us -uc -b' (what tests/debbuild.sh runs) "
          "and 'cd ..':", lines)
    debs = re.findall(r"\./(\S+)_\*\.deb", lines[2])
    check(lines[2].startswith("apt install ") and debs == PACKAGES,
          "README's third install command must be apt install of",
          PACKAGES, "got:", lines[2])
    return lines


def build_debs():
    """tests/debbuild.sh: the directory of this tree's packages."""
    r = subprocess.run([os.path.join(SRCDIR, "debbuild.sh")],
                       stdout=subprocess.PIPE, text=True)
    if r.returncode == 77:
        sys.exit(77)   # debbuild.sh said why, under the skip policy
    check(r.returncode == 0, "tests/debbuild.sh failed: exit", r.returncode)
    d = r.stdout.strip()
    with open(os.path.join(d, "version")) as f:
        version = f.read().strip()
    check(os.path.exists(os.path.join(d, "has-cli")),
          "the packages were built without cli/: no vmhost-cli")
    arch = subprocess.run(["dpkg", "--print-architecture"], check=True,
                          capture_output=True, text=True).stdout.strip()
    debs = [os.path.join(d, f"{p}_{version}_{arch}.deb") for p in PACKAGES]
    for deb in debs:
        check(os.path.exists(deb), "not built:", deb)
    return debs


def make_root(tmp, debs):
    """A Debian 12 root with systemd as init and the three packages, by
    mmdebstrap with this machine's apt sources and configuration."""
    root = os.path.join(tmp, "root")
    incoming = os.path.join(tmp, "debs")
    os.mkdir(incoming)
    for deb in debs:
        shutil.copy(deb, incoming)
    sources = [f for f in ["/etc/apt/sources.list"] +
               sorted(os.path.join("/etc/apt/sources.list.d", n)
                      for n in os.listdir("/etc/apt/sources.list.d"))
               if re.search(r"\.(list|sources)$", f) and os.path.isfile(f)
               and os.path.getsize(f) > 0]
    log = os.path.join(tmp, "mmdebstrap.log")
    with open(log, "w") as out:
        try:
            r = subprocess.run(
                ["mmdebstrap", "--variant=apt",
                 "--include=ca-certificates,systemd-sysv,dbus",
                 "--setup-hook=mkdir -p \"$1/etc/apt/apt.conf.d\" && "
                 "cp -n /etc/apt/apt.conf.d/* \"$1/etc/apt/apt.conf.d/\"",
                 f"--customize-hook=mkdir -p \"$1/root/debs\" && "
                 f"cp {incoming}/*.deb \"$1/root/debs/\"",
                 "--customize-hook=chroot \"$1\" sh -c \"apt-get install -y "
                 "-q --no-install-recommends /root/debs/*.deb\"",
                 "bookworm", root] + sources,
                stdout=out, stderr=subprocess.STDOUT,
                timeout=MMDEBSTRAP_TIMEOUT)
        except subprocess.TimeoutExpired:
            fail(f"mmdebstrap took more than {MMDEBSTRAP_TIMEOUT} s:",
                 tail(log, 40))
    check(r.returncode == 0, "mmdebstrap failed:", tail(log, 40))
    return root


def add_check(root, readme):
    """The check, its unit (enabled), README's commands; no getty (no
    login here, and without udev a serial getty waits 90 s for its
    device)."""
    shutil.copy(os.path.join(SRCDIR, "systemd-boot-check.sh"),
                os.path.join(root, "usr/local/sbin/vmhost-boot-check"))
    os.chmod(os.path.join(root, "usr/local/sbin/vmhost-boot-check"), 0o755)
    units = os.path.join(root, "etc/systemd/system")
    with open(os.path.join(units, "vmhost-boot-check.service"), "w") as f:
        f.write(UNIT)
    wants = os.path.join(units, "multi-user.target.wants")
    os.makedirs(wants, exist_ok=True)
    os.symlink("/etc/systemd/system/vmhost-boot-check.service",
               os.path.join(wants, "vmhost-boot-check.service"))
    for getty in ("serial-getty@ttyS0.service", "getty@tty1.service"):
        os.symlink("/dev/null", os.path.join(units, getty))
    with open(os.path.join(root, "root/readme.sh"), "w") as f:
        f.write("\n".join(readme[1:]) + "\n")
    os.mkdir(os.path.join(root, "root/debs/vmhost"))


def make_image(tmp, root):
    """The root as a raw ext4 image, with room for apt in the guest."""
    used = int(subprocess.run(["du", "-sxm", root], check=True,
                              capture_output=True, text=True)
               .stdout.split()[0])
    image = os.path.join(tmp, "root.img")
    with open(image, "wb") as f:
        f.truncate((used + 1024) << 20)
    r = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "vmhroot", "-d", root,
                        image], capture_output=True, text=True)
    check(r.returncode == 0, "mkfs.ext4 -d failed:", r.stdout, r.stderr)
    return image


def guest_kernel(tmp, bzimage):
    """The kernel QEMU boots: the uncompressed vmlinux (PVH entry) when the
    bzImage holds an xz payload, which TCG starts about twice as fast as
    it decompresses the bzImage; else the bzImage."""
    with open(bzimage, "rb") as f:
        data = f.read()
    at = data.find(b"\xfd7zXZ\x00")
    if at < 0:
        return bzimage
    try:
        vmlinux = lzma.LZMADecompressor().decompress(data[at:])
    except lzma.LZMAError:
        return bzimage
    if not vmlinux.startswith(b"\x7fELF"):
        return bzimage
    path = os.path.join(tmp, "vmlinux")
    with open(path, "wb") as f:
        f.write(vmlinux)
    return path


def tail(path, n):
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return f"({path} missing)"
    # The console's colours and cursor moves, off.
    return "\n".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", ln)
                     for ln in lines[-n:])


def boot(tmp, kernel, initrd, image):
    """Boots the guest; returns when it powered off.  Killed (by PID) at
    GUEST_TIMEOUT."""
    console = os.path.join(tmp, "console.log")
    results = os.path.join(tmp, "results.log")
    cmd = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-m", "1024",
           "-smp", "1", "-nodefaults", "-no-reboot", "-display", "none",
           "-kernel", kernel, "-initrd", initrd,
           "-append", "console=ttyS0 panic=-1 systemd.unit=multi-user.target",
           "-drive", f"file={image},format=raw,if=virtio,cache=unsafe",
           "-serial", f"file:{console}",
           "-device", "virtio-serial-pci",
           "-chardev", f"file,id=results,path={results}",
           "-device", "virtserialport,chardev=results,"
           "name=org.vmhost.results.0"]
    with open(os.path.join(tmp, "qemu.log"), "w") as out:
        qemu = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        qemu.wait(GUEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(qemu.pid, signal.SIGKILL)
        qemu.wait()
        fail(f"the guest did not power off within {GUEST_TIMEOUT} s;"
             "\nresults:\n" + tail(results, 200) + "\nconsole:\n" +
             tail(console, 60))
    finally:
        if qemu.poll() is None:
            os.kill(qemu.pid, signal.SIGKILL)
            qemu.wait()
    check(qemu.returncode == 0, "QEMU exited", qemu.returncode,
          tail(os.path.join(tmp, "qemu.log"), 20))
    return results, console


def judge(results, console, n_readme):
    """Every check "ok", the check ran to its end; the figures printed."""
    with open(results, errors="replace") as f:
        lines = f.read().splitlines()
    print("guest results:\n  " + "\n  ".join(lines))
    got = {}
    for ln in lines:
        m = re.match(r"(ok|FAIL|info) ([\w-]+): (.*)", ln)
        if m:
            got.setdefault((m.group(1), m.group(2)), m.group(3))
    want = CHECKS + [f"readme-{i}" for i in range(1, n_readme + 1)]
    missing = [c for c in want if ("ok", c) not in got]
    failed = [c for (kind, c) in got if kind == "FAIL"]
    if missing or failed or "end" not in lines:
        fail("under systemd: " +
             (f"failed {failed}; " if failed else "") +
             (f"not reported ok {missing}; " if missing else "") +
             ("" if "end" in lines else "the check did not finish; ") +
             "the guest's console ends:\n" + tail(console, 80))
    info = {c: v for (kind, c), v in got.items() if kind == "info"}
    print(f"figures: multi-user.target at {info.get('multi-user')} s and "
          f"vmhostd ready at {info.get('vmhostd-ready')} s after the "
          f"guest kernel started (exec at {info.get('vmhostd-exec')} s); "
          f"systemd-analyze security in the guest: exposure "
          f"{info.get('security')}; systemctl stop took "
          f"{info.get('stop-ms')} ms; postinst started vmhostd: "
          f"{info.get('postinst-started')}; the purge left: "
          f"{info.get('purge-left')}; {info.get('systemd')}")


def main():
    # make's or CI's SIGTERM unwinds too: QEMU (a session of its own) is
    # killed by PID and the directory removed in the finally clauses.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    requirements()
    tmp = tempfile.mkdtemp(prefix="vmhost-test-systemd-boot.")
    try:
        can_mount(tmp)
        readme = readme_commands()
        step("the packages (tests/debbuild.sh)")
        debs = build_debs()
        step("mmdebstrap: systemd-sysv, dbus, " + ", ".join(PACKAGES))
        root = make_root(tmp, debs)
        add_check(root, readme)
        step("the ext4 image and the initramfs")
        image = make_image(tmp, root)
        shutil.rmtree(root)
        bzimage, mods = lvguest.kernel(extra=EXT4_MODS)
        kernel = guest_kernel(tmp, bzimage)
        initrd = lvguest.build_initrd(tmp, mods,
                                      init=INIT % " ".join(mods))
        step(f"booting {os.path.basename(kernel)} "
             f"({os.path.basename(bzimage)}) under TCG")
        boot_start = time.time()
        results, console = boot(tmp, kernel, initrd, image)
        step(f"the guest powered off after {time.time() - boot_start:.0f} s")
        judge(results, console, len(readme) - 1)
        step("done")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


main()
