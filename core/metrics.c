/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metrics: series in a hash table that readers walk without a lock.
 *
 * Series are only ever added (until metrics_free): a new one is fully built,
 * then published at the head of its chain with a release store, so a reader
 * that finds it with an acquire load sees it whole.  Creation takes
 * `create_lock` (so a series is never made twice); recording into a series
 * is atomics only. */
#include <config.h>

#include "metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vmhost/common.h>

#include "error.h"
#include "histogram.h"
#include "log.h"

#define TABLE_SIZE 1024 /* a power of two; chains just get longer */
#define N_RESULTS (-VMH_ERROR_LOWEST + 1)
#define PLUGIN_NAME_MAX VMH_NAME_MAX

/* Operation durations, in nanoseconds. */
static const struct hist_layout op_layout = {
    .per_second = 1000000000,
    .n_bounds = 11,
    .bounds = {100000, 500000, 1000000, 5000000, 10000000, 50000000, 100000000,
               500000000, 1000000000, 5000000000, 10000000000},
};

enum series_kind { SERIES_OP, SERIES_COUNTER, SERIES_GAUGE };

struct series {
  struct series *next; /* set before publication, never changed */
  uint64_t hash;
  enum series_kind kind;
  const char *instance;                /* point into strings */
  const char *name;                    /* op, or plugin metric name */
  _Atomic uint64_t value;              /* counter; gauge as two's complement */
  _Atomic uint64_t results[N_RESULTS]; /* ops: by -code */
  struct hist duration;                /* ops */
  char strings[];
};

/* A plugin metric family: its name and the type it was first used with. */
struct family {
  struct family *next;
  enum series_kind kind;
  char name[];
};

static _Atomic(struct series *) table[TABLE_SIZE];
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t n_series;         /* under create_lock */
static struct family *families; /* under create_lock */
static atomic_flag warned_name = ATOMIC_FLAG_INIT;
static atomic_flag warned_type = ATOMIC_FLAG_INIT;

static struct timespec start_time;
static void (*extra)(FILE *f); /* metrics_set_extra */

/* The process start, as near as a library gets to it. */
__attribute__((constructor)) static void metrics_init(void) {
  clock_gettime(CLOCK_REALTIME, &start_time);
}

/* ---- series ------------------------------------------------------------ */

static bool is_op(enum series_kind kind) {
  return kind == SERIES_OP;
}

/* Op series and plugin series live in separate key spaces. */
static uint64_t series_hash(bool op, const char *instance, const char *name) {
  uint64_t h = op ? 0xcbf29ce484222325u : 0x84222325cbf29ce4u;

  for (const unsigned char *p = (const unsigned char *)instance; *p; p++)
    h = (h ^ *p) * 0x100000001b3u;
  h = (h ^ 0xff) * 0x100000001b3u; /* no UTF-8 string has 0xff */
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    h = (h ^ *p) * 0x100000001b3u;
  return h;
}

static struct series *series_find(bool op, const char *instance,
                                  const char *name, uint64_t h) {
  struct series *s =
      atomic_load_explicit(&table[h & (TABLE_SIZE - 1)], memory_order_acquire);

  for (; s; s = s->next)
    if (s->hash == h && is_op(s->kind) == op &&
        strcmp(s->instance, instance) == 0 && strcmp(s->name, name) == 0)
      return s;
  return NULL;
}

static void warn_once(atomic_flag *flag, const char *what, const char *name) {
  if (!atomic_flag_test_and_set(flag))
    log_warn(
        "metrics: plugin metric '%s' %s; ignored (further ones are not "
        "logged)",
        name, what);
}

/* With create_lock held: 1 if a plugin metric `name` may be `kind` (the
 * first use of a name decides its type), 0 if it is the other type, -1
 * when out of memory. */
