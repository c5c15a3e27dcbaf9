/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The REST front-end's request metrics (h2metrics.h underneath):
 *   vmhost_http_requests_total{instance,method,route,code}
 *   vmhost_http_request_duration_seconds{instance,method,route}
 * per route template of the route table (and route "unmatched" for
 * requests no route took), rendered through host->metrics_source. */
#ifndef VMHOST_REST_RESTMETRICS_H
#define VMHOST_REST_RESTMETRICS_H

#include <stddef.h>
#include <stdint.h>
#include <vmhost/host.h>

struct restmetrics;

/* The method and template of route i (i < n_routes). */
typedef void (*restmetrics_route_fn)(size_t i, const char **method,
                                     const char **pattern);

/* Metrics for n_routes routes (index n_routes: no route).  NULL when out
 * of memory. */
struct restmetrics *restmetrics_new(size_t n_routes,
                                    restmetrics_route_fn route_names);
void restmetrics_free(struct restmetrics *m);

/* A request answered with HTTP `status` after `us` microseconds. */
void restmetrics_count(struct restmetrics *m, size_t route, int status,
                       uint64_t us);

/* Renders on every scrape from now on (host->metrics_source), until
 * h2m_withdraw. */
void restmetrics_publish(struct restmetrics *m, const struct vmh_host *host,
                         const struct vmh_instance *inst);

#endif
