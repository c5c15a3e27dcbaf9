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
#include <sys/resource.h>
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

/* Plugin instances that render families of their own: a scrape holds
 * sources_lock while it calls them, so that withdrawing one waits. */
struct source {
  const void *key;
  metrics_source_fn fn;
  void *opaque;
};
static pthread_mutex_t sources_lock = PTHREAD_MUTEX_INITIALIZER;
static struct source *sources;
static size_t n_sources;

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

/* instance="…",op="…" of an operation's series. */
static void put_op_labels(FILE *f, const void *opaque) {
  const struct series *s = opaque;
  fputs("instance=\"", f);
  prom_put_label(f, s->instance);
  fputs("\",op=\"", f);
  prom_put_label(f, s->name);
  fputc('"', f);
}

static void put_family(FILE *f, const char *name, const char *type,
                       const char *help) {
  prom_put_family(f, name, type, help);
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

/* process_open_fds: the entries of /proc/self/fd but the one reading. */
static void render_fds(FILE *f) {
  DIR *d = opendir("/proc/self/fd");
  struct rlimit rl;

  if (d) {
    unsigned long n = 0;
    struct dirent *e;

    while ((e = readdir(d)))
      if (e->d_name[0] != '.')
        n++;
    closedir(d);
    put_family(f, "process_open_fds", "gauge",
               "Number of open file descriptors.");
    fprintf(f, "process_open_fds %lu\n", n - 1);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    put_family(f, "process_max_fds", "gauge",
               "Maximum number of open file descriptors (RLIMIT_NOFILE).");
    fprintf(f, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
  }
}

/* The standard process_* families (the names every Prometheus client
 * library exports) and vmhost_build_info. */
static void render_process(FILE *f) {
  struct rusage ru;
  FILE *statm;

  put_family(f, "vmhost_build_info", "gauge",
             "Always 1; the labels say which vmhostd this is: its version and "
             "the plugin ABI it offers.");
  fprintf(f, "vmhost_build_info{version=\"");
  prom_put_label(f, PACKAGE_VERSION);
  fprintf(f, "\",abi=\"%d.%d\"} 1\n", VMH_ABI_MAJOR, VMH_ABI_MINOR);

  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    uint64_t us =
        (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
        (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    put_family(f, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
    fputs("process_cpu_seconds_total ", f);
    hist_put_seconds(f, us, 1000000);
    fputc('\n', f);
  }
  render_fds(f);

  statm = fopen("/proc/self/statm", "re");
  if (statm) {
    unsigned long long size, resident;
    unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);

    if (fscanf(statm, "%llu %llu", &size, &resident) == 2) {
      put_family(f, "process_resident_memory_bytes", "gauge",
                 "Resident memory size in bytes.");
      fprintf(f, "process_resident_memory_bytes %llu\n", resident * page);
      put_family(f, "process_virtual_memory_bytes", "gauge",
                 "Virtual memory size in bytes.");
      fprintf(f, "process_virtual_memory_bytes %llu\n", size * page);
    }
    fclose(statm);
  }
  put_family(f, "process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.");
  fprintf(f, "process_start_time_seconds %lld.%03ld\n",
          (long long)start_time.tv_sec, start_time.tv_nsec / 1000000);
}

static void render_ops(FILE *f, struct series **ops, size_t n) {
  int results[N_RESULTS];

  for (int i = 0; i < N_RESULTS; i++)
    results[i] = i;
  qsort(results, N_RESULTS, sizeof results[0], cmp_result);

  put_family(f, "vmhost_plugin_calls_total", "counter",
             "Calls of plugin operations (and the core's own, instance "
             "\"core\"), by instance, operation and result (ok or the "
             "error's name).");
  for (size_t i = 0; i < n; i++) {
    for (int r = 0; r < N_RESULTS; r++) {
      uint64_t v = atomic_load_explicit(&ops[i]->results[results[r]],
                                        memory_order_relaxed);

      if (v == 0)
        continue;
      fputs("vmhost_plugin_calls_total{instance=\"", f);
      prom_put_label(f, ops[i]->instance);
      fputs("\",op=\"", f);
      prom_put_label(f, ops[i]->name);
      fprintf(f, "\",result=\"%s\"} %" PRIu64 "\n", error_name(-results[r]), v);
    }
  }

  put_family(f, "vmhost_plugin_call_duration_seconds", "histogram",
             "How long calls of plugin operations took, by instance and "
             "operation.");
  for (size_t i = 0; i < n; i++)
    hist_write(f, "vmhost_plugin_call_duration_seconds", put_op_labels, ops[i],
               &ops[i]->duration, &op_layout);
}

/* A counter's family name: vmhost_plugin_<name>, with _total unless the
 * plugin's name ends so already. */
static void put_plugin_name(FILE *f, const struct series *s) {
  size_t n = strlen(s->name);
  bool total = n >= 6 && strcmp(s->name + n - 6, "_total") == 0;

  fprintf(f, "vmhost_plugin_%s%s", s->name,
          s->kind == SERIES_COUNTER && !total ? "_total" : "");
}

static void render_plugin(FILE *f, struct series **ps, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t v = atomic_load_explicit(&ps[i]->value, memory_order_relaxed);
    bool counter = ps[i]->kind == SERIES_COUNTER;

    if (i == 0 || strcmp(ps[i - 1]->name, ps[i]->name) != 0) {
      fputs("# HELP ", f);
      put_plugin_name(f, ps[i]);
      fprintf(f,
              " A plugin's own %s '%s', by instance (host->%s; "
              "docs/metrics.md says what each plugin counts).\n# TYPE ",
              counter ? "counter" : "gauge", ps[i]->name,
              counter ? "counter_add" : "gauge_set");
      put_plugin_name(f, ps[i]);
      fprintf(f, " %s\n", counter ? "counter" : "gauge");
    }
    put_plugin_name(f, ps[i]);
    fputs("{instance=\"", f);
    prom_put_label(f, ps[i]->instance);
    if (counter)
      fprintf(f, "\"} %" PRIu64 "\n", v);
    else
      fprintf(f, "\"} %" PRId64 "\n", (int64_t)v);
  }
}

/* ---- plugin sources ---------------------------------------------------- */

int metrics_source_set(const void *key, metrics_source_fn fn, void *opaque) {
  size_t i;
  int rc = 0;

  pthread_mutex_lock(&sources_lock);
  for (i = 0; i < n_sources && sources[i].key != key; i++)
    ;
  if (!fn) {
    if (i < n_sources)
      sources[i] = sources[--n_sources];
  } else if (i < n_sources) {
    sources[i].fn = fn;
    sources[i].opaque = opaque;
  } else {
    struct source *more = realloc(sources, (n_sources + 1) * sizeof *more);

    if (more) {
      sources = more;
      sources[n_sources++] = (struct source){key, fn, opaque};
    } else {
      rc = -1;
    }
  }
  pthread_mutex_unlock(&sources_lock);
  return rc;
}

/* The sources' families merged by name: one HELP and TYPE (the first
 * seen), then every source's samples of that family, in order of first
 * appearance. */
struct merged {
  char *name;
  char *head;
  size_t head_len;
  char *body;
  size_t body_len;
  FILE *bodyf;
};

struct merge {
  struct merged **fams; /* each on its own: its memstream points into it */
  size_t n;
  struct merged *cur; /* the family the next sample line belongs to */
  bool failed;
};

static void source_write(void *wopaque, const char *text, size_t len) {
  FILE *f = wopaque;
  fwrite(text, 1, len, f);
}

/* The family a "# HELP name …" / "# TYPE name …" line is about, found or
 * added (its header line kept when new or when it says what the first
 * did not). */
static struct merged *merge_family(struct merge *m, const char *line,
                                   size_t len) {
  const char *name = line + 7, *end = memchr(name, ' ', len - 7);
  size_t nlen = end ? (size_t)(end - name) : len - 7;
  struct merged *fam = NULL;

  for (size_t i = 0; i < m->n && !fam; i++)
    if (strlen(m->fams[i]->name) == nlen &&
        memcmp(m->fams[i]->name, name, nlen) == 0)
      fam = m->fams[i];
  if (!fam) {
    struct merged **more = realloc(m->fams, (m->n + 1) * sizeof *more);

    if (!more)
      return NULL;
    m->fams = more;
    fam = calloc(1, sizeof *fam);
    if (!fam)
      return NULL;
    fam->name = strndup(name, nlen);
    fam->bodyf = open_memstream(&fam->body, &fam->body_len);
    if (!fam->name || !fam->bodyf) {
      if (fam->bodyf)
        fclose(fam->bodyf);
      free(fam->body);
      free(fam->name);
      free(fam);
      return NULL;
    }
    m->fams[m->n++] = fam;
  }
  /* A HELP and a TYPE line each, once: the header is kept as it comes
   * from the first source that has it. */
  bool type = line[2] == 'T';
  bool have = fam->head && strstr(fam->head, type ? "# TYPE " : "# HELP ");
  if (!have) {
    char *h = realloc(fam->head, fam->head_len + len + 2);

    if (!h)
      return NULL;
    memcpy(h + fam->head_len, line, len);
    h[fam->head_len + len] = '\n';
    fam->head_len += len + 1;
    h[fam->head_len] = '\0';
    fam->head = h;
  }
  return fam;
}

static void merge_text(struct merge *m, const char *text, size_t len) {
  const char *p = text, *end = text + len;

  m->cur = NULL; /* a source starts with a header */
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

    if (n > 7 &&
        (strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0)) {
      m->cur = merge_family(m, p, n);
      if (!m->cur)
        m->failed = true;
    } else if (n > 0 && p[0] != '#' && m->cur) {
      fwrite(p, 1, n, m->cur->bodyf);
      fputc('\n', m->cur->bodyf);
    }
    p += n + 1;
  }
}

static void render_sources(FILE *f) {
  struct merge m = {0};

  pthread_mutex_lock(&sources_lock);
  for (size_t i = 0; i < n_sources; i++) {
    char *text = NULL;
    size_t len = 0;
    FILE *sf = open_memstream(&text, &len);

    if (!sf) {
      m.failed = true;
      continue;
    }
    sources[i].fn(sources[i].opaque, source_write, sf);
    if (fclose(sf) == 0)
      merge_text(&m, text, len);
    else
      m.failed = true;
    free(text);
  }
  pthread_mutex_unlock(&sources_lock);
  for (size_t i = 0; i < m.n; i++) {
    struct merged *fam = m.fams[i];

    if (fclose(fam->bodyf) != 0)
      m.failed = true;
    else if (fam->head)
      fprintf(f, "%s%s", fam->head, fam->body ? fam->body : "");
    free(fam->name);
    free(fam->head);
    free(fam->body);
    free(fam);
  }
  free(m.fams);
  if (m.failed)
    log_warn("metrics: out of memory rendering the plugins' families");
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
  render_sources(f);
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
  pthread_mutex_lock(&sources_lock);
  free(sources);
  sources = NULL;
  n_sources = 0;
  pthread_mutex_unlock(&sources_lock);
}
