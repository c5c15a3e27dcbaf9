/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2int — what the files of h2server share.  Internal to
 * plugins/frontend/common: the front-ends include only h2server.h.
 *
 * The files, by concern:
 *   h2buf.c     byte buffers, shared bodies
 *   h2req.c     requests: their fields and limits as they arrive, the
 *               hand-over to the handler, the accessors, the end
 *   h2answer.c  answers from any thread: the completion queue, streamed
 *               responses, extra fields and trailers, watches
 *   h2conn.c    connections: TLS handshake, protocol detection, reading,
 *               writing, closing
 *   h2http2.c   HTTP/2: the nghttp2 session and its callbacks
 *   h2http1.c   HTTP/1.1: the http-parser callbacks, responses, h2c
 *   h2listen.c  listeners: bind, accept
 *   h2tls.c     certificates: the files (h2tls.h) and the server's own
 *   h2conf.c    the config keys
 *   h2server.c  the server's life cycle and its I/O loop
 * Functions shared between them are named after their file (h2conn_close
 * is in h2conn.c); everything else is static.
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
 *
 * Unless said otherwise, a function here runs on the I/O thread.
 */
#ifndef VMH_H2INT_H
#define VMH_H2INT_H

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <http_parser.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "h2server.h"
#include "h2tls.h"

#define LOG(s, level, ...) (s)->host->log((s)->inst, (level), __VA_ARGS__)

/* What an epoll event's data points at: the first member of each. */
enum ev_kind { EV_WAKE, EV_LISTENER, EV_CONN };

struct h2s_body {
  atomic_uint refs;
  char *data;
  size_t len;
  void (*release)(char *data, size_t len); /* NULL: free() */
};

struct buf {
  char *p;
  size_t off, len, cap;    /* data is [off, len) */
  struct h2s_body *shared; /* set: p is its data, read-only (cap 0) */
};

struct listener; /* h2listen.c */

enum cstate { C_HANDSHAKE, C_DETECT, C_H1, C_H2, C_CLOSED };

struct hdr {
  char *name, *value; /* one block: value points into name's (h2req.c) */
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
  int role;      /* enum auth_role, of the connection, then of a token */
  char who[200]; /* the identity, for logs (h2s_who) */
  char peer[INET6_ADDRSTRLEN + 8];
  const char *proto;
  int err_status;
  char *err_msg; /* malloc'ed; NULL: none (or no memory for it) */
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
  /* Streamed responses (h2answer.c): on s->streams while streaming;
   * acct = bytes of out counted in s->stream_bytes. */
  struct h2s_req *snext, *sprev;
  bool on_streams;
  size_t acct;
  const char *cut_why;    /* why the stream was cut (overflow): static */
  unsigned char addr[17]; /* the peer's address key (h2listen.c) */
  bool unix_peer;
  struct h2s_req *qnext;
  /* Loop thread. */
  bool submitted, finished;
  uint64_t bytes;
  /* Body bytes counted in the connection's c->held (HTTP/2: on_data in
   * h2http2.c, h2req_detach). */
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
  unsigned char addr[17]; /* family and address, without the port: the
                           * per-peer connection count (h2listen.c) */
  bool unix_peer;
  int role;      /* what the connection itself grants (h2auth.c) */
  char who[200]; /* its identity */
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
  uint64_t t_open, t_active; /* ms */
  double tokens;
  uint64_t t_tokens; /* us */
  uint32_t resets;
  uint64_t t_resets; /* ms: start of the current one-second window */
  struct conn *prev, *next;
  struct conn *dnext; /* on s->dirty */
  bool dirty;
  /* The bearer token its last request checked, and the answer, true while
   * the store's generation is tok_gen (h2auth.c). */
  char tok[AUTH_SECRET_MAX + 1];
  int tok_role;
  char tok_name[AUTH_NAME_MAX];
  uint64_t tok_gen;
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
  atomic_bool wake_due; /* wake_fd written since the loop last took it */
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
  struct auth_store *tokens; /* the daemon's bearer tokens (h2auth.c) */
  /* Loop thread: counts the reads that brought bytes; the token file is
   * looked at again (a stat) once per such read, so that a request sent
   * after a token was revoked is checked against the file without it. */
  uint64_t reads, tokens_reads, tokens_gen;
  /* Under lock: streamed responses, and the bytes their buffers hold
   * (limits.stream_memory). */
  struct h2s_req *streams;
  uint64_t stream_bytes;
};

