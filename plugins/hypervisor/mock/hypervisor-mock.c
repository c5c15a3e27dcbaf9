/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hypervisor-mock — an in-memory hypervisor for test harnesses.
 *
 * VMs live in memory (and, with persist: true, in a state file that survives
 * kill -9); every operation of struct vmh_hypervisor_ops is implemented with
 * the real state machine, limits and error codes, so that the core and API
 * clients can be tested without QEMU.  Latency and faults are injected
 * through the config (see mockcommon.h and etc/plugins/mock.yaml). */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mockcommon.h"
#include "strmap.h"
#include "vmrecord.h"

enum {
  OP_OPEN,
  OP_HEALTH,
  OP_CAPS,
  OP_DEFINE,
  OP_UNDEFINE,
  OP_START,
  OP_STOP,
  OP_REBOOT,
  OP_PAUSE,
  OP_RESUME,
  OP_GET,
  OP_LIST,
  OP_CONSOLE,
  OP_SNAPSHOT_CREATE,
  OP_SNAPSHOT_LIST,
  OP_SNAPSHOT_REVERT,
  OP_SNAPSHOT_DELETE,
  OP_ATTACH_DISK,
  OP_DETACH_DISK,
};

static const char *const op_names[] = {
    "open",
    "health",
    "caps",
    "define",
    "undefine",
    "start",
    "stop",
    "reboot",
    "pause",
    "resume",
    "get",
    "list",
    "console",
    "snapshot_create",
    "snapshot_list",
    "snapshot_revert",
    "snapshot_delete",
    "attach_disk",
    "detach_disk",
    NULL,
};

static const char *const state_names[] = {
    [VMH_VM_UNKNOWN] = "unknown",     [VMH_VM_STOPPED] = "stopped",
    [VMH_VM_RUNNING] = "running",     [VMH_VM_PAUSED] = "paused",
    [VMH_VM_SUSPENDED] = "suspended", [VMH_VM_CRASHED] = "crashed",
};
#define STATE_MAX VMH_VM_CRASHED

#define ALL_SOURCES                                                     \
  (VMH_SOURCE_BIT(VMH_SOURCE_FILE) | VMH_SOURCE_BIT(VMH_SOURCE_BLOCK) | \
   VMH_SOURCE_BIT(VMH_SOURCE_RBD) | VMH_SOURCE_BIT(VMH_SOURCE_ISCSI) |  \
   VMH_SOURCE_BIT(VMH_SOURCE_NFS))
#define ALL_BINDINGS                                                        \
  ((UINT32_C(1) << VMH_BINDING_BRIDGE) | (UINT32_C(1) << VMH_BINDING_OVS) | \
   (UINT32_C(1) << VMH_BINDING_TAP))

struct snap {
  char *id, *name;
  struct snap *parent; /* NULL: none */
  int64_t created;
  uint32_t vm_state;
  int moved; /* scratch: reparented by a delete not yet committed */
};

/* What a state change touches, so an operation can undo it when the state
 * file cannot be written.  Times are CLOCK_MONOTONIC nanoseconds. */
struct run {
  uint32_t state;
  uint64_t start_ns; /* last start (uptime) */
  uint64_t seg_ns;   /* start of the current running stretch */
  uint64_t run_ns;   /* running time before seg_ns (cpu time) */
};

/* A VM: as defined (the spec with its disks' sources and NICs' bindings,
 * kept as the core keeps its records) and the mock's own state. */
struct dom {
  struct vm *rec;
  uint64_t seq;      /* 1, 2, … in define order: gives the IP */
  uint64_t snap_seq; /* last snapshot number: ids are "snap-<n>" */
  struct snap *current;
  struct run run;
  struct ptrvec snaps;
};

struct hv {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  struct mock_common *mc;
  int64_t max_vcpus, max_vms, host_cpus;
  int64_t vsock_port; /* 0: channels are unix sockets; else vsock, this port */
  uint64_t max_memory, host_memory;
  struct ptrvec vms;            /* of struct dom *, in define order */
  struct strmap by_id, by_name; /* the same VMs (vms_add, vms_drop) */
  uint64_t next_seq;            /* last seq given */
};

/* ---- Helpers ------------------------------------------------------------- */

static uint64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *state_name(uint32_t s) {
  return s <= STATE_MAX ? state_names[s] : "unknown";
}

static int is_up(uint32_t s) {
  return s == VMH_VM_RUNNING || s == VMH_VM_PAUSED;
}

static void free_snap(struct snap *s) {
  if (s == NULL)
    return;
  free(s->id);
  free(s->name);
  free(s);
}

static void free_vm(struct dom *vm) {
  size_t i;

  if (vm == NULL)
    return;
  for (i = 0; i < vm->snaps.n; i++)
    free_snap(vm->snaps.v[i]);
  ptrvec_free(&vm->snaps);
  vm_free(vm->rec);
  free(vm);
}

static struct dom *find_vm(struct hv *h, const char *id) {
  return strmap_get(&h->by_id, id);
}

static struct dom *find_vm_by_name(struct hv *h, const char *name) {
  return strmap_get(&h->by_name, name);
}

/* Append vm to the list and its indexes (the caller checked that its id
 * and name are free): all or nothing. */
static int vms_add(struct hv *h, struct dom *vm) {
  int rc;

  if (strmap_reserve(&h->by_id, h->vms.n + 1) < 0 ||
      strmap_reserve(&h->by_name, h->vms.n + 1) < 0)
    return vmh_fail(h->host, VMH_ENOMEM, "out of memory");
  if ((rc = mock_vec_push(h->host, &h->vms, vm)) < 0)
    return rc;
  strmap_put(&h->by_id, vm->rec->id, vm);
  strmap_put(&h->by_name, vm->rec->name, vm);
  return 0;
}

/* Take the VM at idx out of the list and its indexes; returns it. */
static struct dom *vms_drop(struct hv *h, size_t idx) {
  struct dom *vm = ptrvec_remove(&h->vms, idx);

  strmap_remove(&h->by_id, vm->rec->id);
  strmap_remove(&h->by_name, vm->rec->name);
  return vm;
}

static size_t vm_index(const struct hv *h, const struct dom *vm) {
  size_t i = 0;

  while (h->vms.v[i] != vm)
    i++;
  return i;
}

static struct vm_disk *find_disk(struct dom *vm, const char *name) {
  size_t i;

  for (i = 0; i < vm->rec->n_disks; i++)
    if (strcmp(vm->rec->disks[i].name, name) == 0)
      return &vm->rec->disks[i];
  return NULL;
}

static struct snap *find_snap(struct dom *vm, const char *id, size_t *ret_idx) {
  size_t i;

  for (i = 0; i < vm->snaps.n; i++) {
    struct snap *s = vm->snaps.v[i];
    if (strcmp(s->id, id) == 0) {
      if (ret_idx)
        *ret_idx = i;
      return s;
    }
  }
  return NULL;
}

static int no_vm(struct hv *h, const char *id) {
  return vmh_fail(h->host, VMH_ENOENT, "mock hypervisor %s has no VM %s",
                  mock_common_name(h->mc), id);
}

static int bad_state(struct hv *h, const struct dom *vm, const char *verb) {
  return vmh_fail(h->host, VMH_ESTATE, "VM %s is %s: cannot %s", vm->rec->name,
                  state_name(vm->run.state), verb);
}

/* Move to state `to`, keeping uptime and cpu-time bookkeeping right. */
static void set_state(struct dom *vm, uint32_t to, uint64_t now) {
  struct run *r = &vm->run;

  if (r->state == VMH_VM_RUNNING)
    r->run_ns += now - r->seg_ns;
  if (!is_up(r->state) && is_up(to)) {
    r->start_ns = now;
    r->run_ns = 0;
  }
  if (to == VMH_VM_RUNNING)
    r->seg_ns = now;
  if (!is_up(to))
    r->start_ns = r->seg_ns = r->run_ns = 0;
  r->state = to;
}

/* Events are queued under the lock and emitted after it: the core's emit()
 * may do anything, including calling us back. */
struct pending {
  unsigned n;
  struct {
    char vm_id[MOCK_ID_MAX + 1];
    uint32_t state;
    const char *reason;
  } ev[3];
};

