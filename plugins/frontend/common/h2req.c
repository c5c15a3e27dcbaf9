/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2req — requests: their fields and limits as they arrive, the hand-over
 * to the handler, what the handler reads, and the connection letting go
 * (see h2int.h). */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2int.h"
#include "numfmt.h"

struct h2s_req *h2req_new(struct conn *c, int32_t sid, const char *proto) {
  struct h2s *s = c->s;
  struct h2s_req *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->s = s;
  r->c = c;
  r->sid = sid;
  r->proto = proto;
  r->t0_us = now_us();
  r->role = c->role;
  memcpy(r->who, c->who, sizeof r->who);
  memcpy(r->peer, c->peer, sizeof r->peer);
  memcpy(r->addr, c->addr, sizeof r->addr);
  r->unix_peer = c->unix_peer;
  atomic_init(&r->refs, 1); /* the connection's */
  atomic_fetch_add(&s->refs, 1);
  numfmt_hex(r->id, s->id_prefix, 8);
  numfmt_hex(r->id + 8, atomic_fetch_add(&s->id_counter, 1), 8);
  r->id[16] = '\0';
  r->cnext = c->reqs;
  if (c->reqs)
    c->reqs->cprev = r;
  c->reqs = r;
  return r;
}

static void hdrs_free(struct hdr *h, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(h[i].name); /* the value is in the same block */
  free(h);
}

void h2req_unref(struct h2s_req *r) {
  if (atomic_fetch_sub(&r->refs, 1) != 1)
    return;
  free(r->method);
  free(r->path);
  free(r->err_msg);
  hdrs_free(r->h, r->nh);
  hdrs_free(r->rh, r->nrh);
  hdrs_free(r->tr, r->ntr);
  h2answer_forget(r);
  h2buf_free(&r->body);
  h2buf_free(&r->out);
  struct h2s *s = r->s;
  free(r);
  h2server_unref(s);
}

void h2req_refuse(struct h2s_req *r, int status, const char *fmt, ...) {
  if (r->err_status)
    return; /* the first reason stands */
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&r->err_msg, fmt, ap) < 0)
    r->err_msg = NULL;
  va_end(ap);
  r->err_status = status;
}

int h2req_hdr_make(struct hdr *h, const char *name, size_t nlen,
                   const char *value, size_t vlen) {
  char *p = malloc(nlen + vlen + 2);
  if (!p)
    return -1;
  memcpy(p, name, nlen);
  p[nlen] = '\0';
  memcpy(p + nlen + 1, value, vlen);
  p[nlen + 1 + vlen] = '\0';
  *h = (struct hdr){p, p + nlen + 1};
  return 0;
}

int h2req_hdr_append(struct hdr *h, const char *d, size_t n) {
  size_t nlen = strlen(h->name), vlen = strlen(h->value);
  char *p = realloc(h->name, nlen + vlen + n + 2);
  if (!p)
    return -1;
  memcpy(p + nlen + 1 + vlen, d, n);
  p[nlen + 1 + vlen + n] = '\0';
  *h = (struct hdr){p, p + nlen + 1};
  return 0;
}

void h2req_header(struct h2s_req *r, const char *name, size_t nlen,
                  const char *value, size_t vlen) {
  r->hdr_bytes += nlen + vlen + 32; /* HPACK's accounting */
  if (r->hdr_bytes > r->s->conf->max_header_size) {
    h2req_refuse(r, 431, "request headers larger than %" PRIu32 " bytes",
                 r->s->conf->max_header_size);
    return;
  }
  if (r->nh == r->caph) {
    size_t cap = r->caph ? r->caph * 2 : 8;
    struct hdr *h = realloc(r->h, cap * sizeof *h);
    if (!h) {
      h2req_refuse(r, 503, "out of memory");
      return;
    }
    r->h = h;
    r->caph = cap;
  }
  struct hdr h;
  if (h2req_hdr_make(&h, name, nlen, value, vlen) < 0) {
    h2req_refuse(r, 503, "out of memory");
    return;
  }
  for (char *p = h.name; *p; p++)
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  r->h[r->nh++] = h;
}

