#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A storage plugin built against ABI 1.0 (tests/plugins/old-minor.so) serves
through a 1.1 vmhostd: its 1.0 operations work, and the 1.1 operations it
was built without (the image cache) answer "not supported" — no crash; the
fields appended to the structs it fills (pool info's 1.2 message) read as
absent, not as what lies past its struct."""
import os

from vmhtest import BUILDDIR, Daemon, check, expect

OLD = os.path.join(BUILDDIR, "plugins", ".libs", "old-minor.so")
check(os.path.exists(OLD), OLD, "is not built")

with Daemon(f"""
hypervisors:
  - {{ name: hv0, plugin: mock }}
storage:
  - {{ name: old, plugin: old-minor, file: {OLD} }}
networks:
  - {{ name: net0, plugin: mock }}
""") as d:
    pools = d.ok(op="pool_list")["pools"]
    check([p["name"] for p in pools] == ["old"] and pools[0]["type"] == "old-minor", pools)
    check("message" in pools[0] and pools[0]["message"] is None, pools)
    for req in ({"op": "image_list", "pool": "old"},
                {"op": "image_delete", "pool": "old", "image": "base"},
                {"op": "image_import", "pool": "old",
                 "image": {"name": "base", "url": "file:///x", "sha256": "0" * 64}}):
        r = expect(d.call(**req), "not_supported", req)
        check(r["http"] == 501, r)
        check("does not support image_" in r["message"], r)
    plugins = {p["name"]: p for p in d.ok(op="plugin_list")["plugins"]}
    check(plugins["old-minor"]["abi_minor"] == 0, plugins["old-minor"])
    check(d.stop() == 0, "clean exit")
