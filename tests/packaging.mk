# SPDX-License-Identifier: LGPL-2.1-or-later
# Packaging: the man pages, the systemd unit, the Debian packages.
# Included by tests/Makefile.am.
TESTS += test-man.sh test-systemd-unit.sh
EXTRA_DIST += test-man.sh test-systemd-unit.sh
