# SPDX-License-Identifier: LGPL-2.1-or-later
# Admission control and host resources (core/resources.c) end to end on
# the mocks, through the REST front-end.  Included by tests/Makefile.am.
RESOURCES_TESTS = test-resources.py
if BUILD_PLUGIN_REST
TESTS += $(RESOURCES_TESTS)
endif
EXTRA_DIST += $(RESOURCES_TESTS)
