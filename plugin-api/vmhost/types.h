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
  /* ABI 1.2: reported by the core only (never by a hypervisor), while an
   * operation on the VM is queued or running (core.h, operations). */
  VMH_VM_CREATING = 6,
  VMH_VM_STARTING = 7,
  VMH_VM_STOPPING = 8,
  VMH_VM_DELETING = 9,
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
#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2, set by the core on snapshot_create: 1 when the guest's
   * filesystems were frozen by its agent while the snapshot was taken. */
  uint32_t quiesced;
#endif
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

#if VMH_ABI_TARGET_MINOR >= 2
/* ---- The guest agent (ABI 1.2) ------------------------------------------
 *
 * What vmh_core.vm_agent asks of a VM's guest agent (vmhost-agent, reached
 * by the guest front-end over the VM's channel) and what it answers. */

enum vmh_agent_state {
  VMH_AGENT_ABSENT = 0,    /* no agent has answered on the channel */
  VMH_AGENT_CONNECTED = 1, /* handshake done, answering */
  VMH_AGENT_CUT_OFF = 2,   /* went over a bound; left alone for a while */
};

enum vmh_agent_op {
  VMH_AGENT_SHOW = 1,       /* state, version, capabilities, last telemetry
                               (from the front-end's memory) */
  VMH_AGENT_PING = 2,       /* a round trip to the agent */
  VMH_AGENT_TELEMETRY = 3,  /* fresh telemetry */
  VMH_AGENT_EXEC = 4,       /* argv, timeout_ms, max_output, data = stdin */
  VMH_AGENT_FILE_READ = 5,  /* path, offset, max_bytes */
  VMH_AGENT_FILE_WRITE = 6, /* path, data, mode */
  VMH_AGENT_TIME_SYNC = 7,  /* the guest clock set from the host's */
  VMH_AGENT_FREEZE = 8,     /* timeout_ms: the agent thaws by itself after */
  VMH_AGENT_THAW = 9,
};

struct vmh_agent_request {
  uint32_t struct_size;
  uint32_t op;             /* enum vmh_agent_op */
  const char *const *argv; /* EXEC: argv[0] an absolute path */
  uint32_t argc;
  uint32_t timeout_ms; /* EXEC, FREEZE; 0: the agent's default */
  uint32_t max_output; /* EXEC: bytes of stdout and of stderr; 0: cap */
  const char *path;    /* FILE_READ, FILE_WRITE */
  uint64_t offset;     /* FILE_READ */
  uint32_t max_bytes;  /* FILE_READ; 0: the agent's cap */
  uint32_t mode;       /* FILE_WRITE permission bits; 0: 0644 */
  const uint8_t *data; /* EXEC stdin, FILE_WRITE content */
  size_t len;
};

struct vmh_agent_fs {
  uint32_t struct_size;
  const char *mountpoint;
  const char *device;
  const char *type;
  uint64_t size; /* bytes */
  uint64_t used; /* bytes */
  uint32_t read_only;
};

struct vmh_agent_nic {
  uint32_t struct_size;
  const char *name;
  const char *mac;
  const char *const *addresses; /* "192.0.2.10/24" */
  uint32_t n_addresses;
};

/* What the guest said of itself (proto/vmhost/agent/v1: Telemetry). */
struct vmh_agent_telemetry {
  uint32_t struct_size;
  int64_t time_us; /* when it came, microseconds since the epoch */
  const char *os_name;
  const char *os_version;
  const char *kernel;
  const char *hostname;
  const char *arch;
  uint64_t uptime_s;
  uint32_t cpus;
  double cpu_use; /* 0..1 */
  uint64_t memory_total;
  uint64_t memory_available;
  const struct vmh_agent_fs *filesystems;
  uint32_t n_filesystems;
  const struct vmh_agent_nic *nics;
  uint32_t n_nics;
};

/* The answer to one vmh_agent_request; the fields of its op are set. */
struct vmh_agent_result {
  uint32_t struct_size;
  uint32_t op; /* enum vmh_agent_op */
  /* SHOW */
  uint32_t state;      /* enum vmh_agent_state */
  const char *version; /* the agent's; NULL before a handshake */
  const char *const *capabilities;
  uint32_t n_capabilities;
  const char *message; /* SHOW: why cut off, NULL: nothing to say */
  /* SHOW (the last one, NULL: none yet), TELEMETRY */
  const struct vmh_agent_telemetry *telemetry;
  /* EXEC */
  int32_t exit_status; /* -1 when signalled or timed out */
  int32_t signal;
  uint32_t timed_out;
  const uint8_t *out; /* stdout */
  size_t out_len;
  const uint8_t *err; /* stderr */
  size_t err_len;
  uint32_t out_truncated;
  uint32_t err_truncated;
  /* FILE_READ: data, len = data's length; size the file's; eof */
  const uint8_t *data;
  size_t len;
  uint64_t size; /* FILE_READ, FILE_WRITE: the file's size */
  uint32_t eof;
  /* TIME_SYNC: host time minus the guest's before setting */
  int64_t offset_ns;
  /* FREEZE: the mount points frozen; THAW: n_frozen = how many thawed */
  const char *const *frozen;
  uint32_t n_frozen;
  /* SHOW: a thaw could not be delivered (the channel dropped, or the agent
   * was not connected, after a freeze); it is sent when the agent
   * connects again.  1 until the agent has answered it. */
  uint32_t thaw_pending;
};

/* What the core keeps of a VM's agent (vmh_core.agent_status). */
struct vmh_agent_status {
  uint32_t struct_size;
  uint32_t state;      /* enum vmh_agent_state */
  const char *version; /* NULL: unknown */
  /* The addresses of the last telemetry (without prefix length): they
   * fill the VM's info.ips when its hypervisor reports none. */
  const char *const *ips;
  uint32_t n_ips;
};
#endif

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
  /* ABI 1.2: operations (core.h).  operation: its id; object: its kind;
   * reason: its status; vm_id: its VM; done/total: its progress (total 0:
   * unknown); message: what it does now, or why it failed; code: 0 or
   * the VMH_E* it ended with.  VMH_EVENT_OPERATION above is its end. */
  VMH_EVENT_OPERATION_CREATED = 7,
  VMH_EVENT_OPERATION_UPDATED = 8, /* running, or progress */
  /* ABI 1.2: a VM's record changed without a change of state: vm_id;
   * object: what changed ("labels"). */
  VMH_EVENT_VM_UPDATED = 9,
  /* ABI 1.2, never on the bus: the first event to one subscriber of
   * subscribe_events (core.h) whose resume point cannot be replayed (an id
   * from another run of the daemon, or older than the history kept, or not
   * issued yet).  message says which; id is the newest event's, the point
   * to resume from once the client has read again what it follows.  Every
   * event after it is live. */
  VMH_EVENT_RESET = 10,
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
#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2, set by the core (an emitter's values are ignored): "RUN-SEQ",
   * RUN this run of the daemon (8 hex digits), SEQ its number, 1, 2, … in
   * the order subscribers see the events.  What SSE sends as `id:`. */
  const char *id;
  uint64_t seq;
  /* ABI 1.2: the name of the VM vm_id names (the core looks it up when the
   * emitter leaves it NULL). */
  const char *vm_name;
  /* ABI 1.2, for the OPERATION* events: the storage instance and the object
   * in it (volume, image) or in the VM (snapshot) the operation acts on;
   * NULL when it has none. */
  const char *pool;
  const char *target;
#endif
};

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_TYPES_H */