static void queue_event(struct pending *p, const char *vm_id, uint32_t state,
                        const char *reason) {
  if (p->n == sizeof p->ev / sizeof p->ev[0])
    return;
  snprintf(p->ev[p->n].vm_id, sizeof p->ev[p->n].vm_id, "%s", vm_id);
  p->ev[p->n].state = state;
  p->ev[p->n].reason = reason;
  p->n++;
}

static void emit_pending(struct hv *h, const struct pending *p) {
  unsigned i;

  for (i = 0; i < p->n; i++) {
    struct vmh_event ev = {0};
    ev.struct_size = sizeof ev;
    ev.type = VMH_EVENT_VM_STATE;
    ev.vm_id = p->ev[i].vm_id;
    ev.state = p->ev[i].state;
    ev.reason = p->ev[i].reason;
    h->host->emit(h->inst, &ev);
    h->host->log(h->inst, VMH_LOG_DEBUG, "VM %s is now %s (%s)", p->ev[i].vm_id,
                 state_name(p->ev[i].state), p->ev[i].reason);
  }
}

/* ---- State file ----------------------------------------------------------
 *
 * mockcommon's records: "meta" (next_seq), then per VM one "vm" record
 * whose "record" is the VM as the core's state files hold it (vmrecord.h's
 * JSON) beside the mock's own fields, followed by its "snap" records. */

static int hv_dump(void *opaque, struct mock_out *out) {
  struct hv *h = opaque;
  size_t i, j;

  mock_out_rec(out, "meta");
  mock_out_u64(out, "next_seq", h->next_seq);
  for (i = 0; i < h->vms.n; i++) {
    const struct dom *vm = h->vms.v[i];
    json_t *o = vm_to_json(vm->rec);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (text == NULL)
      return vmh_fail(h->host, VMH_ENOMEM, "out of memory");
    mock_out_rec(out, "vm");
    mock_out_str(out, "record", text);
    free(text);
    mock_out_u64(out, "state", vm->run.state);
    mock_out_u64(out, "seq", vm->seq);
    mock_out_u64(out, "snap_seq", vm->snap_seq);
    mock_out_u64(out, "start_ns", vm->run.start_ns);
    mock_out_u64(out, "seg_ns", vm->run.seg_ns);
    mock_out_u64(out, "run_ns", vm->run.run_ns);
    /* Snapshots in creation order: a parent is always written before its
     * children, which the loader relies on. */
    for (j = 0; j < vm->snaps.n; j++) {
      const struct snap *s = vm->snaps.v[j];
      mock_out_rec(out, "snap");
      mock_out_str(out, "id", s->id);
      mock_out_str(out, "name", s->name);
      mock_out_str(out, "parent", s->parent ? s->parent->id : NULL);
      mock_out_i64(out, "created", s->created);
      mock_out_u64(out, "state", s->vm_state);
      mock_out_u64(out, "current", vm->current == s);
    }
  }
  return 0;
}

static int save(struct hv *h) {
  return mock_common_save(h->mc, hv_dump, h);
}

/* Copy a record's string field; `required` as in mock_rec_str. */
static int rec_dup(struct hv *h, struct mock_rec *rec, const char *key,
                   int required, char **ret) {
  const char *s;
  int rc = mock_rec_str(rec, key, required, &s);

  if (rc < 0)
    return rc;
  return mock_dup(h->host, s, ret);
}

static int rec_u32(struct mock_rec *rec, const char *key, uint32_t max,
                   uint32_t *ret) {
  uint64_t v;
  int rc = mock_rec_u64(rec, key, 1, 0, max, 0, &v);

  if (rc == 0)
    *ret = (uint32_t)v;
  return rc;
}

/* The VM of a "vm" record's "record" field. */
static int load_spec(struct hv *h, struct mock_rec *rec, struct dom *vm) {
  const char *text;
  json_error_t err;
  json_t *o;
  int rc = mock_rec_str(rec, "record", 1, &text);

  if (rc < 0)
    return rc;
  o = json_loads(text, JSON_REJECT_DUPLICATES, &err);
  vm->rec = o ? vm_from_json(o) : NULL;
  json_decref(o);
  if (vm->rec == NULL)
    return mock_rec_fail(rec, "not a VM record%s%s", o ? "" : ": ",
                         o ? "" : err.text);
  if (mock_check_id(h->host, "id", vm->rec->id) < 0 ||
      mock_check_text(h->host, "name", vm->rec->name, VMH_NAME_MAX) < 0)
    return mock_rec_fail(rec, "bad VM id or name");
  return 0;
}

static int load_vm(struct hv *h, struct mock_rec *rec, uint64_t now) {
  struct dom *vm = calloc(1, sizeof *vm);
  int rc;

  if (vm == NULL)
    return vmh_fail(h->host, VMH_ENOMEM, "out of memory");
  if ((rc = load_spec(h, rec, vm)) < 0 ||
      (rc = rec_u32(rec, "state", STATE_MAX, &vm->run.state)) < 0 ||
      (rc = mock_rec_u64(rec, "seq", 1, 1, UINT64_MAX, 0, &vm->seq)) < 0 ||
      (rc = mock_rec_u64(rec, "snap_seq", 1, 0, UINT64_MAX, 0, &vm->snap_seq)) <
          0 ||
      (rc = mock_rec_u64(rec, "start_ns", 1, 0, UINT64_MAX, 0,
                         &vm->run.start_ns)) < 0 ||
      (rc = mock_rec_u64(rec, "seg_ns", 1, 0, UINT64_MAX, 0, &vm->run.seg_ns)) <
          0 ||
      (rc = mock_rec_u64(rec, "run_ns", 1, 0, UINT64_MAX, 0, &vm->run.run_ns)) <
          0)
    goto fail;
  if (vm->run.state == VMH_VM_UNKNOWN || vm->rec->vcpus == 0) {
    rc = mock_rec_fail(rec, "VM %s has state 0 or no vCPUs", vm->rec->id);
    goto fail;
  }
  if (find_vm(h, vm->rec->id) || find_vm_by_name(h, vm->rec->name)) {
    rc = mock_rec_fail(rec, "VM %s (%s) appears twice", vm->rec->id,
                       vm->rec->name);
    goto fail;
  }
  /* Monotonic times from another boot would be in the future. */
  if (vm->run.start_ns > now || vm->run.seg_ns > now)
    vm->run.start_ns = vm->run.seg_ns = now;
  if (vm->seq > h->next_seq)
    h->next_seq = vm->seq;
  rc = vms_add(h, vm);
  if (rc < 0)
    goto fail;
  return 0;
fail:
  free_vm(vm);
  return rc;
}

static int load_snap(struct hv *h, struct mock_rec *rec, struct dom *vm) {
  struct snap *s = calloc(1, sizeof *s);
  const char *parent;
  uint64_t current;
  int rc;

  if (s == NULL)
    return vmh_fail(h->host, VMH_ENOMEM, "out of memory");
  if ((rc = rec_dup(h, rec, "id", 1, &s->id)) < 0 ||
      (rc = rec_dup(h, rec, "name", 1, &s->name)) < 0 ||
      (rc = mock_rec_str(rec, "parent", 0, &parent)) < 0 ||
      (rc = mock_rec_i64(rec, "created", 1, 0, &s->created)) < 0 ||
      (rc = rec_u32(rec, "state", STATE_MAX, &s->vm_state)) < 0 ||
      (rc = mock_rec_u64(rec, "current", 1, 0, 1, 0, &current)) < 0)
    goto fail;
  /* The reporting views hold ids of up to 31 bytes. */
  if (strlen(s->id) > 31 || strncmp(s->id, "snap-", 5) != 0 ||
      vmh_check_name(h->host, "snapshot", s->name) < 0) {
    rc = mock_rec_fail(rec, "bad snapshot id or name");
    goto fail;
  }
  if (find_snap(vm, s->id, NULL)) {
    rc = mock_rec_fail(rec, "snapshot %s twice", s->id);
    goto fail;
  }
  if (parent != NULL && (s->parent = find_snap(vm, parent, NULL)) == NULL) {
    rc = mock_rec_fail(rec, "snapshot %s: parent %s is not before it", s->id,
                       parent);
    goto fail;
  }
  rc = mock_vec_push(h->host, &vm->snaps, s);
  if (rc < 0)
    goto fail;
  if (current)
    vm->current = s;
  return 0;
fail:
  free_snap(s);
  return rc;
}

