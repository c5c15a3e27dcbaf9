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
