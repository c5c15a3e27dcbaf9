/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI — the core's services, as front-ends call them.
 *
 * Every operation is asynchronous.  The front-end passes a struct vmh_reply;
 * the core runs the operation on its worker pool (which enforces the plugins'
 * thread models and the per-VM ordering), calls the reply's visitors with the
 * results, then calls done() exactly once.  That happens on a worker thread,
 * or inline before the call returns (answers served from memory, and
 * refusals such as unknown flags).  Callbacks must not block: a front-end
 * copies what it needs and wakes its own I/O loop.
 *
 * Arguments are copied before the call returns.  The vmh_reply struct and
 * its opaque pointer must stay valid until done() has been called.  What a
 * visitor receives is valid only during the call: copy what you keep.
 *
 * Flags: each operation has its own flag namespace (the bits below say
 * which operations take them); an unknown bit is refused with VMH_EINVAL.
 */
#ifndef VMHOST_CORE_H
#define VMHOST_CORE_H

#include <vmhost/common.h>
#include <vmhost/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum vmh_vm_status {
  VMH_STATUS_CREATING = 1, /* orchestration in progress */
  VMH_STATUS_READY = 2,    /* exists; see info.state */
  VMH_STATUS_FAILED = 3,   /* a step failed and could not be undone */
  VMH_STATUS_DELETING = 4,
  VMH_STATUS_MISSING = 5, /* the hypervisor no longer knows it */
};