static int load_record(void *opaque, struct mock_rec *rec) {
  struct hv *h = opaque;
  const char *type = mock_rec_type(rec);
  struct dom *vm = h->vms.n ? h->vms.v[h->vms.n - 1] : NULL;
  int rc;

  if (strcmp(type, "meta") == 0) {
    uint64_t seq;
    rc = mock_rec_u64(rec, "next_seq", 1, 0, UINT64_MAX, 0, &seq);
    if (rc == 0 && seq > h->next_seq)
      h->next_seq = seq;
    return rc;
  }
  if (strcmp(type, "vm") == 0)
    return load_vm(h, rec, now_ns());
  if (strcmp(type, "snap") != 0)
    return mock_rec_fail(rec, "unknown record type %s", type);
  if (vm == NULL)
    return mock_rec_fail(rec, "%s record before any vm record", type);
  return load_snap(h, rec, vm);
}

/* ---- Building VMs from specs --------------------------------------------- */

/* An optional string of a spec: NULL, or 1..4096 bytes of text. */
static int check_opt(struct hv *h, const char *what, const char *s) {
  return s == NULL ? 0 : mock_check_text(h->host, what, s, 4096);
}

static int need(struct hv *h, const char *disk, const char *field,
                const char *v, const char *type) {
  if (v == NULL || v[0] == '\0')
    return vmh_fail(h->host, VMH_EINVAL, "disk %s: a %s source needs %s", disk,
                    type, field);
  return 0;
}

static int check_source(struct hv *h, const char *disk,
                        const struct vmh_disk_source *in) {
  static const char *const type_names[] = {"none", "file",  "block",
                                           "rbd",  "iscsi", "nfs"};
  char what[96];
  uint32_t i;
  int rc;

  rc = mock_check_struct(h->host, "disk source", in, in ? in->struct_size : 0,
                         sizeof *in);
  if (rc < 0)
    return vmh_fail(h->host, rc,
                    "disk %s has no resolved source "
                    "(struct vmh_disk.source must be set by the core, with "
                    "struct_size)",
                    disk);
  if (in->type == VMH_SOURCE_NONE || in->type > VMH_SOURCE_NFS)
    return vmh_fail(h->host, VMH_EINVAL,
                    "disk %s: source type %" PRIu32
                    " is not one of file, block, rbd, iscsi, nfs",
                    disk, in->type);
  if (in->format > VMH_FORMAT_QCOW2)
    return vmh_fail(h->host, VMH_EINVAL,
                    "disk %s: source format %" PRIu32 " is unknown", disk,
                    in->format);
  /* The contract between storage and hypervisor: each type says which
   * fields it needs.  A mock that checks them catches a core that forgets. */
  switch (in->type) {
    case VMH_SOURCE_FILE:
    case VMH_SOURCE_BLOCK:
      rc = need(h, disk, "path", in->path, type_names[in->type]);
      break;
    case VMH_SOURCE_RBD:
      if ((rc = need(h, disk, "pool", in->pool, "rbd")) == 0)
        rc = need(h, disk, "image", in->image, "rbd");
      break;
    case VMH_SOURCE_ISCSI:
      if ((rc = need(h, disk, "portal", in->portal, "iscsi")) == 0)
        rc = need(h, disk, "iqn", in->iqn, "iscsi");
      break;
    default: /* NFS */
      if ((rc = need(h, disk, "server", in->server, "nfs")) == 0 &&
          (rc = need(h, disk, "export_path", in->export_path, "nfs")) == 0)
        rc = need(h, disk, "path", in->path, "nfs");
      break;
  }
  if (rc < 0)
    return rc;
  snprintf(what, sizeof what, "disk %s source", disk);
  if ((rc = check_opt(h, what, in->path)) < 0 ||
      (rc = check_opt(h, what, in->pool)) < 0 ||
      (rc = check_opt(h, what, in->image)) < 0 ||
      (rc = check_opt(h, what, in->auth_user)) < 0 ||
      (rc = check_opt(h, what, in->auth_secret)) < 0 ||
      (rc = check_opt(h, what, in->portal)) < 0 ||
      (rc = check_opt(h, what, in->iqn)) < 0 ||
      (rc = check_opt(h, what, in->server)) < 0 ||
      (rc = check_opt(h, what, in->export_path)) < 0)
    return rc;
  if (in->n_monitors > 0 && in->monitors == NULL)
    return vmh_fail(h->host, VMH_EINVAL,
                    "disk %s: n_monitors is %" PRIu32 " but monitors is NULL",
                    disk, in->n_monitors);
  if (in->n_monitors > 64)
    return vmh_fail(h->host, VMH_EINVAL,
                    "disk %s: %" PRIu32 " monitors; the limit is 64", disk,
                    in->n_monitors);
  for (i = 0; i < in->n_monitors; i++)
    if ((rc = mock_check_text(h->host, "monitor", in->monitors[i], 255)) < 0)
      return rc;
  return 0;
}

/* Validate one disk of a spec or of attach_disk. */
static int check_disk(struct hv *h, const struct vmh_disk *in) {
  int rc;

  rc = mock_check_struct(h->host, "disk", in, in ? in->struct_size : 0,
                         sizeof *in);
  if (rc < 0)
    return rc;
  rc = mock_check_text(h->host, "disk name", in->name, VMH_NAME_MAX);
  if (rc < 0)
    return rc;
  if (in->bus > VMH_BUS_SATA || in->readonly > 1 ||
      in->format > VMH_FORMAT_QCOW2)
    return vmh_fail(h->host, VMH_EINVAL,
                    "disk %s: bus %" PRIu32 ", readonly %" PRIu32
                    " or format %" PRIu32 " out of range",
                    in->name, in->bus, in->readonly, in->format);
  return check_source(h, in->name, in->source);
}

static int check_nic(struct hv *h, const struct vmh_nic *in) {
  const struct vmh_nic_binding *b;
  int rc;

  rc = mock_check_struct(h->host, "nic", in, in ? in->struct_size : 0,
                         sizeof *in);
  if (rc < 0)
    return rc;
  rc = mock_check_text(h->host, "NIC name", in->name, VMH_NAME_MAX);
  if (rc < 0)
    return rc;
  b = in->binding;
  if (b == NULL || b->struct_size < sizeof *b)
    return vmh_fail(h->host, VMH_EINVAL,
                    "NIC %s has no resolved binding (struct vmh_nic.binding "
                    "must be set by the core, with struct_size)",
                    in->name);
  if (b->type == VMH_BINDING_NONE || b->type > VMH_BINDING_TAP)
    return vmh_fail(h->host, VMH_EINVAL,
                    "NIC %s: binding type %" PRIu32
                    " is not bridge, ovs or tap",
                    in->name, b->type);
  if ((b->type == VMH_BINDING_BRIDGE || b->type == VMH_BINDING_OVS) &&
      (b->bridge == NULL || b->bridge[0] == '\0'))
    return vmh_fail(h->host, VMH_EINVAL, "NIC %s: binding has no bridge",
                    in->name);
  if (b->type == VMH_BINDING_OVS && (b->port == NULL || b->port[0] == '\0'))
    return vmh_fail(h->host, VMH_EINVAL, "NIC %s: OVS binding has no port",
                    in->name);
  if (b->type == VMH_BINDING_TAP && (b->tap == NULL || b->tap[0] == '\0'))
    return vmh_fail(h->host, VMH_EINVAL, "NIC %s: tap binding has no tap",
                    in->name);
  if (b->vlan > 4094)
    return vmh_fail(h->host, VMH_EINVAL,
                    "NIC %s: VLAN %" PRIu32 " is not 0..4094", in->name,
                    b->vlan);
  if ((rc = check_opt(h, "NIC bridge", b->bridge)) < 0 ||
      (rc = check_opt(h, "NIC port", b->port)) < 0 ||
      (rc = check_opt(h, "NIC interface_id", b->interface_id)) < 0 ||
      (rc = check_opt(h, "NIC tap", b->tap)) < 0 ||
      (rc = check_opt(h, "NIC mac", b->mac)) < 0)
    return rc;
  return 0;
}

