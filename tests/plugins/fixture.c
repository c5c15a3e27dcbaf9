/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test-only plugins for the loader tests (tests/loader.mk builds one shared
 * object per fixture from this file, each with its own -D flags).
 *
 *   -DFIX_KIND=1|2|3|4     hypervisor, storage, network, frontend: a plugin
 *                          of that kind with every required operation as a
 *                          trivial working stub (default 1)
 *   -DFIX_NAME=word        the plugin's name (default: good)
 *   -DVMH_THREAD_MODEL=…   as a plugin author would
 *   -DVMH_ABI_TARGET_MINOR=0  built against ABI 1.0 (the old-minor fixture)
 *
 * and at most one defect, each of which the loader must refuse:
 *   FIX_OTHER_MAJOR  FIX_NEWER_MINOR  FIX_SMALL_STRUCT  FIX_SMALL_OPS
 *   FIX_NO_OPS  FIX_RETURNS_NULL  FIX_BAD_KIND  FIX_BAD_THREAD_MODEL
 *   FIX_BAD_NAME  FIX_MISSING_OP  FIX_LOAD_FAILS
 */
#include <stddef.h>
#include <stdint.h>

#include <vmhost/vmhost-plugin.h>

#ifndef FIX_KIND
#define FIX_KIND 1
#endif

#define FIX_STR_(x) #x
#define FIX_STR(x) FIX_STR_(x)
#ifdef FIX_BAD_NAME
#define FIX_NAME_STR "Bad_Name"
#elif defined(FIX_NAME)
#define FIX_NAME_STR FIX_STR(FIX_NAME)
#else
#define FIX_NAME_STR "good"
#endif

/* no-ops-table builds the ops but does not point at them. */
#ifdef FIX_NO_OPS
#define FIX_UNUSED __attribute__((__unused__))
#else
#define FIX_UNUSED
#endif

static const struct vmh_host *host;
static int handle_token;

static int
fix_open(const struct vmh_host *h, const struct vmh_instance *inst,
         const struct vmh_config *config, void **ret_handle, uint32_t flags)
{
  (void)inst;
  (void)config;
  if (flags & ~VMH_OPEN_CHECK_ONLY) {
    h->error("unknown flags 0x%x", (unsigned)flags);
    return VMH_EINVAL;
  }
  *ret_handle = &handle_token;
  return 0;
}

static void
fix_close(void *handle)
{
  (void)handle;
}

static int
fix_load(const struct vmh_host *h)
{
  host = h;
#ifdef FIX_LOAD_FAILS
  h->error("fixture refuses to load (%d)", 42);
  return VMH_EIO;
#else
  return 0;
#endif
}

#define REFUSE_FLAGS(flags)                                  \
  do {                                                       \
    if ((flags) != 0) {                                      \
      host->error("unknown flags 0x%x", (unsigned)(flags));  \
      return VMH_EINVAL;                                     \
    }                                                        \
  } while (0)

#if FIX_KIND == 1
/* ---- hypervisor: knows no VMs; define/start/stop are accepted ---------- */
static int
hv_caps(void *handle, struct vmh_hypervisor_caps *ret, uint32_t flags)
{
  (void)handle;
  REFUSE_FLAGS(flags);
  ret->source_types = VMH_SOURCE_BIT(VMH_SOURCE_FILE);
  ret->binding_types = UINT32_C(1) << VMH_BINDING_BRIDGE;
  ret->channel_type = VMH_CHANNEL_NONE;
  return 0;
}

#ifndef FIX_MISSING_OP
static int
hv_define(void *handle, const struct vmh_vm_spec *spec, uint32_t flags)
{
  (void)handle;
  (void)spec;
  REFUSE_FLAGS(flags & ~VMH_DEFINE_START);
  return 0;
}
#endif

static int
hv_vm(void *handle, const char *vm_id, uint32_t flags)
{
  (void)handle;
  (void)vm_id;
  REFUSE_FLAGS(flags);
  return 0;
}

