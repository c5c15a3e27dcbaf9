/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host resources and admission control: see resources.h. */
#include <config.h>

#include "resources.h"

#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "histogram.h"
#include "instance.h"
#include "log.h"

/* ---- state -------------------------------------------------------------- */

/* One storage pool as admission sees it. */
struct pool {
  const char *name;     /* the instance's */
  pthread_mutex_t lock; /* held across the pool_info read and the check */
  bool reserve_set;     /* reserve as configured; else the default rule */
  uint64_t reserve;
  /* Under lock.  The pool is asked only while no volume is being made
   * (pending 0): its answer then agrees with what admission counted.
   * Volumes made since are counted in `made` until the next answer. */
  uint64_t capacity, used; /* the pool's last answer (capacity − available) */
  uint64_t made;           /* bytes of volumes made since then */
  uint64_t pending;        /* bytes of volumes being made now */
  int64_t sampled_us;
};

static struct resources_conf conf = {.cpu_milli = DEFAULT_CPU_MILLI,
                                     .memory_milli = DEFAULT_MEMORY_MILLI,
                                     .reserved_cpus = DEFAULT_RESERVED_CPUS,
                                     .reserved_memory = DEFAULT_RESERVED_MEMORY,
                                     .reserved_disk = DEFAULT_RESERVED_DISK};
static uint32_t host_cpus;
static uint64_t host_memory;
static struct pool *pools;
static size_t n_pools;
/* What the records hold.  Changed under the record table's write lock
 * (and alloc_lock, so that a reader needs only alloc_lock). */