/* Element i of an array of sized structs.  The stride is the first
 * element's struct_size, not our sizeof: a core built against a newer minor
 * may hand over larger elements. */
static const void *elem(const void *base, uint32_t stride, uint32_t i) {
  return (const char *)base + (size_t)stride * i;
}

static int check_limits(struct hv *h, const char *name, uint64_t vcpus,
                        uint64_t memory) {
  if (vcpus == 0)
    return vmh_fail(h->host, VMH_EINVAL, "VM %s: vcpus must be at least 1",
                    name);
  if (vcpus > (uint64_t)h->max_vcpus)
    return vmh_fail(h->host, VMH_EINVAL,
                    "VM %s asks for %" PRIu64
                    " vCPUs; this hypervisor allows at most %" PRId64
                    " (max_vcpus)",
                    name, vcpus, h->max_vcpus);
  if (memory == 0)
    return vmh_fail(h->host, VMH_EINVAL, "VM %s: memory must not be 0", name);
  if (memory > h->max_memory)
    return vmh_fail(h->host, VMH_EINVAL,
                    "VM %s asks for %" PRIu64
                    " bytes of memory; this hypervisor allows at most %" PRIu64
                    " (max_memory)",
                    name, memory, h->max_memory);
  return 0;
}

/* Each element of a spec's array: the same struct_size as the first, and
 * at least ours. */
static int check_stride(struct hv *h, const struct vmh_vm_spec *spec,
                        const char *what, uint32_t i, uint32_t size,
                        uint32_t stride, size_t need_size) {
  if (stride >= need_size && size == stride)
    return 0;
  return vmh_fail(h->host, VMH_EINVAL,
                  "VM %s: %s %" PRIu32 " has struct_size %" PRIu32
                  " (the array's first has %" PRIu32 ", at least %zu)",
                  spec->name, what, i, size, stride, need_size);
}

static int check_spec(struct hv *h, const struct vmh_vm_spec *spec) {
  uint32_t i, j, stride;
  int rc;

  rc = mock_check_struct(h->host, "VM spec", spec, spec ? spec->struct_size : 0,
                         sizeof *spec);
  if (rc < 0)
    return rc;
  if ((rc = mock_check_id(h->host, "VM id", spec->id)) < 0 ||
      (rc = mock_check_text(h->host, "VM name", spec->name, VMH_NAME_MAX)) <
          0 ||
      (rc = check_limits(h, spec->name, spec->vcpus, spec->memory)) < 0)
    return rc;
  if (spec->firmware != NULL && strcmp(spec->firmware, "bios") != 0 &&
      strcmp(spec->firmware, "uefi") != 0)
    return vmh_fail(h->host, VMH_EINVAL,
                    "VM %s: firmware '%s' is not bios or uefi", spec->name,
                    spec->firmware);
  if (spec->guest_channel > 1)
    return vmh_fail(h->host, VMH_EINVAL, "VM %s: guest_channel must be 0 or 1",
                    spec->name);
  if ((spec->n_disks > 0 && spec->disks == NULL) ||
      (spec->n_nics > 0 && spec->nics == NULL))
    return vmh_fail(h->host, VMH_EINVAL,
                    "VM %s: n_disks or n_nics is set but the array is NULL",
                    spec->name);

  stride = spec->n_disks ? spec->disks[0].struct_size : 0;
  for (i = 0; i < spec->n_disks; i++) {
    const struct vmh_disk *in = elem(spec->disks, stride, i);
    if ((rc = check_stride(h, spec, "disk", i, in->struct_size, stride,
                           sizeof *in)) < 0 ||
        (rc = check_disk(h, in)) < 0)
      return rc;
    for (j = 0; j < i; j++)
      if (strcmp(((const struct vmh_disk *)elem(spec->disks, stride, j))->name,
                 in->name) == 0)
        return vmh_fail(h->host, VMH_EINVAL, "VM %s has two disks named %s",
                        spec->name, in->name);
  }
  stride = spec->n_nics ? spec->nics[0].struct_size : 0;
  for (i = 0; i < spec->n_nics; i++) {
    const struct vmh_nic *in = elem(spec->nics, stride, i);
    if ((rc = check_stride(h, spec, "NIC", i, in->struct_size, stride,
                           sizeof *in)) < 0 ||
        (rc = check_nic(h, in)) < 0)
      return rc;
    for (j = 0; j < i; j++)
      if (strcmp(((const struct vmh_nic *)elem(spec->nics, stride, j))->name,
                 in->name) == 0)
        return vmh_fail(h->host, VMH_EINVAL, "VM %s has two NICs named %s",
                        spec->name, in->name);
  }
  return 0;
}

/* A new VM, stopped, from a checked spec. */
static int vm_from_spec(struct hv *h, const struct vmh_vm_spec *spec,
                        struct dom **ret) {
  struct dom *vm;
  int rc = check_spec(h, spec);

  if (rc < 0)
    return rc;
  vm = calloc(1, sizeof *vm);
  if (vm == NULL || (vm->rec = calloc(1, sizeof *vm->rec)) == NULL ||
      vm_copy_spec(vm->rec, spec, VM_COPY_RESOLVED) < 0) {
    free_vm(vm);
    return vmh_fail(h->host, VMH_ENOMEM, "out of memory");
  }
  vm->run.state = VMH_VM_STOPPED;
  *ret = vm;
  return 0;
}

/* ---- Reporting ----------------------------------------------------------- */

/* A VM as reported, copied under the lock so that visitors run without it. */
struct dom_view {
  char id[MOCK_ID_MAX + 1];
  char name[VMH_NAME_MAX + 1];
  char ip[16];
  uint32_t state, vcpus;
  uint64_t memory, memory_used, cpu_time_ns, uptime_s;
  uint64_t disk_read, disk_write, net_rx, net_tx;
  int channel;
};

static void view_vm(const struct dom *vm, uint64_t now, struct dom_view *v) {
  const struct run *r = &vm->run;
  uint64_t k = vm->seq - 1;

  snprintf(v->id, sizeof v->id, "%s", vm->rec->id);
  snprintf(v->name, sizeof v->name, "%s", vm->rec->name);
  v->state = r->state;
  v->vcpus = vm->rec->vcpus;
  v->memory = vm->rec->memory;
  v->channel = vm->rec->guest_channel;
  v->ip[0] = '\0';
  if (is_up(r->state)) {
    uint64_t ran =
        r->run_ns + (r->state == VMH_VM_RUNNING ? now - r->seg_ns : 0);
    /* A guest that keeps a quarter of its vCPUs busy and uses half of its
     * memory: plausible, and the same on every run. */
    v->cpu_time_ns = ran / 4 * vm->rec->vcpus;
    v->memory_used = vm->rec->memory / 2;
    /* And does I/O at a steady pace per second of running: 1 MiB read,
     * 256 KiB written per disk; 64 KiB in, 16 KiB out per NIC. */
    v->disk_read = ran / 1000000000u * vm->rec->n_disks * (1u << 20);
    v->disk_write = ran / 1000000000u * vm->rec->n_disks * (1u << 18);
    v->net_rx = ran / 1000000000u * vm->rec->n_nics * (1u << 16);
    v->net_tx = ran / 1000000000u * vm->rec->n_nics * (1u << 14);
    v->uptime_s = (now - r->start_ns) / 1000000000u;
    /* One address per VM with a NIC: 10.0.0.2, 10.0.0.3, … in define
     * order, never the .0, .1 (gateway) or .255 of a /24. */
    if (vm->rec->n_nics > 0)
      snprintf(v->ip, sizeof v->ip, "10.0.%u.%u", (unsigned)((k / 253) % 256),
               (unsigned)(k % 253 + 2));
  } else {
    v->cpu_time_ns = v->memory_used = v->uptime_s = 0;
    v->disk_read = v->disk_write = v->net_rx = v->net_tx = 0;
  }
}

