# SPDX-License-Identifier: LGPL-2.1-or-later
# The nat network plugin end to end, inside network namespaces the tests
# make (vmhn-*); needs root, iproute2, nftables, dnsmasq-base and busybox.
if BUILD_PLUGIN_NAT
NAT_TESTS = test-nat-e2e.py test-nat-config.py
TESTS += $(NAT_TESTS)
endif
EXTRA_DIST += test-nat-e2e.py test-nat-config.py
