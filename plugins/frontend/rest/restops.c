/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The REST front-end's operations: query parameters (restops.h). */
#include <config.h>

#include "restops.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vmhost/vmhost-plugin.h>

#include "abijson.h"

#define MAX_WAIT_S 3600
#define DEFAULT_WAIT_S 30
#define MAX_LIMIT 100000

/* Call fn(key, value) for each key=value of q (cut in place); -1 at the
 * first refusal (err set by fn or here). */
typedef int (*param_fn)(void *opaque, const char *key, const char *value,
                        char *err, size_t len);
static int each_param(const char *query, param_fn fn, void *opaque, char *err,
                      size_t len) {
  if (!query || !*query)
    return 0;
  char buf[512];
  if (strlen(query) >= sizeof buf) {
    snprintf(err, len, "the query is too long");
    return -1;
  }
  strcpy(buf, query);
  char *save = NULL;
  for (char *p = strtok_r(buf, "&", &save); p; p = strtok_r(NULL, "&", &save)) {
    char *eq = strchr(p, '=');
    if (!eq) {
      snprintf(err, len, "query parameter '%.64s' has no value", p);
      return -1;
    }
    *eq = '\0';
    if (strchr(eq + 1, '%') || strchr(eq + 1, '+')) {
      snprintf(err, len,
               "query parameter '%.64s': encoded characters are "
               "not taken here",
               p);
      return -1;
    }
    if (fn(opaque, p, eq + 1, err, len) < 0)
      return -1;
  }
  return 0;
}

static int parse_bool(const char *key, const char *v, bool *ret, char *err,
                      size_t len) {
  if (!strcmp(v, "true") || !strcmp(v, "1"))
    *ret = true;
  else if (!strcmp(v, "false") || !strcmp(v, "0"))
    *ret = false;
  else {
    snprintf(err, len, "'%s' must be true or false, not '%.32s'", key, v);
    return -1;
  }
  return 0;
}

static int parse_uint(const char *key, const char *v, uint32_t max,
                      uint32_t *ret, char *err, size_t len) {
  char *end;
  unsigned long n = strtoul(v, &end, 10);
  if (!*v || *end || v[0] == '-' || v[0] == '+' || n > max) {
    snprintf(err, len,
             "'%s' must be an integer from 0 to %" PRIu32 ", not '%.32s'", key,
             max, v);
    return -1;
  }
  *ret = (uint32_t)n;
  return 0;
}

static int wait_param(void *opaque, const char *key, const char *value,
                      char *err, size_t len) {
  uint32_t *flags = opaque;
  bool wait;
  if (strcmp(key, "wait")) {
    snprintf(err, len,
             "unknown query parameter '%.64s' (only wait=true|"
             "false)",
             key);
    return -1;
  }
  if (parse_bool(key, value, &wait, err, len) < 0)
    return -1;
  if (wait)
    *flags &= ~VMH_ASYNC;
  else
    *flags |= VMH_ASYNC;
  return 0;
}

int restops_wait_query(const char *query, uint32_t *flags, char *err,
                       size_t len) {
  return each_param(query, wait_param, flags, err, len);
}

static int list_param(void *opaque, const char *key, const char *value,
                      char *err, size_t len) {
  struct restops_filter *f = opaque;
  if (!strcmp(key, "vm")) {
    size_t n = strlen(value);
    if (!n || n >= sizeof f->vm ||
        (!vmh_name_valid(value) &&
         !(n == VMH_ID_LEN && strspn(value, "0123456789abcdef-") == n))) {
      snprintf(err, len, "'vm' must be a VM name or id");
      return -1;
    }
    memcpy(f->vm, value, n + 1);
    return 0;
  }
  if (!strcmp(key, "status")) {
    for (uint32_t s = VMH_OP_QUEUED; s <= VMH_OP_CANCELLED; s++)
      if (!strcmp(value, abij_operation_status(s))) {
        f->status = s;
        return 0;
      }
    snprintf(err, len,
             "'status' must be queued, running, succeeded, failed "
             "or cancelled, not '%.32s'",
             value);
    return -1;
  }
  if (!strcmp(key, "limit"))
    return parse_uint(key, value, MAX_LIMIT, &f->limit, err, len);
  snprintf(err, len, "unknown query parameter '%.64s' (vm, status, limit)",
           key);
  return -1;
}

int restops_list_query(const char *query, struct restops_filter *ret, char *err,
                       size_t len) {
  memset(ret, 0, sizeof *ret);
  return each_param(query, list_param, ret, err, len);
}

static int timeout_param(void *opaque, const char *key, const char *value,
                         char *err, size_t len) {
  uint32_t s;
  if (strcmp(key, "timeout")) {
    snprintf(err, len,
             "unknown query parameter '%.64s' (only timeout, in "
             "seconds)",
             key);
    return -1;
  }
  if (parse_uint(key, value, MAX_WAIT_S, &s, err, len) < 0)
    return -1;
  *(uint32_t *)opaque = s * 1000;
  return 0;
}

int restops_wait_timeout(const char *query, uint32_t *timeout_ms, char *err,
                         size_t len) {
  *timeout_ms = DEFAULT_WAIT_S * 1000;
  return each_param(query, timeout_param, timeout_ms, err, len);
}

void restops_location(char *buf, size_t len, const char *id) {
  snprintf(buf, len, "/api/v1/operations/%s", id ? id : "");
}
