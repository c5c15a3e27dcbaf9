/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentdist — the agent downloads of the REST front-end (agentdist.h).
 *
 * Threads.  The route functions run on the I/O thread: they take a token
 * of the peer's bucket (429 with retry-after when there is none), check
 * the arch against the fixed set and queue a job.  One worker thread per
 * instance owns the artifacts (the slots below): it stats, reads and
 * hashes files, fetches from upstream, and answers; so a slow disk or
 * upstream never holds the I/O thread, and no lock guards the slots. */
#include <config.h>

#include <vmhost/vmhost-plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agentdist.h"
#include "atomicfile.h"
#include "cleanup.h"
#include "imagefetch.h"
#include "rest.h"

/* The install script's template (agentscript.c, made from
 * agent-install.sh and the agent's config and unit by Makefile.am). */
extern const char agent_script_template[];
extern const char agent_script_yaml[];
extern const char agent_script_unit[];

/* ---- The artifacts: a fixed set, never a name from a request ------------ */

enum { N_ARCH = 2, N_SLOTS = 4 };
static const char *const arch_names[N_ARCH] = {"amd64", "arm64"};
static const char *const arch_aliases[N_ARCH] = {"x86_64", "aarch64"};
/* Slot i: arch i / 2, .deb when i is odd; names as in the API's paths. */
static const char *const slot_names[N_SLOTS] = {
    "linux/amd64", "linux/amd64.deb", "linux/arm64", "linux/arm64.deb"};
static const char *const slot_types[2] = {
    "application/octet-stream", "application/vnd.debian.binary-package"};

struct slot {
  struct h2s_body *body; /* the bytes served, or NULL */
  char sha256[FETCH_SHA256_HEX + 1];
  uint64_t size;
  /* The file the body was read from, to notice a replaced one. */
  dev_t dev;
  ino_t ino;
  struct timespec mtime, ctime;
  off_t st_size;
  char where[16]; /* "local", "cache", "upstream" */
};

/* A request waiting for the worker. */
enum job_kind { JOB_VERSION, JOB_SCRIPT, JOB_FILE };
struct job {
  struct job *next;
  struct call *k;
  enum job_kind kind;
  int slot;
  char node[300]; /* JOB_SCRIPT: the node's URL the script names */
};

/* A peer's token bucket (the I/O thread's only). */
struct bucket {
  unsigned char key[17];
  double tokens;
  uint64_t t_us; /* last refill */
  bool used;
};
enum { N_BUCKETS = 256, MAX_QUEUED = 64 };

