/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* readiness — the answer of readiness probes (REST /readyz, gRPC
 * grpc.health.v1.Health/Check) kept for a second after the core's health
 * said "ready".  Load balancers and orchestrators probe often, and each
 * probe would otherwise take a core worker for the instances' health
 * checks: a thread hand-off each way and a backend call per probe.
 *
 * "Not ready" is never kept: a node that recovers says so at the next
 * probe, one whose backend fails says so within READINESS_KEEP_MS.
 * Starting and draining are seen at once (core->ready() is read on every
 * probe).  The detail (GET /api/v1/host/health, vmhost.v1 HealthCheck)
 * always asks the core. */
#ifndef VMH_READINESS_H
#define VMH_READINESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <vmhost/vmhost-plugin.h>

#define READINESS_KEEP_MS 1000

/* Zeroed: nothing known (one per front-end instance). */
struct readiness {
  _Atomic uint64_t until_ms; /* CLOCK_MONOTONIC_COARSE */
};

/* Whether the node is known ready without asking the core's health: it
 * serves (core->ready()) and a health check said ready less than
 * READINESS_KEEP_MS ago.  Any thread. */
bool readiness_known(struct readiness *rd, const struct vmh_core *core);
/* What a health check of the core said (code 0 and core->ready(): ready). */
void readiness_note(struct readiness *rd, bool ready);

#endif