/* A VM as the core records it. */
struct vmh_vm_record {
  uint32_t struct_size;
  const struct vmh_vm_spec *spec; /* with disks' and NICs' placements */
  const struct vmh_vm_info *info; /* last known state */
  uint32_t status;                /* enum vmh_vm_status */
  int64_t created;                /* seconds since the epoch */
  int64_t updated_us;             /* when info was last refreshed */
  const char *error;              /* last failure, NULL: none */
#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2: the VM's guest agent as the guest front-end last told the
   * core (enum vmh_agent_state; the agent's version, NULL: unknown). */
  uint32_t agent_state;
  const char *agent_version;
  /* ABI 1.2.  Changes whenever anything of this record may have changed
   * (it never goes back): with the id, a key under which a front-end may
   * keep its encoding of the record and use it again while it stays. */
  uint64_t generation;
  /* ABI 1.2.  When the VM was created, in microseconds since the epoch:
   * with the id, its place in vm_query's order. */
  int64_t created_us;
#endif
};

#if VMH_ABI_TARGET_MINOR >= 2
/* ABI 1.2.  Which VMs vm_query answers, and from where.  Records come in a
 * stable order, by creation (`created_us`, then id); a page resumes after the
 * last record of the page before it, so paging through is complete and
 * without duplicates for VMs that exist throughout, whatever is created
 * or deleted in between. */
struct vmh_vm_query {
  uint32_t struct_size;
  uint32_t limit; /* at most this many records; 0: all */
  /* Start after the record of this position (the `created_us` and id of
   * the last record of the previous page); after_id NULL: from the first. */
  int64_t after_created_us;
  const char *after_id;
  /* Only VMs in these states: bits VMH_VM_STATE_BIT(state); 0: any. */
  uint32_t states;
  /* Only VMs whose metadata (labels) has every one of these: key = value;
   * a NULL value: the key with any value. */
  const struct vmh_keyval *labels;
  uint32_t n_labels;
  /* Only VMs that match none of these: the key is not there or has another
   * value (key != value); a NULL value: the key is not there. */
  const struct vmh_keyval *labels_not;
  uint32_t n_labels_not;
};
#define VMH_VM_STATE_BIT(s) (UINT32_C(1) << (s))

/* ABI 1.2.  What subscribe_events delivers.  The core keeps the last
 * daemon.event_history events in memory. */
struct vmh_event_filter {
  uint32_t struct_size;
  /* An event id (struct vmh_event.id): first the kept events after it, then
   * the live ones, with none lost or repeated in between.  An id of
   * another run, older than the history or not issued yet: a
   * VMH_EVENT_RESET first.  NULL: live events only. */
  const char *since;
  /* A VM id or name: only the events about that VM (vm_id or vm_name
   * equal); NULL: every event. */
  const char *vm;
  /* Only these types: bits VMH_EVENT_TYPE_BIT(type); 0: every type. */
  uint32_t types;
};
#define VMH_EVENT_TYPE_BIT(t) (UINT32_C(1) << (t))
#endif

enum vmh_check_status {
  VMH_CHECK_OK = 0,
  VMH_CHECK_DEGRADED = 1,
  VMH_CHECK_FAILED = 2,
};

/* One health check: an instance (or "core"). */
struct vmh_health_check {
  uint32_t struct_size;
  const char *name;
  const char *kind; /* "hypervisor", "storage", "network", "frontend" */
  uint32_t status;  /* enum vmh_check_status */
  const char *message;
};

struct vmh_plugin_info {
  uint32_t struct_size;
  const char *name;
  const char *kind;
  const char *version;
  const char *description;
  const char *file;
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t thread_model; /* enum vmh_thread_model */
  const char *const *instances;
  uint32_t n_instances;
  const char *const *ops; /* names of the operations it has */
  uint32_t n_ops;
};

#if VMH_ABI_TARGET_MINOR >= 2
/* ABI 1.2.  A long operation: every call that changes something (VM
 * create, delete, actions, snapshots, disks, volumes, images) runs as one,
 * kept in memory for a bounded time after it ends (daemon.
 * operations_retention, daemon.operations_max). */
enum vmh_op_status {
  VMH_OP_QUEUED = 1,  /* waiting for a worker (or for the VM's previous
                       * operation): cancel stops it */
  VMH_OP_RUNNING = 2, /* a backend works on it: it runs to its end */
  VMH_OP_SUCCEEDED = 3,
  VMH_OP_FAILED = 4,
  VMH_OP_CANCELLED = 5, /* never reached a backend */
};

struct vmh_operation {
  uint32_t struct_size;
  const char *id;   /* a UUID */
  const char *kind; /* "vm.create", "vm.start", "snapshot.revert",
                     * "volume.resize", "image.import" … */
  uint32_t status;  /* enum vmh_op_status */
  /* What it works on; NULL where it does not apply. */
  const char *vm_id, *vm_name;
  const char *pool, *object; /* a volume or image of pool, a snapshot */
  int32_t progress;          /* percent 0..100; -1: unknown */
  uint64_t done, total;      /* steps or bytes of progress; total 0: unknown */
  const char *message;       /* what it does now (NULL: nothing said) */
  int32_t code;              /* its end: 0 or a VMH_E* code */
  const char *error;         /* why it failed or was cancelled, else NULL */
  int64_t created_us, updated_us; /* microseconds since the epoch */
  /* ABI 1.2: what a succeeded operation's synchronous call answered, by
   * reference (a whole VM record per kept operation would make the
   * registry's memory depend on user-data sizes; the reference is a GET
   * away from the object).  result_kind NULL: it answered no object (a
   * delete), or it has not succeeded.  "vm": result_id and result_name
   * are the VM's; "snapshot": the snapshot's id and name, of vm_id;
   * "volume" and "image": result_name, in pool (result_id NULL). */
  const char *result_kind;
  const char *result_id, *result_name;
};
#endif

struct vmh_reply {
  uint32_t struct_size;
  void *opaque;
  /* Result visitors: each may be NULL when the front-end does not expect
   * that kind of result.  Their return value is ignored. */
  void (*vm)(void *opaque, const struct vmh_vm_record *vm);
  void (*snapshot)(void *opaque, const struct vmh_snapshot_info *snap);
  void (*console)(void *opaque, const struct vmh_console_info *console);
  void (*pool)(void *opaque, const struct vmh_pool_info *pool);
  void (*volume)(void *opaque, const struct vmh_volume_info *vol);
  void (*image)(void *opaque, const struct vmh_image_info *img);
  void (*network)(void *opaque, const struct vmh_network_info *net);
  void (*host)(void *opaque, const struct vmh_host_info *host);
  void (*check)(void *opaque, const struct vmh_health_check *check);
  void (*plugin)(void *opaque, const struct vmh_plugin_info *plugin);
  void (*text)(void *opaque, const char *text, size_t len);
  /* Exactly once, last.  code is 0 or a VMH_E* code; message is NULL on
   * success and says what went wrong otherwise. */
  void (*done)(void *opaque, int code, const char *message);
#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2.  An operation: the answer to a call made with VMH_ASYNC, and
   * to the operation_* calls. */
  void (*operation)(void *opaque, const struct vmh_operation *op);
  /* ABI 1.2: the answer of vm_agent (before done). */
  void (*agent)(void *opaque, const struct vmh_agent_result *res);
#endif
};

/* Called for each event; must not block (queue it and return).  The event
 * is valid only during the call.  A subscriber that cannot keep up drops
 * events itself. */
typedef void (*vmh_event_fn)(void *opaque, const struct vmh_event *ev);

/* VM actions. */
enum vmh_vm_action {
  VMH_ACTION_START = 1,
  VMH_ACTION_STOP = 2,
  VMH_ACTION_REBOOT = 3,
  VMH_ACTION_PAUSE = 4,
  VMH_ACTION_RESUME = 5,
};

/* Flags, with the operations that take each. */
/* vm_get, vm_list: ask the backend, not the records. */
#define VMH_READ_LIVE (UINT32_C(1) << 0)
/* vm_create: define, do not start. */
#define VMH_CREATE_NO_START (UINT32_C(1) << 1)
/* vm_action VMH_ACTION_STOP: power off now. */
#define VMH_ACTION_FORCE (UINT32_C(1) << 2)
/* volume_resize: VMH_RESIZE_SHRINK (storage.h). */
/* ABI 1.2.  Every call that changes something: answer as soon as the work
 * is queued, with the operation (reply->operation, then done(0)); the work
 * goes on, followed through operation_get/_wait and the events.  A call
 * refused before any work (bad arguments, no such VM) still answers with
 * its error. */
#define VMH_ASYNC (UINT32_C(1) << 31)
#if VMH_ABI_TARGET_MINOR >= 2
/* snapshot_create (ABI 1.2): freeze the guest's filesystems through its
 * agent, take the snapshot, thaw (always, also when the snapshot fails).
 * Without a connected agent it is refused (VMH_ESTATE) unless
 * VMH_SNAPSHOT_QUIESCE_TRY is set too: then the snapshot is taken
 * unfrozen.  The snapshot's `quiesced` says which happened. */
#define VMH_SNAPSHOT_QUIESCE (UINT32_C(1) << 3)
#define VMH_SNAPSHOT_QUIESCE_TRY (UINT32_C(1) << 4)
/* health (ABI 1.2): liveness instead of readiness, answered inline from
 * memory: one check "workers"; done's code is 0 while the worker pool
 * takes work, VMH_ETIMEDOUT once a runnable task has waited
 * daemon.liveness_stall for a thread (every thread stuck in a backend),
 * VMH_EAGAIN when no pool runs. */
#define VMH_HEALTH_LIVENESS (UINT32_C(1) << 0)
#endif

typedef const struct vmh_reply vmh_reply_t;

#if VMH_ABI_TARGET_MINOR >= 2
/* ABI 1.2: what the host can still take (admission control).  For each
 * resource: total = host size × overcommit; available = total − reserved −
 * allocated (never below 0).  Allocated is what the VM records hold (every
 * record counts until its VM is deleted, creates in flight included). */
struct vmh_host_resources {
  uint32_t struct_size;
  uint32_t host_cpus;            /* logical CPUs of the host(s) counted */
  uint32_t cpu_overcommit_milli; /* ratio × 1000 */
  uint32_t memory_overcommit_milli;
  uint64_t vcpus_total;
  uint64_t vcpus_reserved;
  uint64_t vcpus_allocated;
  uint64_t vcpus_available;
  uint64_t host_memory; /* bytes */
  uint64_t memory_total;
  uint64_t memory_reserved;
  uint64_t memory_allocated;
  uint64_t memory_available;
  uint32_t n_vms;
  uint32_t n_pools;
  /* Sums over the pools below. */
  uint64_t disk_total;
  uint64_t disk_reserved;
  uint64_t disk_allocated;
  uint64_t disk_available;
};

/* One storage pool's space as admission sees it: total = the pool's
 * capacity, allocated = capacity − what the pool says is available, plus
 * volumes being created now; available = total − reserved − allocated. */
struct vmh_pool_resources {
  uint32_t struct_size;
  const char *name;
  uint64_t total;
  uint64_t reserved;
  uint64_t allocated;
  uint64_t available;
  int64_t sampled_us; /* when the pool was last asked, 0: never */
};

typedef void (*vmh_pool_resources_fn)(void *opaque,
                                      const struct vmh_pool_resources *pool);

/* ABI 1.2: host telemetry, sampled by the core on one timer
 * (daemon.telemetry_interval) and kept for a while in memory. */
struct vmh_fs_usage {
  uint32_t struct_size;
  const char *name; /* "state" (the state directory), or a pool's name */
  const char *path; /* the state directory; NULL for a pool */
  uint64_t total;   /* bytes */
  uint64_t used;
  uint64_t available;
};

struct vmh_nic_rate {
  uint32_t struct_size;
  const char *name;  /* the host interface */
  uint64_t rx_bytes; /* counters since boot */
  uint64_t tx_bytes;
  uint64_t rx_bytes_per_s; /* over the last interval */
  uint64_t tx_bytes_per_s;
};

struct vmh_host_sample {
  uint32_t struct_size;
  int64_t time_us;             /* when it was taken, µs since the epoch */
  uint32_t interval_ms;        /* what the rates and CPU use cover */
  uint32_t cpu_usage_permille; /* all CPUs: busy / all time, ‰ */
  uint32_t n_cpus;
  const uint32_t *cpu_core_permille; /* n_cpus entries, by CPU number */
  uint32_t load1_milli;              /* load averages × 1000 */
  uint32_t load5_milli;
  uint32_t load15_milli;
  uint64_t memory_total; /* bytes */
  uint64_t memory_available;
  uint64_t memory_used; /* total − available */
  const struct vmh_fs_usage *filesystems;
  uint32_t n_filesystems;
  const struct vmh_nic_rate *nics;
  uint32_t n_nics;
};

typedef void (*vmh_host_sample_fn)(void *opaque,
                                   const struct vmh_host_sample *sample);

/* host_samples: only the newest sample. */
#define VMH_SAMPLES_LATEST (UINT32_C(1) << 0)
#endif

/* A VM is addressed by its id or its name; a pool, volume, image or network
 * by its name. */
struct vmh_core {
  uint32_t struct_size;

