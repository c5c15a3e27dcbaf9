/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's own settings and the instance list, read from the config
 * tree with the same accessors plugins use.  Every key the core owns is
 * checked here; keys inside an instance's map other than name, plugin,
 * file and optional belong to its plugin and are checked by the core after
 * the plugin's open() (config_unread). */
#include <config.h>

#include "settings.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "conftree.h"
#include "error.h"
#include "events.h"

#ifndef PLUGINDIR
#error "PLUGINDIR must be defined (see core/Makefile.am)"
#endif

/* Instances are loaded in this order: what a hypervisor needs (disks,
 * NICs) exists before it, and front-ends come last, once there is
 * something to serve. */
static const struct {
  const char *key;
  int kind;
} sections[] = {
    {"storage", VMH_KIND_STORAGE},
    {"networks", VMH_KIND_NETWORK},
    {"hypervisors", VMH_KIND_HYPERVISOR},
    {"frontends", VMH_KIND_FRONTEND},
};
#define N_SECTIONS (sizeof sections / sizeof sections[0])

static const char *const top_keys[] = {"daemon",   "hypervisors", "storage",
                                       "networks", "frontends",   "resources",
                                       NULL};
static const char *const daemon_keys[] = {"state_dir",
                                          "plugin_dir",
                                          "log",
                                          "workers",
                                          "drain_timeout",
                                          "reconcile_interval",
                                          "boot_dirs",
                                          "operations_retention",
                                          "operations_max",
                                          "journal_compact_size",
                                          "telemetry_interval",
                                          "liveness_stall",
                                          "event_history",
                                          NULL};
static const char *const log_keys[] = {"format", "level", "file", "levels",
                                       NULL};

const char *kind_name(int kind) {
  switch (kind) {
    case VMH_KIND_HYPERVISOR:
      return "hypervisor";
    case VMH_KIND_STORAGE:
      return "storage";
    case VMH_KIND_NETWORK:
      return "network";
    case VMH_KIND_FRONTEND:
      return "frontend";
    default:
      return "unknown";
  }
}

/* ---- "did you mean" ---------------------------------------------------- */

static size_t count(const char *const *list) {
  size_t n = 0;
  while (list[n])
    n++;
  return n;
}

/* "FILE:L:C: unknown key 'K' WHERE (expected one of: a, b, c); did you
 * mean 'b'?" */
static int unknown_key(const struct vmh_config *node, const char *key,
                       const char *where, const char *const *known) {
  char expected[256] = "";
  size_t o = 0;
  for (size_t i = 0; known[i] && o < sizeof expected; i++)
    o += (size_t)snprintf(expected + o, sizeof expected - o, "%s%s",
                          i ? ", " : "", known[i]);
  const char *hint = config_suggest(key, known, count(known));
  if (hint)
    return error_code(VMH_EINVAL,
                      "%s: unknown key '%s' %s (expected one of: %s); did you "
                      "mean '%s'?",
                      config_where(node), key, where, expected, hint);
  return error_code(VMH_EINVAL, "%s: unknown key '%s' %s (expected one of: %s)",
                    config_where(node), key, where, expected);
}

/* ---- reading ----------------------------------------------------------- */

struct kind_list {
  struct instance_conf *v;
  const struct vmh_config **name_nodes; /* for "first at" */
  size_t n, cap;
};

struct ctx {
  struct settings *s;
  struct kind_list kinds[N_SECTIONS]; /* indexed like sections[] */
  bool daemon_seen;
  const struct vmh_config *levels; /* checked once all names are known */
};

static void ctx_free(struct ctx *c) {
  for (size_t k = 0; k < N_SECTIONS; k++) {
    for (size_t i = 0; i < c->kinds[k].n; i++)
      free(c->kinds[k].v[i].file);
    free(c->kinds[k].v);
    free(c->kinds[k].name_nodes);
  }
  memset(c->kinds, 0, sizeof c->kinds);
}

