/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host's resources and newest sample as vmhost.v1 messages: see
 * hostres.h. */
#include <config.h>

#include "hostres.h"

#include <string.h>

static char *copy(struct abij_arena *a, const char *s) {
  if (!s)
    return (char *)protobuf_c_empty_string;
  size_t n = strlen(s) + 1;
  char *d = abij_arena_alloc(a, n);
  return d ? memcpy(d, s, n) : NULL;
}

static Vmhost__V1__ResourceAmount *amount(struct abij_arena *a, uint64_t total,
                                          uint64_t reserved, uint64_t allocated,
                                          uint64_t available) {
  Vmhost__V1__ResourceAmount *m = abij_arena_alloc(a, sizeof *m);
  if (!m)
    return NULL;
  vmhost__v1__resource_amount__init(m);
  m->total = total;
  m->reserved = reserved;
  m->allocated = allocated;
  m->available = available;
  return m;
}

struct pools {
  struct abij_arena *a;
  Vmhost__V1__HostResources *m;
  size_t cap;
};

static void add_pool(void *opaque, const struct vmh_pool_resources *p) {
  struct pools *ps = opaque;
  Vmhost__V1__PoolResources *m = abij_arena_alloc(ps->a, sizeof *m);
  if (!m || ps->m->n_pools == ps->cap)
    return;
  vmhost__v1__pool_resources__init(m);
  m->name = copy(ps->a, p->name);
  m->space = amount(ps->a, p->total, p->reserved, p->allocated, p->available);
  m->sampled_us = p->sampled_us;
  if (m->name && m->space)
    ps->m->pools[ps->m->n_pools++] = m;
}

Vmhost__V1__HostResources *rpc_host_resources(const struct vmh_core *core,
                                              struct abij_arena *a) {
  if (!VMH_HAS_FIELD(core, host_resources) || !core->host_resources)
    return NULL;
  struct vmh_host_resources h = {.struct_size = sizeof h};
  Vmhost__V1__HostResources *m = abij_arena_alloc(a, sizeof *m);
  if (!m || core->host_resources(&h, NULL, NULL, 0) < 0)
    return NULL;
  vmhost__v1__host_resources__init(m);
  struct pools ps = {.a = a, .m = m, .cap = h.n_pools};
  m->pools =
      abij_arena_alloc(a, (h.n_pools ? h.n_pools : 1) * sizeof *m->pools);
  if (!m->pools || core->host_resources(&h, add_pool, &ps, 0) < 0)
    return NULL;
  m->host_cpus = h.host_cpus;
  m->cpu_overcommit = h.cpu_overcommit_milli / 1000.0;
  m->vcpus = amount(a, h.vcpus_total, h.vcpus_reserved, h.vcpus_allocated,
                    h.vcpus_available);
  m->host_memory = h.host_memory;
  m->memory_overcommit = h.memory_overcommit_milli / 1000.0;
  m->memory = amount(a, h.memory_total, h.memory_reserved, h.memory_allocated,
                     h.memory_available);
  m->disk = amount(a, h.disk_total, h.disk_reserved, h.disk_allocated,
                   h.disk_available);
  m->n_vms = h.n_vms;
  return m->vcpus && m->memory && m->disk ? m : NULL;
}

struct one {
  struct abij_arena *a;
  Vmhost__V1__HostSample *m;
};

static int fill_fs(struct abij_arena *a, Vmhost__V1__HostSample *m,
                   const struct vmh_host_sample *s) {
  m->filesystems =
      abij_arena_alloc(a, (s->n_filesystems + 1) * sizeof *m->filesystems);
  if (!m->filesystems)
    return -1;
  for (uint32_t i = 0; i < s->n_filesystems; i++) {
    const struct vmh_fs_usage *f = &s->filesystems[i];
    Vmhost__V1__FilesystemUsage *u = abij_arena_alloc(a, sizeof *u);
    if (!u)
      return -1;
    vmhost__v1__filesystem_usage__init(u);
    if (!(u->name = copy(a, f->name)) || !(u->path = copy(a, f->path)))
      return -1;
    u->total = f->total;
    u->used = f->used;
    u->available = f->available;
    m->filesystems[m->n_filesystems++] = u;
  }
  return 0;
}

static int fill_nics(struct abij_arena *a, Vmhost__V1__HostSample *m,
                     const struct vmh_host_sample *s) {
  m->nics = abij_arena_alloc(a, (s->n_nics + 1) * sizeof *m->nics);
  if (!m->nics)
    return -1;
  for (uint32_t i = 0; i < s->n_nics; i++) {
    const struct vmh_nic_rate *r = &s->nics[i];
    Vmhost__V1__NicRate *n = abij_arena_alloc(a, sizeof *n);
    if (!n)
      return -1;
    vmhost__v1__nic_rate__init(n);
    if (!(n->name = copy(a, r->name)))
      return -1;
    n->rx_bytes = r->rx_bytes;
    n->tx_bytes = r->tx_bytes;
    n->rx_bytes_per_s = r->rx_bytes_per_s;
    n->tx_bytes_per_s = r->tx_bytes_per_s;
    m->nics[m->n_nics++] = n;
  }
  return 0;
}

static void take(void *opaque, const struct vmh_host_sample *s) {
  struct one *o = opaque;
  Vmhost__V1__HostSample *m = abij_arena_alloc(o->a, sizeof *m);
  if (!m)
    return;
  vmhost__v1__host_sample__init(m);
  m->time_us = s->time_us;
  m->interval_ms = s->interval_ms;
  m->cpu_usage = s->cpu_usage_permille / 1000.0;
  m->cpu_per_core =
      abij_arena_alloc(o->a, (s->n_cpus + 1) * sizeof *m->cpu_per_core);
  if (!m->cpu_per_core)
    return;
  for (uint32_t i = 0; i < s->n_cpus; i++)
    m->cpu_per_core[i] = s->cpu_core_permille[i] / 1000.0;
  m->n_cpu_per_core = s->n_cpus;
  m->load1 = s->load1_milli / 1000.0;
  m->load5 = s->load5_milli / 1000.0;
  m->load15 = s->load15_milli / 1000.0;
  m->memory_total = s->memory_total;
  m->memory_available = s->memory_available;
  m->memory_used = s->memory_used;
  if (fill_fs(o->a, m, s) == 0 && fill_nics(o->a, m, s) == 0)
    o->m = m;
}

Vmhost__V1__HostSample *rpc_host_sample(const struct vmh_core *core,
                                        struct abij_arena *a) {
  if (!VMH_HAS_FIELD(core, host_samples) || !core->host_samples)
    return NULL;
  struct one o = {.a = a};
  core->host_samples(take, &o, VMH_SAMPLES_LATEST);
  return o.m;
}
