/* The daemon's settings and the instance list, read from the config tree.
 *
 *   daemon:
 *     state_dir: DIR            # default ./state (relative: to the file)
 *     plugin_dir: DIR           # default the install dir; VMHOST_PLUGIN_DIR wins
 *     log: { format: text|json, level: info, file: PATH,
 *            levels: { INSTANCE-or-core: LEVEL, ... } }
 *     workers: N                # 1..256, default 8
 *     drain_timeout: SECONDS    # 0..3600, default 30
 *     reconcile_interval: SECONDS  # 0 (off)..86400, default 30
 *   hypervisors: [ {name, plugin, file?, optional?, ...plugin keys} ]
 *   storage:     [ ... ]
 *   networks:    [ ... ]
 *   frontends:   [ ... ]
 */
#ifndef VMHOST_CORE_SETTINGS_H
#define VMHOST_CORE_SETTINGS_H

#include <stddef.h>
#include <stdint.h>
#include <vmhost/host.h>

#include "log.h"

struct instance_conf {
  int kind;           /* enum vmh_kind */
  const char *name;   /* [a-z0-9][a-z0-9-]{0,62}, unique over all kinds */
  const char *plugin; /* [a-z0-9-]+ */
  char *file;         /* the .so to load: `file:` resolved, else NULL */
  int optional;
  const struct vmh_config *config; /* the instance's map */
};

struct level_conf {
  const char *source;
  int level;
};

struct settings {
  struct vmh_config *root; /* owns the tree */
  char *state_dir;         /* absolute */
  char *plugin_dir;        /* absolute; env VMHOST_PLUGIN_DIR applied */
  char *log_file;          /* NULL: stderr */
  enum log_format log_format;
  int log_level;
  struct level_conf *levels;
  size_t n_levels;
  unsigned workers;
  unsigned drain_timeout_s;
  unsigned reconcile_interval_s;
  struct instance_conf *instances; /* in kind order: storage, network,
                                      hypervisor, frontend; file order
                                      within a kind */
  size_t n_instances;
};

/* Load path and check everything the core reads (unknown keys at the top
 * level, under daemon:, or as instance fields the core owns are refused
 * here; plugin keys are checked after each open).  Returns 0, or VMH_EINVAL
 * with the error message "FILE:LINE:COLUMN: …" set; *ret is then empty. */
int settings_load(const char *path, struct settings *ret);
void settings_free(struct settings *s);

/* "hypervisor", "storage", "network", "frontend". */
const char *kind_name(int kind);

#endif
