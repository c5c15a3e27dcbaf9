# SPDX-License-Identifier: LGPL-2.1-or-later
# Unit tests of the core's error, log, workers, metrics and events modules and of
# libvmhutil, and the check that the core's units include one another
# without a cycle.
# Included from tests/Makefile.am.

TESTS += test-core-includes.py
EXTRA_DIST += test-core-includes.py

CORE_UNIT_TESTS = test-error test-log test-metrics test-workers test-events
TESTS += $(CORE_UNIT_TESTS)
check_PROGRAMS += $(CORE_UNIT_TESTS)

test_error_SOURCES = test-error.c core-unit.h
test_error_CPPFLAGS = $(UNIT_CPP)
test_error_CFLAGS = $(UNIT_CC)
test_error_LDADD = $(UNIT_LIBS)
test_error_LDFLAGS = $(UNIT_LINK)

test_log_SOURCES = test-log.c core-unit.h
test_log_CPPFLAGS = $(UNIT_CPP)
test_log_CFLAGS = $(UNIT_CC)
test_log_LDADD = $(UNIT_LIBS) $(JANSSON_LIBS)
test_log_LDFLAGS = $(UNIT_LINK)

test_metrics_SOURCES = test-metrics.c core-unit.h
test_metrics_CPPFLAGS = $(UNIT_CPP)
test_metrics_CFLAGS = $(UNIT_CC)
test_metrics_LDADD = $(UNIT_LIBS)
test_metrics_LDFLAGS = $(UNIT_LINK)

test_events_SOURCES = test-events.c core-unit.h
test_events_CPPFLAGS = $(UNIT_CPP)
test_events_CFLAGS = $(UNIT_CC)
test_events_LDADD = $(UNIT_LIBS)
test_events_LDFLAGS = $(UNIT_LINK)

test_workers_SOURCES = test-workers.c core-unit.h
test_workers_CPPFLAGS = $(UNIT_CPP)
test_workers_CFLAGS = $(UNIT_CC)
test_workers_LDADD = $(UNIT_LIBS)
test_workers_LDFLAGS = $(UNIT_LINK)

# `make check-core-units-valgrind`: the same tests under memcheck, and the
# worker pool under helgrind and drd too.  Not for --enable-sanitizers builds.
CORE_UNIT_VALGRIND = $(LIBTOOL) --mode=execute $(VALGRIND) -q \
	--error-exitcode=1 --exit-on-first-error=no
check-core-units-valgrind: $(CORE_UNIT_TESTS)
	@if test "x$(VALGRIND)" = xno; then echo "valgrind not found"; exit 1; fi
	@set -e; for t in $(CORE_UNIT_TESTS); do \
	  echo "  MEMCHECK $$t"; \
	  $(CORE_UNIT_VALGRIND) --leak-check=full --show-leak-kinds=definite,indirect,possible \
	    --errors-for-leak-kinds=definite,indirect,possible ./$$t; \
	done; \
	for tool in helgrind drd; do \
	  echo "  $$tool test-workers"; \
	  $(CORE_UNIT_VALGRIND) --tool=$$tool ./test-workers; \
	done
.PHONY: check-core-units-valgrind

# libvmhutil (plugins/common), linked into the core's library.
TESTS += test-vmhutil
check_PROGRAMS += test-vmhutil
test_vmhutil_SOURCES = test-vmhutil.c core-unit.h
test_vmhutil_CPPFLAGS = $(UNIT_CPP)
test_vmhutil_CFLAGS = $(UNIT_CC)
test_vmhutil_LDADD = $(UNIT_LIBS)
test_vmhutil_LDFLAGS = $(UNIT_LINK)