struct agentdist {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  /* Config. */
  char **paths; /* directories (relative ones resolved against the config
                 file's), in search order */
  uint32_t n_paths;
  char *cache_dir;
  const char *upstream; /* base URL, or NULL */
  const char *url;      /* the node's URL for install.sh, or NULL */
  const char *version;
  char pinned[N_SLOTS][FETCH_SHA256_HEX + 1]; /* "" when not pinned */
  uint64_t max_size;
  double per_us, burst; /* tokens per microsecond, bucket size */
  struct fetch_policy policy;
  /* Worker's. */
  struct slot slots[N_SLOTS];
  /* I/O thread's. */
  struct bucket buckets[N_BUCKETS];
  /* The queue. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct job *head, **tail;
  unsigned queued;
  bool stopping, started;
  pthread_t thread;
};

/* ---- Config ------------------------------------------------------------- */

static int read_paths(struct agentdist *a, const struct vmh_config *m) {
  const struct vmh_config *list, *el;
  uint32_t n = 0;
  int rc;
  if ((rc = a->host->config_list(m, "paths", &list, &n, 0)) < 0)
    return rc;
  bool dflt = list == NULL;
  if (dflt)
    n = 1;
  if (!(a->paths = calloc(n, sizeof *a->paths)))
    return vmh_fail(a->host, VMH_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    const char *d = AGENT_DIST_DIR;
    if (!dflt &&
        ((rc = a->host->config_at(list, i, &el)) < 0 ||
         (rc = a->host->config_path(el, NULL, NULL, &d, VMH_CFG_REQUIRED)) < 0))
      return rc;
    if (!(a->paths[i] = strdup(d)))
      return vmh_fail(a->host, VMH_ENOMEM, "out of memory");
    a->n_paths = i + 1;
  }
  return 0;
}

/* agent.sha256: {linux/amd64: HEX, …}: only the fixed names. */
struct pin_ctx {
  struct agentdist *a;
  const struct vmh_config *map;
};

static int read_pin(void *opaque, const char *key,
                    const struct vmh_config *node) {
  struct pin_ctx *p = opaque;
  struct agentdist *a = p->a;
  const char *hex;
  int rc;
  for (int i = 0; i < N_SLOTS; i++) {
    if (strcmp(key, slot_names[i]))
      continue;
    if ((rc = a->host->config_string(p->map, key, NULL, &hex, 0)) < 0)
      return rc;
    char what[64];
    snprintf(what, sizeof what, "agent.sha256.%s", key);
    /* fetch_check checks the upstream URL's scheme and the digest. */
    return fetch_check(a->host, what,
                       a->upstream ? a->upstream : "https://upstream.invalid",
                       hex, &a->policy, a->pinned[i]);
  }
  return vmh_fail(a->host, VMH_EINVAL,
                  "%s: agent.sha256: '%s' is not an artifact (linux/amd64, "
                  "linux/amd64.deb, linux/arm64, linux/arm64.deb)",
                  a->host->config_where(node), key);
}

static int read_conf(struct agentdist *a, const struct vmh_config *cfg) {
  const struct vmh_config *m, *pins;
  const char *cache;
  int64_t per_minute, burst;
  int rc;
  if ((rc = a->host->config_map(cfg, "agent", &m, 0)) < 0 ||
      (rc = read_paths(a, m)) < 0 ||
      (rc = a->host->config_string(m, "upstream", NULL, &a->upstream, 0)) < 0 ||
      (rc = a->host->config_string(m, "url", NULL, &a->url, 0)) < 0 ||
      (rc = a->host->config_string(m, "version", PACKAGE_VERSION, &a->version,
                                   0)) < 0 ||
      (rc = a->host->config_path(m, "cache_dir", NULL, &cache, 0)) < 0 ||
      (rc = a->host->config_size(m, "max_size", 1 << 20, 1ULL << 32, 256 << 20,
                                 &a->max_size, 0)) < 0 ||
      (rc = a->host->config_int(m, "requests_per_minute", 1, 600000, 60,
                                &per_minute, 0)) < 0 ||
      (rc = a->host->config_int(m, "burst", 1, 100000, 20, &burst, 0)) < 0 ||
      (rc = fetch_policy_read(a->host, m, &a->policy)) < 0 ||
      (rc = a->host->config_map(m, "sha256", &pins, 0)) < 0)
    return rc;
  /* The node's URL goes into a shell script: plain characters only. */
  if (a->url && (strncmp(a->url, "http", 4) ||
                 strspn(a->url,
                        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR"
                        "STUVWXYZ0123456789:/.-[]_") != strlen(a->url) ||
                 strlen(a->url) > 255))
    return vmh_fail(a->host, VMH_EINVAL,
                    "%s: agent.url: '%s' must be http(s)://HOST[:PORT] "
                    "(letters, digits, '.', '-', ':', '[]', '/')",
                    a->host->config_key_where(m, "url"), a->url);
  if (strspn(a->version,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX"
             "YZ0123456789.+~-") != strlen(a->version))
    return vmh_fail(a->host, VMH_EINVAL,
                    "%s: agent.version: '%s' may hold letters, digits and "
                    ". + ~ - only",
                    a->host->config_key_where(m, "version"), a->version);
  if (a->upstream) {
    char dummy[FETCH_SHA256_HEX + 1];
    if ((rc = fetch_check(a->host, "agent.upstream", a->upstream,
                          "0000000000000000000000000000000000000000000000000"
                          "000000000000000",
                          &a->policy, dummy)) < 0)
      return rc;
  }
  struct pin_ctx p = {a, pins};
  if (pins && (rc = a->host->config_keys(pins, read_pin, &p)) < 0)
    return rc;
  /* The worker waits for a download (other agent requests queue behind
   * it): shorter bounds than an image import's. */
  a->policy.connect_timeout = 10;
  a->policy.low_speed_time = 20;
  a->policy.tries = 3;
  a->per_us = (double)per_minute / 60e6;
  a->burst = (double)burst;
  if (cache) {
    a->cache_dir = strdup(cache);
  } else {
    const char *sd = a->host->state_dir(a->inst);
    if (sd && asprintf(&a->cache_dir, "%s/agent-cache", sd) < 0)
      a->cache_dir = NULL;
    else if (!sd)
      return 0; /* check-only: no state dir yet */
  }
  if (!a->cache_dir)
    return vmh_fail(a->host, VMH_ENOMEM, "out of memory");
  return 0;
}

int agentdist_load(const struct vmh_host *host) {
  return fetch_global_init(host);
}

int agentdist_open(const struct vmh_host *host, const struct vmh_instance *inst,
                   const struct vmh_config *cfg, bool check_only,
                   struct agentdist **ret) {
  struct agentdist *a = calloc(1, sizeof *a);
  if (!a)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  a->host = host;
  a->inst = inst;
  a->tail = &a->head;
  pthread_mutex_init(&a->lock, NULL);
  pthread_cond_init(&a->cond, NULL);
  int rc = read_conf(a, cfg);
  if (rc < 0 || check_only) {
    agentdist_free(a);
    *ret = NULL;
    return rc < 0 ? rc : 0;
  }
  *ret = a;
  return 0;
}

void agentdist_free(struct agentdist *a) {
  if (!a)
    return;
  for (uint32_t i = 0; i < a->n_paths; i++)
    free(a->paths[i]);
  free(a->paths);
  free(a->cache_dir);
  fetch_policy_free(&a->policy);
  for (int i = 0; i < N_SLOTS; i++)
    if (a->slots[i].body)
      h2s_body_unref(a->slots[i].body);
  pthread_mutex_destroy(&a->lock);
  pthread_cond_destroy(&a->cond);
  free(a);
}

/* ---- Files (worker) ----------------------------------------------------- */

static void hex(const unsigned char *d, size_t n, char *out) {
  static const char x[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = x[d[i] >> 4];
    out[2 * i + 1] = x[d[i] & 15];
  }
  out[2 * n] = '\0';
}

static void sha256_hex(const void *data, size_t len,
                       char out[FETCH_SHA256_HEX + 1]) {
  unsigned char d[32];
  gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, d);
  hex(d, sizeof d, out);
}

