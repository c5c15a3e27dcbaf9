/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mockcommon — shared part of the mock plugins: common config keys (seed,
 * latency, faults, persist), fault injection, the instance lock, the
 * crash-safe state file and validation helpers.  See mockcommon.h. */
#include <config.h>

#include "mockcommon.h"

#include "atomicfile.h"
#include "errname.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAGIC "vmhost-mock-state"
#define STATE_VERSION 1
/* A state file larger than this is not one we wrote. */
#define STATE_MAX_BYTES (256u << 20)
/* Latency is for simulating slow backends, not for hanging a daemon. */
#define LATENCY_MAX_NS (3600ull * 1000000000ull)
#define REC_MAX_FIELDS 32

/* ---- Errors and validation ---------------------------------------------- */

static int has_control(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 1;
  return 0;
}

int mock_check_id(const struct vmh_host *host, const char *what,
                  const char *id) {
  size_t len;

  if (id == NULL || id[0] == '\0')
    return vmh_fail(host, VMH_EINVAL, "%s is missing", what);
  len = strlen(id);
  if (len > MOCK_ID_MAX)
    return vmh_fail(host, VMH_EINVAL, "%s is %zu bytes long; the limit is %d",
                    what, len, MOCK_ID_MAX);
  if (has_control(id) || strchr(id, '/') != NULL)
    return vmh_fail(host, VMH_EINVAL,
                    "%s must not hold '/' or control characters", what);
  return 0;
}

int mock_check_text(const struct vmh_host *host, const char *what,
                    const char *s, size_t max) {
  size_t len;

  if (s == NULL || s[0] == '\0')
    return vmh_fail(host, VMH_EINVAL, "%s is missing", what);
  len = strlen(s);
  if (len > max)
    return vmh_fail(host, VMH_EINVAL, "%s is %zu bytes long; the limit is %zu",
                    what, len, max);
  if (has_control(s))
    return vmh_fail(host, VMH_EINVAL, "%s must not hold control characters",
                    what);
  return 0;
}

int mock_check_struct(const struct vmh_host *host, const char *what,
                      const void *p, uint32_t struct_size, size_t need) {
  if (p == NULL)
    return vmh_fail(host, VMH_EINVAL, "%s is missing (NULL)", what);
  if (struct_size < need)
    return vmh_fail(host, VMH_EINVAL,
                    "%s: struct_size %" PRIu32
                    " is smaller than this mock's %zu (set struct_size)",
                    what, struct_size, need);
  return 0;
}

int mock_dup(const struct vmh_host *host, const char *s, char **ret) {
  char *d;

  if (s == NULL) {
    *ret = NULL;
    return 0;
  }
  d = strdup(s);
  if (d == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  *ret = d;
  return 0;
}

uint64_t mock_mix64(uint64_t x) {
  x += UINT64_C(0x9e3779b97f4a7c15);
  x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
  return x ^ (x >> 31);
}

/* ---- Vector ---------------------------------------------------------------
 */

int mock_vec_insert(const struct vmh_host *host, struct ptrvec *vec, size_t at,
                    void *item) {
  if (ptrvec_insert(vec, at, item) < 0)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  return 0;
}

int mock_vec_push(const struct vmh_host *host, struct ptrvec *vec, void *item) {
  return mock_vec_insert(host, vec, vec->n, item);
}

/* ---- The instance -------------------------------------------------------- */

enum fault_mode { FAULT_ALWAYS, FAULT_NTH, FAULT_PROBABILITY };
static const char *const fault_mode_names[] = {"always", "nth", "probability"};

struct mock_fault {
  unsigned op;
  enum fault_mode mode;
  uint64_t n;
  double p;
  int code;
  const char *message; /* borrowed from the config: lives as long as we do */
};

struct mock_common {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  const char *kind;
  const char *const *ops;
  unsigned n_ops;
  int check_only;
  int persist;
  uint64_t seed;
  char *state_dir;
  char *state_file; /* "mock-<kind>.state" */
  char *name;

  pthread_mutex_t lock;
  uint64_t rng;         /* xorshift64* state; under lock */
  uint64_t *calls;      /* per op; under lock */
  uint64_t *latency_ns; /* per op; read-only after open */
  struct mock_fault *faults;
  size_t n_faults;
};

static int op_index(const struct mock_common *mc, const char *name) {
  unsigned i;

  for (i = 0; i < mc->n_ops; i++)
    if (strcmp(mc->ops[i], name) == 0)
      return (int)i;
  return -1;
}

/* "caps, define, …" for messages that list what is allowed. */
static void op_list(const struct mock_common *mc, char *buf, size_t size) {
  size_t len = 0;
  unsigned i;

  buf[0] = '\0';
  for (i = 0; i < mc->n_ops && len < size; i++)
    len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "",
                            mc->ops[i]);
}