static int family_allows(const char *name, enum series_kind kind) {
  struct family *f;
  size_t len;

  for (f = families; f; f = f->next)
    if (strcmp(f->name, name) == 0)
      return f->kind == kind;
  len = strlen(name);
  f = malloc(sizeof *f + len + 1);
  if (!f)
    return -1;
  f->kind = kind;
  memcpy(f->name, name, len + 1);
  f->next = families;
  families = f;
  return 1;
}

/* With create_lock held: make and publish a series. */
static struct series *series_new(enum series_kind kind, const char *instance,
                                 const char *name, uint64_t h) {
  size_t ilen = strlen(instance), nlen = strlen(name);
  _Atomic(struct series *) *head = &table[h & (TABLE_SIZE - 1)];
  struct series *s = calloc(1, sizeof *s + ilen + nlen + 2);

  if (!s)
    return NULL;
  memcpy(s->strings, instance, ilen + 1);
  memcpy(s->strings + ilen + 1, name, nlen + 1);
  s->instance = s->strings;
  s->name = s->strings + ilen + 1;
  s->hash = h;
  s->kind = kind;
  s->next = atomic_load_explicit(head, memory_order_relaxed);
  atomic_store_explicit(head, s, memory_order_release);
  n_series++;
  return s;
}

/* The series for (instance, name) of `kind`, made if need be; NULL when out
 * of memory or when the name is already a plugin metric of another type. */
static struct series *series_get(enum series_kind kind, const char *instance,
                                 const char *name) {
  bool op = is_op(kind);
  uint64_t h = series_hash(op, instance, name);
  struct series *s = series_find(op, instance, name, h);
  int allowed = 1;

  if (!s) {
    pthread_mutex_lock(&create_lock);
    s = series_find(op, instance, name, h);
    if (!s && !op)
      allowed = family_allows(name, kind);
    if (!s && allowed > 0)
      s = series_new(kind, instance, name, h);
    pthread_mutex_unlock(&create_lock);
  }
  if (allowed == 0 || (s && s->kind != kind)) {
    warn_once(&warned_type, "is used both as counter and gauge", name);
    return NULL;
  }
  return s;
}

static uint64_t seconds_to_ns(double seconds) {
  if (!(seconds > 0)) /* negative, or NaN */
    return 0;
  if (seconds > 1e9) /* over 30 years: keep the sum from wrapping */
    return UINT64_C(1000000000000000000);
  return (uint64_t)(seconds * 1e9 + 0.5);
}

void metrics_observe(const char *instance, const char *op, int code,
                     double seconds) {
  uint64_t ns = seconds_to_ns(seconds);
  struct series *s;

  if (!op)
    return;
  s = series_get(SERIES_OP, instance ? instance : "core", op);
  if (!s)
    return;
  if (code > 0 || code < VMH_ERROR_LOWEST)
    code = VMH_EINTERNAL;
  atomic_fetch_add_explicit(&s->results[-code], 1, memory_order_relaxed);
  hist_observe(&s->duration, &op_layout, ns);
}

static bool plugin_name_valid(const char *name) {
  size_t n = 0;

  if (!name)
    return false;
  for (; name[n]; n++)
    if (!((name[n] >= 'a' && name[n] <= 'z') ||
          (name[n] >= '0' && name[n] <= '9') || name[n] == '_'))
      return false;
  return n > 0 && n <= PLUGIN_NAME_MAX;
}

static struct series *plugin_series(enum series_kind kind, const char *instance,
                                    const char *name) {
  if (!plugin_name_valid(name)) {
    warn_once(&warned_name, "is not a valid name ([a-z0-9_]{1,63})",
              name ? name : "(null)");
    return NULL;
  }
  return series_get(kind, instance ? instance : "core", name);
}

void metrics_counter_add(const char *instance, const char *name,
                         uint64_t delta) {
  struct series *s = plugin_series(SERIES_COUNTER, instance, name);

  if (s)
    atomic_fetch_add_explicit(&s->value, delta, memory_order_relaxed);
}

