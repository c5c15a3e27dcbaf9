# SPDX-License-Identifier: LGPL-2.1-or-later
# The ctl front-end: a test-only control socket that lets shell tests drive
# a running vmhostd through the core-service table (tests/ctl/frontend-ctl.c;
# protocol in its header comment and in tests/ctl/vmhctl.py, the client).
# Included by tests/Makefile.am.
#
# Like the loader fixtures it is a noinst_LTLIBRARIES with -rpath /nowhere,
# so that libtool makes a real shared object: tests/ctl/.libs/frontend-ctl.so.
# Tests name it with `file:` in their config ($VMHOST_CTL_PLUGIN) and run the
# client as "$VMHCTL" (or import it from "$srcdir/ctl").

noinst_LTLIBRARIES += ctl/frontend-ctl.la
ctl_frontend_ctl_la_SOURCES = ctl/frontend-ctl.c
ctl_frontend_ctl_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -I$(top_srcdir)/plugins/common
ctl_frontend_ctl_la_CFLAGS = $(TEST_PLUGIN_CC) $(JANSSON_CFLAGS)
ctl_frontend_ctl_la_LDFLAGS = $(TEST_PLUGIN_LINK)
ctl_frontend_ctl_la_LIBADD = $(top_builddir)/plugins/common/libabijson.la \
	$(top_builddir)/plugins/common/libvmhutil.la $(JANSSON_LIBS) -lpthread

AM_TESTS_ENVIRONMENT += \
	VMHOST_CTL_PLUGIN=$(abs_builddir)/ctl/.libs/frontend-ctl.so \
	VMHCTL=$(abs_srcdir)/ctl/vmhctl.py \
	; export VMHOST_CTL_PLUGIN VMHCTL;

TESTS += test-ctl-smoke.sh
EXTRA_DIST += ctl/vmhctl.py test-ctl-smoke.sh
