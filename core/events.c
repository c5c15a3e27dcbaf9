/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The event bus (events.h).
 *
 * One mutex orders everything: an event's number, its place in the
 * history and its delivery happen together, so every subscriber sees the
 * events in id order and a resume (replay, then live) neither loses nor
 * repeats one.  Subscribers must not block (core.h), so holding the mutex
 * while they run costs nothing but their own copying. */
#include <config.h>

#include "events.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "error.h"
#include "validate.h"

#define RUN_LEN 8
#define ID_LEN (RUN_LEN + 1 + 20) /* RUN-SEQ, SEQ at most 20 digits */

struct subscriber {
  uint64_t id;
  vmh_event_fn fn;
  void *opaque;
  char *vm;       /* filter: vm_id or vm_name equal; NULL: any */
  uint32_t types; /* filter: VMH_EVENT_TYPE_BIT; 0: any */
};

/* An event emitted by a subscriber while this thread delivers another:
 * delivered once that one is done (events.h). */
struct pending {
  struct pending *next;
  struct vmh_event *ev;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct subscriber *subs;
static size_t n_subs;
static uint64_t next_sub_id = 1;
static char run[RUN_LEN + 1];
static uint64_t last_seq; /* the newest event's number; 0: none yet */
/* The history: a ring of `cap` copies, the oldest at `head`. */
static struct vmh_event **ring;
static uint32_t cap, head, count;
/* Set while this thread holds the lock and calls subscribers. */
static __thread bool delivering;
static __thread struct pending *pending, *pending_last;

/* ---- copies ------------------------------------------------------------- */

#define STRINGS(X)                                                     \
  X(source)                                                            \
  X(vm_id)                                                             \
  X(reason) X(operation) X(message) X(object) X(id) X(vm_name) X(pool) \
      X(target)

struct vmh_event *events_dup(const struct vmh_event *in) {
  struct vmh_event e = {0};
  memcpy(&e, in, in->struct_size < sizeof e ? in->struct_size : sizeof e);
  e.struct_size = sizeof e;
  const struct vmh_event *ev = &e;
  size_t size = sizeof *ev;
#define LEN(f) size += ev->f ? strlen(ev->f) + 1 : 0;
  STRINGS(LEN)
#undef LEN
  struct vmh_event *c = malloc(size);
  if (!c)
    return NULL;
  *c = *ev;
  char *p = (char *)(c + 1);
#define COPY(f)                   \
  if (ev->f) {                    \
    size_t n = strlen(ev->f) + 1; \
    c->f = memcpy(p, ev->f, n);   \
    p += n;                       \
  }
  STRINGS(COPY)
#undef COPY
  return c;
}

/* ---- ids ---------------------------------------------------------------- */

static void make_run(void) {
  uint32_t r;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r = (uint32_t)ts.tv_sec ^ (uint32_t)ts.tv_nsec;
  }
  snprintf(run, sizeof run, "%08" PRIx32, r);
}

static void format_id(char *buf, size_t len, uint64_t seq) {
  snprintf(buf, len, "%s-%" PRIu64, run, seq);
}

