#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmhostctl (cli/) against a real vmhostd on the mock plugins, over h2c
and a unix socket: every command of its table; --output json equal to the
API's own answer (and valid against openapi.yaml), --output yaml the same
data; the documented exit codes and error lines; settings from the config
file, the environment and the flags, in that order of strength; the bash
completion made from the command table; image import's progress bar on a
terminal (a pty).  TLS and mTLS:
test-vmhostctl-tls.py."""
import atexit
import json
import os
import pty
import re
import shutil
import subprocess
import tempfile

import yaml

from ctltest import VMHOSTCTL, Ctl, daemon_token
from resttest import RestDaemon, validate
from vmhtest import check, fail, free_port, wait_for

V = "/api/v1"
# Members that move on their own between two reads.
VOLATILE = {"uptime_s", "memory_available", "memory_used", "cpu_time_ns",
            "updated_us", "disk_read_bytes", "disk_write_bytes",
            "net_rx_bytes", "net_tx_bytes"}


def steady(v):
    if isinstance(v, dict):
        return {k: steady(x) for k, x in v.items() if k not in VOLATILE}
    if isinstance(v, list):
        return [steady(x) for x in v]
    return v


def same_as_api(d, ctl, path, *args):
    """vmhostctl ARGS -o json equals GET path, and is valid for it."""
    mine = ctl.json(*args)
    st, _, api = d.get(path)
    check(st == 200, path, st, api)
    check(steady(mine) == steady(api), args, "differs from", path, mine, api)
    validate("GET", path, 200, mine)
    return mine


with RestDaemon() as d:
    tok = daemon_token(d)
    ctl = Ctl(d.base, token=tok)

    # ---- the VM life cycle, each answer against the API's ----------------
    vm = ctl.json("vm", "create", "web1", "--vcpus", "2", "--memory", "1G",
                  "--disk", "vda,size=2G,bus=virtio", "--nic",
                  "net0,network=net0,model=virtio", "--metadata", "role=web",
                  "--metadata", "tier=1")
    validate("POST", V + "/vms", 201, vm)
    check(vm["name"] == "web1" and vm["vcpus"] == 2 and
          vm["memory"] == 1 << 30 and vm["state"] == "running", vm)
    check(vm["disks"][0]["size"] == 2 << 30 and vm["disks"][0]["name"] == "vda",
          vm)
    check(vm["metadata"] == {"role": "web", "tier": "1"}, vm["metadata"])
    same_as_api(d, ctl, V + "/vms", "vm", "list")
    same_as_api(d, ctl, V + "/vms/web1", "vm", "show", "web1")
    same_as_api(d, ctl, V + "/vms/" + vm["id"], "vm", "show", vm["id"])
    live = ctl.json("vm", "list", "--live")
    check([v["name"] for v in live["vms"]] == ["web1"], live)
    check(ctl.json("vm", "show", "web1", "--live")["id"] == vm["id"])
    # Filters: --state (repeated or a comma list), --label KEY[=VALUE].
    same_as_api(d, ctl, V + "/vms?state=running&label=role%3Dweb", "vm",
                "list", "--state", "running", "--label", "role=web")
    for args, names in ((["--state", "stopped,paused"], []),
                        (["--state", "stopped", "--state", "running"],
                         ["web1"]),
                        (["--label", "role"], ["web1"]),
                        (["--label", "role=db"], []),
                        (["--label", "role=web", "--label", "tier=1"],
                         ["web1"]),
                        (["--label", "role!=web"], []),
                        (["--label", "!role"], []),
                        (["--label", "role!=db"], ["web1"])):
        got = ctl.json("vm", "list", *args)["vms"]
        check([v["name"] for v in got] == names, args, got)
    ctl.error(1, "INVALID_ARGUMENT", "vm", "list", "--state", "asleep")
    # vm label: KEY=VALUE sets, KEY- removes, the others stay.
    got = ctl.json("vm", "label", "web1", "tier=2", "role-", "zone=a=b")
    check(got["metadata"] == {"tier": "2", "zone": "a=b"}, got["metadata"])
    same_as_api(d, ctl, V + "/vms/web1", "vm", "show", "web1")
    check([v["name"] for v in ctl.json("vm", "list", "--label",
                                       "zone=a=b")["vms"]] == ["web1"])
    ctl.error(1, "INVALID_ARGUMENT", "vm", "label", "web1", "x.=1")
    for bad in (["web1"], ["web1", "role"], ["web1", "=x"], ["web1", "x", "-"],
                ["web1", "a=1", "a-"]):
        ctl.error(2, None, "vm", "label", *bad)
    ctl.json("vm", "label", "web1", "role=web", "tier=1", "zone-")

    # A table by default: a heading, one row per VM.
    out = ctl.ok("vm", "list")
    lines = out.splitlines()
    check(lines[0].split()[:4] == ["NAME", "ID", "STATE", "STATUS"], out)
    check(lines[1].split()[:3] == ["web1", vm["id"], "running"], out)
    check("1 GiB" in lines[1], out)
    out = ctl.ok("vm", "show", "web1")
    check(re.search(rf"^id +{vm['id']}$", out, re.M) and "\ndisks:\n" in out,
          out)

    # --spec: the whole VmSpec from standard input; flags override it.
    spec = {"name": "ignored", "vcpus": 1, "memory": 64 << 20,
            "disks": [{"name": "vda", "size": 1 << 20}], "start": False}
    db = ctl.json("vm", "create", "db1", "--spec", "-", "--vcpus", "3",
                  stdin=json.dumps(spec))
    check(db["name"] == "db1" and db["vcpus"] == 3 and
          db["state"] == "stopped", db)
    udata = os.path.join(ctl.home, "user-data")
    with open(udata, "w") as f:
        f.write("#cloud-config\nhostname: ci\n")
    # A kernel must be a file under daemon.boot_dirs (the test's directory
    # is one).
    kernel = os.path.join(d.tmpdir, "vmlinuz")
    open(kernel, "w").close()
    ci = ctl.json("vm", "create", "ci1", "--vcpus", "1", "--memory", "64M",
                  "--user-data", udata, "--no-start", "--kernel", kernel,
                  "--cmdline", "console=ttyS0")
    check(ci["user_data"] == "#cloud-config\nhostname: ci\n" and
          ci["kernel"] == kernel and ci["cmdline"] == "console=ttyS0" and
          ci["state"] == "stopped", ci)

    for action, state in (("stop", "stopped"), ("start", "running"),
                          ("pause", "paused"), ("resume", "running"),
                          ("reboot", "running")):
        v = ctl.json("vm", action, "web1")
        validate("POST", f"{V}/vms/web1/{action}", 200, v)
        check(v["state"] == state, action, v["state"])
    v = ctl.json("vm", "stop", "web1", "--force")
    check(v["state"] == "stopped", v)
    ctl.ok("vm", "start", "web1")
    v = ctl.json("vm", "stop", "web1", "--timeout", "5")
    check(v["state"] == "stopped", v)
    ctl.ok("vm", "start", "web1")

    con = same_as_api(d, ctl, V + "/vms/web1/console", "vm", "console", "web1")
    check(con["type"] in ("none", "vnc", "spice", "serial"), con)

    # Snapshots.
    s1 = ctl.json("vm", "snapshot", "create", "web1", "s1")
    validate("POST", V + "/vms/web1/snapshots", 201, s1)
    check(s1["name"] == "s1", s1)
    ctl.json("vm", "snapshot", "create", "web1", "s2")
    snaps = same_as_api(d, ctl, V + "/vms/web1/snapshots",
                        "vm", "snapshot", "list", "web1")
    check(len(snaps["snapshots"]) == 2, snaps)
    for key in (s1["id"], "s1"):  # by id or by name
        same_as_api(d, ctl, f"{V}/vms/web1/snapshots/{key}", "vm", "snapshot",
                    "show", "web1", key)
    check(ctl.json("vm", "snapshot", "show", "web1", "s1") ==
          snaps["snapshots"][0], "show s1")
    ctl.error(3, "NOT_FOUND", "vm", "snapshot", "show", "web1", "s9")
    # The mock answers 204 (nothing to print) or the VM.
    out = ctl.ok("vm", "snapshot", "revert", "web1", s1["id"], "-o", "json")
    check(out == "" or json.loads(out)["name"] == "web1", out)
    rc, out, err = ctl("vm", "snapshot", "delete", "web1", s1["id"])
    check(rc == 0 and out == "", rc, out, err)
    snaps = ctl.json("vm", "snapshot", "list", "web1")["snapshots"]
    check(s1["id"] not in [s["id"] for s in snaps], snaps)
    # The guest agent (no guest front-end here): absent, and the requests
    # that need one refused (exit 4).
    ag = same_as_api(d, ctl, V + "/vms/web1/agent", "vm", "agent", "show",
                     "web1")
    check(ag["state"] == "absent" and ag["telemetry"] is None, ag)
    ctl.error(4, "INVALID_STATE", "vm", "agent", "show", "web1", "--live")
    ctl.error(4, "INVALID_STATE", "vm", "agent", "ping", "web1")
    ctl.error(4, "INVALID_STATE", "vm", "agent", "timesync", "web1")
    ctl.error(4, "INVALID_STATE", "vm", "snapshot", "create", "web1", "sq",
              "--quiesce")
    ctl.error(2, None, "vm", "snapshot", "create", "web1", "sq",
              "--quiesce", "--quiesce-try")
    sq = ctl.json("vm", "snapshot", "create", "web1", "sq", "--quiesce-try")
    check(sq["quiesced"] is False and sq["name"] == "sq", sq)

    # Disks.
    v = ctl.json("vm", "disk", "attach", "web1", "vdb,size=1G,readonly=true")
    vdb = [x for x in v["disks"] if x["name"] == "vdb"]
    check(vdb and vdb[0]["size"] == 1 << 30 and vdb[0]["readonly"], v)
    v = ctl.json("vm", "disk", "detach", "web1", "vdb")
    check("vdb" not in [x["name"] for x in v["disks"]], v)

    # ---- storage, networks, plugins, host --------------------------------
    same_as_api(d, ctl, V + "/storage/pools", "pool", "list")
    pool = same_as_api(d, ctl, V + "/storage/pools/pool0", "pool", "show",
                       "pool0")
    check(pool["name"] == "pool0", pool)
    vol = ctl.json("volume", "create", "pool0", "data1", "--size", "512M",
                   "--format", "raw")
    validate("POST", V + "/storage/pools/pool0/volumes", 201, vol)
    check(vol["name"] == "data1" and vol["capacity"] == 512 << 20 and
          vol["format"] == "raw", vol)
    same_as_api(d, ctl, V + "/storage/pools/pool0/volumes", "volume", "list",
                "pool0")
    same_as_api(d, ctl, V + "/storage/pools/pool0/volumes/data1", "volume",
                "show", "pool0", "data1")
    vol = ctl.json("volume", "resize", "pool0", "data1", "1G")
    check(vol["capacity"] == 1 << 30, vol)
    vol = ctl.json("volume", "resize", "pool0", "data1", "768MiB", "--shrink")
    check(vol["capacity"] == 768 << 20, vol)
    rc, out, err = ctl("volume", "delete", "pool0", "data1")
    check(rc == 0 and out == "", rc, err)
    ctl.error(3, "NOT_FOUND", "volume", "show", "pool0", "data1")

    # ---- images (the mock pool downloads nothing) --------------------------
    SUM = "ab" * 32
    IMG = V + "/storage/pools/pool0/images"
    rc, out, err = ctl("image", "import", "pool0", "img1",
                       "https://example.com/img1.qcow2", "--sha256", SUM)
    check(rc == 0 and err == "" and "img1" in out, "quiet off a tty", rc,
          out, err)
    img = ctl.json("image", "import", "pool0", "img2",
                   "https://example.com/img2.qcow2", "--sha256", SUM)
    validate("GET", IMG + "/img2", 200, img)
    check(img["name"] == "img2" and img["sha256"] == SUM, img)
    op = ctl.json("image", "import", "pool0", "img3", "http://example.com/3",
                  "--sha256", SUM, "--no-wait")
    validate("POST", IMG, 202, op)
    check(op["kind"] == "image.import" and op["target"]["object"] == "img3",
          op)
    st, _, end = d.get(f"{V}/operations/{op['id']}/wait?timeout=60")
    check(st == 200 and end["status"] == "succeeded", end)
    same_as_api(d, ctl, IMG, "image", "list", "pool0")
    same_as_api(d, ctl, IMG + "/img1", "image", "show", "pool0", "img1")
    every = ctl.json("image", "list")["images"]
    check(sorted((i["pool"], i["name"]) for i in every) ==
          [("pool0", "img1"), ("pool0", "img2"), ("pool0", "img3")], every)
    table = ctl.ok("image", "list").splitlines()
    check(table[0].split()[:2] == ["POOL", "NAME"] and len(table) == 4, table)
    # On a terminal: a progress bar on standard error, then the image.
    master, slave = pty.openpty()
    r = subprocess.run(ctl.argv(["image", "import", "pool0", "img4",
                                 "https://example.com/4", "--sha256", SUM]),
                       stdout=subprocess.PIPE, stderr=slave, env=ctl.env,
                       text=True, timeout=60)
    os.close(slave)
    bar = b""
    try:
        while chunk := os.read(master, 4096):
            bar += chunk
    except OSError:
        pass  # EIO: the other end closed
    os.close(master)
    check(r.returncode == 0 and "img4" in r.stdout, r)
    check(b"\rimg4 [" in bar and b"100%" in bar and b"1.0 GiB" in bar, bar)
    # Exit codes: usage, refused at the edge, not found, a failed
    # operation (taken name), busy while a clone lives.
    err = ctl.error(2, None, "image", "import", "pool0", "x", "https://e/x")
    check("--sha256" in err, err)
    ctl.error(1, "INVALID_ARGUMENT", "image", "import", "pool0", "x",
              "ftp://e/x", "--sha256", SUM)
    ctl.error(1, "INVALID_ARGUMENT", "image", "import", "pool0", "x",
              "https://e/x", "--sha256", "12")
    ctl.error(3, "NOT_FOUND", "image", "import", "nope", "x", "https://e/x",
              "--sha256", SUM)
    ctl.error(3, "NOT_FOUND", "image", "show", "pool0", "nope")
    rc, out, err = ctl("image", "import", "pool0", "img1", "https://e/x",
                       "--sha256", SUM)
    check(rc == 4 and re.match(
        r"^vmhostctl: ALREADY_EXISTS: .*img1.* \(operation [0-9a-f-]{36}\)$",
        err.strip()), rc, err)
    ctl.ok("vm", "create", "imgvm", "--vcpus", "1", "--memory", "64M",
           "--disk", "vda,base_image=img1", "--no-start")
    m = ctl.error(4, "BUSY", "image", "delete", "pool0", "img1")
    check("img1" in m.group(2), m.group(2))
    ctl.ok("vm", "delete", "imgvm")
    for name in ("img1", "img2", "img3"):
        rc, out, err = ctl("image", "delete", "pool0", name)
        check(rc == 0 and out == "", name, rc, err)
    # --no-wait: the operation's id, followed to its end.
    rc, out, err = ctl("image", "delete", "pool0", "img4", "--no-wait")
    check(rc == 0 and re.match(r"^[0-9a-f-]{36}\n$", out), rc, out, err)
    o = ctl.json("operation", "wait", out.strip())
    check(o["kind"] == "image.delete" and o["status"] == "succeeded", o)
    check(ctl.json("image", "list", "pool0") == {"images": []}, "deleted")

    same_as_api(d, ctl, V + "/networks", "network", "list")
    same_as_api(d, ctl, V + "/networks/net0", "network", "show", "net0")
    same_as_api(d, ctl, V + "/plugins", "plugin", "list")
    same_as_api(d, ctl, V + "/host", "host", "show")
    same_as_api(d, ctl, V + "/host/health", "host", "health")
    same_as_api(d, ctl, V + "/host/metrics", "host", "metrics")
    same_as_api(d, ctl, V + "/host/hardware", "host", "hardware")
    out = ctl.ok("plugin", "list")
    check(any(ln.split()[:2] == ["mock", "hypervisor"]
              for ln in out.splitlines()), out)

    # --output yaml: the same data as json.
    for args in (("vm", "list"), ("vm", "show", "web1"), ("pool", "list"),
                 ("host", "show"), ("plugin", "list")):
        y = yaml.safe_load(ctl.ok(*args, "--output", "yaml"))
        check(steady(y) == steady(ctl.json(*args)), args, y)

    # The unix socket, and the output setting from the environment.
    usock = Ctl("unix:" + d.usock, env={"VMHOST_OUTPUT": "json"},
                token=tok)
    check(json.loads(usock.ok("vm", "show", "web1"))["id"] == vm["id"])
    usock = Ctl("unix://" + d.usock, token=tok)
    check(usock.json("host", "show")["n_vms"] == 3)

    # ---- exit codes and error lines -------------------------------------
    m = ctl.error(3, "NOT_FOUND", "vm", "show", "nope")
    check("nope" in m.group(2), m.group(0))
    check(f"access id={m.group(3)} " in d.log(), "request id", m.group(3))
    ctl.error(3, "NOT_FOUND", "vm", "stop", "nope")
    ctl.error(3, "NOT_FOUND", "pool", "show", "nope")
    ctl.error(3, "NOT_FOUND", "network", "show", "nope")
    ctl.error(3, "NOT_FOUND", "vm", "snapshot", "delete", "web1", "nope")
    ctl.error(4, "ALREADY_EXISTS", "vm", "create", "web1", "--vcpus", "1",
              "--memory", "64M")
    ctl.error(4, "INVALID_STATE", "vm", "start", "web1")
    ctl.error(4, "INVALID_STATE", "vm", "resume", "web1")
    m = ctl.error(1, "INVALID_ARGUMENT", "vm", "create", "tiny", "--vcpus",
                  "1", "--memory", "1K")
    check("memory" in m.group(2), m.group(0))
    nulfile = os.path.join(ctl.home, "nul")
    with open(nulfile, "wb") as f:
        f.write(b"#cloud-config\n\0")
    # Refused before any request: exit 2, one message naming what to fix.
    for args, says in (
            (("vm", "frobnicate"), "unknown command 'vm frobnicate'"),
            (("vm",), "'vm' needs a command"),
            (("vm", "show"), "usage: vmhostctl vm show VM"),
            (("vm", "show", "a", "b"), "2 arguments given"),
            (("vm", "list", "--force"), "unknown option '--force'"),
            (("--force", "vm", "list"), "unknown option '--force'"),
            (("vm", "list", "-o", "xml"), "output 'xml': expected table"),
            (("vm", "list", "--output"), "--output needs a value"),
            (("vm", "create", "x", "--vcpus", "1"), "--vcpus and --memory"),
            (("vm", "create", "x", "--vcpus", "1", "--memory", "lots"),
             "--memory 'lots': expected a size"),
            (("vm", "create", "x", "--vcpus", "0", "--memory", "1G"),
             "--vcpus '0'"),
            (("vm", "create", "x", "--spec", "/nonexistent"),
             "cannot read /nonexistent"),
            (("vm", "create", "x", "--vcpus", "1", "--memory", "1G",
              "--disk", "vda,colour=red"), "unknown key 'colour'"),
            (("vm", "create", "x", "--vcpus", "1", "--memory", "1G",
              "--disk", "size=1G"), "the name is missing"),
            (("vm", "stop", "web1", "--timeout", "9999"), "--timeout '9999'"),
            (("vm", "show", ""), "argument 1 (of VM) is empty"),
            (("vm", "create", "x", "--vcpus", "1", "--memory", "1G",
              "--kernel", "/k\udcff"), "kernel: not UTF-8 text"),
            (("vm", "create", "x", "--vcpus", "1", "--memory", "1G",
              "--user-data", nulfile), "holds a NUL byte"),
            (("volume", "create", "pool0", "v", "--format", "\udcff"),
             "--format: not UTF-8 text"),
            (("vm", "create", "x", "--vcpus", "1", "--memory", "1G",
              "--nic", "net0,vlan=5000"), "--nic vlan '5000'"),
            (("vm", "create", "x", "--vcpus", "1", "--memory", "1G",
              "--disk", "vda,readonly=maybe"), "--disk readonly 'maybe'"),
            (("volume", "resize", "pool0", "v", "--", "-5G"), "SIZE '-5G'"),
            (("volume", "resize", "pool0", "v", "1.5G"), "SIZE '1.5G'"),
            (("volume", "resize", "pool0", "v", "1P"), "SIZE '1P'"),
            (("operation", "wait", "x", "--timeout", "-1"),
             "--timeout '-1'"),
            (("volume", "resize", "pool0", "v", "-5G"), "unknown option '-5G'"),
            (("events", "--count", "2", "--follow"), "exclude each other"),
            (("--url", "ftp://x", "vm", "list"), "expected http://"),
            (("--url", "unix:rel.sock", "vm", "list"), "unix:/absolute"),
            (("--cacert", "/nonexistent", "vm", "list"), "No such file"),
            (("--request-timeout", "-1", "vm", "list"), "timeout '-1'")):
        line = ctl.error(2, None, *args)
        check(says in line, args, "said", line, "expected", says)
    n = len(ctl.json("vm", "list")["vms"])
    check(n == 3, "a refused command changed something", n)

    # No server: exit 5, naming the URL.
    dead = f"http://127.0.0.1:{free_port()}"
    line = Ctl(dead).error(5, None, "vm", "list")
    check(dead in line, line)

    # ---- settings: file < environment < flags -----------------------------
    home = tempfile.mkdtemp(prefix="vmhctl.")
    atexit.register(shutil.rmtree, home, True)
    cfgdir = os.path.join(home, ".config", "vmhost")
    os.makedirs(cfgdir)
    with open(os.path.join(cfgdir, "ctl.yaml"), "w") as f:
        f.write(f"# vmhostctl settings\nurl: {d.base}\noutput: json\n")
    byfile = Ctl(home=home, token=tok)
    check(json.loads(byfile.ok("vm", "show", "web1"))["id"] == vm["id"])
    byfile.error(5, None, "vm", "list", env={"VMHOST_URL": dead})
    byfile.ok("vm", "list", "--url", d.base, env={"VMHOST_URL": dead})
    out = byfile.ok("vm", "list", "-o", "table", env={"VMHOST_OUTPUT": "yaml"})
    check(out.startswith("NAME "), out)
    out = byfile.ok("vm", "list", env={"VMHOST_OUTPUT": "yaml"})
    check(out.startswith("---\nvms:"), out)
    # XDG_CONFIG_HOME, VMHOST_CONFIG and --config, and bad files.
    xdg = os.path.join(home, "xdg")
    os.makedirs(os.path.join(xdg, "vmhost"))
    with open(os.path.join(xdg, "vmhost", "ctl.yaml"), "w") as f:
        f.write(f"url: {dead}\n")
    byfile.error(5, None, "vm", "list", env={"XDG_CONFIG_HOME": xdg})
    bad = os.path.join(home, "bad.yaml")
    with open(bad, "w") as f:
        f.write(f"url: {d.base}\ncolour: red\n")
    line = byfile.error(2, None, "vm", "list", "--config", bad)
    check(f"{bad}:2: unknown key 'colour'" in line, line)
    line = byfile.error(2, None, "vm", "list", env={"VMHOST_CONFIG": bad})
    check(f"{bad}:2: unknown key 'colour'" in line, line)
    with open(bad, "w") as f:
        f.write("url: [a, b]\n")
    line = byfile.error(2, None, "vm", "list", "--config", bad)
    check(f"{bad}:1: url: expected a single value" in line, line)
    with open(bad, "w") as f:
        f.write("url: \"unterminated\n")
    byfile.error(2, None, "vm", "list", "--config", bad)
    line = byfile.error(2, None, "vm", "list", "--config", "/nonexistent.yaml")
    check("cannot read config /nonexistent.yaml" in line, line)
    tokfile = os.path.join(home, "token")
    with open(tokfile, "w") as f:
        f.write("\n")
    os.chmod(tokfile, 0o600)
    line = byfile.error(2, None, "vm", "list", "--token-file", tokfile)
    check("first line is empty" in line, line)
    with open(tokfile, "w") as f:
        f.write(f"{tok or 's3cret'}\n")
    os.chmod(tokfile, 0o644)
    rc, out, err = byfile("vm", "list", "--token-file", "~/token")  # ~/: $HOME
    check(rc == 0 and f"warning: {tokfile} holds a token and others may "
          f"read it (chmod 600 {tokfile})" in err, rc, err)
    os.chmod(tokfile, 0o600)
    rc, out, err = byfile("vm", "list", "--token-file", tokfile)
    check(rc == 0 and err == "", rc, err)
    with open(bad, "w") as f:
        f.write(f"url: {d.base}\ntoken: {tok or 's3cret'}\n")
    os.chmod(bad, 0o640)
    rc, out, err = byfile("vm", "list", "--config", bad)
    check(rc == 0 and f"warning: {bad} holds a token" in err, rc, err)

    # ---- events -----------------------------------------------------------
    # A subscription is made some time after the process starts: create
    # VMs until the first event shows, then check a known sequence.
    def events_until(proc, pred, what):
        """Lines of proc's stdout until pred(event) (JSON lines)."""
        seen = []
        while True:
            line = proc.stdout.readline()
            if not line:
                fail("events ended before", what, proc.stderr.read(), seen)
            ev = json.loads(line)
            seen.append(ev)
            if pred(ev):
                return seen

    def poke(i):
        ctl.ok("vm", "create", f"poke{i}", "--vcpus", "1", "--memory", "64M",
               "--no-start")
        ctl.ok("vm", "delete", f"poke{i}")

    counter = iter(range(1000))

    def subscribed(proc):
        """Poke until proc prints its first event (JSON)."""
        os.set_blocking(proc.stdout.fileno(), False)
        first = wait_for(lambda: poke(next(counter)) or proc.stdout.readline(),
                         "the first event")
        os.set_blocking(proc.stdout.fileno(), True)
        check("type" in json.loads(first), first)

    follow = ctl.popen("events", "--follow", "-o", "json")
    subscribed(follow)
    ev1 = ctl.json("vm", "create", "ev1", "--vcpus", "1", "--memory", "64M")
    ctl.ok("vm", "stop", "ev1")
    ctl.ok("vm", "delete", "ev1")
    seen = events_until(follow, lambda e: e.get("type") == "vm_deleted" and
                        e.get("vm_id") == ev1["id"], "ev1's deletion")
    mine = [e for e in seen if e.get("vm_id") == ev1["id"]]
    types = [e["type"] for e in mine]
    check("vm_created" in types and types[-1] == "vm_deleted", types)
    states = [e["state"] for e in mine if e["type"] == "vm_state"]
    check("running" in states and "stopped" in states, states)
    check(follow.poll() is None, "--follow ended")
    follow.terminate()
    follow.wait()

    # --count N ends after N; --vm keeps one VM's events.
    counted = ctl.popen("events", "--count", "2", "--vm", "web1", "-o",
                        "json")
    wait_for(lambda: ctl.ok("vm", "pause", "web1") is None or
             ctl.ok("vm", "resume", "web1") is None or
             counted.poll() is not None, "two events of web1")
    out, err = counted.communicate()
    check(counted.returncode == 0, counted.returncode, err)
    lines = out.splitlines()
    check(len(lines) == 2, out)
    check(all(json.loads(ln)["vm_id"] == vm["id"] for ln in lines), out)
    ctl.error(3, "NOT_FOUND", "events", "--vm", "nope")
    # --since replays what came after an id (the daemon keeps them), --type
    # filters in the daemon; a bad one is the daemon's 400.
    since = seen[0]["id"]
    replay = ctl.popen("events", "--since", since, "--type",
                       "vm_created,vm_deleted", "--type", "vm_state",
                       "--count", "3", "-o", "json")
    out, err = replay.communicate(timeout=60)
    check(replay.returncode == 0, replay.returncode, err)
    want = [e for e in seen[1:]
            if e["type"] in ("vm_created", "vm_deleted", "vm_state")][:3]
    check([json.loads(ln) for ln in out.splitlines()] == want, out, want)
    ctl.error(1, "INVALID_ARGUMENT", "events", "--type", "bogus")
    # Without options: the next event, in a table line.
    one = ctl.popen("events")
    wait_for(lambda: ctl.ok("vm", "pause", "web1") is None or
             ctl.ok("vm", "resume", "web1") is None or one.poll() is not None,
             "one event")
    out, err = one.communicate()
    check(one.returncode == 0 and len(out.splitlines()) == 1, out, err)
    # (Any of the pause's or resume's events: the subscription may come
    # in the middle of one's operation.)
    check(re.match(r"\S+ (vm_state|operation_created|operation_updated|"
                   r"operation_ended) ", out) and
          f"vm_id={vm['id']}" in out, out)

    # ---- operations, --no-wait ---------------------------------------------
    def no_wait(*args):
        rc, out, err = ctl(*args, "--no-wait")
        check(rc == 0 and re.match(r"^[0-9a-f-]{36}\n$", out), args, rc, out,
              err)
        return out.strip()

    opid = no_wait("vm", "create", "nw1", "--vcpus", "1", "--memory", "17MB",
                   "--no-start")
    op = ctl.json("operation", "wait", opid)
    validate("GET", f"{V}/operations/{opid}/wait", 200, op)
    check(op["status"] == "succeeded" and op["kind"] == "vm.create" and
          op["result"]["name"] == "nw1", op)
    # The daemon's size parser: MB is 10^6 bytes (KiB/MiB are 2^10, 2^20).
    check(ctl.json("vm", "show", "nw1")["memory"] == 17000000, "17MB")
    same_as_api(d, ctl, f"{V}/operations/{opid}", "operation", "show", opid)
    def nw1():
        return ctl.json("vm", "show", "nw1")

    # Every command the daemon runs as an operation takes --no-wait; each
    # one's effect is checked once its operation ended.
    for args, kind, done in (
            (("vm", "start", "nw1"), "vm.start",
             lambda: nw1()["state"] == "running"),
            (("vm", "pause", "nw1"), "vm.pause",
             lambda: nw1()["state"] == "paused"),
            (("vm", "resume", "nw1"), "vm.resume",
             lambda: nw1()["state"] == "running"),
            (("vm", "reboot", "nw1"), "vm.reboot",
             lambda: nw1()["state"] == "running"),
            (("vm", "label", "nw1", "tier=gold"), "vm.labels",
             lambda: nw1()["metadata"] == {"tier": "gold"}),
            (("vm", "snapshot", "create", "nw1", "s-nw"), "snapshot.create",
             lambda: [x["name"] for x in ctl.json(
                 "vm", "snapshot", "list", "nw1")["snapshots"]] == ["s-nw"]),
            (("vm", "snapshot", "revert", "nw1", "s-nw"), "snapshot.revert",
             lambda: True),
            (("vm", "disk", "attach", "nw1", "vdb,size=1MiB"), "disk.attach",
             lambda: [x["name"] for x in nw1()["disks"]] == ["vdb"]),
            (("vm", "disk", "detach", "nw1", "vdb"), "disk.detach",
             lambda: nw1()["disks"] == []),
            (("vm", "snapshot", "delete", "nw1", "s-nw"), "snapshot.delete",
             lambda: ctl.json("vm", "snapshot", "list", "nw1") ==
             {"snapshots": []}),
            (("vm", "stop", "nw1", "--force"), "vm.stop",
             lambda: nw1()["state"] == "stopped"),
            (("volume", "create", "pool0", "nw-vol", "--size", "1MiB"),
             "volume.create", lambda: True),
            (("volume", "resize", "pool0", "nw-vol", "2MiB"),
             "volume.resize", lambda: ctl.json(
                 "volume", "show", "pool0", "nw-vol")["capacity"] == 2 << 20),
            (("volume", "delete", "pool0", "nw-vol"), "volume.delete",
             lambda: ctl("volume", "show", "pool0", "nw-vol")[0] == 3)):
        o = ctl.json("operation", "wait", no_wait(*args), "--timeout", "60")
        check(o["status"] == "succeeded" and o["kind"] == kind, args, o)
        check(done(), args, "did not do its work")
    ctl.error(2, None, "vm", "show", "nw1", "--no-wait")
    # A failed one: exit 1, its error said.
    opid2 = no_wait("vm", "stop", "nw1")
    rc, out, err = ctl("operation", "wait", opid2)
    check(rc == 1 and f"operation {opid2} failed: " in err, rc, out, err)
    # Ended: cancel is refused (exit 4).
    ctl.error(4, "INVALID_STATE", "operation", "cancel", opid)
    ctl.error(3, "NOT_FOUND", "operation", "show",
              "00000000-0000-4000-8000-000000000000")
    same_as_api(d, ctl, f"{V}/operations?vm=nw1&status=succeeded",
                "operation", "list", "--vm", "nw1", "--status", "succeeded")
    table = ctl.ok("operation", "list", "--vm", "nw1", "--limit", "2")
    rows = [ln.split() for ln in table.splitlines()]
    check(rows[0] == ["ID", "KIND", "STATUS", "VM", "POOL", "OBJECT",
                      "PERCENT", "CREATED"] and len(rows) == 3 and
          rows[1][:4] == [opid2, "vm.stop", "failed", "nw1"], table)
    check(ctl.ok("operation", "list", "--limit", "1", "-o", "name") ==
          opid2 + "\n", "-o name: the id")
    ctl.error(1, "INVALID_ARGUMENT", "operation", "list", "--status", "done")
    opid3 = no_wait("vm", "delete", "nw1")
    o = ctl.json("operation", "wait", opid3)
    check(o["status"] == "succeeded" and o["result"] is None, o)

    # ---- delete -----------------------------------------------------------
    for name in ("db1", "ci1"):
        ctl.ok("vm", "delete", name)
    rc, out, err = ctl("vm", "delete", "web1")
    check(rc == 0, rc, err)
    ctl.error(3, "NOT_FOUND", "vm", "delete", "web1")
    check(ctl.json("vm", "list") == {"vms": []}, "left behind")

    # ---- tokens (admin) ----------------------------------------------------
    made = ctl.json("token", "create", "ci-reader", "--role", "reader")
    validate("POST", V + "/settings/tokens", 201, made)
    check(made["name"] == "ci-reader" and made["role"] == "reader" and
          made["token"].startswith("vmh_"), made)
    listed = same_as_api(d, ctl, V + "/settings/tokens", "token", "list")
    check("ci-reader" in [t["name"] for t in listed["tokens"]], listed)
    check("token" not in str(listed["tokens"]).replace("'name'", ""),
          "a secret listed", listed)
    table = ctl.ok("token", "list")
    check(table.splitlines()[0].split() == ["NAME", "ROLE", "CREATED"] and
          "ci-reader" in table, table)
    # The new token works, as a reader: a write is refused (exit 6).
    reader = Ctl(d.base, token=made["token"])
    reader.ok("vm", "list")
    reader.error(6, "PERMISSION_DENIED", "token", "list")
    ctl.error(4, "ALREADY_EXISTS", "token", "create", "ci-reader", "--role",
              "reader")
    ctl.error(2, None, "token", "create", "x")  # no --role
    ctl.error(1, "INVALID_ARGUMENT", "token", "create", "x", "--role", "root")
    check(ctl.ok("token", "revoke", "ci-reader") == "", "revoke prints")
    reader.error(6, "UNAUTHENTICATED", "vm", "list")
    ctl.error(3, "NOT_FOUND", "token", "revoke", "ci-reader")

    # ---- the agent downloads (open) -----------------------------------------
    same_as_api(d, ctl, V + "/agent/version", "agent", "version")
    anon = Ctl(d.base)
    script = anon.ok("agent", "install-script")
    st, _, want = d.get(V + "/agent/install.sh", token=False)
    check(st == 200 and script == want and script.startswith("#!/bin/sh"),
          script[:200])
    ctl.ran |= anon.ran | reader.ran

    # ---- bash completion from the table ---------------------------------
    script = ctl.ok("completion", "bash")

    def complete(*words):
        cmd = f"""{script}
COMP_WORDS=({VMHOSTCTL} {' '.join(repr(w) if w else '""' for w in words)})
COMP_CWORD={len(words)}
_vmhostctl
echo "${{COMPREPLY[*]}}"
"""
        r = subprocess.run(["bash", "--norc", "-c", cmd], capture_output=True,
                           text=True)
        check(r.returncode == 0, r.stderr)
        return sorted(r.stdout.split())

    cmds = ctl.commands()
    check(complete("") == sorted({c.split()[0] for c in cmds}),
          complete(""))
    check(complete("vm", "") == sorted({c.split()[1] for c in cmds
                                        if c.startswith("vm ")}),
          complete("vm", ""))
    check(complete("vm", "snapshot", "re") == ["revert"])
    check(complete("--url", "http://x", "vm", "st") == ["start", "stop"])
    check(complete("vm", "stop", "web1", "--f") == ["--force"])
    check("--insecure" in complete("vm", "list", "--"))
    check(complete("-o", "y") == ["yaml"])
    check(complete("operation", "") == ["cancel", "list", "show", "wait"],
          complete("operation", ""))
    check(complete("vm", "start", "x", "--n") == ["--no-wait"],
          complete("vm", "start", "x", "--n"))
    check(complete("vm", "create", "x", "--disk", "vda", "--n") ==
          ["--network-config", "--nic", "--no-start", "--no-wait"])
    # Names from the server the line names (-o name).
    ctl.ok("vm", "create", "comp1", "--vcpus", "1", "--memory", "64M")
    ctl.ok("volume", "create", "pool0", "vol-c", "--size", "1M")
    u = ("--url", d.base) + (("--token", tok) if tok else ())
    check(complete(*u, "vm", "stop", "") == ["comp1"], complete(*u, "vm", "stop", ""))
    check(complete(*u, "vm", "snapshot", "list", "c") == ["comp1"])
    check(complete(*u, "pool", "show", "") == ["pool0"])
    check(complete(*u, "network", "show", "n") == ["net0"])
    check("vol-c" in complete(*u, "volume", "resize", "pool0", ""),
          complete(*u, "volume", "resize", "pool0", ""))
    ctl.ok("image", "import", "pool0", "img-c", "https://e/c", "--sha256",
           "cd" * 32)
    check(complete(*u, "image", "delete", "pool0", "") == ["img-c"],
          complete(*u, "image", "delete", "pool0", ""))
    check(complete(*u, "vm", "stop", "comp1", "") == [], "one VM argument")
    check(ctl.ok("vm", "list", "-o", "name") == "comp1\n")
    check(ctl.ok("volume", "show", "pool0", "vol-c", "-o", "name") == "vol-c\n")

    # Every command of the table was run above (cert: in the TLS test;
    # exec and files need an agent: test-vmhostctl-agent.py).
    missing = [c for c in ctl.not_run() if not c.startswith("cert ") and
               c not in ("vm agent exec", "vm agent file get",
                         "vm agent file put")]
    check(not missing, "commands the test never ran:", missing)
    check(ctl.ok("--version").startswith("vmhostctl "), "version")

    # The daemon stops under --follow: exit 5, naming the server.
    follow = ctl.popen("events", "--follow", "-o", "json")
    subscribed(follow)
    d.stop()
    out, err = follow.communicate(timeout=60)
    check(follow.returncode == 5, follow.returncode, err)
    check(err.startswith("vmhostctl: ") and
          ("ended the event stream" in err or d.base in err), err)

    # vmhostctl(1) documents every command and option of the table.
    with open(os.path.join(os.environ.get("top_srcdir", ".."), "docs", "man",
                           "vmhostctl.1.scd")) as f:
        page = f.read()
    for c in cmds:
        check(f"*{c}*" in page, "vmhostctl(1) lacks the command", c)
        for opt in re.findall(r"^  (--[a-z0-9-]+)",
                              ctl.ok(*c.split(), "--help"), re.M):
            check(f"*{opt}*" in page, "vmhostctl(1) lacks", c, opt)
