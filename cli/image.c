/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmhostctl image …: a pool's base-image cache.  An import is an
 * operation: it is started with ?wait=false and followed through
 * /api/v1/operations/{id}/wait, a progress bar on standard error when that
 * is a terminal; the image is printed at its end.  `image list` without a
 * pool lists every pool's images. */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctl.h"

#define V "/api/v1"

const struct column image_cols[] = {{"NAME", "name"},
                                    {"SIZE", "size"},
                                    {"USERS", "n_users"},
                                    {"SHA256", "sha256"},
                                    {NULL, NULL}};
static const struct column image_all_cols[] = {
    {"POOL", "pool"},     {"NAME", "name"},     {"SIZE", "size"},
    {"USERS", "n_users"}, {"SHA256", "sha256"}, {NULL, NULL}};

/* The error numbers of the API (an operation's error.code) with the names
 * its error answers carry (openapi.yaml, Error): the exit code of a failed
 * operation is that of the same error answered at once. */
static const char *const code_names[] = {"OK",
                                         "INVALID_ARGUMENT",
                                         "NOT_FOUND",
                                         "ALREADY_EXISTS",
                                         "BUSY",
                                         "INVALID_STATE",
                                         "NO_SPACE",
                                         "NOT_SUPPORTED",
                                         "PERMISSION_DENIED",
                                         "TIMEOUT",
                                         "IO_ERROR",
                                         "NO_MEMORY",
                                         "TRY_AGAIN",
                                         "LIMIT_EXCEEDED",
                                         "CANCELED",
                                         "INTERNAL",
                                         "INSUFFICIENT_CAPACITY"};

static const char *code_name(json_int_t code) {
  json_int_t i = -code;
  if (i < 0 || i >= (json_int_t)(sizeof code_names / sizeof code_names[0]))
    return "INTERNAL";
  return code_names[i];
}

/* 1536 → "1.5 MiB". */
static void human(char *buf, size_t len, double n) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t u = 0;
  while (n >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
    n /= 1024;
    u++;
  }
  snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", n, units[u]);
}

/* One line, redrawn in place: "NAME [#####     ]  45%  1.2 MiB / 2.7 MiB". */
static void draw_bar(const char *name, json_t *op) {
  json_t *p = json_object_get(op, "progress");
  double done = (double)json_integer_value(json_object_get(p, "done"));
  double total = (double)json_integer_value(json_object_get(p, "total"));
  char d[32], t[32], bar[31];
  int width = (int)sizeof bar - 1;
  int fill = total > 0 ? (int)(done / total * width) : 0;
  if (fill > width)
    fill = width;
  memset(bar, '#', (size_t)fill);
  memset(bar + fill, ' ', (size_t)(width - fill));
  bar[width] = '\0';
  human(d, sizeof d, done);
  if (total > 0) {
    human(t, sizeof t, total);
    fprintf(stderr, "\r%s [%s] %3d%%  %s / %s\033[K", name, bar,
            (int)(done * 100 / total), d, t);
  } else {
    fprintf(stderr, "\r%s %s %s\033[K", name,
            json_string_value(json_object_get(op, "status")), d);
  }
  fflush(stderr);
}

static bool ended(json_t *op) {
  const char *st = json_string_value(json_object_get(op, "status"));
  return !st || (strcmp(st, "queued") && strcmp(st, "running"));
}

/* Follow the operation until it ends; *op becomes its last state. */
static int follow(const struct settings *s, const char *name, json_t **op) {
  const char *id = json_string_value(json_object_get(*op, "id"));
  bool bar = isatty(STDERR_FILENO);
  _cleanup_free_ char *path = NULL;
  if (!id || asprintf(&path, V "/operations/%s/wait?timeout=1", id) < 0) {
    fprintf(stderr, "vmhostctl: the answer holds no operation\n");
    return EXIT_ERROR;
  }
  while (!ended(*op)) {
    if (bar)
      draw_bar(name, *op);
    struct reply r;
    int ret = http_call(s, "GET", path, NULL, &r);
    if (ret == EXIT_OK && json_is_object(r.json)) {
      json_decref(*op);
      *op = json_incref(r.json);
    }
    reply_free(&r);
    if (ret != EXIT_OK) {
      if (bar)
        fputc('\n', stderr);
      return ret;
    }
  }
  if (bar) {
    draw_bar(name, *op);
    fputc('\n', stderr);
  }
  return EXIT_OK;
}

/* An operation that ended otherwise than well, as an error answer would
 * be printed; its exit code. */
