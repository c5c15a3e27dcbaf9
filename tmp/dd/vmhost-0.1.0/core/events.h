/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The event bus: plugins and the core publish, front-ends subscribe. */
#ifndef VMHOST_CORE_EVENTS_H
#define VMHOST_CORE_EVENTS_H

#include <stdint.h>
#include <vmhost/core.h>

/* Publish ev from `source` (an instance name or "core").  The event is
 * normalised to the core's struct size, time-stamped if it has no time and
 * handed to every subscriber in the order they subscribed (the VM records
 * first: vms_init subscribes before any front-end starts), on the calling
 * thread.  Thread-safe. */
void events_emit(const char *source, const struct vmh_event *ev);

/* Subscribe fn; *ret_id identifies it.  fn runs on the emitting thread and
 * must not block, nor call events_unsubscribe. */
int events_subscribe(vmh_event_fn fn, void *opaque, uint64_t *ret_id,
                     uint32_t flags);
/* After it returns fn is never called again. */
void events_unsubscribe(uint64_t id);
void events_free(void);

#endif
