/* h2server — see h2server.h.
 *
 * Shape.  One I/O thread, one epoll set holding the listeners, the
 * connections and an eventfd.  A connection starts in TLS handshake (TLS
 * listeners) or in protocol detection (cleartext: the HTTP/2 preface, or
 * else HTTP/1.1), then runs an nghttp2 server session or an http-parser.
 * Bytes to send collect in the connection's out buffer; nghttp2 is asked
 * for more only while that buffer is small, which is the back-pressure.
 *
 * Requests.  Each one is a struct h2s_req with a reference count: the
 * connection holds it while the stream lives, the handler from the call
 * until its answer, the completion queue while it is queued.  Answers
 * given on other threads are written into the request under s->lock and
 * the request queued; the loop takes the queue when the eventfd fires and
 * hands the answers to nghttp2 or writes the HTTP/1.1 response.  A request
 * whose connection is gone (req->c == NULL, loop thread only) has its
 * answer dropped.
 *
 * HTTP/1.1 serves one request at a time per connection: the parser is
 * paused while a request is in flight and resumed when its response is
 * written (no pipelining beyond that, which HTTP/1.1 clients do not use
 * anyway).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <http_parser.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "h2server.h"
#include "h2tls.h"

/* Ask nghttp2 for more frames only while less than this is waiting. */
#define OUT_LOW (64 * 1024)
#define READ_CHUNK 16384
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

enum ev_kind { EV_WAKE, EV_LISTENER, EV_CONN };

struct h2s_body {
  atomic_uint refs;
  char *data;
  size_t len;
};

struct buf {
  char *p;
  size_t off, len, cap;    /* data is [off, len) */
  struct h2s_body *shared; /* set: p is its data, read-only (cap 0) */
};

struct h2s_body *h2s_body_take(char *data, size_t len) {
  struct h2s_body *b = malloc(sizeof *b);
  if (!b) {
    free(data);
    return NULL;
  }
  atomic_init(&b->refs, 1);
  b->data = data;
  b->len = len;
  return b;
}

void h2s_body_unref(struct h2s_body *b) {
  if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
    free(b->data);
    free(b);
  }
}

struct h2s_cache {
  pthread_mutex_t lock;
  struct h2s_body *body;
  uint64_t gen;
};

struct h2s_cache *h2s_cache_new(void) {
  struct h2s_cache *c = calloc(1, sizeof *c);
  if (c)
    pthread_mutex_init(&c->lock, NULL);
  return c;
}