/* Whether real (resolved) lies under the directory dir (resolved too). */
static bool under(const char *dir, const char *real) {
  char rd[PATH_MAX];
  if (!realpath(dir, rd))
    return false;
  size_t n = strlen(rd);
  return !strncmp(real, rd, n) && (real[n] == '/' || !strcmp(rd, "/"));
}

static bool same_file(const struct slot *s, const struct stat *st) {
  return s->body && s->dev == st->st_dev && s->ino == st->st_ino &&
         s->st_size == st->st_size && s->mtime.tv_sec == st->st_mtim.tv_sec &&
         s->mtime.tv_nsec == st->st_mtim.tv_nsec &&
         s->ctime.tv_sec == st->st_ctim.tv_sec &&
         s->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* Read the open file fd (st) into the slot.  0, or a VMH_E* code with the
 * message set. */
static int load_file(struct agentdist *a, struct slot *s, int fd,
                     const struct stat *st, const char *path,
                     const char *where) {
  if ((uint64_t)st->st_size > a->max_size)
    return vmh_fail(a->host, VMH_EIO, "%s is larger than agent.max_size", path);
  size_t len = (size_t)st->st_size, got = 0;
  char *data = malloc(len ? len : 1);
  if (!data)
    return vmh_fail(a->host, VMH_ENOMEM, "out of memory");
  while (got < len) {
    ssize_t n = pread(fd, data + got, len - got, (off_t)got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      free(data);
      return vmh_fail(a->host, VMH_EIO, "cannot read %s: %s", path,
                      n ? strerror(errno) : "it shrank while read");
    }
    got += (size_t)n;
  }
  char sum[FETCH_SHA256_HEX + 1];
  sha256_hex(data, len, sum);
  struct h2s_body *b = h2s_body_take(data, len);
  if (!b)
    return vmh_fail(a->host, VMH_ENOMEM, "out of memory");
  if (s->body)
    h2s_body_unref(s->body);
  s->body = b;
  memcpy(s->sha256, sum, sizeof sum);
  s->size = len;
  s->dev = st->st_dev;
  s->ino = st->st_ino;
  s->st_size = st->st_size;
  s->mtime = st->st_mtim;
  s->ctime = st->st_ctim;
  snprintf(s->where, sizeof s->where, "%s", where);
  return 0;
}

/* Look for slot i's file in dir: 0 found (the slot holds it), 1 not
 * there, or a VMH_E* code with the message set. */
static int from_dir(struct agentdist *a, int i, const char *dir,
                    const char *where) {
  struct slot *s = &a->slots[i];
  _cleanup_free_ char *path = NULL;
  char real[PATH_MAX];
  struct stat st;
  if (asprintf(&path, "%s/%s", dir, slot_names[i]) < 0)
    return vmh_fail(a->host, VMH_ENOMEM, "out of memory");
  _cleanup_close_ int fd =
      open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 1;
    return vmh_fail(a->host, VMH_EIO, "cannot open %s: %s", path,
                    strerror(errno));
  }
  /* A link may lead elsewhere in the same directory, never out of it. */
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !realpath(path, real) ||
      !under(dir, real)) {
    a->host->log(a->inst, VMH_LOG_WARN,
                 "agent: %s is not a regular file inside %s: ignored", path,
                 dir);
    return 1;
  }
  if (same_file(s, &st) && !strcmp(s->where, where))
    return 0;
  return load_file(a, s, fd, &st, path, where);
}

