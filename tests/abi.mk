# SPDX-License-Identifier: LGPL-2.1-or-later
# ABI tests (docs/design.md, rules 4 and 11).  Included by
# tests/Makefile.am after its common definitions.
#
#   test-headers.sh       every public header alone, C99 and C++11 -pedantic
#   test-abi-baseline.sh  the headers' layout against tests/abi/*.txt
#   test-old-minor.sh     a plugin built against ABI 1.0 still loads
#   test-out-of-tree.sh   a plugin built from the installed headers and .pc
#
# make -C tests abi-baseline   records the current minor's baseline after an
#                              intended, compatible change (then commit it).

# The tools configure found, for the shell tests.
AM_TESTS_ENVIRONMENT += \
	CC='$(CC)' \
	CXX='$(CXX)' \
	ABIDW='$(ABIDW)' \
	PKG_CONFIG='$(PKG_CONFIG)' \
	MAKE='$(MAKE)' \
	; export CC CXX ABIDW PKG_CONFIG MAKE;

TESTS += \
	test-headers.sh \
	test-abi-baseline.sh \
	test-old-minor.sh \
	test-out-of-tree.sh

EXTRA_DIST += \
	test-headers.sh \
	test-abi-baseline.sh \
	test-old-minor.sh \
	test-out-of-tree.sh \
	abi/abi-layout.py \
	abi/vmhost-abi-1.0.txt \
	abi/vmhost-abi-1.1.txt

noinst_LTLIBRARIES += \
	plugins/old-minor.la \
	plugins/cxx-plugin.la

# A storage plugin built against ABI 1.0: no image_* fields in its ops.
plugins_old_minor_la_SOURCES = plugins/fixture.c
plugins_old_minor_la_CPPFLAGS = $(TEST_PLUGIN_CPP) \
	-DVMH_ABI_TARGET_MINOR=0 -DFIX_KIND=2 -DFIX_NAME=old-minor
plugins_old_minor_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_old_minor_la_LDFLAGS = $(TEST_PLUGIN_LINK)

# A storage plugin in C++ (test-headers.sh also compiles it with -Werror).
plugins_cxx_plugin_la_SOURCES = plugins/cxx-plugin.cpp
plugins_cxx_plugin_la_CPPFLAGS = $(TEST_PLUGIN_CPP)
plugins_cxx_plugin_la_CXXFLAGS = -std=c++11 -pedantic -Wall -Wextra \
	$(SANITIZER_CFLAGS) -fvisibility=hidden
plugins_cxx_plugin_la_LDFLAGS = $(TEST_PLUGIN_LINK)

abi-baseline:
	$(AM_V_GEN)$(AM_TESTS_ENVIRONMENT) \
	$(SHELL) $(srcdir)/test-abi-baseline.sh --record
.PHONY: abi-baseline
