# SPDX-License-Identifier: LGPL-2.1-or-later
# The nfs storage plugin (plugins/storage/nfs) against nfs-ganesha, started
# by each test file in network and mount namespaces of its own, with a
# private rpcbind (nfsserver.py).  Included by tests/Makefile.am.
#
#   test-nfs-pool.py    every volume and image operation and refusal, the
#                       reserve, a full export, the server stopped and back,
#                       leftovers of a crash
#   test-nfs-guest.py   a real TCG guest through the libvirt plugin with disks
#                       on the pool (QEMU's libnfs driver): its write read
#                       back through libnfs, a clone of a cached base image
NFS_TESTS = test-nfs-pool.py
if BUILD_PLUGIN_NFS
TESTS += $(NFS_TESTS)
if BUILD_PLUGIN_LIBVIRT
TESTS += test-nfs-guest.py
endif
endif
EXTRA_DIST += $(NFS_TESTS) test-nfs-guest.py nfsserver.py bench/nfs.py bench/nfs-direct.c

# The nfs tests with every vmhostd under valgrind's memcheck.
check-valgrind-nfs:
	VMHOST_TEST_VALGRIND=1 $(MAKE) $(AM_MAKEFLAGS) check TESTS="$(NFS_TESTS)"
.PHONY: check-valgrind-nfs
