/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A growable array of pointers (libvmhutil): the lists the plugins keep in
 * memory (VMs, volumes, ports …), in an order they choose. */
#ifndef VMHOST_UTIL_PTRVEC_H
#define VMHOST_UTIL_PTRVEC_H

#include <stddef.h>

/* Zero-initialised is empty.  Owns the array, not the items. */
struct ptrvec {
  void **v;
  size_t n, cap;
};

/* Insert item at `at` (0..n), moving the rest up.  -1 when out of memory
 * (nothing changed).  Never fails when an item was removed since the array
 * last grew: removing then inserting back is safe for undoing a change. */
int ptrvec_insert(struct ptrvec *vec, size_t at, void *item);
int ptrvec_push(struct ptrvec *vec, void *item);
/* Remove and return the item at `at`; the order of the rest is kept. */
void *ptrvec_remove(struct ptrvec *vec, size_t at);
/* Free the array (not the items); vec is empty again. */
void ptrvec_free(struct ptrvec *vec);

#endif
