#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# docs/design.md, rules 2 and 11: a plugin binary built against an older minor
# (tests/plugins/old-minor.so: storage, -DVMH_ABI_TARGET_MINOR=0, so its ops
# table ends before the 1.1 image_* fields) still loads, and the operations
# it lacks read as absent, and so do the fields appended to the structs it
# fills.

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

# Its pool info, 1.0-sized, through the core: the fields appended since
# (message) read as absent, not as whatever lies past the plugin's struct.
: "${VMHOST_CTL_PLUGIN:=$builddir/ctl/.libs/frontend-ctl.so}"
[ -f "$VMHOST_CTL_PLUGIN" ] || fail "$VMHOST_CTL_PLUGIN is not built"
cat >"$tmp/vmhostd.yaml" <<YAML
daemon: { state_dir: '$tmp/state' }
storage:
  - { name: old, plugin: old-minor, file: '$P/old-minor.so' }
frontends:
  - { name: ctl, plugin: ctl, file: '$VMHOST_CTL_PLUGIN', socket: '$tmp/ctl.sock' }
YAML
start_vmhostd "$tmp/vmhostd.yaml"
python3 "$srcdir/ctl/vmhctl.py" "$tmp/ctl.sock" '{"op":"pool_get","pool":"old"}' >"$tmp/pool" ||
  fail "pool_get: $(cat "$tmp/pool")"
python3 - "$tmp/pool" <<'PY' || fail "the 1.0 plugin's pool info (see above)"
import json, sys
p = json.load(open(sys.argv[1]))["pools"][0]
if not (p["capacity"] == 1 << 30 and "message" in p and p["message"] is None):
    sys.exit("FAIL: pool info of a 1.0 plugin: %s" % p)
PY
stop_vmhostd || fail "vmhostd exited with status $?"
