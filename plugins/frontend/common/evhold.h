/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evhold — the first part of an events stream (REST's text/event-stream,
 * gRPC's WatchEvents), held while the front-end subscribes.
 *
 * subscribe_events (core.h) replays on the subscribing thread, before it
 * returns, and live events may come meanwhile from core threads; the
 * stream can take them only once the subscription is known to be good (a
 * bad filter is answered as an error, not as a stream).  So each encoded
 * event goes through evhold_add(): held until evhold_flush(), sent by the
 * caller afterwards.  What is held is bounded (cap bytes): a replay larger
 * than that is dropped whole and the flush sends a reset instead (the
 * client reads the state again, then follows from the id the reset
 * carries), since a stream cut for its size would be resumed from the same
 * point again and again.
 *
 * Owned by the front-end's subscriber; thread-safe. */
#ifndef VMH_EVHOLD_H
#define VMH_EVHOLD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <vmhost/types.h>

#define EVHOLD_ID_MAX 48

struct evhold {
  pthread_mutex_t lock;
  bool live;     /* flushed: events go straight to the stream */
  bool overflow; /* more than cap came before the flush: all dropped */
  char *buf;
  size_t len, cap;
  char last_id[EVHOLD_ID_MAX]; /* the newest event's id seen */
};

void evhold_init(struct evhold *h, size_t cap);
void evhold_fini(struct evhold *h);

/* An encoded event and its id (may be NULL).  1: the stream is live, the
 * caller sends data itself; 0: held (or dropped by the bound). */
int evhold_add(struct evhold *h, const char *id, const void *data, size_t len);

/* Once the stream can take them: send(o, held bytes) — or, when the bound
 * was passed, reset(o, id of the newest event dropped) — under the hold's
 * lock (so nothing live overtakes it), then every later event is live.
 * Returns what send or reset returned (0 when nothing was held). */
int evhold_flush(struct evhold *h,
                 int (*send)(void *o, const void *data, size_t len),
                 int (*reset)(void *o, const char *last_id), void *o);

/* The event a reset callback sends: a VMH_EVENT_RESET from source (the
 * front-end's instance), reason "replay_too_large", now, its id last_id;
 * its message is written to why (len bytes), to which ev points. */
void evhold_reset_event(const struct evhold *h, const char *source,
                        const char *last_id, char *why, size_t len,
                        struct vmh_event *ev);

#endif