void h2s_cache_free(struct h2s_cache *c) {
  if (!c)
    return;
  h2s_body_unref(c->body);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

struct h2s_body *h2s_cache_get(struct h2s_cache *c, uint64_t gen) {
  struct h2s_body *b = NULL;
  pthread_mutex_lock(&c->lock);
  if (c->body && c->gen == gen) {
    b = c->body;
    atomic_fetch_add(&b->refs, 1);
  }
  pthread_mutex_unlock(&c->lock);
  return b;
}

void h2s_cache_put(struct h2s_cache *c, uint64_t gen, struct h2s_body *b) {
  struct h2s_body *old = NULL;
  pthread_mutex_lock(&c->lock);
  if (!c->body || gen > c->gen) {
    old = c->body;
    atomic_fetch_add(&b->refs, 1);
    c->body = b;
    c->gen = gen;
  }
  pthread_mutex_unlock(&c->lock);
  h2s_body_unref(old);
}

/* A shared body's bytes copied into memory of the buf's own. */
static int buf_own(struct buf *b) {
  size_t n = b->len - b->off;
  char *p = malloc(n ? n : 1);
  if (!p)
    return -1;
  memcpy(p, b->p + b->off, n);
  h2s_body_unref(b->shared);
  *b = (struct buf){.p = p, .len = n, .cap = n ? n : 1};
  return 0;
}

static int buf_add(struct buf *b, const void *d, size_t n) {
  if (b->shared && buf_own(b) < 0)
    return -1;
  if (b->off && b->off == b->len)
    b->off = b->len = 0;
  if (b->len + n > b->cap) {
    if (b->off) {
      memmove(b->p, b->p + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n)
      cap *= 2;
    if (cap != b->cap) {
      char *p = realloc(b->p, cap);
      if (!p)
        return -1;
      b->p = p;
      b->cap = cap;
    }
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

static size_t buf_size(const struct buf *b) {
  return b->len - b->off;
}

static void buf_free(struct buf *b) {
  if (b->shared)
    h2s_body_unref(b->shared);
  else
    free(b->p);
  *b = (struct buf){0};
}

struct listener {
  enum ev_kind kind; /* first: epoll data points here */
  int fd;
  int tls;
  char *address;
  char *unix_path; /* unlinked at stop */
  struct listener *next;
};

enum cstate { C_HANDSHAKE, C_DETECT, C_H1, C_H2, C_CLOSED };

struct hdr {
  char *name, *value;
};

struct conn;

struct h2s_req {
  struct h2s *s;
  struct conn *c; /* loop thread only; NULL once the stream is gone */
  int32_t sid;    /* HTTP/2 stream; 0 for HTTP/1.1 */
  atomic_uint refs;
  char *method, *path, *query;
  struct hdr *h;
  size_t nh, caph;
  struct hdr *rh; /* the answer's own headers (h2s_add_header) */
  size_t nrh;
  size_t hdr_bytes;
  struct buf body;
  char id[65];
  char route[64];
  const char *proto;
  int err_status;
  char err_msg[192];
  uint64_t t0_us;
  bool dispatched, h2c_upgrade, close_after;
  struct h2s_req *cprev, *cnext; /* the connection's requests */
  /* Under s->lock. */
  bool answered, queued, gone, streaming, ended, overflow, close_told;
  int status;
  char ctype[96];
  struct buf out;
  h2s_close_fn on_close;
  void *close_opaque;
  struct h2s_req *qnext;
  /* Loop thread. */
  bool submitted, finished;
  uint64_t bytes;
  /* Body bytes counted in the connection's c->held (h2_on_data,
   * req_detach). */
  size_t held;
  /* Trailer fields (under s->lock until ended, fixed after). */
  struct hdr *tr;
  size_t ntr;
  bool headers_only;
  /* h2s_watch (loop thread). */
  h2s_watch_fn watch;
  void *watch_opaque;
  uint64_t deadline_us;
  /* h2s_on_data (loop thread). */
  h2s_data_fn on_data;
  void *data_opaque;
  bool early, body_done;
};

struct conn {
  enum ev_kind kind;
  struct h2s *s;
  int fd;
  enum cstate state;
  bool want_out, closing, in_closed;
  bool lingering;  /* answered and shut for writing: reading to discard */
  uint32_t events; /* registered with epoll */
  char peer[INET6_ADDRSTRLEN + 8];
  gnutls_session_t tls;
  struct h2tls_creds *creds;
  size_t tls_pending; /* bytes handed to a send that said EAGAIN */
  size_t held;        /* request body bytes its requests hold (HTTP/2) */
  nghttp2_session *h2;
  http_parser hp;
  struct h2s_req *h1req; /* the HTTP/1.1 request being read or served */
  char *hname;           /* HTTP/1.1 header name in progress */
  size_t hname_len;
  bool h_in_value;
  struct buf in, out;
  struct h2s_req *reqs;
  uint32_t n_reqs;
  uint64_t t_open, t_active; /* ms */
  double tokens;
  uint64_t t_tokens; /* us */
  uint32_t resets;
  uint64_t t_resets; /* ms: start of the current one-second window */
  struct conn *prev, *next;
  struct conn *dnext; /* on s->dirty */
  bool dirty;
};

struct h2s {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  const struct h2s_conf *conf; /* &conf_copy */
  /* The limits are read by answers that may come after the front-end
   * freed its conf (a request the core still held at stop): a copy.  Its
   * pointers (listeners, paths, names) are used only while running. */
  struct h2s_conf conf_copy;
  h2s_handler_fn handler;
  void *opaque;
  atomic_uint refs; /* the owner's, and one per live request */
  int ep, wake_fd;
  enum ev_kind wake_ev; /* epoll data of the eventfd: just the kind */
  struct listener *listeners;
  struct conn *conns;
  struct conn *dead;  /* closed this round, freed at its end */
  struct conn *dirty; /* HTTP/2 answers submitted, to flush once */
  uint32_t n_conns;
  pthread_t thread;
  _Atomic pthread_t loop_thread; /* set by the loop itself, 0 before */
  bool running;
  atomic_bool stopping;
  uint32_t drain_ms;
  uint32_t id_prefix;
  atomic_uint_fast64_t id_counter;
  nghttp2_session_callbacks *cbs;
  nghttp2_option *h2opt;
  gnutls_priority_t prio;
  bool any_tls;
  char *cert, *key; /* in use */
  struct timespec cert_mtime;
  uint64_t t_sweep, t_refused_log;
  uint64_t refused;
  pthread_mutex_t lock; /* the completion queue, answers, creds */
  struct h2tls_creds *creds;
  struct h2s_req *qhead, *qtail;
  bool stopped; /* the loop has ended: answers are dropped, not queued */
  uint32_t n_deadlines; /* watched requests with a deadline (loop thread) */
  h2s_early_fn early;   /* requests handed over before their body */
};

static http_parser_settings h1_settings;

static uint64_t now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static uint64_t now_ms(void) {
  return now_us() / 1000;
}

#define LOG(s, level, ...) (s)->host->log((s)->inst, (level), __VA_ARGS__)

/* ---- Requests ------------------------------------------------------------
 */

static void s_unref(struct h2s *s);

static struct h2s_req *req_new(struct conn *c, int32_t sid, const char *proto) {
  struct h2s *s = c->s;
  struct h2s_req *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->s = s;
  r->c = c;
  r->sid = sid;
  r->proto = proto;
  r->t0_us = now_us();
  atomic_init(&r->refs, 1); /* the connection's */
  atomic_fetch_add(&s->refs, 1);
  snprintf(r->id, sizeof r->id, "%08" PRIx32 "%08" PRIx64, s->id_prefix,
           (uint64_t)atomic_fetch_add(&s->id_counter, 1) & 0xffffffff);
  r->cnext = c->reqs;
  if (c->reqs)
    c->reqs->cprev = r;
  c->reqs = r;
  c->n_reqs++;
  return r;
}

static void hdrs_free(struct hdr *h, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(h[i].name);
    free(h[i].value);
  }
  free(h);
}

static void req_unref(struct h2s_req *r) {
  if (atomic_fetch_sub(&r->refs, 1) != 1)
    return;
  free(r->method);
  free(r->path);
  for (size_t i = 0; i < r->nh; i++) {
    free(r->h[i].name);
    free(r->h[i].value);
  }
  free(r->h);
  for (size_t i = 0; i < r->nrh; i++) {
    free(r->rh[i].name);
    free(r->rh[i].value);
  }
  free(r->rh);
  hdrs_free(r->tr, r->ntr);
  buf_free(&r->body);
  buf_free(&r->out);
  struct h2s *s = r->s;
  free(r);
  s_unref(s);
}

static void refuse(struct h2s_req *r, int status, const char *fmt, ...)
    __attribute__((__format__(__printf__, 3, 4)));
static void refuse(struct h2s_req *r, int status, const char *fmt, ...) {
  if (r->err_status)
    return; /* the first reason stands */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
  va_end(ap);
  r->err_status = status;
}

/* Count a header field against the limit; store it unless over. */
static void req_header(struct h2s_req *r, const char *name, size_t nlen,
                       const char *value, size_t vlen) {
  r->hdr_bytes += nlen + vlen + 32; /* HPACK's accounting */
  if (r->hdr_bytes > r->s->conf->max_header_size) {
    refuse(r, 431, "request headers larger than %" PRIu32 " bytes",
           r->s->conf->max_header_size);
    return;
  }
  if (r->nh == r->caph) {
    size_t cap = r->caph ? r->caph * 2 : 8;
    struct hdr *h = realloc(r->h, cap * sizeof *h);
    if (!h) {
      refuse(r, 503, "out of memory");
      return;
    }
    r->h = h;
    r->caph = cap;
  }
  char *n = strndup(name, nlen), *v = strndup(value, vlen);
  if (!n || !v) {
    free(n);
    free(v);
    {
      refuse(r, 503, "out of memory");
      return;
    }
  }
  for (char *p = n; *p; p++)
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  r->h[r->nh++] = (struct hdr){n, v};
}

static void req_body(struct h2s_req *r, const char *d, size_t n) {
  if (r->err_status)
    return;
  if (buf_size(&r->body) + n > r->s->conf->max_body_size) {
    refuse(r, 413, "request body larger than %" PRIu64 " bytes",
           r->s->conf->max_body_size);
    return;
  }
  if (buf_add(&r->body, d, n) < 0)
    refuse(r, 503, "out of memory");
}

/* path?query from a request target: one allocation, "path\0query". */
static void req_target(struct h2s_req *r, const char *t, size_t len) {
  free(r->path);
  r->query = NULL;
  if (!(r->path = strndup(t, len))) {
    refuse(r, 503, "out of memory");
    return;
  }
  char *q = strchr(r->path, '?');
  if (q) {
    *q = '\0';
    r->query = q + 1;
  }
}

/* A client's x-request-id is kept when it is a plain token. */
static void req_take_id(struct h2s_req *r) {
  const char *v = h2s_header(r, "x-request-id");
  size_t n = v ? strlen(v) : 0;
  if (n && n < sizeof r->id &&
      strspn(v,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
             ":") == n)
    memcpy(r->id, v, n + 1);
}

/* Rate limit: one token per request, refilled at requests_per_s. */
static bool take_token(struct conn *c) {
  uint64_t t = now_us();
  double rate = c->s->conf->requests_per_s;
  c->tokens += (double)(t - c->t_tokens) * rate / 1e6;
  if (c->tokens > rate)
    c->tokens = rate;
  c->t_tokens = t;
  if (c->tokens < 1)
    return false;
  c->tokens -= 1;
  return true;
}

static void dispatch(struct h2s_req *r) {
  struct conn *c = r->c;
  struct h2s *s = c->s;
  r->dispatched = true;
  r->body_done = !r->early;
  c->t_active = now_ms();
  req_take_id(r);
  if (!r->method || !r->path)
    refuse(r, 400, "request without method or path");
  if (!take_token(c))
    refuse(r, 429,
           "more than %" PRIu32
           " requests per second on one "
           "connection",
           s->conf->requests_per_s);
  if (atomic_load(&s->stopping))
    refuse(r, 503, "shutting down");
  atomic_fetch_add(&r->refs, 1); /* the handler's */
  s->handler(s->opaque, r);
}

/* ---- Answers (any thread) ------------------------------------------------
 */

/* The loop takes the queue after every round, so an answer given on its
 * own thread (the core answered inline) needs no wake-up.  (The loop's
 * identity is kept in s, not in a __thread variable: LeakSanitizer's
 * tracer crashes on the dynamic TLS of a dlopen'd plugin.) */
static void wake(struct h2s *s) {
  if (!pthread_equal(atomic_load(&s->loop_thread), pthread_self()))
    eventfd_write(s->wake_fd, 1);
}

/* Queue r for the loop; under s->lock. */
static void enqueue(struct h2s_req *r) {
  struct h2s *s = r->s;
  if (r->queued || s->stopped)
    return;
  r->queued = true;
  atomic_fetch_add(&r->refs, 1); /* the queue's */
  r->qnext = NULL;
  if (s->qtail)
    s->qtail->qnext = r;
  else
    s->qhead = r;
  s->qtail = r;
}

static void set_head(struct h2s_req *r, int status, const char *ctype) {
  r->answered = true;
  r->status = status;
  snprintf(r->ctype, sizeof r->ctype, "%s", ctype ? ctype : "");
}

void h2s_respond(struct h2s_req *r, int status, const char *ctype,
                 const char *body, size_t len) {
  struct h2s *s = r->s;
  pthread_mutex_lock(&s->lock);
  if (!r->answered) {
    set_head(r, status, ctype);
    r->ended = true;
    if (len && buf_add(&r->out, body, len) < 0) {
      r->status = 503;
      r->ctype[0] = '\0';
    }
    enqueue(r);
  }
  pthread_mutex_unlock(&s->lock);
  wake(s);
  req_unref(r); /* the handler's */
}

void h2s_respond_body(struct h2s_req *r, int status, const char *ctype,
                      struct h2s_body *b) {
  struct h2s *s = r->s;
  pthread_mutex_lock(&s->lock);
  if (!r->answered) {
    set_head(r, status, ctype);
    r->ended = true;
    buf_free(&r->out);
    atomic_fetch_add(&b->refs, 1);
    r->out = (struct buf){.p = b->data, .len = b->len, .shared = b};
    enqueue(r);
  }
  pthread_mutex_unlock(&s->lock);
  wake(s);
  req_unref(r); /* the handler's */
}

void h2s_stream_begin(struct h2s_req *r, int status, const char *ctype,
                      h2s_close_fn on_close, void *opaque) {
  struct h2s *s = r->s;
  pthread_mutex_lock(&s->lock);
  if (!r->answered) {
    set_head(r, status, ctype);
    r->streaming = true;
    r->on_close = on_close;
    r->close_opaque = opaque;
    enqueue(r);
  }
  pthread_mutex_unlock(&s->lock);
  wake(s);
}

int h2s_stream_send(struct h2s_req *r, const char *data, size_t len) {
  struct h2s *s = r->s;
  int ret = -1;
  pthread_mutex_lock(&s->lock);
  if (r->streaming && !r->ended && !r->gone && !r->overflow) {
    if (buf_size(&r->out) + len > s->conf->stream_buffer ||
        buf_add(&r->out, data, len) < 0)
      r->overflow = true;
    else
      ret = 0;
    enqueue(r);
  }
  pthread_mutex_unlock(&s->lock);
  wake(s);
  return ret;
}

void h2s_stream_end(struct h2s_req *r) {
  struct h2s *s = r->s;
  pthread_mutex_lock(&s->lock);
  r->ended = true;
  enqueue(r);
  pthread_mutex_unlock(&s->lock);
  wake(s);
  req_unref(r); /* the handler's */
}

/* Append a copy of name: value to *h; under s->lock. */
static int hdrs_add(struct hdr **h, size_t *n, const char *name,
                    const char *value) {
  struct hdr *nh = realloc(*h, (*n + 1) * sizeof **h);
  if (!nh)
    return -1;
  *h = nh;
  char *k = strdup(name), *v = strdup(value);
  if (!k || !v) {
    free(k);
    free(v);
    return -1;
  }
  nh[(*n)++] = (struct hdr){k, v};
  return 0;
}

int h2s_add_header(struct h2s_req *r, const char *name, const char *value) {
  struct h2s *s = r->s;
  int ret = -1;
  /* No field may end the header block early (HTTP/1.1) or smuggle one. */
  if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
    return -1;
  pthread_mutex_lock(&s->lock);
  if (!r->answered)
    ret = hdrs_add(&r->rh, &r->nrh, name, value);
  pthread_mutex_unlock(&s->lock);
  return ret;
}

int h2s_add_trailer(struct h2s_req *r, const char *name, const char *value) {
  struct h2s *s = r->s;
  int ret = -1;
  pthread_mutex_lock(&s->lock);
  if (!r->ended)
    ret = hdrs_add(&r->tr, &r->ntr, name, value);
  pthread_mutex_unlock(&s->lock);
  return ret;
}

void h2s_respond_headers(struct h2s_req *r, int status, const char *ctype) {
  struct h2s *s = r->s;
  pthread_mutex_lock(&s->lock);
  if (!r->answered)
    r->headers_only = true;
  pthread_mutex_unlock(&s->lock);
  h2s_respond(r, status, ctype, NULL, 0);
}

void h2s_watch(struct h2s_req *r, uint64_t deadline_us, h2s_watch_fn fn,
               void *opaque) {
  r->watch = fn;
  r->watch_opaque = opaque;
  r->deadline_us = deadline_us;
  if (deadline_us)
    r->s->n_deadlines++;
}

/* The watcher's last word (loop thread), when the connection lets go. */
static void watch_end(struct h2s_req *r) {
  h2s_watch_fn fn = r->watch;
  if (!fn)
    return;
  r->watch = NULL;
  if (r->deadline_us) {
    r->deadline_us = 0;
    r->s->n_deadlines--;
  }
  pthread_mutex_lock(&r->s->lock);
  bool complete = r->ended;
  pthread_mutex_unlock(&r->s->lock);
  fn(r->watch_opaque, complete ? H2S_WATCH_END : H2S_WATCH_GONE);
}

void h2s_set_early(struct h2s *s, h2s_early_fn fn) {
  s->early = fn;
}

void h2s_on_data(struct h2s_req *r, h2s_data_fn fn, void *opaque) {
  r->on_data = fn;
  r->data_opaque = opaque;
}

int h2s_body_done(const struct h2s_req *r) {
  return r->body_done;
}

/* A piece of an early request's body, or its end (loop thread). */
static void early_data(struct h2s_req *r, const char *d, size_t n, int end) {
  if (r->on_data)
    r->on_data(r->data_opaque, d, n, end);
}

/* Deadlines passed before an answer (loop thread).  Returns how many ms
 * until the next one, at most max_ms. */
static int check_deadlines(struct h2s *s, int max_ms) {
  uint64_t t = now_us(), next = t + (uint64_t)max_ms * 1000;
  for (struct conn *c = s->conns; c && s->n_deadlines; c = c->next)
    for (struct h2s_req *r = c->reqs; r; r = r->cnext) {
      if (!r->watch || !r->deadline_us)
        continue;
      if (t < r->deadline_us) {
        if (r->deadline_us < next)
          next = r->deadline_us;
        continue;
      }
      r->deadline_us = 0;
      s->n_deadlines--;
      pthread_mutex_lock(&s->lock);
      bool answered = r->answered;
      pthread_mutex_unlock(&s->lock);
      if (!answered)
        r->watch(r->watch_opaque, H2S_WATCH_DEADLINE);
    }
  return (int)((next - t + 999) / 1000);
}

/* ---- Request accessors ---------------------------------------------------
 */

const char *h2s_method(const struct h2s_req *r) {
  return r->method ? r->method : "";
}
const char *h2s_path(const struct h2s_req *r) {
  return r->path ? r->path : "";
}
const char *h2s_query(const struct h2s_req *r) {
  return r->query;
}
const char *h2s_header(const struct h2s_req *r, const char *name) {
  for (size_t i = 0; i < r->nh; i++)
    if (!strcmp(r->h[i].name, name))
      return r->h[i].value;
  return NULL;
}
const char *h2s_body(const struct h2s_req *r, size_t *ret_len) {
  *ret_len = buf_size(&r->body);
  return r->body.p ? r->body.p + r->body.off : "";
}
const char *h2s_request_id(const struct h2s_req *r) {
  return r->id;
}
const char *h2s_proto(const struct h2s_req *r) {
  return r->proto;
}
int h2s_error_status(const struct h2s_req *r) {
  return r->err_status;
}
const char *h2s_error_message(const struct h2s_req *r) {
  return r->err_msg;
}
uint64_t h2s_start_us(const struct h2s_req *r) {
  return r->t0_us;
}
void h2s_set_route(struct h2s_req *r, const char *route) {
  snprintf(r->route, sizeof r->route, "%s", route);
}

/* ---- Connections: I/O ----------------------------------------------------
 */

static void conn_close(struct conn *c, const char *why);
static void conn_flush(struct conn *c);
static void h1_feed(struct conn *c);

static void set_events(struct conn *c) {
  uint32_t ev = 0;
  /* No reading while an HTTP/1.1 request is served, nor while output is
   * backed up (the client must read first). */
  bool h1_busy = c->state == C_H1 && c->h1req && c->h1req->dispatched;
  if (!c->in_closed && (c->lingering || !h1_busy) &&
      buf_size(&c->out) < 4 * OUT_LOW)
    ev |= EPOLLIN;
  if (c->want_out)
    ev |= EPOLLOUT;
  if (c->state == C_HANDSHAKE)
    ev = gnutls_record_get_direction(c->tls) ? EPOLLOUT : EPOLLIN;
  if (ev == c->events)
    return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  epoll_ctl(c->s->ep, EPOLL_CTL_MOD, c->fd, &e);
  c->events = ev;
}

/* >0 bytes, 0 end of file, -EAGAIN, or -EIO. */
static ssize_t conn_recv(struct conn *c, char *b, size_t n) {
  if (c->tls) {
    ssize_t r = gnutls_record_recv(c->tls, b, n);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
      return -EAGAIN;
    if (r == GNUTLS_E_PREMATURE_TERMINATION)
      return 0;
    return r < 0 ? -EIO : r;
  }
  ssize_t r = recv(c->fd, b, n, 0);
  if (r < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN
                                                                     : -EIO;
  return r;
}

static ssize_t conn_send(struct conn *c, const char *b, size_t n) {
  if (c->tls) {
    /* After EAGAIN GnuTLS wants the same data again. */
    if (c->tls_pending)
      n = c->tls_pending;
    else if (n > READ_CHUNK)
      n = READ_CHUNK;
    ssize_t r = gnutls_record_send(c->tls, b, n);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
      c->tls_pending = n;
      return -EAGAIN;
    }
    c->tls_pending = 0;
    return r < 0 ? -EIO : r;
  }
  ssize_t r = send(c->fd, b, n, MSG_NOSIGNAL);
  if (r < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN
                                                                     : -EIO;
  return r;
}

/* An HTTP/1.1 answer given before the whole request was read (413, 431):
 * closing at once could reset the connection before the client reads the
 * answer, so shut the write side and discard what still comes, for a
 * while (see sweep). */
static void linger(struct conn *c) {
  if (!c->lingering) {
    c->lingering = true;
    c->t_active = now_ms();
    if (c->tls)
      gnutls_bye(c->tls, GNUTLS_SHUT_WR);
    shutdown(c->fd, SHUT_WR);
  }
  set_events(c);
}

static void conn_flush(struct conn *c) {
  if (c->state == C_CLOSED)
    return;
  for (;;) {
    while (c->h2 && buf_size(&c->out) < OUT_LOW &&
           nghttp2_session_want_write(c->h2)) {
      const uint8_t *d;
      ssize_t n = nghttp2_session_mem_send(c->h2, &d);
      if (n < 0) {
        conn_close(c, nghttp2_strerror((int)n));
        return;
      }
      if (n == 0)
        break;
      if (buf_add(&c->out, d, (size_t)n) < 0) {
        conn_close(c, "out of memory");
        return;
      }
    }
    if (!buf_size(&c->out))
      break;
    ssize_t n = conn_send(c, c->out.p + c->out.off, buf_size(&c->out));
    if (n == -EAGAIN) {
      c->want_out = true;
      set_events(c);
      return;
    }
    if (n < 0) {
      conn_close(c, "write failed");
      return;
    }
    c->out.off += (size_t)n;
  }
  c->want_out = false;
  if (c->h2 && !nghttp2_session_want_read(c->h2) &&
      !nghttp2_session_want_write(c->h2)) {
    conn_close(c, NULL);
    return;
  }
  if (c->closing && c->state == C_H1 && !c->in_closed) {
    linger(c);
    return;
  }
  if (c->closing) {
    conn_close(c, NULL);
    return;
  }
  set_events(c);
}

/* Tell a streamed response's owner that it is over (at most once).  The
 * caller holds a reference. */
static void tell_close(struct h2s_req *r) {
  struct h2s *s = r->s;
  h2s_close_fn fn = NULL;
  pthread_mutex_lock(&s->lock);
  r->gone = true;
  if (r->streaming && !r->ended && !r->close_told) {
    r->close_told = true;
    fn = r->on_close;
  }
  pthread_mutex_unlock(&s->lock);
  if (fn)
    fn(r->close_opaque);
}

static void access_log(struct h2s_req *r, int status) {
  struct h2s *s = r->s;
  if (!s->conf->access_log || r->finished)
    return;
  r->finished = true;
  LOG(s, VMH_LOG_INFO,
      "access id=%s peer=%s proto=%s method=%s path=%s route=%s status=%d "
      "bytes=%" PRIu64 " us=%" PRIu64 "%s%s",
      r->id, r->c ? r->c->peer : "-", r->proto, h2s_method(r), h2s_path(r),
      r->route[0] ? r->route : "-", status, r->bytes, now_us() - r->t0_us,
      r->err_status ? " refused=" : "", r->err_status ? r->err_msg : "");
}

/* The connection lets go of r. */
static void req_detach(struct h2s_req *r) {
  struct conn *c = r->c;
  if (!c)
    return;
  if (!r->finished && r->dispatched)
    access_log(r, r->answered ? r->status : 499);
  if (r->cprev)
    r->cprev->cnext = r->cnext;
  else
    c->reqs = r->cnext;
  if (r->cnext)
    r->cnext->cprev = r->cprev;
  c->n_reqs--;
  c->held -= r->held;
  r->held = 0;
  r->c = NULL;
  r->on_data = NULL;
  tell_close(r);
  watch_end(r);
  req_unref(r);
}

static void conn_close(struct conn *c, const char *why) {
  struct h2s *s = c->s;
  if (c->state == C_CLOSED)
    return;
  if (why)
    LOG(s, VMH_LOG_DEBUG, "connection from %s closed: %s", c->peer, why);
  c->state = C_CLOSED;
  while (c->reqs)
    req_detach(c->reqs);
  c->h1req = NULL;
  if (c->tls) {
    gnutls_bye(c->tls, GNUTLS_SHUT_WR);
    gnutls_deinit(c->tls);
    c->tls = NULL;
  }
  h2tls_unref(c->creds);
  if (c->h2)
    nghttp2_session_del(c->h2);
  c->h2 = NULL;
  epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  s->n_conns--;
  /* Freed at the end of the loop's round: callers up the stack (and this
   * round's epoll events) may still look at c, and see C_CLOSED. */
  c->prev = NULL;
  c->next = s->dead;
  s->dead = c;
}

static void free_dead(struct h2s *s) {
  while (s->dead) {
    struct conn *c = s->dead;
    s->dead = c->next;
    buf_free(&c->in);
    buf_free(&c->out);
    free(c->hname);
    free(c);
  }
}

/* ---- HTTP/2 --------------------------------------------------------------
 */

/* The fields of h (copied by nghttp2) into nva, which has room for n. */
static size_t hdrs_nv(const struct hdr *h, size_t n, nghttp2_nv *nva) {
  for (size_t i = 0; i < n; i++)
    nva[i] = (nghttp2_nv){(uint8_t *)h[i].name, (uint8_t *)h[i].value,
                          strlen(h[i].name), strlen(h[i].value),
                          NGHTTP2_NV_FLAG_NONE};
  return n;
}

/* The trailers end the stream (r->tr is fixed once ended). */
static int submit_trailers(nghttp2_session *h2, struct h2s_req *r) {
  nghttp2_nv *nva = calloc(r->ntr, sizeof *nva);
  if (!nva)
    return -1;
  int e = nghttp2_submit_trailer(h2, r->sid, nva, hdrs_nv(r->tr, r->ntr, nva));
  free(nva);
  return e < 0 ? -1 : 0;
}

/* How much of the answer the next DATA frame carries.  The bytes stay in
 * r->out: h2_send_data copies them straight into the connection's output
 * (NO_COPY), one copy fewer than through nghttp2's frame buffer. */
static ssize_t h2_read_body(nghttp2_session *h2, int32_t sid, uint8_t *b,
                            size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *user) {
  (void)h2, (void)sid, (void)b, (void)user;
  struct h2s_req *r = src->ptr;
  struct h2s *s = r->s;
  pthread_mutex_lock(&s->lock);
  size_t n = buf_size(&r->out);
  if (n > len)
    n = len;
  bool eof = n == buf_size(&r->out) && r->ended;
  bool trailers = r->ntr > 0;
  pthread_mutex_unlock(&s->lock);
  if (!n && !eof)
    return NGHTTP2_ERR_DEFERRED;
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (eof && trailers && submit_trailers(h2, r) == 0)
    *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  if (eof)
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

/* The DATA frame h2_read_body sized: header, padding length, the answer's
 * next `len` bytes, padding (we ask for none, but honour any). */
static int h2_send_data(nghttp2_session *h2, nghttp2_frame *f,
                        const uint8_t *framehd, size_t len,
                        nghttp2_data_source *src, void *user) {
  (void)h2;
  struct conn *c = user;
  struct h2s_req *r = src->ptr;
  struct h2s *s = r->s;
  size_t pad = f->data.padlen;
  uint8_t zeros[256] = {0}, padlen = (uint8_t)(pad ? pad - 1 : 0);
  if (buf_add(&c->out, framehd, 9) < 0 ||
      (pad > 0 && buf_add(&c->out, &padlen, 1) < 0))
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  pthread_mutex_lock(&s->lock);
  int e = len ? buf_add(&c->out, r->out.p + r->out.off, len) : 0;
  if (e == 0)
    r->out.off += len;
  pthread_mutex_unlock(&s->lock);
  if (e < 0 || (pad > 1 && buf_add(&c->out, zeros, pad - 1) < 0))
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  r->bytes += len;
  return 0;
}

#define NV(n, v)                                              \
  {                                                           \
    (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), \
        NGHTTP2_NV_FLAG_NO_COPY_NAME                          \
  }

/* A HEAD request's answer is the GET's without its body (RFC 9110 9.3.2):
 * the handler answers as for GET, the server leaves the body out. */
static bool head_only(const struct h2s_req *r) {
  return r->method && !strcmp(r->method, "HEAD") && !r->streaming;
}

static void h2_deliver(struct h2s_req *r) {
  struct conn *c = r->c;
  pthread_mutex_lock(&r->s->lock);
  bool overflow = r->overflow, streaming = r->streaming;
  bool trailers = r->ntr > 0;
  int status = r->status;
  size_t len = buf_size(&r->out);
  pthread_mutex_unlock(&r->s->lock);
  if (overflow) {
    LOG(r->s, VMH_LOG_WARN,
        "%s: stream %" PRId32 " of %s dropped: the client reads too slowly",
        r->id, r->sid, c->peer);
    nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, r->sid, NGHTTP2_CANCEL);
    return;
  }
  if (r->submitted) {
    nghttp2_session_resume_data(c->h2, r->sid);
    return;
  }
  char st[8], cl[24];
  snprintf(st, sizeof st, "%d", status);
  snprintf(cl, sizeof cl, "%zu", len);
  /* The answer's own fields are fixed once answered. */
  nghttp2_nv *nva = calloc(4 + r->nrh, sizeof *nva);
  if (!nva) {
    nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, r->sid,
                              NGHTTP2_INTERNAL_ERROR);
    return;
  }
  nva[0] = (nghttp2_nv)NV(":status", st);
  nva[1] = (nghttp2_nv)NV("x-request-id", r->id);
  size_t n = 2;
  n += hdrs_nv(r->rh, r->nrh, nva + n);
  if (r->ctype[0])
    nva[n++] = (nghttp2_nv)NV("content-type", r->ctype);
  if (streaming)
    nva[n++] = (nghttp2_nv)NV("cache-control", "no-store");
  else if (!trailers && !r->headers_only)
    nva[n++] = (nghttp2_nv)NV("content-length", cl);
  nghttp2_data_provider prd = {.source.ptr = r, .read_callback = h2_read_body};
  int e = nghttp2_submit_response(
      c->h2, r->sid, nva, n, r->headers_only || head_only(r) ? NULL : &prd);
  free(nva);
  if (e < 0)
    LOG(r->s, VMH_LOG_WARN, "%s: cannot answer: %s", r->id,
        nghttp2_strerror(e));
  r->submitted = true;
}

static int h2_on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f,
                               void *user) {
  struct conn *c = user;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  struct h2s_req *r = req_new(c, f->hd.stream_id, c->tls ? "h2" : "h2c");
  if (!r)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, r);
  return 0;
}

static int h2_on_header(nghttp2_session *h2, const nghttp2_frame *f,
                        const uint8_t *name, size_t nlen, const uint8_t *value,
                        size_t vlen, uint8_t flags, void *user) {
  (void)flags, (void)user;
  struct h2s_req *r = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
  if (!r || r->dispatched)
    return 0;
  const char *n = (const char *)name, *v = (const char *)value;
  if (nlen == 7 && !memcmp(n, ":method", 7)) {
    free(r->method);
    r->method = strndup(v, vlen);
  } else if (nlen == 5 && !memcmp(n, ":path", 5)) {
    req_target(r, v, vlen);
  } else if (n[0] != ':') {
    req_header(r, n, nlen, v, vlen);
  } else {
    r->hdr_bytes += nlen + vlen + 32;
  }
  return 0;
}

/* One connection holds at most max_connection_buffer bytes of request
 * bodies (max_streams streams of max_body_size each would be far more): the
 * stream whose bytes would pass it is answered 503 at once.  Refusing
 * rather than withholding flow-control credit, which deadlocks a client
 * that interleaves its uploads. */
static int h2_on_data(nghttp2_session *h2, uint8_t flags, int32_t sid,
                      const uint8_t *d, size_t len, void *user) {
  (void)flags;
  struct conn *c = user;
  struct h2s_req *r = nghttp2_session_get_stream_user_data(h2, sid);
  if (!r)
    return 0;
  if (r->dispatched) {
    early_data(r, (const char *)d, len, 0);
    return 0;
  }
  if (c->held + len > c->s->conf->max_conn_buffer)
    refuse(r, 503,
           "more than %" PRIu64
           " bytes of request bodies in flight on this "
           "connection: send fewer at once",
           c->s->conf->max_conn_buffer);
  req_body(r, (const char *)d, len);
  if (!r->err_status) {
    r->held += len;
    c->held += len;
    return 0;
  }
  /* Refused: its body is not needed for the answer. */
  c->held -= r->held;
  r->held = 0;
  buf_free(&r->body);
  /* Over a limit: answer now rather than read the rest. */
  if (r->err_status == 413 || r->err_status == 503)
    dispatch(r);
  return 0;
}

static int h2_on_frame(nghttp2_session *h2, const nghttp2_frame *f,
                       void *user) {
  struct conn *c = user;
  struct h2s *s = c->s;
  if (f->hd.type == NGHTTP2_RST_STREAM) {
    /* Rapid reset (CVE-2023-44487): streams opened and cancelled at once
     * cost us work and the client nothing. */
    uint64_t t = now_ms();
    if (t - c->t_resets >= 1000) {
      c->t_resets = t;
      c->resets = 0;
    }
    if (++c->resets > s->conf->resets_per_s) {
      LOG(s, VMH_LOG_WARN,
          "%s reset more than %" PRIu32 " streams in a second: GOAWAY", c->peer,
          s->conf->resets_per_s);
      nghttp2_session_terminate_session(h2, NGHTTP2_ENHANCE_YOUR_CALM);
      c->closing = true;
    }
    return 0;
  }
  if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
    return 0;
  struct h2s_req *r = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
  if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    /* Headers complete, body to come: the handler may want it now. */
    if (r && !r->dispatched && f->hd.type == NGHTTP2_HEADERS && s->early &&
        r->path && s->early(s->opaque, r->path)) {
      r->early = true;
      dispatch(r);
    }
    return 0;
  }
  if (r && !r->dispatched) {
    dispatch(r);
  } else if (r && r->early && !r->body_done) {
    r->body_done = true;
    early_data(r, NULL, 0, 1);
  }
  return 0;
}