/* The cached copy counts only while it is what agent.sha256 pins. */
static int from_cache(struct agentdist *a, int i) {
  if (!a->pinned[i][0])
    return 1;
  int r = from_dir(a, i, a->cache_dir, "cache");
  if (r == 0 && strcmp(a->slots[i].sha256, a->pinned[i]))
    return 1;
  return r;
}

static void slot_drop(struct slot *s) {
  if (s->body)
    h2s_body_unref(s->body);
  memset(s, 0, sizeof *s);
}

/* Find slot i on disk: 0 (the slot holds it), 1 (nowhere on disk: the
 * upstream is left), or a VMH_E* code with the message set. */
static int find_local(struct agentdist *a, int i) {
  for (uint32_t d = 0; d < a->n_paths; d++) {
    int r = from_dir(a, i, a->paths[d], "local");
    if (r <= 0)
      return r;
  }
  int r = from_cache(a, i);
  if (r == 1 && strcmp(a->slots[i].where, "upstream"))
    slot_drop(&a->slots[i]); /* gone from disk: not served any more */
  return r;
}

/* ---- Upstream (worker) -------------------------------------------------- */

struct membuf {
  struct agentdist *a;
  char *p;
  size_t len, cap;
};

static int mem_write(void *opaque, const void *buf, size_t len,
                     uint64_t offset) {
  struct membuf *m = opaque;
  (void)offset; /* sequential: always m->len */
  if (m->len + len > m->a->max_size)
    return vmh_fail(m->a->host, VMH_EIO,
                    "the upstream's file is larger than agent.max_size");
  if (m->len + len > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 1 << 20;
    while (cap < m->len + len)
      cap *= 2;
    char *p = realloc(m->p, cap);
    if (!p)
      return vmh_fail(m->a->host, VMH_ENOMEM, "out of memory");
    m->p = p;
    m->cap = cap;
  }
  memcpy(m->p + m->len, buf, len);
  m->len += len;
  return 0;
}

