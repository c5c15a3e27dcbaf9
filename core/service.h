/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The core-service table handed to front-ends (struct vmh_core). */
#ifndef VMHOST_CORE_SERVICE_H
#define VMHOST_CORE_SERVICE_H

#include <vmhost/core.h>

extern const struct vmh_core core_services;

/* Readiness, as core_services.ready() reports it. */
void service_set_ready(int ready);
/* Liveness (health with VMH_HEALTH_LIVENESS): the worker pool counts as
 * wedged once a runnable task has waited this long for a thread. */
void service_set_liveness_stall(unsigned seconds);

#endif
