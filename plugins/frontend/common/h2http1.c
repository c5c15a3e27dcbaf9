/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2http1 — HTTP/1.1: the http-parser callbacks of a connection, its
 * responses, and the upgrade to HTTP/2 ("Upgrade: h2c") (see h2int.h). */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2int.h"

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

void h2http1_deliver(struct h2s_req *r) {
  struct conn *c = r->c;
  struct h2s *s = r->s;
  char head[512];
  pthread_mutex_lock(&s->lock);
  bool overflow = r->overflow, streaming = r->streaming, ended = r->ended;
  const char *why = r->cut_why;
  struct buf body = r->out;
  r->out = (struct buf){0};
  h2answer_consumed(r, h2buf_size(&body));
  pthread_mutex_unlock(&s->lock);
  if (overflow) {
    h2buf_free(&body);
    LOG(s, VMH_LOG_WARN, "%s: stream to %s dropped: %s", r->id, c->peer, why);
    h2conn_close(c, "slow reader");
    return;
  }
  bool keep = !r->close_after && http_should_keep_alive(&c->hp) &&
              !c->in_closed && !atomic_load(&s->stopping);
  if (!r->submitted) {
    char len[48] = "";
    if (!streaming)
      snprintf(len, sizeof len, "content-length: %zu\r\n", h2buf_size(&body));
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n%s%s%sx-request-id: %s\r\n%s%s\r\n",
                     r->status, reason(r->status),
                     r->ctype[0] ? "content-type: " : "", r->ctype,
                     r->ctype[0] ? "\r\n" : "", r->id,
                     streaming ? "transfer-encoding: chunked\r\n"
                                 "cache-control: no-store\r\n"
                               : len,
                     keep ? "" : "connection: close\r\n");
    h2buf_add(&c->out, head, (size_t)n - 2); /* before the blank line */
    for (size_t i = 0; i < r->nrh; i++) {
      int k = snprintf(head, sizeof head, "%s: %s\r\n", r->rh[i].name,
                       r->rh[i].value);
      if (k > 0 && (size_t)k < sizeof head)
        h2buf_add(&c->out, head, (size_t)k);
    }
    h2buf_add(&c->out, "\r\n", 2);
    r->submitted = true;
  }
  size_t blen = h2answer_head_only(r) ? 0 : h2buf_size(&body);
  if (streaming && blen) {
    int n = snprintf(head, sizeof head, "%zx\r\n", blen);
    h2buf_add(&c->out, head, (size_t)n);
  }
  if (blen)
    h2buf_add(&c->out, body.p + body.off, blen);
  if (streaming && blen)
    h2buf_add(&c->out, "\r\n", 2);
  r->bytes += blen;
  h2buf_free(&body);
  if (!ended) {
    h2conn_flush(c);
    return;
  }
  if (streaming)
    h2buf_add(&c->out, "0\r\n\r\n", 5);
  h2req_log(r, r->status);
  c->h1req = NULL;
  c->t_active = now_ms();
  h2req_detach(r);
  if (!keep)
    c->closing = true;
  h2conn_flush(c);
  if (c->state == C_H1 && !c->closing) {
    http_parser_pause(&c->hp, 0);
    h2http1_feed(c);
  }
}

/* ---- Parser callbacks --------------------------------------------------- */

/* The request being read, made at its first byte; NULL when out of
 * memory. */
static struct h2s_req *current(struct conn *c) {
  if (!c->h1req)
    c->h1req = h2req_new(c, 0, c->tls ? "https/1.1" : "http/1.1");
  return c->h1req;
}

static int on_begin(http_parser *p) {
  return current(p->data) ? 0 : -1;
}

/* Append n bytes to *str, a string of len bytes.  0, or -1 when out of
 * memory. */
static int append(char **str, size_t len, const char *at, size_t n) {
  char *t = realloc(*str, len + n + 1);
  if (!t)
    return -1;
  memcpy(t + len, at, n);
  t[len + n] = '\0';
  *str = t;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  struct h2s_req *r = c->h1req;
  /* The URL may come in pieces: collect it in path, split at the end. */
  size_t old = r->path ? strlen(r->path) : 0;
  if (old + n > c->s->conf->max_header_size) {
    h2req_refuse(r, 431, "request target too long");
    return 0;
  }
  if (append(&r->path, old, at, n) < 0)
    return -1;
  r->hdr_bytes += n;
  return 0;
}

static int on_field(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  if (c->h_in_value) {
    c->h_in_value = false;
    c->hname_len = 0;
  }
  if (c->h1req->hdr_bytes + c->hname_len + n > c->s->conf->max_header_size) {
    h2req_refuse(c->h1req, 431, "request headers larger than %" PRIu32 " bytes",
                 c->s->conf->max_header_size);
    return 0;
  }
  if (append(&c->hname, c->hname_len, at, n) < 0)
    return -1;
  c->hname_len += n;
  return 0;
}