static int mem_truncate(void *opaque, uint64_t size) {
  struct membuf *m = opaque;
  if (size < m->len)
    m->len = (size_t)size;
  return 0;
}

/* mkdir -p of cache_dir/linux. */
static int make_cache_dirs(struct agentdist *a) {
  _cleanup_free_ char *sub = NULL;
  if (asprintf(&sub, "%s/linux", a->cache_dir) < 0)
    return -1;
  if (mkdir(a->cache_dir, 0755) < 0 && errno != EEXIST)
    return -1;
  if (mkdir(sub, 0755) < 0 && errno != EEXIST)
    return -1;
  return 0;
}

/* Keep a verified download in the cache (a failure costs only the next
 * download: logged). */
static void cache_keep(struct agentdist *a, int i, const char *data,
                       size_t len) {
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/%s", a->cache_dir, slot_names[i]) < 0)
    return;
  if (make_cache_dirs(a) < 0 || atomic_write(path, data, len, 0644) < 0)
    a->host->log(a->inst, VMH_LOG_WARN, "agent: cannot cache %s as %s: %s",
                 slot_names[i], path, strerror(errno));
}

/* Download slot i from upstream, verify it against its pin, cache it.
 * 0, or a VMH_E* code with the message set (nothing kept then). */
static int fetch_upstream(struct agentdist *a, int i) {
  struct slot *s = &a->slots[i];
  _cleanup_free_ char *url = NULL;
  char what[64];
  size_t n = strlen(a->upstream);
  if (asprintf(&url, "%.*s/%s",
               (int)(n && a->upstream[n - 1] == '/' ? n - 1 : n), a->upstream,
               slot_names[i]) < 0)
    return vmh_fail(a->host, VMH_ENOMEM, "out of memory");
  snprintf(what, sizeof what, "agent %s from upstream", slot_names[i]);
  struct membuf m = {.a = a};
  struct fetch_sink sink = {
      .write = mem_write, .truncate = mem_truncate, .opaque = &m};
  struct fetch_request req = {.host = a->host,
                              .inst = a->inst,
                              .what = what,
                              .url = url,
                              .sha256 = a->pinned[i],
                              .policy = &a->policy,
                              .sink = &sink};
  struct fetch_result res;
  a->host->log(a->inst, VMH_LOG_INFO, "agent: fetching %s", url);
  int r = fetch_run(&req, &res);
  if (r < 0) {
    free(m.p);
    return r == VMH_EINVAL ? VMH_EIO : r; /* a mismatch: the upstream's */
  }
  cache_keep(a, i, m.p, m.len);
  struct h2s_body *b = h2s_body_take(m.p ? m.p : strdup(""), m.len);
  if (!b)
    return vmh_fail(a->host, VMH_ENOMEM, "out of memory");
  slot_drop(s);
  s->body = b;
  memcpy(s->sha256, res.sha256, sizeof s->sha256);
  s->size = m.len;
  snprintf(s->where, sizeof s->where, "upstream");
  a->host->log(a->inst, VMH_LOG_INFO,
               "agent: %s fetched and verified (%zu "
               "bytes, sha256 %s)",
               slot_names[i], m.len, s->sha256);
  return 0;
}

/* ---- Answers (worker) --------------------------------------------------- */

/* The worker's failure: the message this thread's error holds. */
static void answer_failure(struct call *k, int code) {
  rest_answer_code(k, code, rest_error_message(k));
}