/* "RUN-SEQ" into its parts: 0, or -1 when s is not of that form. */
static int parse_id(const char *s, char ret_run[RUN_LEN + 1],
                    uint64_t *ret_seq) {
  size_t i;
  for (i = 0; i < RUN_LEN; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return -1;
  if (s[i] != '-' || !s[i + 1])
    return -1;
  uint64_t seq = 0;
  for (const char *p = s + i + 1; *p; p++) {
    if (*p < '0' || *p > '9' || seq > (UINT64_MAX - 9) / 10)
      return -1;
    seq = seq * 10 + (uint64_t)(*p - '0');
  }
  memcpy(ret_run, s, RUN_LEN);
  ret_run[RUN_LEN] = '\0';
  *ret_seq = seq;
  return 0;
}

/* ---- the history and delivery (under lock) ------------------------------ */

int events_init(uint32_t history) {
  pthread_mutex_lock(&lock);
  if (!run[0])
    make_run();
  int r = 0;
  if (history && !(ring = calloc(history, sizeof *ring)))
    r = error_code(VMH_ENOMEM, "out of memory for %" PRIu32 " events", history);
  else
    cap = history;
  pthread_mutex_unlock(&lock);
  return r;
}

/* Keep a copy; out of memory, the event is not kept and the history
 * restarts after it (a resume from before it is a reset, never a gap). */
static void keep(const struct vmh_event *ev) {
  if (!cap)
    return;
  struct vmh_event *c = events_dup(ev);
  if (!c) {
    for (; count; count--, head = (head + 1) % cap) {
      free(ring[head]);
      ring[head] = NULL;
    }
    return;
  }
  uint32_t slot = (head + count) % cap;
  if (count == cap) {
    free(ring[head]);
    head = (head + 1) % cap;
  } else {
    count++;
  }
  ring[slot] = c;
}

/* The oldest event kept: last_seq + 1 when none is. */
static uint64_t oldest_seq(void) {
  return count ? ring[head]->seq : last_seq + 1;
}

static bool takes(const struct subscriber *s, const struct vmh_event *ev) {
  if (s->types &&
      (ev->type >= 32 || !(s->types & VMH_EVENT_TYPE_BIT(ev->type))))
    return false;
  if (s->vm && !((ev->vm_id && !strcmp(ev->vm_id, s->vm)) ||
                 (ev->vm_name && !strcmp(ev->vm_name, s->vm))))
    return false;
  return true;
}

static void deliver(const struct vmh_event *ev) {
  delivering = true;
  for (size_t i = 0; i < n_subs; i++)
    if (takes(&subs[i], ev))
      subs[i].fn(subs[i].opaque, ev);
  delivering = false;
}

/* What subscribers emitted meanwhile, in order. */
static void deliver_pending(void) {
  while (pending) {
    struct pending *p = pending;
    pending = p->next;
    if (!pending)
      pending_last = NULL;
    deliver(p->ev);
    free(p->ev);
    free(p);
  }
}

/* Number ev, keep it; id is its id's buffer (ID_LEN + 1). */
static void stamp(struct vmh_event *ev, char *id) {
  ev->seq = ++last_seq;
  format_id(id, ID_LEN + 1, ev->seq);
  ev->id = id;
  keep(ev);
}

void events_emit(const char *source, const struct vmh_event *in) {
  struct vmh_event ev = {0};
  memcpy(&ev, in, in->struct_size < sizeof ev ? in->struct_size : sizeof ev);
  ev.struct_size = sizeof ev;
  ev.source = source;
  if (!ev.time_us) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ev.time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
  }
  char id[ID_LEN + 1];
  if (delivering) {
    /* A subscriber emits: this thread holds the lock already. */
    stamp(&ev, id);
    struct pending *p = calloc(1, sizeof *p);
    if (!p || !(p->ev = events_dup(&ev))) {
      free(p);
      return; /* kept, not delivered live: lost to the live subscribers */
    }
    if (pending_last)
      pending_last->next = p;
    else
      pending = p;
    pending_last = p;
    return;
  }
  pthread_mutex_lock(&lock);
  if (!run[0])
    make_run();
  stamp(&ev, id);
  deliver(&ev);
  deliver_pending();
  pthread_mutex_unlock(&lock);
}

/* ---- subscribing -------------------------------------------------------- */

/* The filter checked and copied into s. */
static int take_filter(const struct vmh_event_filter *in, struct subscriber *s,
                       struct vmh_event_filter *ret) {
  *ret = (struct vmh_event_filter){.struct_size = sizeof *ret};
  if (!in)
    return 0;
  memcpy(ret, in,
         in->struct_size < sizeof *ret ? in->struct_size : sizeof *ret);
  ret->struct_size = sizeof *ret;
  char r[RUN_LEN + 1];
  uint64_t seq;
  if (ret->since && parse_id(ret->since, r, &seq) < 0)
    return error_code(VMH_EINVAL,
                      "since: '%.40s' is not an event id (RUN-SEQ, as events "
                      "carry it: 8 hex digits, '-', a number)",
                      ret->since);
  if (ret->vm && !vmh_name_valid(ret->vm) && !valid_uuid(ret->vm))
    return error_code(VMH_EINVAL,
                      "vm: '%.80s' is neither a VM id nor a VM name (%s)",
                      ret->vm, VMH_NAME_RULE);
  uint32_t known = 0;
  for (uint32_t t = VMH_EVENT_VM_STATE; t < VMH_EVENT_RESET; t++)
    known |= VMH_EVENT_TYPE_BIT(t);
  if (ret->types & ~known)
    return error_code(VMH_EINVAL, "types: unknown event type bits 0x%" PRIx32,
                      ret->types & ~known);
  s->types = ret->types;
  if (ret->vm && !(s->vm = strdup(ret->vm)))
    return error_code(VMH_ENOMEM, "out of memory");
  return 0;
}

