#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The agent downloads of the REST front-end (/api/v1/agent/*), open to
anyone, against real files and a real upstream: a python http.server the
test starts on 127.0.0.1 (its log tells which files it was asked for).

- a file of agent.paths served as it is (bytes, content type, ETag,
  Content-Length, 304 on If-None-Match), the first directory that has it
  winning, a replaced file noticed;
- missing locally: fetched from the upstream, verified against
  agent.sha256, cached in agent.cache_dir (the next request, and the next
  daemon, do not ask the upstream again); a mismatch, or an upstream that
  does not answer, is 502 and leaves nothing in the cache;
- arch and package names outside the fixed set refused; a link out of a
  directory of agent.paths never followed;
- the per-peer rate limit (429 + retry-after), unix-socket peers exempt;
- install.sh: `sh -n`, shellcheck, and run in a scratch root with a fake
  uname and dpkg: the binary or the .deb fetched from the node and checked,
  a download that differs from what the node said refused;
- agent.* config errors named at start."""
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile

from resttest import RestDaemon, validate
from vmhtest import VMHOSTD, check, free_port, skip, wait_for

for cmd in ("shellcheck", "curl", "sha256sum"):
    if not shutil.which(cmd):
        skip(f"{cmd} is not installed")

tmp = tempfile.mkdtemp(prefix="vmhagent.")


def sha(b):
    return hashlib.sha256(b).hexdigest()


def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def get(d, path, headers=None, method="GET"):
    """(status, headers, body bytes), without credentials."""
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def error(d, path, status, code):
    st, h, body = get(d, path)
    check(st == status, path, "answered", st, body)
    v = json.loads(body)
    check(v["error"]["code"] == code, path, v)
    validate("GET", path, st, v)
    return v["error"]["message"], h


# ---- the files ------------------------------------------------------------
local1, local2 = f"{tmp}/local1", f"{tmp}/local2"
upstream_dir, cache = f"{tmp}/upstream", f"{tmp}/cache"
AMD64 = os.urandom(300000)
AMD64_2 = os.urandom(1000)  # local1's, once it has one
ARM64 = os.urandom(200000)
AMD64_DEB = b"!<arch>\n" + os.urandom(5000)
put(f"{local2}/linux/amd64", AMD64)
os.makedirs(f"{local1}/linux")
# A link out of the directory: never followed.
os.symlink("/etc/hostname", f"{local1}/linux/arm64.deb")
put(f"{upstream_dir}/linux/arm64", ARM64)
put(f"{upstream_dir}/linux/amd64.deb", AMD64_DEB)
put(f"{upstream_dir}/linux/arm64.deb", b"not what the pin says")

# ---- the upstream: python's http.server, stopped by PID -------------------
up_port = free_port()
up_log = open(f"{tmp}/upstream.log", "w")
upstream = subprocess.Popen(
    ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory",
     upstream_dir, str(up_port)], stdout=up_log, stderr=up_log)


def upstream_listens():
    try:
        socket.create_connection(("127.0.0.1", up_port), timeout=1).close()
        return True
    except OSError:
        return False


def upstream_hits(name):
    with open(f"{tmp}/upstream.log") as f:
        return f.read().count(f"GET /{name} ")


try:
    wait_for(upstream_listens, "the upstream http.server")

    def agent_yaml(extra=""):
        return f"""    agent:
      paths: [ {local1}, {local2} ]
      upstream: "http://127.0.0.1:{up_port}/"
      cache_dir: {cache}
      image_sources: {{ allow_private: true }}
      requests_per_minute: 60000
      burst: 10000
      sha256:
        linux/arm64: {sha(ARM64)}
        linux/amd64.deb: {sha(AMD64_DEB)}
        linux/arm64.deb: {sha(b"what the pin says")}
{extra}"""

    with RestDaemon(rest=agent_yaml()) as d:
        # ---- a local file, as it is, without credentials -----------------
        for arch in ("amd64", "x86_64"):
            st, h, body = get(d, f"/api/v1/agent/linux/{arch}")
            check(st == 200 and body == AMD64, arch, st, len(body))
            check(h["content-type"] == "application/octet-stream", h)
            check(h["etag"] == f'"{sha(AMD64)}"', h)
            check(h["x-checksum-sha256"] == sha(AMD64), h)
            check(int(h["content-length"]) == len(AMD64), h)
        st, h, body = get(d, "/api/v1/agent/linux/amd64",
                          {"if-none-match": f'"{sha(AMD64)}"'})
        check(st == 304 and body == b"", "If-None-Match", st)
        st, h, body = get(d, "/api/v1/agent/linux/amd64", method="HEAD")
        check(st == 200 and body == b"" and
              int(h["content-length"]) == len(AMD64), "HEAD", st, h)
        # The first directory that has it wins; a new file is noticed.
        put(f"{local1}/linux/amd64", AMD64_2)
        st, h, body = get(d, "/api/v1/agent/linux/amd64")
        check(st == 200 and body == AMD64_2, "local1 first", st, len(body))
        os.unlink(f"{local1}/linux/amd64")
        st, h, body = get(d, "/api/v1/agent/linux/amd64")
        check(st == 200 and body == AMD64, "back to local2", st, len(body))
        # Over HTTP/2 too (curl, prior knowledge).
        r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o",
                            f"{tmp}/h2.bin", "-w", "%{http_code}",
                            f"{d.base}/api/v1/agent/linux/amd64"],
                           capture_output=True, text=True)
        with open(f"{tmp}/h2.bin", "rb") as f:
            check(r.stdout == "200" and f.read() == AMD64, "h2", r)

        # ---- missing locally: the upstream, verified, cached -------------
        st, h, body = get(d, "/api/v1/agent/linux/arm64")
        check(st == 200 and body == ARM64, "upstream", st, body[:200])
        check(h["etag"] == f'"{sha(ARM64)}"', h)
        check(upstream_hits("linux/arm64") == 1, "one download")
        with open(f"{cache}/linux/arm64", "rb") as f:
            check(f.read() == ARM64, "cached")
        st, h, body = get(d, "/api/v1/agent/linux/arm64")
        check(st == 200 and body == ARM64, "again", st)
        check(upstream_hits("linux/arm64") == 1, "the cache was not used")
        # The .deb: its content type; the link in local1 was not followed.
        st, h, body = get(d, "/api/v1/agent/linux/amd64.deb")
        check(st == 200 and body == AMD64_DEB, ".deb", st, body[:200])
        check(h["content-type"] == "application/vnd.debian.binary-package",
              h)
        check("vmhost-agent_amd64.deb" in h["content-disposition"], h)

        # ---- a mismatch: 502, nothing cached -----------------------------
        msg, _ = error(d, "/api/v1/agent/linux/arm64.deb", 502, "IO_ERROR")
        check("sha256" in msg.lower() or "digest" in msg.lower(), msg)
        check(not os.path.exists(f"{cache}/linux/arm64.deb"), "cached")
        check(sorted(os.listdir(f"{cache}/linux")) == ["amd64.deb", "arm64"],
              "leftovers in the cache", os.listdir(f"{cache}/linux"))
        with open("/etc/hostname", "rb") as f:
            hostname = f.read()
        check("is not a regular file inside" in d.log(), "the link")
        check(hostname not in body, "the link was followed")

        # ---- names outside the fixed set ---------------------------------
        for path in ("/api/v1/agent/linux/..", "/api/v1/agent/linux/....deb",
                     "/api/v1/agent/linux/..%2f..%2fetc%2fpasswd",
                     "/api/v1/agent/linux/%2e%2e", "/api/v1/agent/linux/AMD64",
                     "/api/v1/agent/linux/amd64.deb.deb",
                     "/api/v1/agent/linux/amd64%00",
                     "/api/v1/agent/linux/i386.deb",
                     "/api/v1/agent/linux/amd64.rpm"):
            msg, _ = error(d, path, 400, "INVALID_ARGUMENT")
            check("amd64" in msg and "arm64" in msg, path, msg)
        for path in ("/api/v1/agent/linux/../../../etc/passwd",
                     "/api/v1/agent/linux/amd64/x", "/api/v1/agent/linux/",
                     "/api/v1/agent/windows/amd64"):
            st, _, body = get(d, path)
            check(st in (400, 404) and b"root:" not in body, path, st, body)
        st, _, body = get(d, "/api/v1/agent/version?x=1")
        check(st == 400, "a query", st, body)

        # ---- version ------------------------------------------------------
        st, h, body = get(d, "/api/v1/agent/version")
        check(st == 200 and h["content-type"] == "application/json", st, h)
        v = json.loads(body)
        validate("GET", "/api/v1/agent/version", 200, v)
        arts = {(a["arch"], a["format"]): a for a in v["artifacts"]}
        check(v["version"] and len(arts) == 4, v)
        check(arts["amd64", "binary"]["sha256"] == sha(AMD64) and
              arts["amd64", "binary"]["source"] == "local" and
              arts["amd64", "binary"]["size"] == len(AMD64), v)
        check(arts["arm64", "binary"]["source"] == "cache", v)
        check(arts["arm64", "deb"]["available"] and
              arts["arm64", "deb"]["source"] == "upstream", v)
        check(tmp not in body.decode(), "host paths in the answer", v)

        # ---- install.sh ----------------------------------------------------
        st, h, script = get(d, "/api/v1/agent/install.sh")
        check(st == 200 and h["content-type"].startswith("text/x-shellscript"),
              st, h)
        text = script.decode()
        check(f"NODE='http://127.0.0.1:{d.port}'" in text, text[:2000])
        check(sha(AMD64) in text and sha(AMD64_DEB) in text, "the sums")
        spath = f"{tmp}/install.sh"
        with open(spath, "w") as f:
            f.write(text)
        r = subprocess.run(["sh", "-n", spath], capture_output=True,
                           text=True)
        check(r.returncode == 0, "sh -n", r.stderr)
        r = subprocess.run(["shellcheck", "-s", "sh", spath],
                           capture_output=True, text=True)
        check(r.returncode == 0, "shellcheck:", r.stdout, r.stderr)
        # A Host field that is not a plain host[:port] is refused.
        st, _, body = get(d, "/api/v1/agent/install.sh",
                          {"host": "x';reboot;'"})
        check(st == 400, "a hostile Host", st, body)

        def run_script(machine, dpkg, env_extra=None):
            """The script in a scratch root, a fake uname (Linux, machine)
            and, with dpkg, a fake dpkg that keeps what it was given."""
            root = tempfile.mkdtemp(dir=tmp)
            fake = tempfile.mkdtemp(dir=tmp)
            with open(f"{fake}/uname", "w") as f:
                f.write(f"""#!/bin/sh
