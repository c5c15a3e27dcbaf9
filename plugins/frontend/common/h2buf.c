/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2buf — byte buffers and the bodies answers share
 * (see h2int.h and h2server.h). */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "h2int.h"

struct h2s_body *h2s_body_wrap(char *data, size_t len,
                               void (*release)(char *data, size_t len)) {
  struct h2s_body *b = malloc(sizeof *b);
  if (!b) {
    if (release)
      release(data, len);
    else
      free(data);
    return NULL;
  }
  atomic_init(&b->refs, 1);
  b->data = data;
  b->len = len;
  b->release = release;
  return b;
}

struct h2s_body *h2s_body_take(char *data, size_t len) {
  return h2s_body_wrap(data, len, NULL);
}

void h2s_body_unref(struct h2s_body *b) {
  if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
    if (b->release)
      b->release(b->data, b->len);
    else
      free(b->data);
    free(b);
  }
}

/* A shared body's bytes copied into memory of the buf's own. */
static int buf_own(struct buf *b) {
  size_t n = b->len - b->off;
  char *p = malloc(n ? n : 1);
  if (!p)
    return -1;
  memcpy(p, b->p + b->off, n);
  h2s_body_unref(b->shared);
  *b = (struct buf){.p = p, .len = n, .cap = n ? n : 1};
  return 0;
}

int h2buf_add(struct buf *b, const void *d, size_t n) {
  if (b->shared && buf_own(b) < 0)
    return -1;
  if (b->off && b->off == b->len)
    b->off = b->len = 0;
  if (b->len + n > b->cap) {
    if (b->off) {
      memmove(b->p, b->p + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
    /* The first block as large as asked (a whole answer comes at once),
     * at least H2BUF_MIN; then doubling. */
    size_t cap = b->cap ? b->cap : n > H2BUF_MIN ? n : H2BUF_MIN;
    while (cap < b->len + n)
      cap *= 2;
    if (cap != b->cap) {
      char *p = realloc(b->p, cap);
      if (!p)
        return -1;
      b->p = p;
      b->cap = cap;
    }
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

void h2buf_free(struct buf *b) {
  if (b->shared)
    h2s_body_unref(b->shared);
  else
    free(b->p);
  *b = (struct buf){0};
}

void h2buf_idle(struct buf *b) {
  if (!b->shared && b->off == b->len && b->cap > H2BUF_KEEP)
    h2buf_free(b);
}
