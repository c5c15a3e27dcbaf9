/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM records on disk: one JSON file per VM under state_dir/vms, written
 * atomically (temp file, fsync, rename, fsync of the directory), so that a
 * crash at any point leaves either the old or the new record. */
#ifndef VMHOST_CORE_STATE_H
#define VMHOST_CORE_STATE_H

#include "vmrecord.h"

/* Create state_dir/vms if needed and remember it.  Returns 0 or VMH_EIO. */
int state_init(const char *state_dir);

/* Write vm's record.  Returns 0 or VMH_EIO with the message set. */
int state_save(const struct vm *vm);
/* Remove vm's record; one already gone is fine. */
int state_remove(const char *id);

/* Load every record; fn gets each (and owns it).  A file that cannot be
 * parsed is logged, renamed to *.corrupt and skipped; leftover temp files
 * are removed. Returns the number loaded or a VMH_E* code. */
int state_load(void (*fn)(void *opaque, struct vm *vm), void *opaque);

#endif