void metrics_gauge_set(const char *instance, const char *name, int64_t value) {
  struct series *s = plugin_series(SERIES_GAUGE, instance, name);

  if (s)
    atomic_store_explicit(&s->value, (uint64_t)value, memory_order_relaxed);
}

/* ---- rendering --------------------------------------------------------- */

/* Label values: backslash, double quote and newline are escaped. */
static void put_label(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '\\')
      fputs("\\\\", f);
    else if (*s == '"')
      fputs("\\\"", f);
    else if (*s == '\n')
      fputs("\\n", f);
    else
      fputc(*s, f);
  }
}

/* instance="…",op="…" of an operation's series. */
static void put_op_labels(FILE *f, const void *opaque) {
  const struct series *s = opaque;
  fputs("instance=\"", f);
  put_label(f, s->instance);
  fputs("\",op=\"", f);
  put_label(f, s->name);
  fputc('"', f);
}

/* Exact decimal seconds with no trailing zeros; no floating point, so no
 * rounding and no locale decimal comma. */
static void put_family(FILE *f, const char *name, const char *type,
                       const char *help) {
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int cmp_ops(const void *a, const void *b) {
  const struct series *x = *(struct series *const *)a;
  const struct series *y = *(struct series *const *)b;
  int c = strcmp(x->instance, y->instance);

  return c ? c : strcmp(x->name, y->name);
}

static int cmp_plugin(const void *a, const void *b) {
  const struct series *x = *(struct series *const *)a;
  const struct series *y = *(struct series *const *)b;
  int c = strcmp(x->name, y->name);

  return c ? c : strcmp(x->instance, y->instance);
}

static int cmp_result(const void *a, const void *b) {
  return strcmp(error_name(-*(const int *)a), error_name(-*(const int *)b));
}

static void render_process(FILE *f) {
  FILE *statm;
  DIR *d;

  put_family(f, "vmhost_up", "gauge", "Whether vmhostd is up.");
  fputs("vmhost_up 1\n", f);
  put_family(f, "vmhost_start_time_seconds", "gauge",
             "When vmhostd started, in seconds since the Unix epoch.");
  fprintf(f, "vmhost_start_time_seconds %lld.%03ld\n",
          (long long)start_time.tv_sec, start_time.tv_nsec / 1000000);

  statm = fopen("/proc/self/statm", "re");
  if (statm) {
    unsigned long long size, resident;

    if (fscanf(statm, "%llu %llu", &size, &resident) == 2) {
      put_family(f, "vmhost_resident_memory_bytes", "gauge",
                 "Resident memory of vmhostd in bytes.");
      fprintf(f, "vmhost_resident_memory_bytes %llu\n",
              resident * (unsigned long long)sysconf(_SC_PAGESIZE));
    }
    fclose(statm);
  }

  d = opendir("/proc/self/fd");
  if (d) {
    unsigned long n = 0;
    struct dirent *e;

    while ((e = readdir(d)))
      if (e->d_name[0] != '.')
        n++;
    closedir(d);
    put_family(f, "vmhost_open_fds", "gauge",
               "File descriptors vmhostd has open.");
    fprintf(f, "vmhost_open_fds %lu\n", n - 1); /* not the one reading */
  }
}

static void render_ops(FILE *f, struct series **ops, size_t n) {
  int results[N_RESULTS];

  for (int i = 0; i < N_RESULTS; i++)
    results[i] = i;
  qsort(results, N_RESULTS, sizeof results[0], cmp_result);

  put_family(f, "vmhost_operations_total", "counter",
             "Operations run, by instance, operation and result.");
  for (size_t i = 0; i < n; i++) {
    for (int r = 0; r < N_RESULTS; r++) {
      uint64_t v = atomic_load_explicit(&ops[i]->results[results[r]],
                                        memory_order_relaxed);

      if (v == 0)
        continue;
      fputs("vmhost_operations_total{instance=\"", f);
      put_label(f, ops[i]->instance);
      fputs("\",op=\"", f);
      put_label(f, ops[i]->name);
      fprintf(f, "\",result=\"%s\"} %" PRIu64 "\n", error_name(-results[r]), v);
    }
  }

  put_family(f, "vmhost_operation_duration_seconds", "histogram",
             "How long operations took, by instance and operation.");
  for (size_t i = 0; i < n; i++)
    hist_write(f, "vmhost_operation_duration_seconds", put_op_labels, ops[i],
               &ops[i]->duration, &op_layout);
}

static void render_plugin(FILE *f, struct series **ps, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t v = atomic_load_explicit(&ps[i]->value, memory_order_relaxed);
    bool counter = ps[i]->kind == SERIES_COUNTER;

    if (i == 0 || strcmp(ps[i - 1]->name, ps[i]->name) != 0)
      fprintf(f,
              "# HELP vmhost_plugin_%s Reported by plugins.\n"
              "# TYPE vmhost_plugin_%s %s\n",
              ps[i]->name, ps[i]->name, counter ? "counter" : "gauge");
    fprintf(f, "vmhost_plugin_%s{instance=\"", ps[i]->name);
    put_label(f, ps[i]->instance);
    if (counter)
      fprintf(f, "\"} %" PRIu64 "\n", v);
    else
      fprintf(f, "\"} %" PRId64 "\n", (int64_t)v);
  }
}