static int report_vm(struct hv *h, const struct dom_view *v, char *path,
                     size_t path_size, vmh_vm_info_fn fn, void *opaque) {
  struct vmh_vm_info info = {0};
  const char *ips[1];

  info.struct_size = sizeof info;
  info.id = v->id;
  info.name = v->name;
  info.state = v->state;
  info.vcpus = v->vcpus;
  info.memory = v->memory;
  info.memory_used = v->memory_used;
  info.cpu_time_ns = v->cpu_time_ns;
  info.disk_read_bytes = v->disk_read;
  info.disk_write_bytes = v->disk_write;
  info.net_rx_bytes = v->net_rx;
  info.net_tx_bytes = v->net_tx;
  info.uptime_s = v->uptime_s;
  if (v->ip[0]) {
    ips[0] = v->ip;
    info.ips = ips;
    info.n_ips = 1;
  }
  if (v->channel) {
    /* Just a name: nothing listens there, but a guest front-end test can
     * check that it was passed on, or listen there itself. */
    snprintf(path, path_size, "%s/%s.agent", mock_common_state_dir(h->mc),
             v->id);
    info.channel_type = h->vsock_port ? VMH_CHANNEL_VSOCK : VMH_CHANNEL_UNIX;
    info.channel_port = (uint32_t)h->vsock_port;
    info.channel_path = path;
  }
  return fn(opaque, &info);
}

static char *alloc_path(struct hv *h, size_t *ret_size) {
  *ret_size = strlen(mock_common_state_dir(h->mc)) + MOCK_ID_MAX + 16;
  return malloc(*ret_size);
}

/* ---- Operations ---------------------------------------------------------- */

static int hv_health(void *handle, uint32_t flags) {
  struct hv *h = handle;
  int rc = mock_common_enter(h->mc, OP_HEALTH);

  if (rc < 0)
    return rc;
  return vmh_check_flags(h->host, "health", flags, 0);
}

static int hv_caps(void *handle, struct vmh_hypervisor_caps *ret,
                   uint32_t flags) {
  struct hv *h = handle;
  int rc = mock_common_enter(h->mc, OP_CAPS);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "caps", flags, 0)) < 0 ||
      (rc = mock_check_struct(h->host, "caps", ret, ret ? ret->struct_size : 0,
                              offsetof(struct vmh_hypervisor_caps, max_memory) +
                                  sizeof ret->max_memory)) < 0)
    return rc;
  ret->source_types = ALL_SOURCES;
  ret->binding_types = ALL_BINDINGS;
  ret->channel_type = h->vsock_port ? VMH_CHANNEL_VSOCK : VMH_CHANNEL_UNIX;
  ret->features =
      VMH_HV_SNAPSHOTS | VMH_HV_HOTPLUG_DISK | VMH_HV_PAUSE | VMH_HV_CONSOLE;
  ret->max_vcpus = (uint32_t)h->max_vcpus;
  ret->max_memory = h->max_memory;
  if (VMH_HAS_FIELD(ret, host_memory)) {
    ret->host_cpus = (uint32_t)h->host_cpus;
    ret->host_memory = h->host_memory;
  }
  return 0;
}

static int hv_define(void *handle, const struct vmh_vm_spec *spec,
                     uint32_t flags) {
  struct hv *h = handle;
  struct pending ev = {0};
  struct dom *vm = NULL, *other;
  int rc = mock_common_enter(h->mc, OP_DEFINE);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "define", flags, VMH_DEFINE_START)) < 0 ||
      (rc = vm_from_spec(h, spec, &vm)) < 0)
    return rc;

  mock_common_lock(h->mc);
  if (find_vm(h, vm->rec->id)) {
    rc = vmh_fail(h->host, VMH_EEXIST, "VM id %s is already defined",
                  vm->rec->id);
  } else if ((other = find_vm_by_name(h, vm->rec->name)) != NULL) {
    rc = vmh_fail(h->host, VMH_EEXIST,
                  "a VM named %s is already defined (id %s)", vm->rec->name,
                  other->rec->id);
  } else if (h->vms.n >= (size_t)h->max_vms) {
    rc = vmh_fail(h->host, VMH_ENOSPC,
                  "mock hypervisor %s already holds %zu VMs, its max_vms",
                  mock_common_name(h->mc), h->vms.n);
  } else if ((rc = vms_add(h, vm)) == 0) {
    vm->seq = ++h->next_seq;
    queue_event(&ev, vm->rec->id, VMH_VM_STOPPED, "defined");
    if (flags & VMH_DEFINE_START) {
      set_state(vm, VMH_VM_RUNNING, now_ns());
      queue_event(&ev, vm->rec->id, VMH_VM_RUNNING, "started");
    }
    rc = save(h);
    if (rc < 0) {
      vms_drop(h, h->vms.n - 1);
      h->next_seq--;
    }
  }
  mock_common_unlock(h->mc);
  if (rc < 0) {
    free_vm(vm);
    return rc;
  }
  emit_pending(h, &ev);
  return 0;
}

static int hv_undefine(void *handle, const char *vm_id, uint32_t flags) {
  struct hv *h = handle;
  struct pending ev = {0};
  struct dom *vm;
  size_t idx;
  int rc = mock_common_enter(h->mc, OP_UNDEFINE);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "undefine", flags, 0)) < 0 ||
      (rc = mock_check_id(h->host, "VM id", vm_id)) < 0)
    return rc;
  mock_common_lock(h->mc);
  vm = find_vm(h, vm_id);
  if (vm == NULL) {
    rc = no_vm(h, vm_id);
  } else {
    idx = vm_index(h, vm);
    vms_drop(h, idx);
    rc = save(h);
    if (rc < 0) {
      /* Cannot fail: the array and the indexes had room for it a moment
       * ago. */
      mock_vec_insert(h->host, &h->vms, idx, vm);
      strmap_put(&h->by_id, vm->rec->id, vm);
      strmap_put(&h->by_name, vm->rec->name, vm);
      vm = NULL;
    } else {
      if (is_up(vm->run.state))
        queue_event(&ev, vm->rec->id, VMH_VM_STOPPED, "destroyed");
      queue_event(&ev, vm->rec->id, VMH_VM_UNKNOWN, "undefined");
    }
  }
  mock_common_unlock(h->mc);
  if (rc < 0)
    return rc;
  emit_pending(h, &ev);
  free_vm(vm);
  return 0;
}

/* One lifecycle transition: from any state in `from` (a bit mask of
 * 1 << state) to `to`. */
static int transition(struct hv *h, const char *op, const char *verb,
                      const char *vm_id, uint32_t flags, uint32_t known,
                      uint32_t from, uint32_t to, const char *reason) {
  struct pending ev = {0};
  struct dom *vm;
  int rc;

  if ((rc = vmh_check_flags(h->host, op, flags, known)) < 0 ||
      (rc = mock_check_id(h->host, "VM id", vm_id)) < 0)
    return rc;
  mock_common_lock(h->mc);
  vm = find_vm(h, vm_id);
  if (vm == NULL) {
    rc = no_vm(h, vm_id);
  } else if (!(from & (UINT32_C(1) << vm->run.state))) {
    rc = bad_state(h, vm, verb);
  } else if (vm->run.state == to) {
    /* reboot: nothing to write, but the guest did restart. */
    queue_event(&ev, vm->rec->id, to, reason);
  } else {
    struct run old = vm->run;
    set_state(vm, to, now_ns());
    rc = save(h);
    if (rc < 0)
      vm->run = old;
    else
      queue_event(&ev, vm->rec->id, to, reason);
  }
  mock_common_unlock(h->mc);
  if (rc == 0)
    emit_pending(h, &ev);
  return rc;
}

#define BIT(s) (UINT32_C(1) << (s))

static int hv_start(void *handle, const char *vm_id, uint32_t flags) {
  struct hv *h = handle;
  int rc = mock_common_enter(h->mc, OP_START);

  if (rc < 0)
    return rc;
  return transition(
      h, "start", "start", vm_id, flags, 0,
      BIT(VMH_VM_STOPPED) | BIT(VMH_VM_CRASHED) | BIT(VMH_VM_SUSPENDED),
      VMH_VM_RUNNING, "started");
}