  /* VMs: get/list answer from memory unless VMH_READ_LIVE. */
  void (*vm_list)(vmh_reply_t *r, uint32_t flags);
  void (*vm_get)(const char *vm, vmh_reply_t *r, uint32_t flags);
  /* Create: volumes → NIC bindings → define (+ start); a failing step undoes
   * the steps done, in reverse.  Replies with the new record. */
  void (*vm_create)(const struct vmh_vm_spec *spec, vmh_reply_t *r,
                    uint32_t flags);
  /* Delete: power off, undefine, unbind NICs, delete the volumes it created;
   * parts already gone are not an error. */
  void (*vm_delete)(const char *vm, vmh_reply_t *r, uint32_t flags);
  void (*vm_action)(const char *vm, uint32_t action, uint32_t timeout_s,
                    vmh_reply_t *r, uint32_t flags);
  void (*vm_console)(const char *vm, vmh_reply_t *r, uint32_t flags);
  void (*snapshot_list)(const char *vm, vmh_reply_t *r, uint32_t flags);
  void (*snapshot_create)(const char *vm, const char *name, vmh_reply_t *r,
                          uint32_t flags);
  void (*snapshot_revert)(const char *vm, const char *snapshot_id,
                          vmh_reply_t *r, uint32_t flags);
  void (*snapshot_delete)(const char *vm, const char *snapshot_id,
                          vmh_reply_t *r, uint32_t flags);
  /* Hot-plug: the disk's volume is created (or looked up) first.  Detach
   * takes the disk out of the VM and undoes a local mapping of its volume;
   * the volume itself stays in its pool (detaching never destroys data),
   * to be deleted through volume_delete once no VM uses it. */
  void (*disk_attach)(const char *vm, const struct vmh_disk *disk,
                      vmh_reply_t *r, uint32_t flags);
  void (*disk_detach)(const char *vm, const char *disk_name, vmh_reply_t *r,
                      uint32_t flags);

