#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# docs/design.md, rules 2 and 11: a plugin binary built against an older minor
# (tests/plugins/old-minor.so: storage, -DVMH_ABI_TARGET_MINOR=0, so its ops
# table ends before the 1.1 image_* fields) still loads, and the operations
# it lacks read as absent.

. "$srcdir/functions.sh"

requires timeout "${CC%% *}"

P=$builddir/plugins/.libs
[ -x "$VMHOSTD" ] || fail "$VMHOSTD is not built"
[ -f "$P/old-minor.so" ] || fail "$P/old-minor.so is not built"

tmpdir
minor=$(abi_minor)
[ "$minor" -ge 1 ] || fail "VMH_ABI_MINOR is $minor: there is no older minor to test"

old_ops=$(abi_sizeof 0 vmh_storage_ops)
new_ops=$(abi_sizeof "$minor" vmh_storage_ops)
[ "$old_ops" -lt "$new_ops" ] ||
  fail "struct vmh_storage_ops is $old_ops bytes at ABI 1.0 and $new_ops at 1.$minor: the fixture tests nothing"

expect_dump "$P/old-minor.so" name=old-minor kind=storage abi_version=1.0 \
  "struct_size=$(abi_sizeof 0 vmh_plugin)" "ops_struct_size=$old_ops" \
  -- open close pool_info vol_list vol_get vol_create vol_delete vol_source
assert_not_grep '^has_image_' "$out"