static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t alloc_vcpus, alloc_memory;
static uint32_t alloc_vms;

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t sub0(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

static uint64_t scaled(uint64_t v, uint32_t milli) {
  return (uint64_t)((unsigned __int128)v * milli / 1000);
}

/* "1.5", "16.0": a ratio × 1000 with at least one decimal. */
static void fmt_ratio(char out[16], uint32_t milli) {
  snprintf(out, 16, "%" PRIu32 ".%03" PRIu32, milli / 1000, milli % 1000);
  size_t n = strlen(out);
  while (out[n - 1] == '0' && out[n - 2] != '.')
    out[--n] = '\0';
}

/* "512 MiB", "1.5 GiB", "3 bytes": the largest binary unit not above v,
 * with up to two decimals (no trailing zeros). */
static void fmt_bytes(char out[32], uint64_t v) {
  static const char *const units[] = {"bytes", "KiB", "MiB",
                                      "GiB",   "TiB", "PiB"};
  size_t u = 0;
  while (u + 1 < sizeof units / sizeof units[0] && v >> (10 * (u + 1)))
    u++;
  if (u == 0) {
    snprintf(out, 32, "%" PRIu64 " bytes", v);
    return;
  }
  uint64_t unit = UINT64_C(1) << (10 * u);
  uint64_t cents = (uint64_t)(((unsigned __int128)v * 100 + unit / 2) / unit);
  if (cents % 100 == 0)
    snprintf(out, 32, "%" PRIu64 " %s", cents / 100, units[u]);
  else if (cents % 10 == 0)
    snprintf(out, 32, "%" PRIu64 ".%" PRIu64 " %s", cents / 100,
             cents / 10 % 10, units[u]);
  else
    snprintf(out, 32, "%" PRIu64 ".%02" PRIu64 " %s", cents / 100, cents % 100,
             units[u]);
}

/* The host's size: each open hypervisor that reports its own host adds it;
 * the others run VMs on this machine, counted once. */
static void learn_host(void) {
  bool local = false;
  size_t n_hv = 0;
  host_cpus = 0;
  host_memory = 0;
  for (size_t i = 0; i < instances_count(); i++) {
    struct vmh_instance *hv = instance_at(i);
    if (hv->kind != VMH_KIND_HYPERVISOR || !hv->is_open)
      continue;
    n_hv++;
    struct vmh_hypervisor_caps caps = {.struct_size = sizeof caps};
    if (INSTANCE_CALL(hv, hypervisor, caps, &caps, 0) == 0 && caps.host_cpus &&
        caps.host_memory) {
      host_cpus += caps.host_cpus;
      host_memory += caps.host_memory;
    } else {
      local = true;
    }
  }
  if (local || !n_hv) {
    host_cpus += (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    host_memory +=
        (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
  }
}

void resources_setup(const struct resources_conf *c) {
  conf = *c;
  conf.pools = NULL;
  conf.n_pools = 0;
  learn_host();
  if (!c->reserved_memory_set)
    conf.reserved_memory = host_memory / 4 < DEFAULT_RESERVED_MEMORY
                               ? host_memory / 4
                               : DEFAULT_RESERVED_MEMORY;
  size_t n = 0;
  for (size_t i = 0; i < instances_count(); i++)
    n += instance_at(i)->kind == VMH_KIND_STORAGE;
  pools = n ? calloc(n, sizeof *pools) : NULL;
  for (size_t i = 0; pools && i < instances_count(); i++) {
    struct vmh_instance *inst = instance_at(i);
    if (inst->kind != VMH_KIND_STORAGE)
      continue;
    struct pool *p = &pools[n_pools++];
    p->name = inst->name;
    pthread_mutex_init(&p->lock, NULL);
    p->reserve_set = c->reserved_disk_set;
    p->reserve = c->reserved_disk;
    for (size_t j = 0; j < c->n_pools; j++)
      if (strcmp(c->pools[j].pool, inst->name) == 0) {
        p->reserve_set = true;
        p->reserve = c->pools[j].bytes;
      }
  }
  char cpu[16], mem[16], hm[32], rm[32];
  fmt_ratio(cpu, conf.cpu_milli);
  fmt_ratio(mem, conf.memory_milli);
  fmt_bytes(hm, host_memory);
  fmt_bytes(rm, conf.reserved_memory);
  log_info("admission: %" PRIu32 " CPUs × %s overcommit, %" PRIu64
           " reserved; %s of memory × %s overcommit, %s reserved",
           host_cpus, cpu, conf.reserved_cpus, hm, mem, rm);
}

void resources_free(void) {
  for (size_t i = 0; i < n_pools; i++)
    pthread_mutex_destroy(&pools[i].lock);
  free(pools);
  pools = NULL;
  n_pools = 0;
}

/* ---- vCPUs and memory --------------------------------------------------- */

void resources_vm_added(const struct vm *vm) {
  pthread_mutex_lock(&alloc_lock);
  alloc_vcpus += vm->vcpus;
  alloc_memory += vm->memory;
  alloc_vms++;
  pthread_mutex_unlock(&alloc_lock);
}

void resources_vm_removed(const struct vm *vm) {
  pthread_mutex_lock(&alloc_lock);
  alloc_vcpus = sub0(alloc_vcpus, vm->vcpus);
  alloc_memory = sub0(alloc_memory, vm->memory);
  alloc_vms = alloc_vms ? alloc_vms - 1 : 0;
  pthread_mutex_unlock(&alloc_lock);
}

int resources_admit_vm(const struct vm *vm) {
  char ratio[16];
  uint64_t total = scaled(host_cpus, conf.cpu_milli);
  uint64_t avail = sub0(total, conf.reserved_cpus + alloc_vcpus);
  if (vm->vcpus > avail) {
    fmt_ratio(ratio, conf.cpu_milli);
    return error_code(VMH_ECAPACITY,
                      "VM '%s' needs %" PRIu32 " vCPU%s; %" PRIu64
                      " of %" PRIu64 " are available (%" PRIu32
                      " CPUs × %s overcommit − "
                      "%" PRIu64 " reserved − %" PRIu64 " allocated)",
                      vm->name, vm->vcpus, vm->vcpus == 1 ? "" : "s", avail,
                      total, host_cpus, ratio, conf.reserved_cpus, alloc_vcpus);
  }
  total = scaled(host_memory, conf.memory_milli);
  avail = sub0(total, conf.reserved_memory + alloc_memory);
  if (vm->memory > avail) {
    char need[32], a[32], t[32], h[32], res[32], al[32];
    fmt_ratio(ratio, conf.memory_milli);
    fmt_bytes(need, vm->memory);
    fmt_bytes(a, avail);
    fmt_bytes(t, total);
    fmt_bytes(h, host_memory);
    fmt_bytes(res, conf.reserved_memory);
    fmt_bytes(al, alloc_memory);
    return error_code(VMH_ECAPACITY,
                      "VM '%s' needs %s of memory; %s of %s are available (%s "
                      "× %s overcommit − %s reserved − %s allocated)",
                      vm->name, need, a, t, h, ratio, res, al);
  }
  return 0;
}

/* ---- pools -------------------------------------------------------------- */

static struct pool *pool_find(const char *name) {
  for (size_t i = 0; i < n_pools; i++)
    if (strcmp(pools[i].name, name) == 0)
      return &pools[i];
  return NULL;
}

/* The reserve of p: as configured, else 50 GB but at most a tenth of the
 * pool, and none in a pool under 10 GiB (a test's, a quota'd directory:
 * a tenth of it would refuse what fits) (lock held). */
static uint64_t pool_reserve(const struct pool *p) {
  if (p->reserve_set)
    return p->reserve;
  if (p->capacity < MIN_POOL_FOR_DEFAULT)
    return 0;
  return p->capacity / 10 < DEFAULT_RESERVED_DISK ? p->capacity / 10
                                                  : DEFAULT_RESERVED_DISK;
}

static int pool_info_cb(void *opaque, const struct vmh_pool_info *in) {
  struct vmh_pool_info *out = opaque;
  out->capacity = in->capacity;
  out->available = in->available;
  return 0;
}

/* Ask the pool its space (lock held), unless volumes are being made. */
static int pool_sample(struct pool *p) {
  if (p->pending)
    return 0;
  struct vmh_instance *inst = instance_find(VMH_KIND_STORAGE, p->name);
  if (!inst)
    return VMH_EIO;
  struct vmh_pool_info info = {.struct_size = sizeof info};
  int r = INSTANCE_CALL(inst, storage, pool_info, pool_info_cb, &info, 0);
  if (r < 0)
    return r;
  p->capacity = info.capacity;
  p->used = sub0(info.capacity, info.available);
  p->made = 0;
  p->sampled_us = now_us();
  return 0;
}

static uint64_t pool_allocated(const struct pool *p) {
  return p->used + p->made + p->pending;
}

/* Reserve bytes on p for `what` (a disk or a volume): asks the pool, then
 * checks under the pool's lock. */
static int pool_reserve_bytes(struct pool *p, uint64_t bytes,
                              const char *what) {
  pthread_mutex_lock(&p->lock);
  int r = pool_sample(p);
  if (r < 0) {
    pthread_mutex_unlock(&p->lock);
    return error_code(r, "%s: pool '%s' cannot say its free space: %s", what,
                      p->name, error_get());
  }
  uint64_t reserve = pool_reserve(p), alloc = pool_allocated(p);
  uint64_t avail = sub0(p->capacity, reserve + alloc);
  /* More than the pool has free at all is the pool's to refuse, in its
   * own words (no_space): reserved like any other, it fails there. */
  bool pools_own = bytes > sub0(p->capacity, p->used + p->made);
  if (bytes > avail && !pools_own) {
    char need[32], a[32], cap[32], res[32], al[32];
    fmt_bytes(need, bytes);
    fmt_bytes(a, avail);
    fmt_bytes(cap, p->capacity);
    fmt_bytes(res, reserve);
    fmt_bytes(al, alloc);
    r = error_code(VMH_ECAPACITY,
                   "%s needs %s in pool '%s'; %s of %s are available (%s "
                   "capacity − %s reserved − %s allocated)",
                   what, need, p->name, a, cap, cap, res, al);
  } else {
    p->pending += bytes;
  }
  pthread_mutex_unlock(&p->lock);
  return r;
}

/* Ask the pool again (lock held), logging a failure: the numbers stay as
 * last known. */
static void pool_resample(struct pool *p) {
  /* Called after operations whose failure message the caller still has
   * to answer with: keep it. */
  char *kept = strdup(error_get());
  if (pool_sample(p) < 0)
    log_debug("admission: pool '%s' cannot say its space: %s", p->name,
              error_get());
  if (kept)
    error_set("%s", kept);
  free(kept);
}

/* A volume of `bytes` was made (made) or not: counted as made until the
 * pool's next answer. */
static void pool_release(struct pool *p, uint64_t bytes, bool made) {
  pthread_mutex_lock(&p->lock);
  p->pending = sub0(p->pending, bytes);
  if (made)
    p->made += bytes;
  pool_resample(p);
  pthread_mutex_unlock(&p->lock);
}

/* The bytes a disk's new volume takes: known only for a sized volume the
 * core makes (a clone of size 0 takes its image's size, which the pool
 * knows and checks itself). */
static uint64_t disk_need(const struct vm_disk *d) {
  return d->make ? d->size : 0;
}

int resources_disks_reserve(const struct vm_disk *disks, size_t n) {
  for (size_t i = 0; i < n; i++) {
    struct pool *p = disk_need(&disks[i]) ? pool_find(disks[i].pool) : NULL;
    if (!p)
      continue;
    char what[64];
    snprintf(what, sizeof what, "disk %s", disks[i].name);
    int r = pool_reserve_bytes(p, disk_need(&disks[i]), what);
    if (r < 0) {
      resources_disks_release(disks, i);
      return r;
    }
  }
  return 0;
}

void resources_disks_release(const struct vm_disk *disks, size_t n) {
  for (size_t i = 0; i < n; i++) {
    struct pool *p = disk_need(&disks[i]) ? pool_find(disks[i].pool) : NULL;
    if (p)
      pool_release(p, disk_need(&disks[i]), disks[i].created);
  }
}

int resources_volume_reserve(const char *pool, const char *volume,
                             uint64_t bytes) {
  struct pool *p = bytes ? pool_find(pool) : NULL;
  if (!p)
    return 0;
  char what[96];
  snprintf(what, sizeof what, "volume %s", volume);
  return pool_reserve_bytes(p, bytes, what);
}

void resources_volume_release(const char *pool, uint64_t bytes, bool made) {
  struct pool *p = bytes ? pool_find(pool) : NULL;
  if (p)
    pool_release(p, bytes, made);
}

void resources_sample_pool(const char *name) {
  struct pool *p = pool_find(name);
  if (!p)
    return;
  pthread_mutex_lock(&p->lock);
  pool_resample(p);
  pthread_mutex_unlock(&p->lock);
}

void resources_sample_pools(void) {
  for (size_t i = 0; i < n_pools; i++)
    resources_sample_pool(pools[i].name);
}

/* ---- reading ------------------------------------------------------------ */

static void pool_view(struct pool *p, struct vmh_pool_resources *out) {
  pthread_mutex_lock(&p->lock);
  uint64_t reserve = pool_reserve(p), alloc = pool_allocated(p);
  *out = (struct vmh_pool_resources){
      .struct_size = sizeof *out,
      .name = p->name,
      .total = p->capacity,
      .reserved = reserve,
      .allocated = alloc,
      .available = sub0(p->capacity, reserve + alloc),
      .sampled_us = p->sampled_us,
  };
  pthread_mutex_unlock(&p->lock);
}

static void host_view(struct vmh_host_resources *h) {
  pthread_mutex_lock(&alloc_lock);
  uint64_t vcpus = alloc_vcpus, memory = alloc_memory;
  uint32_t n_vms = alloc_vms;
  pthread_mutex_unlock(&alloc_lock);
  uint64_t vt = scaled(host_cpus, conf.cpu_milli);
  uint64_t mt = scaled(host_memory, conf.memory_milli);
  *h = (struct vmh_host_resources){
      .struct_size = sizeof *h,
      .host_cpus = host_cpus,
      .cpu_overcommit_milli = conf.cpu_milli,
      .memory_overcommit_milli = conf.memory_milli,
      .vcpus_total = vt,
      .vcpus_reserved = conf.reserved_cpus,
      .vcpus_allocated = vcpus,
      .vcpus_available = sub0(vt, conf.reserved_cpus + vcpus),
      .host_memory = host_memory,
      .memory_total = mt,
      .memory_reserved = conf.reserved_memory,
      .memory_allocated = memory,
      .memory_available = sub0(mt, conf.reserved_memory + memory),
      .n_vms = n_vms,
      .n_pools = (uint32_t)n_pools,
  };
  for (size_t i = 0; i < n_pools; i++) {
    struct vmh_pool_resources p;
    pool_view(&pools[i], &p);
    h->disk_total += p.total;
    h->disk_reserved += p.reserved;
    h->disk_allocated += p.allocated;
    h->disk_available += p.available;
  }
}

int resources_get(struct vmh_host_resources *ret, vmh_pool_resources_fn pool,
                  void *opaque, uint32_t flags) {
  if (flags)
    return error_code(VMH_EINVAL, "host_resources: unknown flags 0x%" PRIx32,
                      flags);
  if (!ret || ret->struct_size < sizeof ret->struct_size)
    return error_code(VMH_EINVAL, "host_resources: no result struct");
  struct vmh_host_resources h;
  host_view(&h);
  uint32_t size = ret->struct_size < sizeof h ? ret->struct_size : sizeof h;
  memcpy(ret, &h, size);
  ret->struct_size = size;
  for (size_t i = 0; pool && i < n_pools; i++) {
    struct vmh_pool_resources p;
    pool_view(&pools[i], &p);
    pool(opaque, &p);
  }
  return 0;
}

/* ---- metrics ------------------------------------------------------------ */

/* One gauge family; `labels` is NULL for one unlabelled series, else
 * the pools' (one series each). */
struct gauge {
  const char *name, *help;
  size_t offset; /* of the uint64_t in struct vmh_host_resources or
                    struct vmh_pool_resources */
};

#define HOST_GAUGE(n, field, h) \
  { n, h, offsetof(struct vmh_host_resources, field) }
static const struct gauge host_gauges[] = {
    HOST_GAUGE("vmhost_host_vcpus", vcpus_total,
               "vCPUs for VMs: the host's CPUs times cpu_overcommit."),
    HOST_GAUGE("vmhost_host_vcpus_reserved", vcpus_reserved,
               "vCPUs kept for the host (reserved_cpus)."),
    HOST_GAUGE("vmhost_host_vcpus_allocated", vcpus_allocated,
               "vCPUs allocated to VM records."),
    HOST_GAUGE("vmhost_host_vcpus_available", vcpus_available,
               "vCPUs a new VM may still get (admission)."),
    HOST_GAUGE("vmhost_host_memory_bytes", memory_total,
               "Memory for VMs: the host's memory times memory_overcommit, "
               "in bytes."),
    HOST_GAUGE("vmhost_host_memory_reserved_bytes", memory_reserved,
               "Memory kept for the host (reserved_memory), in bytes."),
    HOST_GAUGE("vmhost_host_memory_allocated_bytes", memory_allocated,
               "Memory allocated to VM records, in bytes."),
    HOST_GAUGE("vmhost_host_memory_available_bytes", memory_available,
               "Memory a new VM may still get (admission), in bytes."),
};

#define POOL_GAUGE(n, field, h) \
  { n, h, offsetof(struct vmh_pool_resources, field) }
static const struct gauge pool_gauges[] = {
    POOL_GAUGE("vmhost_pool_capacity_bytes", total,
               "A storage pool's capacity, in bytes (as last sampled)."),
    POOL_GAUGE("vmhost_pool_reserved_bytes", reserved,
               "Space of a pool kept free (its reserve), in bytes."),
    POOL_GAUGE("vmhost_pool_allocation_bytes", allocated,
               "Space of a pool allocated to volumes, in bytes."),
    POOL_GAUGE("vmhost_pool_available_bytes", available,
               "Space of a pool a new volume may still get, in bytes."),
};

static uint64_t field_at(const void *base, size_t offset) {
  uint64_t v;
  memcpy(&v, (const char *)base + offset, sizeof v);
  return v;
}

void resources_render(FILE *f) {
  struct vmh_host_resources h;
  host_view(&h);
  for (size_t g = 0; g < sizeof host_gauges / sizeof host_gauges[0]; g++) {
    prom_put_family(f, host_gauges[g].name, "gauge", host_gauges[g].help);
    fprintf(f, "%s %" PRIu64 "\n", host_gauges[g].name,
            field_at(&h, host_gauges[g].offset));
  }
  if (!n_pools)
    return;
  struct vmh_pool_resources views[n_pools];
  for (size_t i = 0; i < n_pools; i++)
    pool_view(&pools[i], &views[i]);
  for (size_t g = 0; g < sizeof pool_gauges / sizeof pool_gauges[0]; g++) {
    prom_put_family(f, pool_gauges[g].name, "gauge", pool_gauges[g].help);
    for (size_t i = 0; i < n_pools; i++) {
      fprintf(f, "%s{pool=\"", pool_gauges[g].name);
      prom_put_label(f, views[i].name);
      fprintf(f, "\"} %" PRIu64 "\n",
              field_at(&views[i], pool_gauges[g].offset));
    }
  }
}
