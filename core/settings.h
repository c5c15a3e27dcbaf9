/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's settings and the instance list, read from the config tree.
 *
 *   daemon:
 *     state_dir: DIR            # default ./state (relative: to the file)
 *     plugin_dir: DIR           # default the install dir; VMHOST_PLUGIN_DIR
 * wins log: { format: text|json, level: info, file: PATH, levels: {
 * INSTANCE-or-core: LEVEL, ... } } workers: N                # 1..256, default
 * 8 drain_timeout: SECONDS    # 0..3600, default 30 reconcile_interval: SECONDS
 * # 0 (off)..86400, default 30 hypervisors: [ {name, plugin, file?, optional?,
 * ...plugin keys} ] storage:     [ ... ] networks:    [ ... ] frontends:   [
 * ... ]
 *
 * Every section may be absent, empty (`daemon:`) or an empty list.  An
 * instance name follows the name rule (vmh_name_valid), unique over all kinds,
 * and not "core" (the daemon's own log source); a plugin name has the same
 * form. A source in log.levels must be "core" or the name of an instance.
 *
 * Error messages (VMH_EINVAL), besides those of config_load and the
 * accessors (core/conftree.h):
 *   "FILE:L:C: unknown key 'K' at the top level (expected one of: daemon,
 *    hypervisors, storage, networks, frontends, resources); did you mean 'X'?"
 *   "FILE:L:C: unknown key 'K' under daemon (expected one of: ...)"
 *   "FILE:L:C: unknown key 'K' under daemon.log (expected one of: ...)"
 *   "FILE:L:C: unknown log source 'K' under daemon.log.levels (expected
 *    'core' or an instance name)"
 *   "FILE:L:C: key 'level': expected one of error, warn, info, debug,
 *    found 'verbose'"
 *   "FILE:L:C: key 'format': expected text or json, found 'xml'"
 *   "FILE:L:C: key 'name': 'Hv_0' is not a valid instance name (1 to 63 of
 *    a-z, 0-9 and '-', not starting with '-')"    (or "plugin name")
 *   "FILE:L:C: key 'name': 'core' is reserved for the daemon itself"
 *   "FILE:L:C: duplicate instance name 'hv0' (first at FILE:L:C)"
 *   "FILE:L:C: missing required key 'plugin'"      (L:C: the instance map)
 * The "; did you mean 'X'?" hint is added when a known key (or instance
 * name) is at most two edits away.
 */
#ifndef VMHOST_CORE_SETTINGS_H
#define VMHOST_CORE_SETTINGS_H

#include <stddef.h>
#include <stdint.h>
#include <vmhost/host.h>

#include "log.h"
#include "resconf.h"

struct instance_conf {
  int kind; /* enum vmh_kind */
  /* name and plugin are borrowed from the tree (struct settings.root). */
  const char *name; /* the name rule (vmh_name_valid), unique over all kinds */
  const char *plugin; /* the name rule (vmh_name_valid) */
  char *file;         /* the .so to load: `file:` resolved, else NULL */
  int optional;
  /* The instance's map, name/plugin/file/optional marked read; the core
   * checks it with config_unread after the plugin's open(). */
  const struct vmh_config *config;
};

struct level_conf {
  const char *source; /* "core" or an instance name; borrowed from root */
  int level;          /* enum vmh_log_level */
};

struct settings {
  struct vmh_config *root; /* owns the tree */
  char *state_dir;         /* absolute */
  /* Absolute (config or PLUGINDIR), unless the environment variable
   * VMHOST_PLUGIN_DIR is set and not empty: then its value as is, which
   * may be a colon-separated list of directories, searched in order. */
  char *plugin_dir;
  char *log_file; /* absolute; NULL: stderr */
  enum log_format log_format;
  int log_level; /* enum vmh_log_level */
  struct level_conf *levels;
  size_t n_levels;
  unsigned workers;
  unsigned drain_timeout_s;
  unsigned reconcile_interval_s;
  /* Operations (operations.h): kept this long after their end, and no
   * more than this many (in progress and ended). */
  unsigned operations_retention_s;
  unsigned operations_max;
  /* Liveness: a runnable task waiting this long for a worker thread
   * makes the daemon not alive (/healthz 503). */
  unsigned liveness_stall_s;
  uint64_t journal_compact_size; /* bytes; 0: never compact */
  unsigned telemetry_interval_s; /* host samples, 1..3600, default 5 */
  uint32_t event_history;        /* events kept for resuming (events.h) */
  /* Directories a VM's kernel and initrd may come from (absolute, as
   * written; none: no host file may be named). */
  char **boot_dirs;
  size_t n_boot_dirs;
  struct resources_conf resources; /* resources: (admission control) */
  struct instance_conf *instances; /* in kind order: storage, network,
                                      hypervisor, frontend; file order
                                      within a kind */
  size_t n_instances;
};

/* Load path and check everything the core reads (unknown keys at the top
 * level, under daemon:, or as instance fields the core owns are refused
 * here; plugin keys are checked after each open).  Returns 0, or VMH_EINVAL
 * with the error message "FILE:LINE:COLUMN: …" set (or another code from
 * config_load: a missing file is VMH_ENOENT); *ret is then all zero and
 * owns nothing.  Reads the environment (VMHOST_PLUGIN_DIR). */
int settings_load(const char *path, struct settings *ret);
/* settings_load that goes on past mistakes of the file: every one is in
 * the problem list (error.h), the first is the message, and when all are
 * mistakes of the config (VMH_EINVAL with problems_count() > 0) *ret holds
 * what could be read, for the instances to be checked as well; free it
 * with settings_free.  Any other failure leaves *ret zeroed. */
int settings_load_all(const char *path, struct settings *ret);
/* Free everything s owns and zero it; safe on a zeroed struct. */
void settings_free(struct settings *s);

/* "hypervisor", "storage", "network", "frontend"; "unknown" otherwise. */
const char *kind_name(int kind);

#endif
