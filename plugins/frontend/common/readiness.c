/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Readiness probes answered from a recent health check: see readiness.h. */
#include <config.h>

#include "readiness.h"

#include <time.h>

static uint64_t coarse_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

bool readiness_known(struct readiness *rd, const struct vmh_core *core) {
  return coarse_ms() <
             atomic_load_explicit(&rd->until_ms, memory_order_relaxed) &&
         core->ready();
}

void readiness_note(struct readiness *rd, bool ready) {
  atomic_store_explicit(&rd->until_ms,
                        ready ? coarse_ms() + READINESS_KEEP_MS : 0,
                        memory_order_relaxed);
}
