/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Orchestration: the front-ends' operations that change VMs (struct
 * vmh_core).  Each validates its request, then runs on the worker pool keyed
 * by the VM's id, so operations on one VM are serialized and different VMs
 * proceed in parallel; each answers through r (core.h). */
#ifndef VMHOST_CORE_ORCHESTRATE_H
#define VMHOST_CORE_ORCHESTRATE_H

#include <stdint.h>
#include <vmhost/core.h>

/* The directories a VM's kernel and initrd may be named in (daemon.
 * boot_dirs; borrowed until the daemon stops).  Before any create. */
void orchestrate_set_boot_dirs(char *const *dirs, size_t n);

/* Volumes, then NIC bindings, then define (and start); a failing step undoes
 * the steps done, in reverse. */
void vm_create(const struct vmh_vm_spec *spec, vmh_reply_t *r, uint32_t flags);
/* The reverse of create; parts already gone count as done. */
void vm_delete(const char *vm, vmh_reply_t *r, uint32_t flags);
void vm_action(const char *vm, uint32_t action, uint32_t timeout_s,
               vmh_reply_t *r, uint32_t flags);
void vm_console(const char *vm, vmh_reply_t *r, uint32_t flags);
void vm_snapshot_list(const char *vm, vmh_reply_t *r, uint32_t flags);
void vm_snapshot_create(const char *vm, const char *name, vmh_reply_t *r,
                        uint32_t flags);
void vm_snapshot_revert(const char *vm, const char *sid, vmh_reply_t *r,
                        uint32_t flags);
void vm_snapshot_delete(const char *vm, const char *sid, vmh_reply_t *r,
                        uint32_t flags);
/* The volume is made (or found), given to the hypervisor, and its source
 * recorded. */
void vm_disk_attach(const char *vm, const struct vmh_disk *disk, vmh_reply_t *r,
                    uint32_t flags);
/* The volume stays in its pool (unmapped if the core mapped it). */
void vm_disk_detach(const char *vm, const char *disk, vmh_reply_t *r,
                    uint32_t flags);
/* Set and remove labels (merge-patch: a NULL value removes); saved, then
 * answered with the record (core.h vm_update_labels). */
void vm_update_labels(const char *vm, const struct vmh_keyval *labels,
                      uint32_t n_labels, vmh_reply_t *r, uint32_t flags);

#endif
