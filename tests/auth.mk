# SPDX-License-Identifier: LGPL-2.1-or-later
# Who may do what (issue 12): roles of every REST route and gRPC method,
# bearer tokens, client certificates, unix-socket peers, insecure
# listeners (test-auth.py, on the rest and rpc front-ends with the mocks).
# Included by tests/Makefile.am.
AUTH_TESTS = test-auth.py
if BUILD_PLUGIN_REST
if BUILD_PLUGIN_RPC
TESTS += $(AUTH_TESTS)
endif
endif
EXTRA_DIST += $(AUTH_TESTS)
