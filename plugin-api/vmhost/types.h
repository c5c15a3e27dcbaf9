/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI — the data that crosses the boundary.
 *
 * Every struct starts with struct_size, set by whoever fills it in
 * (sizeof of the struct as that side compiled it).  Readers must look only at
 * fields that lie inside struct_size; the core normalises structs it gets
 * from plugins to its own size, zero-filling the tail.
 *
 * All strings are UTF-8 and NUL-terminated; a NULL string means "not set".
 * Arrays come with a count; an array of structs is read with the
 * struct_size of its elements as the stride (all elements of one array have
 * the same struct_size), so a side built against an older minor can still
 * pass arrays.  Pointers in a struct are borrowed: they are valid
 * for the duration of the call or callback that hands the struct over, never
 * longer, and never freed by the receiver.
 */
#ifndef VMHOST_TYPES_H
#define VMHOST_TYPES_H

#include <vmhost/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Disks ------------------------------------------------------------- */

enum vmh_disk_format {
  VMH_FORMAT_DEFAULT = 0, /* the pool's default */
  VMH_FORMAT_RAW = 1,
  VMH_FORMAT_QCOW2 = 2,
};

/* How a hypervisor reaches a volume. */
enum vmh_source_type {
  VMH_SOURCE_NONE = 0,
  VMH_SOURCE_FILE = 1,  /* path: a regular file */
  VMH_SOURCE_BLOCK = 2, /* path: a block device */
  VMH_SOURCE_RBD = 3,   /* Ceph RBD: pool/image, monitors, auth */
  VMH_SOURCE_ISCSI = 4, /* portal, IQN, LUN */
  VMH_SOURCE_NFS = 5,   /* server, export, path inside the export */
};
/* Bit for a source type in vmh_hypervisor_caps.source_types. */
#define VMH_SOURCE_BIT(t) (UINT32_C(1) << (t))

struct vmh_disk_source {
  uint32_t struct_size;
  uint32_t type;               /* enum vmh_source_type */
  uint32_t format;             /* enum vmh_disk_format of the data */
  const char *path;            /* FILE, BLOCK; NFS: path inside the export */
  const char *pool;            /* RBD pool */
  const char *image;           /* RBD image */
  const char *const *monitors; /* RBD monitors "host:port" */
  uint32_t n_monitors;
  const char *auth_user; /* RBD (cephx) / iSCSI (CHAP) user */
  /* RBD key / iSCSI CHAP secret.  Only the hypervisor plugin that attaches
   * the disk may use it (hand it to its backend, e.g. a libvirt secret) and
   * keep it, as long as the VM is defined.  Nobody logs it or writes it to a
   * file: the core keeps it in memory only, and front-ends show only
   * whether there is one. */
  const char *auth_secret;
  const char *portal;      /* iSCSI "host:port" */
  const char *iqn;         /* iSCSI target IQN */
  uint32_t lun;            /* iSCSI LUN */
  const char *server;      /* NFS server */
  const char *export_path; /* NFS export */
};

enum vmh_disk_bus {
  VMH_BUS_VIRTIO = 0,
  VMH_BUS_SCSI = 1,
  VMH_BUS_SATA = 2,
};

/* A disk of a VM.  In a create request the core fills `source` after the
 * storage plugin has made (or looked up) the volume. */
struct vmh_disk {
  uint32_t struct_size;
  const char *name;       /* device name in the VM, e.g. "vda" */
  const char *pool;       /* storage instance; NULL: the first */
  const char *volume;     /* volume name; NULL: the core names it */
  uint64_t size;          /* bytes, to create a new volume; 0: use existing */
  uint32_t format;        /* enum vmh_disk_format, for a new volume */
  uint32_t bus;           /* enum vmh_disk_bus */
  const char *base_image; /* clone from this cached image (copy-on-write) */
  uint32_t readonly;      /* 0 or 1 */
  uint32_t boot_order;    /* 0: not a boot device */
  const struct vmh_disk_source *source; /* resolved by the core */
};

/* ---- Networks ---------------------------------------------------------- */

enum vmh_binding_type {
  VMH_BINDING_NONE = 0,
  VMH_BINDING_BRIDGE = 1, /* attach to Linux bridge `bridge` */
  VMH_BINDING_OVS = 2,    /* OVS bridge `bridge`, port `port`, iface-id */
  VMH_BINDING_TAP = 3,    /* existing tap device `tap` */
};

/* What a network plugin hands back for one NIC, and what the hypervisor
 * attaches the NIC to. */
struct vmh_nic_binding {
  uint32_t struct_size;
  uint32_t type;            /* enum vmh_binding_type */
  const char *bridge;       /* BRIDGE, OVS */
  const char *port;         /* OVS port name */
  const char *interface_id; /* OVS external_ids:iface-id */
  const char *tap;          /* TAP device name */
  const char *mac;          /* "52:54:00:xx:xx:xx" */
  uint32_t vlan;            /* 0: untagged, else 1..4094 */
  uint32_t mtu;             /* 0: default */
};

