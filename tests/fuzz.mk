# SPDX-License-Identifier: LGPL-2.1-or-later
# libFuzzer harnesses (tests/fuzz/fuzz-*.c, seed corpora beside them):
# test-fuzz.sh builds them with clang and runs each for a few seconds in
# `make check`; `make -C tests fuzz` runs them for FUZZ_SECONDS (default
# 600) each.  Included by tests/Makefile.am.
TESTS += test-fuzz.sh
EXTRA_DIST += test-fuzz.sh fuzz

fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-600} srcdir=$(srcdir) \
	  top_srcdir=$(top_srcdir) top_builddir=$(top_builddir) \
	  builddir=$(builddir) $(srcdir)/test-fuzz.sh
.PHONY: fuzz

clean-local: clean-fuzz
clean-fuzz:
	rm -rf fuzz-build
.PHONY: clean-fuzz
