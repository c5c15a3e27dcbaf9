# SPDX-License-Identifier: LGPL-2.1-or-later
"""End-to-end test helpers: run a real vmhostd on a config of the test's,
drive it through the test control front-end (tests/ctl), read its log.

    from vmhtest import Daemon, check
    with Daemon(plugins_yaml) as d:
        r = d.call(op="vm_create", spec={...})
        check(r["code"] == 0, r)

A test exits 0 (pass), 1 (fail) or 77 (skip, with the reason).

The skip policy (HACKING.md, the same in tests/functions.sh): a missing test
dependency -- anything packaging/install-deps.sh installs, or root -- is
skip(): a skip on a developer's machine, a failure under CI=true, since CI
installs everything.  A facility the machine itself lacks, which no package
provides (network or mount namespaces in a chroot, another architecture),
is skip_unsupported(): a skip everywhere.
"""
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILDDIR = os.environ.get("builddir", os.path.dirname(os.path.abspath(__file__)))
VMHOSTD = os.environ.get("VMHOSTD", os.path.join(BUILDDIR, "..", "core", "vmhostd"))
CTL_SO = os.path.join(BUILDDIR, "ctl", ".libs", "frontend-ctl.so")

# make check-valgrind: every vmhostd runs under memcheck; any error or leak
# makes it exit 99, which a test's "exit 0" check turns into a failure.
VALGRIND = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect",
            "--suppressions=" + os.path.join(
                os.environ.get("srcdir", BUILDDIR), "valgrind.supp")] \
    if os.environ.get("VMHOST_TEST_VALGRIND") else []


def skip(why):
    """A test dependency is missing: skip (77), or fail under CI=true."""
    if os.environ.get("CI") == "true":
        print("FAIL: missing test dependency (CI installs every one, "
              "packaging/install-deps.sh):", why, file=sys.stderr)
        sys.exit(1)
    print("SKIP:", why, file=sys.stderr)
    sys.exit(77)


def skip_unsupported(why):
    """The machine lacks a facility no package provides: skip (77), even
    under CI."""
    print("SKIP (unsupported here):", why, file=sys.stderr)
    sys.exit(77)


def require_netns():
    """Network tests need `ip netns`; a machine where namespaces cannot be
    made (a chroot whose / is no mount point, say) truly lacks the facility:
    skip, saying why, even under CI."""
    ns = f"vmh-probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
    if r.returncode == 0:
        r = subprocess.run(["ip", "netns", "exec", ns, "true"],
                           capture_output=True, text=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    if r.returncode != 0:
        skip_unsupported("network namespaces cannot be made here: " + (r.stderr or "").strip())


# Leaks inside libraries vmhostd loads, not in vmhost, each with why; every
# test's vmhostd runs with these suppressed (nothing else is):
#   - libnfs 4.0.0 frees the state of a connection in progress only in the
#     connect callback, which destroying the context before the connection
#     is made never calls (the nfs plugin gives up on a server that does
#     not answer its mount within the pool's timeout).
LSAN_LIB_SUPP = """leak:rpc_connect_program_async
"""

# GCC 12's LeakSanitizer crashes in its tracer ("Tracer caught signal 11")
# on the bogus dynamic-TLS range it computes for libraries loaded with
# dlopen on glibc 2.36 (libvirt and glib; librados and librbd beside them).
# Scanning no TLS avoids that; it then misses objects that only TLS points
# to, which these suppressions name (nothing else is suppressed):
#   - libvirt's per-thread error object of the main thread (a pthread key,
#     whose destructor never runs for the thread that calls exit());
#   - glib's slice magazine, made by glib's ELF constructor;
#   - the per-thread state glib's main context keeps for the thread of a
#     libvirt client connection's event loop (virNetClient).
LSAN_TLS_SUPP = """leak:virResetLastError
leak:virGetLastError
leak:virGetLastErrorCode
leak:virGetLastErrorMessage
leak:call_init
leak:virNetClientSendWithReply
"""


def _sanitized():
    return b"libasan" in subprocess.run(["ldd", VMHOSTD],
                                        capture_output=True).stdout


def _lsan_options(options, suppressions):
    supp = tempfile.NamedTemporaryFile("w", suffix=".supp", delete=False)
    supp.write(suppressions)
    supp.close()
    atexit.register(os.unlink, supp.name)
    os.environ["LSAN_OPTIONS"] = options + "suppressions=" + supp.name


def lsan_without_tls():
    """Under --enable-sanitizers, the LeakSanitizer settings for a vmhostd
    that loads libvirt (see LSAN_TLS_SUPP); nothing otherwise."""
    if not _sanitized():
        return
    _lsan_options("use_tls=0:", LSAN_LIB_SUPP + LSAN_TLS_SUPP)
    # libvirt and glib have no frame pointers: the slow unwinder is what
    # gets the suppressed frames into the stacks.
    os.environ["ASAN_OPTIONS"] = ":".join(
        x for x in (os.environ.get("ASAN_OPTIONS"),
                    "fast_unwind_on_malloc=0") if x)


if "LSAN_OPTIONS" not in os.environ and _sanitized():
    _lsan_options("", LSAN_LIB_SUPP)


def fail(*msg):
    print("FAIL:", *msg, file=sys.stderr)
    sys.exit(1)


def check(cond, *msg):
    if not cond:
        fail(*msg)


def wait_for(cond, what, timeout=60):
    """cond()'s first true value, asked every 50 ms; a failure naming what
    when there is none within timeout seconds (a bound on waiting, not a
    timed assertion)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    fail("timed out waiting for", what)


def sh(*cmd, ok=True):
    """Run a command; with ok, a failure of the test when it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True)
    if ok and r.returncode != 0:
        fail(" ".join(cmd), "->", r.returncode, r.stdout, r.stderr)
    return r