static int
hv_stop(void *handle, const char *vm_id, uint32_t timeout_s, uint32_t flags)
{
  (void)handle;
  (void)vm_id;
  (void)timeout_s;
  REFUSE_FLAGS(flags & ~VMH_STOP_FORCE);
  return 0;
}

static int
hv_get(void *handle, const char *vm_id, vmh_vm_info_fn fn, void *opaque,
       uint32_t flags)
{
  (void)handle;
  (void)fn;
  (void)opaque;
  REFUSE_FLAGS(flags);
  host->error("no VM %s", vm_id);
  return VMH_ENOENT;
}

static int
hv_list(void *handle, vmh_vm_info_fn fn, void *opaque, uint32_t flags)
{
  (void)handle;
  (void)fn;
  (void)opaque;
  REFUSE_FLAGS(flags);
  return 0;
}

static struct vmh_hypervisor_ops ops FIX_UNUSED = {
  .open = fix_open,
  .close = fix_close,
  .caps = hv_caps,
#ifndef FIX_MISSING_OP
  .define = hv_define,
#endif
  .undefine = hv_vm,
  .start = hv_vm,
  .stop = hv_stop,
  .get = hv_get,
  .list = hv_list,
};
#define FIX_OPS_MEMBER hypervisor

#elif FIX_KIND == 2
/* ---- storage: an empty pool of 1 GiB ---------------------------------- */
static int
st_pool_info(void *handle, vmh_pool_info_fn fn, void *opaque, uint32_t flags)
{
  struct vmh_pool_info info = { .struct_size = sizeof info };
  (void)handle;
  REFUSE_FLAGS(flags);
  info.capacity = UINT64_C(1) << 30;
  info.available = info.capacity;
  return fn(opaque, &info);
}

static int
st_vol_list(void *handle, vmh_volume_info_fn fn, void *opaque,
            uint32_t flags)
{
  (void)handle;
  (void)fn;
  (void)opaque;
  REFUSE_FLAGS(flags);
  return 0;
}

static int
st_vol_get(void *handle, const char *name, vmh_volume_info_fn fn,
           void *opaque, uint32_t flags)
{
  (void)handle;
  (void)fn;
  (void)opaque;
  REFUSE_FLAGS(flags);
  host->error("no volume %s", name);
  return VMH_ENOENT;
}

static int
st_vol_create(void *handle, const struct vmh_volume_spec *spec,
              uint32_t flags)
{
  (void)handle;
  REFUSE_FLAGS(flags);
  host->error("cannot create %s: the fixture pool stores nothing",
              spec->name);
  return VMH_ENOSPC;
}

static int
st_vol_delete(void *handle, const char *name, uint32_t flags)
{
  (void)handle;
  REFUSE_FLAGS(flags);
  host->error("no volume %s", name);
  return VMH_ENOENT;
}

static int
st_vol_source(void *handle, const char *name, vmh_disk_source_fn fn,
              void *opaque, uint32_t flags)
{
  (void)handle;
  (void)fn;
  (void)opaque;
  REFUSE_FLAGS(flags & ~VMH_SOURCE_LOCAL);
  host->error("no volume %s", name);
  return VMH_ENOENT;
}

static struct vmh_storage_ops ops FIX_UNUSED = {
  .open = fix_open,
  .close = fix_close,
  .pool_info = st_pool_info,
  .vol_list = st_vol_list,
  .vol_get = st_vol_get,
  .vol_create = st_vol_create,
  .vol_delete = st_vol_delete,
  .vol_source = st_vol_source,
};
#define FIX_OPS_MEMBER storage

#elif FIX_KIND == 3
/* ---- network: binds every port to bridge "br-fixture" ------------------ */
static int
net_info(void *handle, vmh_network_info_fn fn, void *opaque, uint32_t flags)
{
  struct vmh_network_info info = { .struct_size = sizeof info };
  (void)handle;
  REFUSE_FLAGS(flags);
  info.bridge = "br-fixture";
  info.up = 1;
  return fn(opaque, &info);
}

