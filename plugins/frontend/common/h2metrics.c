/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Request metrics of the HTTP front-ends: see h2metrics.h. */
#include <config.h>

#include "h2metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "histogram.h"

/* Latency buckets, in microseconds: 0.5 ms to 10 s. */
static const struct hist_layout layout = {
    .per_second = 1000000,
    .n_bounds = 11,
    .bounds = {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 500000,
               1000000, 10000000},
};

struct h2m_route {
  _Atomic uint64_t started;
  struct hist latency;
};

struct h2m {
  size_t n_routes, n_slots;
  const struct h2m_families *fam; /* h2m_publish's */
  const void *opaque;
  struct h2m_route *routes;
  _Atomic uint64_t *ended; /* n_routes × n_slots */
};

struct h2m *h2m_new(size_t n_routes, size_t n_slots) {
  struct h2m *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  m->n_routes = n_routes;
  m->n_slots = n_slots;
  size_t n_ended = n_routes * n_slots;
  m->routes = calloc(n_routes + 1, sizeof *m->routes);
  m->ended = calloc(n_ended + 1, sizeof *m->ended);
  if (!m->routes || !m->ended) {
    h2m_free(m);
    return NULL;
  }
  return m;
}

void h2m_free(struct h2m *m) {
  if (!m)
    return;
  free(m->routes);
  free(m->ended);
  free(m);
}

void h2m_start(struct h2m *m, size_t route) {
  if (m && route < m->n_routes)
    atomic_fetch_add_explicit(&m->routes[route].started, 1,
                              memory_order_relaxed);
}

void h2m_end(struct h2m *m, size_t route, size_t slot, uint64_t us) {
  if (!m || route >= m->n_routes || slot >= m->n_slots)
    return;
  atomic_fetch_add_explicit(&m->ended[route * m->n_slots + slot], 1,
                            memory_order_relaxed);
  hist_observe(&m->routes[route].latency, &layout, us);
}

uint64_t h2m_since_us(uint64_t start_us) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  uint64_t now = (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
  return now > start_us ? now - start_us : 0;
}

static void put_series(FILE *f, const char *name, h2m_labels_fn labels,
                       const void *opaque, size_t route, size_t slot,
                       uint64_t v) {
  fprintf(f, "%s{", name);
  labels(f, opaque, route, slot);
  fprintf(f, "} %" PRIu64 "\n", v);
}

static void write_counter(FILE *f, const struct h2m *m, const char *name,
                          const char *help, h2m_labels_fn labels,
                          const void *opaque) {
  prom_put_family(f, name, "counter", help);
  for (size_t r = 0; r < m->n_routes; r++)
    for (size_t s = 0; s < m->n_slots; s++) {
      uint64_t v = atomic_load_explicit(&m->ended[r * m->n_slots + s],
                                        memory_order_relaxed);
      if (v)
        put_series(f, name, labels, opaque, r, s, v);
    }
}

static void write_started(FILE *f, const struct h2m *m, const char *name,
                          const char *help, h2m_labels_fn labels,
                          const void *opaque) {
  prom_put_family(f, name, "counter", help);
  for (size_t r = 0; r < m->n_routes; r++) {
    uint64_t v =
        atomic_load_explicit(&m->routes[r].started, memory_order_relaxed);
    if (v)
      put_series(f, name, labels, opaque, r, SIZE_MAX, v);
  }
}

/* hist_write's labels: the route's, without a slot. */
struct hist_labels {
  h2m_labels_fn labels;
  const void *opaque;
  size_t route;
};

static void put_hist_labels(FILE *f, const void *opaque) {
  const struct hist_labels *h = opaque;
  h->labels(f, h->opaque, h->route, SIZE_MAX);
}

static void write_histogram(FILE *f, const struct h2m *m, const char *name,
                            const char *help, h2m_labels_fn labels,
                            const void *opaque) {
  prom_put_family(f, name, "histogram", help);
  for (size_t r = 0; r < m->n_routes; r++) {
    struct hist_labels h = {labels, opaque, r};
    if (hist_count(&m->routes[r].latency, &layout))
      hist_write(f, name, put_hist_labels, &h, &m->routes[r].latency, &layout);
  }
}

static void render(void *opaque,
                   void (*write)(void *wopaque, const char *text, size_t len),
                   void *wopaque) {
  const struct h2m *m = opaque;
  const struct h2m_families *fam = m->fam;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f)
    return;
  if (fam->started)
    write_started(f, m, fam->started, fam->started_help, fam->labels,
                  m->opaque);
  write_counter(f, m, fam->ended, fam->ended_help, fam->labels, m->opaque);
  write_histogram(f, m, fam->seconds, fam->seconds_help, fam->labels,
                  m->opaque);
  if (fclose(f) == 0)
    write(wopaque, buf, len);
  free(buf);
}

void h2m_publish(struct h2m *m, const struct vmh_host *host,
                 const struct vmh_instance *inst,
                 const struct h2m_families *fam, const void *opaque) {
  m->fam = fam;
  m->opaque = opaque;
  host->metrics_source(inst, render, m);
}

void h2m_withdraw(const struct vmh_host *host,
                  const struct vmh_instance *inst) {
  host->metrics_source(inst, NULL, NULL);
}
