/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The REST front-end's event stream, GET /api/v1/events (events.c).
 *
 * A text/event-stream: every event as `id:` (the core's "RUN-SEQ"),
 * `event:` (its type) and `data:` (its JSON).  ?since=ID or the
 * Last-Event-ID header (which wins: an EventSource sends it when it
 * reconnects) replays the kept events after ID first, or begins with an
 * `event: reset` when they cannot be replayed; ?vm= (id or name) and
 * ?type= (repeatable, or a comma list) filter.  Each stream gets a comment
 * line every events.keepalive seconds.  A stream whose client reads too
 * slowly (limits.stream_buffer) is cut; the client resumes from the last
 * id it got. */
#ifndef VMH_RESTEVENTS_H
#define VMH_RESTEVENTS_H

#include <stdint.h>
#include <vmhost/vmhost-plugin.h>

struct call;
struct rest_events;

/* Read the instance's `events:` keys (keepalive).  0, or a VMH_E* code
 * with the host's error set. */
int rest_events_open(const struct vmh_host *h, const struct vmh_instance *inst,
                     const struct vmh_config *cfg, uint32_t stream_buffer,
                     struct rest_events **ret);
/* Start the keepalive thread (none when keepalive is 0). */
int rest_events_start(struct rest_events *e, const struct vmh_core *core);
/* Stop it; the streams are ended by the server's stop. */
void rest_events_stop(struct rest_events *e);
void rest_events_free(struct rest_events *e);

/* The route. */
int rest_events(struct call *k, struct rest_events *e);

#endif
