/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Readiness probes answered from a recent health check: see readiness.h. */
#include <config.h>

#include "readiness.h"

#include "monotime.h"

bool readiness_known(struct readiness *rd, const struct vmh_core *core) {
  return mono_coarse_ms() <
             atomic_load_explicit(&rd->until_ms, memory_order_relaxed) &&
         core->ready();
}

void readiness_note(struct readiness *rd, bool ready) {
  atomic_store_explicit(&rd->until_ms,
                        ready ? mono_coarse_ms() + READINESS_KEEP_MS : 0,
                        memory_order_relaxed);
}
