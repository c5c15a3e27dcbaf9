/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The event bus: plugins and the core publish, front-ends subscribe.
 *
 * Every event gets an id, "RUN-SEQ" (RUN: 8 hex digits drawn at start, so
 * an id of another run is told apart; SEQ: 1, 2, … in delivery order), and
 * the last `daemon.event_history` events are kept in memory, so that a
 * subscriber that lost its stream resumes where it was (struct
 * vmh_event_filter.since) or learns that it cannot (VMH_EVENT_RESET). */
#ifndef VMHOST_CORE_EVENTS_H
#define VMHOST_CORE_EVENTS_H

#include <stdint.h>
#include <vmhost/core.h>

#define EVENTS_HISTORY_DEFAULT 4096
#define EVENTS_HISTORY_MAX 1048576

/* Keep the last `history` events (0: none, every resume is a reset).
 * Before the first emit; 0, or VMH_ENOMEM. */
int events_init(uint32_t history);

/* Publish ev from `source` (an instance name or "core").  The event is
 * normalised to the core's struct size, time-stamped if it has no time,
 * given its id, kept in the history and handed to every subscriber whose
 * filter takes it in the order they subscribed (the VM records first:
 * vms_init subscribes before any front-end starts), on the calling thread.
 * An event emitted by a subscriber while it is called is delivered after
 * the one being delivered, to everyone.  Thread-safe. */
void events_emit(const char *source, const struct vmh_event *ev);

/* A copy of ev (normalised to the core's struct size) and its strings, in
 * one allocation the caller frees; NULL when out of memory. */
struct vmh_event *events_dup(const struct vmh_event *ev);

/* Subscribe fn to every event; *ret_id identifies it.  fn runs on the
 * emitting thread and must not block, nor call events_unsubscribe. */
int events_subscribe(vmh_event_fn fn, void *opaque, uint64_t *ret_id,
                     uint32_t flags);
/* The same with a resume point and filters (struct vmh_core's
 * subscribe_events). */
int events_subscribe_filtered(const struct vmh_event_filter *f, vmh_event_fn fn,
                              void *opaque, uint64_t *ret_id, uint32_t flags);
/* After it returns fn is never called again. */
void events_unsubscribe(uint64_t id);
void events_free(void);

#endif
