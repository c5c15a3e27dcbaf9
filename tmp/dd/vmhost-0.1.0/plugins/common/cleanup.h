/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Cleanup helpers for the core and the plugins in this tree (part of
 * libvmhutil, never installed): variables that free themselves when they go
 * out of scope, systemd-style.
 *
 *   _cleanup_free_ char *s = strdup (…);
 *   _cleanup_fclose_ FILE *f = fopen (…);
 *   return steal_ptr (&s);   // hand ownership out
 */
#ifndef VMHOST_UTIL_CLEANUP_H
#define VMHOST_UTIL_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_free(void *p) {
  free(*(void **)p);
}
static inline void cleanup_fclose(FILE **f) {
  if (*f)
    fclose(*f);
}
static inline void cleanup_close(int *fd) {
  if (*fd >= 0)
    close(*fd);
}

#define _cleanup_free_ __attribute__((cleanup(cleanup_free)))
#define _cleanup_fclose_ __attribute__((cleanup(cleanup_fclose)))
#define _cleanup_close_ __attribute__((cleanup(cleanup_close)))

/* Take the pointer out of *pp, leaving NULL, so cleanup does nothing. */
static inline void *steal_ptr(void *pp) {
  void **p = (void **)pp;
  void *r = *p;
  *p = NULL;
  return r;
}

#endif
