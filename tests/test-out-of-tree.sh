#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# docs/design.md, rule 11, and "vendors ship their own storage plugins":
# install the tree into a DESTDIR, build the example storage plugin
# (examples/storage-example, copied out of the tree) with its own Makefile
# from nothing but the installed headers and vmhost-plugin.pc, install it
# into the plugin directory, load it into the installed vmhostd next to the
# installed mock plugins and use every operation it has through the ctl
# front-end.

. "$srcdir/functions.sh"

requires "${CC%% *}" "${PKG_CONFIG%% *}" "${MAKE%% *}" timeout python3

tmpdir
dest=$tmp/dest

# ---- install ----------------------------------------------------------------
if ! $MAKE -C "$top_builddir" install DESTDIR="$dest" >"$tmp/install.log" 2>&1; then
  tail -n 60 "$tmp/install.log" >&2
  fail "make install DESTDIR=$dest failed (log above)"
fi

pcs=$(find "$dest" -name vmhost-plugin.pc)
[ "$(echo "$pcs" | grep -c .)" -eq 1 ] || fail "expected one installed vmhost-plugin.pc, found: $pcs"
pcdir=$(dirname "$pcs")

# Only our .pc; paths inside DESTDIR (sysroot), system dirs kept.  Exported:
# the example's Makefile runs pkg-config too.
export PKG_CONFIG_PATH=$pcdir PKG_CONFIG_LIBDIR=$pcdir \
  PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1
pkg ()
{
  $PKG_CONFIG "$@" vmhost-plugin
}

cflags=$(pkg --cflags) || fail "pkg-config --cflags vmhost-plugin failed"
for f in $cflags; do
  case "$f" in
    -I"$dest"/*) [ -f "${f#-I}/vmhost/vmhost-plugin.h" ] ||
                   fail "pkg-config --cflags gives $f, which has no vmhost/vmhost-plugin.h" ;;
    -I*) fail "pkg-config --cflags gives $f, outside the installed tree" ;;
  esac
done
case "$cflags" in
  *-I*) ;;
  *) fail "pkg-config --cflags vmhost-plugin gives no -I: '$cflags'" ;;
esac

# plugindir is where plugins go (a path under the configured prefix: under
# DESTDIR here).
plugindir=$(pkg --variable=plugindir)
[ -n "$plugindir" ] || fail "vmhost-plugin.pc has no plugindir variable"
case "$plugindir" in
  "$dest"/*) ;;
  *) plugindir=$dest$plugindir ;;
esac
[ -d "$plugindir" ] || fail "plugindir $plugindir was not installed"

vmhostd=$(find "$dest" -type f -name vmhostd -perm -u+x)
[ -n "$vmhostd" ] && [ "$(echo "$vmhostd" | grep -c .)" -eq 1 ] ||
  fail "expected one installed vmhostd, found: '$vmhostd'"

# ---- what else a vendor finds installed --------------------------------------
# The default config at the path vmhostd --help names, with an absolute
# state_dir; every plugin's config reference; the example and the guide.
conf=$(find "$dest" -path '*/etc/vmhost/vmhostd.yaml')
[ -n "$conf" ] || fail "make install created no etc/vmhost/vmhostd.yaml"
grep -Eq '^  state_dir: /' "$conf" || fail "$conf: state_dir is not absolute"
"$vmhostd" --help | grep -qF "${conf#"$dest"}" ||
  fail "vmhostd --help does not name ${conf#"$dest"} as the default config"
