# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the Cloud Hypervisor tests and benchmark share: the fake VMM on
PATH (or, with VMHOST_CH_REAL=1, the real cloud-hypervisor and KVM), its
control file, the daemon config, the VMMs a test's daemon started, and a
client for a VMM's API socket.

    ctl = chtest.setup()          # before the daemon starts
    d = Daemon(chtest.config())
    with chtest.running(d, ctl):
        ...                       # VMMs outlive vmhostd: stopped on the way out
"""
import contextlib
import http.client
import json
import os
import signal
import socket
import sys
import tempfile

from vmhtest import skip, skip_unsupported

REAL = os.environ.get("VMHOST_CH_REAL") == "1"
SRCDIR = os.environ.get("srcdir", os.path.dirname(os.path.abspath(__file__)))
FAKE_DIR = os.path.join(SRCDIR, "fake-ch")


class Control:
    """The fake VMM's control file (see fakech.py)."""

    def __init__(self):
        fd, self.path = tempfile.mkstemp(prefix="fakech.", suffix=".json")
        os.close(fd)
        self.set()

    def set(self, **kw):
        with open(self.path + ".tmp", "w") as f:
            json.dump(kw, f)
        os.rename(self.path + ".tmp", self.path)


def setup():
    """The VMM the tests run: the fake one on PATH (a Control for it), or
    with VMHOST_CH_REAL=1 the real one (None)."""
    if REAL:
        if not any(os.access(os.path.join(p, "cloud-hypervisor"), os.X_OK)
                   for p in os.environ.get("PATH", "").split(":")):
            skip("VMHOST_CH_REAL=1 but no cloud-hypervisor in PATH")
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            skip_unsupported("VMHOST_CH_REAL=1 but no usable /dev/kvm")
        if not os.path.isfile(os.environ.get("CH_FIRMWARE", "")):
            skip("VMHOST_CH_REAL=1 needs CH_FIRMWARE=<hypervisor-fw or "
                 "CLOUDHV.fd>")
        return None
    os.environ["PATH"] = FAKE_DIR + ":" + os.environ.get("PATH", "")
    ctl = Control()
    os.environ["FAKE_CH_CONTROL"] = ctl.path
    return ctl


def config(hv_extra="", body_extra=""):
    """hv0 (cloud-hypervisor), pool0, net0: mock storage and a mock network
    of tap bindings under the fake VMM; under the real one a local pool
    (files CH can open) and no network (the mock's taps do not exist)."""
    fw = os.environ.get("CH_FIRMWARE") if REAL else "/fake/CLOUDHV.fd"
    storage = "{ name: pool0, plugin: local, path: pool0 }" if REAL else \
        "{ name: pool0, plugin: mock }"
    return f"""
hypervisors:
  - {{ name: hv0, plugin: cloud-hypervisor, firmware: "{fw}",
      api_timeout: 10, shutdown_timeout: 10{hv_extra} }}
storage:
  - {storage}
networks:
  - {{ name: net0, plugin: mock, binding: tap }}
{body_extra}"""


def hv_dir(d):
    return os.path.join(d.tmp, "state", "plugins", "hv0")


def vmm_pid(d, vid):
    """The pid in the VM's pid file; None: no VMM."""
    try:
        with open(os.path.join(hv_dir(d), vid + ".pid")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def vmms(tmp):
    """Pids of the VMMs whose API socket lies under tmp."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if b"--api-socket" in cmd and any(tmp.encode() in a for a in cmd):
            out.append(int(p))
    return out


def kill_vmms(tmp):
    """Stops (by pid) the VMMs this test's daemon started."""
    for pid in vmms(tmp):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@contextlib.contextmanager
def running(d, ctl):
    """d started; on the way out the VMMs its daemon started are stopped by
    pid (they outlive vmhostd), the daemon killed if it still runs, and the
    control file removed."""
    try:
        d.start()
        yield d
    except BaseException:
        if os.path.exists(d.logfile):
            print(d.log(), file=sys.stderr)
        raise
    finally:
        kill_vmms(d.tmp)
        if d.proc:
            d.proc.kill()
            d.proc.wait()
        if ctl:
            os.unlink(ctl.path)


class _UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def api(sock, method, endpoint, body=None):
    """(status, answer) of one request on a VMM's API socket."""
    c = _UnixConn(sock)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    c.request(method, "/api/v1/" + endpoint, body=data, headers=headers)
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, (json.loads(raw) if raw else None)
