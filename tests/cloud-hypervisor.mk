# SPDX-License-Identifier: LGPL-2.1-or-later
# The Cloud Hypervisor plugin (plugins/hypervisor/cloud-hypervisor).
# Included by tests/Makefile.am.  No Cloud Hypervisor package and no usable
# KVM here: the tests drive a fake VMM that serves the published API.
#
#   test-cloud-hypervisor-config.py   the plugin's VmConfig / DiskConfig for
#                         every spec shape (ch-configgen) against the API's
#                         schema tables; every refused shape says why
#   test-cloud-hypervisor-e2e.py      every operation and error through
#                         vmhostd, events, a VMM that dies (crashed), one
#                         that never answers (rolled back), the vsock
#                         CONNECT handshake to a fake guest, seeds, snapshots
#   test-cloud-hypervisor-restart.py  kill -9 of vmhostd: the VMMs are
#                         adopted, never started twice; a VMM gone meanwhile
#                         reads as crashed and its files go
#   fakech.py, chschema.py, fake-ch/cloud-hypervisor   the fake VMM, its
#                         schema tables, the stand-in binary on PATH
#
# make check-cloud-hypervisor-real runs the lifecycle tests against a real
# cloud-hypervisor binary and KVM (HACKING.md); not part of make check.
CH_TESTS = test-cloud-hypervisor-e2e.py test-cloud-hypervisor-restart.py
if BUILD_PLUGIN_CLOUD_HYPERVISOR
check_PROGRAMS += ch-configgen
ch_configgen_SOURCES = ch-configgen.c
ch_configgen_CPPFLAGS = $(UNIT_CPP) \
	-I$(top_srcdir)/plugins/hypervisor/cloud-hypervisor
ch_configgen_CFLAGS = $(WARNINGS_CFLAGS) $(SANITIZER_CFLAGS) $(JANSSON_CFLAGS)
ch_configgen_LDADD = \
	$(top_builddir)/plugins/hypervisor/cloud-hypervisor/libchconfig.la \
	$(top_builddir)/plugins/common/libvmhutil.la $(JANSSON_LIBS)
ch_configgen_LDFLAGS = $(SANITIZER_CFLAGS)

TESTS += test-cloud-hypervisor-config.py $(CH_TESTS)

check-cloud-hypervisor-real:
	VMHOST_CH_REAL=1 $(MAKE) $(AM_MAKEFLAGS) check TESTS="$(CH_TESTS)"
else
check-cloud-hypervisor-real:
	@echo "check-cloud-hypervisor-real: the plugin is not built" >&2; exit 1
endif
.PHONY: check-cloud-hypervisor-real
EXTRA_DIST += test-cloud-hypervisor-config.py $(CH_TESTS) fakech.py chtest.py \
	chschema.py fake-ch/cloud-hypervisor ch-configgen.c \
	bench/cloud-hypervisor.py