enum vmh_nic_model {
  VMH_NIC_VIRTIO = 0,
  VMH_NIC_E1000 = 1,
};

/* A NIC of a VM.  In a create request the core fills `binding` after the
 * network plugin has bound the port. */
struct vmh_nic {
  uint32_t struct_size;
  const char *name;    /* NIC name within the VM, e.g. "net0" */
  const char *network; /* network instance; NULL: the first */
  const char *mac;     /* NULL: the network plugin chooses */
  uint32_t vlan;       /* 0: untagged */
  uint32_t model;      /* enum vmh_nic_model */
  const struct vmh_nic_binding *binding; /* resolved by the core */
};

/* ---- VMs --------------------------------------------------------------- */

enum vmh_vm_state {
  VMH_VM_UNKNOWN = 0,
  VMH_VM_STOPPED = 1, /* defined, not running */
  VMH_VM_RUNNING = 2,
  VMH_VM_PAUSED = 3,    /* vCPUs stopped, memory resident */
  VMH_VM_SUSPENDED = 4, /* memory saved (S3/S4 or managed save) */
  VMH_VM_CRASHED = 5,
};

enum vmh_channel_type {
  VMH_CHANNEL_NONE = 0,
  VMH_CHANNEL_UNIX = 1,  /* virtio-serial port exposed as a unix socket */
  VMH_CHANNEL_VSOCK = 2, /* vsock through a unix socket: "CONNECT <port>\n" */
};

struct vmh_keyval {
  const char *key;
  const char *value;
};

/* What a VM should be.  The core assigns `id` (a UUID) and passes the spec to
 * every plugin involved; the hypervisor uses `id` as the domain's UUID. */
struct vmh_vm_spec {
  uint32_t struct_size;
  const char *id;
  const char *name;
  uint32_t vcpus;
  uint64_t memory; /* bytes */
  /* Boot: a kernel (direct boot) or the disks; firmware "bios" or "uefi". */
  const char *kernel;
  const char *initrd;
  const char *cmdline;
  const char *firmware;
  const struct vmh_disk *disks;
  uint32_t n_disks;
  const struct vmh_nic *nics;
  uint32_t n_nics;
  uint32_t guest_channel; /* 1: give the VM a guest-agent channel */
  const char *user_data;  /* cloud-init user-data, NULL: none */
  /* Two different things with near names.  meta_data is cloud-init's
   * meta-data document, handed to the guest as is (NULL: the hypervisor
   * writes instance-id and local-hostname itself).  metadata is the VM's
   * key/value labels: kept by the core, shown by the front-ends and stored
   * by the hypervisor with the domain where it can; never given to the
   * guest. */
  const char *meta_data;
  const struct vmh_keyval *metadata;
  uint32_t n_metadata;
  const char *hypervisor; /* hypervisor instance; NULL: the first */
#if VMH_ABI_TARGET_MINOR >= 1
  /* ABI 1.1: cloud-init network-config (v1 or v2 YAML), NULL: none. */
  const char *network_config;
#endif
};

/* What a hypervisor knows of a VM now. */
struct vmh_vm_info {
  uint32_t struct_size;
  const char *id;
  const char *name;
  uint32_t state; /* enum vmh_vm_state */
  uint32_t vcpus;
  uint64_t memory;        /* bytes configured */
  uint64_t memory_used;   /* bytes in use by the guest, 0: unknown */
  uint64_t cpu_time_ns;   /* total vCPU time */
  uint64_t uptime_s;      /* since the last start, 0 when not running */
  const char *const *ips; /* addresses the guest reports */
  uint32_t n_ips;
  uint32_t channel_type;    /* enum vmh_channel_type */
  const char *channel_path; /* unix socket of the guest channel */
  uint32_t channel_port;    /* vsock port, for VMH_CHANNEL_VSOCK */
#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2: I/O since the VM last started, summed over its disks and NICs
   * (0: unknown or none). */
  uint64_t disk_read_bytes;
  uint64_t disk_write_bytes;
  uint64_t net_rx_bytes;
  uint64_t net_tx_bytes;
#endif
};

struct vmh_snapshot_info {
  uint32_t struct_size;
  const char *id;
  const char *name;
  const char *parent; /* parent snapshot id, NULL: none */
  int64_t created;    /* seconds since the epoch */
  uint32_t vm_state;  /* enum vmh_vm_state at snapshot time */
  uint32_t current;   /* 1: the VM runs from this snapshot */
};

enum vmh_console_type {
  VMH_CONSOLE_NONE = 0,
  VMH_CONSOLE_VNC = 1,
  VMH_CONSOLE_SPICE = 2,
  VMH_CONSOLE_SERIAL = 3, /* pty or unix socket at `path` */
};