case $1 in -s) echo Linux ;; -m) echo {machine} ;; *) exit 2 ;; esac
""")
            if dpkg:
                with open(f"{fake}/dpkg", "w") as f:
                    f.write("""#!/bin/sh
echo "$@" >"$VMHOST_ROOT/dpkg-args"
for a; do f=$a; done
cp "$f" "$VMHOST_ROOT/dpkg-got.deb"
""")
            for p in os.listdir(fake):
                os.chmod(f"{fake}/{p}", 0o755)
            path = fake + ":" + os.environ["PATH"]
            if not dpkg:  # a PATH without the system's dpkg
                bins = tempfile.mkdtemp(dir=tmp)
                for tool in ("sh", "curl", "sha256sum", "cut", "mktemp",
                             "rm", "mkdir", "install", "mv", "cat", "id"):
                    os.symlink(shutil.which(tool), f"{bins}/{tool}")
                path = fake + ":" + bins
            env = {"PATH": path, "VMHOST_ROOT": root, **(env_extra or {})}
            r = subprocess.run(["sh", spath], capture_output=True, text=True,
                               env=env, timeout=120)
            return r, root

        r, root = run_script("x86_64", dpkg=False)
        check(r.returncode == 0, "install.sh (binary):", r.stdout, r.stderr)
        with open(f"{root}/usr/sbin/vmhost-agent", "rb") as f:
            check(f.read() == AMD64, "the installed binary")
        check(os.stat(f"{root}/usr/sbin/vmhost-agent").st_mode & 0o111,
              "not executable")
        with open(f"{root}/etc/vmhost/agent.yaml") as f:
            check("allow_freeze" in f.read(), "agent.yaml")
        with open(f"{root}/etc/systemd/system/vmhost-agent.service") as f:
            check("ExecStart=/usr/sbin/vmhost-agent" in f.read(), "unit")
        check("SHA-256 verified" in r.stdout, r.stdout)

        r, root = run_script("aarch64", dpkg=False)
        check(r.returncode == 0, "install.sh (arm64):", r.stdout, r.stderr)
        with open(f"{root}/usr/sbin/vmhost-agent", "rb") as f:
            check(f.read() == ARM64, "the arm64 binary")
        # arm64's .deb: the node cannot give it (its upstream's differs).
        r, root = run_script("aarch64", dpkg=True)
        check(r.returncode != 0 and "cannot download" in r.stderr, r.stderr)
        check(not os.path.exists(f"{root}/dpkg-got.deb"), "dpkg ran")

        r, root = run_script("x86_64", dpkg=True)
        check(r.returncode == 0, "install.sh (deb):", r.stdout, r.stderr)
        with open(f"{root}/dpkg-got.deb", "rb") as f:
            check(f.read() == AMD64_DEB, "the .deb given to dpkg")
        with open(f"{root}/dpkg-args") as f:
            check(f.read().startswith(f"--root={root} -i "), "dpkg args")

        r, root = run_script("riscv64", dpkg=False)
        check(r.returncode != 0 and "riscv64" in r.stderr, r.stderr)

        # The node's file changed after the script was made: refused.
        put(f"{local2}/linux/amd64", b"tampered")
        r, root = run_script("x86_64", dpkg=False)
        check(r.returncode != 0 and "not installed" in r.stderr, r.stderr)
        check(not os.path.exists(f"{root}/usr/sbin/vmhost-agent"),
              "a binary that failed its check was installed")
        put(f"{local2}/linux/amd64", AMD64)
        check(d.stop() == 0, "vmhostd exit")

    # A new daemon: the cache answers, the upstream is not asked.
    with RestDaemon(rest=agent_yaml()) as d:
        st, _, body = get(d, "/api/v1/agent/linux/arm64")
        check(st == 200 and body == ARM64, st)
        check(upstream_hits("linux/arm64") == 1, "asked again after restart")
        check(d.stop() == 0)

    # ---- no upstream: 404; the rate limit --------------------------------
    with RestDaemon(rest=f"""    agent:
      paths: [ {local2} ]
      requests_per_minute: 1
      burst: 3
