/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The gRPC front-end's per-method metrics, named as go-grpc-prometheus
 * names them (h2metrics.h underneath):
 *   grpc_server_started_total{instance,grpc_type,grpc_service,grpc_method}
 *   grpc_server_handled_total{…,grpc_code}
 *   grpc_server_handling_seconds{…} (histogram)
 * for the methods of the route table (unknown methods are not counted:
 * their names are the caller's). */
#ifndef VMHOST_RPC_RPCMETRICS_H
#define VMHOST_RPC_RPCMETRICS_H

#include <stddef.h>
#include <stdint.h>
#include <vmhost/host.h>

struct rpcmetrics;

/* The full service name, the method name and the grpc_type ("unary",
 * "server_stream", "bidi_stream") of route i. */
typedef void (*rpcmetrics_route_fn)(const void *opaque, size_t i,
                                    const char **service, const char **method,
                                    const char **type);

struct rpcmetrics *rpcmetrics_new(size_t n_routes, rpcmetrics_route_fn names,
                                  const void *opaque);
void rpcmetrics_free(struct rpcmetrics *m);

void rpcmetrics_start(struct rpcmetrics *m, size_t route);
/* Ended with gRPC status `code` after `us` microseconds. */
void rpcmetrics_end(struct rpcmetrics *m, size_t route, int code, uint64_t us);

/* Renders on every scrape from now on (until h2m_withdraw). */
void rpcmetrics_publish(struct rpcmetrics *m, const struct vmh_host *host,
                        const struct vmh_instance *inst);

#endif
