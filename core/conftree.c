/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The config file: YAML parsed with libyaml's event API into a read-only
 * tree.  Every node remembers where it stands in the file and whether
 * anyone read it, so that a key nobody read can be refused by name and
 * position (docs/design.md, rule 8: typos never pass silently).
 *
 * The tree is built from libyaml's events rather than its document API:
 * that API accepts aliases (silently sharing nodes), lets a duplicate key
 * through and nests as deep as the input does, and we would copy its tree
 * into ours anyway.  From the events, anchors, aliases, duplicate keys and
 * excessive depth are refused as they arrive, at the position the user has
 * to look at. */
#include <config.h>

#include "conftree.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "cleanup.h"
#include "error.h"
#include "sizes.h"

/* A config file is written by a person; anything larger is a mistake (or
 * an attack on the parser), and the limit bounds the tree's memory. */
#define CONFIG_MAX_BYTES (1024 * 1024)
/* Containers (maps and lists) nested deeper than this are refused; it also
 * bounds the recursion of config_free and config_unread. */
#define CONFIG_MAX_DEPTH 32

#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

/* What all nodes of one file share; owned by the root. */
struct config_doc {
  char *file; /* the path as given to config_load */
  char *dir;  /* the absolute (real) directory of the file */
  /* Paths resolved for plugins (config_path_kept): they live as long as
   * the tree.  Appended under the lock: plugins may read concurrently. */
  pthread_mutex_t kept_lock;
  struct kept *kept;
};

struct kept {
  struct kept *next;
  char *s;
};

struct vmh_config {
  struct config_doc *doc;
  struct vmh_config *parent; /* NULL for the root */
  struct vmh_config **items; /* map values or list elements */
  uint32_t n_items;          /* in file order */
  uint32_t index;            /* position in the parent's items */
  enum config_type type;
  bool is_null; /* a scalar written as nothing, ~, null */
  /* The only mutable part of the tree.  Atomic only so that two threads
   * marking the same node is not a data race in C11 terms; a relaxed store
   * is a plain store, no lock, no allocation. */
  atomic_bool read;
  const char *key;   /* map values: the key; else NULL */
  const char *value; /* scalars: the text (NUL-free); else NULL */
  /* "FILE:LINE:COLUMN" of the node, or of its key for a map value: that
   * is the line the user must look at. */
  const char *where;
  char buf[]; /* where, key and value live here: one allocation per node */
};

/* ---- building ---------------------------------------------------------- */

/* A container being filled, on the parse stack. */
struct frame {
  struct vmh_config *node;
  uint32_t cap; /* allocated items */
  /* Maps: the key waiting for its value, and where it stands. */
  char *key;
  size_t key_line, key_column;
  /* Maps: an open-addressing set of item indexes + 1 (0 = empty slot), so
   * that duplicate keys are found in linear time even in a map of 100 000
   * keys (a 1 MiB file can hold that many). */
  uint32_t *slots;
  uint32_t n_slots; /* a power of two, or 0 */
};

struct builder {
  const char *file;
  struct config_doc *doc;
  struct vmh_config *root;
  struct frame stack[CONFIG_MAX_DEPTH];
  unsigned depth;
  unsigned documents;
};

static void node_free(struct vmh_config *n) {
  if (!n)
    return;
  for (uint32_t i = 0; i < n->n_items; i++)
    node_free(n->items[i]);
  free(n->items);
  free(n);
}

static void doc_free(struct config_doc *d) {
  if (!d)
    return;
  free(d->file);
  free(d->dir);
  for (struct kept *k = d->kept, *next; k; k = next) {
    next = k->next;
    free(k->s);
    free(k);
  }
  pthread_mutex_destroy(&d->kept_lock);
  free(d);
}

void config_free(struct vmh_config *root) {
  /* Only the root owns the tree; a non-root node is borrowed. */
  if (!root || root->parent)
    return;
  struct config_doc *doc = root->doc;
  node_free(root);
  doc_free(doc);
}

static int oom(void) {
  return error_code(VMH_ENOMEM, "out of memory");
}

/* A node with its position string, key and value in one allocation.
 * Positions are 0-based as libyaml gives them; messages are 1-based. */
static struct vmh_config *node_new(struct builder *b, enum config_type type,
                                   size_t line, size_t column, const char *key,
                                   const char *value, size_t value_len) {
  char where[64];
  int wlen = snprintf(where, sizeof where, ":%zu:%zu", line + 1, column + 1);
  size_t flen = strlen(b->file);
  size_t klen = key ? strlen(key) + 1 : 0;
  size_t vlen = value ? value_len + 1 : 0;
  struct vmh_config *n =
      malloc(sizeof *n + flen + (size_t)wlen + 1 + klen + vlen);
  if (!n)
    return NULL;
  *n = (struct vmh_config){.doc = b->doc, .type = type};
  atomic_init(&n->read, false);
  char *p = n->buf;
  memcpy(p, b->file, flen);
  memcpy(p + flen, where, (size_t)wlen + 1);
  n->where = p;
  p += flen + (size_t)wlen + 1;
  if (key) {
    memcpy(p, key, klen);
    n->key = p;
    p += klen;
  }
  if (value) {
    memcpy(p, value, value_len);
    p[value_len] = '\0';
    n->value = p;
  }
  return n;
}