/* After the core read every key it knows from map: every key of map left
 * unread is not one of `known` (or the code forgot to read it, which the
 * tests catch), and is a problem of its own.  A known key left unread was
 * refused by its reader already. */
struct unread {
  const struct vmh_config *map;
  const char *where;
  const char *const *known;
};

static int unread_key(void *opaque, const struct vmh_config *u) {
  const struct unread *x = opaque;
  const char *key = config_key_name(u);
  if (config_parent(u) != x->map)
    return 0; /* inside a known key: its reader's */
  for (size_t i = 0; x->known[i]; i++)
    if (!strcmp(key, x->known[i]))
      return 0;
  return problem_keep(unknown_key(u, key, x->where, x->known));
}

static int refuse_unread(const struct vmh_config *map, const char *where,
                         const char *const *known) {
  struct unread x = {map, where, known};
  return config_unread_each(map, unread_key, &x);
}

static int parse_level(const struct vmh_config *node, const char *key,
                       const char *s, int *ret) {
  int level = log_level_parse(s);
  if (level < 0) {
    if (!s[0])
      return error_code(VMH_EINVAL,
                        "%s: key '%s': expected one of error, warn, info, "
                        "debug, found an empty value",
                        config_where(node), key);
    return error_code(VMH_EINVAL,
                      "%s: key '%s': expected one of error, warn, info, "
                      "debug, found '%s'",
                      config_where(node), key, s);
  }
  *ret = level;
  return 0;
}

static int level_entry_read(void *opaque, const char *key,
                            const struct vmh_config *value) {
  struct settings *s = opaque;
  const char *str;
  int level;
  int r = config_string(value, NULL, NULL, &str, 0);
  if (r < 0)
    return r;
  if ((r = parse_level(value, key, str, &level)) < 0)
    return r;
  struct level_conf *v = realloc(s->levels, (s->n_levels + 1) * sizeof *v);
  if (!v)
    return error_code(VMH_ENOMEM, "out of memory");
  s->levels = v;
  /* The key string lives in the tree, which s owns. */
  s->levels[s->n_levels++] = (struct level_conf){.source = key, .level = level};
  return 0;
}

/* One key (or a few that go together) of a map; each reader returns at its
 * first mistake, and read_each goes on with the next reader so that every
 * mistake of the file is found in one run (problem_keep). */
typedef int (*reader_fn)(struct ctx *c, const struct vmh_config *m);

static int read_each(struct ctx *c, const struct vmh_config *m,
                     const reader_fn *fns, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int r = problem_keep(fns[i](c, m));
    if (r < 0)
      return r;
  }
  return 0;
}

static int level_entry(void *opaque, const char *key,
                       const struct vmh_config *value) {
  return problem_keep(level_entry_read(opaque, key, value));
}

static int read_log_format(struct ctx *c, const struct vmh_config *log) {
  const char *format;
  int r = config_string(log, "format", "text", &format, 0);
  if (r < 0)
    return r;
  if (strcmp(format, "text") == 0)
    c->s->log_format = LOG_TEXT;
  else if (strcmp(format, "json") == 0)
    c->s->log_format = LOG_JSON;
  else
    return error_code(VMH_EINVAL,
                      "%s: key 'format': expected text or json, found '%s'",
                      config_where(config_lookup(log, "format")), format);
  return 0;
}

static int read_log_level(struct ctx *c, const struct vmh_config *log) {
  const char *level;
  int r = config_string(log, "level", "info", &level, 0);
  if (r < 0)
    return r;
  return parse_level(config_lookup(log, "level"), "level", level,
                     &c->s->log_level);
}

static int read_log_file(struct ctx *c, const struct vmh_config *log) {
  return config_path(log, "file", NULL, &c->s->log_file, 0);
}

static int read_log_levels(struct ctx *c, const struct vmh_config *log) {
  int r = config_map(log, "levels", &c->levels, 0);
  if (r < 0)
    return r;
  return config_keys(c->levels, level_entry, c->s);
}

