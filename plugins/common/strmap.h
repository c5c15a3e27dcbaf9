/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A hash map from strings to pointers (libvmhutil): the indexes that find a
 * record by id or by name in O(1) however many records there are.
 *
 * Keys are borrowed, not copied: each key must stay valid and unchanged
 * while it is in the map (it is normally a field of the value itself).
 * The hash is SipHash-1-3 under a key drawn once per process from
 * getrandom(), so a client choosing names cannot make every name land in
 * one bucket.  Not thread-safe: the caller's lock guards the map. */
#ifndef VMHOST_UTIL_STRMAP_H
#define VMHOST_UTIL_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
  const char *key; /* NULL: empty */
  void *value;
  uint64_t hash;
};

/* Zero-initialised is empty.  Owns the slot array, not keys or values. */
struct strmap {
  struct strmap_slot *slots;
  size_t cap; /* 0 or a power of two */
  size_t n;
};

/* Map key to value, replacing what key mapped to.  0, or -1 when out of
 * memory (the map is unchanged). */
int strmap_put(struct strmap *m, const char *key, void *value);
/* What key maps to, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
/* Unmap key; returns what it mapped to, or NULL when it was not there. */
void *strmap_remove(struct strmap *m, const char *key);
/* Make room for n keys in all, so that n puts cannot fail.  0 or -1. */
int strmap_reserve(struct strmap *m, size_t n);
/* Free the slots (not keys or values); m is empty again. */
void strmap_free(struct strmap *m);

#endif
