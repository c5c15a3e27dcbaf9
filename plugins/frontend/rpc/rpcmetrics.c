/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The gRPC front-end's per-method metrics: see rpcmetrics.h. */
#include <config.h>

#include "rpcmetrics.h"

#include <stdlib.h>

#include "h2metrics.h"
#include "histogram.h"

/* The codes as grpc-go's codes.Code.String() spells them (the label values
 * dashboards built on go-grpc-prometheus expect). */
static const char *const codes[] = {"OK",
                                    "Canceled",
                                    "Unknown",
                                    "InvalidArgument",
                                    "DeadlineExceeded",
                                    "NotFound",
                                    "AlreadyExists",
                                    "PermissionDenied",
                                    "ResourceExhausted",
                                    "FailedPrecondition",
                                    "Aborted",
                                    "OutOfRange",
                                    "Unimplemented",
                                    "Internal",
                                    "Unavailable",
                                    "DataLoss",
                                    "Unauthenticated"};
#define N_CODES (sizeof codes / sizeof codes[0])

struct rpcmetrics {
  struct h2m *m;
  rpcmetrics_route_fn names;
  const void *opaque;
  const char *instance;
};

struct rpcmetrics *rpcmetrics_new(size_t n_routes, rpcmetrics_route_fn names,
                                  const void *opaque) {
  struct rpcmetrics *rm = calloc(1, sizeof *rm);
  if (!rm)
    return NULL;
  rm->names = names;
  rm->opaque = opaque;
  if (!(rm->m = h2m_new(n_routes, N_CODES))) {
    free(rm);
    return NULL;
  }
  return rm;
}

void rpcmetrics_free(struct rpcmetrics *rm) {
  if (!rm)
    return;
  h2m_free(rm->m);
  free(rm);
}

void rpcmetrics_start(struct rpcmetrics *rm, size_t route) {
  if (rm)
    h2m_start(rm->m, route);
}

void rpcmetrics_end(struct rpcmetrics *rm, size_t route, int code,
                    uint64_t us) {
  if (rm)
    h2m_end(rm->m, route,
            code >= 0 && (size_t)code < N_CODES ? (size_t)code : 2, us);
}

static void put_labels(FILE *f, const void *opaque, size_t route, size_t slot) {
  const struct rpcmetrics *rm = opaque;
  const char *service, *method, *type;
  rm->names(rm->opaque, route, &service, &method, &type);
  fputs("instance=\"", f);
  prom_put_label(f, rm->instance);
  fprintf(f, "\",grpc_type=\"%s\",grpc_service=\"", type);
  prom_put_label(f, service);
  fputs("\",grpc_method=\"", f);
  prom_put_label(f, method);
  fputc('"', f);
  if (slot < N_CODES)
    fprintf(f, ",grpc_code=\"%s\"", codes[slot]);
}

static const struct h2m_families families = {
    .started = "grpc_server_started_total",
    .started_help = "RPCs started on the server, by method.",
    .ended = "grpc_server_handled_total",
    .ended_help = "RPCs completed on the server, by method and status code.",
    .seconds = "grpc_server_handling_seconds",
    .seconds_help =
        "How long the server took to handle RPCs (to the end of "
        "a stream for streaming ones), by method.",
    .labels = put_labels,
};

void rpcmetrics_publish(struct rpcmetrics *rm, const struct vmh_host *host,
                        const struct vmh_instance *inst) {
  rm->instance = host->instance_name(inst);
  h2m_publish(rm->m, host, inst, &families, rm);
}