static int read_log_rest(struct ctx *c, const struct vmh_config *log) {
  (void)c;
  return refuse_unread(log, "under daemon.log", log_keys);
}

static int read_log(struct ctx *c, const struct vmh_config *log) {
  static const reader_fn fns[] = {read_log_format, read_log_level,
                                  read_log_file, read_log_levels,
                                  read_log_rest};
  return read_each(c, log, fns, sizeof fns / sizeof fns[0]);
}

static int read_seconds(const struct vmh_config *d, const char *key,
                        int64_t max, int64_t def, unsigned *ret) {
  int64_t v;
  int r = config_int(d, key, 0, max, def, &v, 0);
  if (r == 0)
    *ret = (unsigned)v;
  return r;
}

static int read_state_dir(struct ctx *c, const struct vmh_config *d) {
  struct settings *s = c->s;
  int r = config_path(d, "state_dir", NULL, &s->state_dir, 0);
  if (r < 0)
    return r;
  return s->state_dir ? 0 : config_resolve(s->root, "state", &s->state_dir);
}

static int read_plugin_dir(struct ctx *c, const struct vmh_config *d) {
  struct settings *s = c->s;
  int r = config_path(d, "plugin_dir", PLUGINDIR, &s->plugin_dir, 0);
  if (r < 0)
    return r;
  /* A test harness (or a developer running from the build tree) points the
   * daemon at other plugins without editing the config; it may list
   * several directories, searched in order.  secure_getenv: a daemon with
   * file capabilities must not load code from wherever its caller says. */
  const char *env = secure_getenv("VMHOST_PLUGIN_DIR");
  if (env && env[0]) {
    char *copy = strdup(env);
    if (!copy)
      return error_code(VMH_ENOMEM, "out of memory");
    free(s->plugin_dir);
    s->plugin_dir = copy;
  }
  return 0;
}

static int read_daemon_log(struct ctx *c, const struct vmh_config *d) {
  const struct vmh_config *log;
  int r = config_map(d, "log", &log, 0);
  return r < 0 ? r : read_log(c, log);
}

static int read_workers(struct ctx *c, const struct vmh_config *d) {
  int64_t workers;
  int r = config_int(d, "workers", 1, 256, 8, &workers, 0);
  if (r == 0)
    c->s->workers = (unsigned)workers;
  return r;
}

static int read_liveness(struct ctx *c, const struct vmh_config *d) {
  int64_t stall;
  int r = config_int(d, "liveness_stall", 1, 3600, 60, &stall, 0);
  if (r == 0)
    c->s->liveness_stall_s = (unsigned)stall;
  return r;
}

static int read_drain(struct ctx *c, const struct vmh_config *d) {
  return read_seconds(d, "drain_timeout", 3600, 30, &c->s->drain_timeout_s);
}

static int read_reconcile(struct ctx *c, const struct vmh_config *d) {
  return read_seconds(d, "reconcile_interval", 86400, 30,
                      &c->s->reconcile_interval_s);
}

static int read_operations(struct ctx *c, const struct vmh_config *d) {
  int64_t keep, max;
  int r;
  if ((r = config_int(d, "operations_retention", 1, 7 * 86400, 3600, &keep,
                      0)) < 0 ||
      (r = config_int(d, "operations_max", 1, 100000, 1000, &max, 0)) < 0)
    return r;
  c->s->operations_retention_s = (unsigned)keep;
  c->s->operations_max = (unsigned)max;
  return 0;
}

static int read_event_history(struct ctx *c, const struct vmh_config *d) {
  int64_t n;
  int r = config_int(d, "event_history", 0, EVENTS_HISTORY_MAX,
                     EVENTS_HISTORY_DEFAULT, &n, 0);
  if (r == 0)
    c->s->event_history = (uint32_t)n;
  return r;
}

