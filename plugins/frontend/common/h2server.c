/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2server — see h2server.h; the files of the server are listed in
 * h2int.h.  This one holds the server's life cycle and its I/O loop. */
#include <config.h>

#include <errno.h>
#include <gnutls/crypto.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "h2int.h"

/* The loop takes the queue after every round, so an answer given on its
 * own thread (the core answered inline) needs no wake-up.  (The loop's
 * identity is kept in s, not in a __thread variable: LeakSanitizer's
 * tracer crashes on the dynamic TLS of a dlopen'd plugin.) */
void h2server_wake(struct h2s *s) {
  /* One write until the loop takes the queue: answers that come while
   * it is still waking need no system call. */
  if (!pthread_equal(atomic_load(&s->loop_thread), pthread_self()) &&
      !atomic_exchange(&s->wake_due, true))
    eventfd_write(s->wake_fd, 1);
}

/* ---- The loop ----------------------------------------------------------- */

static void take_queue(struct h2s *s) {
  eventfd_t v;
  /* Cleared before the queue is read: an answer queued after this point
   * writes the eventfd again, one queued before is taken below. */
  atomic_store(&s->wake_due, false);
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
      h2answer_tell_close(r);
    } else if (c->h2) {
      h2http2_deliver(r);
      /* Flushed once the queue is empty: one write for many answers. */
      if (!c->dirty) {
        c->dirty = true;
        c->dnext = s->dirty;
        s->dirty = c;
      }
    } else {
      h2http1_deliver(r);
    }
    h2req_unref(r); /* the queue's */
  }
  while (s->dirty) {
    struct conn *c = s->dirty;
    s->dirty = c->dnext;
    c->dirty = false;
    h2conn_flush(c); /* a closed one returns at once */
  }
}

/* Once a second: timeouts, and certificate files changed on disk. */
static void sweep(struct h2s *s) {
  uint64_t t = now_ms();
  const struct h2s_conf *cf = s->conf;
  for (struct conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->lingering && t - c->t_active > 2000) {
      h2conn_close(c, "linger done");
      continue;
    }
    if ((c->state == C_HANDSHAKE || c->state == C_DETECT) &&
        t - c->t_open > cf->handshake_timeout_s * 1000ull) {
      h2conn_close(c, "handshake timeout");
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
      h2conn_close(c, "request timeout");
      continue;
    }
    if (!busy && t - c->t_active > cf->idle_timeout_s * 1000ull) {
      if (c->h2) {
        nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
        c->closing = true;
        h2conn_flush(c);
      } else {
        h2conn_close(c, "idle");
      }
    }
  }
  h2tls_check(s);
}

/* Stop: no more connections, GOAWAY, end the streamed responses. */
static void begin_drain(struct h2s *s) {
  h2listen_close(s);
  for (struct conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    for (struct h2s_req *r = c->reqs; r; r = r->cnext)
      h2answer_tell_close(r);
    if (c->h2) {
      nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(c->h2),
                            NGHTTP2_NO_ERROR, NULL, 0);
      c->closing = !c->reqs;
      h2conn_flush(c);
    } else if (!c->reqs) {
      h2conn_close(c, NULL);
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
        h2listen_event(s, ev[i].data.ptr);
      else
        h2conn_event(ev[i].data.ptr, ev[i].events);
    }
    wait_ms = s->n_deadlines ? h2answer_deadlines(s, 250) : 250;
    take_queue(s);
    uint64_t t = now_ms();
    if (t - s->t_sweep >= 1000) {
      s->t_sweep = t;
      sweep(s);
    }
    h2conn_free_dead(s);
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
    h2conn_close(s->conns, NULL);
  pthread_mutex_lock(&s->lock);
  s->stopped = true;
  pthread_mutex_unlock(&s->lock);
  take_queue(s);
  h2conn_free_dead(s);
  return NULL;
}

/* ---- Life cycle --------------------------------------------------------- */

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
  for (uint32_t i = 0; i < conf->n_listen; i++)
    s->any_tls |= conf->listen[i].tls;
  return s;
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
  if (s->ep < 0 || s->wake_fd < 0 || h2http2_setup(s) < 0) {
    s->host->error("cannot set up the server: %s", strerror(errno));
    return VMH_EINTERNAL;
  }
  s->wake_ev = EV_WAKE;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->wake_ev};
  epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake_fd, &ev);
  if ((r = h2auth_start(s)) < 0)
    return r;
  if (s->any_tls && (r = h2tls_setup(s)) < 0)
    return r;
  for (uint32_t i = 0; i < s->conf->n_listen; i++)
    if ((r = h2listen_bind(s, &s->conf->listen[i])) < 0) {
      h2listen_close(s);
      return r;
    }
  if ((r = pthread_create(&s->thread, NULL, loop, s)) != 0) {
    h2listen_close(s);
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
  h2server_wake(s);
  pthread_join(s->thread, NULL);
  s->running = false;
}

void h2server_unref(struct h2s *s) {
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
  auth_store_free(s->tokens);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

void h2s_free(struct h2s *s) {
  if (!s)
    return;
  h2s_stop(s, 0);
  h2listen_close(s);
  h2server_unref(s);
}
