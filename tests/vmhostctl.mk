# SPDX-License-Identifier: LGPL-2.1-or-later
# vmhostctl (cli/) against a real vmhostd on the mock plugins through the
# rest front-end: every command, its JSON against the API, exit codes,
# settings, completion (test-vmhostctl.py); TLS, mTLS, certificates and
# bearer tokens (test-vmhostctl-tls.py); lists in pages, --limit, a walk
# while objects come and go (test-vmhostctl-pages.py).  Included by tests/Makefile.am.
# bench/vmhostctl.py (its cost per command beside curl) is run by hand.
VMHOSTCTL_TESTS = \
	test-vmhostctl.py \
	test-vmhostctl-pages.py \
	test-vmhostctl-tls.py
if BUILD_CLI
if BUILD_PLUGIN_REST
TESTS += $(VMHOSTCTL_TESTS)
# exec and files through a fake guest agent.
if BUILD_PLUGIN_GUEST
TESTS += test-vmhostctl-agent.py
endif
endif
endif
EXTRA_DIST += $(VMHOSTCTL_TESTS) test-vmhostctl-agent.py ctltest.py \
	bench/vmhostctl.py
