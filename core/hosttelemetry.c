/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host telemetry: see hosttelemetry.h.  Everything comes from the kernel's
 * files (/proc/stat, /proc/loadavg, /proc/meminfo, /proc/net/dev), statvfs
 * of the state directory, and the pools' space as admission last learnt
 * it (resources.c): the sampler never calls a plugin. */
#include <config.h>

#include "hosttelemetry.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "resources.h"
#include "vm.h"

#define MAX_CPUS 4096
#define MAX_NICS 256
#define MAX_FS 257 /* the state directory and 256 pools */

/* Counters read at one instant. */
struct cpu_times {
  uint64_t busy, total;
};
struct nic_counts {
  char name[32];
  uint64_t rx, tx;
};
struct reading {
  struct timespec when; /* CLOCK_MONOTONIC */
  struct cpu_times all, cpus[MAX_CPUS];
  uint32_t n_cpus;
  struct nic_counts nics[MAX_NICS];
  uint32_t n_nics;
};

/* A sample that owns what its ABI view points to. */
struct owned {
  struct vmh_host_sample s;
  uint32_t *cores;
  struct vmh_fs_usage *fs;
  struct vmh_nic_rate *nics;
};

static struct {
  pthread_mutex_t lock; /* the ring and stop */
  pthread_cond_t wake;
  pthread_t thread;
  bool running, stop;
  char *state_dir;
  unsigned interval_s;
  struct owned ring[TELEMETRY_HISTORY];
  size_t head, n; /* oldest at head */
  struct reading prev, cur;
} t = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- reading the kernel's counters ------------------------------------- */

static void read_stat(struct reading *r) {
  _cleanup_fclose_ FILE *f = fopen("/proc/stat", "re");
  char line[512];
  r->n_cpus = 0;
  memset(&r->all, 0, sizeof r->all);
  while (f && fgets(line, sizeof line, f)) {
    if (strncmp(line, "cpu", 3) != 0)
      break;
    uint64_t v[8] = {0};
    unsigned cpu = 0;
    const char *p = line + 3;
    bool all = *p == ' ';
    if (!all && sscanf(p, "%u", &cpu) != 1)
      continue;
    p = strchr(p, ' ');
    /* user nice system idle iowait irq softirq steal */
    if (!p ||
        sscanf(p,
               " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
               " %" SCNu64 " %" SCNu64 " %" SCNu64,
               &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 4)
      continue;
    struct cpu_times ct = {0};
    for (int i = 0; i < 8; i++)
      ct.total += v[i];
    ct.busy = ct.total - v[3] - v[4]; /* less idle and iowait */
    if (all)
      r->all = ct;
    else if (cpu < MAX_CPUS && r->n_cpus < MAX_CPUS)
      r->cpus[r->n_cpus++] = ct;
  }
}

static void read_net(struct reading *r) {
  _cleanup_fclose_ FILE *f = fopen("/proc/net/dev", "re");
  char line[512];
  r->n_nics = 0;
  while (f && fgets(line, sizeof line, f) && r->n_nics < MAX_NICS) {
    char *colon = strchr(line, ':');
    if (!colon)
      continue; /* the two header lines */
    *colon = '\0';
    char *name = line + strspn(line, " ");
    struct nic_counts *n = &r->nics[r->n_nics];
    uint64_t skip;
    /* rx: bytes packets errs drop fifo frame compressed multicast; tx:
     * bytes ... */
    if (strcmp(name, "lo") == 0 || strlen(name) >= sizeof n->name ||
        sscanf(colon + 1,
               " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
               " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
               &n->rx, &skip, &skip, &skip, &skip, &skip, &skip, &skip,
               &n->tx) != 9)
      continue;
    snprintf(n->name, sizeof n->name, "%s", name);
    r->n_nics++;
  }
}

static void read_counters(struct reading *r) {
  clock_gettime(CLOCK_MONOTONIC, &r->when);
  read_stat(r);
  read_net(r);
}

/* ---- one sample -----------------------------------------------------------
 */

static uint32_t permille(struct cpu_times a, struct cpu_times b) {
  uint64_t total = b.total - a.total, busy = b.busy - a.busy;
  if (b.total < a.total || b.busy < a.busy || !total)
    return 0;
  return (uint32_t)(busy * 1000 / total);
}

static uint64_t rate(uint64_t a, uint64_t b, uint64_t ms) {
  return b >= a && ms ? (b - a) * 1000 / ms : 0;
}

static uint64_t ms_between(const struct timespec *a, const struct timespec *b) {
  return (uint64_t)((b->tv_sec - a->tv_sec) * 1000 +
                    (b->tv_nsec - a->tv_nsec) / 1000000);
}

static void read_load(struct vmh_host_sample *s) {
  _cleanup_fclose_ FILE *f = fopen("/proc/loadavg", "re");
  double l[3] = {0};
  if (f && fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) == 3) {
    s->load1_milli = (uint32_t)(l[0] * 1000 + 0.5);
    s->load5_milli = (uint32_t)(l[1] * 1000 + 0.5);
    s->load15_milli = (uint32_t)(l[2] * 1000 + 0.5);
  }
}

