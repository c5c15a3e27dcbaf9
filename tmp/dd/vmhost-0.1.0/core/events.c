/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The event bus. */
#include <config.h>

#include "events.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"

struct subscriber {
  uint64_t id;
  vmh_event_fn fn;
  void *opaque;
};

/* Emitters hold it shared while they deliver; unsubscribe takes it
 * exclusive, so once unsubscribe returns no delivery is in flight. */
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct subscriber *subs;
static size_t n_subs;
static uint64_t next_id = 1;

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
  pthread_rwlock_rdlock(&lock);
  for (size_t i = 0; i < n_subs; i++)
    subs[i].fn(subs[i].opaque, &ev);
  pthread_rwlock_unlock(&lock);
}

int events_subscribe(vmh_event_fn fn, void *opaque, uint64_t *ret_id,
                     uint32_t flags) {
  if (flags)
    return error_code(VMH_EINVAL, "unknown flags 0x%x", flags);
  if (!fn || !ret_id)
    return error_code(VMH_EINVAL, "subscribe needs a callback and an id");
  pthread_rwlock_wrlock(&lock);
  struct subscriber *s = realloc(subs, (n_subs + 1) * sizeof *s);
  if (!s) {
    pthread_rwlock_unlock(&lock);
    return error_code(VMH_ENOMEM, "out of memory");
  }
  subs = s;
  subs[n_subs] = (struct subscriber){next_id++, fn, opaque};
  *ret_id = subs[n_subs++].id;
  pthread_rwlock_unlock(&lock);
  return 0;
}

void events_unsubscribe(uint64_t id) {
  pthread_rwlock_wrlock(&lock);
  for (size_t i = 0; i < n_subs; i++) {
    if (subs[i].id == id) {
      memmove(&subs[i], &subs[i + 1], (n_subs - i - 1) * sizeof *subs);
      n_subs--;
      break;
    }
  }
  pthread_rwlock_unlock(&lock);
}

void events_free(void) {
  pthread_rwlock_wrlock(&lock);
  free(subs);
  subs = NULL;
  n_subs = 0;
  pthread_rwlock_unlock(&lock);
}
