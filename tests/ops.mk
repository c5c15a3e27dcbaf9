# SPDX-License-Identifier: LGPL-2.1-or-later
# Long operations (core/operations.c) through the REST and gRPC front-ends
# on the mock backends: 202 + Location, wait, list, cancel, a client gone,
# the bounds, transitional VM states.  Included by tests/Makefile.am.
OPS_TESTS = test-operations.py
if BUILD_PLUGIN_REST
TESTS += $(OPS_TESTS)
endif
EXTRA_DIST += $(OPS_TESTS)