static int on_value(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  struct h2s_req *r = c->h1req;
  if (r->err_status)
    return 0;
  if (c->h_in_value && r->nh) {
    /* A value in pieces: append to the last header. */
    r->hdr_bytes += n;
    if (r->hdr_bytes > c->s->conf->max_header_size) {
      h2req_refuse(r, 431, "request headers too large");
      return 0;
    }
    return h2req_hdr_append(&r->h[r->nh - 1], at, n);
  }
  c->h_in_value = true;
  h2req_header(r, c->hname ? c->hname : "", c->hname_len, at, n);
  return 0;
}

/* A request refused before it was read whole: answered now, nothing more
 * read, the connection closed after the answer. */
static void refused_early(http_parser *p, struct h2s_req *r) {
  r->close_after = true;
  h2req_dispatch(r);
  http_parser_pause(p, 1);
}

static int on_headers_done(http_parser *p) {
  struct conn *c = p->data;
  struct h2s_req *r = c->h1req;
  c->h_in_value = false;
  c->hname_len = 0;
  free(r->method);
  r->method = strdup(http_method_str((enum http_method)p->method));
  if (r->path) {
    char *t = r->path;
    r->path = NULL;
    h2req_target(r, t, strlen(t));
    free(t);
  }
  const char *up = h2s_header(r, "upgrade");
  r->h2c_upgrade =
      !c->tls && up && strstr(up, "h2c") && h2s_header(r, "http2-settings");
  if (!r->err_status && (p->flags & F_CONTENTLENGTH) &&
      p->content_length > c->s->conf->max_body_size)
    h2req_refuse(r, 413, "request body larger than %" PRIu64 " bytes",
                 c->s->conf->max_body_size);
  if (r->err_status)
    refused_early(p, r);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  h2req_body(c->h1req, at, n);
  if (c->h1req->err_status)
    refused_early(p, c->h1req);
  return 0;
}

static int on_done(http_parser *p) {
  struct conn *c = p->data;
  struct h2s_req *r = c->h1req;
  if (r->h2c_upgrade && p->upgrade)
    return 0; /* switched to HTTP/2 by h2http1_feed */
  h2req_dispatch(r);
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_done,
    .on_body = on_body,
    .on_message_complete = on_done,
};

/* ---- Upgrade to HTTP/2 -------------------------------------------------- */

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
static void upgrade(struct conn *c) {
  struct h2s_req *r = c->h1req;
  uint8_t h2settings[512];
  size_t n;
  static const char sw[] =
      "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\n"
      "upgrade: h2c\r\n\r\n";
  if (b64url(h2s_header(r, "http2-settings"), h2settings, sizeof h2settings,
             &n) < 0) {
    h2conn_close(c, "bad HTTP2-Settings");
    return;
  }
  c->h1req = NULL;
  if (h2buf_add(&c->out, sw, sizeof sw - 1) < 0 || h2http2_start(c) < 0 ||
      nghttp2_session_upgrade2(c->h2, h2settings, n, !strcmp(r->method, "HEAD"),
                               r) < 0) {
    h2conn_close(c, "h2c upgrade failed");
    return;
  }
  r->sid = 1;
  r->proto = "h2c";
  h2req_dispatch(r);
  size_t left = h2buf_size(&c->in);
  if (left) {
    char *d = c->in.p + c->in.off;
    c->in.off = c->in.len;
    h2http2_feed(c, d, left);
  }
}

/* ---- Connections -------------------------------------------------------- */

void h2http1_start(struct conn *c) {
  c->state = C_H1;
  http_parser_init(&c->hp, HTTP_REQUEST);
  c->hp.data = c;
}

void h2http1_feed(struct conn *c) {
  while (c->state == C_H1 && h2buf_size(&c->in) &&
         !(c->h1req && c->h1req->dispatched)) {
    size_t len = h2buf_size(&c->in);
    size_t n = http_parser_execute(&c->hp, &settings, c->in.p + c->in.off, len);
    c->in.off += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->hp);
    if (c->hp.upgrade && c->h1req && c->h1req->h2c_upgrade &&
        !c->h1req->dispatched) {
      upgrade(c);
      return;
    }
    if (c->hp.upgrade && !(c->h1req && c->h1req->dispatched)) {
      /* Another protocol we do not speak: the rest cannot be parsed. */
      h2conn_close(c, "unsupported upgrade");
      return;
    }
    if (e == HPE_PAUSED)
      break;
    if (e != HPE_OK) {
      if (!current(c)) {
        h2conn_close(c, "out of memory");
        return;
      }
      c->in.off = c->in.len;
      h2req_refuse(c->h1req, e == HPE_HEADER_OVERFLOW ? 431 : 400,
                   "malformed HTTP/1.1 request: %s", http_errno_description(e));
      c->h1req->close_after = true;
      h2req_dispatch(c->h1req);
      break;
    }
    if (c->hp.upgrade)
      break;
  }
  h2conn_set_events(c);
}