static void answer_file(struct agentdist *a, struct job *j) {
  struct slot *s = &a->slots[j->slot];
  struct h2s_req *req = rest_req(j->k);
  int r = find_local(a, j->slot);
  if (r == 1 && !s->body) {
    if (!a->upstream || !a->pinned[j->slot][0]) {
      rest_answer_error(
          j->k, 404, "not_found",
          a->upstream ? "this node has no agent for that architecture and "
                        "format, and agent.sha256 pins none to fetch"
                      : "this node has no agent for that architecture and "
                        "format (agent.paths; no agent.upstream)");
      return;
    }
    r = fetch_upstream(a, j->slot);
  } else if (r == 1) {
    r = 0; /* fetched earlier, served from memory */
  }
  if (r < 0) {
    answer_failure(j->k, r);
    return;
  }
  char etag[FETCH_SHA256_HEX + 3];
  snprintf(etag, sizeof etag, "\"%s\"", s->sha256);
  h2s_add_header(req, "etag", etag);
  h2s_add_header(req, "cache-control", "no-cache");
  h2s_add_header(req, "x-checksum-sha256", s->sha256);
  const char *inm = h2s_header(req, "if-none-match");
  if (inm && !strcmp(inm, etag)) {
    rest_answer_body(j->k, 304, NULL, NULL);
    return;
  }
  if (j->slot % 2 == 1) {
    char cd[96];
    snprintf(cd, sizeof cd, "attachment; filename=\"vmhost-agent_%s.deb\"",
             arch_names[j->slot / 2]);
    h2s_add_header(req, "content-disposition", cd);
  }
  rest_answer_body(j->k, 200, slot_types[j->slot % 2], s->body);
}

/* What the node can give for slot i without downloading: its SHA-256
 * (local or cached file, else the pin when an upstream is set), or NULL. */
static const char *known_sha(struct agentdist *a, struct call *k, int i,
                             const char **where) {
  struct slot *s = &a->slots[i];
  int r = find_local(a, i);
  if (r < 0)
    a->host->log(a->inst, VMH_LOG_WARN, "agent: %s: %s", slot_names[i],
                 rest_error_message(k));
  if (s->body) {
    *where = s->where;
    return s->sha256;
  }
  if (a->upstream && a->pinned[i][0]) {
    *where = "upstream";
    return a->pinned[i];
  }
  return NULL;
}

static void answer_version(struct agentdist *a, struct job *j) {
  json_t *arts = json_array();
  for (int i = 0; arts && i < N_SLOTS; i++) {
    const char *where = NULL, *sha = known_sha(a, j->k, i, &where);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/agent/%s", slot_names[i]);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b}", "os", "linux", "arch",
                          arch_names[i / 2], "format", i % 2 ? "deb" : "binary",
                          "path", path, "available", sha != NULL);
    if (o && sha) {
      json_object_set_new(o, "sha256", json_string(sha));
      json_object_set_new(o, "source", json_string(where));
      if (a->slots[i].body)
        json_object_set_new(o, "size",
                            json_integer((json_int_t)a->slots[i].size));
    }
    json_array_append_new(arts, o);
  }
  json_t *v =
      arts ? json_pack("{s:s,s:o}", "version", a->version, "artifacts", arts)
           : NULL;
  char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
  json_decref(v);
  struct h2s_body *b = s ? h2s_body_take(s, strlen(s)) : NULL;
  if (!b) {
    rest_answer_code(j->k, VMH_ENOMEM, "out of memory");
    return;
  }
  h2s_add_header(rest_req(j->k), "cache-control", "no-cache");
  rest_answer_body(j->k, 200, "application/json", b);
  h2s_body_unref(b);
}

/* The template with its @NAME@ fields filled in; NULL when out of memory. */
static char *render(const char *tpl, const char *const *names,
                    const char *const *values, size_t n) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (!f)
    return NULL;
  for (const char *p = tpl; *p; p++) {
    size_t i = 0;
    for (; *p == '@' && i < n; i++) {
      size_t l = strlen(names[i]);
      if (!strncmp(p + 1, names[i], l) && p[l + 1] == '@') {
        fputs(values[i], f);
        p += l + 1;
        break;
      }
    }
    if (*p != '@' || i == n)
      fputc(*p, f);
  }
  if (fclose(f) != 0) {
    free(out);
    return NULL;
  }
  return out;
}

