/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The table of VM records, the reads served from it, and the lifecycle
 * events and reconciliation that keep it current.
 *
 * The core owns one record per VM (struct vm, vmrecord.h): the spec as
 * asked, where each part was placed (hypervisor, pool/volume and disk
 * source, network/port) and the last known state.  Records live in memory
 * (reads never wait on a backend) and in one file each under state_dir/vms
 * (see state.h).  The operations that change VMs are orchestrate.h's. */
#ifndef VMHOST_CORE_VM_H
#define VMHOST_CORE_VM_H

#include <stddef.h>
#include <stdint.h>
#include <vmhost/core.h>

#include "vmrecord.h"

/* Start: load the records from state_dir and reconcile them with every
 * hypervisor (missing domains, orphans, interrupted creates are logged and
 * marked; nothing is deleted).  Returns 0 or a VMH_E* code with the message
 * set. */
int vms_init(const char *state_dir);
/* Reconcile again (the periodic timer calls it). */
void vms_reconcile(void);
void vms_free(void);
size_t vms_count(void);

/* 1 when any VM record names pool/volume. */
int vms_volume_in_use(const char *pool, const char *volume);
/* The worker key (workers.h) that orders the work on pool/volume (either
 * may be NULL); the caller frees it.  NULL when out of memory. */
char *volume_key(const char *pool, const char *volume);

/* The front-ends' VM operations (struct vmh_core). */
void vm_list(vmh_reply_t *r, uint32_t flags);
void vm_get(const char *vm, vmh_reply_t *r, uint32_t flags);
void vm_query(const struct vmh_vm_query *q, vmh_reply_t *r, uint32_t flags);

/* ---- shared by vm.c (records) and orchestrate.c ------------------------ */

/* Guards the record table and every record's fields.  Orchestration holds
 * it only to read or change fields, never across a plugin call.
 *
 * Each record has a generation (vmh_vm_record.generation) under which the
 * front-ends keep its encoding, so a write must say what it changes:
 * vms_wrlock_vm(vm) changes vm only; vms_wrlock() may change any record
 * (every record counts as changed: correct, and costly for lists: use it
 * where one write touches many records or none is known); a writer that
 * finds its record under the lock (vms_wrlock_record) calls vm_touch(vm)
 * before changing it. */
void vms_rdlock(void);
void vms_wrlock(void);
void vms_wrlock_vm(struct vm *vm);
void vms_wrlock_record(void);
void vm_touch(struct vm *vm);
void vms_unlock(void);
/* Changes with every vms_wrlock(): what vm_generation() answers. */
uint64_t vms_generation(void);

/* The name of the VM with this id into buf: 0, or -1 when there is none.
 * Takes the lock itself. */
int vms_name_of(const char *id, char *buf, size_t len);
/* The record addressed by id or name (lock held by the caller), or NULL. */
struct vm *vms_lookup(const char *id_or_name);
/* Add a record whose name must be unique (VMH_EEXIST) and whose vCPUs and
 * memory fit (resources_admit_vm: VMH_ECAPACITY).  Takes the
 * lock itself.  The table owns vm on success. */
int vms_insert(struct vm *vm);
/* Take vm out of the table and free it.  Takes the lock itself. */
void vms_remove(struct vm *vm);

/* Give vm to r->vm as a struct vmh_vm_record (lock held by the caller). */
void vm_reply_record(const struct vm *vm, vmh_reply_t *r);

/* Copy a hypervisor's info into vm's live fields (lock held). */
void vm_set_info(struct vm *vm, const struct vmh_vm_info *info);

/* Ask vm's hypervisor for its state now and record it.  Returns 0 or a
 * VMH_E* code (VMH_ENOENT: the hypervisor does not know the VM). */
int vm_refresh(struct vm *vm);

/* Reply with code and the thread's error message (or none when 0). */
void reply_done(vmh_reply_t *r, int code);
/* Refuse flag bits outside known: reply VMH_EINVAL ("unknown flags 0x…")
 * and return -1; 0 when there are none. */
int reply_check_flags(vmh_reply_t *r, uint32_t flags, uint32_t known);

#endif