static int hv_stop(void *handle, const char *vm_id, uint32_t timeout_s,
                   uint32_t flags) {
  struct hv *h = handle;
  int rc = mock_common_enter(h->mc, OP_STOP);

  /* The mock guest always obeys at once, so timeout_s never runs out. */
  (void)timeout_s;
  if (rc < 0)
    return rc;
  return transition(
      h, "stop", "stop", vm_id, flags, VMH_STOP_FORCE,
      BIT(VMH_VM_RUNNING) | BIT(VMH_VM_PAUSED) | BIT(VMH_VM_CRASHED),
      VMH_VM_STOPPED, (flags & VMH_STOP_FORCE) ? "destroyed" : "stopped");
}

static int hv_reboot(void *handle, const char *vm_id, uint32_t flags) {
  struct hv *h = handle;
  int rc = mock_common_enter(h->mc, OP_REBOOT);

  if (rc < 0)
    return rc;
  return transition(h, "reboot", "reboot", vm_id, flags, 0, BIT(VMH_VM_RUNNING),
                    VMH_VM_RUNNING, "rebooted");
}

static int hv_pause(void *handle, const char *vm_id, uint32_t flags) {
  struct hv *h = handle;
  int rc = mock_common_enter(h->mc, OP_PAUSE);

  if (rc < 0)
    return rc;
  return transition(h, "pause", "pause", vm_id, flags, 0, BIT(VMH_VM_RUNNING),
                    VMH_VM_PAUSED, "paused");
}

static int hv_resume(void *handle, const char *vm_id, uint32_t flags) {
  struct hv *h = handle;
  int rc = mock_common_enter(h->mc, OP_RESUME);

  if (rc < 0)
    return rc;
  return transition(h, "resume", "resume", vm_id, flags, 0, BIT(VMH_VM_PAUSED),
                    VMH_VM_RUNNING, "resumed");
}

static int hv_get(void *handle, const char *vm_id, vmh_vm_info_fn fn,
                  void *opaque, uint32_t flags) {
  struct hv *h = handle;
  struct dom_view v;
  struct dom *vm;
  char *path;
  size_t path_size;
  int rc = mock_common_enter(h->mc, OP_GET);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "get", flags, 0)) < 0 ||
      (rc = mock_check_id(h->host, "VM id", vm_id)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(h->host, VMH_EINVAL, "get: no visitor");
  mock_common_lock(h->mc);
  vm = find_vm(h, vm_id);
  if (vm == NULL)
    rc = no_vm(h, vm_id);
  else
    view_vm(vm, now_ns(), &v);
  mock_common_unlock(h->mc);
  if (rc < 0)
    return rc;
  path = alloc_path(h, &path_size);
  if (path == NULL)
    return vmh_fail(h->host, VMH_ENOMEM, "out of memory");
  rc = report_vm(h, &v, path, path_size, fn, opaque);
  free(path);
  return rc;
}

static int hv_list(void *handle, vmh_vm_info_fn fn, void *opaque,
                   uint32_t flags) {
  struct hv *h = handle;
  struct dom_view *views = NULL;
  char *path;
  size_t n, i, path_size;
  uint64_t now;
  int rc = mock_common_enter(h->mc, OP_LIST);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "list", flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(h->host, VMH_EINVAL, "list: no visitor");
  path = alloc_path(h, &path_size);
  if (path == NULL)
    return vmh_fail(h->host, VMH_ENOMEM, "out of memory");
  mock_common_lock(h->mc);
  n = h->vms.n;
  if (n > 0 && (views = malloc(n * sizeof *views)) == NULL) {
    rc = vmh_fail(h->host, VMH_ENOMEM, "out of memory");
  } else {
    now = now_ns();
    for (i = 0; i < n; i++)
      view_vm(h->vms.v[i], now, &views[i]);
  }
  mock_common_unlock(h->mc);
  for (i = 0; rc == 0 && i < n; i++)
    rc = report_vm(h, &views[i], path, path_size, fn, opaque);
  free(views);
  free(path);
  return rc;
}

static int hv_console(void *handle, const char *vm_id, vmh_console_fn fn,
                      void *opaque, uint32_t flags) {
  struct hv *h = handle;
  struct vmh_console_info info = {0};
  struct dom *vm;
  char *path;
  size_t path_size;
  int rc = mock_common_enter(h->mc, OP_CONSOLE);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "console", flags, 0)) < 0 ||
      (rc = mock_check_id(h->host, "VM id", vm_id)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(h->host, VMH_EINVAL, "console: no visitor");
  mock_common_lock(h->mc);
  vm = find_vm(h, vm_id);
  if (vm == NULL)
    rc = no_vm(h, vm_id);
  else if (!is_up(vm->run.state))
    rc = bad_state(h, vm, "open its console");
  mock_common_unlock(h->mc);
  if (rc < 0)
    return rc;
  path = alloc_path(h, &path_size);
  if (path == NULL)
    return vmh_fail(h->host, VMH_ENOMEM, "out of memory");
  snprintf(path, path_size, "%s/%s.console", mock_common_state_dir(h->mc),
           vm_id);
  info.struct_size = sizeof info;
  info.type = VMH_CONSOLE_SERIAL;
  info.path = path;
  rc = fn(opaque, &info);
  free(path);
  return rc;
}

/* ---- Snapshots ----------------------------------------------------------- */

struct snap_view {
  char id[32];
  char name[VMH_NAME_MAX + 1];
  char parent[32];
  int64_t created;
  uint32_t vm_state;
  int current;
};

static void view_snap(const struct dom *vm, const struct snap *s,
                      struct snap_view *v) {
  snprintf(v->id, sizeof v->id, "%s", s->id);
  snprintf(v->name, sizeof v->name, "%s", s->name);
  snprintf(v->parent, sizeof v->parent, "%s", s->parent ? s->parent->id : "");
  v->created = s->created;
  v->vm_state = s->vm_state;
  v->current = vm->current == s;
}

static int report_snap(const struct snap_view *v, vmh_snapshot_fn fn,
                       void *opaque) {
  struct vmh_snapshot_info info = {0};

  info.struct_size = sizeof info;
  info.id = v->id;
  info.name = v->name;
  info.parent = v->parent[0] ? v->parent : NULL;
  info.created = v->created;
  info.vm_state = v->vm_state;
  info.current = (uint32_t)v->current;
  return fn(opaque, &info);
}

static int hv_snapshot_create(void *handle, const char *vm_id, const char *name,
                              vmh_snapshot_fn fn, void *opaque,
                              uint32_t flags) {
  struct hv *h = handle;
  struct snap_view v;
  struct snap *s = NULL, *old_current;
  struct dom *vm;
  size_t i;
  char id[32];
  int rc = mock_common_enter(h->mc, OP_SNAPSHOT_CREATE);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "snapshot_create", flags, 0)) < 0 ||
      (rc = mock_check_id(h->host, "VM id", vm_id)) < 0 ||
      (rc = vmh_check_name(h->host, "snapshot", name)) < 0)
    return rc;
  mock_common_lock(h->mc);
  vm = find_vm(h, vm_id);
  if (vm == NULL) {
    rc = no_vm(h, vm_id);
    goto out;
  }
  for (i = 0; i < vm->snaps.n; i++)
    if (strcmp(((struct snap *)vm->snaps.v[i])->name, name) == 0) {
      rc = vmh_fail(h->host, VMH_EEXIST,
                    "VM %s already has a snapshot named %s (%s)", vm->rec->name,
                    name, ((struct snap *)vm->snaps.v[i])->id);
      goto out;
    }
  snprintf(id, sizeof id, "snap-%" PRIu64, vm->snap_seq + 1);
  s = calloc(1, sizeof *s);
  if (s == NULL) {
    rc = vmh_fail(h->host, VMH_ENOMEM, "out of memory");
    goto out;
  }
  if ((rc = mock_dup(h->host, id, &s->id)) < 0 ||
      (rc = mock_dup(h->host, name, &s->name)) < 0 ||
      (rc = mock_vec_push(h->host, &vm->snaps, s)) < 0)
    goto out;
  s->parent = vm->current;
  s->created = (int64_t)time(NULL);
  s->vm_state = vm->run.state;
  old_current = vm->current;
  vm->current = s;
  vm->snap_seq++;
  rc = save(h);
  if (rc < 0) {
    ptrvec_remove(&vm->snaps, vm->snaps.n - 1);
    vm->current = old_current;
    vm->snap_seq--;
    goto out;
  }
  view_snap(vm, s, &v);
  s = NULL;