static inline uint64_t now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

/* src into dst (size bytes, NUL-terminated, cut to fit): snprintf's "%s"
 * without parsing a format on every request. */
static inline void h2_strlcpy(char *dst, const char *src, size_t size) {
  size_t n = strlen(src);
  if (n >= size)
    n = size - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static inline uint64_t now_ms(void) {
  return now_us() / 1000;
}

/* ---- h2buf.c: buffers (any thread; a buf has one owner) ----------------- */

/* Append n bytes of d (a shared body is copied first).  0, or -1 when out
 * of memory. */
int h2buf_add(struct buf *b, const void *d, size_t n);
/* Free what b holds (or drop its reference to a shared body); b is left
 * empty. */
void h2buf_free(struct buf *b);
/* Once b is all sent: its memory freed when it has grown past
 * H2BUF_KEEP (an answer of megabytes copied in, as HTTP/1.1 does, must not
 * stay with a kept-alive connection). */
#define H2BUF_KEEP (64 * 1024)
#define H2BUF_MIN 256
void h2buf_idle(struct buf *b);

static inline size_t h2buf_size(const struct buf *b) {
  return b->len - b->off;
}

/* ---- h2req.c: requests -------------------------------------------------- */

/* A request on c (stream sid; 0 for HTTP/1.1), held by the connection:
 * NULL when out of memory. */
struct h2s_req *h2req_new(struct conn *c, int32_t sid, const char *proto);
/* Drop a reference (any thread); the last frees r and its server's
 * reference. */
void h2req_unref(struct h2s_req *r);
/* Mark r refused with status and a reason, unless it already is. */
void h2req_refuse(struct h2s_req *r, int status, const char *fmt, ...)
    __attribute__((__format__(__printf__, 3, 4)));
/* A header field as received: counted against the limit, stored lower
 * case unless over it. */
void h2req_header(struct h2s_req *r, const char *name, size_t nlen,
                  const char *value, size_t vlen);
/* A field as one block "name\0value" (freed with free(h->name)): 0, or -1
 * when out of memory. */
int h2req_hdr_make(struct hdr *h, const char *name, size_t nlen,
                   const char *value, size_t vlen);
/* More bytes of h's value (a value that came in pieces): 0 or -1. */
int h2req_hdr_append(struct hdr *h, const char *d, size_t n);
/* Body bytes, kept unless over the limit (then refused, 413). */
void h2req_body(struct h2s_req *r, const char *d, size_t n);
/* The request target "path?query" into r's path and query. */
void h2req_target(struct h2s_req *r, const char *t, size_t len);
/* Hand r to the handler (refused first if over a limit), with a reference
 * for it. */
void h2req_dispatch(struct h2s_req *r);
/* A piece of an early request's body, or its end, to its h2s_on_data. */
void h2req_early_data(struct h2s_req *r, const char *d, size_t n, int end);
/* Write r's access-log line with status, once. */
void h2req_log(struct h2s_req *r, int status);
/* The connection lets go of r: logged if it was not, its owner and
 * watcher told, the connection's reference dropped. */
void h2req_detach(struct h2s_req *r);

/* ---- h2answer.c: answers ------------------------------------------------ */

/* len bytes of r's answer left r->out for the connection; under s->lock. */
void h2answer_consumed(struct h2s_req *r, size_t len);
/* r is freed: its stream's bytes leave the budget (takes s->lock). */
void h2answer_forget(struct h2s_req *r);
/* Whether r's answer goes without its body: a HEAD request (the handler
 * answers it as a GET) not streamed. */
bool h2answer_head_only(const struct h2s_req *r);
/* Mark r gone and call its streamed response's on_close, at most once.
 * The caller holds a reference. */
void h2answer_tell_close(struct h2s_req *r);
/* The watcher's last word (END or GONE), when the connection lets go. */
void h2answer_watch_end(struct h2s_req *r);
/* Tell the watchers whose deadline passed before an answer.  Returns how
 * many ms until the next deadline, at most max_ms. */
int h2answer_deadlines(struct h2s *s, int max_ms);

/* ---- h2conn.c: connections ---------------------------------------------- */

/* A new connection on the accepted socket fd from *ss, in TLS handshake
 * when tls, else in protocol detection; on failure fd is closed. */
void h2conn_open(struct h2s *s, int fd, const struct sockaddr_storage *ss,
                 bool tls);
/* Register with epoll what c waits for now. */
void h2conn_set_events(struct conn *c);
/* Write what c has to send (asking nghttp2 for more while little is
 * waiting), then close or linger if c is done. */
void h2conn_flush(struct conn *c);
/* Close c (why: logged at debug level when set) and detach its requests;
 * c itself is freed by h2conn_free_dead at the end of the round. */
void h2conn_close(struct conn *c, const char *why);
void h2conn_free_dead(struct h2s *s);
/* An epoll event on c. */
void h2conn_event(struct conn *c, uint32_t ev);

/* ---- h2http2.c: HTTP/2 -------------------------------------------------- */

/* The nghttp2 callbacks and options of s, made once.  0 or -1. */
int h2http2_setup(struct h2s *s);
/* Make c an HTTP/2 connection: a session, our SETTINGS queued.  0 or -1. */
int h2http2_start(struct conn *c);
/* Bytes received on c (closed on a protocol error). */
void h2http2_feed(struct conn *c, const char *d, size_t n);
/* Hand r's answer (or its new streamed bytes) to nghttp2; the caller
 * flushes. */
void h2http2_deliver(struct h2s_req *r);

/* ---- h2http1.c: HTTP/1.1 ------------------------------------------------ */

/* Make c an HTTP/1.1 connection. */
void h2http1_start(struct conn *c);
/* Parse what c->in holds, up to the end of one request. */
void h2http1_feed(struct conn *c);
/* Write r's answer (or its new streamed bytes); once it is complete, take
 * the connection's next request. */
void h2http1_deliver(struct h2s_req *r);

/* ---- h2listen.c: listeners ---------------------------------------------- */

/* The peer's address of ss, without its port, as a key (17 bytes). */
void h2listen_addr_key(const struct sockaddr_storage *ss, unsigned char *key);
/* Bind and register a listener for spec.  0, or a VMH_E* code with the
 * host's error set. */
int h2listen_bind(struct h2s *s, const struct h2s_listen *spec);
/* Accept what waits on l (up to max_connections). */
void h2listen_event(struct h2s *s, struct listener *l);
/* Close every listener. */
void h2listen_close(struct h2s *s);

/* ---- h2tls.c: the server's certificate ---------------------------------- */

/* The TLS priorities, and the certificate (generated if configured none
 * and none was made yet) loaded.  0, or a VMH_E* code with the host's
 * error set.  Before the loop starts. */
int h2tls_setup(struct h2s *s);
/* Reload the certificate if its file changed since it was loaded. */
void h2tls_check(struct h2s *s);

/* ---- h2auth.c: identities ----------------------------------------------- */

/* The auth keys of an instance's config into c; 0 or a VMH_E* code with
 * the host's error set.  h2auth_conf_free frees what it read. */
int h2auth_conf_read(const struct vmh_host *host, const struct vmh_config *cfg,
                     struct h2s_conf *c);
void h2auth_conf_free(struct h2s_conf *c);
/* Refuse (VMH_EINVAL, error set naming el) a cleartext TCP listener on a
 * non-loopback address without insecure. */
int h2auth_check_listener(const struct vmh_host *host,
                          const struct vmh_config *el,
                          const struct h2s_listen *l);
/* The token store; 0 or VMH_ENOMEM with the host's error set. */
int h2auth_start(struct h2s *s);
/* The identity of a new connection: a unix-socket peer's credentials; a
 * TCP connection's (anonymous, until TLS says more). */
void h2auth_conn_unix(struct conn *c);
void h2auth_conn_anonymous(struct conn *c);
/* After the TLS handshake: the client certificate's identity; -1 with why
 * set when the connection must be refused (no clientAuth purpose). */
int h2auth_conn_tls(struct conn *c, char *why, size_t len);

/* ---- h2server.c: the server --------------------------------------------- */

/* Wake the loop to take the queue (any thread; needless on the loop's). */
void h2server_wake(struct h2s *s);
/* Drop a reference (any thread); the last frees s. */
void h2server_unref(struct h2s *s);

#endif /* VMH_H2INT_H */