static int read_journal(struct ctx *c, const struct vmh_config *d) {
  uint64_t compact;
  int r = config_size(d, "journal_compact_size", 0, UINT64_C(1) << 40,
                      UINT64_C(16) << 20, &compact, 0);
  if (r < 0)
    return r;
  if (compact > 0 && compact < 4096)
    return error_code(VMH_EINVAL,
                      "%s: key 'journal_compact_size': %" PRIu64
                      " bytes is too small (0: never compact, or 4KiB and up)",
                      config_key_where(d, "journal_compact_size"), compact);
  c->s->journal_compact_size = compact;
  return 0;
}

static int read_telemetry(struct ctx *c, const struct vmh_config *d) {
  int64_t interval;
  int r = config_int(d, "telemetry_interval", 1, 3600, 5, &interval, 0);
  if (r == 0)
    c->s->telemetry_interval_s = (unsigned)interval;
  return r;
}

static int read_boot_dirs(struct ctx *c, const struct vmh_config *d) {
  struct settings *s = c->s;
  const struct vmh_config *bd, *el;
  uint32_t n;
  int r = config_list(d, "boot_dirs", &bd, &n, 0);
  if (r < 0)
    return r;
  if (n && !(s->boot_dirs = calloc(n, sizeof *s->boot_dirs)))
    return error_code(VMH_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    if ((r = config_at(bd, i, &el)) < 0 ||
        (r = config_path(el, NULL, NULL, &s->boot_dirs[i], 0)) < 0)
      return r;
    s->n_boot_dirs = i + 1;
  }
  return 0;
}

/* Every key of log: was checked by read_log, so what is left is a key of
 * daemon: itself. */
static int read_daemon_rest(struct ctx *c, const struct vmh_config *d) {
  (void)c;
  return refuse_unread(d, "under daemon", daemon_keys);
}

/* d: the daemon map, or NULL when there is none (then all defaults).  The
 * root stands in for d where a default path must be resolved. */
static int read_daemon(struct ctx *c, const struct vmh_config *d) {
  static const reader_fn fns[] = {
      read_state_dir,  read_plugin_dir, read_daemon_log, read_workers,
      read_drain,      read_reconcile,  read_operations, read_journal,
      read_telemetry,  read_boot_dirs,  read_liveness,   read_event_history,
      read_daemon_rest};
  return read_each(c, d, fns, sizeof fns / sizeof fns[0]);
}

static int read_name(const struct vmh_config *m, const char *key,
                     const char *what, const char **ret) {
  const char *name;
  int r = config_string(m, key, NULL, &name, VMH_CFG_REQUIRED);
  if (r < 0)
    return r;
  if (!vmh_name_valid(name))
    return error_code(
        VMH_EINVAL,
        "%s: key '%s': '%s' is not a valid %s name (" VMH_NAME_RULE
        ": 1 to %d of a-z, 0-9, '.', '_' and '-', starting with "
        "a letter or a digit)",
        config_where(config_lookup(m, key)), key, name, what, VMH_NAME_MAX);
  *ret = name;
  return 0;
}

static const struct vmh_config *find_name(struct ctx *c, const char *name) {
  for (size_t k = 0; k < N_SECTIONS; k++)
    for (size_t i = 0; i < c->kinds[k].n; i++)
      if (strcmp(c->kinds[k].v[i].name, name) == 0)
        return c->kinds[k].name_nodes[i];
  return NULL;
}