static int h2_on_close(nghttp2_session *h2, int32_t sid, uint32_t code,
                       void *user) {
  (void)user, (void)code;
  struct h2s_req *r = nghttp2_session_get_stream_user_data(h2, sid);
  if (r) {
    nghttp2_session_set_stream_user_data(h2, sid, NULL);
    req_detach(r);
  }
  return 0;
}

static int h2_start(struct conn *c) {
  struct h2s *s = c->s;
  if (nghttp2_session_server_new2(&c->h2, s->cbs, c, s->h2opt) < 0)
    return -1;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->conf->max_streams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, s->conf->max_header_size},
  };
  if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2) < 0)
    return -1;
  c->state = C_H2;
  return 0;
}

static void h2_feed(struct conn *c, const char *d, size_t n) {
  ssize_t r = nghttp2_session_mem_recv(c->h2, (const uint8_t *)d, n);
  if (r < 0)
    conn_close(c, nghttp2_strerror((int)r));
}

/* ---- HTTP/1.1 ------------------------------------------------------------
 */

static const char *reason(int status) {
  switch (status) {
#define XX(num, name, string) \
  case num:                   \
    return #string;
    HTTP_STATUS_MAP(XX)
#undef XX
    case 499:
      return "Client Closed Request";
    default:
      return "Unknown";
  }
}

