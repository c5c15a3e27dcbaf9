/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's own settings and the instance list, read from the config
 * tree with the same accessors plugins use.  Every key the core owns is
 * checked here; keys inside an instance's map other than name, plugin,
 * file and optional belong to its plugin and are checked by the core after
 * the plugin's open() (config_unread). */
#include <config.h>

#include "settings.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "conftree.h"
#include "error.h"

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
static const char *const daemon_keys[] = {
    "state_dir", "plugin_dir",         "log",
    "workers",   "drain_timeout",      "reconcile_interval",
    "boot_dirs", "telemetry_interval", NULL};
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

#define SUGGEST_MAX_LEN 64

/* Edit distance with adjacent transpositions ("wokrers" is one edit from
 * "workers"), for strings up to SUGGEST_MAX_LEN bytes. */
static unsigned edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned d[SUGGEST_MAX_LEN + 1][SUGGEST_MAX_LEN + 1];
  for (size_t i = 0; i <= la; i++)
    d[i][0] = (unsigned)i;
  for (size_t j = 0; j <= lb; j++)
    d[0][j] = (unsigned)j;
  for (size_t i = 1; i <= la; i++) {
    for (size_t j = 1; j <= lb; j++) {
      unsigned cost = a[i - 1] != b[j - 1];
      unsigned best = d[i - 1][j - 1] + cost;
      if (d[i - 1][j] + 1 < best)
        best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best)
        best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  }
  return d[la][lb];
}

/* The candidate closest to word, if it is at most two edits away (and not
 * so short that two edits could turn anything into it). */
static const char *suggest(const char *word, const char *const *candidates,
                           size_t n) {
  if (strlen(word) > SUGGEST_MAX_LEN)
    return NULL;
  const char *best = NULL;
  unsigned best_d = 3;
  for (size_t i = 0; i < n; i++) {
    if (strlen(candidates[i]) > SUGGEST_MAX_LEN)
      continue;
    unsigned d = edit_distance(word, candidates[i]);
    if (d < best_d && d < strlen(candidates[i])) {
      best = candidates[i];
      best_d = d;
    }
  }
  return best;
}

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
  const char *hint = suggest(key, known, count(known));
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

/* After the core read every key it knows from map: a key left unread is
 * not one of `known` (or the code forgot to read it, which the tests
 * catch). */
