/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmhostctl's lists, fetched in pages: `?limit=` asks a page, the answer's
 * next_page_token is passed back as `?page_token=` until it is empty, so
 * that no answer holds more than a page however long the list (the
 * server's tokens keep a walk complete and free of duplicates while
 * objects come and go).  The pages are merged into the one answer an
 * unpaged request would have given ({"vms": [...]}), so every output form
 * prints as it did.  A server that answers without next_page_token (a
 * list it does not page) gave everything at once. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl.h"

/* The server's largest page (VMPAGE_MAX_SIZE): a larger limit is taken as
 * it. */
#define SERVER_PAGE_MAX 1000

int list_paging(const struct invocation *inv, struct paging *p) {
  json_int_t n;
  const char *v;
  *p = (struct paging){.limit = 0, .chunk = LIST_CHUNK_DEFAULT};
  if ((v = inv_opt(inv, "limit"))) {
    if (parse_int("--limit", v, 1, 1000000000, &n))
      return EXIT_USAGE;
    p->limit = n;
  }
  if ((v = inv_opt(inv, "chunk-size"))) {
    if (parse_int("--chunk-size", v, 0, SERVER_PAGE_MAX, &n))
      return EXIT_USAGE;
    p->chunk = n;
  }
  return 0;
}

/* The size of the next page to ask for (0: ask for no page) when have
 * items were taken. */
static long page_size(const struct paging *p, long have) {
  long want = p->chunk;
  if (p->limit && (!want || p->limit - have < want))
    want = p->limit - have;
  return want > SERVER_PAGE_MAX ? SERVER_PAGE_MAX : want;
}

/* path with this page's query after it (free it); NULL: out of memory. */
static char *page_path(const char *path, long size, const char *token) {
  _cleanup_free_ char *t = token ? http_escape(token) : NULL;
  char *out = NULL;
  const char *sep = strchr(path, '?') ? "&" : "?";
  if (token && !t)
    return NULL;
  if (!size && !t)
    return strdup(path);
  int n = size && t ? asprintf(&out, "%s%slimit=%ld&page_token=%s", path, sep,
                               size, t)
          : size    ? asprintf(&out, "%s%slimit=%ld", path, sep, size)
                    : asprintf(&out, "%s%spage_token=%s", path, sep, t);
  return n < 0 ? NULL : out;
}

/* The page answer appended to *all (the first page: *all). */
static int merge(json_t **all, json_t *answer, const char *list_key) {
  if (!*all) {
    *all = json_incref(answer);
    return 0;
  }
  return json_array_extend(json_object_get(*all, list_key),
                           json_object_get(answer, list_key));
}

/* The page after token (NULL: the first) into *all (its items appended;
 * the first page's other members kept), *next its next_page_token (NULL:
 * the last).  EXIT_OK or the exit code, the error printed (unless
 * s->quiet); an error answer is left in *failed when failed is not NULL. */
static int one_page(const struct settings *s, const char *path,
                    const char *list_key, long size, const char *token,
                    char **next_token, json_t **all, struct reply *failed) {
  struct reply r;
  _cleanup_free_ char *p = page_path(path, size, token);
  if (!p) {
    fprintf(stderr, "vmhostctl: out of memory\n");
    return EXIT_ERROR;
  }
  int ret = http_call(s, "GET", p, NULL, &r);
  json_t *items = json_object_get(r.json, list_key);
  if (ret == EXIT_OK && !json_is_array(items)) {
    fprintf(stderr, "vmhostctl: the answer to GET %s has no list '%s'\n", p,
            list_key);
    ret = EXIT_ERROR;
  }
  if (ret == EXIT_OK) {
    const char *next =
        json_string_value(json_object_get(r.json, "next_page_token"));
    bool more = next && *next;
    if (more && (!json_array_size(items) || (token && !strcmp(next, token)))) {
      /* A walk that does not advance would ask for pages forever. */
      fprintf(stderr,
              "vmhostctl: GET %s: the server's pages do not advance (%s)\n", p,
              json_array_size(items) ? "the same page token again"
                                     : "an empty page, and more to come");
      ret = EXIT_ERROR;
    } else if (merge(all, r.json, list_key) < 0 ||
               (more && !(*next_token = strdup(next)))) {
      fprintf(stderr, "vmhostctl: out of memory\n");
      ret = EXIT_ERROR;
    }
  }
  if (ret != EXIT_OK && r.status && failed)
    *failed = r;
  else
    reply_free(&r);
  return ret;
}

int list_fetch(const struct settings *s, const char *path, const char *list_key,
               const struct paging *p, json_t **out, struct reply *failed) {
  json_t *all = NULL;
  char *token = NULL, *next;
  long have = 0;
  int ret;
  if (failed)
    memset(failed, 0, sizeof *failed);
  do {
    next = NULL;
    ret = one_page(s, path, list_key, page_size(p, have), token, &next, &all,
                   failed);
    free(token);
    token = next;
    have = (long)json_array_size(json_object_get(all, list_key));
  } while (ret == EXIT_OK && token && (!p->limit || have < p->limit));
  free(token);
  if (ret != EXIT_OK) {
    json_decref(all);
    return ret;
  }
  /* The answer an unpaged request gives: no token, at most limit items (a
   * server that does not page gave them all). */
  json_object_del(all, "next_page_token");
  json_t *items = json_object_get(all, list_key);
  while (p->limit && (long)json_array_size(items) > p->limit)
    json_array_remove(items, json_array_size(items) - 1);
  *out = all;
  return EXIT_OK;
}

int list_print(const struct settings *s, char *path, const char *list_key,
               const struct column *cols, const struct paging *p) {
  json_t *all = NULL;
  if (!path) {
    fprintf(stderr, "vmhostctl: out of memory\n");
    return EXIT_ERROR;
  }
  int ret = list_fetch(s, path, list_key, p, &all, NULL);
  free(path);
  if (ret == EXIT_OK)
    output_print(s, all, list_key, cols);
  json_decref(all);
  return ret;
}
