/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2answer — answers, given on any thread: written into the request under
 * s->lock and queued for the loop; streamed responses; the answer's extra
 * fields and trailers; watches (see h2int.h). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2int.h"

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
  h2_strlcpy(r->ctype, ctype ? ctype : "", sizeof r->ctype);
}

void h2s_respond(struct h2s_req *r, int status, const char *ctype,
                 const char *body, size_t len) {
  struct h2s *s = r->s;
  pthread_mutex_lock(&s->lock);
  if (!r->answered) {
    set_head(r, status, ctype);
    r->ended = true;
    if (len && h2buf_add(&r->out, body, len) < 0) {
      r->status = 503;
      r->ctype[0] = '\0';
    }
    enqueue(r);
  }
  pthread_mutex_unlock(&s->lock);
  h2server_wake(s);
  h2req_unref(r); /* the handler's */
}

void h2s_respond_body(struct h2s_req *r, int status, const char *ctype,
                      struct h2s_body *b) {
  struct h2s *s = r->s;
  pthread_mutex_lock(&s->lock);
  if (!r->answered) {
    set_head(r, status, ctype);
    r->ended = true;
    h2buf_free(&r->out);
    atomic_fetch_add(&b->refs, 1);
    r->out = (struct buf){.p = b->data, .len = b->len, .shared = b};
    enqueue(r);
  }
  pthread_mutex_unlock(&s->lock);
  h2server_wake(s);
  h2req_unref(r); /* the handler's */
}

/* Streams open from r's address; under s->lock. */
static uint32_t peer_streams(struct h2s *s, const struct h2s_req *r) {
  uint32_t n = 0;
  for (struct h2s_req *x = s->streams; x; x = x->snext)
    n += !x->overflow && !memcmp(x->addr, r->addr, sizeof r->addr);
  return n;
}

/* Cut r's stream: marked overflowing (the loop resets it and tells its
 * owner), its bytes out of the budget at once; under s->lock. */
static void cut(struct h2s_req *r, const char *why) { /* why: static */
  r->overflow = true;
  r->cut_why = why;
  r->s->stream_bytes -= r->acct;
  r->acct = 0;
  enqueue(r);
}

/* Make room for len more bytes within limits.stream_memory: cut the
 * streams that hold most (the slowest readers) first; under s->lock. */
static void make_room(struct h2s *s, size_t len) {
  while (s->stream_bytes + len > s->conf->stream_memory) {
    struct h2s_req *worst = NULL;
    for (struct h2s_req *x = s->streams; x; x = x->snext)
      if (!x->overflow && x->acct && (!worst || x->acct > worst->acct))
        worst = x;
    if (!worst)
      return;
    cut(worst,
        "the front-end's stream memory (limits.stream_memory) is "
        "full and it reads slowest");
  }
}

void h2answer_consumed(struct h2s_req *r, size_t len) {
  size_t n = len < r->acct ? len : r->acct;
  r->acct -= n;
  r->s->stream_bytes -= n;
}

void h2answer_forget(struct h2s_req *r) {
  struct h2s *s = r->s;
  if (!r->on_streams)
    return;
  pthread_mutex_lock(&s->lock);
  s->stream_bytes -= r->acct;
  r->acct = 0;
  if (r->sprev)
    r->sprev->snext = r->snext;
  else
    s->streams = r->snext;
  if (r->snext)
    r->snext->sprev = r->sprev;
  pthread_mutex_unlock(&s->lock);
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
    bool many =
        !r->unix_peer && peer_streams(s, r) >= s->conf->max_streams_per_peer;
    r->on_streams = true;
    r->snext = s->streams;
    r->sprev = NULL;
    if (s->streams)
      s->streams->sprev = r;
    s->streams = r;
    if (many)
      cut(r,
          "too many streams from this address "
          "(limits.max_streams_per_peer)");
    enqueue(r);
  }
  pthread_mutex_unlock(&s->lock);
  h2server_wake(s);
}

int h2s_stream_send(struct h2s_req *r, const char *data, size_t len) {
  struct h2s *s = r->s;
  int ret = -1;
  pthread_mutex_lock(&s->lock);
  if (r->streaming && !r->ended && !r->gone && !r->overflow) {
    if (h2buf_size(&r->out) + len > s->conf->stream_buffer) {
      cut(r, "the client reads too slowly (limits.stream_buffer)");
    } else {
      make_room(s, len);
      if (r->overflow) {
        /* it was the slowest itself */
      } else if (h2buf_add(&r->out, data, len) < 0) {
        cut(r, "out of memory");
      } else {
        r->acct += len;
        s->stream_bytes += len;
        ret = 0;
      }
    }
    enqueue(r);
  }
  pthread_mutex_unlock(&s->lock);
  h2server_wake(s);
  return ret;
}

void h2s_stream_end(struct h2s_req *r) {
  struct h2s *s = r->s;
  pthread_mutex_lock(&s->lock);
  r->ended = true;
  enqueue(r);
  pthread_mutex_unlock(&s->lock);
  h2server_wake(s);
  h2req_unref(r); /* the handler's */
}

void h2answer_tell_close(struct h2s_req *r) {
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

/* RFC 9110 9.3.2: a HEAD request's answer is the GET's without its body. */
bool h2answer_head_only(const struct h2s_req *r) {
  return r->method && !strcmp(r->method, "HEAD") && !r->streaming;
}

/* ---- Extra fields and trailers ------------------------------------------ */

/* Append a copy of name: value to *h; under s->lock. */
static int hdrs_add(struct hdr **h, size_t *n, const char *name,
                    const char *value) {
  struct hdr *nh = realloc(*h, (*n + 1) * sizeof **h);
  if (!nh)
    return -1;
  *h = nh;
  if (h2req_hdr_make(&nh[*n], name, strlen(name), value, strlen(value)) < 0)
    return -1;
  (*n)++;
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

/* ---- Watches ------------------------------------------------------------ */

void h2s_watch(struct h2s_req *r, uint64_t deadline_us, h2s_watch_fn fn,
               void *opaque) {
  r->watch = fn;
  r->watch_opaque = opaque;
  r->deadline_us = deadline_us;
  if (deadline_us)
    r->s->n_deadlines++;
}

void h2answer_watch_end(struct h2s_req *r) {
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

int h2answer_deadlines(struct h2s *s, int max_ms) {
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
