/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI — the plugin descriptor and its one entry point.
 *
 * A plugin is a shared object exporting exactly one symbol,
 * vmh_plugin_entry(), which returns its descriptor.  Write it with
 * VMH_PLUGIN_REGISTER, which fills in what an author must not get wrong:
 *
 *   #define VMH_THREAD_MODEL VMH_THREAD_PARALLEL   // optional, before includes
 *   #include <vmhost/vmhost-plugin.h>
 *
 *   static struct vmh_storage_ops ops = { .open = …, .close = …, … };
 *   static struct vmh_plugin plugin = {
 *     .kind = VMH_KIND_STORAGE, .name = "mypool", .version = "1.0",
 *     .storage = &ops,
 *   };
 *   VMH_PLUGIN_REGISTER (plugin)
 */
#ifndef VMHOST_PLUGIN_H
#define VMHOST_PLUGIN_H

#include <vmhost/common.h>
#include <vmhost/frontend.h>
#include <vmhost/host.h>
#include <vmhost/hypervisor.h>
#include <vmhost/network.h>
#include <vmhost/storage.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vmh_plugin {
  uint32_t struct_size;  /* filled by VMH_PLUGIN_REGISTER */
  uint32_t abi_major;    /* filled by VMH_PLUGIN_REGISTER */
  uint32_t abi_minor;    /* filled by VMH_PLUGIN_REGISTER */
  uint32_t thread_model; /* filled by VMH_PLUGIN_REGISTER */
  uint32_t kind;         /* enum vmh_kind */
  const char *name;      /* vmh_name_valid, unique among loaded plugins */
  const char *version;
  const char *description;
  /* Optional: once, before any open().  Global initialisation; a non-zero
   * return refuses the plugin (set the message with host->error). */
  int (*load)(const struct vmh_host *host);
  /* The ops table of `kind`; the others stay NULL.  Each table's
   * struct_size is filled by VMH_PLUGIN_REGISTER. */
  struct vmh_hypervisor_ops *hypervisor;
  struct vmh_storage_ops *storage;
  struct vmh_network_ops *network;
  struct vmh_frontend_ops *frontend;
};

typedef const struct vmh_plugin *(*vmh_plugin_entry_fn)(void);

#ifndef VMH_THREAD_MODEL
#define VMH_THREAD_MODEL VMH_THREAD_SERIALIZE_ALL
#endif

#define VMH_PLUGIN_SET_SIZE_(p, member)                       \
  do {                                                        \
    if ((p).member != NULL)                                   \
      (p).member->struct_size = (uint32_t)sizeof *(p).member; \
  } while (0)

/* The entry point has C linkage from a C++ plugin too. */
#ifdef __cplusplus
#define VMH_EXTERN_C extern "C"
#else
#define VMH_EXTERN_C
#endif

#define VMH_PLUGIN_REGISTER(p)                                              \
  VMH_EXTERN_C VMH_EXPORT const struct vmh_plugin *vmh_plugin_entry(void);  \
  VMH_EXTERN_C VMH_EXPORT const struct vmh_plugin *vmh_plugin_entry(void) { \
    (p).struct_size = (uint32_t)sizeof(p);                                  \
    (p).abi_major = VMH_ABI_MAJOR;                                          \
    (p).abi_minor = VMH_ABI_TARGET_MINOR;                                   \
    (p).thread_model = VMH_THREAD_MODEL;                                    \
    VMH_PLUGIN_SET_SIZE_(p, hypervisor);                                    \
    VMH_PLUGIN_SET_SIZE_(p, storage);                                       \
    VMH_PLUGIN_SET_SIZE_(p, network);                                       \
    VMH_PLUGIN_SET_SIZE_(p, frontend);                                      \
    return &(p);                                                            \
  }

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_PLUGIN_H */