def ip_link(ns, name):
    """`ip -d link show` of one interface in namespace ns, parsed, or None
    when there is no such interface."""
    r = sh("ip", "-n", ns, "-j", "-d", "link", "show", "dev", name, ok=False)
    return json.loads(r.stdout)[0] if r.returncode == 0 else None


def expect(resp, code_name, *msg):
    """Check a response's error name ("ok" for success)."""
    if resp.get("error") != code_name:
        fail(f"expected {code_name}, got", json.dumps(resp), *msg)
    return resp


def free_port():
    """A port nobody listens on now (the kernel's choice)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PortTaken(Exception):
    """vmhostd could not bind a port free_port() chose: another test took
    it in between."""


class Daemon:
    """One vmhostd in a temporary directory; stopped by PID on exit.

    Subclasses that listen on ports from free_port() name the attributes
    holding them in PORTS: a start that fails because one was taken in the
    meantime (tests run in parallel) is retried on new ports."""

    PORTS = ()

    def __init__(self, body, daemon_yaml="", tmp=None, wrapper=(),
                 frontends="", log_level="debug"):
        """wrapper: a command prefix, e.g. ["ip", "netns", "exec", ns].
        frontends: more entries of the frontends list (YAML), after ctl.
        log_level: the daemon's (benchmarks run at info, as production)."""
        self.wrapper = list(wrapper)
        self.log_level = log_level
        self.frontends = frontends
        self._own_tmp = tmp is None
        self.tmp = tmp or tempfile.mkdtemp(prefix="vmhtest.")
        self.sock = os.path.join(self.tmp, "ctl.sock")
        self.config = os.path.join(self.tmp, "vmhostd.yaml")
        self.logfile = os.path.join(self.tmp, "vmhostd.log")
        self.proc = None
        self.write_config(body, daemon_yaml)

    def write_config(self, body, daemon_yaml=""):
        with open(self.config, "w") as f:
            f.write(f"""daemon:
  state_dir: state
  log: {{ level: {self.log_level} }}
  reconcile_interval: 0
  boot_dirs: [ /boot, {self.tmp} ]   # guests' kernels, initrds built here
{daemon_yaml}
{body}
frontends:
  - name: ctl
    plugin: ctl
    file: {CTL_SO}
    socket: {self.sock}
{self.frontends}
""")

    # -- process ----------------------------------------------------------
    def start(self, wait_ready=True):
        for _ in range(5):
            mark = len(self.log()) if os.path.exists(self.logfile) else 0
            self.log_f = open(self.logfile, "a")
            self.proc = subprocess.Popen(
                self.wrapper + VALGRIND + [VMHOSTD, "--config", self.config],
                stdout=self.log_f, stderr=self.log_f)
            if not wait_ready:
                return self
            try:
                self.wait_log("vmhostd ready", start=mark, ports_race=True)
                return self
            except PortTaken:
                self.proc = None
                self.log_f.close()
                self._new_ports()
        fail("no free ports in 5 tries:\n" + self.log())

    def _new_ports(self):
        """Other free ports for PORTS, in the config and in self.frontends
        (which write_config uses again)."""
        with open(self.config) as f:
            text = f.read()
        for attr in self.PORTS:
            old, new = getattr(self, attr), free_port()
            text = text.replace(f"127.0.0.1:{old}\"", f"127.0.0.1:{new}\"")
            self.frontends = self.frontends.replace(f"127.0.0.1:{old}\"",
                                                    f"127.0.0.1:{new}\"")
            setattr(self, attr, new)
        with open(self.config, "w") as f:
            f.write(text)

    def wait_log(self, text, timeout=120 if VALGRIND else 30, start=0,
                 ports_race=False):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log()[start:]:
                return
            if self.proc and self.proc.poll() is not None:
                if ports_race and self.PORTS and \
                        "Address already in use" in self.log()[start:]:
                    raise PortTaken()
                fail(f"vmhostd exited {self.proc.returncode} before '{text}':\n"
                     + self.log())
            time.sleep(0.02)
        fail(f"no '{text}' in the log after {timeout}s:\n" + self.log())

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if not self.proc:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("vmhostd did not stop in time:\n" + self.log())
        self.proc = None
        self.log_f.close()
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def log(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        if self._own_tmp and exc[0] is None:
            subprocess.run(["rm", "-rf", self.tmp])
        elif exc[0] is not None:
            print(self.log(), file=sys.stderr)

    # -- control ------------------------------------------------------------
    def call(self, **req):
        try:
            return call(self.sock, req)
        except NoAnswer:
            fail("no answer to", json.dumps(req))

    def ok(self, **req):
        r = self.call(**req)
        if r.get("code") != 0:
            fail("request failed:", json.dumps(req), "->", json.dumps(r))
        return r


class NoAnswer(Exception):
    """The daemon closed the connection without answering."""


def quiet_call(d, **req):
    """A call whose daemon may be killed under it (no answer is fine)."""
    try:
        return call(d.sock, req)
    except (NoAnswer, OSError):
        return None


def call(sock_path, req, timeout=60):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall((json.dumps(req) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    if not buf:
        raise NoAnswer()
    return json.loads(buf)


class Events:
    """The daemon's event stream (the ctl "events" op on socket `sock`),
    collected by a thread."""

    def __init__(self, sock):
        self.events = []
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(sock)
        self.s.sendall(b'{"op":"events"}\n')
        self.f = self.s.makefile("r")
        first = json.loads(self.f.readline())
        check(first.get("code") == 0, "events:", first)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            for line in self.f:
                ev = json.loads(line).get("event")
                if ev:
                    self.events.append(ev)
        except (OSError, ValueError):
            pass

    def wait(self, pred, what, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(pred(e) for e in list(self.events)):
                return
            time.sleep(0.02)
        check(False, "no event", what, "in", json.dumps(self.events))


def snapshot_pair(d, vm):
    """Snapshots "before" and "after" of the running VM vm, with what
    every hypervisor plugin promises of them: the name is the id, a
    second "before" is refused, "after" has "before" as parent, the list
    is in creation order with "after" current.  Returns the two."""
    s = d.ok(op="snapshot_create", vm=vm, name="before")["snapshots"][0]
    check(s["name"] == "before" and s["id"] == "before", s)
    check(s["vm_state"] == "running" and s["created"] > 0, s)
    expect(d.call(op="snapshot_create", vm=vm, name="before"),
           "already_exists")
    s2 = d.ok(op="snapshot_create", vm=vm, name="after")["snapshots"][0]
    check(s2["parent"] == "before", s2)
    snaps = d.ok(op="snapshot_list", vm=vm)["snapshots"]
    check([x["name"] for x in snaps] == ["before", "after"], snaps)
    check([x["current"] for x in snaps] == [False, True], snaps)
    return s, s2


def snapshot_names(d, vm):
    """What the core promises of snapshot names on every backend, for the
    running VM vm: a snapshot answers to its name as well as its id
    (revert, delete), names are unique per VM, a name may not be another
    snapshot's id, and a key that is neither is not found.  Leaves the VM's
    snapshots as they were."""
    s = d.ok(op="snapshot_create", vm=vm,
             name="before-upgrade")["snapshots"][0]
    check(s["name"] == "before-upgrade", s)
    r = expect(d.call(op="snapshot_create", vm=vm, name="before-upgrade"),
               "already_exists")
    check("before-upgrade" in r["message"], r)
    if s["id"] != s["name"]:
        expect(d.call(op="snapshot_create", vm=vm, name=s["id"]),
               "already_exists")
    d.ok(op="snapshot_revert", vm=vm, id="before-upgrade")
    d.ok(op="snapshot_revert", vm=vm, id=s["id"])
    r = expect(d.call(op="snapshot_revert", vm=vm, id="no-such-snap"),
               "not_found")
    check("no-such-snap" in r["message"], r)
    d.ok(op="snapshot_delete", vm=vm, id="before-upgrade")
    expect(d.call(op="snapshot_delete", vm=vm, id="before-upgrade"),
           "not_found")
    check("before-upgrade" not in
          [x["name"] for x in d.ok(op="snapshot_list", vm=vm)["snapshots"]],
          "deleted by name, still listed")


MOCKS = """
hypervisors:
  - {{ name: hv0, plugin: mock{hv} }}
storage:
  - {{ name: pool0, plugin: mock{st} }}
networks:
  - {{ name: net0, plugin: mock{net} }}
"""


def mocks(hv="", st="", net=""):
    """The three mocks, each with extra flow-style keys (", key: value")."""
    return MOCKS.format(hv=hv, st=st, net=net)


# The image sources a test's storage pools take (the plugins' image_sources:
# refused by default): files under the temporary directory, the test's own
# HTTP servers on loopback.
IMAGE_SOURCES = (f"image_sources: {{ file_dirs: [ {tempfile.gettempdir()} ], "
                 "allow_private: true }")


def vm_spec(name, disks=1, nics=1, **extra):
    spec = {"name": name, "vcpus": 2, "memory": 1 << 30,
            "disks": [{"name": f"vd{chr(ord('a') + i)}", "size": 1 << 30}
                      for i in range(disks)],
            "nics": [{"name": f"net{i}"} for i in range(nics)]}
    spec.update(extra)
    return spec
