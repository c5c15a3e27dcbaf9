# SPDX-License-Identifier: LGPL-2.1-or-later
# Packaging: the man pages, the systemd unit, the RPMs (built: about a
# minute and a half), the Debian packages (built by debbuild.sh, once per tree, and installed
# into a fresh root: about two minutes).  Included by tests/Makefile.am.
PACKAGING_TESTS = test-man.sh test-systemd-unit.sh test-rpm-spec.sh \
	test-deb-install.sh
TESTS += $(PACKAGING_TESTS)
EXTRA_DIST += $(PACKAGING_TESTS) debbuild.sh

# The packages tests/debbuild.sh built (one tree's).
clean-local: clean-debs
clean-debs:
	rm -rf debs
.PHONY: clean-debs
