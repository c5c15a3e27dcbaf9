# SPDX-License-Identifier: LGPL-2.1-or-later
# The config tree and the daemon's settings (core/conftree.c,
# core/settings.c).  Included from tests/Makefile.am.
#
# configs/*.yaml are fixtures: test-config checks the exact message each bad
# one produces; the shell tests of `vmhostd --check-config` use them too.

TESTS += test-config
check_PROGRAMS += test-config

test_config_SOURCES = test-config.c core-unit.h
# PLUGINDIR: the test checks the default plugin_dir.
test_config_CPPFLAGS = $(UNIT_CPP) -DPLUGINDIR=\"$(plugindir)\"
test_config_CFLAGS = $(UNIT_CC)
test_config_LDADD = $(UNIT_LIBS)
test_config_LDFLAGS = $(UNIT_LINK)

CONFIG_FIXTURES = \
	configs/good-minimal.yaml \
	configs/good-full.yaml \
	configs/bad-alias.yaml \
	configs/bad-dup-instance.yaml \
	configs/bad-dup-key.yaml \
	configs/bad-missing-plugin.yaml \
	configs/bad-name.yaml \
	configs/bad-plugin-key.yaml \
	configs/bad-range.yaml \
	configs/bad-syntax.yaml \
	configs/bad-type.yaml \
	configs/bad-unknown-daemon.yaml \
	configs/bad-unknown-top.yaml \
	configs/bad-utf8.yaml
EXTRA_DIST += $(CONFIG_FIXTURES)

# `make check-config-valgrind`: test-config under memcheck, leaks included
# (needs a build without --enable-sanitizers).
check-config-valgrind: test-config
if ENABLE_SANITIZERS
	@echo "check-config-valgrind: reconfigure without --enable-sanitizers" >&2; exit 1
else
	@if test "x$(VALGRIND)" = xno; then echo "valgrind not found" >&2; exit 1; fi
	$(AM_TESTS_ENVIRONMENT) $(LIBTOOL) --mode=execute $(VALGRIND) -q \
	  --error-exitcode=1 --leak-check=full \
	  --errors-for-leak-kinds=definite,indirect,possible ./test-config
endif
.PHONY: check-config-valgrind
