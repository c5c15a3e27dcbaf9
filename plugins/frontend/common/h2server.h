/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2server — the HTTP server under the front-ends that speak HTTP (rest,
 * rpc): HTTP/2 (nghttp2) over TLS 1.3/1.2 (GnuTLS, ALPN "h2" and
 * "http/1.1"), cleartext HTTP/2 (prior knowledge, or "Upgrade: h2c") and
 * HTTP/1.1 (http-parser), on any number of TCP and unix-socket listeners.
 *
 * In-tree convenience code, linked into each front-end plugin; never part
 * of the ABI.
 *
 * Threads.  One I/O thread runs an epoll loop over the listeners and
 * connections; it never blocks on a backend.  It calls the handler with
 * each complete request; the handler starts whatever work it needs (the
 * core's asynchronous operations) and returns.  The answer is given with
 * h2s_respond() (or the h2s_stream_*() calls), from any thread: it is
 * queued and the loop woken through an eventfd.
 *
 * Ownership.  The handler holds the request from the call until it has
 * called h2s_respond() or h2s_stream_end(), exactly once; the request is
 * valid until then even when the client has gone (the answer is dropped).
 * Strings got from a request are valid as long as the request.
 *
 * Limits (all configurable, see h2s_conf_read): connections, concurrent
 * streams per connection, header and body size (431, 413), requests per
 * second per connection (429), client stream resets per second (the
 * HTTP/2 "rapid reset" attack, CVE-2023-44487: GOAWAY ENHANCE_YOUR_CALM),
 * time to finish the TLS handshake and to send a whole request (slowloris),
 * idle time.  Requests over a limit reach the handler with
 * h2s_error_status() set, so that the front-end formats the error.
 */
#ifndef VMH_H2SERVER_H
#define VMH_H2SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <vmhost/vmhost-plugin.h>

#include "authtoken.h"

struct h2s;
struct h2s_req;

struct h2s_listen {
  char *address; /* "host:port", "[v6]:port", or a unix socket path */
  int tls;       /* 1: TLS; 0: cleartext HTTP/2 and HTTP/1.1 */
  int insecure;  /* cleartext on a non-loopback address, accepted */
};

/* An identity the config maps to a role (auth.clients, auth.unix_peers). */
struct h2s_auth_map {
  char *name;       /* clients: the subject DN, or the SHA-256 fingerprint */
  int by_sha256;    /* clients: name is a fingerprint (upper-case hex, ':') */
  int64_t uid, gid; /* unix_peers: one of them, the other -1 */
  int role;         /* enum auth_role */
};

struct h2s_conf {
  struct h2s_listen *listen;
  uint32_t n_listen;
  /* TLS: cert and key files (NULL: generated, self-signed, into the
   * instance's state dir at first start); client_ca set: client
   * certificates are required and verified against it (mTLS). */
  char *cert, *key, *client_ca;
  int tls12;        /* 1: TLS 1.2 allowed besides 1.3 */
  char **hostnames; /* extra names for the generated certificate */
  uint32_t n_hostnames;
  uint32_t max_connections;
  uint32_t max_connections_per_peer; /* TCP, by the peer's address */
  uint32_t max_streams;              /* concurrent, per connection */
  uint32_t max_header_size; /* bytes of all header fields of a request */
  uint64_t max_body_size;
  uint64_t max_conn_buffer; /* request bodies held per HTTP/2 connection */
  uint32_t requests_per_s;  /* per connection; also the burst */
  uint32_t resets_per_s;    /* client RST_STREAM frames, per connection */
  uint32_t idle_timeout_s;
  uint32_t request_timeout_s;    /* a whole request, from its first byte */
  uint32_t handshake_timeout_s;  /* TLS handshake or protocol detection */
  uint32_t stream_buffer;        /* bytes queued per streamed response */
  uint64_t stream_memory;        /* bytes queued over all of them */
  uint32_t max_streams_per_peer; /* streamed responses per address */
  int access_log;
  /* Who may do what (h2auth.c): roles of client certificates and of
   * unix-socket peers; /metrics without credentials. */
  struct h2s_auth_map *clients, *unix_peers;
  uint32_t n_clients, n_unix_peers;
  int open_metrics;
};

/* Read the server's keys of an instance's config (listen, tls, limits,
 * access_log) into *ret, with defaults.  0, or a VMH_E* code with the
 * host's error set.  Free with h2s_conf_free (also after failure). */
int h2s_conf_read(const struct vmh_host *host, const struct vmh_config *cfg,
                  struct h2s_conf *ret);
void h2s_conf_free(struct h2s_conf *conf);

/* Called on the I/O thread for each complete request (and for each
 * request refused by a limit: see h2s_error_status).  Must not block. */
typedef void (*h2s_handler_fn)(void *opaque, struct h2s_req *req);

/* A server for conf (its strings and arrays borrowed until h2s_stop; its
 * limits copied).  Nothing runs yet. */
struct h2s *h2s_new(const struct vmh_host *host,
                    const struct vmh_instance *inst,
                    const struct h2s_conf *conf, h2s_handler_fn handler,
                    void *opaque);
/* Bind every listener, load (or generate) the certificate, start the I/O
 * thread.  0, or a VMH_E* code with the host's error set and nothing left
 * listening. */
int h2s_start(struct h2s *s);
/* Stop accepting, let requests in flight finish for up to drain_ms, end
 * streamed responses, close every connection, join the thread. */
void h2s_stop(struct h2s *s, uint32_t drain_ms);
/* Free the server.  Requests still held by a handler keep what they need
 * alive; their answers are dropped. */
void h2s_free(struct h2s *s);

/* ---- Requests (read on any thread, while the request is held) ---------- */

const char *h2s_method(const struct h2s_req *req);
/* The path without the query, as sent (not decoded). */
const char *h2s_path(const struct h2s_req *req);
/* The query after '?', or NULL. */
const char *h2s_query(const struct h2s_req *req);
/* A header by lower-case name (the first if repeated), or NULL. */
const char *h2s_header(const struct h2s_req *req, const char *name);
const char *h2s_body(const struct h2s_req *req, size_t *ret_len);
/* The request's id: the client's x-request-id when it is a sane token,
 * else made here.  Sent back in every response's x-request-id. */
const char *h2s_request_id(const struct h2s_req *req);
/* "h2" (TLS), "h2c", "http/1.1" or "https/1.1". */
const char *h2s_proto(const struct h2s_req *req);
/* 0, or the status the server refuses the request with (413, 429, 431 …);
 * then h2s_error_message says why and the handler only formats it. */
int h2s_error_status(const struct h2s_req *req);
const char *h2s_error_message(const struct h2s_req *req);
/* When the request arrived, in microseconds of CLOCK_MONOTONIC. */
uint64_t h2s_start_us(const struct h2s_req *req);
/* The peer's address without its port, as a 17-byte key (family, then
 * the address): 0; or -1 for a unix-socket peer (no address). */
int h2s_peer_key(const struct h2s_req *req, unsigned char key[17]);
/* A label for the access log and metrics (the route), copied. */
void h2s_set_route(struct h2s_req *req, const char *route);

/* ---- Answers (any thread; one of them, exactly once) -------------------- */

/* A whole response; body is copied.  To a HEAD request (which a handler
 * answers as a GET) the body is left out, its content-length kept. */
void h2s_respond(struct h2s_req *req, int status, const char *content_type,
                 const char *body, size_t len);

/* A body several answers share (a cached answer, say): reference counted,
 * never changed.  h2s_body_take takes data (malloc'ed) and returns the
 * first reference, or NULL (data freed) when out of memory. */
struct h2s_body;
struct h2s_body *h2s_body_take(char *data, size_t len);
/* The same for data that release(data, len) gives back (memory of its
 * own, say mapped), called once with the last reference, or at once when
 * out of memory. */
struct h2s_body *h2s_body_wrap(char *data, size_t len,
                               void (*release)(char *data, size_t len));
void h2s_body_unref(struct h2s_body *b);
/* A whole response whose body is b, sent without a copy: the answer holds
 * a reference of its own until it is sent. */
void h2s_respond_body(struct h2s_req *req, int status, const char *content_type,
                      struct h2s_body *b);

/* A streamed response (server-sent events): begin once, send any number of
 * times, end once.  on_close is called at most once, on the I/O thread,
 * when the client goes away, the stream overflows its buffer (a reader too
 * slow) or the server stops; the handler must still call h2s_stream_end.
 * h2s_stream_send returns 0, or -1 when the stream is closed or data would
 * exceed its buffer (the stream is then closed). */
typedef void (*h2s_close_fn)(void *opaque);
void h2s_stream_begin(struct h2s_req *req, int status, const char *content_type,
                      h2s_close_fn on_close, void *opaque);
int h2s_stream_send(struct h2s_req *req, const char *data, size_t len);
void h2s_stream_end(struct h2s_req *req);

/* ---- Who is calling (h2auth.c) -------------------------------------------
 *
 * A caller is one of: the holder of a bearer token ("Authorization: Bearer
 * <token>", the token store of authtoken.h, STATE_DIR/auth), the holder of
 * a client certificate verified against tls.client_ca that carries the
 * clientAuth key purpose (its role from auth.clients, by subject or
 * SHA-256), or a unix-socket peer (root and the daemon's own user are
 * admin; others from auth.unix_peers, by uid or group).  A bearer token,
 * when sent, decides.  A cleartext TCP connection by itself is anonymous:
 * it grants nothing. */

#define H2S_OPEN (-1)    /* anyone, no credentials (healthz, readyz) */
#define H2S_METRICS (-2) /* reader, or anyone with auth.open_metrics */

/* Whether req may act as role `need` (enum auth_role, H2S_OPEN or
 * H2S_METRICS): 0; or 401 (no credentials, or a token not valid) or 403
 * (a role too low), msg (len bytes) saying why, the refusal logged with
 * the identity, and on 401 a www-authenticate field added to the answer.
 * On the I/O thread, in the handler. */
int h2s_authorize(struct h2s_req *req, int need, char *msg, size_t len);
/* After h2s_authorize: who called ("token:NAME", "cert:DN", "uid:N",
 * "anonymous"), and their role (enum auth_role). */
const char *h2s_who(const struct h2s_req *req);
int h2s_role(const struct h2s_req *req);
/* msg as req's caller may see it: for a caller below operator (and one not
 * authenticated), every absolute host path in it ("/var/lib/…", at the
 * start of a word; the request's own path aside) written "(a host path)", into
 * buf (len bytes); others get msg itself. */
const char *h2s_caller_message(const struct h2s_req *req, const char *msg,
                               char *buf, size_t len);
/* The daemon's token store, for the API that creates and revokes tokens;
 * owned by the server, valid between h2s_start and h2s_free. */
struct auth_store *h2s_tokens(struct h2s *s);

/* ---- Certificates ------------------------------------------------------- */

struct h2s_cert_info {
  char subject[256];
  char issuer[256];
  char names[512]; /* subject alternative names, comma-separated */
  char sha256[96]; /* fingerprint, hex with colons */
  int64_t not_before, not_after;
  int self_signed;
  char cert_path[512];
};

/* What the server presents now; 0, or VMH_ENOENT when TLS is not used. */
int h2s_cert_info(struct h2s *s, struct h2s_cert_info *ret);
/* Make a new self-signed certificate and key at the server's cert and key
 * paths, and use it for new connections.  0 or a VMH_E* code; err gets
 * the message. */
int h2s_cert_generate(struct h2s *s, char *err, size_t errlen);
/* Validate a PEM chain (leaf first) and key (they must parse, the key must
 * match the leaf, each certificate be issued by the next; the leaf's key
 * RSA >= 2048 bits, ECDSA >= P-256 or EdDSA, signed with SHA-256 or
 * better, valid now, naming every tls.hostnames entry), keep the pair in
 * use as the previous one, install them at the cert and key paths and use
 * them for new connections.  VMH_EINVAL with err saying which check. */
int h2s_cert_install(struct h2s *s, const char *cert_pem, size_t cert_len,
                     const char *key_pem, size_t key_len, char *err,
                     size_t errlen);

/* Put the previous pair (the one the last install replaced) back, checked
 * again; the pair in use becomes the previous one.  VMH_ENOENT when there
 * is none. */
int h2s_cert_restore(struct h2s *s, char *err, size_t errlen);

/* ---- Extra fields, trailers, watching (gRPC) ---------------------------- */

/* Add a field to the response headers of an answer not given yet (name in
 * lower case; both copied), on either protocol.  0, or -1 when out of
 * memory, already answered, or the field holds CR, LF (or ':' in the
 * name). */
int h2s_add_header(struct h2s_req *req, const char *name, const char *value);

/* Add a trailer field, sent after the body in a HEADERS frame that ends
 * the stream: before h2s_respond, or before h2s_stream_end of a streamed
 * response.  A whole response with trailers carries no content-length.
 * HTTP/2 only.  0, or -1 when out of memory or already ended. */
int h2s_add_trailer(struct h2s_req *req, const char *name, const char *value);

/* Answer with one HEADERS frame that ends the stream: status, content
 * type and the fields of h2s_add_header, no body (gRPC's Trailers-Only).
 * Over HTTP/1.1, a response without a body.  Like h2s_respond, it ends
 * the handler's hold on the request. */
void h2s_respond_headers(struct h2s_req *req, int status,
                         const char *content_type);

enum h2s_watch_event {
  H2S_WATCH_DEADLINE = 1, /* the deadline passed; not answered yet */
  H2S_WATCH_END = 2,      /* the request's stream is over, answer complete */
  H2S_WATCH_GONE = 3,     /* over before the answer was complete: the
                           * client reset the stream or the connection
                           * closed */
};
typedef void (*h2s_watch_fn)(void *opaque, enum h2s_watch_event ev);

/* Watch a request: only in the handler, on the I/O thread.  fn runs on
 * the I/O thread: once with H2S_WATCH_DEADLINE when deadline_us
 * (CLOCK_MONOTONIC microseconds; 0: none) passes before an answer is
 * given, and always, last, exactly once with H2S_WATCH_END or
 * H2S_WATCH_GONE; after that the server forgets opaque.  One watch per
 * request. */
void h2s_watch(struct h2s_req *req, uint64_t deadline_us, h2s_watch_fn fn,
               void *opaque);

/* ---- Streamed request bodies (gRPC client and bidirectional streams) --- */

/* Decide, for each HTTP/2 request whose headers are complete but whose
 * body is not, whether the handler gets it now (true) rather than after
 * the whole body (the default).  Set before h2s_start; fn runs on the I/O
 * thread.  HTTP/1.1 requests always come whole. */
typedef int (*h2s_early_fn)(void *opaque, const char *path);
void h2s_set_early(struct h2s *s, h2s_early_fn fn);

/* For a request handed over early: fn(opaque, data, len, end) is called on
 * the I/O thread with each piece of the body as it arrives, and once with
 * end = 1 when the client has sent it all.  It is not called once the
 * request's stream is gone or after h2s_on_data(req, NULL, NULL).  Only in
 * the handler or in fn itself (on the I/O thread).  The body's size limit
 * does not apply: the handler bounds what it keeps. */
typedef void (*h2s_data_fn)(void *opaque, const char *data, size_t len,
                            int end);
void h2s_on_data(struct h2s_req *req, h2s_data_fn fn, void *opaque);
/* 1 when the client has sent the whole body (always, for a request not
 * handed over early); on the I/O thread. */
int h2s_body_done(const struct h2s_req *req);

#endif /* VMH_H2SERVER_H */
