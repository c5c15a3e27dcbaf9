/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* monotime — the monotonic clock in milliseconds, as cheaply as it can be
 * read: for figures kept "at most once a second" on request paths, where a
 * tick's (a few ms) precision is enough. */
#ifndef VMH_MONOTIME_H
#define VMH_MONOTIME_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC_COARSE in ms (the vDSO's, no system call). */
static inline uint64_t mono_coarse_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

#endif
