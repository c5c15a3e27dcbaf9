# SPDX-License-Identifier: LGPL-2.1-or-later
# The Prometheus metrics (core/metrics.c, core/vmmetrics.c, the REST and
# gRPC front-ends' families) end to end: promtool, exact deltas,
# docs/metrics.md against a scrape.  Included by tests/Makefile.am.
if BUILD_PLUGIN_REST
if BUILD_PLUGIN_RPC
TESTS += test-prometheus.py
endif
endif
EXTRA_DIST += test-prometheus.py