/* A duration: a number (decimals allowed) and an optional unit: us, ms, s,
 * m; no unit means milliseconds. */
static int parse_duration(const char *s, uint64_t *ret) {
  const char *p = s;
  char *end;
  double v, unit;
  int dots = 0;

  if (!((*p >= '0' && *p <= '9') || *p == '.'))
    return -1;
  /* Scan the number ourselves: strtod alone would take "0x10", "1e3",
   * "inf" and "nan". */
  for (; (*p >= '0' && *p <= '9') || *p == '.'; p++)
    if (*p == '.' && ++dots > 1)
      return -1;
  errno = 0;
  v = strtod(s, &end);
  if (end != p || errno != 0 || !isfinite(v) || v < 0)
    return -1;
  if (*p == '\0' || strcmp(p, "ms") == 0)
    unit = 1e6;
  else if (strcmp(p, "us") == 0)
    unit = 1e3;
  else if (strcmp(p, "s") == 0)
    unit = 1e9;
  else if (strcmp(p, "m") == 0)
    unit = 60e9;
  else
    return -1;
  v *= unit;
  if (v > (double)LATENCY_MAX_NS)
    return -2;
  *ret = (uint64_t)v;
  return 0;
}

/* A probability: 0, 1 or a decimal between ("0.25", ".5"). */
static int parse_probability(const char *s, double *ret) {
  const char *p;
  char *end;
  double v;
  int dots = 0;

  if (s[0] == '\0')
    return -1;
  for (p = s; *p; p++) {
    if (*p == '.') {
      if (++dots > 1)
        return -1;
    } else if (*p < '0' || *p > '9') {
      return -1;
    }
  }
  if (strcmp(s, ".") == 0)
    return -1;
  errno = 0;
  v = strtod(s, &end);
  if (*end != '\0' || errno != 0 || !isfinite(v) || v < 0.0 || v > 1.0)
    return -1;
  *ret = v;
  return 0;
}

struct latency_walk {
  struct mock_common *mc;
  uint64_t def;
  int have_def;
  unsigned char *set; /* per op: given explicitly */
};

static int latency_key(void *opaque, const char *key,
                       const struct vmh_config *value) {
  struct latency_walk *w = opaque;
  struct mock_common *mc = w->mc;
  const struct vmh_host *host = mc->host;
  const char *s;
  uint64_t ns;
  int op = -1, rc;

  if (strcmp(key, "default") != 0) {
    op = op_index(mc, key);
    if (op < 0) {
      char ops[1024];
      op_list(mc, ops, sizeof ops);
      return vmh_fail(host, VMH_EINVAL,
                      "%s: latency: '%s' is not an operation of a mock %s; "
                      "use default or one of: %s",
                      host->config_where(value), key, mc->kind, ops);
    }
  }
  rc = host->config_string(value, NULL, NULL, &s, VMH_CFG_REQUIRED);
  if (rc < 0)
    return rc;
  rc = parse_duration(s, &ns);
  if (rc == -2)
    return vmh_fail(host, VMH_EINVAL,
                    "%s: latency of %s: '%s' is longer than an hour",
                    host->config_where(value), key, s);
  if (rc < 0)
    return vmh_fail(host, VMH_EINVAL,
                    "%s: latency of %s: '%s' is not a duration; write e.g. "
                    "50ms, 2s, 1.5s, 500us, or a plain number of "
                    "milliseconds",
                    host->config_where(value), key, s);
  if (op < 0) {
    w->def = ns;
    w->have_def = 1;
  } else {
    mc->latency_ns[op] = ns;
    w->set[op] = 1;
  }
  return 0;
}

