# SPDX-License-Identifier: LGPL-2.1-or-later
# The local storage plugin (plugins/storage/local) end to end: real files,
# real qemu-img, tmpfs mounts and a local HTTP server made by the tests.
# Included by tests/Makefile.am.  The benchmarks (bench/local-*.py) are run
# by hand: see their header comments.
LOCAL_TESTS = \
	test-local-volumes.py \
	test-local-images.py
if BUILD_PLUGIN_LOCAL
TESTS += $(LOCAL_TESTS)
endif
EXTRA_DIST += $(LOCAL_TESTS) bench/local-clones.py cuthttp.py

# The local tests with every vmhostd under valgrind's memcheck.
check-valgrind-local:
	VMHOST_TEST_VALGRIND=1 $(MAKE) $(AM_MAKEFLAGS) check TESTS="$(LOCAL_TESTS)"
.PHONY: check-valgrind-local