static void h1_deliver(struct h2s_req *r) {
  struct conn *c = r->c;
  struct h2s *s = r->s;
  char head[512];
  pthread_mutex_lock(&s->lock);
  bool overflow = r->overflow, streaming = r->streaming, ended = r->ended;
  struct buf body = r->out;
  r->out = (struct buf){0};
  pthread_mutex_unlock(&s->lock);
  if (overflow) {
    buf_free(&body);
    LOG(s, VMH_LOG_WARN,
        "%s: stream to %s dropped: the client reads too slowly", r->id,
        c->peer);
    {
      conn_close(c, "slow reader");
      return;
    }
  }
  bool keep = !r->close_after && http_should_keep_alive(&c->hp) &&
              !atomic_load(&s->stopping);
  if (!r->submitted) {
    char len[48] = "";
    if (!streaming)
      snprintf(len, sizeof len, "content-length: %zu\r\n", buf_size(&body));
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n%s%s%sx-request-id: %s\r\n%s%s\r\n",
                     r->status, reason(r->status),
                     r->ctype[0] ? "content-type: " : "", r->ctype,
                     r->ctype[0] ? "\r\n" : "", r->id,
                     streaming ? "transfer-encoding: chunked\r\n"
                                 "cache-control: no-store\r\n"
                               : len,
                     keep ? "" : "connection: close\r\n");
    buf_add(&c->out, head, (size_t)n - 2); /* before the blank line */
    for (size_t i = 0; i < r->nrh; i++) {
      int k = snprintf(head, sizeof head, "%s: %s\r\n", r->rh[i].name,
                       r->rh[i].value);
      if (k > 0 && (size_t)k < sizeof head)
        buf_add(&c->out, head, (size_t)k);
    }
    buf_add(&c->out, "\r\n", 2);
    r->submitted = true;
  }
  size_t blen = head_only(r) ? 0 : buf_size(&body);
  if (streaming && blen) {
    int n = snprintf(head, sizeof head, "%zx\r\n", blen);
    buf_add(&c->out, head, (size_t)n);
  }
  if (blen)
    buf_add(&c->out, body.p + body.off, blen);
  if (streaming && blen)
    buf_add(&c->out, "\r\n", 2);
  r->bytes += blen;
  buf_free(&body);
  if (!ended) {
    conn_flush(c);
    return;
  }
  if (streaming)
    buf_add(&c->out, "0\r\n\r\n", 5);
  access_log(r, r->status);
  c->h1req = NULL;
  c->t_active = now_ms();
  req_detach(r);
  if (!keep)
    c->closing = true;
  conn_flush(c);
  if (c->state == C_H1 && !c->closing) {
    http_parser_pause(&c->hp, 0);
    h1_feed(c);
  }
}

