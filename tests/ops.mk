# SPDX-License-Identifier: LGPL-2.1-or-later
# Long operations (core/operations.c) through the REST and gRPC front-ends
# on the mock backends: 202 + Location, wait, list, cancel, a client gone,
# the bounds, transitional VM states.  Included by tests/Makefile.am.
if BUILD_PLUGIN_REST
TESTS += test-operations.py
endif
if BUILD_PLUGIN_RPC
TESTS += test-operations-rpc.py
endif
EXTRA_DIST += test-operations.py test-operations-rpc.py