char *metrics_render(size_t *ret_len) {
  struct series **all = NULL, **ops, **plugin;
  size_t n = 0, n_ops = 0, n_plugin = 0, len = 0;
  char *buf = NULL;
  FILE *f = NULL;
  bool failed;

  /* Take the list of series; their values are read afterwards, lock-free. */
  pthread_mutex_lock(&create_lock);
  all = malloc((n_series + 1) * sizeof *all);
  if (all) {
    for (size_t b = 0; b < TABLE_SIZE; b++)
      for (struct series *s =
               atomic_load_explicit(&table[b], memory_order_relaxed);
           s; s = s->next)
        all[n++] = s;
  }
  pthread_mutex_unlock(&create_lock);
  if (!all)
    goto fail;

  /* Op series first, then plugin series, each group sorted. */
  for (size_t i = 0; i < n; i++) {
    if (is_op(all[i]->kind)) {
      struct series *tmp = all[n_ops];

      all[n_ops++] = all[i];
      all[i] = tmp;
    }
  }
  ops = all;
  plugin = all + n_ops;
  n_plugin = n - n_ops;
  qsort(ops, n_ops, sizeof *ops, cmp_ops);
  qsort(plugin, n_plugin, sizeof *plugin, cmp_plugin);

  f = open_memstream(&buf, &len);
  if (!f)
    goto fail;
  render_process(f);
  render_ops(f, ops, n_ops);
  render_plugin(f, plugin, n_plugin);
  if (extra)
    extra(f);
  failed = ferror(f) != 0;
  if (fclose(f) != 0 || failed)
    goto fail;
  free(all);
  if (ret_len)
    *ret_len = len;
  return buf;

fail:
  free(all);
  free(buf);
  return NULL;
}

void metrics_set_extra(void (*fn)(FILE *f)) {
  extra = fn;
}

void metrics_free(void) {
  pthread_mutex_lock(&create_lock);
  for (size_t b = 0; b < TABLE_SIZE; b++) {
    struct series *s = atomic_load_explicit(&table[b], memory_order_relaxed);

    atomic_store_explicit(&table[b], NULL, memory_order_relaxed);
    while (s) {
      struct series *next = s->next;

      free(s);
      s = next;
    }
  }
  n_series = 0;
  atomic_flag_clear(&warned_name);
  atomic_flag_clear(&warned_type);
  while (families) {
    struct family *next = families->next;

    free(families);
    families = next;
  }
  pthread_mutex_unlock(&create_lock);
}