static int op_failed(json_t *op) {
  json_t *e = json_object_get(op, "error");
  const char *name = code_name(json_integer_value(json_object_get(e, "code")));
  const char *msg = json_string_value(json_object_get(e, "message"));
  _cleanup_free_ char *text = NULL;
  if (asprintf(&text, "vmhostctl: %s: %s (operation %s)", name,
               msg ? msg : json_string_value(json_object_get(op, "status")),
               json_string_value(json_object_get(op, "id"))) < 0)
    return EXIT_ERROR;
  text_sanitize(text, false);
  fprintf(stderr, "%s\n", text);
  return http_exit_for_code(name);
}

int image_import(const struct settings *s, struct invocation *inv) {
  const char *sha = inv_opt(inv, "sha256");
  if (!sha)
    return usage_error("image import: --sha256 HEX is required (sha256sum)");
  json_t *body = json_pack("{s:s,s:s,s:s}", "name", inv->pos[1], "url",
                           inv->pos[2], "sha256", sha);
  if (!body)
    return usage_error("image import: NAME, URL and --sha256 must be UTF-8");
  _cleanup_free_ char *pool = http_escape(inv->pos[0]);
  _cleanup_free_ char *path = NULL;
  if (!pool ||
      asprintf(&path, V "/storage/pools/%s/images?wait=false", pool) < 0) {
    json_decref(body);
    fprintf(stderr, "vmhostctl: out of memory\n");
    return EXIT_ERROR;
  }
  struct reply r;
  int ret = http_call(s, "POST", path, body, &r);
  json_decref(body);
  json_t *op = ret == EXIT_OK ? json_incref(r.json) : NULL;
  reply_free(&r);
  if (ret != EXIT_OK)
    return ret;
  if (inv_flag(inv, "no-wait")) {
    output_print(s, op, NULL, NULL);
    json_decref(op);
    return EXIT_OK;
  }
  ret = follow(s, inv->pos[1], &op);
  if (ret == EXIT_OK) {
    const char *st = json_string_value(json_object_get(op, "status"));
    if (st && !strcmp(st, "succeeded")) {
      const char *args[] = {inv->pos[0], inv->pos[1]};
      ret = call_print(s, "GET",
                       fill_path(V "/storage/pools/{}/images/{}", args, NULL),
                       NULL, NULL, inv->cmd->cols);
    } else {
      ret = op_failed(op);
    }
  }
  json_decref(op);
  return ret;
}

/* Every pool's images, each with its pool, at most p->limit of them; a
 * pool without an image cache (501) is left out. */
static int list_all(const struct settings *s, const struct paging *p) {
  json_t *pools = NULL, *all = json_array(), *pool;
  struct settings quiet = *s;
  quiet.quiet = true;
  struct paging every = {.chunk = p->chunk};
  int ret = list_fetch(s, V "/storage/pools", "pools", &every, &pools, NULL);
  if (ret != EXIT_OK) {
    json_decref(all);
    return ret;
  }
  size_t i;
  json_array_foreach(json_object_get(pools, "pools"), i, pool) {
    struct paging rest = *p;
    if (p->limit && (rest.limit -= (long)json_array_size(all)) <= 0)
      break;
    const char *name = json_string_value(json_object_get(pool, "name"));
    _cleanup_free_ char *path =
        name ? fill_path(V "/storage/pools/{}/images", &name, NULL) : NULL;
    json_t *got = NULL, *img;
    struct reply r = {0};
    int rc =
        path ? list_fetch(&quiet, path, "images", &rest, &got, &r) : EXIT_ERROR;
    size_t j;
    json_array_foreach(json_object_get(got, "images"), j, img) {
      json_object_set_new(img, "pool", json_string(name));
      json_array_append(all, img);
    }
    if (rc != EXIT_OK && r.status != 501)
      ret = r.status ? http_report(&r) : rc; /* no answer: said already */
    json_decref(got);
    reply_free(&r);
  }
  json_decref(pools);
  json_t *v = json_pack("{s:o}", "images", all);
  output_print(s, v, "images", image_all_cols);
  json_decref(v);
  return ret;
}

int image_list(const struct settings *s, struct invocation *inv) {
  struct paging p;
  if (list_paging(inv, &p))
    return EXIT_USAGE;
  if (inv->n_pos == 0)
    return list_all(s, &p);
  return list_print(s, fill_path(V "/storage/pools/{}/images", inv->pos, NULL),
                    inv->cmd->list_key, inv->cmd->cols, &p);
}