static void answer_script(struct agentdist *a, struct job *j) {
  static const char *const names[] = {
      "NODE",      "VERSION",       "SHA_AMD64",  "SHA_AMD64_DEB",
      "SHA_ARM64", "SHA_ARM64_DEB", "AGENT_YAML", "AGENT_UNIT"};
  const char *values[8] = {a->url ? a->url : j->node, a->version};
  for (int i = 0; i < N_SLOTS; i++) {
    const char *where, *sha = known_sha(a, j->k, i, &where);
    values[2 + i] = sha ? sha : "";
  }
  values[6] = agent_script_yaml;
  values[7] = agent_script_unit;
  char *s = render(agent_script_template, names, values, 8);
  struct h2s_body *b = s ? h2s_body_take(s, strlen(s)) : NULL;
  if (!b) {
    rest_answer_code(j->k, VMH_ENOMEM, "out of memory");
    return;
  }
  h2s_add_header(rest_req(j->k), "cache-control", "no-cache");
  rest_answer_body(j->k, 200, "text/x-shellscript; charset=utf-8", b);
  h2s_body_unref(b);
}

static void *worker(void *opaque) {
  struct agentdist *a = opaque;
  pthread_mutex_lock(&a->lock);
  for (;;) {
    while (!a->head && !a->stopping)
      pthread_cond_wait(&a->cond, &a->lock);
    struct job *j = a->head;
    if (!j)
      break;
    if (!(a->head = j->next))
      a->tail = &a->head;
    a->queued--;
    bool stopping = a->stopping;
    pthread_mutex_unlock(&a->lock);
    if (stopping)
      rest_answer_error(j->k, 503, "unavailable", "the server is stopping");
    else if (j->kind == JOB_FILE)
      answer_file(a, j);
    else if (j->kind == JOB_VERSION)
      answer_version(a, j);
    else
      answer_script(a, j);
    free(j);
    pthread_mutex_lock(&a->lock);
  }
  pthread_mutex_unlock(&a->lock);
  return NULL;
}

int agentdist_start(struct agentdist *a) {
  int e = pthread_create(&a->thread, NULL, worker, a);
  if (e)
    return vmh_fail(a->host, VMH_EINTERNAL,
                    "cannot start the agent downloads' thread: %s",
                    strerror(e));
  a->started = true;
  return 0;
}

void agentdist_stop(struct agentdist *a) {
  if (!a || !a->started)
    return;
  pthread_mutex_lock(&a->lock);
  a->stopping = true;
  pthread_cond_signal(&a->cond);
  pthread_mutex_unlock(&a->lock);
  pthread_join(a->thread, NULL);
  a->started = false;
}

/* ---- Routes (I/O thread) ------------------------------------------------ */

static uint64_t now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

/* A token from the peer's bucket: 0, or the seconds until one is there.
 * Unix-socket peers are local: not limited.  When every bucket is in use
 * the one idle longest is taken over. */
static unsigned take_token(struct agentdist *a, struct h2s_req *req) {
  unsigned char key[17];
  if (h2s_peer_key(req, key) < 0)
    return 0;
  uint64_t t = now_us();
  struct bucket *b = NULL, *oldest = &a->buckets[0];
  for (int i = 0; i < N_BUCKETS && !b; i++) {
    struct bucket *x = &a->buckets[i];
    if (x->used && !memcmp(x->key, key, sizeof key))
      b = x;
    else if (!x->used || (oldest->used && x->t_us < oldest->t_us))
      oldest = x;
  }
  if (!b) {
    b = oldest;
    memcpy(b->key, key, sizeof key);
    b->tokens = a->burst;
    b->t_us = t;
    b->used = true;
  }
  b->tokens += (double)(t - b->t_us) * a->per_us;
  if (b->tokens > a->burst)
    b->tokens = a->burst;
  b->t_us = t;
  if (b->tokens >= 1) {
    b->tokens -= 1;
    return 0;
  }
  return (unsigned)((1 - b->tokens) / a->per_us / 1e6) + 1;
}

