/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM records on disk: each save is a frame of the record journal
 * (journal.h) in state_dir, acknowledged once it is durable; concurrent
 * saves share one fsync (group commit).  A state dir in the layout before
 * the journal (one JSON file per VM under state_dir/vms) is imported once
 * at load and the directory renamed to vms.migrated-<time>. */
#ifndef VMHOST_CORE_STATE_H
#define VMHOST_CORE_STATE_H

#include <stdint.h>

#include "journal.h"
#include "vmrecord.h"

/* Log size that starts a compaction, unless configured
 * (daemon.journal_compact_size). */
#define STATE_COMPACT_DEFAULT (UINT64_C(16) << 20)

/* Set before state_init (0: never compact). */
void state_set_compact_size(uint64_t bytes);

/* Create state_dir if needed and recover its journal.  Returns 0 or a
 * VMH_E* code with the message set (a damaged journal: what to do). */
int state_init(const char *state_dir);
/* Close the journal (waits for a compaction in progress). */
void state_close(void);

/* Write vm's record and wait until it is durable.  The caller holds the
 * record's lock (vm.h) or owns vm.  Returns 0 or VMH_E* with the message
 * set. */
int state_save(const struct vm *vm);
/* The same in two steps, so the lock is held only while vm is encoded:
 * state_queue under the lock (order of saves = order of changes), then
 * state_wait without it.  w may be NULL for state_queue (nobody waits). */
int state_queue(const struct vm *vm, struct journal_wait *w);
int state_wait(struct journal_wait *w);
/* Wait until every save queued so far is durable (after state_queue with
 * no waiter).  0 or VMH_EIO with the message set. */
int state_sync(void);
/* Remove vm's record (durable on return); one already gone is fine. */
int state_remove(const char *id);
/* Compact the journal now, in the background. */
void state_compact(void);

/* Load every record; fn gets each (and owns it), and may save.  A record
 * that is not a valid VM record is logged and skipped; the old layout is
 * migrated (its unreadable files renamed to *.corrupt, its temp files
 * removed).  Returns the number loaded or a VMH_E* code. */
int state_load(void (*fn)(void *opaque, struct vm *vm), void *opaque);

#endif