  /* Storage. */
  void (*pool_list)(vmh_reply_t *r, uint32_t flags);
  void (*pool_get)(const char *pool, vmh_reply_t *r, uint32_t flags);
  void (*volume_list)(const char *pool, vmh_reply_t *r, uint32_t flags);
  void (*volume_get)(const char *pool, const char *vol, vmh_reply_t *r,
                     uint32_t flags);
  void (*volume_create)(const char *pool, const struct vmh_volume_spec *spec,
                        vmh_reply_t *r, uint32_t flags);
  void (*volume_resize)(const char *pool, const char *vol, uint64_t size,
                        vmh_reply_t *r, uint32_t flags);
  /* Refused with VMH_EBUSY while a VM uses the volume. */
  void (*volume_delete)(const char *pool, const char *vol, vmh_reply_t *r,
                        uint32_t flags);
  void (*image_list)(const char *pool, vmh_reply_t *r, uint32_t flags);
  void (*image_import)(const char *pool, const struct vmh_image_spec *spec,
                       vmh_reply_t *r, uint32_t flags);
  void (*image_delete)(const char *pool, const char *image, vmh_reply_t *r,
                       uint32_t flags);

  /* Networks. */
  void (*network_list)(vmh_reply_t *r, uint32_t flags);
  void (*network_get)(const char *net, vmh_reply_t *r, uint32_t flags);