static int read_instance(struct ctx *c, size_t section,
                         const struct vmh_config *m) {
  struct instance_conf ic = {.kind = sections[section].kind, .config = m};
  int r = read_name(m, "name", "instance", &ic.name);
  if (r < 0)
    return r;
  const struct vmh_config *name_node = config_lookup(m, "name");
  /* "core" is the log source of the daemon itself (daemon.log.levels). */
  if (strcmp(ic.name, "core") == 0)
    return error_code(VMH_EINVAL,
                      "%s: key 'name': 'core' is reserved for the daemon "
                      "itself",
                      config_where(name_node));
  const struct vmh_config *first = find_name(c, ic.name);
  if (first)
    return error_code(VMH_EINVAL,
                      "%s: duplicate instance name '%s' (first at %s)",
                      config_where(name_node), ic.name, config_where(first));
  if ((r = read_name(m, "plugin", "plugin", &ic.plugin)) < 0)
    return r;
  if ((r = config_bool(m, "optional", 0, &ic.optional, 0)) < 0)
    return r;

  struct kind_list *l = &c->kinds[section];
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4;
    struct instance_conf *v = realloc(l->v, cap * sizeof *v);
    if (!v)
      return error_code(VMH_ENOMEM, "out of memory");
    l->v = v;
    const struct vmh_config **nn = realloc(l->name_nodes, cap * sizeof *nn);
    if (!nn)
      return error_code(VMH_ENOMEM, "out of memory");
    l->name_nodes = nn;
    l->cap = cap;
  }
  /* Last, so that nothing can fail once the string is allocated. */
  if ((r = config_path(m, "file", NULL, &ic.file, 0)) < 0)
    return r;
  l->name_nodes[l->n] = name_node;
  l->v[l->n++] = ic;
  return 0;
}

static int read_section(struct ctx *c, size_t section,
                        const struct vmh_config *node) {
  const struct vmh_config *list;
  uint32_t n;
  int r = config_list(node, NULL, &list, &n, 0);
  if (r < 0)
    return r;
  for (uint32_t i = 0; i < n; i++) {
    const struct vmh_config *e, *m = NULL;
    /* Required: an empty element ("- " alone) is not an instance.  Each
     * element is an instance of its own: a mistake in one leaves the
     * others to be checked. */
    r = config_at(list, i, &e);
    if (r == 0)
      r = config_map(e, NULL, &m, VMH_CFG_REQUIRED);
    if (r == 0)
      r = read_instance(c, section, m);
    if ((r = problem_keep(r)) < 0)
      return r;
  }
  return 0;
}

/* Sections are read in file order, whatever their load order, so that a
 * duplicate name is reported at its second appearance in the file. */
static int top_key_read(void *opaque, const char *key,
                        const struct vmh_config *value) {
  struct ctx *c = opaque;
  if (strcmp(key, "daemon") == 0) {
    const struct vmh_config *d;
    int r = config_map(value, NULL, &d, 0);
    if (r < 0)
      return r;
    c->daemon_seen = true;
    return read_daemon(c, d);
  }
  if (strcmp(key, "resources") == 0) {
    const struct vmh_config *m;
    int r = config_map(value, NULL, &m, 0);
    if (r < 0)
      return r;
    resources_conf_free(&c->s->resources);
    return resources_conf_read(m, &c->s->resources);
  }
  for (size_t i = 0; i < N_SECTIONS; i++)
    if (strcmp(key, sections[i].key) == 0)
      return read_section(c, i, value);
  return unknown_key(value, key, "at the top level", top_keys);
}

/* Each source in daemon.log.levels must be "core" or an instance. */
static int top_key(void *opaque, const char *key,
                   const struct vmh_config *value) {
  return problem_keep(top_key_read(opaque, key, value));
}

static int level_source_read(void *opaque, const char *key,
                             const struct vmh_config *value) {
  struct ctx *c = opaque;
  if (strcmp(key, "core") == 0 || find_name(c, key))
    return 0;
  size_t n = 1;
  for (size_t k = 0; k < N_SECTIONS; k++)
    n += c->kinds[k].n;
  _cleanup_free_ const char **names = malloc(n * sizeof *names);
  if (!names)
    return error_code(VMH_ENOMEM, "out of memory");
  n = 0;
  names[n++] = "core";
  for (size_t k = 0; k < N_SECTIONS; k++)
    for (size_t i = 0; i < c->kinds[k].n; i++)
      names[n++] = c->kinds[k].v[i].name;
  const char *hint = config_suggest(key, names, n);
  if (hint)
    return error_code(VMH_EINVAL,
                      "%s: unknown log source '%s' under daemon.log.levels "
                      "(expected 'core' or an instance name); did you mean "
                      "'%s'?",
                      config_where(value), key, hint);
  return error_code(VMH_EINVAL,
                    "%s: unknown log source '%s' under daemon.log.levels "
                    "(expected 'core' or an instance name)",
                    config_where(value), key);
}

