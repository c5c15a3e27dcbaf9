/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GET /api/v1/host/resources (the core's admission numbers) and the host
 * telemetry of GET /api/v1/host/metrics, as JSON. */
#ifndef VMHOST_REST_RESOURCES_H
#define VMHOST_REST_RESOURCES_H

#include <jansson.h>
#include <vmhost/core.h>

/* The body of GET /api/v1/host/resources (openapi.yaml, HostResources), a
 * new reference the caller owns; NULL when out of memory, or when the core
 * has no host_resources (*code then VMH_ENOTSUP, else VMH_ENOMEM). */
json_t *rest_host_resources(const struct vmh_core *core, int *code);

/* Add to `into` (GET /api/v1/host/metrics) "sample", the newest host
 * sample (null before the first), and "history", the samples kept, oldest
 * first, in short.  0, VMH_ENOTSUP (a core without host_samples) or
 * VMH_ENOMEM. */
int rest_host_samples(const struct vmh_core *core, json_t *into);

#endif
