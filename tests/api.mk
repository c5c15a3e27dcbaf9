# SPDX-License-Identifier: LGPL-2.1-or-later
# The API conventions both front-ends follow, checked with both stock
# clients on one set of mock backends: liveness and readiness, the one name
# rule, the VM spec's limits (the core's table against openapi.yaml and
# node.proto).  Included by tests/Makefile.am.
API_TESTS = \
	test-health.py \
	test-names.py \
	test-limits.py \
	test-check-config.py
if BUILD_PLUGIN_REST
if BUILD_PLUGIN_RPC
TESTS += $(API_TESTS)
endif
endif
EXTRA_DIST += $(API_TESTS)