for f in "$top_srcdir"/etc/plugins/*.yaml; do
  [ -n "$(find "$dest" -path "*/doc/vmhost/plugins/${f##*/}")" ] ||
    fail "the config reference ${f##*/} is not installed"
done
[ -n "$(find "$dest" -path '*/doc/vmhost/plugin-guide.md')" ] ||
  fail "docs/plugin-guide.md is not installed"
if [ -f "$plugindir/frontend-rest.so" ] && [ -f "$plugindir/frontend-rpc.so" ]; then
  VMHOST_PLUGIN_DIR=$plugindir "$vmhostd" --check-config --config "$conf" \
    >"$tmp/conf.out" 2>&1 || {
    cat "$tmp/conf.out" >&2
    fail "the installed default config does not pass --check-config"
  }
fi

# ---- the example plugin, built by a vendor ----------------------------------
# A copy, so that nothing can reach back into this tree; CPATH and friends
# unset, so that only what pkg-config says is used.  Installed to $plugindir
# as computed above (pkg-config's sysroot may or may not prefix variables).
cp -R "$top_srcdir/examples/storage-example" "$tmp/vendor"
chmod -R u+w "$tmp/vendor"
rm -f "$tmp/vendor/storage-example.so"
(
  unset CPATH C_INCLUDE_PATH
  $MAKE -C "$tmp/vendor" PKG_CONFIG="$PKG_CONFIG" CC="$CC" \
    CFLAGS="-O2 -pedantic -Wall -Wextra -Werror" &&
  $MAKE -C "$tmp/vendor" install PKG_CONFIG="$PKG_CONFIG" plugindir="$plugindir"
) >"$tmp/vendor/build.log" 2>&1 || {
  cat "$tmp/vendor/build.log" >&2
  fail "the example plugin did not build or install with: $cflags"
}
plugin=$plugindir/storage-example.so
[ -f "$plugin" ] || fail "make install put no storage-example.so in $plugindir"

# ---- the installed vmhostd loads it -----------------------------------------
VMHOSTD=$vmhostd
export VMHOST_PLUGIN_DIR=$plugindir
minor=$(abi_minor)

expect_dump "$plugin" name=example kind=storage version=1.0 \
  "description=raw volumes in a directory (the plugin guide's example)" \
  "abi_version=1.$minor" thread_model=serialize_instance \
  -- open close health pool_info vol_list vol_get vol_create vol_delete \
  vol_resize vol_source vol_unmap

for kind in hypervisor network; do
  [ -f "$plugindir/$kind-mock.so" ] ||
    skip_because "$plugindir/$kind-mock.so is not installed (configure --disable-mock?)"
done
: "${VMHOST_CTL_PLUGIN:=$builddir/ctl/.libs/frontend-ctl.so}"
: "${VMHCTL:=$srcdir/ctl/vmhctl.py}"
[ -f "$VMHOST_CTL_PLUGIN" ] || fail "$VMHOST_CTL_PLUGIN is not built"

# config POOL-KEYS: a config with the example pool (found by name in the
# plugin directory) with those keys, and the ctl front-end.
config ()
{
  cat >"$tmp/vmhostd.yaml" <<EOF
daemon:
  state_dir: "$tmp/state"
hypervisors:
  - { name: hv0, plugin: mock }
storage:
  - { name: pool0, plugin: example, $1 }
networks:
  - { name: net0, plugin: mock }
frontends:
  - { name: ctl, plugin: ctl, file: "$VMHOST_CTL_PLUGIN", socket: "$tmp/ctl.sock" }
EOF
}

# Its config, checked: a path that is no directory and a typo are refused,
# with where (config_key_where); a relative path is the config file's
# directory's (config_path).
config 'path: vmhostd.yaml'
run_vmhostd --check-config --config "$tmp/vmhostd.yaml"
[ "$rc" -eq 2 ] || fail "--check-config with a file as the path: status $rc"
assert_grep -F "vmhostd.yaml:6:" "$err"
assert_grep -F "path $tmp/vmhostd.yaml is not a directory" "$err"
config "path: pool, capacity: 64M, prealocate: yes"
run_vmhostd --check-config --config "$tmp/vmhostd.yaml"
[ "$rc" -eq 2 ] || fail "--check-config with a typo: status $rc"
assert_grep -F "prealocate" "$err"
[ ! -e "$tmp/pool" ] || fail "--check-config created $tmp/pool"

config "path: pool, capacity: 64M, preallocate: no"
mkdir "$tmp/state"
start_vmhostd "$tmp/vmhostd.yaml"
[ -d "$tmp/pool" ] || fail "the pool did not create its directory beside the config"

export sock=$tmp/ctl.sock pool=$tmp/pool
python3 - <<'EOF' || fail "the example plugin through the core (see above)"
import os
import sys

sys.path.insert(0, os.path.join(os.environ["srcdir"], "ctl"))
import vmhctl

sock, pool = os.environ["sock"], os.environ["pool"]
MiB = 1 << 20


def expect(cond, what, r):
    if not cond:
        sys.exit("FAIL: %s: %s" % (what, r))


def refused(req, error):
    r = vmhctl.call(sock, req)
    expect(r["error"] == error and r["message"], f"{req} -> {error}", r)
    return r


def pool_info():
    return vmhctl.check(sock, {"op": "pool_get", "pool": "pool0"})["pools"][0]


def size(name):
    return os.path.getsize(os.path.join(pool, name))


p = pool_info()
expect(p["type"] == "example" and p["capacity"] == 64 * MiB
       and p["available"] == 64 * MiB and p["n_volumes"] == 0
       and p["default_format"] == "raw", "empty pool", p)

vol = {"op": "volume_create", "pool": "pool0"}
vmhctl.check(sock, dict(vol, volume={"name": "v1", "size": 16 * MiB}))
vmhctl.check(sock, dict(vol, volume={"name": "data_1.raw", "size": MiB,
                                     "format": "raw"}))
expect(size("v1") == 16 * MiB, "v1's file", os.listdir(pool))
r = vmhctl.check(sock, {"op": "volume_get", "pool": "pool0", "volume": "v1"})
expect(r["volumes"][0]["capacity"] == 16 * MiB
       and r["volumes"][0]["format"] == "raw", "volume_get", r)
r = vmhctl.check(sock, {"op": "volume_list", "pool": "pool0"})
expect(sorted(v["name"] for v in r["volumes"]) == ["data_1.raw", "v1"],
       "volume_list", r)
p = pool_info()
expect(p["n_volumes"] == 2 and p["available"] == 47 * MiB, "pool use", p)

refused(dict(vol, volume={"name": "v1", "size": MiB}), "already_exists")
refused(dict(vol, volume={"name": "v2", "size": MiB, "format": "qcow2"}),
        "not_supported")
r = refused(dict(vol, volume={"name": "v2", "size": 48 * MiB}), "no_space")
expect("do not fit" in r["message"], "no_space message", r)
refused({"op": "volume_get", "pool": "pool0", "volume": "v9"}, "not_found")
refused({"op": "image_import", "pool": "pool0",
         "image": {"name": "i", "url": "file:///dev/null",
                   "sha256": 64 * "0"}}, "not_supported")

rs = {"op": "volume_resize", "pool": "pool0", "volume": "v1"}
r = refused(dict(rs, size=8 * MiB), "invalid_argument")
expect("shrink" in r["message"], "shrink refused", r)
vmhctl.check(sock, dict(rs, size=8 * MiB, shrink=True))
vmhctl.check(sock, dict(rs, size=32 * MiB))
refused(dict(rs, size=64 * MiB), "no_space")
expect(size("v1") == 32 * MiB, "resized", size("v1"))

# A VM with a disk in the pool: the volume is made, then removed with it.
vmhctl.check(sock, {"op": "vm_create", "spec": {
    "name": "vm1", "vcpus": 1, "memory": 256 * MiB,
    "disks": [{"name": "vda", "pool": "pool0", "size": 4 * MiB}]}})
expect(size("vm1-vda") == 4 * MiB, "the VM's volume", os.listdir(pool))
vmhctl.check(sock, {"op": "vm_delete", "vm": "vm1"})
expect(not os.path.exists(os.path.join(pool, "vm1-vda")), "volume left",
       os.listdir(pool))

for name in ("v1", "data_1.raw"):
    vmhctl.check(sock, {"op": "volume_delete", "pool": "pool0",
                        "volume": name})
refused({"op": "volume_delete", "pool": "pool0", "volume": "v1"}, "not_found")
expect(os.listdir(pool) == [], "files left in the pool", os.listdir(pool))
r = vmhctl.check(sock, {"op": "health"})
expect(any(c["name"] == "pool0" and c["status"] == "ok" for c in r["checks"]),
       "health", r)
EOF

stop_vmhostd || fail "the installed vmhostd exited with status $? after SIGTERM (log: $vmhostd_log)"
assert_grep -F "capacity 67108864 bytes" "$vmhostd_log"
