# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a benchmark run by hand from a build tree needs before it imports
the test helpers: the environment `make check` gives the tests (builddir,
VMHOSTD, VMHOST_PLUGIN_DIR; values already set are kept) and tests/ on
sys.path.

    import benchenv
    benchenv.setup(args.builddir)
    from vmhtest import Daemon
"""
import os
import sys


def setup(builddir):
    os.environ.setdefault("builddir", os.path.join(builddir, "tests"))
    os.environ.setdefault("VMHOSTD", os.path.join(builddir, "core", "vmhostd"))
    os.environ.setdefault("VMHOST_PLUGIN_DIR", ":".join(sorted({
        os.path.dirname(os.path.join(r, f))
        for r, _, fs in os.walk(os.path.join(builddir, "plugins"))
        for f in fs if r.endswith(".libs") and f.endswith(".so")})))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    ".."))