static int h1_begin(http_parser *p) {
  struct conn *c = p->data;
  if (!c->h1req)
    c->h1req = req_new(c, 0, c->tls ? "https/1.1" : "http/1.1");
  return c->h1req ? 0 : -1;
}

static int h1_url(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  struct h2s_req *r = c->h1req;
  /* The URL may come in pieces: collect it in path, split at the end. */
  size_t old = r->path ? strlen(r->path) : 0;
  if (old + n > c->s->conf->max_header_size) {
    refuse(r, 431, "request target too long");
    return 0;
  }
  char *t = realloc(r->path, old + n + 1);
  if (!t)
    return -1;
  memcpy(t + old, at, n);
  t[old + n] = '\0';
  r->path = t;
  r->hdr_bytes += n;
  return 0;
}

static int h1_field(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  if (c->h_in_value) {
    c->h_in_value = false;
    c->hname_len = 0;
  }
  if (c->h1req->hdr_bytes + c->hname_len + n > c->s->conf->max_header_size) {
    refuse(c->h1req, 431, "request headers larger than %" PRIu32 " bytes",
           c->s->conf->max_header_size);
    return 0;
  }
  char *t = realloc(c->hname, c->hname_len + n + 1);
  if (!t)
    return -1;
  memcpy(t + c->hname_len, at, n);
  c->hname_len += n;
  t[c->hname_len] = '\0';
  c->hname = t;
  return 0;
}

static int h1_value(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  struct h2s_req *r = c->h1req;
  if (r->err_status)
    return 0;
  if (c->h_in_value && r->nh) {
    /* A value in pieces: append to the last header. */
    struct hdr *h = &r->h[r->nh - 1];
    size_t old = strlen(h->value);
    r->hdr_bytes += n;
    if (r->hdr_bytes > c->s->conf->max_header_size) {
      refuse(r, 431, "request headers too large");
      return 0;
    }
    char *t = realloc(h->value, old + n + 1);
    if (!t)
      return -1;
    memcpy(t + old, at, n);
    t[old + n] = '\0';
    h->value = t;
    return 0;
  }
  c->h_in_value = true;
  req_header(r, c->hname ? c->hname : "", c->hname_len, at, n);
  return 0;
}

static int h1_headers_done(http_parser *p) {
  struct conn *c = p->data;
  struct h2s_req *r = c->h1req;
  c->h_in_value = false;
  c->hname_len = 0;
  free(r->method);
  r->method = strdup(http_method_str((enum http_method)p->method));
  if (r->path) {
    char *t = r->path;
    r->path = NULL;
    req_target(r, t, strlen(t));
    free(t);
  }
  const char *up = h2s_header(r, "upgrade");
  r->h2c_upgrade =
      !c->tls && up && strstr(up, "h2c") && h2s_header(r, "http2-settings");
  if (!r->err_status && (p->flags & F_CONTENTLENGTH) &&
      p->content_length > c->s->conf->max_body_size)
    refuse(r, 413, "request body larger than %" PRIu64 " bytes",
           c->s->conf->max_body_size);
  if (r->err_status) {
    /* Answer now, read no more, close after the answer. */
    r->close_after = true;
    dispatch(r);
    http_parser_pause(p, 1);
  }
  return 0;
}