static int refuse_unread(const struct vmh_config *map, const char *where,
                         const char *const *known) {
  const struct vmh_config *u = config_unread(map);
  if (!u)
    return 0;
  return unknown_key(u, config_key_name(u), where, known);
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

static int level_entry(void *opaque, const char *key,
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

static int read_log(struct ctx *c, const struct vmh_config *log) {
  struct settings *s = c->s;
  int r;
  const char *format;
  if ((r = config_string(log, "format", "text", &format, 0)) < 0)
    return r;
  if (strcmp(format, "text") == 0)
    s->log_format = LOG_TEXT;
  else if (strcmp(format, "json") == 0)
    s->log_format = LOG_JSON;
  else
    return error_code(VMH_EINVAL,
                      "%s: key 'format': expected text or json, found '%s'",
                      config_where(config_lookup(log, "format")), format);

  const char *level;
  if ((r = config_string(log, "level", "info", &level, 0)) < 0)
    return r;
  if ((r = parse_level(config_lookup(log, "level"), "level", level,
                       &s->log_level)) < 0)
    return r;

  if ((r = config_path(log, "file", NULL, &s->log_file, 0)) < 0)
    return r;

  if ((r = config_map(log, "levels", &c->levels, 0)) < 0)
    return r;
  if ((r = config_keys(c->levels, level_entry, s)) < 0)
    return r;
  return refuse_unread(log, "under daemon.log", log_keys);
}

static int read_seconds(const struct vmh_config *d, const char *key,
                        int64_t max, int64_t def, unsigned *ret) {
  int64_t v;
  int r = config_int(d, key, 0, max, def, &v, 0);
  if (r == 0)
    *ret = (unsigned)v;
  return r;
}

/* d: the daemon map, or NULL when there is none (then all defaults).  The
 * root stands in for d where a default path must be resolved. */
static int read_daemon(struct ctx *c, const struct vmh_config *d) {
  struct settings *s = c->s;
  int r;
  if ((r = config_path(d, "state_dir", NULL, &s->state_dir, 0)) < 0)
    return r;
  if (!s->state_dir &&
      (r = config_resolve(s->root, "state", &s->state_dir)) < 0)
    return r;

  if ((r = config_path(d, "plugin_dir", PLUGINDIR, &s->plugin_dir, 0)) < 0)
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

  const struct vmh_config *log;
  if ((r = config_map(d, "log", &log, 0)) < 0)
    return r;
  if ((r = read_log(c, log)) < 0)
    return r;

  int64_t workers;
  if ((r = config_int(d, "workers", 1, 256, 8, &workers, 0)) < 0)
    return r;
  s->workers = (unsigned)workers;
  if ((r = read_seconds(d, "drain_timeout", 3600, 30, &s->drain_timeout_s)) < 0)
    return r;
  if ((r = read_seconds(d, "reconcile_interval", 86400, 30,
                        &s->reconcile_interval_s)) < 0)
    return r;
  if ((r = config_int(d, "telemetry_interval", 1, 3600, 5, &workers, 0)) < 0)
    return r;
  s->telemetry_interval_s = (unsigned)workers;
  const struct vmh_config *bd, *el;
  uint32_t n;
  if ((r = config_list(d, "boot_dirs", &bd, &n, 0)) < 0)
    return r;
  if (n && !(s->boot_dirs = calloc(n, sizeof *s->boot_dirs)))
    return error_code(VMH_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    if ((r = config_at(bd, i, &el)) < 0 ||
        (r = config_path(el, NULL, NULL, &s->boot_dirs[i], 0)) < 0)
      return r;
    s->n_boot_dirs = i + 1;
  }
  /* Every key of log: was checked by read_log, so what is left is a key of
   * daemon: itself. */
  return refuse_unread(d, "under daemon", daemon_keys);
}

/* [a-z0-9][a-z0-9-]{0,62}: safe in file names, metric labels, URLs. */
static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > VMH_NAME_MAX || s[0] == '-')
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
          s[i] == '-'))
      return false;
  return true;
}

static int read_name(const struct vmh_config *m, const char *key,
                     const char *what, const char **ret) {
  const char *name;
  int r = config_string(m, key, NULL, &name, VMH_CFG_REQUIRED);
  if (r < 0)
    return r;
  if (!valid_name(name))
    return error_code(VMH_EINVAL,
                      "%s: key '%s': '%s' is not a valid %s name (1 to %d of "
                      "a-z, 0-9 and '-', not starting with '-')",
                      config_where(config_lookup(m, key)), key, name, what,
                      VMH_NAME_MAX);
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
    const struct vmh_config *e, *m;
    if ((r = config_at(list, i, &e)) < 0)
      return r;
    /* Required: an empty element ("- " alone) is not an instance. */
    if ((r = config_map(e, NULL, &m, VMH_CFG_REQUIRED)) < 0)
      return r;
    if ((r = read_instance(c, section, m)) < 0)
      return r;
  }
  return 0;
}

/* Sections are read in file order, whatever their load order, so that a
 * duplicate name is reported at its second appearance in the file. */
static int top_key(void *opaque, const char *key,
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
static int level_source(void *opaque, const char *key,
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
  const char *hint = suggest(key, names, n);
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
  if ((r = config_keys(s->root, top_key, c)) < 0)
    return r;
  if (!c->daemon_seen && (r = read_daemon(c, NULL)) < 0)
    return r;
  if (!config_lookup(s->root, "resources") &&
      (r = resources_conf_read(NULL, &s->resources)) < 0)
    return r;
  if ((r = check_reserve_pools(c)) < 0)
    return r;
  if ((r = config_keys(c->levels, level_source, c)) < 0)
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

int settings_load(const char *path, struct settings *ret) {
  struct settings s = {0};
  struct ctx c = {.s = &s};
  memset(ret, 0, sizeof *ret);
  int r = load(path, &s, &c);
  ctx_free(&c);
  if (r < 0) {
    settings_free(&s);
    return r;
  }
  *ret = s;
  return 0;
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