struct vmh_console_info {
  uint32_t struct_size;
  uint32_t type; /* enum vmh_console_type */
  const char *host;
  uint32_t port;
  const char *path;
  const char *password;
};

/* ---- Storage ----------------------------------------------------------- */

struct vmh_pool_info {
  uint32_t struct_size;
  const char *name;    /* instance name (filled by the core) */
  const char *type;    /* plugin name (filled by the core) */
  uint64_t capacity;   /* bytes */
  uint64_t allocation; /* bytes used */
  uint64_t available;  /* bytes volumes may still use */
  uint32_t n_volumes;
  uint32_t default_format; /* enum vmh_disk_format */
#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2: one human line on the pool's condition when it is not simply
   * fine, e.g. "target iqn.2024-01.example:a refused our login (CHAP)";
   * NULL: nothing to say. */
  const char *message;
#endif
};

struct vmh_volume_spec {
  uint32_t struct_size;
  const char *name;
  uint64_t size;          /* bytes; with base_image, 0 means the base's size */
  uint32_t format;        /* enum vmh_disk_format */
  const char *base_image; /* copy-on-write clone of this cached image */
};

struct vmh_volume_info {
  uint32_t struct_size;
  const char *name;
  uint64_t capacity;   /* virtual size, bytes */
  uint64_t allocation; /* bytes used on the backend */
  uint32_t format;     /* enum vmh_disk_format */
  const char *backing; /* base image, NULL: none */
#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2: a URL saying where the volume lives, for people and
   * inventories (never parsed by the core, never a secret: no user, key or
   * password in it), e.g. file:///var/lib/vmhost/pool0/vol1,
   * iscsi://192.0.2.1:3260/iqn.2024-01.example:a/1, rbd:pool/image,
   * nfs://server/export/path.  NULL: the plugin does not say. */
  const char *location;
#endif
};

struct vmh_image_spec {
  uint32_t struct_size;
  const char *name;
  const char *url;    /* file://, http://, https:// */
  const char *sha256; /* 64 hex digits; required */
};

struct vmh_image_info {
  uint32_t struct_size;
  const char *name;
  uint64_t size;
  const char *sha256;
  uint32_t n_users; /* volumes backed by it */
};

/* ---- Networks ---------------------------------------------------------- */

struct vmh_network_info {
  uint32_t struct_size;
  const char *name; /* instance name (filled by the core) */
  const char *type; /* plugin name (filled by the core) */
  const char *bridge;
  const char *cidr; /* e.g. "10.0.0.0/24"; NULL: not routed by us */
  const char *gateway;
  uint32_t mtu;
  uint32_t n_ports;
  uint32_t up; /* 0 or 1 */
};

/* One NIC to bind: the core passes the VM id and the NIC as requested. */
struct vmh_port_request {
  uint32_t struct_size;
  const char *vm_id;
  const char *vm_name;
  const char *nic_name; /* unique within the VM */
  const char *mac;      /* NULL: the plugin chooses */
  uint32_t vlan;
};

/* ---- Host -------------------------------------------------------------- */

struct vmh_host_info {
  uint32_t struct_size;
  const char *hostname;
  const char *os_name;
  const char *os_version;
  const char *kernel;
  const char *arch;
  const char *cpu_model;
  uint32_t cpu_sockets;
  uint32_t cpu_cores;   /* per socket */
  uint32_t cpu_threads; /* logical CPUs in all */
  uint64_t memory_total;
  uint64_t memory_available;
  uint64_t uptime_s;
  uint32_t n_vms;
};

/* ---- Events ------------------------------------------------------------ */

enum vmh_event_type {
  VMH_EVENT_VM_STATE = 1,   /* vm_id, state, reason */
  VMH_EVENT_VM_CREATED = 2, /* vm_id */
  VMH_EVENT_VM_DELETED = 3, /* vm_id */
  VMH_EVENT_OPERATION = 4,  /* an operation ended: operation, code, message */
  VMH_EVENT_PROGRESS = 5,   /* object, done, total (e.g. an image download) */
  VMH_EVENT_PLUGIN = 6,     /* health changed, or a reason in storage.h */
};

struct vmh_event {
  uint32_t struct_size;
  uint32_t type;      /* enum vmh_event_type */
  int64_t time_us;    /* microseconds since the epoch; 0: the core sets it */
  const char *source; /* instance name (set by the core) */
  const char *vm_id;
  uint32_t state; /* enum vmh_vm_state, for VM_STATE */
  const char *reason;
  const char *operation;
  int32_t code; /* enum vmh_error, for OPERATION */
  const char *message;
  const char *object; /* for PROGRESS */
  uint64_t done;
  uint64_t total;
};

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_TYPES_H */