static int h1_body(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  req_body(c->h1req, at, n);
  if (c->h1req->err_status) {
    c->h1req->close_after = true;
    dispatch(c->h1req);
    http_parser_pause(p, 1);
  }
  return 0;
}

static int h1_done(http_parser *p) {
  struct conn *c = p->data;
  struct h2s_req *r = c->h1req;
  if (r->h2c_upgrade && p->upgrade)
    return 0; /* switched to HTTP/2 by h1_feed */
  dispatch(r);
  http_parser_pause(p, 1);
  return 0;
}

/* base64url (RFC 7540 3.2.1) to bytes; -1 if malformed. */
static int b64url(const char *in, uint8_t *out, size_t cap, size_t *ret) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (const char *p = in; *p && *p != '='; p++) {
    const char *k = strchr(tab, *p);
    if (!k)
      return -1;
    acc = acc << 6 | (uint32_t)(k - tab);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n == cap)
        return -1;
      out[n++] = (uint8_t)(acc >> bits);
    }
  }
  *ret = n;
  return 0;
}

/* "Upgrade: h2c": 101, then the request is stream 1 of a new session. */
static void h1_upgrade(struct conn *c) {
  struct h2s_req *r = c->h1req;
  uint8_t settings[512];
  size_t n;
  static const char sw[] =
      "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\n"
      "upgrade: h2c\r\n\r\n";
  if (b64url(h2s_header(r, "http2-settings"), settings, sizeof settings, &n) <
      0) {
    conn_close(c, "bad HTTP2-Settings");
    return;
  }
  c->h1req = NULL;
  if (buf_add(&c->out, sw, sizeof sw - 1) < 0 || h2_start(c) < 0 ||
      nghttp2_session_upgrade2(c->h2, settings, n, !strcmp(r->method, "HEAD"),
                               r) < 0) {
    conn_close(c, "h2c upgrade failed");
    return;
  }
  r->sid = 1;
  r->proto = "h2c";
  dispatch(r);
  size_t left = buf_size(&c->in);
  if (left) {
    char *d = c->in.p + c->in.off;
    c->in.off = c->in.len;
    h2_feed(c, d, left);
  }
}

/* Parse what c->in holds, up to the end of one request. */
static void h1_feed(struct conn *c) {
  while (c->state == C_H1 && buf_size(&c->in) &&
         !(c->h1req && c->h1req->dispatched)) {
    size_t len = buf_size(&c->in);
    size_t n =
        http_parser_execute(&c->hp, &h1_settings, c->in.p + c->in.off, len);
    c->in.off += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->hp);
    if (c->hp.upgrade && c->h1req && c->h1req->h2c_upgrade &&
        !c->h1req->dispatched) {
      h1_upgrade(c);
      return;
    }
    if (c->hp.upgrade && !(c->h1req && c->h1req->dispatched)) {
      /* Another protocol we do not speak: the rest cannot be parsed. */
      {
        conn_close(c, "unsupported upgrade");
        return;
      }
    }
    if (e == HPE_PAUSED)
      break;
    if (e != HPE_OK) {
      if (!c->h1req)
        c->h1req = req_new(c, 0, c->tls ? "https/1.1" : "http/1.1");
      if (!c->h1req) {
        conn_close(c, "out of memory");
        return;
      }
      c->in.off = c->in.len;
      refuse(c->h1req, e == HPE_HEADER_OVERFLOW ? 431 : 400,
             "malformed HTTP/1.1 request: %s", http_errno_description(e));
      c->h1req->close_after = true;
      dispatch(c->h1req);
      break;
    }
    if (c->hp.upgrade)
      break;
  }
  set_events(c);
}

/* ---- Connection input ----------------------------------------------------
 */

static void handshake(struct conn *c) {
  struct h2s *s = c->s;
  int r = gnutls_handshake(c->tls);
  if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
    set_events(c);
    return;
  }
  if (r < 0) {
    /* The reason: GnuTLS's error, and for a client certificate that did
     * not verify, why not ("The certificate issuer is unknown."). */
    char why[512] = "";
    gnutls_datum_t out = {0};
    if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
        gnutls_certificate_verification_status_print(
            gnutls_session_get_verify_cert_status(c->tls), GNUTLS_CRT_X509,
            &out, 0) == 0) {
      size_t n = out.size;
      while (n && (out.data[n - 1] == ' ' || out.data[n - 1] == '\0'))
        n--;
      snprintf(why, sizeof why, " (%.*s)", (int)n, out.data);
      gnutls_free(out.data);
    }
    LOG(s, VMH_LOG_WARN, "TLS handshake with %s refused: %s%s", c->peer,
        gnutls_strerror(r), why);
    conn_close(c, NULL);
    return;
  }
  gnutls_datum_t alpn = {0};
  bool h2 = gnutls_alpn_get_selected_protocol(c->tls, &alpn) == 0 &&
            alpn.size == 2 && !memcmp(alpn.data, "h2", 2);
  if (h2) {
    if (h2_start(c) < 0) {
      conn_close(c, "out of memory");
      return;
    }
  } else {
    c->state = C_H1;
    http_parser_init(&c->hp, HTTP_REQUEST);
    c->hp.data = c;
  }
  c->events = 0;
  set_events(c);
}

/* Cleartext: the HTTP/2 preface, or HTTP/1.1. */
static void detect(struct conn *c) {
  size_t n = buf_size(&c->in);
  const char *d = c->in.p + c->in.off;
  size_t k = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;
  if (memcmp(d, H2_PREFACE, k) == 0) {
    if (n < H2_PREFACE_LEN)
      return; /* wait for the rest */
    if (h2_start(c) < 0) {
      conn_close(c, "out of memory");
      return;
    }
    c->in.off = c->in.len;
    {
      h2_feed(c, d, n);
      return;
    }
  }
  c->state = C_H1;
  http_parser_init(&c->hp, HTTP_REQUEST);
  c->hp.data = c;
  h1_feed(c);
}

static void conn_input(struct conn *c) {
  char b[READ_CHUNK];
  while (c->lingering) {
    ssize_t n = conn_recv(c, b, sizeof b);
    if (n == -EAGAIN)
      return;
    if (n <= 0) {
      conn_close(c, NULL);
      return;
    }
  }
  for (int rounds = 0; rounds < 16 && c->state != C_CLOSED; rounds++) {
    if (c->state == C_H1 && c->h1req && c->h1req->dispatched)
      break; /* resumed when the response is written */
    ssize_t n = conn_recv(c, b, sizeof b);
    if (n == -EAGAIN)
      break;
    if (n <= 0) {
      c->in_closed = true;
      /* Requests in flight still get their answer on HTTP/1.1 (a client
       * may half-close); HTTP/2 clients do not half-close. */
      if (c->state == C_H1 && c->h1req && c->h1req->dispatched)
        c->closing = true;
      else {
        conn_close(c, n ? "read failed" : "end of file");
        return;
      }
      break;
    }
    if (c->state == C_H2) {
      h2_feed(c, b, (size_t)n);
    } else {
      if (buf_add(&c->in, b, (size_t)n) < 0) {
        conn_close(c, "out of memory");
        return;
      }
      if (c->state == C_DETECT)
        detect(c);
      else
        h1_feed(c);
    }
  }
  if (c->state != C_CLOSED)
    conn_flush(c);
}

static void conn_event(struct conn *c, uint32_t ev) {
  if (c->state == C_CLOSED)
    return;
  if (c->state == C_HANDSHAKE) {
    handshake(c);
    if (c->state == C_HANDSHAKE || c->state == C_CLOSED)
      return;
  }
  if (ev & (EPOLLERR | EPOLLHUP) && !(ev & EPOLLIN)) {
    conn_close(c, "connection error");
    return;
  }
  if (ev & EPOLLOUT)
    conn_flush(c);
  if (c->state != C_CLOSED && (ev & EPOLLIN))
    conn_input(c);
}

/* ---- Listeners -----------------------------------------------------------
 */

static void peer_name(const struct sockaddr_storage *ss, char *out,
                      size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(out, len, "%s:%u", ip, ntohs(a->sin_port));
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    snprintf(out, len, "[%s]:%u", ip, ntohs(a->sin6_port));
  } else {
    snprintf(out, len, "unix");
  }
}

