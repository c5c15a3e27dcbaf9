/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The plugin loader: dlopen a plugin file, check it against every rule of
 * the ABI (docs/design.md, rules 1-3) and keep a normalised copy of its descriptor
 * and ops table.  Plugins are loaded once per file and never unloaded. */
#ifndef VMHOST_CORE_LOADER_H
#define VMHOST_CORE_LOADER_H

#include <pthread.h>
#include <stdio.h>
#include <vmhost/plugin.h>

struct plugin {
  char *file; /* absolute path */
  void *dl;
  /* The plugin's descriptor and ops, copied to the core's sizes and
   * zero-filled past the plugin's, so an operation the plugin was built
   * without reads as NULL. */
  struct vmh_plugin desc;
  uint32_t ops_size; /* the plugin's own ops struct_size */
  union {
    struct vmh_hypervisor_ops hypervisor;
    struct vmh_storage_ops storage;
    struct vmh_network_ops network;
    struct vmh_frontend_ops frontend;
  } ops;
  pthread_mutex_t lock; /* held around calls for VMH_THREAD_SERIALIZE_ALL */
  int load_called;
};

/* Load and check `file`.  want_kind 0 accepts any kind; otherwise a plugin
 * of another kind is refused naming `instance`.  On success *ret points at
 * the registry's entry (owned by the loader; the same file twice returns the
 * same entry).  On refusal returns VMH_EINVAL with the message
 * "FILE: REASON" set. */
int loader_load(const char *file, int want_kind, const char *instance,
                struct plugin **ret);

/* Find `<kind>-<name>.so` in a colon-separated list of directories.
 * Returns a new absolute path, or NULL with the message set. */
char *loader_find(const char *dirs, int kind, const char *name);

/* Call the plugin's load() once.  Returns 0 or VMH_EINVAL with
 * "FILE: load failed: …" set. */
int loader_call_load(struct plugin *p, const struct vmh_host *host);

/* Print what the loader sees, one key=value per line. */
void loader_dump(const struct plugin *p, FILE *out);

/* Names of the operations present in p's ops table, in table order;
 * returns how many (at most `max`). */
size_t loader_ops(const struct plugin *p, const char **names, size_t max);

/* Every loaded plugin, in load order. */
size_t loader_count(void);
struct plugin *loader_at(size_t i);

const char *thread_model_name(uint32_t model);

#endif