static int read_latency(struct mock_common *mc,
                        const struct vmh_config *config) {
  const struct vmh_host *host = mc->host;
  const struct vmh_config *map;
  struct latency_walk w = {mc, 0, 0, NULL};
  unsigned i;
  int rc;

  rc = host->config_map(config, "latency", &map, 0);
  if (rc < 0 || map == NULL)
    return rc;
  w.set = calloc(mc->n_ops, 1);
  if (w.set == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  rc = host->config_keys(map, latency_key, &w);
  if (rc == 0 && w.have_def)
    for (i = 0; i < mc->n_ops; i++)
      if (!w.set[i])
        mc->latency_ns[i] = w.def;
  free(w.set);
  return rc;
}

static int read_fault(struct mock_common *mc, const struct vmh_config *node,
                      uint32_t index, struct mock_fault *f) {
  const struct vmh_host *host = mc->host;
  const char *op, *mode, *n_s, *p_s, *error, *message, *where;
  int64_t n = 1;
  int rc, i;

  /* Read every key first, so that a typo in a later key is reported by the
   * core even when an earlier one is wrong. */
  if ((rc = host->config_string(node, "op", NULL, &op, VMH_CFG_REQUIRED)) < 0 ||
      (rc = host->config_string(node, "mode", "always", &mode, 0)) < 0 ||
      (rc = host->config_string(node, "n", NULL, &n_s, 0)) < 0 ||
      (rc = host->config_string(node, "p", NULL, &p_s, 0)) < 0 ||
      (rc = host->config_string(node, "error", "io_error", &error, 0)) < 0 ||
      (rc = host->config_string(node, "message", NULL, &message, 0)) < 0)
    return rc;
  if (n_s != NULL) {
    rc = host->config_int(node, "n", 1, INT64_MAX, 1, &n, 0);
    if (rc < 0)
      return rc;
  }
  where = host->config_where(node);

  i = op_index(mc, op);
  if (i < 0) {
    char ops[1024];
    op_list(mc, ops, sizeof ops);
    return vmh_fail(host, VMH_EINVAL,
                    "%s: faults[%" PRIu32
                    "]: '%s' is not an operation of a mock %s; use one of: "
                    "%s",
                    where, index, op, mc->kind, ops);
  }
  f->op = (unsigned)i;

  if (strcmp(mode, "always") == 0) {
    f->mode = FAULT_ALWAYS;
  } else if (strcmp(mode, "nth") == 0) {
    f->mode = FAULT_NTH;
  } else if (strcmp(mode, "probability") == 0) {
    f->mode = FAULT_PROBABILITY;
  } else {
    return vmh_fail(host, VMH_EINVAL,
                    "%s: faults[%" PRIu32
                    "]: mode '%s' is not always, nth or probability",
                    where, index, mode);
  }
  /* A key that does nothing in this mode is a mistake in the test. */
  if (n_s != NULL && f->mode != FAULT_NTH)
    return vmh_fail(host, VMH_EINVAL,
                    "%s: faults[%" PRIu32 "]: n is only used with mode: nth",
                    where, index);
  if (p_s != NULL && f->mode != FAULT_PROBABILITY)
    return vmh_fail(host, VMH_EINVAL,
                    "%s: faults[%" PRIu32
                    "]: p is only used with mode: probability",
                    where, index);
  f->n = (uint64_t)n;
  if (f->mode == FAULT_PROBABILITY) {
    if (p_s == NULL)
      return vmh_fail(host, VMH_EINVAL,
                      "%s: faults[%" PRIu32
                      "]: mode: probability needs p (0.0 to 1.0)",
                      where, index);
    if (parse_probability(p_s, &f->p) < 0)
      return vmh_fail(host, VMH_EINVAL,
                      "%s: faults[%" PRIu32
                      "]: p '%s' is not a number from 0.0 to 1.0",
                      where, index, p_s);
  }

  f->code = errname_code(error);
  if (f->code >= 0) {
    char names[512];
    size_t len = 0;
    for (i = 1; i <= -VMH_ERROR_LOWEST; i++)
      len += (size_t)snprintf(names + len, sizeof names - len, "%s%s",
                              i > 1 ? ", " : "", errname_name(-(int)i));
    return vmh_fail(host, VMH_EINVAL,
                    "%s: faults[%" PRIu32 "]: error '%s' is not one of: %s",
                    where, index, error, names);
  }
  if (message != NULL) {
    rc = mock_check_text(host, "fault message", message, 1000);
    if (rc < 0)
      return vmh_fail(host, rc, "%s: faults[%" PRIu32 "]: message: %s", where,
                      index,
                      "must be 1..1000 bytes without control characters");
  }
  f->message = message;
  return 0;
}

static int read_faults(struct mock_common *mc,
                       const struct vmh_config *config) {
  const struct vmh_host *host = mc->host;
  const struct vmh_config *list, *node;
  uint32_t n, i;
  int rc;

  rc = host->config_list(config, "faults", &list, &n, 0);
  if (rc < 0 || n == 0)
    return rc;
  mc->faults = calloc(n, sizeof *mc->faults);
  if (mc->faults == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  for (i = 0; i < n; i++) {
    rc = host->config_at(list, i, &node);
    if (rc < 0)
      return rc;
    rc = read_fault(mc, node, i, &mc->faults[i]);
    if (rc < 0)
      return rc;
    mc->n_faults++;
  }
  return 0;
}

static char *strjoin(const char *a, const char *b, const char *c) {
  size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
  char *s = malloc(la + lb + lc + 1);

  if (s == NULL)
    return NULL;
  memcpy(s, a, la);
  memcpy(s + la, b, lb);
  memcpy(s + la + lb, c, lc + 1);
  return s;
}

void mock_common_close(struct mock_common *mc) {
  if (mc == NULL)
    return;
  free(mc->calls);
  free(mc->latency_ns);
  free(mc->faults);
  free(mc->state_dir);
  free(mc->state_file);
  free(mc->name);
  pthread_mutex_destroy(&mc->lock);
  free(mc);
}

int mock_common_open(const struct vmh_host *host,
                     const struct vmh_instance *inst,
                     const struct vmh_config *config, const char *kind,
                     const char *const *ops, uint32_t open_flags,
                     struct mock_common **ret) {
  struct mock_common *mc;
  const char *dir, *name;
  int64_t seed;
  int rc, persist;

  /* host->error is among the first fields of every version of the table,
   * so it can report a table that is too short. */
  if (host->struct_size < sizeof *host)
    return vmh_fail(host, VMH_EINVAL,
                    "the host services table is %" PRIu32
                    " bytes; this mock needs %zu",
                    host->struct_size, sizeof *host);
  rc = vmh_check_flags(host, "open", open_flags, VMH_OPEN_CHECK_ONLY);
  if (rc < 0)
    return rc;

  mc = calloc(1, sizeof *mc);
  if (mc == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  if (pthread_mutex_init(&mc->lock, NULL) != 0) {
    free(mc);
    return vmh_fail(host, VMH_EINTERNAL, "cannot create a mutex");
  }
  mc->host = host;
  mc->inst = inst;
  mc->kind = kind;
  mc->ops = ops;
  while (ops[mc->n_ops] != NULL)
    mc->n_ops++;
  mc->check_only = (open_flags & VMH_OPEN_CHECK_ONLY) != 0;

  rc = VMH_ENOMEM;
  mc->calls = calloc(mc->n_ops, sizeof *mc->calls);
  mc->latency_ns = calloc(mc->n_ops, sizeof *mc->latency_ns);
  if (!mc->calls || !mc->latency_ns)
    goto oom;

  rc = host->config_int(config, "seed", 0, INT64_MAX, 1, &seed, 0);
  if (rc < 0)
    goto fail;
  mc->seed = (uint64_t)seed;
  /* xorshift64* must not start at 0; mixing the seed also makes nearby
   * seeds give unrelated streams. */
  mc->rng = mock_mix64(mc->seed);
  if (mc->rng == 0)
    mc->rng = UINT64_C(0x9e3779b97f4a7c15);
  rc = host->config_bool(config, "persist", 0, &persist, 0);
  if (rc < 0)
    goto fail;
  mc->persist = persist;
  rc = read_latency(mc, config);
  if (rc < 0)
    goto fail;
  rc = read_faults(mc, config);
  if (rc < 0)
    goto fail;

  dir = host->state_dir(inst);
  name = host->instance_name(inst);
  rc = VMH_ENOMEM;
  mc->state_dir = strdup(dir ? dir : "");
  mc->name = strdup(name ? name : kind);
  mc->state_file = strjoin("mock-", kind, ".state");
  if (!mc->state_dir || !mc->name || !mc->state_file)
    goto oom;
  if (mc->persist && !mc->check_only && mc->state_dir[0] == '\0') {
    rc = vmh_fail(host, VMH_EINVAL,
                  "persist: true needs a state directory, and the core "
                  "gave none");
    goto fail;
  }

  host->log(inst, VMH_LOG_DEBUG,
            "mock %s: seed %" PRIu64 ", %zu fault(s), persist %s", kind,
            mc->seed, mc->n_faults, mc->persist ? "on" : "off");
  *ret = mc;
  return 0;

oom:
  rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
fail:
  mock_common_close(mc);
  return rc;
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts, rem;

  ts.tv_sec = (time_t)(ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  while (nanosleep(&ts, &rem) != 0 && errno == EINTR)
    ts = rem;
}

/* xorshift64*: a uniform double in [0, 1).  Under the lock. */
static double rng_double(struct mock_common *mc) {
  uint64_t x = mc->rng;

  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  mc->rng = x;
  return (double)((x * UINT64_C(0x2545f4914f6cdd1d)) >> 11) * 0x1.0p-53;
}

int mock_common_enter(struct mock_common *mc, unsigned op) {
  const struct vmh_host *host = mc->host;
  const struct mock_fault *hit = NULL;
  uint64_t count;
  size_t i;

  if (mc->latency_ns[op])
    sleep_ns(mc->latency_ns[op]);

  pthread_mutex_lock(&mc->lock);
  count = ++mc->calls[op];
  /* The first fault that fires wins; the ones after it are not evaluated,
   * so they draw no random number and a seed replays exactly. */
  for (i = 0; i < mc->n_faults && hit == NULL; i++) {
    const struct mock_fault *f = &mc->faults[i];
    if (f->op != op)
      continue;
    switch (f->mode) {
      case FAULT_ALWAYS:
        hit = f;
        break;
      case FAULT_NTH:
        if (count == f->n)
          hit = f;
        break;
      case FAULT_PROBABILITY:
        if (rng_double(mc) < f->p)
          hit = f;
        break;
    }
  }
  pthread_mutex_unlock(&mc->lock);

  /* Calls per op are the core's (vmhost_plugin_calls_total). */
  if (hit == NULL)
    return 0;
  host->counter_add(mc->inst, "faults_injected_total", 1);
  host->log(mc->inst, VMH_LOG_INFO,
            "injected fault: %s call %" PRIu64 " (%s) fails with %s",
            mc->ops[op], count, fault_mode_names[hit->mode],
            errname_name(hit->code));
  if (hit->message != NULL)
    host->error("%s", hit->message);
  else
    host->error("injected fault: %s (%s)", mc->ops[op],
                fault_mode_names[hit->mode]);
  return hit->code;
}

uint64_t mock_common_calls(struct mock_common *mc, unsigned op) {
  uint64_t n;

  pthread_mutex_lock(&mc->lock);
  n = mc->calls[op];
  pthread_mutex_unlock(&mc->lock);
  return n;
}

void mock_common_lock(struct mock_common *mc) {
  pthread_mutex_lock(&mc->lock);
}

void mock_common_unlock(struct mock_common *mc) {
  pthread_mutex_unlock(&mc->lock);
}

uint64_t mock_common_seed(const struct mock_common *mc) {
  return mc->seed;
}

int mock_common_check_only(const struct mock_common *mc) {
  return mc->check_only;
}

int mock_common_persist(const struct mock_common *mc) {
  return mc->persist;
}

const char *mock_common_state_dir(const struct mock_common *mc) {
  return mc->state_dir;
}

const char *mock_common_name(const struct mock_common *mc) {
  return mc->name;
}

/* ---- Atomic write ---------------------------------------------------------
 */

/* ---- State file: writing --------------------------------------------------
 */

struct mock_out {
  char *buf;
  size_t len, cap;
  int oom;
  int in_rec;
  uint64_t n_rec;
};

static void out_put(struct mock_out *out, const char *s, size_t len) {
  if (out->oom)
    return;
  if (out->len + len + 1 > out->cap) {
    size_t cap = out->cap ? out->cap : 4096;
    char *b;
    while (out->len + len + 1 > cap)
      cap *= 2;
    b = realloc(out->buf, cap);
    if (b == NULL) {
      out->oom = 1;
      return;
    }
    out->buf = b;
    out->cap = cap;
  }
  memcpy(out->buf + out->len, s, len);
  out->len += len;
  out->buf[out->len] = '\0';
}

static void out_puts(struct mock_out *out, const char *s) {
  out_put(out, s, strlen(s));
}

static int plain_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c != '\0' && strchr("._:/@+,-", c));
}

void mock_out_rec(struct mock_out *out, const char *type) {
  if (out->in_rec)
    out_puts(out, "\n");
  out_puts(out, type);
  out->in_rec = 1;
  out->n_rec++;
}

void mock_out_str(struct mock_out *out, const char *key, const char *value) {
  static const char hex[] = "0123456789ABCDEF";
  const unsigned char *p;

  if (value == NULL)
    return;
  out_puts(out, " ");
  out_puts(out, key);
  out_puts(out, "=");
  for (p = (const unsigned char *)value; *p; p++) {
    if (plain_char(*p)) {
      out_put(out, (const char *)p, 1);
    } else {
      char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      out_put(out, esc, 3);
    }
  }
}

void mock_out_u64(struct mock_out *out, const char *key, uint64_t value) {
  char buf[24];

  snprintf(buf, sizeof buf, "%" PRIu64, value);
  mock_out_str(out, key, buf);
}

void mock_out_i64(struct mock_out *out, const char *key, int64_t value) {
  char buf[24];

  snprintf(buf, sizeof buf, "%" PRId64, value);
  mock_out_str(out, key, buf);
}

static int write_state(struct mock_common *mc, const char *data, size_t len) {
  char *path = strjoin(mc->state_dir, "/", mc->state_file);
  int rc = 0;

  if (path == NULL)
    return vmh_fail(mc->host, VMH_ENOMEM, "out of memory");
  if (atomic_write(path, data, len, 0600) < 0)
    rc = vmh_fail(mc->host, VMH_EIO, "cannot write %s: %s", path,
                  strerror(errno));
  free(path);
  return rc;
}

int mock_common_save(struct mock_common *mc, mock_dump_fn dump, void *opaque) {
  struct mock_out out = {0};
  char end[64];
  int rc;

  if (!mc->persist || mc->check_only)
    return 0;
  out_puts(&out, STATE_MAGIC " 1 ");
  out_puts(&out, mc->kind);
  out_puts(&out, "\n");
  rc = dump(opaque, &out);
  if (rc == 0) {
    if (out.in_rec)
      out_puts(&out, "\n");
    snprintf(end, sizeof end, "end records=%" PRIu64 "\n", out.n_rec);
    out_puts(&out, end);
    if (out.oom)
      rc = vmh_fail(mc->host, VMH_ENOMEM,
                    "out of memory writing the state file");
    else
      rc = write_state(mc, out.buf, out.len);
  }
  free(out.buf);
  return rc;
}

/* ---- State file: reading --------------------------------------------------
 */

struct mock_rec {
  struct mock_common *mc;
  unsigned line;
  const char *type;
  unsigned n;
  struct {
    const char *key;
    const char *value;
    int used;
  } f[REC_MAX_FIELDS];
};

int mock_rec_fail(struct mock_rec *rec, const char *fmt, ...) {
  char msg[768];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return vmh_fail(rec->mc->host, VMH_EIO,
                  "mock %s state file %s/%s:%u: %s (the file is corrupt: "
                  "repair or remove it)",
                  rec->mc->kind, rec->mc->state_dir, rec->mc->state_file,
                  rec->line, msg);
}

const char *mock_rec_type(const struct mock_rec *rec) {
  return rec->type;
}

static const char *rec_field(struct mock_rec *rec, const char *key) {
  unsigned i;

  for (i = 0; i < rec->n; i++)
    if (strcmp(rec->f[i].key, key) == 0) {
      rec->f[i].used = 1;
      return rec->f[i].value;
    }
  return NULL;
}

int mock_rec_str(struct mock_rec *rec, const char *key, int required,
                 const char **ret) {
  const char *v = rec_field(rec, key);

  if (v == NULL && required)
    return mock_rec_fail(rec, "%s record without %s", rec->type, key);
  *ret = v;
  return 0;
}

int mock_rec_u64(struct mock_rec *rec, const char *key, int required,
                 uint64_t min, uint64_t max, uint64_t def, uint64_t *ret) {
  const char *v = rec_field(rec, key), *p;
  uint64_t x = 0;

  if (v == NULL) {
    if (required)
      return mock_rec_fail(rec, "%s record without %s", rec->type, key);
    *ret = def;
    return 0;
  }
  if (*v == '\0')
    goto bad;
  for (p = v; *p; p++) {
    if (*p < '0' || *p > '9' || x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
      goto bad;
    x = x * 10 + (uint64_t)(*p - '0');
  }
  if (x < min || x > max)
    return mock_rec_fail(rec,
                         "%s=%s is out of range (%" PRIu64 "..%" PRIu64 ")",
                         key, v, min, max);
  *ret = x;
  return 0;
bad:
  return mock_rec_fail(rec, "%s=%s is not a number", key, v);
}

int mock_rec_i64(struct mock_rec *rec, const char *key, int required,
                 int64_t def, int64_t *ret) {
  const char *v = rec_field(rec, key);
  char *end;
  long long x;

  if (v == NULL) {
    if (required)
      return mock_rec_fail(rec, "%s record without %s", rec->type, key);
    *ret = def;
    return 0;
  }
  /* strtoll alone would also take leading blanks and a '+'. */
  if (!(*v == '-' || (*v >= '0' && *v <= '9')))
    return mock_rec_fail(rec, "%s=%s is not a number", key, v);
  errno = 0;
  x = strtoll(v, &end, 10);
  if (*end != '\0' || errno != 0 || end == v)
    return mock_rec_fail(rec, "%s=%s is not a number", key, v);
  *ret = (int64_t)x;
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Decode a value in place; -1 on a byte we never write or a bad escape. */
static int decode(char *s) {
  char *r = s, *w = s;

  while (*r) {
    if (*r == '%') {
      int hi = hexval(r[1]), lo = hi < 0 ? -1 : hexval(r[2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return -1;
      *w++ = (char)(hi << 4 | lo);
      r += 3;
    } else if (plain_char((unsigned char)*r)) {
      *w++ = *r++;
    } else {
      return -1;
    }
  }
  *w = '\0';
  return 0;
}

static int valid_key(const char *k) {
  if (*k == '\0')
    return 0;
  for (; *k; k++)
    if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_'))
      return 0;
  return 1;
}

/* Split one line into type and fields (in place). */
static int parse_line(struct mock_rec *rec, char *line) {
  char *tok = line, *sp, *eq;
  unsigned i;

  sp = strchr(tok, ' ');
  if (sp)
    *sp = '\0';
  if (!valid_key(tok))
    return mock_rec_fail(rec, "bad record type '%.40s'", tok);
  rec->type = tok;
  while (sp) {
    tok = sp + 1;
    sp = strchr(tok, ' ');
    if (sp)
      *sp = '\0';
    eq = strchr(tok, '=');
    if (eq == NULL)
      return mock_rec_fail(rec, "field '%.40s' has no '='", tok);
    *eq = '\0';
    if (!valid_key(tok))
      return mock_rec_fail(rec, "bad field name '%.40s'", tok);
    if (decode(eq + 1) < 0)
      return mock_rec_fail(rec, "bad value of field %s", tok);
    for (i = 0; i < rec->n; i++)
      if (strcmp(rec->f[i].key, tok) == 0)
        return mock_rec_fail(rec, "field %s given twice", tok);
    if (rec->n == REC_MAX_FIELDS)
      return mock_rec_fail(rec, "too many fields");
    rec->f[rec->n].key = tok;
    rec->f[rec->n].value = eq + 1;
    rec->f[rec->n].used = 0;
    rec->n++;
  }
  return 0;
}

static int read_file(struct mock_common *mc, const char *path, char **ret,
                     size_t *ret_len) {
  const struct vmh_host *host = mc->host;
  struct stat st;
  char *buf;
  size_t len = 0;
  int fd;

  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return 1;
    return vmh_fail(host, VMH_EIO, "cannot open state file %s: %s", path,
                    strerror(errno));
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
      st.st_size > (off_t)STATE_MAX_BYTES) {
    close(fd);
    return vmh_fail(host, VMH_EIO,
                    "state file %s is not a regular file under %u MiB", path,
                    STATE_MAX_BYTES >> 20);
  }
  buf = malloc((size_t)st.st_size + 1);
  if (buf == NULL) {
    close(fd);
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  }
  while (len < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      close(fd);
      free(buf);
      return vmh_fail(host, VMH_EIO, "cannot read state file %s: %s", path,
                      n < 0 ? strerror(err) : "file shrank while read");
    }
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  *ret = buf;
  *ret_len = len;
  return 0;
}

static int load_buffer(struct mock_common *mc, char *buf, size_t len,
                       mock_load_fn fn, void *opaque) {
  struct mock_rec rec = {.mc = mc};
  char header[64];
  char *p = buf, *end = buf + len, *nl;
  uint64_t n_rec = 0, want;
  int ended = 0, rc;
  unsigned i;

  if (memchr(buf, '\0', len) != NULL)
    return mock_rec_fail(&rec, "NUL byte in the file");
  if (len == 0 || buf[len - 1] != '\n')
    return mock_rec_fail(&rec, "truncated: no final newline");
  snprintf(header, sizeof header, STATE_MAGIC " %d %s", STATE_VERSION,
           mc->kind);
  while (p < end) {
    nl = memchr(p, '\n', (size_t)(end - p));
    *nl = '\0';
    rec.line++;
    rec.n = 0;
    if (ended)
      return mock_rec_fail(&rec, "data after the end record");
    if (rec.line == 1) {
      if (strcmp(p, header) != 0)
        return mock_rec_fail(&rec, "first line is not '%s'", header);
    } else {
      rc = parse_line(&rec, p);
      if (rc < 0)
        return rc;
      if (strcmp(rec.type, "end") == 0) {
        rc = mock_rec_u64(&rec, "records", 1, 0, UINT64_MAX, 0, &want);
        if (rc < 0)
          return rc;
        if (want != n_rec)
          return mock_rec_fail(&rec,
                               "end record counts %" PRIu64
                               " records, the file has %" PRIu64,
                               want, n_rec);
        ended = 1;
      } else {
        rc = fn(opaque, &rec);
        if (rc < 0)
          return rc;
        n_rec++;
      }
      for (i = 0; i < rec.n; i++)
        if (!rec.f[i].used)
          return mock_rec_fail(&rec, "unknown field %s in a %s record",
                               rec.f[i].key, rec.type);
    }
    p = nl + 1;
  }
  if (!ended)
    return mock_rec_fail(&rec, "no end record: the file is truncated");
  return 0;
}

int mock_common_load(struct mock_common *mc, mock_load_fn fn, void *opaque,
                     int *ret_found) {
  char *path, *buf = NULL;
  size_t len = 0;
  int rc;

  *ret_found = 0;
  if (!mc->persist || mc->check_only)
    return 0;
  path = strjoin(mc->state_dir, "/", mc->state_file);
  if (path == NULL)
    return vmh_fail(mc->host, VMH_ENOMEM, "out of memory");
  rc = read_file(mc, path, &buf, &len);
  free(path);
  if (rc != 0)
    return rc > 0 ? 0 : rc; /* 1: no file yet */
  rc = load_buffer(mc, buf, len, fn, opaque);
  free(buf);
  if (rc == 0)
    *ret_found = 1;
  return rc;
}
