# SPDX-License-Identifier: LGPL-2.1-or-later
# The OVS network plugin against a private ovsdb-server and ovs-vswitchd
# (tests/ovsenv.py), inside network namespaces the tests make (vmho-*) and
# delete; needs root, iproute2, busybox (ping) and openvswitch-switch.
OVS_TESTS = test-ovs-e2e.py test-ovs-config.py
if BUILD_PLUGIN_OVS
TESTS += $(OVS_TESTS)
if BUILD_PLUGIN_LIBVIRT
# The libvirt plugin's XML for a real binding (libvirt-xmlgen: libvirt.mk).
TESTS += test-ovs-libvirt.py
endif
endif
EXTRA_DIST += $(OVS_TESTS) test-ovs-libvirt.py ovsenv.py bench/ovs.py \
	bench/ovs-direct.c
