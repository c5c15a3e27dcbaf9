#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The plugin loader (docs/design.md, rules 1-3): what
# vmhostd --dump-plugin sees in good plugins, the exact refusal of every
# broken one (tests/plugins/fixture.c), refusals that need the config (wrong
# kind, duplicate), optional instances, the one exported symbol of every
# plugin built in this tree, and the warning for a plugin that exports more.

. "$srcdir/functions.sh"

requires nm timeout "${CC%% *}" "${CXX%% *}"

P=$builddir/plugins/.libs
[ -x "$VMHOSTD" ] || fail "$VMHOSTD is not built"
[ -f "$P/good-hypervisor.so" ] || fail "the test plugins are not built ($P)"

tmpdir
minor=$(abi_minor)
[ -n "$minor" ] || fail "cannot read VMH_ABI_MINOR"
abi=1.$minor

# ---- 1. every plugin exports vmh_plugin_entry and nothing else ------------

# Checks that do not start the daemon report every failure, then fail.
failures=0
check ()
{
  ( "$@" ) || failures=$((failures + 1))
}

nplugins=0
while read -r so; do
  syms=$(nm -D --defined-only "$so" | awk 'NF >= 3 { print $3 }' | sort -u |
           paste -sd' ' -)
  case "$so" in
    */no-entry.so) want=vmh_plugin_entry_v0 ;;
    *) want=vmh_plugin_entry; nplugins=$((nplugins + 1)) ;;
  esac
  if [ "$syms" != "$want" ]; then
    echo "FAIL: $so must export exactly $want; it exports: '$syms'" >&2
    failures=$((failures + 1))
  fi
done < <(find "$P" "$top_builddir/plugins" -path '*/.libs/*.so' -type f | sort)
[ "$nplugins" -ge 18 ] || fail "only $nplugins plugins found to check exports"

# ---- 2. good plugins, as --dump-plugin shows them -------------------------

plugin_size=$(abi_sizeof "$minor" vmh_plugin)
common=(version=1.2.3 "description=loader test fixture" "abi_version=$abi"
        "struct_size=$plugin_size")

check expect_dump "$P/good-hypervisor.so" name=good kind=hypervisor "${common[@]}" \
  thread_model=serialize_all \
  "ops_struct_size=$(abi_sizeof "$minor" vmh_hypervisor_ops)" \
  -- open close caps define undefine start stop get list
check expect_dump "$P/good-storage.so" name=good kind=storage "${common[@]}" \
  thread_model=serialize_instance \
  "ops_struct_size=$(abi_sizeof "$minor" vmh_storage_ops)" \
  -- open close pool_info vol_list vol_get vol_create vol_delete vol_source
check expect_dump "$P/good-network.so" name=good kind=network "${common[@]}" \
  thread_model=parallel \
  "ops_struct_size=$(abi_sizeof "$minor" vmh_network_ops)" \
  -- open close info port_bind port_unbind
check expect_dump "$P/good-frontend.so" name=good kind=frontend "${common[@]}" \
  thread_model=serialize_all \
  "ops_struct_size=$(abi_sizeof "$minor" vmh_frontend_ops)" \
  -- open close start stop
# A C++ plugin registers with the same macro.
check expect_dump "$P/cxx-plugin.so" name=cxx kind=storage version=1.0 \
  "description=C++ test plugin" "abi_version=$abi" \
  "struct_size=$plugin_size" thread_model=serialize_all \
  "ops_struct_size=$(abi_sizeof "$minor" vmh_storage_ops)" \
  -- open close pool_info vol_list vol_get vol_create vol_delete vol_source

# ---- 3. refusals by --dump-plugin -----------------------------------------

dump_refusal ()
{
  expect_refusal "$@"
  if grep -q '^name=' "$out"; then
    cat "$out" >&2
    fail "--dump-plugin printed a description of a refused plugin"
  fi
}
dump_refusal_of ()
{
  local opt=()
  if [ "$1" = -E ]; then opt=(-E); shift; fi
  dump_refusal "${opt[@]}" "$P/$1.so" "$2" -- --dump-plugin "$P/$1.so"
}

check dump_refusal -E "$tmp/missing.so" 'cannot load: .*No such file' \
  -- --dump-plugin "$tmp/missing.so"
echo "not an ELF object" >"$tmp/garbage.so"
check dump_refusal -E "$tmp/garbage.so" 'cannot load: .*(invalid ELF header|file too short)' \
  -- --dump-plugin "$tmp/garbage.so"
check dump_refusal_of no-entry 'no vmh_plugin_entry symbol (not a vmhost plugin?)'
check dump_refusal_of returns-null 'vmh_plugin_entry returned NULL'
check dump_refusal_of other-major "ABI major 2 is not supported (this vmhostd speaks ABI $abi)"
check dump_refusal_of newer-minor "ABI minor 1.9 is newer than this vmhostd (ABI $abi)"
check dump_refusal_of -E small-struct 'descriptor struct_size 12 is too small \(at least [0-9]+\)$'
check dump_refusal_of -E small-ops 'ops struct_size 8 is too small \(at least [0-9]+\)$'
check dump_refusal_of no-ops-table 'ops table of kind hypervisor is missing'
check dump_refusal_of bad-name "plugin name 'Bad_Name' is invalid (expected [a-z0-9][a-z0-9._-]{0,62})"
check dump_refusal_of bad-kind 'unknown plugin kind 9'
check dump_refusal_of bad-thread-model 'unknown thread model 7'
check dump_refusal_of missing-op "required operation 'define' is missing"
check dump_refusal_of load-fails 'load failed: fixture refuses to load (42)'

