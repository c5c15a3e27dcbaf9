/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2http2 — HTTP/2: the nghttp2 server session of a connection, its
 * callbacks, and answers handed to it (see h2int.h). */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2int.h"
#include "numfmt.h"

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
 * r->out: send_data copies them straight into the connection's output
 * (NO_COPY), one copy fewer than through nghttp2's frame buffer. */
static ssize_t read_body(nghttp2_session *h2, int32_t sid, uint8_t *b,
                         size_t len, uint32_t *flags, nghttp2_data_source *src,
                         void *user) {
  (void)h2, (void)sid, (void)b, (void)user;
  struct h2s_req *r = src->ptr;
  struct h2s *s = r->s;
  pthread_mutex_lock(&s->lock);
  size_t n = h2buf_size(&r->out);
  if (n > len)
    n = len;
  bool eof = n == h2buf_size(&r->out) && r->ended;
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

/* The DATA frame read_body sized: header, padding length, the answer's
 * next `len` bytes, padding (we ask for none, but honour any). */
static int send_data(nghttp2_session *h2, nghttp2_frame *f,
                     const uint8_t *framehd, size_t len,
                     nghttp2_data_source *src, void *user) {
  (void)h2;
  struct conn *c = user;
  struct h2s_req *r = src->ptr;
  struct h2s *s = r->s;
  size_t pad = f->data.padlen;
  uint8_t zeros[256] = {0}, padlen = (uint8_t)(pad ? pad - 1 : 0);
  if (h2buf_add(&c->out, framehd, 9) < 0 ||
      (pad > 0 && h2buf_add(&c->out, &padlen, 1) < 0))
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  pthread_mutex_lock(&s->lock);
  int e = len ? h2buf_add(&c->out, r->out.p + r->out.off, len) : 0;
  if (e == 0) {
    r->out.off += len;
    h2answer_consumed(r, len);
  }
  pthread_mutex_unlock(&s->lock);
  if (e < 0 || (pad > 1 && h2buf_add(&c->out, zeros, pad - 1) < 0))
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  r->bytes += len;
  return 0;
}

#define NV(n, v)                                              \
  {                                                           \
    (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), \
        NGHTTP2_NV_FLAG_NO_COPY_NAME                          \
  }

void h2http2_deliver(struct h2s_req *r) {
  struct conn *c = r->c;
  pthread_mutex_lock(&r->s->lock);
  bool overflow = r->overflow, streaming = r->streaming;
  const char *why = r->cut_why;
  bool trailers = r->ntr > 0;
  int status = r->status;
  size_t len = h2buf_size(&r->out);
  pthread_mutex_unlock(&r->s->lock);
  if (overflow) {
    LOG(r->s, VMH_LOG_WARN, "%s: stream %" PRId32 " of %s dropped: %s", r->id,
        r->sid, c->peer, why);
    nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, r->sid, NGHTTP2_CANCEL);
    return;
  }
  if (r->submitted) {
    nghttp2_session_resume_data(c->h2, r->sid);
    return;
  }
  char st[NUMFMT_U64_LEN], cl[NUMFMT_U64_LEN];
  numfmt_u64(st, (uint64_t)status);
  numfmt_u64(cl, len);
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
  nghttp2_data_provider prd = {.source.ptr = r, .read_callback = read_body};
  int e = nghttp2_submit_response(
      c->h2, r->sid, nva, n,
      r->headers_only || h2answer_head_only(r) ? NULL : &prd);
  free(nva);
  if (e < 0)
    LOG(r->s, VMH_LOG_WARN, "%s: cannot answer: %s", r->id,
        nghttp2_strerror(e));
  r->submitted = true;
}

/* ---- Callbacks ---------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f,
                            void *user) {
  struct conn *c = user;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  struct h2s_req *r = h2req_new(c, f->hd.stream_id, c->tls ? "h2" : "h2c");
  if (!r)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, r);
  return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f,
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
    h2req_target(r, v, vlen);
  } else if (nlen == 10 && !memcmp(n, ":authority", 10)) {
    /* HTTP/2's Host (RFC 9113, 8.3.1): read as "host" by handlers. */
    h2req_header(r, "host", 4, v, vlen);
  } else if (n[0] != ':') {
    h2req_header(r, n, nlen, v, vlen);
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
static int on_data(nghttp2_session *h2, uint8_t flags, int32_t sid,
                   const uint8_t *d, size_t len, void *user) {
  (void)flags;
  struct conn *c = user;
  struct h2s_req *r = nghttp2_session_get_stream_user_data(h2, sid);
  if (!r)
    return 0;
  if (r->dispatched) {
    h2req_early_data(r, (const char *)d, len, 0);
    return 0;
  }
  if (c->held + len > c->s->conf->max_conn_buffer)
    h2req_refuse(r, 503,
                 "more than %" PRIu64
                 " bytes of request bodies in flight on this connection: send "
                 "fewer at once",
                 c->s->conf->max_conn_buffer);
  h2req_body(r, (const char *)d, len);
  if (!r->err_status) {
    r->held += len;
    c->held += len;
    return 0;
  }
  /* Refused: its body is not needed for the answer. */
  c->held -= r->held;
  r->held = 0;
  h2buf_free(&r->body);
  /* Over a limit: answer now rather than read the rest. */
  if (r->err_status == 413 || r->err_status == 503)
    h2req_dispatch(r);
  return 0;
}

static int on_frame(nghttp2_session *h2, const nghttp2_frame *f, void *user) {
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
      h2req_dispatch(r);
    }
    return 0;
  }
  if (r && !r->dispatched) {
    h2req_dispatch(r);
  } else if (r && r->early && !r->body_done) {
    r->body_done = true;
    h2req_early_data(r, NULL, 0, 1);
  }
  return 0;
}

static int on_close(nghttp2_session *h2, int32_t sid, uint32_t code,
                    void *user) {
  (void)user, (void)code;
  struct h2s_req *r = nghttp2_session_get_stream_user_data(h2, sid);
  if (r) {
    nghttp2_session_set_stream_user_data(h2, sid, NULL);
    h2req_detach(r);
  }
  return 0;
}

/* ---- Sessions ----------------------------------------------------------- */

int h2http2_setup(struct h2s *s) {
  if (nghttp2_session_callbacks_new(&s->cbs) < 0 ||
      nghttp2_option_new(&s->h2opt) < 0)
    return -1;
  nghttp2_session_callbacks_set_on_begin_headers_callback(s->cbs,
                                                          on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(s->cbs, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s->cbs, on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(s->cbs, on_frame);
  nghttp2_session_callbacks_set_on_stream_close_callback(s->cbs, on_close);
  nghttp2_session_callbacks_set_send_data_callback(s->cbs, send_data);
  /* nghttp2's own rapid-reset guard, besides ours (which logs and is
   * configured): a burst of resets_per_s, refilled at that rate. */
  nghttp2_option_set_stream_reset_rate_limit(s->h2opt, s->conf->resets_per_s,
                                             s->conf->resets_per_s);
  nghttp2_option_set_max_send_header_block_length(s->h2opt, 65536);
  return 0;
}

int h2http2_start(struct conn *c) {
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

void h2http2_feed(struct conn *c, const char *d, size_t n) {
  ssize_t r = nghttp2_session_mem_recv(c->h2, (const uint8_t *)d, n);
  if (r < 0)
    h2conn_close(c, nghttp2_strerror((int)r));
}