void h2req_body(struct h2s_req *r, const char *d, size_t n) {
  if (r->err_status)
    return;
  if (h2buf_size(&r->body) + n > r->s->conf->max_body_size) {
    h2req_refuse(r, 413, "request body larger than %" PRIu64 " bytes",
                 r->s->conf->max_body_size);
    return;
  }
  if (h2buf_add(&r->body, d, n) < 0)
    h2req_refuse(r, 503, "out of memory");
}

/* One allocation, "path\0query". */
void h2req_target(struct h2s_req *r, const char *t, size_t len) {
  free(r->path);
  r->query = NULL;
  if (!(r->path = strndup(t, len))) {
    h2req_refuse(r, 503, "out of memory");
    return;
  }
  char *q = strchr(r->path, '?');
  if (q) {
    *q = '\0';
    r->query = q + 1;
  }
}

/* A client's x-request-id is kept when it is a plain token. */
static void take_id(struct h2s_req *r) {
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

void h2req_dispatch(struct h2s_req *r) {
  struct conn *c = r->c;
  struct h2s *s = c->s;
  r->dispatched = true;
  r->body_done = !r->early;
  c->t_active = now_ms();
  take_id(r);
  if (!r->method || !r->path)
    h2req_refuse(r, 400, "request without method or path");
  if (!take_token(c))
    h2req_refuse(r, 429,
                 "more than %" PRIu32 " requests per second on one connection",
                 s->conf->requests_per_s);
  if (atomic_load(&s->stopping))
    h2req_refuse(r, 503, "shutting down");
  atomic_fetch_add(&r->refs, 1); /* the handler's */
  s->handler(s->opaque, r);
}

/* ---- Streamed request bodies -------------------------------------------- */

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

void h2req_early_data(struct h2s_req *r, const char *d, size_t n, int end) {
  if (r->on_data)
    r->on_data(r->data_opaque, d, n, end);
}

/* ---- Accessors ---------------------------------------------------------- */

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
  *ret_len = h2buf_size(&r->body);
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
  return r->err_msg ? r->err_msg : r->err_status ? "out of memory" : "";
}
int h2s_peer_key(const struct h2s_req *r, unsigned char key[17]) {
  if (r->unix_peer)
    return -1;
  memcpy(key, r->addr, sizeof r->addr);
  return 0;
}
uint64_t h2s_start_us(const struct h2s_req *r) {
  return r->t0_us;
}
void h2s_set_route(struct h2s_req *r, const char *route) {
  h2_strlcpy(r->route, route, sizeof r->route);
}

/* ---- The end ------------------------------------------------------------ */

void h2req_log(struct h2s_req *r, int status) {
  struct h2s *s = r->s;
  if (!s->conf->access_log || r->finished)
    return;
  r->finished = true;
  LOG(s, VMH_LOG_INFO,
      "access id=%s peer=%s who=%s proto=%s method=%s path=%s route=%s "
      "status=%d bytes=%" PRIu64 " us=%" PRIu64 "%s%s",
      r->id, r->peer, r->who, r->proto, h2s_method(r), h2s_path(r),
      r->route[0] ? r->route : "-", status, r->bytes, now_us() - r->t0_us,
      r->err_status ? " refused=" : "",
      r->err_status ? h2s_error_message(r) : "");
}

void h2req_detach(struct h2s_req *r) {
  struct conn *c = r->c;
  if (!c)
    return;
  if (!r->finished && r->dispatched)
    h2req_log(r, r->answered ? r->status : 499);
  if (r->cprev)
    r->cprev->cnext = r->cnext;
  else
    c->reqs = r->cnext;
  if (r->cnext)
    r->cnext->cprev = r->cprev;
  c->held -= r->held;
  r->held = 0;
  r->c = NULL;
  r->on_data = NULL;
  h2answer_tell_close(r);
  h2answer_watch_end(r);
  h2req_unref(r);
}
