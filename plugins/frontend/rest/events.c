/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GET /api/v1/events: the event stream (text/event-stream) and its
 * keepalive (restevents.h). */
#include <config.h>

#include "restevents.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abijson.h"
#include "evhold.h"
#include "query.h"
#include "rest.h"

#define KEEPALIVE_DEFAULT_S 15
#define KEEPALIVE_MAX_S 3600
#define MAX_QUERY 1024

/* A subscriber: one stream, in the instance's list once it is live. */
struct sub {
  struct rest_events *evs;
  struct h2s_req *req;
  uint64_t id;
  atomic_bool closed; /* the stream took no more: deliver nothing */
  struct evhold hold;
  struct sub *next, *prev;
  bool listed;
};

struct rest_events {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  const struct vmh_core *core;
  uint32_t keepalive_s; /* 0: none */
  size_t hold_cap;
  pthread_mutex_t lock; /* the list, stopping */
  pthread_cond_t wake;
  struct sub *subs;
  bool stopping, running;
  pthread_t thread;
};

/* ---- the instance ------------------------------------------------------- */

int rest_events_open(const struct vmh_host *h, const struct vmh_instance *inst,
                     const struct vmh_config *cfg, uint32_t stream_buffer,
                     struct rest_events **ret) {
  const struct vmh_config *m;
  int64_t keepalive;
  int r;
  if ((r = h->config_map(cfg, "events", &m, 0)) < 0 ||
      (r = h->config_int(m, "keepalive", 0, KEEPALIVE_MAX_S,
                         KEEPALIVE_DEFAULT_S, &keepalive, 0)) < 0)
    return r;
  struct rest_events *e = calloc(1, sizeof *e);
  if (!e)
    return VMH_ENOMEM;
  e->host = h;
  e->inst = inst;
  e->keepalive_s = (uint32_t)keepalive;
  /* Half the stream's buffer: the replay leaves room for live events. */
  e->hold_cap = stream_buffer / 2;
  pthread_mutex_init(&e->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&e->wake, &ca);
  pthread_condattr_destroy(&ca);
  *ret = e;
  return 0;
}

/* The keepalive thread: a comment to every live stream each keepalive_s,
 * so that proxies that cut idle streams keep them. */
static void *keepalive_main(void *opaque) {
  struct rest_events *e = opaque;
  static const char beat[] = ": keepalive\n\n";
  pthread_mutex_lock(&e->lock);
  while (!e->stopping) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += e->keepalive_s;
    while (!e->stopping &&
           pthread_cond_timedwait(&e->wake, &e->lock, &t) != ETIMEDOUT)
      ;
    if (e->stopping)
      break;
    /* Under the lock: a stream leaves the list (sub_close) before it
     * ends, so each req here is still held. */
    for (struct sub *s = e->subs; s; s = s->next)
      if (!atomic_load(&s->closed))
        h2s_stream_send(s->req, beat, sizeof beat - 1);
  }
  pthread_mutex_unlock(&e->lock);
  return NULL;
}

int rest_events_start(struct rest_events *e, const struct vmh_core *core) {
  e->core = core;
  if (!e->keepalive_s)
    return 0;
  e->stopping = false;
  int r = pthread_create(&e->thread, NULL, keepalive_main, e);
  if (r) {
    e->host->error("cannot start the events keepalive thread: %s", strerror(r));
    return VMH_EIO;
  }
  e->running = true;
  return 0;
}

void rest_events_stop(struct rest_events *e) {
  if (!e || !e->running)
    return;
  pthread_mutex_lock(&e->lock);
  e->stopping = true;
  pthread_cond_signal(&e->wake);
  pthread_mutex_unlock(&e->lock);
  pthread_join(e->thread, NULL);
  e->running = false;
}

void rest_events_free(struct rest_events *e) {
  if (!e)
    return;
  rest_events_stop(e);
  pthread_mutex_destroy(&e->lock);
  pthread_cond_destroy(&e->wake);
  free(e);
}

/* ---- one stream --------------------------------------------------------- */

/* One SSE message: its id (when it has one), its type, its JSON. */
static char *sse_format(const struct vmh_event *ev, size_t *ret_len) {
  json_t *o = abij_event(ev);
  const char *type = json_string_value(json_object_get(o, "type"));
  char *data = o ? json_dumps(o, JSON_COMPACT) : NULL;
  const char *id = VMH_HAS_FIELD(ev, id) ? ev->id : NULL;
  char *msg = NULL;
  int n =
      data ? asprintf(&msg, "%s%s%sevent: %s\ndata: %s\n\n", id ? "id: " : "",
                      id ? id : "", id ? "\n" : "", type ? type : "event", data)
           : -1;
  free(data);
  json_decref(o);
  if (n < 0)
    return NULL;
  *ret_len = (size_t)n;
  return msg;
}

static void send_or_close(struct sub *s, const void *data, size_t len) {
  if (h2s_stream_send(s->req, data, len) < 0)
    atomic_store(&s->closed, true);
}

/* On a core thread (or the subscribing one, for the replay): must not
 * block.  A stream that refuses an event (its buffer is full) is closed by
 * h2server, which then calls sub_close; the client resumes from the last
 * id it got. */
static void on_event(void *opaque, const struct vmh_event *ev) {
  struct sub *s = opaque;
  if (atomic_load(&s->closed))
    return;
  size_t len = 0;
  char *msg = sse_format(ev, &len);
  if (msg && evhold_add(&s->hold, ev->id, msg, len) == 1)
    send_or_close(s, msg, len);
  free(msg);
}

