// SPDX-License-Identifier: LGPL-2.1-or-later
// A storage plugin written in C++11 against the public headers, registered
// with the same VMH_PLUGIN_REGISTER a C plugin uses (docs/design.md, rule 4: the
// headers compile as C++).  An in-memory pool: volumes live as long as the
// instance.  No exception may cross the ABI, so every operation catches.
#include <cstdint>
#include <map>
#include <new>
#include <string>

#include <vmhost/vmhost-plugin.h>

namespace {

const struct vmh_host *host;

struct pool {
  std::map<std::string, uint64_t> volumes;
};

int
cxx_load(const struct vmh_host *h)
{
  host = h;
  return 0;
}

int
cxx_open(const struct vmh_host *h, const struct vmh_instance *,
         const struct vmh_config *, void **ret_handle, uint32_t flags)
{
  if (flags & ~VMH_OPEN_CHECK_ONLY) {
    h->error("unknown flags 0x%x", static_cast<unsigned>(flags));
    return VMH_EINVAL;
  }
  pool *p = new (std::nothrow) pool;
  if (p == nullptr) {
    h->error("out of memory");
    return VMH_ENOMEM;
  }
  *ret_handle = p;
  return 0;
}

void
cxx_close(void *handle)
{
  delete static_cast<pool *>(handle);
}

int
refuse_flags(uint32_t flags)
{
  host->error("unknown flags 0x%x", static_cast<unsigned>(flags));
  return VMH_EINVAL;
}

int
cxx_pool_info(void *handle, vmh_pool_info_fn fn, void *opaque, uint32_t flags)
{
  if (flags != 0)
    return refuse_flags(flags);
  const pool *p = static_cast<const pool *>(handle);
  struct vmh_pool_info info = vmh_pool_info();
  info.struct_size = sizeof info;
  info.capacity = UINT64_C(1) << 30;
  for (const auto &v : p->volumes)
    info.allocation += v.second;
  info.available = info.capacity - info.allocation;
  info.n_volumes = static_cast<uint32_t>(p->volumes.size());
  return fn(opaque, &info);
}

int
visit(const std::string &name, uint64_t size, vmh_volume_info_fn fn,
      void *opaque)
{
  struct vmh_volume_info info = vmh_volume_info();
  info.struct_size = sizeof info;
  info.name = name.c_str();
  info.capacity = size;
  info.format = VMH_FORMAT_RAW;
  return fn(opaque, &info);
}

int
cxx_vol_list(void *handle, vmh_volume_info_fn fn, void *opaque,
             uint32_t flags)
{
  if (flags != 0)
    return refuse_flags(flags);
  for (const auto &v : static_cast<const pool *>(handle)->volumes) {
    int r = visit(v.first, v.second, fn, opaque);
    if (r != 0)
      return r;
  }
  return 0;
}

int
cxx_vol_get(void *handle, const char *name, vmh_volume_info_fn fn,
            void *opaque, uint32_t flags)
{
  if (flags != 0)
    return refuse_flags(flags);
  try {
    const pool *p = static_cast<const pool *>(handle);
    auto it = p->volumes.find(name);
    if (it == p->volumes.end()) {
      host->error("no volume %s", name);
      return VMH_ENOENT;
    }
    return visit(it->first, it->second, fn, opaque);
  } catch (const std::bad_alloc &) {
    host->error("out of memory");
    return VMH_ENOMEM;
  }
}

int
cxx_vol_create(void *handle, const struct vmh_volume_spec *spec,
               uint32_t flags)
{
  if (flags != 0)
    return refuse_flags(flags);
  try {
    pool *p = static_cast<pool *>(handle);
    if (p->volumes.count(spec->name) != 0) {
      host->error("volume %s exists", spec->name);
      return VMH_EEXIST;
    }
    p->volumes[spec->name] = spec->size;
    return 0;
  } catch (const std::bad_alloc &) {
    host->error("out of memory");
    return VMH_ENOMEM;
  }
}

int
cxx_vol_delete(void *handle, const char *name, uint32_t flags)
{
  if (flags != 0)
    return refuse_flags(flags);
  try {
    if (static_cast<pool *>(handle)->volumes.erase(name) == 0) {
      host->error("no volume %s", name);
      return VMH_ENOENT;
    }
    return 0;
  } catch (const std::bad_alloc &) {
    host->error("out of memory");
    return VMH_ENOMEM;
  }
}

int
cxx_vol_source(void *, const char *name, vmh_disk_source_fn, void *,
               uint32_t flags)
{
  if (flags & ~VMH_SOURCE_LOCAL)
    return refuse_flags(flags);
  host->error("volume %s lives in memory: no hypervisor can open it", name);
  return VMH_ENOTSUP;
}

struct vmh_storage_ops ops = vmh_storage_ops();
struct vmh_plugin plugin = vmh_plugin();

// C++ has no designated initializers before C++20: fill the tables when
// the object is loaded, before the core calls vmh_plugin_entry.
struct init {
  init()
  {
    ops.open = cxx_open;
    ops.close = cxx_close;
    ops.pool_info = cxx_pool_info;
    ops.vol_list = cxx_vol_list;
    ops.vol_get = cxx_vol_get;
    ops.vol_create = cxx_vol_create;
    ops.vol_delete = cxx_vol_delete;
    ops.vol_source = cxx_vol_source;
    plugin.kind = VMH_KIND_STORAGE;
    plugin.name = "cxx";
    plugin.version = "1.0";
    plugin.description = "C++ test plugin";
    plugin.load = cxx_load;
    plugin.storage = &ops;
  }
} init_tables;

} // namespace

VMH_PLUGIN_REGISTER(plugin)