static uint32_t hash_str(const char *s) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* The slot for key in f's set: the one holding it, or the empty one where
 * it would go. */
static uint32_t *slot_find(struct frame *f, const char *key) {
  uint32_t mask = f->n_slots - 1;
  for (uint32_t i = hash_str(key) & mask;; i = (i + 1) & mask) {
    uint32_t *s = &f->slots[i];
    if (*s == 0 || strcmp(f->node->items[*s - 1]->key, key) == 0)
      return s;
  }
}

/* Make room for one more key (load factor stays below one half). */
static int slots_reserve(struct frame *f) {
  if ((f->node->n_items + 1) * 2 <= f->n_slots)
    return 0;
  uint32_t n = f->n_slots ? f->n_slots * 2 : 16;
  uint32_t *old = f->slots;
  uint32_t n_old = f->n_slots;
  f->slots = calloc(n, sizeof *f->slots);
  if (!f->slots) {
    f->slots = old;
    return oom();
  }
  f->n_slots = n;
  for (uint32_t i = 0; i < n_old; i++)
    if (old[i])
      *slot_find(f, f->node->items[old[i] - 1]->key) = old[i];
  free(old);
  return 0;
}

static int items_append(struct frame *f, struct vmh_config *child) {
  struct vmh_config *n = f->node;
  if (n->n_items == f->cap) {
    /* A 1 MiB file cannot hold anywhere near UINT32_MAX nodes. */
    uint32_t cap = f->cap ? f->cap * 2 : 4;
    struct vmh_config **items = realloc(n->items, cap * sizeof *items);
    if (!items)
      return oom();
    n->items = items;
    f->cap = cap;
  }
  child->parent = n;
  child->index = n->n_items;
  n->items[n->n_items++] = child;
  return 0;
}

static int parse_error(struct builder *b, const yaml_mark_t *m, const char *fmt,
                       ...) VMH_PRINTF(3, 4);
static int parse_error(struct builder *b, const yaml_mark_t *m, const char *fmt,
                       ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return error_code(VMH_EINVAL, "%s:%zu:%zu: %s", b->file, m->line + 1,
                    m->column + 1, msg);
}

static const char *type_article(enum config_type t) {
  return t == CONFIG_MAP ? "a map" : t == CONFIG_LIST ? "a list" : "a string";
}

/* Tags: only the standard ones of the core schema, and each only on the
 * kind of node it names.  Anything else ("!python/object", a %TAG
 * shorthand) means the author expects a meaning we do not give. */
static int check_tag(struct builder *b, const yaml_event_t *ev,
                     const yaml_char_t *tag, enum config_type type) {
  if (!tag)
    return 0;
  const char *t = (const char *)tag;
  if (strcmp(t, "!") == 0) /* the non-specific tag */
    return 0;
  size_t plen = strlen(YAML_TAG_PREFIX);
  if (strncmp(t, YAML_TAG_PREFIX, plen) != 0)
    return parse_error(b, &ev->start_mark, "tag '%s' is not supported", t);
  static const struct {
    const char *name;
    enum config_type type;
  } standard[] = {
      {"map", CONFIG_MAP},      {"seq", CONFIG_LIST},
      {"str", CONFIG_SCALAR},   {"int", CONFIG_SCALAR},
      {"float", CONFIG_SCALAR}, {"bool", CONFIG_SCALAR},
      {"null", CONFIG_SCALAR},
  };
  const char *name = t + plen;
  for (size_t i = 0; i < sizeof standard / sizeof standard[0]; i++) {
    if (strcmp(name, standard[i].name) != 0)
      continue;
    if (standard[i].type == type)
      return 0;
    return parse_error(b, &ev->start_mark, "tag '!!%s' cannot be used on %s",
                       name, type_article(type));
  }
  return parse_error(b, &ev->start_mark, "tag '!!%s' is not supported", name);
}

static const char *event_anchor(const yaml_event_t *ev) {
  switch (ev->type) {
    case YAML_SCALAR_EVENT:
      return (const char *)ev->data.scalar.anchor;
    case YAML_SEQUENCE_START_EVENT:
      return (const char *)ev->data.sequence_start.anchor;
    case YAML_MAPPING_START_EVENT:
      return (const char *)ev->data.mapping_start.anchor;
    default:
      return NULL;
  }
}

/* A plain scalar that YAML reads as null: nothing, ~, null. */
static bool scalar_is_null(const yaml_event_t *ev) {
  const char *tag = (const char *)ev->data.scalar.tag;
  if (tag && strcmp(tag, YAML_TAG_PREFIX "null") == 0)
    return true;
  if (tag || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return false;
  const char *v = (const char *)ev->data.scalar.value;
  return ev->data.scalar.length == 0 || strcmp(v, "~") == 0 ||
         strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
         strcmp(v, "NULL") == 0;
}

/* A map, list or scalar event: a key, a value, a list element or the
 * root. */
static int on_node(struct builder *b, const yaml_event_t *ev,
                   enum config_type type) {
  const char *anchor = event_anchor(ev);
  if (anchor)
    return parse_error(b, &ev->start_mark,
                       "anchor '&%s': anchors and aliases are not supported",
                       anchor);
  const yaml_char_t *tag = type == CONFIG_SCALAR ? ev->data.scalar.tag
                           : type == CONFIG_LIST ? ev->data.sequence_start.tag
                                                 : ev->data.mapping_start.tag;
  int r = check_tag(b, ev, tag, type);
  if (r < 0)
    return r;

  const char *value = NULL;
  size_t value_len = 0;
  if (type == CONFIG_SCALAR) {
    value = (const char *)ev->data.scalar.value;
    value_len = ev->data.scalar.length;
    /* "\0" in a double-quoted string: our strings are C strings, and a
     * silently shortened value is worse than a refusal. */
    if (memchr(value, '\0', value_len))
      return parse_error(b, &ev->start_mark,
                         "a NUL character in a string is not supported");
  }

  struct frame *f = b->depth ? &b->stack[b->depth - 1] : NULL;
  if (!f) {
    if (b->root)
      return parse_error(b, &ev->start_mark,
                         "more than one YAML document in the file");
    /* The top level: a map, or nothing at all ("---" alone). */
    if (type == CONFIG_SCALAR && scalar_is_null(ev))
      type = CONFIG_MAP;
    else if (type != CONFIG_MAP)
      return parse_error(b, &ev->start_mark,
                         "the top level must be a map, found %s",
                         type == CONFIG_LIST ? "a list" : "a string");
    b->root = node_new(b, CONFIG_MAP, ev->start_mark.line,
                       ev->start_mark.column, NULL, NULL, 0);
    if (!b->root)
      return oom();
    if (ev->type == YAML_MAPPING_START_EVENT)
      b->stack[b->depth++] = (struct frame){.node = b->root};
    return 0;
  }

  if (f->node->type == CONFIG_MAP && !f->key) {
    /* A key. */
    if (type != CONFIG_SCALAR)
      return parse_error(b, &ev->start_mark, "keys must be strings, found %s",
                         type_article(type));
    if (scalar_is_null(ev))
      return parse_error(b, &ev->start_mark, "empty key");
    if (f->n_slots) {
      uint32_t *s = slot_find(f, value);
      if (*s) {
        const struct vmh_config *first = f->node->items[*s - 1];
        /* first->where is "FILE:L:C"; the message wants "L:C". */
        const char *lc = first->where + strlen(b->file) + 1;
        return parse_error(b, &ev->start_mark,
                           "duplicate key '%s' (first at %s)", value, lc);
      }
    }
    f->key = strdup(value);
    if (!f->key)
      return oom();
    f->key_line = ev->start_mark.line;
    f->key_column = ev->start_mark.column;
    return 0;
  }

  size_t line = ev->start_mark.line, column = ev->start_mark.column;
  if (f->node->type == CONFIG_MAP) {
    line = f->key_line;
    column = f->key_column;
  }
  if (type != CONFIG_SCALAR && b->depth == CONFIG_MAX_DEPTH)
    return parse_error(b, &ev->start_mark, "nesting deeper than %d levels",
                       CONFIG_MAX_DEPTH);
  if (f->node->type == CONFIG_MAP && (r = slots_reserve(f)) < 0)
    return r;
  struct vmh_config *n =
      node_new(b, type, line, column, f->key, value, value_len);
  if (!n)
    return oom();
  n->is_null = type == CONFIG_SCALAR && scalar_is_null(ev);
  if ((r = items_append(f, n)) < 0) {
    free(n);
    return r;
  }
  if (f->node->type == CONFIG_MAP) {
    *slot_find(f, f->key) = n->index + 1;
    free(f->key);
    f->key = NULL;
  }
  if (type != CONFIG_SCALAR)
    b->stack[b->depth++] = (struct frame){.node = n};
  return 0;
}

static void frame_clear(struct frame *f) {
  free(f->key);
  free(f->slots);
  *f = (struct frame){0};
}

/* Line and column (1-based, in characters) of byte `offset` of buf, for
 * libyaml's reader errors, which give only an offset. */
static void offset_position(const char *buf, size_t len, size_t offset,
                            size_t *line, size_t *column) {
  *line = 1;
  *column = 1;
  for (size_t i = 0; i < offset && i < len; i++) {
    if (buf[i] == '\n') {
      ++*line;
      *column = 1;
    } else if (((unsigned char)buf[i] & 0xC0) != 0x80) {
      ++*column;
    }
  }
}

/* The offset of the first byte of buf that does not start a valid UTF-8
 * sequence (overlong forms, surrogates and code points above U+10FFFF are
 * invalid too), or len.  libyaml checks this as well, but reports the byte
 * where it noticed, which for a cut sequence is the innocent byte after the
 * culprit; checking first lets the message point at the culprit. */
static size_t utf8_invalid(const char *buf, size_t len) {
  const unsigned char *s = (const unsigned char *)buf;
  for (size_t i = 0; i < len;) {
    unsigned c = s[i];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (len - i < n)
      return i;
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += n;
  }
  return len;
}

static int invalid_utf8(struct builder *b, const char *buf, size_t len,
                        size_t offset) {
  size_t line, column;
  offset_position(buf, len, offset, &line, &column);
  return error_code(VMH_EINVAL,
                    "%s:%zu:%zu: invalid UTF-8 (byte 0x%02X); the config "
                    "file must be UTF-8 text",
                    b->file, line, column, (unsigned char)buf[offset]);
}

static int libyaml_error(struct builder *b, const yaml_parser_t *p,
                         const char *buf, size_t len) {
  if (p->error == YAML_MEMORY_ERROR)
    return oom();
  if (p->error == YAML_READER_ERROR) {
    size_t line, column;
    offset_position(buf, len, p->problem_offset, &line, &column);
    const char *problem = p->problem ? p->problem : "unreadable input";
    if ((strstr(problem, "UTF-8") || strstr(problem, "Unicode")) &&
        p->problem_offset < len)
      return invalid_utf8(b, buf, len, p->problem_offset);
    if (strstr(problem, "control characters") && p->problem_value >= 0)
      return error_code(VMH_EINVAL,
                        "%s:%zu:%zu: control character 0x%02X is not allowed",
                        b->file, line, column, (unsigned)p->problem_value);
    return error_code(VMH_EINVAL, "%s:%zu:%zu: %s", b->file, line, column,
                      problem);
  }
  /* Scanner and parser errors: libyaml's words, our position format. */
  const char *problem = p->problem ? p->problem : "syntax error";
  if (p->context)
    return error_code(
        VMH_EINVAL, "%s:%zu:%zu: syntax error: %s (%s at %zu:%zu)", b->file,
        p->problem_mark.line + 1, p->problem_mark.column + 1, problem,
        p->context, p->context_mark.line + 1, p->context_mark.column + 1);
  return error_code(VMH_EINVAL, "%s:%zu:%zu: syntax error: %s", b->file,
                    p->problem_mark.line + 1, p->problem_mark.column + 1,
                    problem);
}

static int build(struct builder *b, const char *buf, size_t len) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser))
    return oom();
  yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
  /* No guessing from a BOM: a UTF-16 file is refused as not UTF-8. */
  yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

  size_t bad = utf8_invalid(buf, len);
  if (bad < len) {
    yaml_parser_delete(&parser);
    return invalid_utf8(b, buf, len, bad);
  }

  int r = 0;
  for (bool done = false; !done && r == 0;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      r = libyaml_error(b, &parser, buf, len);
      break;
    }
    switch (ev.type) {
      case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1)
          r = parse_error(b, &ev.start_mark,
                          "more than one YAML document in the file");
        break;
      case YAML_ALIAS_EVENT:
        r = parse_error(b, &ev.start_mark,
                        "alias '*%s': anchors and aliases are not supported",
                        (const char *)ev.data.alias.anchor);
        break;
      case YAML_SCALAR_EVENT:
        r = on_node(b, &ev, CONFIG_SCALAR);
        break;
      case YAML_SEQUENCE_START_EVENT:
        r = on_node(b, &ev, CONFIG_LIST);
        break;
      case YAML_MAPPING_START_EVENT:
        r = on_node(b, &ev, CONFIG_MAP);
        break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        frame_clear(&b->stack[--b->depth]);
        break;
      case YAML_STREAM_END_EVENT:
        done = true;
        break;
      default:
        break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  while (b->depth)
    frame_clear(&b->stack[--b->depth]);
  if (r == 0 && !b->root) {
    /* An empty file (or only comments): an empty map. */
    b->root = node_new(b, CONFIG_MAP, 0, 0, NULL, NULL, 0);
    if (!b->root)
      r = oom();
  }
  return r;
}

/* The whole file, at most CONFIG_MAX_BYTES.  Reads rather than trusting
 * st_size so that pipes and files that grow while we read are bounded
 * too. */
static int read_file(const char *path, char **ret, size_t *ret_len) {
  _cleanup_fclose_ FILE *f = fopen(path, "re");
  if (!f) {
    int e = errno;
    return error_code(e == ENOENT                 ? VMH_ENOENT
                      : e == EACCES || e == EPERM ? VMH_EPERM
                                                  : VMH_EIO,
                      "%s: cannot open: %s", path, strerror(e));
  }
  _cleanup_free_ char *buf = malloc(CONFIG_MAX_BYTES + 1);
  if (!buf)
    return oom();
  size_t len = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
  if (ferror(f))
    return error_code(VMH_EIO, "%s: cannot read: %s", path, strerror(errno));
  if (len > CONFIG_MAX_BYTES)
    return error_code(VMH_EINVAL, "%s: the file is larger than 1 MiB", path);
  *ret = steal_ptr(&buf);
  *ret_len = len;
  return 0;
}

static int doc_new(const char *path, struct config_doc **ret) {
  _cleanup_free_ char *copy = strdup(path);
  if (!copy)
    return oom();
  char *slash = strrchr(copy, '/');
  const char *dir = ".";
  if (slash == copy)
    dir = "/";
  else if (slash) {
    *slash = '\0';
    dir = copy;
  }
  struct config_doc *d = calloc(1, sizeof *d);
  if (!d)
    return oom();
  pthread_mutex_init(&d->kept_lock, NULL);
  d->file = strdup(path);
  d->dir = realpath(dir, NULL);
  if (!d->file || !d->dir) {
    int e = errno;
    doc_free(d);
    return e == ENOMEM ? oom()
                       : error_code(VMH_EIO, "%s: cannot resolve directory: %s",
                                    path, strerror(e));
  }
  *ret = d;
  return 0;
}

int config_load(const char *path, struct vmh_config **ret_root) {
  _cleanup_free_ char *buf = NULL;
  size_t len = 0;
  int r = read_file(path, &buf, &len);
  if (r < 0)
    return r;
  struct builder b = {.file = path};
  if ((r = doc_new(path, &b.doc)) < 0)
    return r;
  /* A UTF-8 byte order mark (some editors write one) is not part of the
   * text: libyaml would count it as column 1 of the first line. */
  const char *text = buf;
  if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
    text += 3;
    len -= 3;
  }
  if ((r = build(&b, text, len)) < 0) {
    node_free(b.root);
    doc_free(b.doc);
    return r;
  }
  *ret_root = b.root;
  return 0;
}

/* ---- reading ----------------------------------------------------------- */

static void mark(const struct vmh_config *n) {
  /* The tree is handed out const so that plugins cannot change it; the
   * mark is the one field meant to change, and every node was allocated
   * non-const by config_load. */
  atomic_store_explicit(&((struct vmh_config *)n)->read, true,
                        memory_order_relaxed);
}

static bool is_read(const struct vmh_config *n) {
  return atomic_load_explicit(&n->read, memory_order_relaxed);
}

enum config_type config_type(const struct vmh_config *node) {
  return node->type;
}

const char *config_file(const struct vmh_config *node) {
  return node->doc->file;
}

const char *config_dir(const struct vmh_config *node) {
  return node->doc->dir;
}

const char *config_where(const struct vmh_config *node) {
  return node ? node->where : "(no position)";
}

const char *config_key_name(const struct vmh_config *node) {
  return node ? node->key : NULL;
}

const struct vmh_config *config_lookup(const struct vmh_config *map,
                                       const char *key) {
  if (!map || map->type != CONFIG_MAP || !key)
    return NULL;
  for (uint32_t i = 0; i < map->n_items; i++)
    if (strcmp(map->items[i]->key, key) == 0)
      return map->items[i];
  return NULL;
}

/* How a node is named in messages, after its position: "key 'k'",
 * "element 2 of 'k'" (1-based, as a person counts), or "" for the root. */
static const char *label(const struct vmh_config *n, char *buf, size_t size) {
  if (n->key)
    snprintf(buf, size, "key '%s': ", n->key);
  else if (n->parent && n->parent->key)
    snprintf(buf, size, "element %" PRIu32 " of '%s': ", n->index + 1,
             n->parent->key);
  else if (n->parent)
    snprintf(buf, size, "element %" PRIu32 ": ", n->index + 1);
  else
    buf[0] = '\0';
  return buf;
}

/* How a node is described after "found": its type, or a scalar's text,
 * cut short and with control characters replaced so that the message stays
 * on one line. */
static const char *describe(const struct vmh_config *n, char *buf,
                            size_t size) {
  if (n->type != CONFIG_SCALAR)
    return type_article(n->type);
  if (n->is_null || !n->value[0])
    return "an empty value";
  enum { MAX_SHOWN = 40 };
  size_t o = 0;
  buf[o++] = '\'';
  const unsigned char *s = (const unsigned char *)n->value;
  size_t i = 0;
  for (; s[i] && i < MAX_SHOWN && o + 5 < size; i++)
    buf[o++] = s[i] < 0x20 || s[i] == 0x7F ? '?' : (char)s[i];
  if (s[i]) {
    /* Do not end in the middle of a UTF-8 sequence: find the last lead
     * byte and drop its sequence if it is not all there. */
    size_t lead = o - 1;
    while (lead > 1 && ((unsigned char)buf[lead] & 0xC0) == 0x80)
      lead--;
    unsigned char c = (unsigned char)buf[lead];
    size_t want = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (o - lead < want)
      o = lead;
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o++] = '\'';
  buf[o] = '\0';
  return buf;
}

static int type_error(const struct vmh_config *n, const char *expected) {
  char l[256], d[64];
  return error_code(VMH_EINVAL, "%s: %sexpected %s, found %s", n->where,
                    label(n, l, sizeof l), expected, describe(n, d, sizeof d));
}

/* The value of key in map (or map itself for key NULL), through *ret:
 * NULL when missing (and not required).  Checks flags and the map's type.
 * A NULL map reads as an empty one, so that a plugin can read the keys of
 * an optional section it got as NULL without testing for it. */
/* ---- the keys asked (config_asked_begin) ----------------------------- */

struct asked {
  const struct vmh_config *map;
  char *key;
};
static _Thread_local struct asked *asked;
static _Thread_local size_t n_asked, cap_asked;
static _Thread_local bool recording;

void config_asked_begin(void) {
  config_asked_end();
  recording = true;
}

void config_asked_end(void) {
  for (size_t i = 0; i < n_asked; i++)
    free(asked[i].key);
  free(asked);
  asked = NULL;
  n_asked = cap_asked = 0;
  recording = false;
}

/* Best effort: out of memory only loses a suggestion. */
static void record_asked(const struct vmh_config *map, const char *key) {
  for (size_t i = 0; i < n_asked; i++)
    if (asked[i].map == map && !strcmp(asked[i].key, key))
      return;
  if (n_asked == cap_asked) {
    size_t cap = cap_asked ? cap_asked * 2 : 32;
    struct asked *v = realloc(asked, cap * sizeof *v);
    if (!v)
      return;
    asked = v;
    cap_asked = cap;
  }
  char *copy = strdup(key);
  if (copy)
    asked[n_asked++] = (struct asked){map, copy};
}

const char *config_asked_suggest(const struct vmh_config *entry) {
  const struct vmh_config *map = entry ? entry->parent : NULL;
  const char *key = config_key_name(entry);
  size_t n = 0;
  if (!map || !key || !n_asked)
    return NULL;
  _cleanup_free_ const char **keys = malloc(n_asked * sizeof *keys);
  if (!keys)
    return NULL;
  for (size_t i = 0; i < n_asked; i++)
    if (asked[i].map == map)
      keys[n++] = asked[i].key;
  return config_suggest(key, keys, n);
}

/* Edit distance with adjacent transpositions ("wokrers" is one edit from
 * "workers"), for strings up to SUGGEST_MAX_LEN bytes. */
#define SUGGEST_MAX_LEN 64
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

