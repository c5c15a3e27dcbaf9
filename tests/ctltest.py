# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers of vmhostctl's tests (cli/): run the built vmhostctl against a
RestDaemon (resttest.py) with a clean environment and a HOME of its own,
so that no setting of the developer's leaks in.

    from ctltest import Ctl
    with RestDaemon() as d:
        ctl = Ctl(d.base)
        rc, out, err = ctl("vm", "list", "-o", "json")
"""
import atexit
import json
import os
import re
import shutil
import subprocess
import tempfile

from vmhtest import BUILDDIR, check, fail, skip

VMHOSTCTL = os.environ.get("VMHOSTCTL",
                           os.path.join(BUILDDIR, "..", "cli", "vmhostctl"))

# An API error as vmhostctl prints it.
ERROR_RE = re.compile(r"^vmhostctl: ([A-Z_]+): (.+) \(request ([0-9a-f]+)\)$")


def require_vmhostctl():
    if not os.access(VMHOSTCTL, os.X_OK):
        skip(f"{VMHOSTCTL} is not built (configure --enable-cli)")


def daemon_token(d):
    """The token a RestDaemon's API wants, when its rest front-end checks
    tokens (RestDaemon.token()); None while it takes every request."""
    return d.token() if hasattr(d, "token") else None


class Ctl:
    """vmhostctl with url (None: none given), token (VMHOST_TOKEN) and
    extra environment; every command it runs is remembered in self.ran
    (its words)."""

    def __init__(self, url=None, env=None, home=None, token=None):
        require_vmhostctl()
        self.url = url
        if not home:
            home = tempfile.mkdtemp(prefix="vmhctl.")
            atexit.register(shutil.rmtree, home, True)
        self.home = home
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("VMHOST_") or k == "VMHOST_PLUGIN_DIR"}
        self.env.pop("XDG_CONFIG_HOME", None)
        self.env["HOME"] = self.home
        if token:
            self.env["VMHOST_TOKEN"] = token
        self.env.update(env or {})
        self.ran = set()

    def argv(self, args):
        return [VMHOSTCTL] + (["--url", self.url] if self.url else []) + \
            list(args)

    def __call__(self, *args, stdin=None, env=None):
        e = dict(self.env, **(env or {}))
        r = subprocess.run(self.argv(args), capture_output=True, text=True,
                           input=stdin, env=e, timeout=120)
        self.ran.add(" ".join(a for a in args if not a.startswith("-")))
        check("AddressSanitizer" not in r.stderr and
              "runtime error" not in r.stderr, args, r.stderr)
        return r.returncode, r.stdout, r.stderr

    def popen(self, *args):
        return subprocess.Popen(self.argv(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env=self.env)

    def ok(self, *args, **kw):
        rc, out, err = self(*args, **kw)
        if rc != 0:
            fail("vmhostctl", *args, "exited", rc, err)
        return out

    def json(self, *args, **kw):
        out = self.ok(*args, "-o", "json", **kw)
        try:
            return json.loads(out)
        except ValueError:
            fail("vmhostctl", *args, "-o json: not JSON:", out)

    def error(self, rc_expected, code, *args, **kw):
        """A command that must fail with exit code rc_expected and print
        the API's error code (None: not an API error, any message)."""
        rc, out, err = self(*args, **kw)
        if rc != rc_expected:
            fail("vmhostctl", *args, f"exited {rc}, expected {rc_expected}:",
                 err)
        line = err.strip().splitlines()[0] if err.strip() else ""
        if code:
            m = ERROR_RE.match(line)
            check(m and m.group(1) == code, args, "expected", code, "got", err)
            return m
        check(line.startswith("vmhostctl: "), args, "message:", err)
        return line

    def commands(self):
        """Every command of the table, from --help."""
        out = self.ok("--help")
        block = out.split("Commands:\n")[1].split("\n\n")[0]
        cmds = []
        for line in block.splitlines():
            left = re.split(r"\s{2,}", line.strip())[0]
            words = []
            for w in left.split():
                if not re.match(r"^[a-z][a-z-]*$", w):
                    break
                words.append(w)
            cmds.append(" ".join(words))
        return cmds

    def not_run(self):
        """The commands no call ran."""
        return [c for c in self.commands()
                if not any((r + " ").startswith(c + " ") for r in self.ran)]
