/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The event bus (core/events.c): ids, the bounded history, resuming at its
 * edges (replay or reset), filters, and an event a subscriber emits. */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

#include <vmhost/core.h>
#include "core-unit.h"
#include "error.h"
#include "events.h"

#define HISTORY 8

/* What one subscriber got: types, seqs, the first event's id and message. */
struct got {
  uint32_t types[64];
  uint64_t seqs[64];
  char first_id[48], first_msg[512];
  size_t n;
};

static void collect(void *opaque, const struct vmh_event *ev) {
  struct got *g = opaque;
  if (g->n == 0) {
    snprintf(g->first_id, sizeof g->first_id, "%s", ev->id ? ev->id : "");
    snprintf(g->first_msg, sizeof g->first_msg, "%s",
             ev->message ? ev->message : "");
  }
  if (g->n < 64) {
    g->types[g->n] = ev->type;
    g->seqs[g->n] = ev->seq;
  }
  g->n++;
}

static void emit(uint32_t type, const char *vm_id, const char *vm_name) {
  struct vmh_event ev = {.struct_size = sizeof ev,
                         .type = type,
                         .vm_id = vm_id,
                         .vm_name = vm_name};
  events_emit("core", &ev);
}

/* Subscribe with since (and no other filter), collect into g. */
static uint64_t resume(const char *since, struct got *g) {
  struct vmh_event_filter f = {.struct_size = sizeof f, .since = since};
  uint64_t id = 0;
  memset(g, 0, sizeof *g);
  CHECK_INT(events_subscribe_filtered(&f, collect, g, &id, 0), ==, 0);
  return id;
}

static void id_of(const char *run, uint64_t seq, char *buf, size_t len) {
  snprintf(buf, len, "%s-%" PRIu64, run, seq);
}

/* A subscriber that emits while it is called: its event reaches everyone
 * after the one being delivered. */
static void echo(void *opaque, const struct vmh_event *ev) {
  (void)opaque;
  if (ev->type == VMH_EVENT_VM_CREATED)
    emit(VMH_EVENT_VM_STATE, ev->vm_id, ev->vm_name);
}

