# SPDX-License-Identifier: LGPL-2.1-or-later
# The rbd storage plugin (plugins/storage/rbd) against a real, throwaway
# Ceph: one monitor and one memstore OSD on 127.0.0.1, started and stopped
# by each test file (cephcluster.py).  Included by tests/Makefile.am.  The
# benchmarks (bench/rbd-*.py) are run by hand: see their header comments.
#
#   test-rbd-pool.py    config and start refusals, volumes, clones, image
#                       cache, kill -9 mid-import, the cluster down and back
#   test-rbd-guest.py   a real TCG guest through the libvirt plugin with an
#                       RBD clone as its disk (QEMU's rbd driver, cephx)
RBD_TESTS = test-rbd-pool.py
if BUILD_PLUGIN_RBD
TESTS += $(RBD_TESTS)
if BUILD_PLUGIN_LIBVIRT
TESTS += test-rbd-guest.py
endif
endif
EXTRA_DIST += $(RBD_TESTS) test-rbd-guest.py cephcluster.py bench/rbd.py \
	bench/rbd-direct.c

# The rbd tests with every vmhostd under valgrind's memcheck.
check-valgrind-rbd:
	VMHOST_TEST_VALGRIND=1 $(MAKE) $(AM_MAKEFLAGS) check TESTS="$(RBD_TESTS)"
.PHONY: check-valgrind-rbd
