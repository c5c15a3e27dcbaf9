/* VM records and the orchestration that makes and unmakes VMs.
 *
 * The core owns one record per VM: the spec as asked, where each part was
 * placed (hypervisor, pool/volume, network/port) and the last known state.
 * Records live in memory (reads never wait on a backend) and in one file
 * each under state_dir/vms (see state.h).  Every operation that changes a VM
 * runs on the worker pool keyed by the VM's id, so operations on one VM are
 * serialized and different VMs proceed in parallel. */
#ifndef VMHOST_CORE_VM_H
#define VMHOST_CORE_VM_H

#include <stddef.h>
#include <stdint.h>
#include <vmhost/core.h>

struct vm_disk {
  char *name, *pool, *volume, *base_image;
  uint64_t size;
  uint32_t format, bus, readonly, boot_order;
  int make;    /* the request asks the core to make the volume */
  int created; /* the core made it (it exists): it goes with the VM */
  int mapped;  /* mapped locally (VMH_SOURCE_LOCAL): unmap on delete */
};

struct vm_nic {
  char *name, *network, *mac;
  uint32_t vlan, model;
  int bound; /* the port exists; binding below is valid */
  uint32_t b_type;
  char *b_bridge, *b_port, *b_interface_id, *b_tap, *b_mac;
  uint32_t b_vlan, b_mtu;
};

struct vm_kv {
  char *key, *value;
};

struct vm {
  char id[VMH_ID_LEN + 1];
  char *name;
  uint32_t vcpus;
  uint64_t memory;
  char *kernel, *initrd, *cmdline, *firmware;
  struct vm_disk *disks;
  size_t n_disks;
  struct vm_nic *nics;
  size_t n_nics;
  int guest_channel;
  char *user_data, *meta_data, *network_config;
  struct vm_kv *metadata;
  size_t n_metadata;
  char *hypervisor; /* instance name */

  uint32_t status; /* enum vmh_vm_status */
  int defined;     /* the hypervisor has it */
  int64_t created; /* seconds since the epoch */
  char *error;

  /* Last known state (from the hypervisor's events, get and list). */
  uint32_t state;
  uint64_t memory_used, cpu_time_ns, uptime_s;
  char **ips;
  size_t n_ips;
  uint32_t channel_type, channel_port;
  char *channel_path;
  int64_t updated_us;
};

void vm_free(struct vm *vm);

/* Start: load the records from state_dir and reconcile them with every
 * hypervisor (missing domains, orphans, interrupted creates are logged and
 * marked; nothing is deleted).  Returns 0 or a VMH_E* code with the message
 * set. */
int vms_init(const char *state_dir);
/* Reconcile again (the periodic timer calls it). */
void vms_reconcile(void);
void vms_free(void);
size_t vms_count(void);

/* A state event from a hypervisor instance. */
void vms_on_event(const char *source, const struct vmh_event *ev);

/* 1 when any VM record names pool/volume. */
int vms_volume_in_use(const char *pool, const char *volume);

/* The front-ends' VM operations (struct vmh_core). */
void vm_list(vmh_reply_t *r, uint32_t flags);
void vm_get(const char *vm, vmh_reply_t *r, uint32_t flags);
void vm_create(const struct vmh_vm_spec *spec, vmh_reply_t *r, uint32_t flags);
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
void vm_disk_attach(const char *vm, const struct vmh_disk *disk, vmh_reply_t *r,
                    uint32_t flags);
void vm_disk_detach(const char *vm, const char *disk, vmh_reply_t *r,
                    uint32_t flags);

/* ---- shared by vm.c (records) and orchestrate.c ------------------------ */

/* Guards the record table and every record's fields.  Orchestration holds
 * it only to read or change fields, never across a plugin call. */
void vms_rdlock(void);
void vms_wrlock(void);
void vms_unlock(void);
/* Changes with every vms_wrlock(): what vm_generation() answers. */
uint64_t vms_generation(void);

/* The record addressed by id or name (lock held by the caller), or NULL. */
struct vm *vms_lookup(const char *id_or_name);
/* Add a record whose name must be unique; VMH_EEXIST otherwise.  Takes the
 * lock itself.  The table owns vm on success. */
int vms_insert(struct vm *vm);
/* Take vm out of the table and free it.  Takes the lock itself. */
void vms_remove(struct vm *vm);

/* A record seen through the ABI's structs (the spec with its disks, NICs
 * and their bindings, metadata); pointers go into the record, so the lock
 * must be held, or the record owned, while the view is used.  Disks' sources
 * are left NULL for the caller to fill. */
struct vm_view {
  struct vmh_vm_spec spec;
  struct vmh_disk *disks;
  struct vmh_nic *nics;
  struct vmh_nic_binding *bindings;
  struct vmh_keyval *metadata;
};
int vm_view_init(struct vm_view *v, const struct vm *vm);
void vm_view_free(struct vm_view *v);

/* Give vm to r->vm as a struct vmh_vm_record (lock held by the caller). */
void vm_reply_record(const struct vm *vm, vmh_reply_t *r);

/* Copy a hypervisor's info into vm's live fields (lock held). */
void vm_set_info(struct vm *vm, const struct vmh_vm_info *info);

/* Ask vm's hypervisor for its state now and record it.  Returns 0 or a
 * VMH_E* code (VMH_ENOENT: the hypervisor does not know the VM). */
int vm_refresh(struct vm *vm);

/* Reply with code and the thread's error message (or none when 0). */
void reply_done(vmh_reply_t *r, int code);

#endif
