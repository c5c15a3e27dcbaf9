/* The config file: YAML parsed (libyaml) into a read-only tree of maps,
 * lists and scalars, each node knowing its file:line:column and whether
 * anyone has read it.  The accessors here are the vmh_host config_*
 * services; the core reads its own settings through them too. */
#ifndef VMHOST_CORE_CONFIG_H
#define VMHOST_CORE_CONFIG_H

#include <stdint.h>
#include <vmhost/host.h>

enum config_type { CONFIG_MAP = 1, CONFIG_LIST = 2, CONFIG_SCALAR = 3 };

/* Parse path.  On success *ret_root is the top map (the caller owns it; free
 * with config_free).  On failure returns VMH_EINVAL with the error message
 * set to "FILE:LINE:COLUMN: what is wrong" (syntax, a non-map top level,
 * a duplicate key, an alias/anchor, a non-UTF-8 byte). */
int config_load(const char *path, struct vmh_config **ret_root);
void config_free(struct vmh_config *root);

enum config_type config_type(const struct vmh_config *node);
/* The file the tree came from, and its directory (for relative paths). */
const char *config_file(const struct vmh_config *node);
const char *config_dir(const struct vmh_config *node);

/* Accessors: see struct vmh_host in <vmhost/host.h> for their contract.
 * Error messages start with "FILE:LINE:COLUMN: key 'K': ". */
int config_string(const struct vmh_config *map, const char *key,
                  const char *def, const char **ret, uint32_t flags);
int config_int(const struct vmh_config *map, const char *key, int64_t min,
               int64_t max, int64_t def, int64_t *ret, uint32_t flags);
int config_size(const struct vmh_config *map, const char *key, uint64_t min,
                uint64_t max, uint64_t def, uint64_t *ret, uint32_t flags);
int config_bool(const struct vmh_config *map, const char *key, int def,
                int *ret, uint32_t flags);
int config_map(const struct vmh_config *map, const char *key,
               const struct vmh_config **ret, uint32_t flags);
int config_list(const struct vmh_config *map, const char *key,
                const struct vmh_config **ret, uint32_t *ret_count,
                uint32_t flags);
int config_at(const struct vmh_config *list, uint32_t index,
              const struct vmh_config **ret);
int config_keys(const struct vmh_config *map, vmh_config_key_fn fn,
                void *opaque);
const char *config_where(const struct vmh_config *node);

/* A path read from the config: absolute as is, relative resolved against
 * the config file's directory.  Returns a new string (caller frees) or
 * NULL with the error message set. */
char *config_path(const struct vmh_config *map, const char *key,
                  const char *def, uint32_t flags);

/* The first key under `node` (recursively) that nobody read, or NULL.
 * Used after a plugin's open() and after the core read its own settings. */
const struct vmh_config *config_unread(const struct vmh_config *node);
/* The key name of a map entry node found by config_unread. */
const char *config_key_name(const struct vmh_config *node);

#endif