static uint64_t meminfo(const char *key) {
  _cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
  char line[256];
  size_t n = strlen(key);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, key, n) == 0 && line[n] == ':')
      return strtoull(line + n + 1, NULL, 10) * 1024;
  return 0;
}

struct fs_list {
  struct vmh_fs_usage *v;
  uint32_t n;
};

static void add_pool(void *opaque, const struct vmh_pool_resources *p) {
  struct fs_list *l = opaque;
  if (l->n >= MAX_FS)
    return;
  char *name = strdup(p->name);
  if (!name)
    return;
  uint64_t used = p->allocated < p->total ? p->allocated : p->total;
  l->v[l->n++] = (struct vmh_fs_usage){.struct_size = sizeof *l->v,
                                       .name = name,
                                       .total = p->total,
                                       .used = used,
                                       .available = p->total - used};
}

static void owned_clear(struct owned *o) {
  for (uint32_t i = 0; o->fs && i < o->s.n_filesystems; i++)
    free((char *)o->fs[i].name);
  for (uint32_t i = 0; o->nics && i < o->s.n_nics; i++)
    free((char *)o->nics[i].name);
  free(o->cores);
  free(o->fs);
  free(o->nics);
  memset(o, 0, sizeof *o);
}

/* Build a sample from t.prev → t.cur into o; 0 or -1 (out of memory). */
static int build(struct owned *o) {
  const struct reading *a = &t.prev, *b = &t.cur;
  uint64_t ms = ms_between(&a->when, &b->when);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  o->s = (struct vmh_host_sample){
      .struct_size = sizeof o->s,
      .time_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000,
      .interval_ms = (uint32_t)ms,
      .cpu_usage_permille = permille(a->all, b->all),
      .memory_total = meminfo("MemTotal"),
      .memory_available = meminfo("MemAvailable"),
  };
  o->s.memory_used = o->s.memory_total > o->s.memory_available
                         ? o->s.memory_total - o->s.memory_available
                         : 0;
  read_load(&o->s);
  o->cores = calloc(b->n_cpus ? b->n_cpus : 1, sizeof *o->cores);
  o->fs = calloc(MAX_FS, sizeof *o->fs);
  o->nics = calloc(b->n_nics ? b->n_nics : 1, sizeof *o->nics);
  if (!o->cores || !o->fs || !o->nics)
    return -1;
  for (uint32_t i = 0; i < b->n_cpus; i++)
    o->cores[i] = i < a->n_cpus ? permille(a->cpus[i], b->cpus[i]) : 0;
  o->s.n_cpus = b->n_cpus;
  o->s.cpu_core_permille = o->cores;

  struct fs_list l = {.v = o->fs};
  struct statvfs sv;
  char *state = strdup("state");
  if (state && statvfs(t.state_dir, &sv) == 0) {
    uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    uint64_t free_ = (uint64_t)sv.f_bfree * sv.f_frsize;
    l.v[l.n++] = (struct vmh_fs_usage){.struct_size = sizeof *l.v,
                                       .name = state,
                                       .path = t.state_dir,
                                       .total = total,
                                       .used = total - free_,
                                       .available = avail};
  } else {
    free(state);
  }
  struct vmh_host_resources h = {.struct_size = sizeof h};
  resources_get(&h, add_pool, &l, 0);
  o->s.filesystems = o->fs;
  o->s.n_filesystems = l.n;

  for (uint32_t i = 0; i < b->n_nics; i++) {
    const struct nic_counts *n = &b->nics[i], *was = NULL;
    for (uint32_t j = 0; j < a->n_nics && !was; j++)
      if (strcmp(a->nics[j].name, n->name) == 0)
        was = &a->nics[j];
    char *name = strdup(n->name);
    if (!name)
      return -1;
    o->nics[o->s.n_nics++] = (struct vmh_nic_rate){
        .struct_size = sizeof *o->nics,
        .name = name,
        .rx_bytes = n->rx,
        .tx_bytes = n->tx,
        .rx_bytes_per_s = was ? rate(was->rx, n->rx, ms) : 0,
        .tx_bytes_per_s = was ? rate(was->tx, n->tx, ms) : 0,
    };
  }
  o->s.nics = o->nics;
  return 0;
}

