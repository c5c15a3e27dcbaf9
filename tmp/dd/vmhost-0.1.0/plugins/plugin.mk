# SPDX-License-Identifier: LGPL-2.1-or-later
# Included by every plugin's Makefile.am: how a plugin is compiled and linked.
# A plugin is a libtool module exporting only vmh_plugin_entry.
plugindir = @plugindir@

PLUGIN_CPP = \
	-I$(top_srcdir)/plugin-api \
	-I$(top_builddir)/plugin-api
PLUGIN_CC = $(WARNINGS_CFLAGS) $(SANITIZER_CFLAGS) -fvisibility=hidden
PLUGIN_LINK = \
	-module -avoid-version -shared -rpath $(plugindir) \
	-Wl,--version-script=$(top_srcdir)/plugin-api/plugin.syms