static void accept_one(struct h2s *s, struct listener *l, int fd,
                       const struct sockaddr_storage *ss) {
  struct conn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return;
  }
  c->kind = EV_CONN;
  c->s = s;
  c->fd = fd;
  c->t_open = c->t_active = now_ms();
  c->t_tokens = now_us();
  c->tokens = s->conf->requests_per_s;
  peer_name(ss, c->peer, sizeof c->peer);
  if (ss->ss_family != AF_UNIX)
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
  c->state = C_DETECT;
  if (l->tls) {
    pthread_mutex_lock(&s->lock);
    c->creds = h2tls_ref(s->creds);
    pthread_mutex_unlock(&s->lock);
    static const gnutls_datum_t protos[] = {{(unsigned char *)"h2", 2},
                                            {(unsigned char *)"http/1.1", 8}};
    if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0 ||
        gnutls_priority_set(c->tls, s->prio) < 0 ||
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->creds->x) <
            0 ||
        gnutls_alpn_set_protocols(c->tls, protos, 2,
                                  GNUTLS_ALPN_SERVER_PRECEDENCE) < 0) {
      if (c->tls)
        gnutls_deinit(c->tls);
      h2tls_unref(c->creds);
      close(fd);
      free(c);
      return;
    }
    if (s->conf->client_ca) {
      gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_REQUIRE);
      gnutls_session_set_verify_cert(c->tls, NULL, 0);
    }
    gnutls_transport_set_int(c->tls, fd);
    c->state = C_HANDSHAKE;
  }
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  s->n_conns++;
  c->events = EPOLLIN;
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e);
}

static void listener_event(struct h2s *s, struct listener *l) {
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    if (s->n_conns >= s->conf->max_connections) {
      close(fd);
      s->refused++;
      uint64_t t = now_ms();
      if (t - s->t_refused_log >= 10000) {
        s->t_refused_log = t;
        LOG(s, VMH_LOG_WARN,
            "%" PRIu32 " connections open (max_connections): refused %" PRIu64
            " so far",
            s->n_conns, s->refused);
      }
      continue;
    }
    accept_one(s, l, fd, &ss);
  }
}

/* A listener for "host:port", "[v6]:port" or a unix socket path. */
static int bind_one(struct h2s *s, const struct h2s_listen *spec) {
  struct listener *l = calloc(1, sizeof *l);
  int fd = -1;
  if (!l || !(l->address = strdup(spec->address)))
    goto fail_nomem;
  l->kind = EV_LISTENER;
  l->tls = spec->tls;
  const char *a = spec->address;
  if (a[0] == '/' || a[0] == '.') {
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    if (strlen(a) >= sizeof un.sun_path) {
      s->host->error("listener %s: path too long", a);
      goto fail;
    }
    strcpy(un.sun_path, a);
    struct stat st;
    /* A socket left by a dead daemon; anything else is refused by bind. */
    if (lstat(a, &st) == 0 && S_ISSOCK(st.st_mode)) {
      int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (probe >= 0 && connect(probe, (void *)&un, sizeof un) < 0)
        unlink(a);
      if (probe >= 0)
        close(probe);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (void *)&un, sizeof un) < 0) {
      s->host->error("listener %s: %s", a, strerror(errno));
      goto fail;
    }
    chmod(a, 0660);
    if (!(l->unix_path = strdup(a)))
      goto fail_nomem;
  } else {
    char host[256];
    const char *port;
    if (a[0] == '[') {
      const char *e = strchr(a, ']');
      if (!e || e[1] != ':' || (size_t)(e - a) >= sizeof host)
        goto fail_syntax;
      memcpy(host, a + 1, (size_t)(e - a - 1));
      host[e - a - 1] = '\0';
      port = e + 2;
    } else {
      const char *e = strrchr(a, ':');
      if (!e || (size_t)(e - a) >= sizeof host || strchr(a, ':') != e)
        goto fail_syntax;
      memcpy(host, a, (size_t)(e - a));
      host[e - a] = '\0';
      port = e + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    int e = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (e) {
      s->host->error("listener %s: %s", a, gai_strerror(e));
      goto fail;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
      if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){1}, sizeof(int));
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
      s->host->error("listener %s: %s", a, strerror(errno));
      freeaddrinfo(ai);
      goto fail;
    }
    freeaddrinfo(ai);
  }
  if (listen(fd, 512) < 0) {
    s->host->error("listener %s: %s", a, strerror(errno));
    goto fail;
  }
  l->fd = fd;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
  epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
  l->next = s->listeners;
  s->listeners = l;
  LOG(s, VMH_LOG_INFO, "listening on %s (%s)", a,
      l->tls
          ? (s->conf->client_ca ? "TLS, client certificates required" : "TLS")
          : "cleartext HTTP/2 and HTTP/1.1");
  return 0;

fail_syntax:
  s->host->error("listener '%s': expected host:port, [v6]:port or a path", a);
  goto fail;
fail_nomem:
  s->host->error("out of memory");
fail:
  if (fd >= 0)
    close(fd);
  if (l) {
    if (l->unix_path)
      unlink(l->unix_path);
    free(l->unix_path);
    free(l->address);
    free(l);
  }
  return VMH_EINVAL;
}

static void unlisten(struct h2s *s) {
  while (s->listeners) {
    struct listener *l = s->listeners;
    s->listeners = l->next;
    epoll_ctl(s->ep, EPOLL_CTL_DEL, l->fd, NULL);
    close(l->fd);
    if (l->unix_path)
      unlink(l->unix_path);
    free(l->unix_path);
    free(l->address);
    free(l);
  }
}

/* ---- Certificates --------------------------------------------------------
 */

static struct timespec mtime_of(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0)
    return (struct timespec){0};
  return st.st_mtim;
}

/* Load the cert files into new credentials for new connections. */
static int reload(struct h2s *s, char *err, size_t errlen) {
  struct h2tls_creds *c;
  struct timespec m = mtime_of(s->cert);
  if (h2tls_load(s->cert, s->key, s->conf->client_ca, &c, err, errlen) < 0)
    return -1;
  pthread_mutex_lock(&s->lock);
  struct h2tls_creds *old = s->creds;
  s->creds = c;
  s->cert_mtime = m;
  pthread_mutex_unlock(&s->lock);
  h2tls_unref(old);
  return 0;
}

/* The names of a generated certificate: the configured ones, the host
 * name, localhost, and the listeners' hosts. */
static int generate(struct h2s *s, char *err, size_t errlen) {
  const struct h2s_conf *cf = s->conf;
  size_t cap = cf->n_hostnames + cf->n_listen + 4, n = 0;
  char **names = calloc(cap, sizeof *names);
  char hn[256];
  if (!names)
    return snprintf(err, errlen, "out of memory"), -1;
  for (uint32_t i = 0; i < cf->n_hostnames; i++)
    names[n++] = strdup(cf->hostnames[i]);
  if (gethostname(hn, sizeof hn) == 0 && hn[0])
    names[n++] = strndup(hn, sizeof hn);
  names[n++] = strdup("localhost");
  for (uint32_t i = 0; i < cf->n_listen; i++) {
    const char *a = cf->listen[i].address;
    if (a[0] == '/' || a[0] == '.')
      continue;
    const char *st = a[0] == '[' ? a + 1 : a;
    const char *e = a[0] == '[' ? strchr(a, ']') : strrchr(a, ':');
    if (e && e > st)
      names[n++] = strndup(st, (size_t)(e - st));
  }
  /* Drop failed copies and duplicates. */
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    bool dup = !names[i];
    for (size_t j = 0; j < k && !dup; j++)
      dup = !strcmp(names[j], names[i]);
    if (dup)
      free(names[i]);
    else
      names[k++] = names[i];
  }
  int r = h2tls_generate(s->cert, s->key, names, k, err, errlen);
  for (size_t i = 0; i < k; i++)
    free(names[i]);
  free(names);
  if (r == 0)
    LOG(s, VMH_LOG_INFO, "generated a self-signed certificate: %s", s->cert);
  return r;
}

static int tls_setup(struct h2s *s) {
  char err[512];
  const char *prio = s->conf->tls12
                         ? "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
                         : "NORMAL:-VERS-ALL:+VERS-TLS1.3";
  if (gnutls_priority_init(&s->prio, prio, NULL) < 0) {
    s->host->error("TLS priorities '%s' refused", prio);
    return VMH_EINTERNAL;
  }
  if (s->conf->cert) {
    s->cert = strdup(s->conf->cert);
    s->key = strdup(s->conf->key);
  } else {
    const char *dir = s->host->state_dir(s->inst);
    if (asprintf(&s->cert, "%s/tls/cert.pem", dir) < 0)
      s->cert = NULL;
    if (asprintf(&s->key, "%s/tls/key.pem", dir) < 0)
      s->key = NULL;
  }
  if (!s->cert || !s->key) {
    s->host->error("out of memory");
    return VMH_ENOMEM;
  }
  if (!s->conf->cert && access(s->cert, F_OK) < 0 &&
      generate(s, err, sizeof err) < 0) {
    s->host->error("cannot generate a certificate: %s", err);
    return VMH_EIO;
  }
  if (reload(s, err, sizeof err) < 0) {
    s->host->error("%s", err);
    return VMH_EINVAL;
  }
  return 0;
}

int h2s_cert_info(struct h2s *s, struct h2s_cert_info *ret) {
  char err[256];
  if (!s->any_tls)
    return VMH_ENOENT;
  return h2tls_info(s->cert, ret, err, sizeof err) < 0 ? VMH_EIO : 0;
}

int h2s_cert_generate(struct h2s *s, char *err, size_t errlen) {
  if (!s->any_tls)
    return snprintf(err, errlen, "no TLS listener"), VMH_ENOENT;
  if (generate(s, err, errlen) < 0 || reload(s, err, errlen) < 0)
    return VMH_EIO;
  return 0;
}