static void take_sample(void) {
  read_counters(&t.cur);
  struct owned o = {0};
  if (build(&o) < 0) {
    log_warn("host telemetry: out of memory: sample dropped");
    owned_clear(&o);
  } else {
    pthread_mutex_lock(&t.lock);
    size_t slot = (t.head + t.n) % TELEMETRY_HISTORY;
    if (t.n == TELEMETRY_HISTORY) {
      slot = t.head;
      t.head = (t.head + 1) % TELEMETRY_HISTORY;
    } else {
      t.n++;
    }
    owned_clear(&t.ring[slot]);
    t.ring[slot] = o;
    pthread_mutex_unlock(&t.lock);
  }
  t.prev = t.cur;
}

/* ---- the thread ---------------------------------------------------------- */

static void *sampler(void *arg) {
  (void)arg;
  unsigned wait_s = 1; /* the first sample soon: a starting client sees one */
  pthread_mutex_lock(&t.lock);
  while (!t.stop) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_s;
    while (!t.stop && pthread_cond_timedwait(&t.wake, &t.lock, &until) == 0) {
    }
    if (t.stop)
      break;
    pthread_mutex_unlock(&t.lock);
    take_sample();
    pthread_mutex_lock(&t.lock);
    wait_s = t.interval_s;
  }
  pthread_mutex_unlock(&t.lock);
  return NULL;
}

int telemetry_start(const char *state_dir, unsigned interval_s) {
  if (!(t.state_dir = strdup(state_dir)))
    return error_code(VMH_ENOMEM, "out of memory");
  t.interval_s = interval_s ? interval_s : 1;
  read_counters(&t.prev);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&t.wake, &ca);
  pthread_condattr_destroy(&ca);
  t.stop = false;
  int e = pthread_create(&t.thread, NULL, sampler, NULL);
  if (e) {
    pthread_cond_destroy(&t.wake);
    free(t.state_dir);
    t.state_dir = NULL;
    return error_code(VMH_EIO, "cannot start the host telemetry thread: %s",
                      strerror(e));
  }
  t.running = true;
  return 0;
}

void telemetry_stop(void) {
  if (!t.running)
    return;
  pthread_mutex_lock(&t.lock);
  t.stop = true;
  pthread_cond_signal(&t.wake);
  pthread_mutex_unlock(&t.lock);
  pthread_join(t.thread, NULL);
  pthread_cond_destroy(&t.wake);
  for (size_t i = 0; i < TELEMETRY_HISTORY; i++)
    owned_clear(&t.ring[i]);
  t.head = t.n = 0;
  free(t.state_dir);
  t.state_dir = NULL;
  t.running = false;
}

int telemetry_samples(vmh_host_sample_fn fn, void *opaque, uint32_t flags) {
  if (flags & ~VMH_SAMPLES_LATEST)
    return error_code(VMH_EINVAL, "host_samples: unknown flags 0x%" PRIx32,
                      flags & ~VMH_SAMPLES_LATEST);
  if (!fn)
    return error_code(VMH_EINVAL, "host_samples: no visitor");
  pthread_mutex_lock(&t.lock);
  size_t first = (flags & VMH_SAMPLES_LATEST) && t.n ? t.n - 1 : 0;
  for (size_t i = first; i < t.n; i++)
    fn(opaque, &t.ring[(t.head + i) % TELEMETRY_HISTORY].s);
  pthread_mutex_unlock(&t.lock);
  return 0;
}
