# SPDX-License-Identifier: LGPL-2.1-or-later
# Admission control and host resources (core/resources.c) end to end on
# the mocks, through the REST and gRPC front-ends, and the host telemetry.
# Included by tests/Makefile.am.
if BUILD_PLUGIN_REST
TESTS += test-resources.py
endif
if BUILD_PLUGIN_RPC
TESTS += test-resources-rpc.py
endif
EXTRA_DIST += test-resources.py test-resources-rpc.py