int h2s_cert_install(struct h2s *s, const char *cert, size_t clen,
                     const char *key, size_t klen, char *err, size_t errlen) {
  if (!s->any_tls)
    return snprintf(err, errlen, "no TLS listener"), VMH_ENOENT;
  if (h2tls_install(s->cert, s->key, cert, clen, key, klen, err, errlen) < 0)
    return VMH_EINVAL;
  if (reload(s, err, errlen) < 0)
    return VMH_EIO;
  LOG(s, VMH_LOG_INFO, "installed a new certificate: %s", s->cert);
  return 0;
}

/* ---- The loop ------------------------------------------------------------
 */

static void take_queue(struct h2s *s) {
  eventfd_t v;
  eventfd_read(s->wake_fd, &v);
  for (;;) {
    pthread_mutex_lock(&s->lock);
    struct h2s_req *r = s->qhead;
    if (r) {
      s->qhead = r->qnext;
      if (!s->qhead)
        s->qtail = NULL;
      r->queued = false;
    }
    pthread_mutex_unlock(&s->lock);
    if (!r)
      break;
    struct conn *c = r->c;
    if (!c) {
      tell_close(r);
    } else if (c->h2) {
      h2_deliver(r);
      /* Flushed once the queue is empty: one write for many answers. */
      if (!c->dirty) {
        c->dirty = true;
        c->dnext = s->dirty;
        s->dirty = c;
      }
    } else {
      h1_deliver(r);
    }
    req_unref(r); /* the queue's */
  }
  while (s->dirty) {
    struct conn *c = s->dirty;
    s->dirty = c->dnext;
    c->dirty = false;
    conn_flush(c); /* a closed one returns at once */
  }
}

/* Once a second: timeouts, and certificate files changed on disk. */
static void sweep(struct h2s *s) {
  uint64_t t = now_ms();
  const struct h2s_conf *cf = s->conf;
  for (struct conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->lingering && t - c->t_active > 2000) {
      conn_close(c, "linger done");
      continue;
    }
    if ((c->state == C_HANDSHAKE || c->state == C_DETECT) &&
        t - c->t_open > cf->handshake_timeout_s * 1000ull) {
      conn_close(c, "handshake timeout");
      continue;
    }
    bool busy = false, slow = false;
    for (struct h2s_req *r = c->reqs; r; r = r->cnext) {
      busy = true;
      if (!r->dispatched &&
          t - r->t0_us / 1000 > cf->request_timeout_s * 1000ull)
        slow = true;
    }
    if (slow) {
      LOG(s, VMH_LOG_INFO, "%s: request not complete after %" PRIu32 " s",
          c->peer, cf->request_timeout_s);
      conn_close(c, "request timeout");
      continue;
    }
    if (!busy && t - c->t_active > cf->idle_timeout_s * 1000ull) {
      if (c->h2) {
        nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
        c->closing = true;
        conn_flush(c);
      } else {
        conn_close(c, "idle");
      }
    }
  }
  if (s->cert) {
    struct timespec m = mtime_of(s->cert);
    if (m.tv_sec && (m.tv_sec != s->cert_mtime.tv_sec ||
                     m.tv_nsec != s->cert_mtime.tv_nsec)) {
      char err[512];
      if (reload(s, err, sizeof err) == 0)
        LOG(s, VMH_LOG_INFO, "certificate %s changed: reloaded", s->cert);
      else {
        s->cert_mtime = m; /* once per change */
        LOG(s, VMH_LOG_WARN, "certificate changed but not usable: %s", err);
      }
    }
  }
}

/* Stop: no more connections, GOAWAY, end the streamed responses. */
static void begin_drain(struct h2s *s) {
  unlisten(s);
  for (struct conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    for (struct h2s_req *r = c->reqs; r; r = r->cnext)
      tell_close(r);
    if (c->h2) {
      nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(c->h2),
                            NGHTTP2_NO_ERROR, NULL, 0);
      c->closing = !c->reqs;
      conn_flush(c);
    } else if (!c->reqs) {
      conn_close(c, NULL);
    }
  }
}

static void *loop(void *arg) {
  struct h2s *s = arg;
  atomic_store(&s->loop_thread, pthread_self());
  uint64_t deadline = 0;
  int wait_ms = 250;
  for (;;) {
    struct epoll_event ev[64];
    int n = epoll_wait(s->ep, ev, 64, wait_ms);
    for (int i = 0; i < n; i++) {
      enum ev_kind *k = ev[i].data.ptr;
      if (*k == EV_WAKE)
        continue; /* the queue is taken below in any case */
      if (*k == EV_LISTENER)
        listener_event(s, ev[i].data.ptr);
      else
        conn_event(ev[i].data.ptr, ev[i].events);
    }
    wait_ms = s->n_deadlines ? check_deadlines(s, 250) : 250;
    take_queue(s);
    uint64_t t = now_ms();
    if (t - s->t_sweep >= 1000) {
      s->t_sweep = t;
      sweep(s);
    }
    free_dead(s);
    if (atomic_load(&s->stopping)) {
      if (!deadline) {
        deadline = t + s->drain_ms;
        begin_drain(s);
      }
      bool busy = false;
      for (struct conn *c = s->conns; c && !busy; c = c->next)
        busy = c->reqs != NULL;
      if (!busy || t >= deadline)
        break;
    }
  }
  while (s->conns)
    conn_close(s->conns, NULL);
  pthread_mutex_lock(&s->lock);
  s->stopped = true;
  pthread_mutex_unlock(&s->lock);
  take_queue(s);
  free_dead(s);
  return NULL;
}

/* ---- Life cycle ----------------------------------------------------------
 */

struct h2s *h2s_new(const struct vmh_host *host,
                    const struct vmh_instance *inst,
                    const struct h2s_conf *conf, h2s_handler_fn handler,
                    void *opaque) {
  struct h2s *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->host = host;
  s->inst = inst;
  s->conf_copy = *conf;
  s->conf = &s->conf_copy;
  s->handler = handler;
  s->opaque = opaque;
  s->ep = s->wake_fd = -1;
  atomic_init(&s->refs, 1);
  pthread_mutex_init(&s->lock, NULL);
  h1_settings = (http_parser_settings){
      .on_message_begin = h1_begin,
      .on_url = h1_url,
      .on_header_field = h1_field,
      .on_header_value = h1_value,
      .on_headers_complete = h1_headers_done,
      .on_body = h1_body,
      .on_message_complete = h1_done,
  };
  for (uint32_t i = 0; i < conf->n_listen; i++)
    s->any_tls |= conf->listen[i].tls;
  return s;
}

static int h2_setup(struct h2s *s) {
  if (nghttp2_session_callbacks_new(&s->cbs) < 0 ||
      nghttp2_option_new(&s->h2opt) < 0)
    return -1;
  nghttp2_session_callbacks_set_on_begin_headers_callback(s->cbs,
                                                          h2_on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(s->cbs, h2_on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s->cbs, h2_on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(s->cbs, h2_on_frame);
  nghttp2_session_callbacks_set_on_stream_close_callback(s->cbs, h2_on_close);
  nghttp2_session_callbacks_set_send_data_callback(s->cbs, h2_send_data);
  /* nghttp2's own rapid-reset guard, besides ours (which logs and is
   * configured): a burst of resets_per_s, refilled at that rate. */
  nghttp2_option_set_stream_reset_rate_limit(s->h2opt, s->conf->resets_per_s,
                                             s->conf->resets_per_s);
  nghttp2_option_set_max_send_header_block_length(s->h2opt, 65536);
  return 0;
}

int h2s_start(struct h2s *s) {
  int r;
  uint32_t rnd;
  if (gnutls_rnd(GNUTLS_RND_NONCE, &rnd, sizeof rnd) < 0)
    rnd = (uint32_t)now_us();
  s->id_prefix = rnd;
  s->t_sweep = now_ms();
  s->ep = epoll_create1(EPOLL_CLOEXEC);
  s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->ep < 0 || s->wake_fd < 0 || h2_setup(s) < 0) {
    s->host->error("cannot set up the server: %s", strerror(errno));
    return VMH_EINTERNAL;
  }
  s->wake_ev = EV_WAKE;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->wake_ev};
  epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake_fd, &ev);
  if (s->any_tls && (r = tls_setup(s)) < 0)
    return r;
  for (uint32_t i = 0; i < s->conf->n_listen; i++)
    if ((r = bind_one(s, &s->conf->listen[i])) < 0) {
      unlisten(s);
      return r;
    }
  if ((r = pthread_create(&s->thread, NULL, loop, s)) != 0) {
    unlisten(s);
    s->host->error("cannot start the I/O thread: %s", strerror(r));
    return VMH_EINTERNAL;
  }
  s->running = true;
  return 0;
}

void h2s_stop(struct h2s *s, uint32_t drain_ms) {
  if (!s->running)
    return;
  s->drain_ms = drain_ms;
  atomic_store(&s->stopping, true);
  wake(s);
  pthread_join(s->thread, NULL);
  s->running = false;
}

static void s_unref(struct h2s *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1)
    return;
  h2tls_unref(s->creds);
  if (s->prio)
    gnutls_priority_deinit(s->prio);
  if (s->cbs)
    nghttp2_session_callbacks_del(s->cbs);
  if (s->h2opt)
    nghttp2_option_del(s->h2opt);
  if (s->ep >= 0)
    close(s->ep);
  if (s->wake_fd >= 0)
    close(s->wake_fd);
  free(s->cert);
  free(s->key);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

void h2s_free(struct h2s *s) {
  if (!s)
    return;
  h2s_stop(s, 0);
  unlisten(s);
  s_unref(s);
}
