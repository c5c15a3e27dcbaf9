/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmrecord — the one definition of a VM record: its fields, its JSON (the
 * core's state files, the mock hypervisor's state file) and its mapping to
 * and from the ABI's structs (types.h).
 *
 * In-tree convenience code (never installed, not part of the ABI), linked by
 * the core and by any plugin that keeps VMs.  Every field is named once, in
 * the lists below; the struct members, the JSON keys, the copies from and to
 * the ABI's structs and the frees are generated from them, so a new field is
 * one line in one list (plus its checks where values are checked).
 *
 * A list entry is X(TYPE, name): TYPE is STR (char *, NULL: not set), U32,
 * U64 or I64.  `name` is the member, the JSON key and, in the *_SPEC lists,
 * the member of the ABI struct of the same meaning.
 *
 * Ownership: a record owns every string and array it points to; vm_free()
 * frees them and the record.  Nothing here locks: the caller guards a
 * record shared between threads.
 */
#ifndef VMH_VMRECORD_H
#define VMH_VMRECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <vmhost/vmhost-plugin.h>

/* A disk's source as the storage plugin answered vol_source (struct
 * vmh_disk_source, without the monitors and the secret, handled apart). */
#define VM_SOURCE_FIELDS(X)                                                \
  X(U32, type)                                                             \
  X(U32, format)                                                           \
  X(STR, path) X(STR, pool) X(STR, image) X(STR, auth_user) X(STR, portal) \
      X(STR, iqn) X(U32, lun) X(STR, server) X(STR, export_path)

/* A NIC's binding as the network plugin answered port_bind (struct
 * vmh_nic_binding). */
#define VM_BINDING_FIELDS(X)                                             \
  X(U32, type)                                                           \
  X(STR, bridge)                                                         \
  X(STR, port) X(STR, interface_id) X(STR, tap) X(STR, mac) X(U32, vlan) \
      X(U32, mtu)

/* A disk as asked (struct vmh_disk), then where it was placed. */
#define VM_DISK_SPEC(X)                                                     \
  X(STR, name)                                                              \
  X(STR, pool)                                                              \
  X(STR, volume) X(U64, size) X(U32, format) X(U32, bus) X(STR, base_image) \
      X(U32, readonly) X(U32, boot_order)
#define VM_DISK_PLACED(X)                                             \
  X(U32, created) /* the core made the volume: it goes with the VM */ \
  X(U32, mapped)  /* mapped locally (VMH_SOURCE_LOCAL): unmap it */

/* A NIC as asked (struct vmh_nic), then whether its port is bound. */
#define VM_NIC_SPEC(X) \
  X(STR, name) X(STR, network) X(STR, mac) X(U32, vlan) X(U32, model)
#define VM_NIC_PLACED(X) X(U32, bound) /* the port exists; binding is valid */

/* A VM as asked (struct vmh_vm_spec, without arrays and metadata). */
#define VM_SPEC(X)                                                             \
  X(STR, id)                                                                   \
  X(STR, name) X(U32, vcpus) X(U64, memory) X(STR, kernel) X(STR, initrd)      \
      X(STR, cmdline) X(STR, firmware) X(U32, guest_channel) X(STR, user_data) \
          X(STR, meta_data) X(STR, network_config) X(STR, hypervisor)
/* The core's bookkeeping of a VM, saved with it. */
#define VM_PLACED(X)                                        \
  X(U32, status)  /* enum vmh_vm_status */                  \
  X(U32, defined) /* the hypervisor has it */               \
  X(I64, created) /* seconds since the epoch */             \
  X(STR, error)   /* why the VM failed, NULL: it did not */ \
  X(U32, state)   /* enum vmh_vm_state, last known */       \
  X(I64, created_us) /* µs since the epoch (0: not recorded): list order */
/* What a hypervisor last said (struct vmh_vm_info, besides state, ips and
 * the fields of the spec); never saved. */
#define VM_LIVE(X)                                           \
  X(U64, memory_used)                                        \
  X(U64, cpu_time_ns)                                        \
  X(U64, uptime_s) X(U32, channel_type) X(STR, channel_path) \
      X(U32, channel_port) X(U64, disk_read_bytes) X(U64, disk_write_bytes) \
          X(U64, net_rx_bytes) X(U64, net_tx_bytes)

#define VM_CTYPE_STR char *
#define VM_CTYPE_U32 uint32_t
#define VM_CTYPE_U64 uint64_t
#define VM_CTYPE_I64 int64_t
#define VM_MEMBER(type, name) VM_CTYPE_##type name;

struct vm_source {
  VM_SOURCE_FIELDS(VM_MEMBER)
  char **monitors;
  uint32_t n_monitors;
  /* Kept only while the source is handed to a hypervisor: never in a
   * record, never saved. */
  char *auth_secret;
};

struct vm_binding {
  VM_BINDING_FIELDS(VM_MEMBER)
};

struct vm_disk {
  VM_DISK_SPEC(VM_MEMBER)
  VM_DISK_PLACED(VM_MEMBER)
  struct vm_source source; /* type VMH_SOURCE_NONE: not resolved yet */
  int make; /* while creating: the request asks the core to make the volume */
};

struct vm_nic {
  VM_NIC_SPEC(VM_MEMBER)
  VM_NIC_PLACED(VM_MEMBER)
  struct vm_binding binding;
};

struct vm_kv {
  char *key, *value;
};