# A relative path is reported absolute.
relative ()
{
  cd "$builddir"
  dump_refusal "$P/no-entry.so" 'no vmh_plugin_entry symbol (not a vmhost plugin?)' \
    -- --dump-plugin plugins/.libs/no-entry.so
}
check relative

# ---- 4. refusals that need a config ----------------------------------------

n=0
# config NAME: write $tmp/NAME.yaml from stdin after a daemon section;
# sets $config.
config ()
{
  n=$((n + 1))
  config=$tmp/$1.yaml
  mkdir -p "$tmp/state-$n"
  {
    printf 'daemon:\n  state_dir: "%s"\n' "$tmp/state-$n"
    cat
  } >"$config"
}

# The good fixtures make a whole node without any real plugin.
good_storage="  - { name: pool0, plugin: good, file: \"$P/good-storage.so\" }"
good_network="  - { name: net0, plugin: good, file: \"$P/good-network.so\" }"
good_frontend="  - { name: fe0, plugin: good, file: \"$P/good-frontend.so\" }"

config wrong-kind <<EOF
hypervisors:
  - { name: hv0, plugin: good, file: "$P/good-storage.so" }
storage:
$good_storage
networks:
$good_network
EOF
check expect_refusal "$P/good-storage.so" \
  "is a storage plugin, but instance 'hv0' is under hypervisors" \
  -- --config "$config"

config duplicate <<EOF
hypervisors:
  - { name: hv0, plugin: good, file: "$P/good-hypervisor.so" }
  - { name: hv1, plugin: good, file: "$P/dup-hypervisor.so" }
storage:
$good_storage
networks:
$good_network
EOF
check expect_refusal "$P/dup-hypervisor.so" \
  "plugin 'good' (hypervisor) is already loaded from $P/good-hypervisor.so" \
  -- --config "$config"

# A refusal through the config is as exact as through --dump-plugin.
config missing-op <<EOF
hypervisors:
  - { name: hv0, plugin: missing-op, file: "$P/missing-op.so" }
storage:
$good_storage
networks:
$good_network
EOF
check expect_refusal "$P/missing-op.so" "required operation 'define' is missing" \
  -- --config "$config"

config load-fails <<EOF
hypervisors:
  - { name: hv0, plugin: good, file: "$P/good-hypervisor.so" }
  - { name: hv1, plugin: load-fails, file: "$P/load-fails.so" }
storage:
$good_storage
networks:
$good_network
EOF
check expect_refusal "$P/load-fails.so" 'load failed: fixture refuses to load (42)' \
  -- --config "$config"

[ "$failures" -eq 0 ] || fail "$failures loader check(s) failed (see above)"

# ---- 5. configs that run ---------------------------------------------------

# One file serving two instances is loaded once; a C++ plugin serves a pool.
config shared <<EOF
hypervisors:
  - { name: hv0, plugin: good, file: "$P/good-hypervisor.so" }
  - { name: hv1, plugin: good, file: "$P/good-hypervisor.so" }
storage:
$good_storage
  - { name: pool1, plugin: cxx, file: "$P/cxx-plugin.so" }
networks:
$good_network
frontends:
$good_frontend
EOF
start_vmhostd "$config"
stop_vmhostd || fail "vmhostd exited with status $? after SIGTERM (log: $vmhostd_log)"

# An optional instance whose plugin is refused: a warning, and the daemon
# runs degraded.
config optional <<EOF
hypervisors:
  - { name: hv0, plugin: good, file: "$P/good-hypervisor.so" }
  - { name: hv1, plugin: missing-op, file: "$P/missing-op.so", optional: true }
storage:
$good_storage
networks:
$good_network
frontends:
$good_frontend
EOF
start_vmhostd "$config"
assert_grep -F "$P/missing-op.so: required operation 'define' is missing" "$vmhostd_log"
assert_grep -E '[Dd]egraded' "$vmhostd_log"
stop_vmhostd || fail "vmhostd exited with status $? after SIGTERM (log: $vmhostd_log)"

# ---- 6. plugins that export more than vmh_plugin_entry ----------------------
# Built here without a version script (docs/design.md, rule 1): a strong
# extra symbol loads with a warning naming it; the weak symbols a C++
# compiler emits for the standard library's templates are no warning.
inc=(-I "$top_srcdir/plugin-api" -I "$top_builddir/plugin-api")
printf 'int fixture_extra(void);\nint fixture_extra(void) { return 1; }\n' \
  >"$tmp/extra.c"
