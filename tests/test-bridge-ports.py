#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The bridge plugin's operations called directly (through ctypes, with a
stand-in for the core's host table), for what the core does not reach end
to end: port_list (the core never calls it yet), EEXIST on a second bind,
ENOENT on unbind, health when the bridge goes, and a "restart" (close and
open again) finding the ports from the host alone.  Runs itself again
inside a network namespace it makes (vmhb-*) and deletes.
"""
import vmhtest

vmhtest.require_netns()
import ctypes as C
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

TAG = "vmhb-" + uuid.uuid4().hex[:6]

builddir = os.environ.get("top_builddir", os.path.join(os.path.dirname(__file__), ".."))
SO = os.path.join(builddir, "plugins", "network", "bridge", ".libs", "network-bridge.so")

if len(sys.argv) == 1:
    # A plugin built with --enable-sanitizers needs the ASan runtime loaded
    # first; python's own allocations are no leaks of the plugin's.
    env = dict(os.environ)
    ldd = subprocess.run(["ldd", SO], capture_output=True, text=True).stdout
    asan = [w for w in ldd.split() if "/libasan.so" in w]
    if asan:
        env.update(LD_PRELOAD=asan[0], ASAN_OPTIONS="detect_leaks=0")
    ns = TAG + "-h"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable,
                            os.path.abspath(__file__), "--inner"], env=env)
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    sys.exit(r.returncode)

from vmhtest import check, fail  # noqa: E402

if not os.path.exists(SO):
    fail("no", SO)

P = C.c_void_p
cs = C.c_char_p
LOG = C.CFUNCTYPE(None, P, C.c_int, cs)  # variadic: the fixed args only
ERR = C.CFUNCTYPE(None, cs, cs)  # ("%s", msg) only; messages come by verror
CSTR = C.CFUNCTYPE(C.c_int, P, cs, cs, C.POINTER(P), C.c_uint32)
CINT = C.CFUNCTYPE(C.c_int, P, cs, C.c_int64, C.c_int64, C.c_int64,
                   C.POINTER(C.c_int64), C.c_uint32)
CSIZE = C.CFUNCTYPE(C.c_int, P, cs, C.c_uint64, C.c_uint64, C.c_uint64,
                    C.POINTER(C.c_uint64), C.c_uint32)
CBOOL = C.CFUNCTYPE(C.c_int, P, cs, C.c_int, C.POINTER(C.c_int), C.c_uint32)
CMAP = C.CFUNCTYPE(C.c_int, P, cs, C.POINTER(P), C.c_uint32)
CLIST = C.CFUNCTYPE(C.c_int, P, cs, C.POINTER(P), C.POINTER(C.c_uint32), C.c_uint32)
CAT = C.CFUNCTYPE(C.c_int, P, C.c_uint32, C.POINTER(P))
CKEYS = C.CFUNCTYPE(C.c_int, P, P, P)
WHERE = C.CFUNCTYPE(P, P)
EMIT = C.CFUNCTYPE(None, P, P)
CNT = C.CFUNCTYPE(None, P, cs, C.c_uint64)
GAUGE = C.CFUNCTYPE(None, P, cs, C.c_int64)
SDIR = C.CFUNCTYPE(P, P)
VERR = C.CFUNCTYPE(None, cs, P)  # a va_list parameter is passed as a pointer
CPATH = C.CFUNCTYPE(C.c_int, P, cs, cs, C.POINTER(P), C.c_uint32)
KWHERE = C.CFUNCTYPE(P, P, cs)


class Host(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("abi_major", C.c_uint32),
                ("abi_minor", C.c_uint32), ("version", cs), ("log", LOG),
                ("error", ERR), ("config_string", CSTR), ("config_int", CINT),
                ("config_size", CSIZE), ("config_bool", CBOOL),
                ("config_map", CMAP), ("config_list", CLIST),
                ("config_at", CAT), ("config_keys", CKEYS),
                ("config_where", WHERE), ("emit", EMIT),
                ("counter_add", CNT), ("gauge_set", GAUGE),
                ("state_dir", SDIR), ("instance_name", SDIR),
                ("verror", VERR), ("config_path", CPATH),
                ("config_key_where", KWHERE)]


class Binding(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("type", C.c_uint32),
                ("bridge", cs), ("port", cs), ("interface_id", cs),
                ("tap", cs), ("mac", cs), ("vlan", C.c_uint32),
                ("mtu", C.c_uint32)]


class Info(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("name", cs), ("type", cs),
                ("bridge", cs), ("cidr", cs), ("gateway", cs),
                ("mtu", C.c_uint32), ("n_ports", C.c_uint32), ("up", C.c_uint32)]


class Req(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("vm_id", cs), ("vm_name", cs),
                ("nic_name", cs), ("mac", cs), ("vlan", C.c_uint32)]


OPEN = C.CFUNCTYPE(C.c_int, P, P, P, C.POINTER(P), C.c_uint32)
CLOSE = C.CFUNCTYPE(None, P)
HEALTH = C.CFUNCTYPE(C.c_int, P, C.c_uint32)
INFO_FN = C.CFUNCTYPE(C.c_int, P, C.POINTER(Info))
INFO = C.CFUNCTYPE(C.c_int, P, INFO_FN, P, C.c_uint32)
BIND_FN = C.CFUNCTYPE(C.c_int, P, C.POINTER(Binding))
BIND = C.CFUNCTYPE(C.c_int, P, C.POINTER(Req), BIND_FN, P, C.c_uint32)
UNBIND = C.CFUNCTYPE(C.c_int, P, cs, cs, C.c_uint32)
PORT_FN = C.CFUNCTYPE(C.c_int, P, cs, cs, C.POINTER(Binding))
LIST = C.CFUNCTYPE(C.c_int, P, PORT_FN, P, C.c_uint32)


class Ops(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("open", OPEN), ("close", CLOSE),
                ("health", HEALTH), ("info", INFO), ("port_bind", BIND),
                ("port_unbind", UNBIND), ("port_list", LIST)]


class Plugin(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("abi_major", C.c_uint32),
                ("abi_minor", C.c_uint32), ("thread_model", C.c_uint32),
                ("kind", C.c_uint32), ("name", cs), ("version", cs),
                ("description", cs), ("load", P), ("hypervisor", P),
                ("storage", P), ("network", C.POINTER(Ops)), ("frontend", P)]


ENOENT, EEXIST, EINVAL, EIO = -2, -3, -1, -10
state = {"config": {}, "read": set(), "error": None}
keep = []  # C strings handed to the plugin must outlive the instance


def cstr(s):
    b = C.create_string_buffer(s.encode())
    keep.append(b)
    return C.cast(b, P).value


def get(key, ret, conv):
    state["read"].add(key.decode())
    if key.decode() in state["config"]:
        ret[0] = conv(state["config"][key.decode()])
        return True
    return False


def c_string(m, key, d, ret, flags):
    if not get(key, ret, cstr):
        if flags & 1:
            state["error"] = f"missing {key.decode()}"
            return EINVAL
        ret[0] = cstr(d.decode()) if d else None
    return 0


def c_int(m, key, lo, hi, d, ret, flags):
    if not get(key, ret, int):
        ret[0] = d
    elif not lo <= ret[0] <= hi:
        state["error"] = "out of range"
        return EINVAL
    return 0


def c_bool(m, key, d, ret, flags):
    if not get(key, ret, lambda v: 1 if v else 0):
        ret[0] = d
    return 0


def on_error(fmt, arg):
    state["error"] = arg.decode() if arg else fmt.decode()


libc = C.CDLL(None)
libc.vsnprintf.argtypes = [C.c_char_p, C.c_size_t, C.c_char_p, P]


def on_verror(fmt, ap):
    buf = C.create_string_buffer(1024)
    libc.vsnprintf(buf, len(buf), fmt, ap)
    state["error"] = buf.value.decode()


STATE_DIR = tempfile.mkdtemp(prefix="vmhb-ports.")
host = Host(C.sizeof(Host), 1, 2, b"test",
            LOG(lambda i, lvl, fmt: None), ERR(on_error),
            CSTR(c_string), CINT(c_int), CSIZE(lambda *a: EINVAL),
            CBOOL(c_bool), CMAP(lambda *a: EINVAL), CLIST(lambda *a: EINVAL),
            CAT(lambda *a: EINVAL), CKEYS(lambda *a: EINVAL),
            WHERE(lambda n: cstr("test.yaml:1:1")), EMIT(lambda *a: None),
            CNT(lambda *a: None), GAUGE(lambda *a: None),
            SDIR(lambda i: cstr(STATE_DIR)), SDIR(lambda i: cstr("lan")),
            VERR(on_verror), CPATH(lambda *a: EINVAL),
            KWHERE(lambda m, k: cstr("test.yaml:1:1")))

lib = C.CDLL(SO)
lib.vmh_plugin_entry.restype = C.POINTER(Plugin)
plugin = lib.vmh_plugin_entry().contents
check(plugin.name == b"bridge" and plugin.kind == 3, "a network plugin")
ops = plugin.network.contents


def open_(config, flags=0):
    state.update(config=config, read=set(), error=None)
    h = P()
    rc = ops.open(C.addressof(host), None, None, C.byref(h), flags)
    check(rc != 0 or state["read"] >= set(config), "unread keys")
    return rc, h


def bind(h, vm_id, nic, mac=None, vlan=0):
    got = []
    cb = BIND_FN(lambda o, b: got.append(
        (b.contents.type, b.contents.tap, b.contents.mac, b.contents.vlan)) or 0)
    req = Req(C.sizeof(Req), vm_id.encode(), b"vm", nic.encode(),
              mac.encode() if mac else None, vlan)
    rc = ops.port_bind(h, C.byref(req), cb, None, 0)
    return rc, (got[0] if got else None)


def plist(h):
    got = []
    cb = PORT_FN(lambda o, v, n, b: got.append(
        (v.decode(), n.decode(), b.contents.tap and b.contents.tap.decode(),
         b.contents.mac.decode(), b.contents.vlan)) or 0)
    check(ops.port_list(h, cb, None, 0) == 0, "port_list", state["error"])
    return sorted(got)


def info(h):
    got = []
    cb = INFO_FN(lambda o, i: got.append(
        (i.contents.bridge, i.contents.mtu, i.contents.n_ports, i.contents.up)) or 0)
    check(ops.info(h, cb, None, 0) == 0, "info")
    return got[0]


def link(name):
    r = subprocess.run(["ip", "-j", "-d", "link", "show", "dev", name],
                       capture_output=True, text=True)
    return json.loads(r.stdout)[0] if r.returncode == 0 else None


A, B = str(uuid.uuid4()), str(uuid.uuid4())
try:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tapcfg = {"bridge": "vmhbr5", "binding": "tap", "mtu": 1300}

    # Check only: nothing made.
    rc, h = open_(tapcfg, flags=1)
    check(rc == 0 and link("vmhbr5") is None, "check-only makes nothing", rc)
    ops.close(h)

    rc, h = open_(tapcfg)
    check(rc == 0, "open:", state["error"])
    check(info(h) == (b"vmhbr5", 1300, 0, 1), info(h))
    rc, b1 = bind(h, A, "net0")
    check(rc == 0 and b1[0] == 3 and b1[1].startswith(b"vmh" + A[:8].encode()), rc, b1)
    rc, b2 = bind(h, A, "net1", mac="52:54:00:AB:CD:EF")
    check(rc == 0 and b2[2] == b"52:54:00:ab:cd:ef" and b2[1] != b1[1], rc, b2)
    rc, b3 = bind(h, B, "net0")
    check(rc == 0, "bind B", state["error"])
    rc, _ = bind(h, A, "net0")
    check(rc == EEXIST and "already has a port" in state["error"], rc, state["error"])
    rc, _ = bind(h, B, "net1", vlan=5)
    check(rc == EINVAL and "vlan_filtering" in state["error"], rc, state["error"])
    rc, _ = bind(h, B, "net2", mac="01:00:5e:00:00:01")
    check(rc == EINVAL and "unicast" in state["error"], rc, state["error"])
    t = link(b1[1].decode())
    check(t["master"] == "vmhbr5" and t["mtu"] == 1300 and "UP" in t["flags"], t)
    check(t["ifalias"] == f"vmhost {A} {b1[2].decode()} 0 net0", t)
    want = sorted([(A, "net0", b1[1].decode(), b1[2].decode(), 0),
                   (A, "net1", b2[1].decode(), "52:54:00:ab:cd:ef", 0),
                   (B, "net0", b3[1].decode(), b3[2].decode(), 0)])
    check(plist(h) == want, plist(h), want)
    check(info(h)[2] == 3, "three ports", info(h))
    # A foreign interface with our prefix and no alias is not listed.
    subprocess.run(["ip", "link", "add", "vmhdeadbeef0000", "type", "veth",
                    "peer", "name", "vmhpeer"], check=True)
    check(plist(h) == want, "foreign interface not listed")
    ops.close(h)

    # "Restart": a fresh instance finds the ports on the host alone.
    rc, h = open_(tapcfg)
    check(rc == 0 and plist(h) == want, "after reopen:", plist(h))
    check(ops.port_unbind(h, A.encode(), b"net1", 0) == 0, "unbind", state["error"])
    check(link(b2[1].decode()) is None, "tap removed")
    rc = ops.port_unbind(h, A.encode(), b"net1", 0)
    check(rc == ENOENT, "unbind twice:", rc)
    check(plist(h) == [w for w in want if w[1] != "net1" or w[0] != A], plist(h))
    check(ops.health(h, 0) == 0, "healthy", state["error"])
    subprocess.run(["ip", "link", "set", "vmhbr5", "down"], check=True)
    check(ops.health(h, 0) == EIO and "down" in state["error"], state["error"])
    subprocess.run(["ip", "link", "del", "vmhbr5"], check=True)
    check(ops.health(h, 0) == EIO and "gone" in state["error"], state["error"])
    ops.close(h)

    # binding: bridge keeps records in state_dir; they survive a reopen.
    brcfg = {"bridge": "vmhbr6"}
    rc, h = open_(brcfg)
    check(rc == 0, "open:", state["error"])
    rc, b4 = bind(h, A, "net0")
    check(rc == 0 and b4[0] == 1 and b4[1] is None, rc, b4)
    rc, _ = bind(h, A, "net0")
    check(rc == EEXIST, "bridge mode EEXIST", rc)
    ops.close(h)
    rc, h = open_(brcfg)
    check(plist(h) == [(A, "net0", None, b4[2].decode(), 0)], plist(h))
    check(ops.port_unbind(h, A.encode(), b"net0", 0) == 0, "unbind")
    check(ops.port_unbind(h, A.encode(), b"net0", 0) == ENOENT, "unbind twice")
    check(plist(h) == [], "no port")
    check(glob.glob(os.path.join(STATE_DIR, "port-*")) == [], "no record")
    check(open(os.path.join(STATE_DIR, "created")).read() == "vmhbr6\n", "created noted")
    ops.close(h)
finally:
    shutil.rmtree(STATE_DIR)
