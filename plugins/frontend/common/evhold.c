/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The held first part of an events stream (evhold.h). */
#include <config.h>

#include "evhold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void evhold_init(struct evhold *h, size_t cap) {
  memset(h, 0, sizeof *h);
  pthread_mutex_init(&h->lock, NULL);
  h->cap = cap;
}

void evhold_fini(struct evhold *h) {
  free(h->buf);
  h->buf = NULL;
  pthread_mutex_destroy(&h->lock);
}

/* Drop what is held: the flush sends a reset. */
static void drop(struct evhold *h) {
  h->overflow = true;
  free(h->buf);
  h->buf = NULL;
  h->len = 0;
}

int evhold_add(struct evhold *h, const char *id, const void *data, size_t len) {
  pthread_mutex_lock(&h->lock);
  if (h->live) {
    pthread_mutex_unlock(&h->lock);
    return 1;
  }
  if (id)
    snprintf(h->last_id, sizeof h->last_id, "%s", id);
  if (!h->overflow) {
    char *more = h->len + len <= h->cap ? realloc(h->buf, h->len + len) : NULL;
    if (more) {
      memcpy(more + h->len, data, len);
      h->buf = more;
      h->len += len;
    } else {
      drop(h); /* past the bound, or out of memory: the same answer */
    }
  }
  pthread_mutex_unlock(&h->lock);
  return 0;
}

int evhold_flush(struct evhold *h,
                 int (*send)(void *o, const void *data, size_t len),
                 int (*reset)(void *o, const char *last_id), void *o) {
  int r = 0;
  pthread_mutex_lock(&h->lock);
  if (h->overflow)
    r = reset(o, h->last_id);
  else if (h->len)
    r = send(o, h->buf, h->len);
  free(h->buf);
  h->buf = NULL;
  h->len = 0;
  h->live = true;
  pthread_mutex_unlock(&h->lock);
  return r;
}

void evhold_reset_event(const struct evhold *h, const char *source,
                        const char *last_id, char *why, size_t len,
                        struct vmh_event *ev) {
  snprintf(why, len,
           "the events to replay exceed half of limits.stream_buffer (%zu "
           "bytes): read the state again, then follow from %s",
           h->cap, last_id);
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  *ev = (struct vmh_event){
      .struct_size = sizeof *ev,
      .type = VMH_EVENT_RESET,
      .time_us = (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000,
      .source = source,
      .reason = "replay_too_large",
      .message = why,
      .id = last_id,
  };
}