struct vm {
  VM_SPEC(VM_MEMBER)
  struct vm_disk *disks;
  size_t n_disks;
  struct vm_nic *nics;
  size_t n_nics;
  struct vm_kv *metadata;
  size_t n_metadata;
  VM_PLACED(VM_MEMBER)
  VM_LIVE(VM_MEMBER)
  char **ips;
  size_t n_ips;
  int64_t updated_us; /* when the live fields were set, 0: never */
  /* The guest agent as the guest front-end last said (never saved):
   * enum vmh_agent_state, its version, the addresses of its telemetry
   * (shown as the VM's when the hypervisor reports none). */
  uint32_t agent_state;
  char *agent_version;
  char **agent_ips;
  size_t n_agent_ips;
  /* The core's: the VM generation of the last write that changed the
   * record (core/vm.h); never saved. */
  uint64_t gen;
  /* The core's: the transitional state its operations last made it show
   * (0: none) and the VM generation drawn when that changed (core/vm.c,
   * shown_gen); read and written with atomics under the read lock. */
  uint32_t shown_state;
  uint64_t shown_gen;
};

/* Free vm, everything it owns; NULL is fine. */
void vm_free(struct vm *vm);
/* Free n labels (metadata entries) and the array. */
void vm_kv_free(struct vm_kv *kv, size_t n);
/* Free what d (and s) own and zero it. */
void vm_disk_clear(struct vm_disk *d);
void vm_source_clear(struct vm_source *s);
void vm_strv_free(char **v, size_t n);

/* ---- JSON (state files) ---------------------------------------------------
 *
 * One object per VM: the fields of the lists above except VM_LIVE, strings
 * left out when NULL, "disks" and "nics" arrays, a disk's "source" object
 * once resolved, a bound NIC's "binding" object, "metadata" as an object of
 * strings, and "version": 1. */

/* A new object (the caller owns the reference); NULL when out of memory. */
json_t *vm_to_json(const struct vm *vm);
/* A new record from o, or NULL when o is not a valid record (a field of
 * the wrong type, a missing id or name, a disk without name, pool or
 * volume, a NIC without name or network …) or when out of memory. */
struct vm *vm_from_json(json_t *o);

/* The JSON of one value of each TYPE, for records that keep more fields
 * beside a VM's (the mock hypervisor).  Getters set *bad on a wrong type
 * and read an absent key as NULL / 0. */
void vm_json_put_STR(json_t *o, const char *key, const char *s);
void vm_json_put_U32(json_t *o, const char *key, uint32_t v);
void vm_json_put_U64(json_t *o, const char *key, uint64_t v);
void vm_json_put_I64(json_t *o, const char *key, int64_t v);
char *vm_json_get_STR(json_t *o, const char *key, int *bad);
uint32_t vm_json_get_U32(json_t *o, const char *key, int *bad);
uint64_t vm_json_get_U64(json_t *o, const char *key, int *bad);
int64_t vm_json_get_I64(json_t *o, const char *key, int *bad);

/* ---- The ABI's structs ----------------------------------------------------
 *
 * Copies read only the bytes inside each struct's struct_size and walk
 * arrays with their elements' struct_size as the stride (types.h).  They
 * copy values as they are: checking them is the caller's.  They return 0 or
 * VMH_ENOMEM (nothing else set: the caller words the error). */

/* Copy the spec's fields into vm.  With
 * VM_COPY_RESOLVED also the disks' sources and the NICs' bindings (a NIC
 * with a binding is bound); without, those are left unresolved (what a
 * front-end passes there is not the core's to trust).  On failure vm holds
 * what was copied: vm_free() it. */
#define VM_COPY_RESOLVED (UINT32_C(1) << 0)
int vm_copy_spec(struct vm *vm, const struct vmh_vm_spec *spec, uint32_t flags);
/* The same for one disk (d zeroed first; vm_disk_clear() it on failure). */
int vm_disk_copy(struct vm_disk *d, const struct vmh_disk *in, uint32_t flags);
/* s replaced by a copy of in (with its secret). */
int vm_source_copy(struct vm_source *s, const struct vmh_disk_source *in);
/* b replaced by a copy of in. */
int vm_binding_copy(struct vm_binding *b, const struct vmh_nic_binding *in);
/* A copy of src into dst without the secret (what a record keeps). */
int vm_source_record(struct vm_source *dst, const struct vm_source *src);

/* s seen as the ABI's struct; pointers go into s. */
void vm_source_view(const struct vm_source *s, struct vmh_disk_source *out);

/* d seen as the ABI's struct; its source, once recorded, as *source. */
void vm_disk_view(const struct vm_disk *d, struct vmh_disk *out,
                  struct vmh_disk_source *source);

/* A record seen through the ABI's structs: the spec with its disks (and
 * their recorded sources), NICs (and bindings, when bound) and metadata;
 * info with the live fields.  Pointers go into the record, which must not
 * change while the view is used. */
struct vm_view {
  struct vmh_vm_spec spec;
  struct vmh_vm_info info;
  struct vmh_disk *disks;
  struct vmh_disk_source *sources;
  struct vmh_nic *nics;
  struct vmh_nic_binding *bindings;
  struct vmh_keyval *metadata;
};
/* 0 or VMH_ENOMEM (then v is empty). */
int vm_view_init(struct vm_view *v, const struct vm *vm);
void vm_view_free(struct vm_view *v);

#endif /* VMH_VMRECORD_H */
