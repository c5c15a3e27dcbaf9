#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Startup benchmark: time from exec to "vmhostd ready" and idle RSS.

Runs vmhostd N times on a config with every mock plugin loaded, each time
with a fresh state directory, and reports the median and the spread.  A
reference is measured in the same run: exec of /bin/true (the floor any
process start pays) so figures from different machines can be compared.

    tests/bench/startup.py [--runs 30] [--vmhostd core/vmhostd]

Figures are printed, never asserted (see the issue notes for results).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

CONFIG = """
daemon:
  state_dir: state
  log: {level: info}
  workers: 8
  reconcile_interval: 0
hypervisors:
  - {name: hv0, plugin: mock}
storage:
  - {name: pool0, plugin: mock}
networks:
  - {name: net0, plugin: mock}
"""


def one_run(vmhostd, tmp):
    shutil.rmtree(os.path.join(tmp, "state"), ignore_errors=True)
    cfg = os.path.join(tmp, "vmhostd.yaml")
    t0 = time.perf_counter()
    p = subprocess.Popen([vmhostd, "--config", cfg], stderr=subprocess.PIPE,
                         text=True)
    for line in p.stderr:
        if "vmhostd ready" in line:
            break
    else:
        raise SystemExit("vmhostd exited before it was ready")
    ready_ms = (time.perf_counter() - t0) * 1e3
    time.sleep(0.5)  # idle: workers parked, nothing in flight
    rss = benchlib.rss_kb(p.pid)
    p.terminate()
    p.wait()
    return ready_ms, rss


def floor_ms(runs):
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        out.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(out)


def main():
    top = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--vmhostd", default=os.environ.get(
        "VMHOSTD", os.path.join(top, "core", "vmhostd")))
    args = ap.parse_args()
    if "VMHOST_PLUGIN_DIR" not in os.environ:
        # The plugins built beside this vmhostd (top_builddir/plugins).
        builddir = os.path.dirname(os.path.dirname(os.path.abspath(args.vmhostd)))
        dirs = sorted(d for d, _, _ in os.walk(os.path.join(builddir, "plugins"))
                      if d.endswith("/.libs"))
        os.environ["VMHOST_PLUGIN_DIR"] = ":".join(dirs)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "vmhostd.yaml"), "w") as f:
            f.write(CONFIG)
        results = [one_run(args.vmhostd, tmp) for _ in range(args.runs)]
    ready = sorted(r[0] for r in results)
    rss = sorted(r[1] for r in results)
    print(f"runs: {args.runs}")
    print(f"exec -> ready: median {statistics.median(ready):.2f} ms, "
          f"min {ready[0]:.2f}, max {ready[-1]:.2f}")
    print(f"idle RSS: median {statistics.median(rss) / 1024:.2f} MiB, "
          f"min {rss[0] / 1024:.2f}, max {rss[-1] / 1024:.2f}")
    print(f"reference: exec of /bin/true: median {floor_ms(args.runs):.2f} ms")


if __name__ == "__main__":
    main()
