# SPDX-License-Identifier: LGPL-2.1-or-later
# The bridge network plugin end to end, inside network namespaces the tests
# make (vmhb-*) and delete; needs root, iproute2 and busybox (ping).
if BUILD_PLUGIN_BRIDGE
BRIDGE_TESTS = test-bridge-e2e.py test-bridge-config.py test-bridge-ports.py \
	test-bridge-absent.py
TESTS += $(BRIDGE_TESTS)
endif
EXTRA_DIST += tappump.py test-bridge-e2e.py test-bridge-config.py test-bridge-ports.py \
	test-bridge-absent.py
