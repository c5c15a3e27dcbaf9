# SPDX-License-Identifier: LGPL-2.1-or-later
# Loader tests (tests/test-loader.sh) and the test-only plugins they load.
# Included by tests/Makefile.am.
#
# Every fixture but no-entry is built from plugins/fixture.c with its own
# -D flags (see the comment at its top).  They are noinst_LTLIBRARIES with
# -rpath /nowhere so that libtool makes real shared objects
# (check_LTLIBRARIES would build static archives only); they end up in
# tests/plugins/.libs/NAME.so.

TESTS += test-loader.sh
EXTRA_DIST += test-loader.sh

noinst_LTLIBRARIES += \
	plugins/good-hypervisor.la \
	plugins/good-storage.la \
	plugins/good-network.la \
	plugins/good-frontend.la \
	plugins/dup-hypervisor.la \
	plugins/other-major.la \
	plugins/newer-minor.la \
	plugins/small-struct.la \
	plugins/small-ops.la \
	plugins/no-ops-table.la \
	plugins/returns-null.la \
	plugins/bad-name.la \
	plugins/bad-kind.la \
	plugins/bad-thread-model.la \
	plugins/missing-op.la \
	plugins/load-fails.la \
	plugins/no-entry.la

plugins_good_hypervisor_la_SOURCES = plugins/fixture.c
plugins_good_hypervisor_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_KIND=1
plugins_good_hypervisor_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_good_hypervisor_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_good_storage_la_SOURCES = plugins/fixture.c
plugins_good_storage_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_KIND=2 -DVMH_THREAD_MODEL=VMH_THREAD_SERIALIZE_INSTANCE
plugins_good_storage_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_good_storage_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_good_network_la_SOURCES = plugins/fixture.c
plugins_good_network_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_KIND=3 -DVMH_THREAD_MODEL=VMH_THREAD_PARALLEL
plugins_good_network_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_good_network_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_good_frontend_la_SOURCES = plugins/fixture.c
plugins_good_frontend_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_KIND=4
plugins_good_frontend_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_good_frontend_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_dup_hypervisor_la_SOURCES = plugins/fixture.c
plugins_dup_hypervisor_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_KIND=1
plugins_dup_hypervisor_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_dup_hypervisor_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_other_major_la_SOURCES = plugins/fixture.c
plugins_other_major_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_NAME=other-major -DFIX_OTHER_MAJOR
plugins_other_major_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_other_major_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_newer_minor_la_SOURCES = plugins/fixture.c
plugins_newer_minor_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_NAME=newer-minor -DFIX_NEWER_MINOR
plugins_newer_minor_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_newer_minor_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_small_struct_la_SOURCES = plugins/fixture.c
plugins_small_struct_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_NAME=small-struct -DFIX_SMALL_STRUCT
plugins_small_struct_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_small_struct_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_small_ops_la_SOURCES = plugins/fixture.c
plugins_small_ops_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_NAME=small-ops -DFIX_SMALL_OPS
plugins_small_ops_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_small_ops_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_no_ops_table_la_SOURCES = plugins/fixture.c
plugins_no_ops_table_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_NAME=no-ops-table -DFIX_NO_OPS
plugins_no_ops_table_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_no_ops_table_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_returns_null_la_SOURCES = plugins/fixture.c
plugins_returns_null_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_NAME=returns-null -DFIX_RETURNS_NULL
plugins_returns_null_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_returns_null_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_bad_name_la_SOURCES = plugins/fixture.c
plugins_bad_name_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_BAD_NAME
plugins_bad_name_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_bad_name_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_bad_kind_la_SOURCES = plugins/fixture.c
plugins_bad_kind_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_NAME=bad-kind -DFIX_BAD_KIND
plugins_bad_kind_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_bad_kind_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_bad_thread_model_la_SOURCES = plugins/fixture.c
plugins_bad_thread_model_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_NAME=bad-thread-model -DFIX_BAD_THREAD_MODEL
plugins_bad_thread_model_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_bad_thread_model_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_missing_op_la_SOURCES = plugins/fixture.c
plugins_missing_op_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_NAME=missing-op -DFIX_MISSING_OP
plugins_missing_op_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_missing_op_la_LDFLAGS = $(TEST_PLUGIN_LINK)

plugins_load_fails_la_SOURCES = plugins/fixture.c
plugins_load_fails_la_CPPFLAGS = $(TEST_PLUGIN_CPP) -DFIX_NAME=load-fails -DFIX_LOAD_FAILS
plugins_load_fails_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_load_fails_la_LDFLAGS = $(TEST_PLUGIN_LINK)

# Not a plugin: exports another symbol, so no version script.
plugins_no_entry_la_SOURCES = plugins/no-entry.c
plugins_no_entry_la_CPPFLAGS = $(TEST_PLUGIN_CPP)
plugins_no_entry_la_CFLAGS = $(TEST_PLUGIN_CC)
plugins_no_entry_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere
