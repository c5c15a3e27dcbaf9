/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmhostctl's printers: the API's JSON as is (--output json), as YAML
 * (--output yaml, through libyaml's emitter), or as human tables, where
 * sizes, times, lists and nulls are formatted by the member's name. */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yaml.h>

#include "cleanup.h"
#include "ctl.h"

/* ---- cells ------------------------------------------------------------ */

void text_sanitize(char *s, bool newlines) {
  for (unsigned char *p = (unsigned char *)s; p && *p; p++)
    if ((*p < 0x20 && !(newlines && *p == '\n')) || *p == 0x7f)
      *p = *p == '\n' || *p == '\t' ? ' ' : '?';
}

static char *output_cell(const char *key, json_t *v);

static bool in(const char *key, const char *const *set) {
  for (; *set; set++)
    if (!strcmp(key, *set))
      return true;
  return false;
}

static const char *const byte_keys[] = {
    "memory",       "memory_used",      "size",
    "capacity",     "allocation",       "available",
    "memory_total", "memory_available", NULL};
static const char *const second_keys[] = {"created", "not_before", "not_after",
                                          NULL};
static const char *const micro_keys[] = {"time_us", "updated_us", "created_us",
                                         NULL};

static char *bytes_text(double b) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t u = 0;
  while (b >= 1024 && u + 1 < sizeof units / sizeof units[0])
    b /= 1024, u++;
  char *s = NULL;
  if (b == (double)(int64_t)b)
    return asprintf(&s, "%" PRId64 " %s", (int64_t)b, units[u]) < 0 ? NULL : s;
  return asprintf(&s, "%.1f %s", b, units[u]) < 0 ? NULL : s;
}

static char *time_text(int64_t seconds, int64_t micros) {
  time_t t = (time_t)seconds;
  struct tm tm;
  char out[64];
  if (!gmtime_r(&t, &tm))
    return strdup("?");
  size_t n = strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S", &tm);
  if (micros >= 0)
    snprintf(out + n, sizeof out - n, ".%06" PRId64, micros);
  strncat(out, "Z", sizeof out - strlen(out) - 1);
  return strdup(out);
}

static char *number_text(const char *key, json_t *v) {
  double d = json_number_value(v);
  int64_t i = json_is_integer(v) ? (int64_t)json_integer_value(v) : (int64_t)d;
  if (key && in(key, byte_keys))
    return bytes_text(d);
  if (key && in(key, second_keys) && i > 0)
    return time_text(i, -1);
  if (key && in(key, micro_keys) && i > 0)
    return time_text(i / 1000000, i % 1000000);
  char *s = NULL;
  int n =
      json_is_integer(v) ? asprintf(&s, "%" PRId64, i) : asprintf(&s, "%g", d);
  return n < 0 ? NULL : s;
}

static char *join_array(json_t *a) {
  if (!json_array_size(a))
    return strdup("-");
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (!f)
    return NULL;
  size_t i;
  json_t *e;
  json_array_foreach(a, i, e) {
    _cleanup_free_ char *c = output_cell(NULL, e);
    fprintf(f, "%s%s", i ? "," : "", c ? c : "?");
  }
  fclose(f);
  return out;
}

/* An object in a cell: its non-null members as key=value. */
static char *object_text(json_t *o) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (!f)
    return NULL;
  const char *k;
  json_t *e;
  bool first = true;
  json_object_foreach(o, k, e) {
    if (json_is_null(e))
      continue;
    _cleanup_free_ char *c = output_cell(k, e);
    fprintf(f, "%s%s=%s", first ? "" : " ", k, c ? c : "?");
    first = false;
  }
  fclose(f);
  if (first) {
    free(out);
    return strdup("-");
  }
  return out;
}

/* One value as text for a table cell (free it). */
static char *output_cell(const char *key, json_t *v) {
  if (!v) /* a member the answer lacks */
    return strdup("-");
  switch (json_typeof(v)) {
    case JSON_STRING: {
      char *t = strdup(json_string_length(v) ? json_string_value(v) : "-");
      text_sanitize(t, true);
      return t;
    }
    case JSON_INTEGER:
    case JSON_REAL:
      return number_text(key, v);
    case JSON_TRUE:
      return strdup("yes");
    case JSON_FALSE:
      return strdup("no");
    case JSON_ARRAY:
      return join_array(v);
    case JSON_OBJECT:
      return object_text(v);
    default:
      return strdup("-");
  }
}

/* ---- tables ----------------------------------------------------------- */

/* The member *key names in o, "a.b" for b of member a; *key is left at
 * its last part (which says how to format the value). */
static json_t *member(json_t *o, const char **key) {
  const char *dot;
  while ((dot = strchr(*key, '.'))) {
    char head[64];
    snprintf(head, sizeof head, "%.*s", (int)(dot - *key), *key);
    o = json_object_get(o, head);
    *key = dot + 1;
  }
  return json_object_get(o, *key);
}

static void print_table(json_t *rows, const struct column *cols, size_t ncols) {
  size_t nrows = json_array_size(rows);
  char **cells = calloc((nrows + 1) * ncols, sizeof *cells);
  size_t *width = calloc(ncols, sizeof *width);
  if (!cells || !width)
    goto cleanup;
  for (size_t c = 0; c < ncols; c++) {
    cells[c] = strdup(cols[c].heading);
    for (size_t r = 0; r < nrows; r++) {
      const char *key = cols[c].key;
      json_t *v = member(json_array_get(rows, r), &key);
      cells[(r + 1) * ncols + c] = output_cell(key, v);
      text_sanitize(cells[(r + 1) * ncols + c], false);
    }
  }
  for (size_t i = 0; i < (nrows + 1) * ncols; i++)
    if (cells[i] && strlen(cells[i]) > width[i % ncols])
      width[i % ncols] = strlen(cells[i]);
  for (size_t r = 0; r <= nrows; r++) {
    for (size_t c = 0; c < ncols; c++) {
      const char *t = cells[r * ncols + c] ? cells[r * ncols + c] : "?";
      if (c + 1 == ncols)
        printf("%s\n", t);
      else
        printf("%-*s  ", (int)width[c], t);
    }
  }
cleanup:
  for (size_t i = 0; cells && i < (nrows + 1) * ncols; i++)
    free(cells[i]);
  free(cells);
  free(width);
}

/* The columns of an array of objects: every member of the first that is
 * not an array (a nested list is for --output json). */
static void print_sub_table(const char *name, json_t *rows) {
  json_t *first = json_array_get(rows, 0);
  struct column cols[32];
  _cleanup_free_ char *headings = calloc(32, 64);
  size_t n = 0;
  const char *k;
  json_t *v;
  if (!headings)
    return;
  json_object_foreach(first, k, v) {
    if (json_is_array(v) || n == 32)
      continue;
    char *h = headings + n * 64;
    snprintf(h, 64, "%s", k);
    for (char *p = h; *p; p++)
      *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    cols[n].heading = h;
    cols[n].key = k;
    n++;
  }
  printf("\n%s:\n", name);
  if (n)
    print_table(rows, cols, n);
}

static void print_object(json_t *o) {
  const char *k;
  json_t *v;
  int width = 0;
  json_object_foreach(o, k, v) {
    if (!json_is_array(v) || !json_is_object(json_array_get(v, 0)))
      width = strlen(k) + 1 > (size_t)width ? (int)strlen(k) + 1 : width;
  }
  json_object_foreach(o, k, v) {
    if (json_is_array(v) && json_is_object(json_array_get(v, 0)))
      continue;
    _cleanup_free_ char *c = output_cell(k, v);
    /* A multi-line value (user_data, a PEM) goes under its key. */
    if (c && strchr(c, '\n'))
      printf("%s:\n%s%s", k, c, c[strlen(c) - 1] == '\n' ? "" : "\n");
    else
      printf("%-*s %s\n", width, k, c ? c : "?");
  }
  json_object_foreach(o, k, v) {
    if (json_is_array(v) && json_is_object(json_array_get(v, 0)))
      print_sub_table(k, v);
  }
}

/* ---- YAML ------------------------------------------------------------- */

/* Whether a string can be written plain and still read back as a string
 * (not a number, boolean or null, YAML 1.1 or 1.2, nor special). */
static bool plain_safe(const char *s) {
  static const char *const words[] = {"y",    "n",    "yes",   "no",   "on",
                                      "off",  "true", "false", "null", "~",
                                      ".inf", ".nan", NULL};
  if (!*s ||
      !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '/'))
    return false;
  for (const char *p = s; *p; p++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                "0123456789._/-",
                *p))
      return false;
  for (const char *const *w = words; *w; w++)
    if (!strcasecmp(s, *w))
      return false;
  return true;
}

static int emit_scalar(yaml_emitter_t *em, const char *text, bool is_string) {
  yaml_event_t ev;
  yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
  if (is_string && !plain_safe(text))
    style = strchr(text, '\n') ? YAML_LITERAL_SCALAR_STYLE
                               : YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  if (!yaml_scalar_event_initialize(
          &ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text),
          !is_string || style == YAML_PLAIN_SCALAR_STYLE, 1, style))
    return -1;
  return yaml_emitter_emit(em, &ev) ? 0 : -1;
}

static int emit_value(yaml_emitter_t *em, json_t *v) {
  yaml_event_t ev;
  char num[64];
  switch (json_typeof(v)) {
    case JSON_OBJECT: {
      if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                               YAML_BLOCK_MAPPING_STYLE) ||
          !yaml_emitter_emit(em, &ev))
        return -1;
      const char *k;
      json_t *e;
      json_object_foreach(v, k, e) {
        if (emit_scalar(em, k, true) < 0 || emit_value(em, e) < 0)
          return -1;
      }
      return yaml_mapping_end_event_initialize(&ev) &&
                     yaml_emitter_emit(em, &ev)
                 ? 0
                 : -1;
    }
    case JSON_ARRAY: {
      if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                YAML_BLOCK_SEQUENCE_STYLE) ||
          !yaml_emitter_emit(em, &ev))
        return -1;
      size_t i;
      json_t *e;
      json_array_foreach(v, i, e) {
        if (emit_value(em, e) < 0)
          return -1;
      }
      return yaml_sequence_end_event_initialize(&ev) &&
                     yaml_emitter_emit(em, &ev)
                 ? 0
                 : -1;
    }
    case JSON_STRING:
      return emit_scalar(em, json_string_value(v), true);
    case JSON_INTEGER:
      snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
      return emit_scalar(em, num, false);
    case JSON_REAL:
      snprintf(num, sizeof num, "%.17g", json_real_value(v));
      return emit_scalar(em, num, false);
    case JSON_TRUE:
      return emit_scalar(em, "true", false);
    case JSON_FALSE:
      return emit_scalar(em, "false", false);
    default:
      return emit_scalar(em, "null", false);
  }
}

/* One YAML document ("---" first, so that a stream of them parses). */
static void print_yaml(json_t *v) {
  yaml_emitter_t em;
  yaml_event_t ev;
  if (!yaml_emitter_initialize(&em))
    return;
  yaml_emitter_set_output_file(&em, stdout);
  yaml_emitter_set_unicode(&em, 1);
  yaml_emitter_set_width(&em, -1);
  int ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
           yaml_emitter_emit(&em, &ev) &&
           yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0) &&
           yaml_emitter_emit(&em, &ev) && emit_value(&em, v) == 0 &&
           yaml_document_end_event_initialize(&ev, 1) &&
           yaml_emitter_emit(&em, &ev) &&
           yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev);
  if (!ok)
    fprintf(stderr, "vmhostctl: cannot write YAML: %s\n",
            em.problem ? em.problem : "out of memory");
  yaml_emitter_delete(&em);
}

/* ---- names -------------------------------------------------------------- */

/* An object's name, or its id when it has none (a snapshot), a line. */
static void print_name(json_t *o) {
  json_t *n = json_object_get(o, "name");
  if (!json_is_string(n))
    n = json_object_get(o, "id");
  if (!json_is_string(n))
    return;
  _cleanup_free_ char *t = strdup(json_string_value(n));
  text_sanitize(t, false);
  if (t)
    printf("%s\n", t);
}

/* ---- entry points ----------------------------------------------------- */

void output_print(const struct settings *s, json_t *v, const char *list_key,
                  const struct column *cols) {
  if (!v)
    return;
  if (s->output == OUT_JSON) {
    json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
  } else if (s->output == OUT_YAML) {
    print_yaml(v);
  } else if (s->output == OUT_NAME) {
    size_t i;
    json_t *e;
    if (!list_key)
      print_name(v);
    json_array_foreach(list_key ? json_object_get(v, list_key) : NULL, i, e)
        print_name(e);
  } else if (list_key) {
    size_t n = 0;
    while (cols[n].heading)
      n++;
    print_table(json_object_get(v, list_key), cols, n);
  } else {
    print_object(v);
  }
  fflush(stdout);
}

void output_event(const struct settings *s, const char *type, json_t *data) {
  if (s->output == OUT_JSON) {
    json_dumpf(data, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    putchar('\n');
  } else if (s->output == OUT_YAML) {
    print_yaml(data);
  } else {
    json_t *t = json_object_get(data, "time_us");
    _cleanup_free_ char *when = t ? output_cell("time_us", t) : NULL;
    printf("%s %s", when ? when : "-", type);
    const char *k;
    json_t *v;
    json_object_foreach(data, k, v) {
      if (json_is_null(v) || !strcmp(k, "time_us") || !strcmp(k, "type") ||
          (json_is_integer(v) && !json_integer_value(v)))
        continue;
      _cleanup_free_ char *c = output_cell(k, v);
      printf(" %s=%s", k, c ? c : "?");
    }
    putchar('\n');
  }
  fflush(stdout);
}