/* Why since cannot be replayed, into why; "" when it can. */
static void replay_check(const char *since, char *why, size_t len) {
  char r[RUN_LEN + 1];
  uint64_t seq = 0;
  char newest[ID_LEN + 1];
  format_id(newest, sizeof newest, last_seq);
  why[0] = '\0';
  parse_id(since, r, &seq);
  if (strcmp(r, run) != 0)
    snprintf(why, len,
             "event id %s is from another run of vmhostd (this run's ids "
             "are %s-N): read the state again, then follow from %s",
             since, run, newest);
  else if (seq > last_seq)
    snprintf(why, len,
             "event id %s was never sent (the newest is %s): read the "
             "state again, then follow from %s",
             since, newest, newest);
  else if (seq + 1 < oldest_seq())
    snprintf(why, len,
             "event id %s is older than the %" PRIu32
             " events kept (daemon.event_history): read the state again, "
             "then follow from %s",
             since, count, newest);
}

/* On the subscriber's thread, under lock: the replay after since, or the
 * reset that says it cannot be made. */
static void replay(const struct subscriber *s, const char *since) {
  char why[512];
  replay_check(since, why, sizeof why);
  delivering = true;
  if (why[0]) {
    char id[ID_LEN + 1];
    format_id(id, sizeof id, last_seq);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct vmh_event ev = {
        .struct_size = sizeof ev,
        .type = VMH_EVENT_RESET,
        .time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000,
        .source = "core",
        .reason = "replay_impossible",
        .message = why,
        .id = id,
        .seq = last_seq,
    };
    s->fn(s->opaque, &ev);
  } else {
    char r[RUN_LEN + 1];
    uint64_t seq = 0;
    parse_id(since, r, &seq);
    for (uint32_t i = 0; i < count; i++) {
      const struct vmh_event *ev = ring[(head + i) % cap];
      if (ev->seq > seq && takes(s, ev))
        s->fn(s->opaque, ev);
    }
  }
  delivering = false;
  deliver_pending();
}

int events_subscribe_filtered(const struct vmh_event_filter *f, vmh_event_fn fn,
                              void *opaque, uint64_t *ret_id, uint32_t flags) {
  if (flags)
    return error_code(VMH_EINVAL, "unknown flags 0x%x", flags);
  if (!fn || !ret_id)
    return error_code(VMH_EINVAL, "subscribe needs a callback and an id");
  struct subscriber sub = {.fn = fn, .opaque = opaque};
  struct vmh_event_filter filter;
  int r = take_filter(f, &sub, &filter);
  if (r < 0)
    return r;
  pthread_mutex_lock(&lock);
  if (!run[0])
    make_run();
  struct subscriber *more = realloc(subs, (n_subs + 1) * sizeof *more);
  if (!more) {
    pthread_mutex_unlock(&lock);
    free(sub.vm);
    return error_code(VMH_ENOMEM, "out of memory");
  }
  subs = more;
  sub.id = next_sub_id++;
  subs[n_subs++] = sub;
  *ret_id = sub.id;
  if (filter.since)
    replay(&sub, filter.since);
  pthread_mutex_unlock(&lock);
  return 0;
}

int events_subscribe(vmh_event_fn fn, void *opaque, uint64_t *ret_id,
                     uint32_t flags) {
  return events_subscribe_filtered(NULL, fn, opaque, ret_id, flags);
}

void events_unsubscribe(uint64_t id) {
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < n_subs; i++) {
    if (subs[i].id == id) {
      free(subs[i].vm);
      memmove(&subs[i], &subs[i + 1], (n_subs - i - 1) * sizeof *subs);
      n_subs--;
      break;
    }
  }
  pthread_mutex_unlock(&lock);
}

void events_free(void) {
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < n_subs; i++)
    free(subs[i].vm);
  free(subs);
  subs = NULL;
  n_subs = 0;
  for (uint32_t i = 0; i < count; i++)
    free(ring[(head + i) % cap]);
  free(ring);
  ring = NULL;
  cap = head = count = 0;
  pthread_mutex_unlock(&lock);
}