const char *config_suggest(const char *word, const char *const *candidates,
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

static int get(const struct vmh_config *map, const char *key, uint32_t flags,
               const struct vmh_config **ret) {
  if (flags & ~VMH_CFG_REQUIRED)
    return error_code(VMH_EINVAL, "config accessor: unknown flags 0x%" PRIx32,
                      flags & ~VMH_CFG_REQUIRED);
  if (!key) {
    if (!map)
      return error_code(VMH_EINVAL, "config accessor: no node and no key");
    *ret = map;
    return 0;
  }
  if (!map) {
    if (flags & VMH_CFG_REQUIRED)
      return error_code(VMH_EINVAL, "missing required key '%s'", key);
    *ret = NULL;
    return 0;
  }
  if (map->type != CONFIG_MAP)
    return type_error(map, "a map");
  if (recording)
    record_asked(map, key);
  const struct vmh_config *v = config_lookup(map, key);
  if (!v && (flags & VMH_CFG_REQUIRED))
    return error_code(VMH_EINVAL, "%s: missing required key '%s'", map->where,
                      key);
  *ret = v;
  return 0;
}

int config_string(const struct vmh_config *map, const char *key,
                  const char *def, const char **ret, uint32_t flags) {
  const struct vmh_config *v;
  int r = get(map, key, flags, &v);
  if (r < 0)
    return r;
  if (!v) {
    *ret = def;
    return 0;
  }
  if (v->type != CONFIG_SCALAR)
    return type_error(v, "a string");
  /* `key:` with nothing after it, `key: ~`: an explicit empty string,
   * not the default.  The author wrote the key, so they get what they
   * wrote; a default applies only to a key that is not there. */
  *ret = v->is_null ? "" : v->value;
  mark(v);
  return 0;
}

int config_int(const struct vmh_config *map, const char *key, int64_t min,
               int64_t max, int64_t def, int64_t *ret, uint32_t flags) {
  const struct vmh_config *v;
  int r = get(map, key, flags, &v);
  if (r < 0)
    return r;
  if (!v) {
    *ret = def;
    return 0;
  }
  if (v->type != CONFIG_SCALAR || v->is_null)
    return type_error(v, "an integer");
  const char *s = v->value, *end;
  bool neg = *s == '-';
  if (*s == '-' || *s == '+')
    s++;
  uint64_t u;
  enum num k = num_parse(s, &end, &u);
  if (k == NUM_BAD || *end)
    return type_error(v, "an integer");
  bool in_range = k == NUM_OK && u <= (uint64_t)INT64_MAX + neg;
  int64_t x = 0;
  if (in_range && neg)
    x = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
  else if (in_range)
    x = (int64_t)u;
  if (!in_range || x < min || x > max) {
    char l[256];
    return error_code(VMH_EINVAL,
                      "%s: %s%s is out of range %" PRId64 "..%" PRId64,
                      v->where, label(v, l, sizeof l), v->value, min, max);
  }
  *ret = x;
  mark(v);
  return 0;
}

int config_size(const struct vmh_config *map, const char *key, uint64_t min,
                uint64_t max, uint64_t def, uint64_t *ret, uint32_t flags) {
  const struct vmh_config *v;
  int r = get(map, key, flags, &v);
  if (r < 0)
    return r;
  if (!v) {
    *ret = def;
    return 0;
  }
  if (v->type != CONFIG_SCALAR || v->is_null)
    return type_error(v, SIZE_SYNTAX);
  uint64_t x = 0;
  enum num k = size_parse(v->value, &x);
  if (k == NUM_BAD)
    return type_error(v, SIZE_SYNTAX);
  if (k == NUM_OVERFLOW || x < min || x > max) {
    char l[256], a[32], b[32];
    return error_code(VMH_EINVAL, "%s: %s%s is out of range %s..%s", v->where,
                      label(v, l, sizeof l), v->value,
                      size_format(min, a, sizeof a),
                      size_format(max, b, sizeof b));
  }
  *ret = x;
  mark(v);
  return 0;
}

int config_bool(const struct vmh_config *map, const char *key, int def,
                int *ret, uint32_t flags) {
  const struct vmh_config *v;
  int r = get(map, key, flags, &v);
  if (r < 0)
    return r;
  if (!v) {
    *ret = def;
    return 0;
  }
  static const char expected[] = "true or false (or yes/no, on/off)";
  if (v->type != CONFIG_SCALAR || v->is_null)
    return type_error(v, expected);
  const char *s = v->value;
  int x;
  if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
    x = 1;
  else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") ||
           !strcasecmp(s, "off"))
    x = 0;
  else
    return type_error(v, expected);
  *ret = x;
  mark(v);
  return 0;
}

/* A container of `type` or, unless required, a null value read as an
 * absent (empty) one: `daemon:` with nothing under it is an empty map. */
static int get_container(const struct vmh_config *map, const char *key,
                         enum config_type type, uint32_t flags,
                         const struct vmh_config **ret) {
  const struct vmh_config *v;
  int r = get(map, key, flags, &v);
  if (r < 0)
    return r;
  if (!v) {
    *ret = NULL;
    return 0;
  }
  if (v->type == CONFIG_SCALAR && v->is_null && !(flags & VMH_CFG_REQUIRED)) {
    mark(v);
    *ret = NULL;
    return 0;
  }
  if (v->type != type)
    return type_error(v, type_article(type));
  mark(v);
  *ret = v;
  return 0;
}

int config_map(const struct vmh_config *map, const char *key,
               const struct vmh_config **ret, uint32_t flags) {
  return get_container(map, key, CONFIG_MAP, flags, ret);
}

int config_list(const struct vmh_config *map, const char *key,
                const struct vmh_config **ret, uint32_t *ret_count,
                uint32_t flags) {
  const struct vmh_config *v;
  int r = get_container(map, key, CONFIG_LIST, flags, &v);
  if (r < 0)
    return r;
  *ret = v;
  *ret_count = v ? v->n_items : 0;
  return 0;
}

int config_at(const struct vmh_config *list, uint32_t index,
              const struct vmh_config **ret) {
  if (!list)
    return error_code(VMH_EINVAL, "config_at: no list");
  if (list->type != CONFIG_LIST)
    return type_error(list, "a list");
  if (index >= list->n_items) {
    char l[256];
    return error_code(VMH_EINVAL,
                      "%s: %sindex %" PRIu32
                      " is out of range (the list has "
                      "%" PRIu32 " elements)",
                      list->where, label(list, l, sizeof l), index,
                      list->n_items);
  }
  const struct vmh_config *e = list->items[index];
  mark(e);
  *ret = e;
  return 0;
}

