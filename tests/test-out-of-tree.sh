#!/usr/bin/env bash
# docs/design.md, rule 11, and "vendors ship their own storage plugins": install the
# tree into a DESTDIR, build a storage plugin from nothing but the installed
# headers and vmhost-plugin.pc, and load it into the installed vmhostd next to
# the installed mock plugins.

. "$srcdir/functions.sh"

requires "${CC%% *}" "${PKG_CONFIG%% *}" "${MAKE%% *}" timeout

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

# Only our .pc; paths inside DESTDIR (sysroot), system dirs kept.
pkg ()
{
  PKG_CONFIG_PATH=$pcdir PKG_CONFIG_LIBDIR=$pcdir \
    PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 \
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

# ---- a vendor's plugin --------------------------------------------------------
mkdir "$tmp/vendor"
cat >"$tmp/vendor/vendor.c" <<'EOF'
/* A vendor's storage plugin: an empty, always-full pool. */
#include <vmhost/vmhost-plugin.h>

static const struct vmh_host *host;

static int
v_load(const struct vmh_host *h)
{
  host = h;
  return 0;
}

static int
v_open(const struct vmh_host *h, const struct vmh_instance *inst,
       const struct vmh_config *config, void **ret_handle, uint32_t flags)
{
  static int token;
  const char *label;
  (void)inst;
  (void)flags;
  if (h->config_string(config, "label", "none", &label, 0) != 0)
    return VMH_EINVAL;
  *ret_handle = &token;
  return 0;
}

static void
v_close(void *handle)
{
  (void)handle;
}

static int
v_pool_info(void *handle, vmh_pool_info_fn fn, void *opaque, uint32_t flags)
{
  struct vmh_pool_info info = { .struct_size = sizeof info };
  (void)handle;
  (void)flags;
  return fn(opaque, &info);
}

static int
v_vol_list(void *handle, vmh_volume_info_fn fn, void *opaque, uint32_t flags)
{
  (void)handle;
  (void)fn;
  (void)opaque;
  (void)flags;
  return 0;
}

static int
v_vol_get(void *handle, const char *name, vmh_volume_info_fn fn, void *opaque,
          uint32_t flags)
{
  (void)handle;
  (void)fn;
  (void)opaque;
  (void)flags;
  host->error("no volume %s", name);
  return VMH_ENOENT;
}

static int
v_vol_create(void *handle, const struct vmh_volume_spec *spec, uint32_t flags)
{
  (void)handle;
  (void)flags;
  host->error("pool full: cannot create %s", spec->name);
  return VMH_ENOSPC;
}

static int
v_vol_delete(void *handle, const char *name, uint32_t flags)
{
  (void)handle;
  (void)flags;
  host->error("no volume %s", name);
  return VMH_ENOENT;
}

static int
v_vol_source(void *handle, const char *name, vmh_disk_source_fn fn,
             void *opaque, uint32_t flags)
{
  (void)handle;
  (void)fn;
  (void)opaque;
  (void)flags;
  host->error("no volume %s", name);
  return VMH_ENOENT;
}

static struct vmh_storage_ops ops = {
  .open = v_open,
  .close = v_close,
  .pool_info = v_pool_info,
  .vol_list = v_vol_list,
  .vol_get = v_vol_get,
  .vol_create = v_vol_create,
  .vol_delete = v_vol_delete,
  .vol_source = v_vol_source,
};

static struct vmh_plugin plugin = {
  .kind = VMH_KIND_STORAGE,
  .name = "vendor",
  .version = "0.1",
  .description = "built out of tree",
  .load = v_load,
  .storage = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
EOF
cat >"$tmp/vendor/vendor.syms" <<'EOF'
{ global: vmh_plugin_entry; local: *; };
EOF

# No path into this tree: only what pkg-config says.
(
  cd "$tmp/vendor"
  unset CPATH C_INCLUDE_PATH
  # shellcheck disable=SC2086
  $CC -std=c99 -pedantic -Wall -Wextra -Werror -fPIC -fvisibility=hidden \
    $cflags -c vendor.c -o vendor.o &&
  $CC -shared -Wl,--version-script=vendor.syms -o storage-vendor.so vendor.o
) >"$tmp/vendor/build.log" 2>&1 || {
  cat "$tmp/vendor/build.log" >&2
  fail "the out-of-tree plugin did not build with: $cflags"
}
plugin=$tmp/vendor/storage-vendor.so

# ---- the installed vmhostd loads it -----------------------------------------
VMHOSTD=$vmhostd
export VMHOST_PLUGIN_DIR=$plugindir
minor=$(abi_minor)

expect_dump "$plugin" name=vendor kind=storage version=0.1 \
  "description=built out of tree" "abi_version=1.$minor" \
  thread_model=serialize_all \
  -- open close pool_info vol_list vol_get vol_create vol_delete vol_source

for kind in hypervisor network; do
  [ -f "$plugindir/$kind-mock.so" ] ||
    skip_because "$plugindir/$kind-mock.so is not installed (configure --disable-mock?)"
done

mkdir "$tmp/state"
cat >"$tmp/vmhostd.yaml" <<EOF
daemon:
  state_dir: "$tmp/state"
hypervisors:
  - { name: hv0, plugin: mock }
storage:
  - { name: pool0, plugin: vendor, file: "$plugin", label: gold }
networks:
  - { name: net0, plugin: mock }
EOF
start_vmhostd "$tmp/vmhostd.yaml"
stop_vmhostd || fail "the installed vmhostd exited with status $? after SIGTERM (log: $vmhostd_log)"
