/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI — hypervisor plugins.
 *
 * A hypervisor instance runs VMs.  The core owns the VM records and calls
 * these operations from its worker threads; it serializes all operations on
 * one VM, so two calls for the same vm_id never overlap, whatever the thread
 * model.  VMs are named by the id the core assigned (a UUID, which the
 * hypervisor uses as the domain's UUID).
 *
 * Lifecycle changes the plugin notices (guest shut itself down, crashed …)
 * are reported with host->emit() as VMH_EVENT_VM_STATE; the core keeps its
 * records current from them and from a periodic list().
 */
#ifndef VMHOST_HYPERVISOR_H
#define VMHOST_HYPERVISOR_H

#include <vmhost/instance.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Visitors: called with a struct valid only during the call.  A non-zero
 * return stops the operation, which returns that value. */
typedef int (*vmh_vm_info_fn)(void *opaque, const struct vmh_vm_info *info);
typedef int (*vmh_snapshot_fn)(void *opaque,
                               const struct vmh_snapshot_info *snap);
typedef int (*vmh_console_fn)(void *opaque,
                              const struct vmh_console_info *console);

/* Feature bits of vmh_hypervisor_caps.features. */
#define VMH_HV_SNAPSHOTS (UINT32_C(1) << 0)
#define VMH_HV_HOTPLUG_DISK (UINT32_C(1) << 1)
#define VMH_HV_PAUSE (UINT32_C(1) << 2)
#define VMH_HV_CONSOLE (UINT32_C(1) << 3)

struct vmh_hypervisor_caps {
  uint32_t struct_size;
  uint32_t source_types;  /* VMH_SOURCE_BIT() of every source it attaches */
  uint32_t binding_types; /* 1 << enum vmh_binding_type it attaches */
  uint32_t channel_type;  /* enum vmh_channel_type it gives VMs */
  uint32_t features;      /* VMH_HV_* */
  uint32_t max_vcpus;     /* 0: no limit known */
  uint64_t max_memory;    /* bytes; 0: no limit known */
#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2: the size of the host this hypervisor runs VMs on, for the
   * core's admission control.  0: this machine (the core reads it from the
   * kernel).  A plugin fills them when its VMs run elsewhere (a remote
   * libvirt) or nowhere (the mock's simulated host). */
  uint32_t host_cpus;   /* logical CPUs */
  uint64_t host_memory; /* bytes */
#endif
};

/* Flags: each operation has its own namespace (these share bit 0). */
/* stop: power off, no ACPI request. */
#define VMH_STOP_FORCE (UINT32_C(1) << 0)
/* define: start once defined. */
#define VMH_DEFINE_START (UINT32_C(1) << 0)

struct vmh_hypervisor_ops {
  VMH_INSTANCE_OPS;

  /* Required.  Fill *ret (its struct_size is set by the core). */
  int (*caps)(void *handle, struct vmh_hypervisor_caps *ret, uint32_t flags);

  /* Required.  Define the VM from spec; every disk has its source and every
   * NIC its binding.  With VMH_DEFINE_START also start it.  On failure
   * nothing of the VM may remain (undo the definition).  An id already
   * defined → VMH_EEXIST. */
  int (*define)(void *handle, const struct vmh_vm_spec *spec, uint32_t flags);

  /* Required.  Remove the VM's definition (and anything the plugin made for
   * it); a running VM is powered off first.  Unknown id → VMH_ENOENT (the
   * core treats that as done when deleting). */
  int (*undefine)(void *handle, const char *vm_id, uint32_t flags);

  /* Required.  Lifecycle.  An illegal transition (start a running VM,
   * pause a stopped one …) → VMH_ESTATE with a message naming the state.
   * stop: ask the guest to shut down and wait up to timeout_s, then power
   * off; VMH_STOP_FORCE powers off at once. */
  int (*start)(void *handle, const char *vm_id, uint32_t flags);
  int (*stop)(void *handle, const char *vm_id, uint32_t timeout_s,
              uint32_t flags);
  /* Optional. */
  int (*reboot)(void *handle, const char *vm_id, uint32_t flags);
  int (*pause)(void *handle, const char *vm_id, uint32_t flags);
  int (*resume)(void *handle, const char *vm_id, uint32_t flags);

  /* Required.  The live view: one VM, or every VM the hypervisor knows
   * (including ones the core did not make: reconciliation reports them). */
  int (*get)(void *handle, const char *vm_id, vmh_vm_info_fn fn, void *opaque,
             uint32_t flags);
  int (*list)(void *handle, vmh_vm_info_fn fn, void *opaque, uint32_t flags);

  /* Optional.  How to reach the VM's console. */
  int (*console)(void *handle, const char *vm_id, vmh_console_fn fn,
                 void *opaque, uint32_t flags);

  /* Optional.  Snapshots of disks and (running VM) memory.  create calls fn
   * once with the new snapshot; on failure nothing of it remains. */
  int (*snapshot_create)(void *handle, const char *vm_id, const char *name,
                         vmh_snapshot_fn fn, void *opaque, uint32_t flags);
  int (*snapshot_list)(void *handle, const char *vm_id, vmh_snapshot_fn fn,
                       void *opaque, uint32_t flags);
  int (*snapshot_revert)(void *handle, const char *vm_id,
                         const char *snapshot_id, uint32_t flags);
  int (*snapshot_delete)(void *handle, const char *vm_id,
                         const char *snapshot_id, uint32_t flags);

#if VMH_ABI_TARGET_MINOR >= 1
  /* Optional (ABI 1.1).  Hot-plug a disk whose source is resolved; a disk of
   * that name already present → VMH_EEXIST.  Detach: unknown → VMH_ENOENT. */
  int (*attach_disk)(void *handle, const char *vm_id,
                     const struct vmh_disk *disk, uint32_t flags);
  int (*detach_disk)(void *handle, const char *vm_id, const char *disk_name,
                     uint32_t flags);
#endif
};

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_HYPERVISOR_H */
