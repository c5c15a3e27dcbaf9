# SPDX-License-Identifier: LGPL-2.1-or-later
# The OVS network plugin against a private ovsdb-server and ovs-vswitchd
# (tests/ovsenv.py), inside network namespaces the tests make (vmho-*) and
# delete; needs root, iproute2, busybox (ping) and openvswitch-switch.
OVS_TESTS = test-ovs-e2e.py
if BUILD_PLUGIN_OVS
TESTS += $(OVS_TESTS)
endif
EXTRA_DIST += $(OVS_TESTS) ovsenv.py
