# SPDX-License-Identifier: LGPL-2.1-or-later
# The image download + verify module (plugins/common/imagefetch), built
# when a plugin that imports images is.  Included by tests/Makefile.am.
if BUILD_IMAGEFETCH
TESTS += test-imagefetch
check_PROGRAMS += test-imagefetch
endif
test_imagefetch_SOURCES = test-imagefetch.c core-unit.h
test_imagefetch_CPPFLAGS = $(UNIT_CPP)
test_imagefetch_CFLAGS = $(WARNINGS_CFLAGS) $(SANITIZER_CFLAGS) $(GNUTLS_CFLAGS)
test_imagefetch_LDADD = $(top_builddir)/plugins/common/libimagefetch.la \
	$(GNUTLS_LIBS)
test_imagefetch_LDFLAGS = $(UNIT_LINK)
