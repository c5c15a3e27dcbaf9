/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The REST front-end's request metrics: see restmetrics.h. */
#include <config.h>

#include "restmetrics.h"

#include <stdlib.h>

#include "h2metrics.h"
#include "histogram.h"

/* The statuses the front-end answers, each a code label of its own; any
 * other counts as its class ("5xx"). */
static const int statuses[] = {200, 201, 202, 204, 206, 304, 400, 401,
                               403, 404, 405, 406, 408, 409, 410, 411,
                               412, 413, 414, 415, 416, 422, 429, 431,
                               499, 500, 501, 502, 503, 504, 505};
#define N_STATUSES (sizeof statuses / sizeof statuses[0])
#define N_SLOTS (N_STATUSES + 5) /* then 1xx … 5xx */

struct restmetrics {
  struct h2m *m;
  size_t n_routes;
  restmetrics_route_fn route_names;
  const char *instance; /* the front-end's name */
};

struct restmetrics *restmetrics_new(size_t n_routes,
                                    restmetrics_route_fn route_names) {
  struct restmetrics *rm = calloc(1, sizeof *rm);
  if (!rm)
    return NULL;
  rm->n_routes = n_routes;
  rm->route_names = route_names;
  if (!(rm->m = h2m_new(n_routes + 1, N_SLOTS))) {
    free(rm);
    return NULL;
  }
  return rm;
}

void restmetrics_free(struct restmetrics *rm) {
  if (!rm)
    return;
  h2m_free(rm->m);
  free(rm);
}

static size_t slot_of(int status) {
  for (size_t i = 0; i < N_STATUSES; i++)
    if (statuses[i] == status)
      return i;
  int cls = status / 100;
  return N_STATUSES + (size_t)(cls >= 1 && cls <= 5 ? cls - 1 : 4);
}

void restmetrics_count(struct restmetrics *rm, size_t route, int status,
                       uint64_t us) {
  if (rm)
    h2m_end(rm->m, route, slot_of(status), us);
}

static void put_labels(FILE *f, const void *opaque, size_t route, size_t slot) {
  const struct restmetrics *rm = opaque;
  const char *method = "other", *pattern = "unmatched";
  if (route < rm->n_routes)
    rm->route_names(route, &method, &pattern);
  fputs("instance=\"", f);
  prom_put_label(f, rm->instance);
  fprintf(f, "\",method=\"%s\",route=\"", method);
  prom_put_label(f, pattern);
  fputc('"', f);
  if (slot < N_STATUSES)
    fprintf(f, ",code=\"%d\"", statuses[slot]);
  else if (slot < N_SLOTS)
    fprintf(f, ",code=\"%zuxx\"", slot - N_STATUSES + 1);
}

static const struct h2m_families families = {
    .ended = "vmhost_http_requests_total",
    .ended_help =
        "REST requests answered, by front-end instance, method, "
        "route template and HTTP status.",
    .seconds = "vmhost_http_request_duration_seconds",
    .seconds_help =
        "How long REST requests took until their answer was "
        "handed to the connection, by route template.",
    .labels = put_labels,
};

void restmetrics_publish(struct restmetrics *rm, const struct vmh_host *host,
                         const struct vmh_instance *inst) {
  rm->instance = host->instance_name(inst);
  h2m_publish(rm->m, host, inst, &families, rm);
}
