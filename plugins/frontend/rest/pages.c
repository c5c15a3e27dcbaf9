/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Lists of named objects in pages: volumes, snapshots, pools, networks,
 * images.
 * They come from the backends whole (the storage and hypervisor ABIs have
 * no cursor, and a pool's or a VM's list is thousands at most, where the
 * VMs are the core's own records): the answer is sorted by name and cut
 * after the name the page token holds (vmpage.h), so a walk through the
 * pages is complete and without duplicates while objects come and go.
 *
 *   ?limit=N          at most N (1…; above 1000 taken as 1000), and
 *                     next_page_token ("" on the last page)
 *   ?page_token=T     the page after the one T ended (alone: pages of 1000)
 *
 * Without either, every object, in name order, and no next_page_token. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "rest.h"

int rest_page_limit(struct call *k, const char *val, uint32_t *page) {
  char *end;
  unsigned long n = strtoul(val, &end, 10);
  if (!*val || *end || *val == '-' || n < 1 || strlen(val) > 9)
    return rest_bad(k,
                    "'limit' must be a whole number, 1 or more (pages hold "
                    "at most %d)",
                    VMPAGE_MAX_SIZE);
  *page = (uint32_t)n;
  return 0;
}

/* The list's answer: its objects of the page, in name order. */
static void finish_named(struct call *k, int code, const char *message) {
  if (code) {
    rest_answer_code(k, code, message);
    return;
  }
  size_t n = json_array_size(k->res), m;
  const char **names = calloc(n ? n : 1, sizeof *names);
  size_t *order = calloc(n ? n : 1, sizeof *order);
  json_t *page = json_array(), *v = json_object();
  char token[VMPAGE_NAMED_TOKEN_LEN + 1] = "";
  bool more;
  if (!names || !order || !page || !v)
    goto oom;
  for (size_t i = 0; i < n; i++)
    names[i] =
        json_string_value(json_object_get(json_array_get(k->res, i), "name"));
  m = vmpage_named_select(&k->named, names, n, order, &more);
  for (size_t i = 0; i < m; i++)
    if (json_array_append(page, json_array_get(k->res, order[i])) < 0)
      goto oom;
  if (more && vmpage_named_token(&k->named, names[order[m - 1]], token) < 0) {
    rest_answer_code(k, VMH_EINTERNAL, "cannot make a page token");
    goto out;
  }
  if (json_object_set_new(v, k->key, page) < 0 ||
      (k->paged &&
       json_object_set_new(v, "next_page_token", json_string(token)) < 0)) {
    page = NULL;
    goto oom;
  }
  free(names);
  free(order);
  rest_answer_json(k, 200, v);
  return;
oom:
  rest_answer_code(k, VMH_ENOMEM, "out of memory");
  json_decref(page);
out:
  json_decref(v);
  free(names);
  free(order);
}

int rest_named_list(struct call *k, enum vmpage_kind kind, const char *key,
                    const char *scope) {
  const char *q = h2s_query(k->req), *token = NULL;
  char *text = strdup(q ? q : ""), *cur = text, *name, *val, err[256];
  uint32_t page = 0;
  int r;
  if (!text)
    return rest_refused(k, VMH_ENOMEM);
  while ((r = query_next(&cur, &name, &val)) != 0) {
    if (r < 0) {
      r = rest_bad(k, "bad %%-escape in the query at '%.60s'", name);
      goto out;
    }
    if (!strcmp(name, "limit")) {
      if ((r = rest_page_limit(k, val, &page)) < 0)
        goto out;
    } else if (!strcmp(name, "page_token")) {
      token = val;
    } else {
      r = rest_bad(k, "unknown query parameter '%.60s' (limit, page_token)",
                   name);
      goto out;
    }
  }
  r = 0;
  k->paged = page || token;
  if (vmpage_named_begin(&k->named, kind, scope, page, token, err, sizeof err) <
      0)
    r = rest_bad(k, "%s", err);
  k->shape = LIST;
  k->key = key;
  k->finish = finish_named;
out:
  free(text);
  return r;
}