int config_keys(const struct vmh_config *map, vmh_config_key_fn fn,
                void *opaque) {
  if (!map)
    return 0;
  if (map->type != CONFIG_MAP)
    return type_error(map, "a map");
  mark(map);
  for (uint32_t i = 0; i < map->n_items; i++) {
    const struct vmh_config *v = map->items[i];
    mark(v);
    int r = fn(opaque, v->key, v);
    if (r)
      return r;
  }
  return 0;
}

int config_resolve(const struct vmh_config *node, const char *path,
                   char **ret) {
  char *s;
  if (path[0] == '/') {
    s = strdup(path);
  } else {
    /* "./state" and "state" name the same directory; say it the short
     * way.  ".." is kept: the directory may not exist yet, so it cannot
     * be canonicalized. */
    while (path[0] == '.' && path[1] == '/') {
      path += 2;
      while (*path == '/')
        path++;
    }
    const char *dir = node->doc->dir;
    if (!path[0] || strcmp(path, ".") == 0)
      s = strdup(dir);
    else if (asprintf(&s, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", path) < 0)
      s = NULL;
  }
  if (!s)
    return oom();
  *ret = s;
  return 0;
}

int config_path(const struct vmh_config *map, const char *key, const char *def,
                char **ret, uint32_t flags) {
  const struct vmh_config *v;
  int r = get(map, key, flags, &v);
  if (r < 0)
    return r;
  const char *s = def;
  if (v) {
    if (v->type != CONFIG_SCALAR || v->is_null || !v->value[0])
      return type_error(v, "a path");
    s = v->value;
  }
  if (!s) {
    *ret = NULL;
    return 0;
  }
  char *p;
  if (s[0] == '/') {
    p = strdup(s);
    if (!p)
      return oom();
  } else {
    /* A default is resolved like a value; that needs the file's directory,
     * which only a node knows. */
    const struct vmh_config *anchor = v ? v : map;
    if (!anchor)
      return error_code(VMH_EINVAL,
                        "config_path: relative default '%s' without a node", s);
    if ((r = config_resolve(anchor, s, &p)) < 0)
      return r;
  }
  if (v)
    mark(v);
  *ret = p;
  return 0;
}

/* Hand s (owned) to the tree of node, which frees it with the tree. */
static int keep(const struct vmh_config *node, char *s) {
  struct kept *k = malloc(sizeof *k);
  if (!k) {
    free(s);
    return oom();
  }
  struct config_doc *d = node->doc;
  k->s = s;
  pthread_mutex_lock(&d->kept_lock);
  k->next = d->kept;
  d->kept = k;
  pthread_mutex_unlock(&d->kept_lock);
  return 0;
}

int config_path_kept(const struct vmh_config *map, const char *key,
                     const char *def, const char **ret, uint32_t flags) {
  char *p;
  int r = config_path(map, key, def, &p, flags);
  if (r < 0)
    return r;
  if (p && def && strcmp(p, def) == 0 && !config_lookup(map, key)) {
    /* An absolute default, unchanged: the caller's string will do (and map
     * may be NULL, with no tree to keep a copy in). */
    free(p);
    p = (char *)def;
  } else if (p && (r = keep(map, p)) < 0) {
    return r;
  }
  *ret = p;
  return 0;
}

const char *config_key_where(const struct vmh_config *map, const char *key) {
  const struct vmh_config *v = config_lookup(map, key);
  return config_where(v ? v : map);
}

int config_unread_each(const struct vmh_config *node,
                       int (*fn)(void *opaque, const struct vmh_config *entry),
                       void *opaque) {
  if (!node)
    return 0;
  for (uint32_t i = 0; i < node->n_items; i++) {
    const struct vmh_config *c = node->items[i];
    int r = node->type == CONFIG_MAP && !is_read(c)
                ? fn(opaque, c)
                : config_unread_each(c, fn, opaque);
    if (r)
      return r;
  }
  return 0;
}

const struct vmh_config *config_parent(const struct vmh_config *node) {
  return node ? node->parent : NULL;
}

const struct vmh_config *config_unread(const struct vmh_config *node) {
  if (!node)
    return NULL;
  for (uint32_t i = 0; i < node->n_items; i++) {
    const struct vmh_config *c = node->items[i];
    /* A map entry nobody read is the answer; a list element is not a key,
     * so only what is inside it counts. */
    if (node->type == CONFIG_MAP && !is_read(c))
      return c;
    const struct vmh_config *u = config_unread(c);
    if (u)
      return u;
  }
  return NULL;
}