static int flush_send(void *o, const void *data, size_t len) {
  send_or_close(o, data, len);
  return 0;
}

/* The replay did not fit the hold: say so, as the core says a replay it
 * cannot make (VMH_EVENT_RESET). */
static int flush_reset(void *o, const char *last_id) {
  struct sub *s = o;
  char why[256];
  struct vmh_event ev;
  evhold_reset_event(&s->hold, s->evs->host->instance_name(s->evs->inst),
                     last_id, why, sizeof why, &ev);
  size_t len = 0;
  char *msg = sse_format(&ev, &len);
  if (msg)
    send_or_close(s, msg, len);
  free(msg);
  return 0;
}

/* On the I/O thread: the client went, the stream overflowed, or stop. */
static void sub_close(void *opaque) {
  struct sub *s = opaque;
  struct rest_events *e = s->evs;
  atomic_store(&s->closed, true);
  /* After unsubscribe() no delivery is in flight (core.h). */
  e->core->unsubscribe(s->id);
  pthread_mutex_lock(&e->lock);
  if (s->listed) {
    if (s->prev)
      s->prev->next = s->next;
    else
      e->subs = s->next;
    if (s->next)
      s->next->prev = s->prev;
  }
  pthread_mutex_unlock(&e->lock);
  e->host->log(e->inst, VMH_LOG_DEBUG, "events subscriber %" PRIu64 " gone",
               s->id);
  h2s_stream_end(s->req);
  evhold_fini(&s->hold);
  free(s);
}

/* ---- the request -------------------------------------------------------- */

/* type=a,b (repeatable) into bits. */
static int parse_types(struct call *k, char *v, uint32_t *types) {
  char *save = NULL;
  for (char *t = strtok_r(v, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    size_t i;
    /* 0 is no type; the last, "reset", is never asked for. */
    for (i = 1; i + 1 < abij_event_types.n; i++)
      if (!strcmp(abij_event_types.names[i], t))
        break;
    if (i + 1 >= abij_event_types.n)
      return rest_bad(k,
                      "type: '%.40s' is not an event type (vm_state, "
                      "vm_created, vm_deleted, operation_ended, progress, "
                      "plugin, operation_created, operation_updated)",
                      t);
    *types |= VMH_EVENT_TYPE_BIT(i);
  }
  return 0;
}

/* The query into f (its strings point into buf). */
static int parse_query(struct call *k, char *buf, struct vmh_event_filter *f) {
  char *cursor = buf, *key, *value;
  int r;
  while ((r = query_next(&cursor, &key, &value)) == 1) {
    if (!strcmp(key, "since")) {
      f->since = value;
    } else if (!strcmp(key, "vm")) {
      if (f->vm)
        return rest_bad(k, "vm: give one VM (id or name)");
      f->vm = value;
    } else if (!strcmp(key, "type")) {
      if (parse_types(k, value, &f->types) < 0)
        return -1;
    } else {
      return rest_bad(k,
                      "unknown query parameter '%.40s' (since, vm, type are "
                      "taken)",
                      key);
    }
  }
  if (r < 0)
    return rest_bad(k, "query parameter '%.40s': a bad %%-escape", key);
  return 0;
}

int rest_events(struct call *k, struct rest_events *e) {
  const char *q = h2s_query(k->req);
  char buf[MAX_QUERY];
  if (q && strlen(q) >= sizeof buf)
    return rest_bad(k, "the query is too long (at most %zu bytes)",
                    sizeof buf - 1);
  snprintf(buf, sizeof buf, "%s", q ? q : "");
  struct vmh_event_filter f = {.struct_size = sizeof f};
  if (parse_query(k, buf, &f) < 0)
    return -1;
  /* An EventSource that reconnects sends the last id it saw: newer than
   * the since= of the URL it was opened with. */
  const char *last = h2s_header(k->req, "last-event-id");
  if (last && *last)
    f.since = last;
  /* HEAD: the stream's headers, no subscription. */
  if (!strcmp(h2s_method(k->req), "HEAD")) {
    rest_answer_bytes(k, 200, "text/event-stream", NULL, 0);
    return 0;
  }
  struct sub *s = calloc(1, sizeof *s);
  if (!s)
    return rest_refused(k, VMH_ENOMEM);
  s->evs = e;
  atomic_init(&s->closed, false);
  evhold_init(&s->hold, e->hold_cap);
  /* Subscribed first: a bad filter is an error answer, not a stream.  What
   * comes meanwhile (the replay) is held until the stream has begun. */
  int r = e->core->subscribe_events(&f, on_event, s, &s->id, 0);
  if (r) {
    evhold_fini(&s->hold);
    free(s);
    rest_answer_code(k, r, e->core->error_message());
    return -1;
  }
  rest_account(k, 200);
  /* The stream takes over the request: the call is done with it. */
  s->req = k->req;
  k->req = NULL;
  h2s_stream_begin(s->req, 200, "text/event-stream", sub_close, s);
  static const char hello[] = ": vmhostd events\n\n";
  send_or_close(s, hello, sizeof hello - 1);
  evhold_flush(&s->hold, flush_send, flush_reset, s);
  pthread_mutex_lock(&e->lock);
  s->next = e->subs;
  if (e->subs)
    e->subs->prev = s;
  e->subs = s;
  s->listed = true;
  pthread_mutex_unlock(&e->lock);
  rest_call_unref(k);
  /* sub_close (on this thread, later) ends the stream and frees s. */
  return 0;
}