""") as d:
        msg, _ = error(d, "/api/v1/agent/linux/arm64", 404, "NOT_FOUND")
        check(tmp not in msg, "a host path shown to anyone", msg)
        for _ in range(2):
            st, _, _ = get(d, "/api/v1/agent/linux/amd64")
            check(st == 200, st)
        st, h, body = get(d, "/api/v1/agent/version")
        check(st == 429, "the fourth request", st, body)
        check(json.loads(body)["error"]["code"] == "RATE_LIMITED", body)
        check(int(h["retry-after"]) >= 1, h)
        # Unix-socket peers are local: not limited.
        for _ in range(5):
            r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w",
                                "%{http_code}", "--unix-socket", d.usock,
                                "http://localhost/api/v1/agent/version"],
                               capture_output=True, text=True)
            check(r.stdout == "200", "unix socket", r.stdout, r.stderr)
        check(d.stop() == 0)

    # ---- an upstream that does not answer: 502, nothing cached --------------
    dead = free_port()
    with RestDaemon(rest=f"""    agent:
      paths: [ {local2} ]
      upstream: "http://127.0.0.1:{dead}"
      cache_dir: {tmp}/cache2
      image_sources: {{ allow_private: true }}
      sha256: {{ linux/arm64: {sha(ARM64)} }}
""") as d:
        msg, _ = error(d, "/api/v1/agent/linux/arm64", 502, "IO_ERROR")
        check(str(dead) in msg, msg)
        check(not os.path.exists(f"{tmp}/cache2/linux/arm64"), "cached")
        check(d.stop() == 0)

    # ---- config errors name the key ----------------------------------------
    for bad, want in (
            ("sha256: { linux/i386: abc }", "linux/i386"),
            ("sha256: { linux/amd64: 1234 }", "64 hex digits"),
            ("upstream: ftp://x", "agent.upstream"),
            ("paths: /not/a/list", "paths"),
            ("url: \"http://x/$(reboot)\"", "agent.url"),
            ("burst: 0", "burst"),
            ("typo: 1", "typo")):
        d = RestDaemon(rest=f"    agent:\n      {bad}\n")
        r = subprocess.run([VMHOSTD, "--config", d.config, "--check-config"],
                           capture_output=True, text=True)
        check(r.returncode == 2 and want in r.stderr, bad, r.returncode,
              r.stderr)
        shutil.rmtree(d.tmpdir)
finally:
    upstream.terminate()
    upstream.wait()
    up_log.close()

shutil.rmtree(tmp)
print("ok")
