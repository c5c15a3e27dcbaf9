/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A growable array of pointers: see ptrvec.h. */
#include <config.h>

#include "ptrvec.h"

#include <stdlib.h>
#include <string.h>

int ptrvec_insert(struct ptrvec *vec, size_t at, void *item) {
  if (vec->n == vec->cap) {
    size_t cap = vec->cap ? vec->cap * 2 : 8;
    void **v = realloc(vec->v, cap * sizeof *v);
    if (v == NULL)
      return -1;
    vec->v = v;
    vec->cap = cap;
  }
  memmove(vec->v + at + 1, vec->v + at, (vec->n - at) * sizeof *vec->v);
  vec->v[at] = item;
  vec->n++;
  return 0;
}

int ptrvec_push(struct ptrvec *vec, void *item) {
  return ptrvec_insert(vec, vec->n, item);
}

void *ptrvec_remove(struct ptrvec *vec, size_t at) {
  void *item = vec->v[at];
  memmove(vec->v + at, vec->v + at + 1, (vec->n - at - 1) * sizeof *vec->v);
  vec->n--;
  return item;
}

void ptrvec_free(struct ptrvec *vec) {
  free(vec->v);
  vec->v = NULL;
  vec->n = vec->cap = 0;
}
