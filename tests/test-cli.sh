#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vmhostd's command line: --version, --help, bad usage; --check-config on
# good and bad files (exact messages, exit 2, nothing started: no state
# directory is made); a plugin key nobody reads is refused after open().
. "$srcdir/functions.sh"
tmpdir

run_vmhostd --version
[ "$rc" = 0 ] || fail "--version: exit $rc"
grep -Eq "^vmhostd [0-9.]+ \\(plugin ABI 1\\.$(abi_minor)\\)\$" "$out" || fail "--version: '$out'"
run_vmhostd --help
[ "$rc" = 0 ] && grep -q -- '--check-config' "$out" || fail "--help: $rc '$out'"
run_vmhostd --no-such-option
[ "$rc" = 2 ] || fail "bad option: exit $rc"
run_vmhostd extra-argument
[ "$rc" = 2 ] && grep -q "unexpected argument 'extra-argument'" "$err" || fail "extra argument: $rc '$(cat "$err")'"

# Every fixture under a copy in $tmp, so relative state_dir defaults land
# there and we can check that nothing was created.
check_bad () # FILE EXPECTED-MESSAGE-AFTER-"FILE:"
{
  local f="$tmp/$1"
  cp "$srcdir/configs/$1" "$f"
  run_vmhostd --check-config --config "$f"
  [ "$rc" = 2 ] || fail "$1: exit $rc, expected 2 ($(cat "$err"))"
  grep -qF -- "vmhostd: error: $f:$2" "$err" || fail "$1: message '$(cat "$err")', expected '$f:$2'"
  [ "$(wc -l < "$err")" = 1 ] || fail "$1: one line expected: $(cat "$err")"
  run_vmhostd --config "$f"
  [ "$rc" = 2 ] || fail "$1 (daemon): exit $rc, expected 2 ($(cat "$err"))"
  [ ! -e "$tmp/state" ] || fail "$1: a state directory was made"
}

check_bad bad-unknown-top.yaml "3:1: unknown key 'hypervisor' at the top level (expected one of: daemon, hypervisors, storage, networks, frontends, resources); did you mean 'hypervisors'?"
check_bad bad-unknown-daemon.yaml "3:3: unknown key 'stat_dir' under daemon"
check_bad bad-range.yaml "3:3: key 'workers': 0 is out of range 1..256"
check_bad bad-type.yaml "3:3: key 'workers': expected an integer, found 'lots'"
check_bad bad-dup-instance.yaml "6:5: duplicate instance name 'hv0' (first at $tmp/bad-dup-instance.yaml:3:5)"
check_bad bad-dup-key.yaml "4:3: duplicate key 'workers' (first at 3:3)"
check_bad bad-missing-plugin.yaml "3:5: missing required key 'plugin'"
check_bad bad-name.yaml "3:5: key 'name': 'Hv_0' is not a valid instance name"
check_bad bad-plugin-key.yaml "7:5: unknown key 'max_vcpu' for plugin 'mock' (hypervisor 'hv0')"
check_bad bad-syntax.yaml "4:12: syntax error"
check_bad bad-alias.yaml "3:5: anchor '&base': anchors and aliases are not supported"
check_bad bad-utf8.yaml "3:33: invalid UTF-8"

# A plugin that is not there: named, with the directories searched.
cat > "$tmp/no-plugin.yaml" <<'YAML'
storage:
  - { name: pool0, plugin: nosuch }
YAML
run_vmhostd --check-config --config "$tmp/no-plugin.yaml"
[ "$rc" = 2 ] || fail "missing plugin: exit $rc"
grep -qF "storage 'pool0': no plugin 'nosuch' (kind storage); available: " "$err" \
  || fail "missing plugin message: $(cat "$err")"
grep -qE "available: ([a-z0-9._-]+, )*mock(, |$)" "$err" \
  || fail "missing plugin message lists no plugins: $(cat "$err")"

# A plugin's own config errors (here a mock fault naming an unknown op).
cat > "$tmp/bad-fault.yaml" <<'YAML'
hypervisors:
  - name: hv0
    plugin: mock
    faults: [ { op: fly, mode: always } ]
YAML
run_vmhostd --check-config --config "$tmp/bad-fault.yaml"
[ "$rc" = 2 ] || fail "bad fault: exit $rc ($(cat "$err"))"
grep -qF "hypervisor 'hv0': $tmp/bad-fault.yaml:4" "$err" || fail "bad fault message: $(cat "$err")"
grep -qF "fly" "$err" || fail "bad fault message names the op: $(cat "$err")"

# An instance that fails to open after others opened: its message is the
# one printed (closing the others must not wipe it).
cat > "$tmp/open-fails.yaml" <<YAML
daemon: { state_dir: $tmp/open-fails-state }
storage:
  - { name: pool0, plugin: mock }
networks:
  - name: net0
    plugin: mock
    faults: [ { op: open, mode: always, error: io_error, message: "net0 cannot open" } ]
YAML
run_vmhostd --config "$tmp/open-fails.yaml"
[ "$rc" = 1 ] || fail "open fails: exit $rc ($(cat "$err"))"
grep -qF "network 'net0': net0 cannot open" "$err" || fail "open-fails message: $(cat "$err")"
rm -rf "$tmp/open-fails-state"

# Good files pass and make nothing.
for f in good-minimal.yaml good-full.yaml; do
  cp "$srcdir/configs/$f" "$tmp/$f"
  run_vmhostd --check-config --config "$tmp/$f"
  [ "$rc" = 0 ] || fail "$f: exit $rc ($(cat "$err"))"
  grep -qF "$tmp/$f: configuration OK" "$out" || fail "$f: '$out'"
done
[ ! -e "$tmp/state" ] || fail "--check-config made a state directory"

# The default config checks and runs from the build tree.
run_vmhostd --check-config --config "$top_srcdir/etc/vmhostd.yaml"
[ "$rc" = 0 ] || fail "etc/vmhostd.yaml: exit $rc ($(cat "$err"))"

# --dump-plugin on a real plugin.
for kind in hypervisor storage network; do
  so=$(find "$top_builddir/plugins/$kind/mock/.libs" -name "$kind-mock.so")
  run_vmhostd --dump-plugin "$so"
  [ "$rc" = 0 ] || fail "dump $kind: exit $rc ($(cat "$err"))"
  grep -qx "name=mock" "$out" && grep -qx "kind=$kind" "$out" \
    && grep -qx "abi_version=1.$(abi_minor)" "$out" && grep -qx "thread_model=parallel" "$out" \
    || fail "dump $kind: $out"
done
exit 0