/* Rate limit and query check: 0, or -1 with the call answered. */
static int admit(struct agentdist *a, struct call *k) {
  struct h2s_req *req = rest_req(k);
  const char *q = h2s_query(req);
  if (q && *q) {
    rest_answer_error(k, 400, "invalid_argument",
                      "this resource takes no query parameters");
    return -1;
  }
  unsigned wait = take_token(a, req);
  if (wait) {
    char s[16];
    snprintf(s, sizeof s, "%u", wait);
    h2s_add_header(req, "retry-after", s);
    rest_answer_error(k, 429, "rate_limited",
                      "too many agent downloads from this address: retry "
                      "later (agent.requests_per_minute)");
    return -1;
  }
  return 0;
}

static int enqueue(struct agentdist *a, struct call *k, struct job *j) {
  pthread_mutex_lock(&a->lock);
  bool full = a->queued >= MAX_QUEUED || a->stopping;
  if (!full) {
    j->k = k;
    *a->tail = j;
    a->tail = &j->next;
    a->queued++;
    pthread_cond_signal(&a->cond);
  }
  pthread_mutex_unlock(&a->lock);
  if (full) {
    free(j);
    h2s_add_header(rest_req(k), "retry-after", "1");
    rest_answer_error(k, 503, "unavailable",
                      "too many agent downloads in progress: retry later");
  }
  return 0;
}

static struct job *new_job(struct call *k, enum job_kind kind) {
  struct job *j = calloc(1, sizeof *j);
  if (!j)
    rest_answer_code(k, VMH_ENOMEM, "out of memory");
  else
    j->kind = kind;
  return j;
}

int agent_version(struct call *k) {
  struct agentdist *a = rest_agentdist(k);
  struct job *j;
  if (admit(a, k) < 0 || !(j = new_job(k, JOB_VERSION)))
    return -1;
  return enqueue(a, k, j);
}

/* scheme://host[:port] of the request, for the script to call back; -1
 * (answered) when the Host field is not a plain host[:port]. */
static int node_url(struct call *k, char *buf, size_t len) {
  struct h2s_req *req = rest_req(k);
  const char *host = h2s_header(req, "host");
  const char *proto = h2s_proto(req);
  bool tls = !strcmp(proto, "h2") || !strcmp(proto, "https/1.1");
  if (!host || !*host || strlen(host) > 255 ||
      strspn(host,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
             "0123456789.-:[]") != strlen(host)) {
    rest_answer_error(k, 400, "invalid_argument",
                      "the Host field must be a plain host[:port] (or set "
                      "agent.url)");
    return -1;
  }
  snprintf(buf, len, "%s://%s", tls ? "https" : "http", host);
  return 0;
}

int agent_script(struct call *k) {
  struct agentdist *a = rest_agentdist(k);
  char node[300] = "";
  struct job *j;
  if (admit(a, k) < 0 || (!a->url && node_url(k, node, sizeof node) < 0) ||
      !(j = new_job(k, JOB_SCRIPT)))
    return -1;
  memcpy(j->node, node, sizeof node);
  return enqueue(a, k, j);
}

/* amd64 (x86_64) → 0, arm64 (aarch64) → 1, else -1 (answered). */
static int arch_of(struct call *k, const char *p, size_t len) {
  for (int i = 0; i < N_ARCH; i++)
    if ((strlen(arch_names[i]) == len && !strncmp(p, arch_names[i], len)) ||
        (strlen(arch_aliases[i]) == len && !strncmp(p, arch_aliases[i], len)))
      return i;
  rest_answer_error(k, 400, "invalid_argument",
                    "the architecture must be amd64 (x86_64) or arm64 "
                    "(aarch64)");
  return -1;
}

static int file_route(struct call *k, bool deb) {
  struct agentdist *a = rest_agentdist(k);
  const char *p = rest_param(k, 0);
  size_t len = strlen(p) - (deb ? 4 : 0); /* the route ends in ".deb" */
  int arch;
  struct job *j;
  if (admit(a, k) < 0 || (arch = arch_of(k, p, len)) < 0 ||
      !(j = new_job(k, JOB_FILE)))
    return -1;
  j->slot = arch * 2 + deb;
  return enqueue(a, k, j);
}

int agent_binary(struct call *k) {
  return file_route(k, false);
}

int agent_deb(struct call *k) {
  return file_route(k, true);
}