  /* Host and daemon. */
  void (*host_info)(vmh_reply_t *r, uint32_t flags);
  /* One check per instance plus "core"; done's code is readiness: 0 when
   * the node can serve (not starting or draining, no instance failed; an
   * optional instance not serving only degrades it).  While the worker
   * pool is wedged (VMH_HEALTH_LIVENESS) it answers at once, not ready,
   * with the one failed check "workers". */
  void (*health)(vmh_reply_t *r, uint32_t flags);
  void (*plugin_list)(vmh_reply_t *r, uint32_t flags);
  /* The Prometheus text exposition, through reply->text. */
  void (*metrics)(vmh_reply_t *r, uint32_t flags);

  /* Events: fn is called from core threads until unsubscribe() returns.
   * Returns 0 and sets *ret_id, or a VMH_E* code (message: error_message,
   * ABI 1.2). */
  int (*subscribe)(vmh_event_fn fn, void *opaque, uint64_t *ret_id,
                   uint32_t flags);
  void (*unsubscribe)(uint64_t id);

  /* The status codes a VMH_E* code maps to (one table, in the core). */
  uint32_t (*http_status)(int code);
  uint32_t (*grpc_status)(int code);
  /* The stable lower-case name of a code, as in the table beside enum
   * vmh_error: "invalid_argument", "not_found", "busy" …  Unknown codes
   * name as VMH_EINTERNAL ("internal"). */
  const char *(*error_name)(int code);
  /* 1 once every instance is open and the daemon serves; 0 while starting
   * or draining. */
  int (*ready)(void);

#if VMH_ABI_TARGET_MINOR >= 1
  /* ABI 1.1.  A number that changes whenever any VM record may have
   * changed.  Two vm_list answers (without VMH_READ_LIVE) begun at the same
   * number hold the same records, so a front-end may keep an answer it
   * encoded and serve it again while the number stays.  Cheap, any
   * thread. */
  uint64_t (*vm_generation)(void);
#endif

#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2.  The message of the last core call on this thread that failed
   * without a reply (subscribe), "" when there is none.  Thread-local; valid
   * until the next core call on this thread. */
  const char *(*error_message)(void);
  /* ABI 1.2.  The status documents the instances of plugin `plugin`
   * published (host->status_set): one reply->text per instance that has
   * one (a JSON object), in config order.  VMH_ENOENT when none has.
   * From memory: completes inline.  So a front-end serves another
   * plugin's state without knowing that plugin. */
  void (*plugin_status)(const char *plugin, vmh_reply_t *r, uint32_t flags);

  /* ABI 1.2.  Operations (struct vmh_operation), through reply->operation.
   * list: newest first, at most limit (0: all kept); vm (id or name) and
   * status (enum vmh_op_status) filter when not NULL / 0. */
  void (*operation_list)(const char *vm, uint32_t status, uint32_t limit,
                         vmh_reply_t *r, uint32_t flags);
  void (*operation_get)(const char *id, vmh_reply_t *r, uint32_t flags);
  /* Answers once the operation has ended, or when timeout_ms has passed
   * (with the operation as it is then); never blocks the caller. */
  void (*operation_wait)(const char *id, uint32_t timeout_ms, vmh_reply_t *r,
                         uint32_t flags);
  /* A queued operation is cancelled (it never reaches a backend) and
   * answered with; a running or ended one is refused with VMH_ESTATE. */
  void (*operation_cancel)(const char *id, vmh_reply_t *r, uint32_t flags);
  /* The caller behind r has gone (the client reset its stream, closed its
   * connection, or its deadline passed).  A call r waits on that is still
   * queued is cancelled before it reaches a backend; a running one goes on
   * to its end as a visible operation; an operation_wait stops waiting.
   * Either way r's done() has been called when this returns (with
   * VMH_ECANCELED, unless it had answered already).  For an r the core does
   * not track (a read), nothing changes: its done() comes as usual.  Any
   * thread. */
  void (*caller_gone)(vmh_reply_t *r);

