/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host resources and admission control.
 *
 * The core counts what VM records hold (vCPUs, memory) against the host's
 * size × overcommit − what is reserved for the host itself, and a pool's
 * space against its capacity − its reserve.  A request that would cross a
 * limit is refused with VMH_ECAPACITY before any backend changes anything,
 * with the numbers in the message.
 *
 * vCPUs and memory: every record in the table counts (a create in flight, a
 * failed VM not yet deleted), so reserving is inserting the record under
 * the table's lock (vms_insert calls resources_admit_vm), releasing is
 * removing it, and a restart recomputes everything from the records it
 * loads.
 *
 * Disk: a pool's own answer (capacity, available) is the truth for what
 * exists.  New volumes are reserved on top of it under the pool's mutex,
 * so two creates never both take the last space; the pool is asked again
 * only when no volume is being made (its answer then agrees with what was
 * counted), and volumes made since its last answer count by their size.
 * A clone without a size counts for nothing here, and a volume larger
 * than all the pool has free is the pool's to refuse (VMH_ENOSPC, its own
 * words).
 *
 * The config (resources:) is resconf.h's.
 */
#ifndef VMHOST_CORE_RESOURCES_H
#define VMHOST_CORE_RESOURCES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <vmhost/core.h>
#include <vmhost/host.h>

#include "resconf.h"
#include "vmrecord.h"

/* Once the instances are open, before the records are loaded: learn the
 * host's size (each hypervisor's caps, else this machine) and the pools.
 * c is copied. */
void resources_setup(const struct resources_conf *c);
void resources_free(void);

/* Under the record table's write lock: 0 when vm's vCPUs and memory fit
 * beside every record already in the table, else VMH_ECAPACITY with the
 * numbers in the message. */
int resources_admit_vm(const struct vm *vm);
/* Under the write lock (or before any thread runs): a record entered or
 * left the table. */
void resources_vm_added(const struct vm *vm);
void resources_vm_removed(const struct vm *vm);

/* Reserve the space the new volumes of disks[0..n) need (disks the core
 * makes with a size), pool by pool; all or nothing.  Returns 0 or
 * VMH_ECAPACITY (message: which disk, the numbers), or the pool's error
 * when it cannot say its space.  Release exactly what was reserved with
 * resources_disks_release once the volumes are made (a disk's `created`
 * says which were) or not.  Release keeps the thread's error message. */
int resources_disks_reserve(const struct vm_disk *disks, size_t n);
void resources_disks_release(const struct vm_disk *disks, size_t n);
/* The same for one volume of a pool (volume_create); made: it was. */
int resources_volume_reserve(const char *pool, const char *volume,
                             uint64_t bytes);
void resources_volume_release(const char *pool, uint64_t bytes, bool made);

/* Ask every pool its space now (the periodic timer), or one pool whose
 * volumes were deleted.  Errors are logged (debug); the numbers stay. */
void resources_sample_pools(void);
void resources_sample_pool(const char *pool);

/* struct vmh_core.host_resources. */
int resources_get(struct vmh_host_resources *ret, vmh_pool_resources_fn pool,
                  void *opaque, uint32_t flags);

/* The Prometheus gauges vmhost_resources_*, into f. */
void resources_render(FILE *f);

#endif