$CC -shared -fPIC "${inc[@]}" -DFIX_KIND=2 -DFIX_NAME=extra \
  -o "$tmp/extra.so" "$srcdir/plugins/fixture.c" "$tmp/extra.c" ||
  fail "cannot build the extra-export fixture"
$CXX -std=c++11 -shared -fPIC -fvisibility=hidden "${inc[@]}" \
  -o "$tmp/cxx-weak.so" "$srcdir/plugins/cxx-plugin.cpp" ||
  fail "cannot build the C++ plugin without a version script"
nm -D --defined-only "$tmp/cxx-weak.so" >"$tmp/cxx-weak.syms"
assert_grep -F ' W ' "$tmp/cxx-weak.syms" # else this checks nothing

run_vmhostd --dump-plugin "$tmp/extra.so"
[ "$rc" -eq 0 ] || fail "--dump-plugin extra.so: status $rc"
assert_grep -E "^extra_exports=fixture_extra$" "$out"
assert_grep -F "$tmp/extra.so: exports 1 symbol besides vmh_plugin_entry (fixture_extra)" "$err"
expect_dump "$tmp/cxx-weak.so" name=cxx kind=storage \
  -- open close pool_info vol_list vol_get vol_create vol_delete vol_source
assert_not_grep -F extra_exports "$out"

config extra <<EOF
hypervisors:
  - { name: hv0, plugin: good, file: "$P/good-hypervisor.so" }
storage:
  - { name: pool0, plugin: extra, file: "$tmp/extra.so" }
  - { name: pool1, plugin: cxx, file: "$tmp/cxx-weak.so" }
networks:
$good_network
frontends:
$good_frontend
EOF
start_vmhostd "$config"
assert_grep -F "$tmp/extra.so: exports 1 symbol" "$vmhostd_log"
assert_not_grep -F "cxx-weak.so: exports" "$vmhostd_log"
stop_vmhostd || fail "vmhostd exited with status $? after SIGTERM (log: $vmhostd_log)"

# ---- 7. plugin files and directories others could replace -------------------
# Refused before dlopen (sshd's StrictModes): a constructor in such a file
# never runs, not even under --check-config or --dump-plugin.
printf '#include <stdio.h>\n#include <stdlib.h>\n__attribute__((constructor)) static void fixture_ctor(void) { const char *f = getenv("VMH_FIXTURE_CTOR"); FILE *o = f ? fopen(f, "w") : NULL; if (o) fclose(o); }\n' \
  >"$tmp/ctor.c"
mkdir -m 0755 "$tmp/safe" "$tmp/open"
chmod 0777 "$tmp/open"
$CC -shared -fPIC "${inc[@]}" -DFIX_KIND=1 -DFIX_NAME=ctor \
  -o "$tmp/safe/ctor.so" "$srcdir/plugins/fixture.c" "$tmp/ctor.c" ||
  fail "cannot build the constructor fixture"
cp "$tmp/safe/ctor.so" "$tmp/open/ctor.so"
chmod 0755 "$tmp/safe/ctor.so" "$tmp/open/ctor.so"
export VMH_FIXTURE_CTOR="$tmp/ctor-ran"

# A trusted file loads (its constructor runs, which proves the fixture).
run_vmhostd --dump-plugin "$tmp/safe/ctor.so"
[ "$rc" -eq 0 ] || fail "--dump-plugin safe/ctor.so: status $rc: $(cat "$err")"
[ -e "$tmp/ctor-ran" ] || fail "the constructor fixture did not run"
rm -f "$tmp/ctor-ran"

# A 0777 directory, through --dump-plugin and --check-config.
expect_refusal "$tmp/open/ctor.so" \
  "refused: directory $tmp/open is group- or world-writable (mode 0777; chmod go-w it)" \
  -- --dump-plugin "$tmp/open/ctor.so"
config open-dir <<EOF2
hypervisors:
  - { name: hv0, plugin: ctor, file: "$tmp/open/ctor.so" }
storage:
$good_storage
networks:
$good_network
EOF2
expect_refusal "$tmp/open/ctor.so" "refused: directory $tmp/open is group- or world-writable" \
  -- --check-config --config "$config"
[ -e "$tmp/ctor-ran" ] && fail "a refused plugin's constructor ran"

# A 0666 file.
chmod 0666 "$tmp/safe/ctor.so"
expect_refusal "$tmp/safe/ctor.so" \
  "refused: the file is group- or world-writable (mode 0666; chmod go-w it)" \
  -- --dump-plugin "$tmp/safe/ctor.so"
chmod 0755 "$tmp/safe/ctor.so"

# A file owned by someone else (needs root to give it away).
if [ "$(id -u)" -eq 0 ]; then
  chown nobody "$tmp/safe/ctor.so"
  expect_refusal -E "$tmp/safe/ctor.so" \
    "refused: owned by uid $(id -u nobody), not by root or the daemon's user \(uid 0\)" \
    -- --dump-plugin "$tmp/safe/ctor.so"
  chown root "$tmp/safe/ctor.so"
fi
[ -e "$tmp/ctor-ran" ] && fail "a refused plugin's constructor ran"
exit 0