static int level_source(void *opaque, const char *key,
                        const struct vmh_config *value) {
  return problem_keep(level_source_read(opaque, key, value));
}

/* Each pool named under resources.reserved_disk is a storage instance. */
static int check_reserve_pools(struct ctx *c) {
  const struct resources_conf *rc = &c->s->resources;
  const struct kind_list *st = &c->kinds[0]; /* sections[0]: storage */
  for (size_t i = 0; i < rc->n_pools; i++) {
    bool found = false;
    for (size_t j = 0; j < st->n && !found; j++)
      found = strcmp(st->v[j].name, rc->pools[i].pool) == 0;
    if (!found)
      return error_code(VMH_EINVAL,
                        "%s: resources.reserved_disk: no storage instance "
                        "named '%s'",
                        config_where(rc->pools[i].node), rc->pools[i].pool);
  }
  return 0;
}

static int load(const char *path, struct settings *s, struct ctx *c) {
  int r = config_load(path, &s->root);
  if (r < 0)
    return r;
  if ((r = problem_keep(config_keys(s->root, top_key, c))) < 0)
    return r;
  if (!c->daemon_seen && (r = read_daemon(c, NULL)) < 0)
    return r;
  if (!config_lookup(s->root, "resources") &&
      (r = resources_conf_read(NULL, &s->resources)) < 0)
    return r;
  if ((r = problem_keep(check_reserve_pools(c))) < 0)
    return r;
  if ((r = problem_keep(config_keys(c->levels, level_source, c))) < 0)
    return r;

  size_t n = 0;
  for (size_t k = 0; k < N_SECTIONS; k++)
    n += c->kinds[k].n;
  if (n) {
    s->instances = calloc(n, sizeof *s->instances);
    if (!s->instances)
      return error_code(VMH_ENOMEM, "out of memory");
  }
  for (size_t k = 0; k < N_SECTIONS; k++) {
    struct kind_list *l = &c->kinds[k];
    if (l->n)
      memcpy(s->instances + s->n_instances, l->v, l->n * sizeof *l->v);
    s->n_instances += l->n;
    /* The file strings now belong to s. */
    l->n = 0;
  }
  return 0;
}

/* keep: settings with mistakes are still handed back (and the mistakes
 * kept in the problem list) so that the instances can be checked too. */
static int load_settings(const char *path, struct settings *ret, bool keep) {
  struct settings s = {0};
  struct ctx c = {.s = &s};
  memset(ret, 0, sizeof *ret);
  problems_clear();
  int r = load(path, &s, &c);
  ctx_free(&c);
  bool problems = r == 0 && problems_count();
  if (problems)
    r = error_code(VMH_EINVAL, "%s", problem_at(0));
  if (problems && keep) {
    *ret = s;
    return r;
  }
  /* What the caller gets back has no problems, or is the failure. */
  problems_clear();
  if (r < 0) {
    settings_free(&s);
    return r;
  }
  *ret = s;
  return 0;
}

int settings_load(const char *path, struct settings *ret) {
  return load_settings(path, ret, false);
}

int settings_load_all(const char *path, struct settings *ret) {
  return load_settings(path, ret, true);
}

void settings_free(struct settings *s) {
  free(s->state_dir);
  free(s->plugin_dir);
  free(s->log_file);
  free(s->levels);
  for (size_t i = 0; i < s->n_boot_dirs; i++)
    free(s->boot_dirs[i]);
  free(s->boot_dirs);
  for (size_t i = 0; i < s->n_instances; i++)
    free(s->instances[i].file);
  free(s->instances);
  resources_conf_free(&s->resources);
  config_free(s->root);
  memset(s, 0, sizeof *s);
}
