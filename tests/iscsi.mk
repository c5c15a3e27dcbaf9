# SPDX-License-Identifier: LGPL-2.1-or-later
# The iscsi storage plugin (plugins/storage/iscsi) against a real target:
# tgtd on 127.0.0.1, started and stopped by each test file (iscsitgt.py).
# Included by tests/Makefile.am.  The benchmarks (bench/iscsi-*.py) are run
# by hand: see their header comments.
#
#   test-iscsi-pool.py    discovery with CHAP and ACLs, refresh, volumes of
#                         VMs (mock hypervisor), wipe on release, a LUN that
#                         vanishes, a target down and back, config refusals
#   test-iscsi-guest.py   a real TCG guest through the libvirt plugin with a
#                         LUN as its data disk (QEMU's libiscsi driver)
#   iscsi-io              reads and writes a LUN through libiscsi
ISCSI_TESTS = test-iscsi-pool.py
if BUILD_PLUGIN_ISCSI
check_PROGRAMS += iscsi-io
iscsi_io_SOURCES = iscsi-io.c
iscsi_io_CFLAGS = $(WARNINGS_CFLAGS) $(SANITIZER_CFLAGS) $(LIBISCSI_CFLAGS)
iscsi_io_LDADD = $(LIBISCSI_LIBS)
iscsi_io_LDFLAGS = $(SANITIZER_CFLAGS)
TESTS += $(ISCSI_TESTS)
if BUILD_PLUGIN_LIBVIRT
TESTS += test-iscsi-guest.py
endif
endif
EXTRA_DIST += $(ISCSI_TESTS) test-iscsi-guest.py iscsitgt.py iscsiguest.py \
	bench/iscsi-list.py bench/iscsi-guest-io.py

# The iscsi tests with every vmhostd under valgrind's memcheck.
check-valgrind-iscsi:
	VMHOST_TEST_VALGRIND=1 $(MAKE) $(AM_MAKEFLAGS) check TESTS="$(ISCSI_TESTS)"
.PHONY: check-valgrind-iscsi