int main(void) {
  CHECK_INT(events_init(HISTORY), ==, 0);

  /* Ids: RUN-SEQ, SEQ from 1, in delivery order. */
  struct got all;
  uint64_t all_id = resume(NULL, &all);
  for (int i = 0; i < 5; i++)
    emit(VMH_EVENT_VM_CREATED, "id-a", "a");
  CHECK_INT(all.n, ==, 5);
  CHECK_INT(all.seqs[0], ==, 1);
  CHECK_INT(all.seqs[4], ==, 5);
  char run[9];
  CHECK(strlen(all.first_id) == 10 && all.first_id[8] == '-');
  memcpy(run, all.first_id, 8);
  run[8] = '\0';

  /* Replay after 2: 3, 4, 5, then live ones. */
  char since[48];
  struct got g;
  id_of(run, 2, since, sizeof since);
  uint64_t sub = resume(since, &g);
  CHECK_INT(g.n, ==, 3);
  CHECK_INT(g.seqs[0], ==, 3);
  emit(VMH_EVENT_VM_DELETED, "id-a", "a");
  CHECK_INT(g.n, ==, 4);
  CHECK_INT(g.seqs[3], ==, 6);
  events_unsubscribe(sub);

  /* Past the history (8 kept): 10 sent, 3..10 kept.  After 2: all of
   * them, nothing lost; after 1: event 2 is gone, a reset. */
  for (int i = 0; i < 4; i++)
    emit(VMH_EVENT_PLUGIN, NULL, NULL);
  id_of(run, 2, since, sizeof since);
  events_unsubscribe(resume(since, &g));
  CHECK_INT(g.n, ==, 8);
  CHECK_INT(g.types[0], ==, VMH_EVENT_VM_CREATED);
  CHECK_INT(g.seqs[0], ==, 3);
  id_of(run, 1, since, sizeof since);
  events_unsubscribe(resume(since, &g));
  CHECK_INT(g.n, ==, 1);
  CHECK_INT(g.types[0], ==, VMH_EVENT_RESET);
  CHECK(strstr(g.first_msg, "older than the 8 events kept"));
  id_of(run, 10, since, sizeof since);
  CHECK_STR(g.first_id, since); /* the newest: the point to follow from */
  /* The newest itself: nothing to replay, no reset. */
  events_unsubscribe(resume(since, &g));
  CHECK_INT(g.n, ==, 0);
  /* Never sent; another run. */
  id_of(run, 11, since, sizeof since);
  events_unsubscribe(resume(since, &g));
  CHECK(g.n == 1 && g.types[0] == VMH_EVENT_RESET);
  CHECK(strstr(g.first_msg, "was never sent"));
  snprintf(since, sizeof since, "%c%s-3", run[0] == '0' ? '1' : '0', run + 1);
  events_unsubscribe(resume(since, &g));
  CHECK(g.n == 1 && g.types[0] == VMH_EVENT_RESET);
  CHECK(strstr(g.first_msg, "from another run"));

  /* Refused: malformed ids, a VM that is no name, unknown type bits. */
  static const char *const bad[] = {
      "",           "x",
      "1234567-1",  "abcdefg1-2",
      "abcdef12-",  "abcdef12-1x",
      "ABCDEF12-1", "abcdef12-99999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct vmh_event_filter f = {.struct_size = sizeof f, .since = bad[i]};
    uint64_t id;
    CHECK_INT(events_subscribe_filtered(&f, collect, &g, &id, 0), ==,
              VMH_EINVAL);
    CHECK(strstr(error_get(), "is not an event id"));
  }
  struct vmh_event_filter f = {.struct_size = sizeof f, .vm = "Bad Name"};
  uint64_t id;
  CHECK_INT(events_subscribe_filtered(&f, collect, &g, &id, 0), ==, VMH_EINVAL);
  f = (struct vmh_event_filter){.struct_size = sizeof f,
                                .types = VMH_EVENT_TYPE_BIT(VMH_EVENT_RESET)};
  CHECK_INT(events_subscribe_filtered(&f, collect, &g, &id, 0), ==, VMH_EINVAL);

  /* Filters: a VM by id or by name, types. */
  struct got by_id, by_name, by_type;
  memset(&by_id, 0, sizeof by_id);
  memset(&by_name, 0, sizeof by_name);
  memset(&by_type, 0, sizeof by_type);
  uint64_t s1, s2, s3;
  f = (struct vmh_event_filter){.struct_size = sizeof f, .vm = "id-b"};
  CHECK_INT(events_subscribe_filtered(&f, collect, &by_id, &s1, 0), ==, 0);
  f = (struct vmh_event_filter){.struct_size = sizeof f, .vm = "b"};
  CHECK_INT(events_subscribe_filtered(&f, collect, &by_name, &s2, 0), ==, 0);
  f = (struct vmh_event_filter){
      .struct_size = sizeof f,
      .types = VMH_EVENT_TYPE_BIT(VMH_EVENT_VM_DELETED) |
               VMH_EVENT_TYPE_BIT(VMH_EVENT_PLUGIN)};
  CHECK_INT(events_subscribe_filtered(&f, collect, &by_type, &s3, 0), ==, 0);
  emit(VMH_EVENT_VM_CREATED, "id-b", NULL);
  emit(VMH_EVENT_VM_CREATED, NULL, "b");
  emit(VMH_EVENT_VM_CREATED, "id-c", "c");
  emit(VMH_EVENT_VM_DELETED, "id-c", "c");
  emit(VMH_EVENT_PLUGIN, NULL, NULL);
  CHECK_INT(by_id.n, ==, 1);
  CHECK_INT(by_name.n, ==, 1);
  CHECK_INT(by_type.n, ==, 2);
  events_unsubscribe(s1);
  events_unsubscribe(s2);
  events_unsubscribe(s3);

  /* A subscriber that emits: everyone sees its event after the one that
   * caused it, in id order. */
  uint64_t e;
  CHECK_INT(events_subscribe(echo, NULL, &e, 0), ==, 0);
  struct got after;
  uint64_t a = resume(NULL, &after);
  emit(VMH_EVENT_VM_CREATED, "id-d", "d");
  CHECK_INT(after.n, ==, 2);
  CHECK_INT(after.types[0], ==, VMH_EVENT_VM_CREATED);
  CHECK_INT(after.types[1], ==, VMH_EVENT_VM_STATE);
  CHECK_INT(after.seqs[1], ==, after.seqs[0] + 1);
  events_unsubscribe(a);
  events_unsubscribe(e);
  events_unsubscribe(all_id);
  events_free();
  return 0;
}