out:
  mock_common_unlock(h->mc);
  free_snap(s);
  if (rc < 0 || fn == NULL)
    return rc;
  return report_snap(&v, fn, opaque);
}

static int hv_snapshot_list(void *handle, const char *vm_id, vmh_snapshot_fn fn,
                            void *opaque, uint32_t flags) {
  struct hv *h = handle;
  struct snap_view *views = NULL;
  struct dom *vm;
  size_t n = 0, i;
  int rc = mock_common_enter(h->mc, OP_SNAPSHOT_LIST);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "snapshot_list", flags, 0)) < 0 ||
      (rc = mock_check_id(h->host, "VM id", vm_id)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(h->host, VMH_EINVAL, "snapshot_list: no visitor");
  mock_common_lock(h->mc);
  vm = find_vm(h, vm_id);
  if (vm == NULL) {
    rc = no_vm(h, vm_id);
  } else if (vm->snaps.n > 0) {
    n = vm->snaps.n;
    views = malloc(n * sizeof *views);
    if (views == NULL)
      rc = vmh_fail(h->host, VMH_ENOMEM, "out of memory");
    for (i = 0; views && i < n; i++)
      view_snap(vm, vm->snaps.v[i], &views[i]);
  }
  mock_common_unlock(h->mc);
  for (i = 0; rc == 0 && i < n; i++)
    rc = report_snap(&views[i], fn, opaque);
  free(views);
  return rc;
}

static int no_snap(struct hv *h, const struct dom *vm, const char *id) {
  return vmh_fail(h->host, VMH_ENOENT, "VM %s has no snapshot %s",
                  vm->rec->name, id);
}

static int hv_snapshot_revert(void *handle, const char *vm_id,
                              const char *snapshot_id, uint32_t flags) {
  struct hv *h = handle;
  struct pending ev = {0};
  struct snap *s;
  struct dom *vm;
  int rc = mock_common_enter(h->mc, OP_SNAPSHOT_REVERT);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "snapshot_revert", flags, 0)) < 0 ||
      (rc = mock_check_id(h->host, "VM id", vm_id)) < 0 ||
      (rc = mock_check_text(h->host, "snapshot id", snapshot_id,
                            VMH_NAME_MAX)) < 0)
    return rc;
  mock_common_lock(h->mc);
  vm = find_vm(h, vm_id);
  if (vm == NULL) {
    rc = no_vm(h, vm_id);
  } else if ((s = find_snap(vm, snapshot_id, NULL)) == NULL) {
    rc = no_snap(h, vm, snapshot_id);
  } else {
    struct run old = vm->run;
    struct snap *old_current = vm->current;
    if (vm->run.state != s->vm_state)
      set_state(vm, s->vm_state, now_ns());
    vm->current = s;
    rc = save(h);
    if (rc < 0) {
      vm->run = old;
      vm->current = old_current;
    } else {
      queue_event(&ev, vm->rec->id, vm->run.state, "reverted");
    }
  }
  mock_common_unlock(h->mc);
  if (rc == 0)
    emit_pending(h, &ev);
  return rc;
}

static int hv_snapshot_delete(void *handle, const char *vm_id,
                              const char *snapshot_id, uint32_t flags) {
  struct hv *h = handle;
  struct snap *s = NULL;
  struct dom *vm;
  size_t idx, i;
  int rc = mock_common_enter(h->mc, OP_SNAPSHOT_DELETE);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "snapshot_delete", flags, 0)) < 0 ||
      (rc = mock_check_id(h->host, "VM id", vm_id)) < 0 ||
      (rc = mock_check_text(h->host, "snapshot id", snapshot_id,
                            VMH_NAME_MAX)) < 0)
    return rc;
  mock_common_lock(h->mc);
  vm = find_vm(h, vm_id);
  if (vm == NULL) {
    rc = no_vm(h, vm_id);
  } else if ((s = find_snap(vm, snapshot_id, &idx)) == NULL) {
    rc = no_snap(h, vm, snapshot_id);
  } else {
    struct snap *old_current = vm->current;
    /* Children move up to the deleted snapshot's parent, as with
     * libvirt's default. */
    ptrvec_remove(&vm->snaps, idx);
    for (i = 0; i < vm->snaps.n; i++) {
      struct snap *c = vm->snaps.v[i];
      if (c->parent == s) {
        c->parent = s->parent;
        c->moved = 1;
      }
    }
    if (vm->current == s)
      vm->current = s->parent;
    rc = save(h);
    for (i = 0; i < vm->snaps.n; i++) {
      struct snap *c = vm->snaps.v[i];
      if (rc < 0 && c->moved)
        c->parent = s;
      c->moved = 0;
    }
    if (rc < 0) {
      vm->current = old_current;
      mock_vec_insert(h->host, &vm->snaps, idx, s);
      s = NULL;
    }
  }
  mock_common_unlock(h->mc);
  if (rc == 0)
    free_snap(s);
  return rc;
}

/* ---- Hot-plug -------------------------------------------------------------
 */

static int hv_attach_disk(void *handle, const char *vm_id,
                          const struct vmh_disk *disk, uint32_t flags) {
  struct hv *h = handle;
  struct vm_disk d = {0};
  struct dom *vm;
  int rc = mock_common_enter(h->mc, OP_ATTACH_DISK);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "attach_disk", flags, 0)) < 0 ||
      (rc = mock_check_id(h->host, "VM id", vm_id)) < 0 ||
      (rc = check_disk(h, disk)) < 0)
    return rc;
  if (vm_disk_copy(&d, disk, VM_COPY_RESOLVED) < 0) {
    vm_disk_clear(&d);
    return vmh_fail(h->host, VMH_ENOMEM, "out of memory");
  }
  mock_common_lock(h->mc);
  vm = find_vm(h, vm_id);
  if (vm == NULL) {
    rc = no_vm(h, vm_id);
  } else if (find_disk(vm, d.name)) {
    rc = vmh_fail(h->host, VMH_EEXIST, "VM %s already has a disk %s",
                  vm->rec->name, d.name);
  } else {
    struct vm *rec = vm->rec;
    struct vm_disk *disks =
        realloc(rec->disks, (rec->n_disks + 1) * sizeof *rec->disks);
    if (disks == NULL) {
      rc = vmh_fail(h->host, VMH_ENOMEM, "out of memory");
    } else {
      rec->disks = disks;
      rec->disks[rec->n_disks++] = d;
      rc = save(h);
      if (rc < 0)
        rec->n_disks--;
      else
        memset(&d, 0, sizeof d);
    }
  }
  mock_common_unlock(h->mc);
  vm_disk_clear(&d);
  return rc;
}

static int hv_detach_disk(void *handle, const char *vm_id,
                          const char *disk_name, uint32_t flags) {
  struct hv *h = handle;
  struct vm_disk d = {0};
  struct dom *vm;
  int rc = mock_common_enter(h->mc, OP_DETACH_DISK);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(h->host, "detach_disk", flags, 0)) < 0 ||
      (rc = mock_check_id(h->host, "VM id", vm_id)) < 0 ||
      (rc = mock_check_text(h->host, "disk name", disk_name, VMH_NAME_MAX)) < 0)
    return rc;
  mock_common_lock(h->mc);
  vm = find_vm(h, vm_id);
  if (vm == NULL) {
    rc = no_vm(h, vm_id);
  } else {
    struct vm *rec = vm->rec;
    struct vm_disk *at = find_disk(vm, disk_name);
    size_t idx = at ? (size_t)(at - rec->disks) : 0,
           tail = at ? rec->n_disks - idx - 1 : 0;
    if (at == NULL) {
      rc = vmh_fail(h->host, VMH_ENOENT, "VM %s has no disk %s", rec->name,
                    disk_name);
    } else {
      d = *at;
      memmove(at, at + 1, tail * sizeof *at);
      rec->n_disks--;
      rc = save(h);
      if (rc < 0) {
        /* The array still has room for it. */
        memmove(at + 1, at, tail * sizeof *at);
        *at = d;
        rec->n_disks++;
        memset(&d, 0, sizeof d);
      }
    }
  }
  mock_common_unlock(h->mc);
  vm_disk_clear(&d);
  return rc;
}

