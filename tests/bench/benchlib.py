# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the benchmarks in tests/bench share: one place for starting a
vmhostd of a build tree, pinning, and reading a process's CPU and memory.

    import benchlib
    benchlib.setup(builddir)          # before importing the test helpers
    from vmhtest import Daemon

    d = benchlib.Vmhostd(builddir, hypervisors="{ name: hv0, plugin: mock }")
    c0 = benchlib.cpu_s(d.pid)
    ...
    syncs, frames = d.stop()

Numbers only: nothing here asserts a figure.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")
MOCK_HV = "{ name: hv0, plugin: mock }"


def setup(builddir):
    """The environment `make check` gives the tests (builddir, VMHOSTD,
    VMHOST_PLUGIN_DIR; values already set are kept) and tests/ on sys.path,
    for a benchmark that imports the test helpers (vmhtest, lvguest...)."""
    os.environ.setdefault("builddir", os.path.join(builddir, "tests"))
    os.environ.setdefault("VMHOSTD", os.path.join(builddir, "core", "vmhostd"))
    os.environ.setdefault("VMHOST_PLUGIN_DIR", plugin_path(builddir))
    tests = os.path.join(HERE, "..")
    if tests not in sys.path:
        sys.path.insert(0, tests)


def plugin_path(builddir):
    """VMHOST_PLUGIN_DIR for the plugins built in builddir."""
    return ":".join(sorted({
        r for r, _, fs in os.walk(os.path.join(builddir, "plugins"))
        if r.endswith(".libs") and any(f.endswith(".so") for f in fs)}))


def cpu_s(pid):
    """utime + stime of a process, all its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def switches(pid):
    """Context switches of a process's live threads, voluntary and not: a
    steadier figure than CPU time on a loaded machine (each is a thread
    hand-off or a wait)."""
    n = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                n += sum(int(v) for v in re.findall(
                    r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)", f.read(),
                    re.M))
        except FileNotFoundError:
            pass
    return n


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def start_h2o(tmp, docs, port, cpu=None, listen_extra=""):
    """h2o serving the files of docs on 127.0.0.1:port (one thread, pinned
    to cpu), its config and log in tmp; listen_extra: more top-level YAML
    (another listener).  Returns the process once the port answers."""
    with open(f"{tmp}/h2o.conf", "w") as f:
        f.write(f"""listen: {{ host: 127.0.0.1, port: {port} }}
{listen_extra}num-threads: 1
access-log: /dev/null
error-log: {tmp}/h2o.log
hosts:
  default:
    paths:
      /:
        file.dir: {docs}
""")
    h2o = subprocess.Popen(pinned(["h2o", "-c", f"{tmp}/h2o.conf"], cpu),
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    wait_port(port)
    return h2o


def pin():
    """(server cpu, client cpus) for taskset -c, or None with one CPU or
    no taskset: servers on the last CPU, clients on the others."""
    n = os.cpu_count() or 1
    if n < 2 or not shutil.which("taskset"):
        return None
    return str(n - 1), ",".join(str(i) for i in range(n - 1))


def pin_all(pid, cpu):
    """Pin every thread of a running process to cpu."""
    subprocess.run(["taskset", "-a", "-cp", str(cpu), str(pid)],
                   capture_output=True, check=True)


def pinned(cmd, cpu):
    """cmd under taskset -c cpu (cmd itself when cpu is None)."""
    return cmd if cpu is None else ["taskset", "-c", str(cpu)] + cmd


def build_clients(tmp, names=(("h2bench", "libnghttp2"),
                              ("libvirt-direct", "libvirt"))):
    """Compile the C clients of tests/bench (name, pkg-config package) into
    tmp; {name: path}."""
    out = {}
    for name, pkg in names:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", pkg],
                               capture_output=True, text=True,
                               check=True).stdout.split()
        out[name] = os.path.join(tmp, name)
        subprocess.run(["cc", "-O2", "-o", out[name],
                        os.path.join(HERE, name + ".c")] + flags, check=True)
    return out


def rest_frontend(port, extra=""):
    """A REST front-end on 127.0.0.1:port: no access log, no rate limit;
    extra: more keys of the instance (YAML, indented by 4)."""
    return f"""  - name: rest
    plugin: rest
    access_log: false
    listen: [ {{ address: "127.0.0.1:{port}" }} ]
    limits: {{ requests_per_second: 1000000 }}
{extra}"""


class Vmhostd:
    """vmhostd of a build tree in a new directory under parent (None: the
    default temporary directory), with the mock storage and network, the
    given hypervisors (YAML flow list items) and a REST front-end on a free
    port (`rest_extra`: more keys of it, indented by 4; or `frontends`: the
    YAML list items), started pinned to `cpu` (None: not pinned) and ready
    (its log says so) when the constructor returns.  `daemon`: more keys
    under daemon: (indented by 2).

    .pid, .port, .token (the admin token), .tmp, .log; stop() or kill()."""

    def __init__(self, builddir, parent=None, hypervisors=MOCK_HV, daemon="",
                 cpu="0", log_level="info", frontends=None,
                 prefix="vmhbench.", rest_extra="", pool_keys=""):
        self.tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
        self.port = free_port()
        if frontends is None:
            frontends = rest_frontend(self.port, rest_extra)
        env = dict(os.environ, VMHOST_PLUGIN_DIR=plugin_path(builddir))
        self.config = f"{self.tmp}/vmhostd.yaml"
        with open(self.config, "w") as f:
            f.write(f"""daemon:
  state_dir: state
  log: {{ level: {log_level} }}
  reconcile_interval: 0
{daemon}hypervisors: [ {hypervisors} ]
storage: [ {{ name: pool0, plugin: mock{pool_keys} }} ]
networks: [ {{ name: net0, plugin: mock }} ]
frontends:
{frontends}""")
        self.log = f"{self.tmp}/vmhostd.log"
        self.proc = subprocess.Popen(
            pinned([os.path.join(builddir, "core", "vmhostd"), "--config",
                    self.config], cpu),
            env=env, stderr=open(self.log, "w"))
        self.pid = self.proc.pid
        # Ready: it says so at info; quieter, its port answers.
        quiet = log_level not in ("debug", "info")
        deadline = time.time() + 60
        while not ("vmhostd ready" in open(self.log).read() or
                   (quiet and self._listening())):
            if self.proc.poll() is not None or time.time() > deadline:
                log = open(self.log).read()
                self.kill()
                sys.exit("vmhostd did not start:\n" + log)
            time.sleep(0.05)
        with open(f"{self.tmp}/state/auth/admin.token") as f:
            self.token = f.read().strip()

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def auth(self):
        """The header that carries the admin token."""
        return {"authorization": "Bearer " + self.token}

    def stop(self):
        """SIGTERM, wait, remove its directory; (syncs, records written) of
        its journal, from its log ((0, 0) for a build without one)."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        m = re.findall(r"journal: (\d+) records? written in (\d+) syncs?",
                       open(self.log).read())
        shutil.rmtree(self.tmp, ignore_errors=True)
        return (int(m[-1][1]), int(m[-1][0])) if m else (0, 0)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