static int
net_port_bind(void *handle, const struct vmh_port_request *req,
              vmh_nic_binding_fn fn, void *opaque, uint32_t flags)
{
  struct vmh_nic_binding b = { .struct_size = sizeof b };
  (void)handle;
  REFUSE_FLAGS(flags);
  b.type = VMH_BINDING_BRIDGE;
  b.bridge = "br-fixture";
  b.mac = req->mac != NULL ? req->mac : "52:54:00:00:00:01";
  b.vlan = req->vlan;
  return fn(opaque, &b);
}

static int
net_port_unbind(void *handle, const char *vm_id, const char *nic_name,
                uint32_t flags)
{
  (void)handle;
  (void)vm_id;
  (void)nic_name;
  REFUSE_FLAGS(flags);
  return 0;
}

static struct vmh_network_ops ops FIX_UNUSED = {
  .open = fix_open,
  .close = fix_close,
  .info = net_info,
  .port_bind = net_port_bind,
  .port_unbind = net_port_unbind,
};
#define FIX_OPS_MEMBER network

#elif FIX_KIND == 4
/* ---- frontend: serves nothing ----------------------------------------- */
static int
fe_start(void *handle, const struct vmh_core *core, uint32_t flags)
{
  (void)handle;
  (void)core;
  REFUSE_FLAGS(flags);
  return 0;
}

static void
fe_stop(void *handle, uint32_t flags)
{
  (void)handle;
  (void)flags;
}

static struct vmh_frontend_ops ops FIX_UNUSED = {
  .open = fix_open,
  .close = fix_close,
  .start = fe_start,
  .stop = fe_stop,
};
#define FIX_OPS_MEMBER frontend

#else
#error "FIX_KIND must be 1, 2, 3 or 4"
#endif

static struct vmh_plugin plugin = {
#ifdef FIX_BAD_KIND
  .kind = 9,
#else
  .kind = FIX_KIND,
#endif
  .name = FIX_NAME_STR,
  .version = "1.2.3",
  .description = "loader test fixture",
  .load = fix_load,
#ifndef FIX_NO_OPS
  .FIX_OPS_MEMBER = &ops,
#endif
};

#if defined(FIX_OTHER_MAJOR) || defined(FIX_NEWER_MINOR) || \
    defined(FIX_SMALL_STRUCT) || defined(FIX_SMALL_OPS) || \
    defined(FIX_RETURNS_NULL) || defined(FIX_BAD_THREAD_MODEL)
/* Hand-written entry point: what VMH_PLUGIN_REGISTER does, then the defect
 * (a plugin built with other headers, or a broken one). */
VMH_EXPORT const struct vmh_plugin *vmh_plugin_entry(void);
VMH_EXPORT const struct vmh_plugin *
vmh_plugin_entry(void)
{
  plugin.struct_size = (uint32_t)sizeof plugin;
  plugin.abi_major = VMH_ABI_MAJOR;
  plugin.abi_minor = VMH_ABI_TARGET_MINOR;
  plugin.thread_model = VMH_THREAD_MODEL;
  ops.struct_size = (uint32_t)sizeof ops;
#if defined(FIX_OTHER_MAJOR)
  plugin.abi_major = 2;
#elif defined(FIX_NEWER_MINOR)
  plugin.abi_minor = 9;
#elif defined(FIX_SMALL_STRUCT)
  plugin.struct_size = 12;
#elif defined(FIX_SMALL_OPS)
  ops.struct_size = 8;
#elif defined(FIX_RETURNS_NULL)
  return NULL;
#elif defined(FIX_BAD_THREAD_MODEL)
  plugin.thread_model = 7;
#endif
  return &plugin;
}
#else
VMH_PLUGIN_REGISTER(plugin)
#endif