  /* ABI 1.2.  Ask the agent in a VM (addressed by id or name): answers
   * through r->agent then r->done, from the guest front-end's thread.
   * VMH_ENOENT: no such VM; VMH_ESTATE: no agent connected (or no guest
   * front-end); VMH_EPERM: the agent's config refused it (its message);
   * VMH_ETIMEDOUT: no answer in time; VMH_EINVAL: a bad request or over
   * a cap of the agent.  req is copied before the call returns. */
  void (*vm_agent)(const char *vm, const struct vmh_agent_request *req,
                   vmh_reply_t *r, uint32_t flags);
  /* ABI 1.2, for the guest front-end: what became of a VM's agent (by VM
   * id), kept with the VM record (not saved) and shown in VM info.
   * Returns 0, VMH_ENOENT (no such VM) or VMH_ENOMEM.  Any thread. */
  int (*agent_status)(const char *vm_id, const struct vmh_agent_status *st,
                      uint32_t flags);
  /* ABI 1.2.  The VMs q selects, in its order (struct vmh_vm_query), from
   * memory unless VMH_READ_LIVE.  q is copied before the call returns.
   * Refused with VMH_EINVAL: a state bit outside enum vmh_vm_state, a
   * label without a key. */
  void (*vm_query)(const struct vmh_vm_query *q, vmh_reply_t *r,
                   uint32_t flags);

  /* ABI 1.2.  The host's resources as admission control counts them, from
   * memory (pools as last sampled): fills *ret (its struct_size set by the
   * caller; fields past it are left alone) and calls pool (may be NULL)
   * once per storage pool.  Cheap, any thread.  Returns 0, or VMH_EINVAL
   * for unknown flags or a NULL ret. */
  int (*host_resources)(struct vmh_host_resources *ret,
                        vmh_pool_resources_fn pool, void *opaque,
                        uint32_t flags);
  /* ABI 1.2.  The host samples kept, oldest first (VMH_SAMPLES_LATEST: the
   * newest only), from memory, each valid during its call.  Returns 0 (no
   * call when nothing was sampled yet), or VMH_EINVAL for unknown flags. */
  int (*host_samples)(vmh_host_sample_fn fn, void *opaque, uint32_t flags);

  /* ABI 1.2.  Change the labels of a VM (its spec's metadata) as a JSON
   * merge patch (RFC 7396) does: each entry with a value sets its key to
   * it, one with a NULL value removes its key (not there: nothing to do);
   * the other labels stay.  Keys set follow Kubernetes' rule (an optional
   * DNS-subdomain prefix and '/', a name of 1..63 letters, digits, '-',
   * '_', '.' beginning and ending with a letter or digit), values are
   * UTF-8 of at most 64 KiB, a VM has at most 128 labels, a key comes once
   * in labels: else VMH_EINVAL and nothing changes.  Runs as an operation
   * ("vm.labels", ordered with the VM's others), saved before it answers
   * with the record; emits VMH_EVENT_VM_UPDATED.  labels are copied before
   * the call returns. */
  void (*vm_update_labels)(const char *vm, const struct vmh_keyval *labels,
                           uint32_t n_labels, vmh_reply_t *r, uint32_t flags);

  /* ABI 1.2.  subscribe, with a resume point and filters (f copied; NULL:
   * as subscribe).  The replay (and a RESET) is delivered to fn on the
   * calling thread before this returns; the live events follow, on core
   * threads, in id order.  VMH_EINVAL (error_message says which): since
   * not of the form RUN-SEQ, vm not a VM name or id, a type bit outside
   * enum vmh_event_type (RESET included), unknown flags. */
  int (*subscribe_events)(const struct vmh_event_filter *f, vmh_event_fn fn,
                          void *opaque, uint64_t *ret_id, uint32_t flags);
#endif
};

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_CORE_H */
