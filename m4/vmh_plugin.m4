# SPDX-License-Identifier: LGPL-2.1-or-later
# VMH_PLUGIN(NAME, DESCRIPTION, DEPENDENCY-CHECK, DIRECTORIES)
# -----------------------------------------------------------
# One switch per plugin: --enable-NAME[=yes|no|auto|force], default auto (or
# no after --disable-all-plugins).
#   auto   build it when DEPENDENCY-CHECK succeeds
#   yes    build it; configure fails (after the summary) when the check fails
#   force  build it without running the check
#   no     do not build it
# DEPENDENCY-CHECK runs shell code that sets vmh_dep_ok=yes|no and, when no,
# vmh_dep_why to the reason.  Defines AM_CONDITIONAL(BUILD_PLUGIN_<NAME>) and
# adds a row to the summary table.  DIRECTORIES are the plugin's directories
# under plugins/ (KIND/NAME, space-separated): each gets its Makefile
# configured and joins VMH_PLUGIN_SUBDIRS, which plugins/Makefile.am recurses
# into whether the plugin is built or not (each Makefile.am wraps its content
# in BUILD_PLUGIN_<NAME>), so that `make dist` ships them all.
AC_DEFUN([VMH_PLUGIN], [
  m4_pushdef([VMH_VAR], m4_translit([$1], [-], [_]))
  m4_pushdef([VMH_UP], m4_toupper(m4_translit([$1], [-], [_])))
  AC_ARG_ENABLE([$1],
    [AS_HELP_STRING([--enable-$1@<:@=yes|no|auto|force@:>@], [$2 plugin (default: auto)])],
    [enable_[]VMH_VAR=$enableval],
    [enable_[]VMH_VAR=$vmh_plugin_default])
  build_[]VMH_VAR=no
  vmh_dep_ok=yes
  vmh_dep_why=
  AS_CASE([$enable_[]VMH_VAR],
    [no], [vmh_why="disabled"],
    [force], [build_[]VMH_VAR=yes; vmh_why="forced"],
    [yes|auto], [
      $3
      AS_IF([test "x$vmh_dep_ok" = xyes],
        [build_[]VMH_VAR=yes; vmh_why=""],
        [vmh_why="$vmh_dep_why"
         AS_IF([test "x$enable_[]VMH_VAR" = xyes],
           [vmh_plugin_failed="$vmh_plugin_failed $1"])])],
    [AC_MSG_ERROR([--enable-$1 takes yes, no, auto or force, not '$enable_[]VMH_VAR'])])
  AM_CONDITIONAL([BUILD_PLUGIN_]VMH_UP, [test "x$build_[]VMH_VAR" = xyes])
  m4_foreach_w([vmh_dir], [$4], [
    AC_CONFIG_FILES([plugins/]vmh_dir[/Makefile])
    VMH_PLUGIN_SUBDIRS="$VMH_PLUGIN_SUBDIRS vmh_dir"])
  vmh_plugin_summary="$vmh_plugin_summary
$(printf '  %-18s %-4s %s' "$1" "$build_[]VMH_VAR" "$vmh_why")"
  m4_popdef([VMH_UP])
  m4_popdef([VMH_VAR])
])

# VMH_PLUGINS_INIT: --disable-all-plugins sets every default to no.
AC_DEFUN([VMH_PLUGINS_INIT], [
  AC_ARG_ENABLE([all-plugins],
    [AS_HELP_STRING([--disable-all-plugins], [build no plugin unless enabled by name])],
    [], [enable_all_plugins=yes])
  AS_IF([test "x$enable_all_plugins" = xno], [vmh_plugin_default=no], [vmh_plugin_default=auto])
  vmh_plugin_summary=
  vmh_plugin_failed=
  VMH_PLUGIN_SUBDIRS=
  AC_SUBST([VMH_PLUGIN_SUBDIRS])
])

# VMH_PLUGINS_SUMMARY: print the table; fail for each explicit yes not met.
AC_DEFUN([VMH_PLUGINS_SUMMARY], [
  echo
  echo "Plugins (built / not built, and why):"
  echo "$vmh_plugin_summary"
  echo
  AS_IF([test -n "$vmh_plugin_failed"],
    [AC_MSG_ERROR([requested plugin(s) cannot be built:$vmh_plugin_failed (see the table above)])])
])
