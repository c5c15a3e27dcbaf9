# SPDX-License-Identifier: LGPL-2.1-or-later
# The VM record journal (core/journal.c): the unit test of framing, group
# commit, recovery and compaction, and the end-to-end test that kills
# vmhostd at each step of a group commit and of a compaction.
# Included from tests/Makefile.am.

TESTS += test-journal-unit test-journal.py
check_PROGRAMS += test-journal-unit
EXTRA_DIST += test-journal.py vmhjournal.py

test_journal_unit_SOURCES = test-journal-unit.c core-unit.h
test_journal_unit_CPPFLAGS = $(UNIT_CPP) -I$(top_builddir)
test_journal_unit_CFLAGS = $(UNIT_CC)
test_journal_unit_LDADD = $(UNIT_LIBS)
test_journal_unit_LDFLAGS = $(UNIT_LINK)

# The benchmarks' C clients (tests/bench/*.py also build them on their own):
# `make -C tests bench-clients`.
bench-clients: bench/h2bench$(EXEEXT) bench/libvirt-direct$(EXEEXT)
bench/h2bench$(EXEEXT): $(srcdir)/bench/h2bench.c
	$(MKDIR_P) bench
	$(CC) -O2 -Wall -o $@ $(srcdir)/bench/h2bench.c `$(PKG_CONFIG) --cflags --libs libnghttp2`
bench/libvirt-direct$(EXEEXT): $(srcdir)/bench/libvirt-direct.c
	$(MKDIR_P) bench
	$(CC) -O2 -Wall -o $@ $(srcdir)/bench/libvirt-direct.c `$(PKG_CONFIG) --cflags --libs libvirt`
.PHONY: bench-clients
EXTRA_DIST += bench/h2bench.c bench/create-rate.py
CLEANFILES += bench/h2bench$(EXEEXT) bench/libvirt-direct$(EXEEXT)
