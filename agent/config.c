/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's config file (agent.h, agent.yaml).  Strict: an unknown key,
 * a value of the wrong type or out of range is an error naming the line,
 * so that a typo never silently opens or closes something. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "agent.h"
#include "frame.h"

struct doc {
  yaml_document_t d;
  const char *path;
};

static int bad(const struct doc *doc, const yaml_node_t *n, const char *what,
               const char *key) {
  agent_log("%s:%zu: %s: %s", doc->path, n->start_mark.line + 1, key, what);
  return -1;
}

static const char *scalar(const yaml_node_t *n) {
  return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value
                                     : NULL;
}

static int get_u32(const struct doc *doc, const yaml_node_t *n, const char *key,
                   uint32_t lo, uint32_t hi, uint32_t *ret) {
  const char *s = scalar(n);
  char *end;
  if (s == NULL || *s < '0' || *s > '9')
    return bad(doc, n, "not a number", key);
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v < lo || v > hi) {
    agent_log("%s:%zu: %s: %s is not in %" PRIu32 "..%" PRIu32, doc->path,
              n->start_mark.line + 1, key, s, lo, hi);
    return -1;
  }
  *ret = (uint32_t)v;
  return 0;
}

static int get_bool(const struct doc *doc, const yaml_node_t *n,
                    const char *key, int *ret) {
  const char *s = scalar(n);
  if (s && (!strcmp(s, "true") || !strcmp(s, "yes")))
    *ret = 1;
  else if (s && (!strcmp(s, "false") || !strcmp(s, "no")))
    *ret = 0;
  else
    return bad(doc, n, "not true or false", key);
  return 0;
}

static int get_path(const struct doc *doc, const yaml_node_t *n,
                    const char *key, char **ret) {
  const char *s = scalar(n);
  if (s == NULL || s[0] != '/' || strstr(s, "/../") ||
      (strlen(s) >= 3 && !strcmp(s + strlen(s) - 3, "/..")))
    return bad(doc, n, "not an absolute path without ..", key);
  char *p = strdup(s);
  if (p == NULL)
    return bad(doc, n, "out of memory", key);
  /* "/dir/" and "/dir" name the same directory. */
  for (size_t l = strlen(p); l > 1 && p[l - 1] == '/'; l--)
    p[l - 1] = 0;
  free(*ret);
  *ret = p;
  return 0;
}

static int get_paths(const struct doc *doc, yaml_node_t *n, const char *key,
                     char ***ret, size_t *ret_n) {
  if (n->type != YAML_SEQUENCE_NODE)
    return bad(doc, n, "not a list of paths", key);
  yaml_node_item_t *it = n->data.sequence.items.start;
  size_t count = (size_t)(n->data.sequence.items.top - it);
  char **v = calloc(count + 1, sizeof *v);
  if (v == NULL)
    return bad(doc, n, "out of memory", key);
  for (size_t i = 0; i < count; i++)
    if (get_path(doc, yaml_document_get_node((yaml_document_t *)&doc->d, it[i]),
                 key, &v[i]) < 0) {
      for (size_t j = 0; j < i; j++)
        free(v[j]);
      free(v);
      return -1;
    }
  *ret = v;
  *ret_n = count;
  return 0;
}

/* Calls fn for each key: value of a mapping. */
typedef int (*pair_fn)(struct doc *doc, struct agent_config *c, const char *key,
                       yaml_node_t *val);

static int each_pair(struct doc *doc, struct agent_config *c, yaml_node_t *map,
                     const char *what, pair_fn fn) {
  if (map->type != YAML_MAPPING_NODE)
    return bad(doc, map, "not a map", what);
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
       p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(&doc->d, p->key);
    yaml_node_t *v = yaml_document_get_node(&doc->d, p->value);
    const char *key = scalar(k);
    if (key == NULL)
      return bad(doc, k, "a key must be a string", what);
    if (fn(doc, c, key, v) < 0)
      return -1;
  }
  return 0;
}

static int unknown(struct doc *doc, yaml_node_t *v, const char *key) {
  return bad(doc, v, "unknown key (agent.yaml lists every key)", key);
}

static int exec_pair(struct doc *doc, struct agent_config *c, const char *key,
                     yaml_node_t *v) {
  if (!strcmp(key, "allow"))
    return get_paths(doc, v, "exec.allow", &c->exec_allow, &c->n_exec_allow);
  if (!strcmp(key, "timeout_ms"))
    return get_u32(doc, v, "exec.timeout_ms", 1, 3600000, &c->exec_timeout_ms);
  if (!strcmp(key, "max_timeout_ms"))
    return get_u32(doc, v, "exec.max_timeout_ms", 1, 86400000,
                   &c->exec_max_timeout_ms);
  if (!strcmp(key, "max_output"))
    return get_u32(doc, v, "exec.max_output", 0, AF_MAX_FRAME / 4,
                   &c->exec_max_output);
  return unknown(doc, v, key);
}

