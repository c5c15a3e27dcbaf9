# SPDX-License-Identifier: LGPL-2.1-or-later
# vmhostd under a real systemd: the packages of this tree (tests/debbuild.sh,
# built once per tree and shared with test-deb-install.sh) installed in a
# Debian 12 root that QEMU (TCG) boots with systemd as PID 1; a check inside
# (systemd-boot-check.sh) drives the service and README's install commands.
# About ten minutes alone (mmdebstrap, then a boot under TCG).  Included by
# tests/Makefile.am.
SYSTEMD_TESTS = test-systemd-boot.py
TESTS += $(SYSTEMD_TESTS)
EXTRA_DIST += $(SYSTEMD_TESTS) systemd-boot-check.sh
