/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Request metrics of the HTTP front-ends (rest, rpc): for each route of a
 * fixed table, a started counter, a counter per outcome slot (an HTTP
 * status, a gRPC code) and a latency histogram, counted lock-free and
 * rendered in the Prometheus text format for host->metrics_source.  Label
 * cardinality is the routes × the slots: route templates, never raw paths. */
#ifndef VMHOST_H2METRICS_H
#define VMHOST_H2METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <vmhost/host.h>

struct h2m;

/* A table for n_routes routes with n_slots outcomes each; NULL when out of
 * memory.  Freed by h2m_free (NULL is fine). */
struct h2m *h2m_new(size_t n_routes, size_t n_slots);
void h2m_free(struct h2m *m);

/* A request of `route` began (the started counter). */
void h2m_start(struct h2m *m, size_t route);
/* A request of `route` ended with outcome `slot` after `us` microseconds.
 * Out-of-range routes or slots are not counted. */
void h2m_end(struct h2m *m, size_t route, size_t slot, uint64_t us);

/* Writes a series' labels (escaped, without braces) for the route (and
 * the slot, for the counters; SIZE_MAX for the started counter and the
 * histogram). */
typedef void (*h2m_labels_fn)(FILE *f, const void *opaque, size_t route,
                              size_t slot);

/* The families a table renders: the started counter (name NULL: none),
 * the counter per outcome, the latency histogram; `labels` writes the
 * series' labels.  Static: h2m_publish keeps the pointer. */
struct h2m_families {
  const char *started, *started_help;
  const char *ended, *ended_help;
  const char *seconds, *seconds_help;
  h2m_labels_fn labels;
};

/* Render the table on every scrape from now on (host->metrics_source of
 * inst; `opaque` goes to labels), until h2m_withdraw. */
void h2m_publish(struct h2m *m, const struct vmh_host *host,
                 const struct vmh_instance *inst,
                 const struct h2m_families *fam, const void *opaque);
void h2m_withdraw(const struct vmh_host *host, const struct vmh_instance *inst);

/* Microseconds since `start_us` (CLOCK_MONOTONIC, as h2s_start_us). */
uint64_t h2m_since_us(uint64_t start_us);

#endif