static int files_pair(struct doc *doc, struct agent_config *c, const char *key,
                      yaml_node_t *v) {
  if (!strcmp(key, "read"))
    return get_paths(doc, v, "files.read", &c->read_dirs, &c->n_read_dirs);
  if (!strcmp(key, "write"))
    return get_paths(doc, v, "files.write", &c->write_dirs, &c->n_write_dirs);
  if (!strcmp(key, "max_bytes"))
    return get_u32(doc, v, "files.max_bytes", 0, AF_MAX_FRAME / 2,
                   &c->file_max_bytes);
  return unknown(doc, v, key);
}

static int get_transport(const struct doc *doc, const yaml_node_t *n,
                         int *ret) {
  static const char *const names[] = {[TRANSPORT_DEVICE] = "device",
                                      [TRANSPORT_VSOCK] = "vsock",
                                      [TRANSPORT_UNIX_LISTEN] = "unix-listen"};
  const char *s = scalar(n);
  for (int i = 0; s && i < (int)(sizeof names / sizeof names[0]); i++)
    if (!strcmp(s, names[i])) {
      *ret = i;
      return 0;
    }
  return bad(doc, n, "not device, vsock or unix-listen", "transport");
}

static int top_pair(struct doc *doc, struct agent_config *c, const char *key,
                    yaml_node_t *v) {
  if (!strcmp(key, "transport"))
    return get_transport(doc, v, &c->transport);
  if (!strcmp(key, "vsock_port"))
    /* VMADDR_PORT_ANY (0xffffffff) is not a port to listen on. */
    return get_u32(doc, v, key, 1, UINT32_MAX - 1, &c->vsock_port);
  if (!strcmp(key, "device"))
    return get_path(doc, v, key, &c->device);
  if (!strcmp(key, "max_frame"))
    return get_u32(doc, v, key, 4096, AF_MAX_FRAME, &c->max_frame);
  if (!strcmp(key, "exec"))
    return each_pair(doc, c, v, key, exec_pair);
  if (!strcmp(key, "files"))
    return each_pair(doc, c, v, key, files_pair);
  if (!strcmp(key, "freeze_timeout_s"))
    return get_u32(doc, v, key, 1, 3600, &c->freeze_timeout_s);
  if (!strcmp(key, "allow_freeze"))
    return get_bool(doc, v, key, &c->allow_freeze);
  if (!strcmp(key, "allow_shutdown"))
    return get_bool(doc, v, key, &c->allow_shutdown);
  if (!strcmp(key, "allow_time_sync"))
    return get_bool(doc, v, key, &c->allow_time_sync);
  return unknown(doc, v, key);
}

static int defaults(struct agent_config *c) {
  memset(c, 0, sizeof *c);
  c->device = strdup(AGENT_DEVICE);
  c->transport = TRANSPORT_DEVICE;
  c->vsock_port = AGENT_VSOCK_PORT;
  c->max_frame = AF_MAX_FRAME;
  c->exec_timeout_ms = 10000;
  c->exec_max_timeout_ms = 300000;
  c->exec_max_output = 65536;
  c->file_max_bytes = 262144;
  c->freeze_timeout_s = 60;
  c->allow_freeze = 1;
  c->allow_shutdown = 1;
  c->allow_time_sync = 1;
  return c->device ? 0 : -1;
}

int config_load(struct agent_config *c, const char *path, int must_exist) {
  if (defaults(c) < 0)
    return -1;
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    if (errno == ENOENT && !must_exist) {
      agent_log("%s: not there; running with the defaults (no exec, no files)",
                path);
      return 0;
    }
    agent_log("%s: %s", path, strerror(errno));
    return -1;
  }
  yaml_parser_t parser;
  struct doc doc = {.path = path};
  int r = -1;
  yaml_parser_initialize(&parser);
  yaml_parser_set_input_file(&parser, f);
  if (!yaml_parser_load(&parser, &doc.d)) {
    agent_log("%s:%zu: %s", path, parser.problem_mark.line + 1,
              parser.problem ? parser.problem : "cannot parse");
    goto out;
  }
  yaml_node_t *root = yaml_document_get_root_node(&doc.d);
  r = root == NULL ? 0 : each_pair(&doc, c, root, "(top)", top_pair);
  /* Defaults above their caps follow the caps. */
  if (c->exec_timeout_ms > c->exec_max_timeout_ms)
    c->exec_timeout_ms = c->exec_max_timeout_ms;
  yaml_document_delete(&doc.d);
out:
  yaml_parser_delete(&parser);
  fclose(f);
  return r;
}

static void free_list(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

void config_free(struct agent_config *c) {
  free(c->device);
  free_list(c->exec_allow, c->n_exec_allow);
  free_list(c->read_dirs, c->n_read_dirs);
  free_list(c->write_dirs, c->n_write_dirs);
  memset(c, 0, sizeof *c);
}