/* ---- Open and close ------------------------------------------------------ */

/* One entry of `preexisting:`; strings borrowed from the config. */
struct pre {
  const char *id, *name;
  uint32_t state;
  int64_t vcpus;
  uint64_t memory;
};

static int read_preexisting(struct hv *h, const struct vmh_config *config,
                            struct pre **ret, uint32_t *ret_n) {
  const struct vmh_host *host = h->host;
  const struct vmh_config *list, *node;
  const char *state;
  struct pre *pre;
  uint32_t n, i, j, s;
  int rc;

  rc = host->config_list(config, "preexisting", &list, &n, 0);
  if (rc < 0 || n == 0)
    return rc;
  pre = calloc(n, sizeof *pre);
  if (pre == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  for (i = 0; i < n; i++) {
    struct pre *p = &pre[i];
    const char *where;
    if ((rc = host->config_at(list, i, &node)) < 0 ||
        (rc = host->config_string(node, "id", NULL, &p->id, VMH_CFG_REQUIRED)) <
            0 ||
        (rc = host->config_string(node, "name", NULL, &p->name,
                                  VMH_CFG_REQUIRED)) < 0 ||
        (rc = host->config_string(node, "state", "stopped", &state, 0)) < 0 ||
        (rc = host->config_int(node, "vcpus", 1, h->max_vcpus, 1, &p->vcpus,
                               0)) < 0 ||
        (rc = host->config_size(node, "memory", 1, h->max_memory,
                                UINT64_C(512) << 20, &p->memory, 0)) < 0)
      goto fail;
    where = host->config_where(node);
    if (mock_check_id(host, "id", p->id) < 0 ||
        mock_check_text(host, "name", p->name, VMH_NAME_MAX) < 0) {
      rc = vmh_fail(host, VMH_EINVAL,
                    "%s: preexisting[%" PRIu32
                    "]: id must be 1..64 bytes without '/', name 1..63 bytes",
                    where, i);
      goto fail;
    }
    for (s = VMH_VM_STOPPED; s <= STATE_MAX; s++)
      if (strcmp(state, state_names[s]) == 0)
        break;
    if (s > STATE_MAX) {
      rc = vmh_fail(host, VMH_EINVAL,
                    "%s: preexisting[%" PRIu32
                    "]: state '%s' is not running, stopped, paused, "
                    "suspended or crashed",
                    where, i, state);
      goto fail;
    }
    p->state = s;
    for (j = 0; j < i; j++)
      if (strcmp(pre[j].id, p->id) == 0 || strcmp(pre[j].name, p->name) == 0) {
        rc = vmh_fail(host, VMH_EINVAL,
                      "%s: preexisting[%" PRIu32
                      "]: id %s or name %s is already used by entry %" PRIu32,
                      where, i, p->id, p->name, j);
        goto fail;
      }
  }
  if (n > (uint64_t)h->max_vms) {
    rc = vmh_fail(host, VMH_EINVAL,
                  "preexisting lists %" PRIu32 " VMs; max_vms is %" PRId64, n,
                  h->max_vms);
    goto fail;
  }
  *ret = pre;
  *ret_n = n;
  return 0;
fail:
  free(pre);
  return rc;
}

static int add_preexisting(struct hv *h, const struct pre *pre, uint32_t n) {
  uint64_t now = now_ns();
  uint32_t i;
  int rc;

  for (i = 0; i < n; i++) {
    struct dom *vm = calloc(1, sizeof *vm);
    if (vm == NULL || (vm->rec = calloc(1, sizeof *vm->rec)) == NULL) {
      free(vm);
      return vmh_fail(h->host, VMH_ENOMEM, "out of memory");
    }
    vm->rec->vcpus = (uint32_t)pre[i].vcpus;
    vm->rec->memory = pre[i].memory;
    vm->run.state = VMH_VM_STOPPED;
    set_state(vm, pre[i].state, now);
    vm->seq = ++h->next_seq;
    if ((rc = mock_dup(h->host, pre[i].id, &vm->rec->id)) < 0 ||
        (rc = mock_dup(h->host, pre[i].name, &vm->rec->name)) < 0 ||
        (rc = vms_add(h, vm)) < 0) {
      free_vm(vm);
      return rc;
    }
  }
  return 0;
}

static void hv_close(void *handle) {
  struct hv *h = handle;
  size_t i;

  if (h == NULL)
    return;
  for (i = 0; i < h->vms.n; i++)
    free_vm(h->vms.v[i]);
  ptrvec_free(&h->vms);
  strmap_free(&h->by_id);
  strmap_free(&h->by_name);
  mock_common_close(h->mc);
  free(h);
}

static int hv_open(const struct vmh_host *host, const struct vmh_instance *inst,
                   const struct vmh_config *config, void **ret_handle,
                   uint32_t flags) {
  struct hv *h;
  struct pre *pre = NULL;
  uint32_t n_pre = 0;
  int rc, found = 0;

  h = calloc(1, sizeof *h);
  if (h == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  h->host = host;
  h->inst = inst;
  rc = mock_common_open(host, inst, config, "hypervisor", op_names, flags,
                        &h->mc);
  if (rc < 0) {
    free(h);
    return rc;
  }
  if ((rc = host->config_int(config, "max_vcpus", 1, 1 << 20, 64, &h->max_vcpus,
                             0)) < 0 ||
      (rc = host->config_size(config, "max_memory", UINT64_C(1) << 20,
                              UINT64_MAX, UINT64_C(256) << 30, &h->max_memory,
                              0)) < 0 ||
      (rc = host->config_int(config, "max_vms", 1, 1000000, 1024, &h->max_vms,
                             0)) < 0 ||
      (rc = host->config_int(config, "host_cpus", 1, 1 << 20, 65536,
                             &h->host_cpus, 0)) < 0 ||
      (rc = host->config_size(config, "host_memory", UINT64_C(1) << 20,
                              UINT64_MAX, UINT64_C(64) << 40, &h->host_memory,
                              0)) < 0 ||
      (rc = host->config_int(config, "vsock_port", 0, UINT32_MAX, 0,
                             &h->vsock_port, 0)) < 0 ||
      (rc = read_preexisting(h, config, &pre, &n_pre)) < 0)
    goto fail;

  if (!mock_common_check_only(h->mc)) {
    rc = mock_common_load(h->mc, load_record, h, &found);
    if (rc < 0)
      goto fail;
    /* The state file, when there is one, is the whole truth: preexisting
     * only seeds a fresh mock, so that a VM the test undefined stays gone
     * across a restart. */
    if (!found)
      rc = add_preexisting(h, pre, n_pre);
    else if (n_pre > 0)
      host->log(inst, VMH_LOG_INFO,
                "state file loaded: preexisting VMs in the config are not "
                "added again");
    if (rc < 0)
      goto fail;
    rc = mock_common_enter(h->mc, OP_OPEN);
    if (rc < 0)
      goto fail;
    host->log(inst, VMH_LOG_DEBUG, "mock hypervisor ready with %zu VM(s)%s",
              h->vms.n, found ? " from the state file" : "");
  }
  free(pre);
  *ret_handle = h;
  return 0;
fail:
  free(pre);
  hv_close(h);
  return rc;
}

static struct vmh_hypervisor_ops ops = {
    .open = hv_open,
    .close = hv_close,
    .health = hv_health,
    .caps = hv_caps,
    .define = hv_define,
    .undefine = hv_undefine,
    .start = hv_start,
    .stop = hv_stop,
    .reboot = hv_reboot,
    .pause = hv_pause,
    .resume = hv_resume,
    .get = hv_get,
    .list = hv_list,
    .console = hv_console,
    .snapshot_create = hv_snapshot_create,
    .snapshot_list = hv_snapshot_list,
    .snapshot_revert = hv_snapshot_revert,
    .snapshot_delete = hv_snapshot_delete,
    .attach_disk = hv_attach_disk,
    .detach_disk = hv_detach_disk,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_HYPERVISOR,
    .name = "mock",
    .version = VMH_PACKAGE_VERSION,
    .description = "in-memory hypervisor for test harnesses",
    .hypervisor = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
