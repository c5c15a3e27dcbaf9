/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Orchestration: the operations that change VMs.  Each runs on the worker
 * pool keyed by the VM's id.  Create makes volumes, then NIC bindings, then
 * the domain; a failing step undoes the steps done, in reverse.  Delete runs
 * the reverse and treats parts already gone as done.  The record is saved
 * after every step, so a crash leaves a record that says what exists. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agent.h"
#include "cleanup.h"
#include "error.h"
#include "events.h"
#include "instance.h"
#include "log.h"
#include "operations.h"
#include "orchestrate.h"
#include "resources.h"
#include "sizes.h"
#include "speclimits.h"
#include "state.h"
#include "validate.h"
#include "vm.h"
#include "workers.h"

/* The spec's limits: speclimits.h, shared with the front-ends. */

/* ---- tasks -------------------------------------------------------------- */

struct task {
  struct vm *vm; /* the record (owned by the table) */
  vmh_reply_t *r;
  uint32_t flags;
  uint32_t action, timeout_s;
  char *arg;            /* snapshot name or id, disk name */
  struct vm_disk *disk; /* disk to attach (owned until added) */
  uint32_t quiesced;    /* snapshot create: the guest was frozen */
  struct vm_kv *labels; /* label changes (value NULL: remove) */
  size_t n_labels;
};

static void task_free(struct task *t) {
  if (!t)
    return;
  free(t->arg);
  vm_kv_free(t->labels, t->n_labels);
  if (t->disk) {
    vm_disk_clear(t->disk);
    free(t->disk);
  }
  free(t);
}

/* Queue fn for vm; on refusal answer r at once. */
static void submit(struct vm *vm, work_fn fn, struct task *t) {
  if (workers_submit(vm->id, fn, t) < 0) {
    error_set("vmhostd is shutting down; try again");
    reply_done(t->r, VMH_EAGAIN);
    task_free(t);
  }
}

static void fail(vmh_reply_t *r, int code) {
  reply_done(r, code);
}

static struct vmh_instance *vm_hypervisor(const struct vm *vm) {
  return instance_find(VMH_KIND_HYPERVISOR, vm->hypervisor);
}

/* Save vm's record; logged, not fatal: the operation itself succeeded and
 * the next save (or reconciliation) catches up. */
static void save(struct vm *vm) {
  struct journal_wait w;
  vms_rdlock();
  int r = state_queue(vm, &w);
  vms_unlock();
  if (r == 0)
    r = state_wait(&w);
  if (r < 0)
    log_error("%s", error_get());
}

static void set_status(struct vm *vm, uint32_t status, const char *err) {
  vms_wrlock_vm(vm);
  vm->status = status;
  free(vm->error);
  vm->error = err ? strdup(err) : NULL;
  vms_unlock();
}

/* On a worker, holding no lock: what the operation said so far (its
 * transitional state) goes out before the VM's creation or end. */
static void emit_vm(uint32_t type, const struct vm *vm) {
  ops_send_events();
  struct vmh_event ev = {.struct_size = sizeof ev,
                         .type = type,
                         .vm_id = vm->id,
                         .vm_name = vm->name,
                         .state = vm->state,
                         .message = vm->name};
  events_emit("core", &ev);
}

/* ---- copying the request ---------------------------------------------- */

/* Normalise a struct a front-end passed to the core's size. */
#define NORMALISE(dst, src)                                                   \
  do {                                                                        \
    memset(&(dst), 0, sizeof(dst));                                           \
    memcpy(                                                                   \
        &(dst), (src),                                                        \
        (src)->struct_size < sizeof(dst) ? (src)->struct_size : sizeof(dst)); \
  } while (0)

/* Replace *name by a copy of to. */
static int rename_to(char **name, const char *to) {
  char *copy = strdup(to);
  if (!copy)
    return error_code(VMH_ENOMEM, "out of memory");
  free(*name);
  *name = copy;
  return 0;
}

/* Check a disk copied from a request and place it: in the pool named (the
 * first when none is), on the volume named (one named after the VM when
 * none is). */
static int check_disk(struct vm_disk *d, const char *vm_name) {
  if (!d->name || !valid_device_name(d->name))
    return error_code(
        VMH_EINVAL,
        "disk name '%s' is invalid (expected [a-z][a-z0-9]{0,15}, "
        "e.g. vda)",
        d->name ? d->name : "");
  if (d->format > VMH_FORMAT_QCOW2)
    return error_code(VMH_EINVAL, "disk %s: unknown format %" PRIu32, d->name,
                      d->format);
  if (d->bus > VMH_BUS_SATA)
    return error_code(VMH_EINVAL, "disk %s: unknown bus %" PRIu32, d->name,
                      d->bus);
  if (d->readonly > 1)
    return error_code(VMH_EINVAL, "disk %s: readonly is 0 or 1", d->name);
  if (d->volume && !vmh_name_valid(d->volume))
    return error_code(
        VMH_EINVAL,
        "disk %s: volume name '%s' is invalid (expected " VMH_NAME_RULE ")",
        d->name, d->volume);
  if (d->base_image && !vmh_name_valid(d->base_image))
    return error_code(VMH_EINVAL, "disk %s: image name '%s' is invalid",
                      d->name, d->base_image);
  if (!d->volume && !d->size && !d->base_image)
    return error_code(VMH_EINVAL,
                      "disk %s: give a size (new volume), a base_image (clone) "
                      "or a volume (existing)",
                      d->name);
  struct vmh_instance *pool = instance_find(VMH_KIND_STORAGE, d->pool);
  if (!pool)
    return error_code(VMH_EINVAL, "disk %s: %s", d->name, error_get());
  int r = rename_to(&d->pool, pool->name);
  if (r < 0)
    return r;
  /* A volume named explicitly without size or image is one that exists. */
  d->make = !(d->volume && !d->size && !d->base_image);
  if (d->volume)
    return 0;
  if (asprintf(&d->volume, "%s-%s", vm_name, d->name) < 0) {
    d->volume = NULL;
    return error_code(VMH_ENOMEM, "out of memory");
  }
  if (!vmh_name_valid(d->volume))
    return error_code(VMH_EINVAL,
                      "disk %s: the volume name '%s' made from the VM's name "
                      "is not a valid volume name (" VMH_NAME_RULE
                      "); "
                      "give the disk a volume name",
                      d->name, d->volume);
  return 0;
}

/* Check a NIC copied from a request and place it on the network named
 * (the first when none is). */
static int check_nic(struct vm_nic *n) {
  if (!n->name || !valid_device_name(n->name))
    return error_code(VMH_EINVAL,
                      "NIC name '%s' is invalid (expected [a-z][a-z0-9]{0,15}, "
                      "e.g. net0)",
                      n->name ? n->name : "");
  if (n->mac && !valid_mac(n->mac))
    return error_code(VMH_EINVAL,
                      "NIC %s: MAC '%s' is invalid (expected a unicast "
                      "xx:xx:xx:xx:xx:xx)",
                      n->name, n->mac);
  if (n->vlan > SPEC_VLAN_MAX)
    return error_code(VMH_EINVAL,
                      "NIC %s: VLAN %" PRIu32 " is out of range 0..%d", n->name,
                      n->vlan, SPEC_VLAN_MAX);
  if (n->model > VMH_NIC_E1000)
    return error_code(VMH_EINVAL, "NIC %s: unknown model %" PRIu32, n->name,
                      n->model);
  struct vmh_instance *net = instance_find(VMH_KIND_NETWORK, n->network);
  if (!net)
    return error_code(VMH_EINVAL, "NIC %s: %s", n->name, error_get());
  return rename_to(&n->network, net->name);
}

static int check_text(const char *what, const char *s) {
  if (!s)
    return 0;
  size_t len = strlen(s);
  if (len > SPEC_TEXT_MAX)
    return error_code(VMH_EINVAL, "%s is %zu bytes; the limit is %d", what, len,
                      SPEC_TEXT_MAX);
  if (!valid_utf8(s, len))
    return error_code(VMH_EINVAL, "%s is not valid UTF-8", what);
  return 0;
}

/* A label (a metadata entry) to be set: key and value. */
static int check_label(const struct vm_kv *kv) {
  if (!valid_label_key(kv->key))
    return error_code(VMH_EINVAL,
                      "label (metadata) key '%.80s' is invalid (expected "
                      "%s)",
                      kv->key ? kv->key : "", LABEL_KEY_RULE);
  if (!kv->value)
    return error_code(VMH_EINVAL, "label '%s' has no value", kv->key);
  char what[96];
  snprintf(what, sizeof what, "the value of label '%s'", kv->key);
  return check_text(what, kv->value);
}

static char *const *boot_dirs;
static size_t n_boot_dirs;

void orchestrate_set_boot_dirs(char *const *dirs, size_t n) {
  boot_dirs = dirs;
  n_boot_dirs = n;
}

/* Whether the resolved path lies under dir (itself resolved). */
static bool under_dir(const char *path, const char *dir) {
  char real[PATH_MAX];
  if (!realpath(dir, real))
    return false;
  size_t n = strlen(real);
  return !strncmp(path, real, n) && (path[n] == '/' || real[n - 1] == '/');
}

/* path with its links resolved into real: a regular file, or a file not
 * there yet in a directory that is (the hypervisor then says it is
 * missing). */
static bool resolve_file(const char *path, char real[PATH_MAX]) {
  struct stat st;
  if (realpath(path, real))
    return stat(real, &st) == 0 && S_ISREG(st.st_mode);
  if (errno != ENOENT)
    return false;
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  size_t n = (size_t)(slash - path);
  if (n >= sizeof dir || !slash[1] || !strcmp(slash + 1, "..") ||
      !strcmp(slash + 1, "."))
    return false;
  memcpy(dir, path, n);
  dir[n] = '\0';
  char rdir[PATH_MAX];
  if (!realpath(n ? dir : "/", rdir) ||
      strlen(rdir) + strlen(slash) >= PATH_MAX)
    return false;
  size_t rl = strcmp(rdir, "/") ? strlen(rdir) : 0;
  memcpy(real, rdir, rl);
  memcpy(real + rl, slash, strlen(slash) + 1);
  return true;
}

/* A host file a spec names (kernel, initrd): a regular file under one of
 * daemon.boot_dirs, symbolic links resolved first.  One message for every
 * refusal, so that a caller learns nothing of files elsewhere. */
static int check_boot_file(const char *what, const char *path) {
  if (!path || !path[0])
    return 0;
  char real[PATH_MAX];
  if (path[0] == '/' && resolve_file(path, real))
    for (size_t i = 0; i < n_boot_dirs; i++)
      if (under_dir(real, boot_dirs[i]))
        return 0;
  return error_code(VMH_EPERM,
                    n_boot_dirs ? "%s '%s' is not a file under a directory of "
                                  "daemon.boot_dirs"
                                : "%s '%s': no host file may be named (the "
                                  "config sets no daemon.boot_dirs)",
                    what, path);
}

/* Build a record from a create request, checking everything that can be
 * checked before touching a backend. */
static int vm_from_spec(const struct vmh_vm_spec *in, struct vm **ret) {
  struct vmh_vm_spec s;
  NORMALISE(s, in);
  if (!s.name || !vmh_name_valid(s.name))
    return error_code(VMH_EINVAL,
                      "VM name '%s' is invalid (expected " VMH_NAME_RULE ")",
                      s.name ? s.name : "");
  if (valid_uuid(s.name))
    return error_code(VMH_EINVAL,
                      "VM name '%s' has the form of a VM id (a UUID), which "
                      "a lookup would take for one; choose another name",
                      s.name);
  char lo[32], hi[32];
  /* 0 is what a caller that left the field out sends. */
  if (!s.vcpus)
    return error_code(VMH_EINVAL, "vcpus is required (%d..%d)", SPEC_VCPUS_MIN,
                      SPEC_VCPUS_MAX);
  if (s.vcpus < SPEC_VCPUS_MIN || s.vcpus > SPEC_VCPUS_MAX)
    return error_code(VMH_EINVAL, "vcpus %" PRIu32 " is out of range %d..%d",
                      s.vcpus, SPEC_VCPUS_MIN, SPEC_VCPUS_MAX);
  size_format(SPEC_MEMORY_MIN, lo, sizeof lo);
  size_format(SPEC_MEMORY_MAX, hi, sizeof hi);
  if (!s.memory)
    return error_code(VMH_EINVAL, "memory is required (%s..%s)", lo, hi);
  if (s.memory < SPEC_MEMORY_MIN || s.memory > SPEC_MEMORY_MAX)
    return error_code(VMH_EINVAL,
                      "memory %" PRIu64 " bytes is out of range %s..%s",
                      s.memory, lo, hi);
  if (s.n_disks > SPEC_DISKS_MAX || s.n_nics > SPEC_NICS_MAX ||
      s.n_metadata > SPEC_METADATA_MAX)
    return error_code(VMH_EINVAL,
                      "too many disks, NICs or metadata entries (limits %d, "
                      "%d, %d)",
                      SPEC_DISKS_MAX, SPEC_NICS_MAX, SPEC_METADATA_MAX);
  if (s.guest_channel > 1)
    return error_code(VMH_EINVAL, "guest_channel is 0 or 1");
  int r;
  if ((r = check_text("user_data", s.user_data)) < 0 ||
      (r = check_text("meta_data", s.meta_data)) < 0 ||
      (r = check_text("network_config", s.network_config)) < 0 ||
      (r = check_text("cmdline", s.cmdline)) < 0 ||
      (r = check_text("kernel", s.kernel)) < 0 ||
      (r = check_text("initrd", s.initrd)) < 0 ||
      (r = check_boot_file("kernel", s.kernel)) < 0 ||
      (r = check_boot_file("initrd", s.initrd)) < 0)
    return r;
  if (s.firmware && strcmp(s.firmware, "bios") != 0 &&
      strcmp(s.firmware, "uefi") != 0)
    return error_code(VMH_EINVAL, "firmware '%s' is not bios or uefi",
                      s.firmware);
  struct vmh_instance *hv = instance_find(VMH_KIND_HYPERVISOR, s.hypervisor);
  if (!hv)
    return error_code(VMH_EINVAL, "%s", error_get());

  if (s.n_disks && s.disks[0].struct_size < offsetof(struct vmh_disk, source))
    return error_code(VMH_EINVAL, "disks: struct_size %" PRIu32 " is too small",
                      s.disks[0].struct_size);
  if (s.n_nics && s.nics[0].struct_size < offsetof(struct vmh_nic, binding))
    return error_code(VMH_EINVAL, "nics: struct_size %" PRIu32 " is too small",
                      s.nics[0].struct_size);

  struct vm *vm = calloc(1, sizeof *vm);
  if (!vm)
    return error_code(VMH_ENOMEM, "out of memory");
  /* Sources and bindings are the core's to resolve, not the request's. */
  if (vm_copy_spec(vm, &s, 0) < 0 || rename_to(&vm->hypervisor, hv->name) < 0) {
    r = error_code(VMH_ENOMEM, "out of memory");
    goto fail;
  }
  char id[VMH_ID_LEN + 1];
  core_uuid_v4(id);
  if ((r = rename_to(&vm->id, id)) < 0)
    goto fail;
  vm->status = VMH_STATUS_CREATING;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  vm->created = (int64_t)now.tv_sec;
  /* The order of lists: a record made later sorts later. */
  vm->created_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
  for (size_t i = 0; i < vm->n_disks; i++) {
    if ((r = check_disk(&vm->disks[i], vm->name)) < 0)
      goto fail;
    for (size_t j = 0; j < i; j++) {
      if (strcmp(vm->disks[j].name, vm->disks[i].name) == 0 ||
          (strcmp(vm->disks[j].pool, vm->disks[i].pool) == 0 &&
           strcmp(vm->disks[j].volume, vm->disks[i].volume) == 0)) {
        r = error_code(VMH_EINVAL, "disk %s is listed twice",
                       vm->disks[i].name);
        goto fail;
      }
    }
  }
  for (size_t i = 0; i < vm->n_nics; i++) {
    if ((r = check_nic(&vm->nics[i])) < 0)
      goto fail;
    for (size_t j = 0; j < i; j++)
      if (strcmp(vm->nics[j].name, vm->nics[i].name) == 0) {
        r = error_code(VMH_EINVAL, "NIC %s is listed twice", vm->nics[i].name);
        goto fail;
      }
  }
  for (size_t i = 0; i < vm->n_metadata; i++)
    if ((r = check_label(&vm->metadata[i])) < 0)
      goto fail;
  *ret = vm;
  return 0;

fail:
  vm_free(vm);
  return r;
}

/* ---- disk sources ------------------------------------------------------- */

static int source_cb(void *opaque, const struct vmh_disk_source *in) {
  return vm_source_copy(opaque, in) < 0
             ? error_code(VMH_ENOMEM, "out of memory")
             : 0;
}

/* The source of d that hv can open: as the pool gives it, or mapped to a
 * local path when hv cannot attach that kind of source. */
static int resolve_source(struct vm_disk *d, uint32_t source_types,
                          struct vm_source *out) {
  struct vmh_instance *pool = instance_find(VMH_KIND_STORAGE, d->pool);
  if (!pool)
    return VMH_EIO;
  int r =
      INSTANCE_CALL(pool, storage, vol_source, d->volume, source_cb, out, 0);
  if (r < 0)
    return r;
  if (out->type != VMH_SOURCE_NONE &&
      (source_types & VMH_SOURCE_BIT(out->type)))
    return 0;
  uint32_t type = out->type;
  r = INSTANCE_CALL(pool, storage, vol_source, d->volume, source_cb, out,
                    VMH_SOURCE_LOCAL);
  if (r == VMH_ENOTSUP ||
      (r == 0 && !(source_types & VMH_SOURCE_BIT(out->type))))
    return error_code(VMH_ENOTSUP,
                      "disk %s: pool '%s' gives a source of type %" PRIu32
                      " that the hypervisor cannot attach, and cannot map it "
                      "locally",
                      d->name, d->pool, type);
  if (r == 0)
    d->mapped = 1;
  return r;
}

/* Resolve d's source into out (with its secret, for the hypervisor) and
 * record it in d (without). */
static int disk_source(struct vm *vm, struct vm_disk *d, uint32_t source_types,
                       struct vm_source *out) {
  int r = resolve_source(d, source_types, out);
  if (r < 0)
    return r;
  vms_wrlock_vm(vm);
  r = vm_source_record(&d->source, out);
  vms_unlock();
  return r < 0 ? error_code(VMH_ENOMEM, "out of memory") : 0;
}

/* ---- the steps of create and delete ------------------------------------- */

static int ignore_volume(void *opaque, const struct vmh_volume_info *v) {
  (void)opaque;
  (void)v;
  return 0;
}

static int volume_make(struct vm *vm, struct vm_disk *d) {
  struct vmh_instance *pool = instance_find(VMH_KIND_STORAGE, d->pool);
  if (!pool)
    return VMH_EIO;
  if (!d->make) {
    int r = INSTANCE_CALL(pool, storage, vol_get, d->volume, ignore_volume,
                          NULL, 0);
    if (r == VMH_ENOENT)
      return error_code(VMH_ENOENT, "disk %s: no volume '%s' in pool '%s'",
                        d->name, d->volume, d->pool);
    return r;
  }
  struct vmh_volume_spec spec = {
      .struct_size = sizeof spec,
      .name = d->volume,
      .size = d->size,
      .format = d->format,
      .base_image = d->base_image,
  };
  int r = INSTANCE_CALL(pool, storage, vol_create, &spec, 0);
  if (r == 0) {
    /* Only now is the volume ours to delete: a failed create (say, the
     * name exists already) must never lead to deleting someone's volume. */
    vms_wrlock_vm(vm);
    d->created = 1;
    vms_unlock();
  }
  return r;
}

/* Tell d's pool that the VM no longer uses the volume: vol_unmap undoes a
 * local mapping, and a pool that hands volumes to one VM at a time (iscsi)
 * releases it.  Gone already is fine. */
static int volume_unmap(struct vm_disk *d) {
  struct vmh_instance *pool = instance_find(VMH_KIND_STORAGE, d->pool);
  if (!pool)
    return d->mapped ? VMH_EIO : 0;
  int r = INSTANCE_CALL(pool, storage, vol_unmap, d->volume, 0);
  if (r < 0 && r != VMH_ENOENT && r != VMH_ENOTSUP)
    return r;
  d->mapped = 0;
  return 0;
}

/* Undo volume_make (and any mapping).  Gone already is fine. */
static int volume_unmake(struct vm_disk *d) {
  int r = volume_unmap(d);
  if (r < 0 || !d->created)
    return r;
  struct vmh_instance *pool = instance_find(VMH_KIND_STORAGE, d->pool);
  if (!pool)
    return VMH_EIO;
  r = INSTANCE_CALL(pool, storage, vol_delete, d->volume, 0);
  resources_sample_pool(d->pool); /* the space it gave back */
  return r == VMH_ENOENT ? 0 : r;
}

static int binding_cb(void *opaque, const struct vmh_nic_binding *in) {
  return vm_binding_copy(opaque, in) < 0
             ? error_code(VMH_ENOMEM, "out of memory")
             : 0;
}

static int port_bind(struct vm *vm, struct vm_nic *n) {
  struct vmh_instance *net = instance_find(VMH_KIND_NETWORK, n->network);
  if (!net)
    return VMH_EIO;
  struct vmh_port_request req = {
      .struct_size = sizeof req,
      .vm_id = vm->id,
      .vm_name = vm->name,
      .nic_name = n->name,
      .mac = n->mac,
      .vlan = n->vlan,
  };
  struct vm_binding b = {0};
  int r = INSTANCE_CALL(net, network, port_bind, &req, binding_cb, &b, 0);
  vms_wrlock_vm(vm);
  n->binding = b;
  n->bound = r == 0;
  vms_unlock();
  return r;
}

static int port_unbind(struct vm *vm, struct vm_nic *n) {
  if (!n->bound)
    return 0;
  struct vmh_instance *net = instance_find(VMH_KIND_NETWORK, n->network);
  if (!net)
    return VMH_EIO;
  int r = INSTANCE_CALL(net, network, port_unbind, vm->id, n->name, 0);
  if (r == VMH_ENOENT)
    r = 0;
  if (r == 0) {
    vms_wrlock_vm(vm);
    n->bound = 0;
    vms_unlock();
  }
  return r;
}

/* Define (and start) vm on its hypervisor, with resolved sources. */
static int domain_define(struct vm *vm, uint32_t flags) {
  struct vmh_instance *hv = vm_hypervisor(vm);
  if (!hv)
    return VMH_EIO;
  struct vmh_hypervisor_caps caps = {.struct_size = sizeof caps};
  int r = INSTANCE_CALL(hv, hypervisor, caps, &caps, 0);
  if (r < 0)
    return r;
  if (caps.max_vcpus && vm->vcpus > caps.max_vcpus)
    return error_code(VMH_EINVAL,
                      "vcpus %" PRIu32
                      " is more than hypervisor '%s' allows "
                      "(%" PRIu32 ")",
                      vm->vcpus, hv->name, caps.max_vcpus);
  if (caps.max_memory && vm->memory > caps.max_memory)
    return error_code(VMH_EINVAL,
                      "memory %" PRIu64
                      " is more than hypervisor '%s' allows "
                      "(%" PRIu64 ")",
                      vm->memory, hv->name, caps.max_memory);

  struct vm_view view;
  struct vm_source *sources =
      calloc(vm->n_disks ? vm->n_disks : 1, sizeof *sources);
  if (!sources || vm_view_init(&view, vm) < 0) {
    free(sources);
    return error_code(VMH_ENOMEM, "out of memory");
  }
  /* The hypervisor gets the sources as the pools give them now, secrets
   * included; the record keeps them without. */
  for (size_t i = 0; i < vm->n_disks; i++) {
    if ((r = disk_source(vm, &vm->disks[i], caps.source_types, &sources[i])) <
        0)
      goto out;
    vm_source_view(&sources[i], &view.sources[i]);
    view.disks[i].source = &view.sources[i];
  }
  for (size_t i = 0; i < vm->n_nics; i++) {
    const struct vm_nic *n = &vm->nics[i];
    uint32_t type = n->binding.type;
    if (type && !(caps.binding_types & (UINT32_C(1) << type))) {
      r = error_code(VMH_ENOTSUP,
                     "NIC %s: network '%s' gives a binding of type %" PRIu32
                     " that hypervisor '%s' cannot attach",
                     n->name, n->network, type, hv->name);
      goto out;
    }
  }
  r = INSTANCE_CALL(hv, hypervisor, define, &view.spec, flags);
  if (r == 0) {
    vms_wrlock_vm(vm);
    vm->defined = 1;
    vms_unlock();
  }

out:
  for (size_t i = 0; i < vm->n_disks; i++)
    vm_source_clear(&sources[i]);
  free(sources);
  vm_view_free(&view);
  return r;
}

static int domain_undefine(struct vm *vm) {
  if (!vm->defined)
    return 0;
  struct vmh_instance *hv = vm_hypervisor(vm);
  if (!hv)
    return VMH_EIO;
  int r = INSTANCE_CALL(hv, hypervisor, undefine, vm->id, 0);
  if (r == VMH_ENOENT)
    r = 0;
  if (r == 0) {
    vms_wrlock_vm(vm);
    vm->defined = 0;
    vms_unlock();
  }
  return r;
}

/* Undo everything vm has: domain, ports, volumes, in that order.  Returns 0
 * when all is gone, else the first failure (and keeps going). */
static int teardown(struct vm *vm) {
  int first = 0, r;
  _cleanup_free_ char *msg = NULL;
#define NOTE(expr)                        \
  do {                                    \
    if ((r = (expr)) < 0 && first == 0) { \
      first = r;                          \
      msg = strdup(error_get());          \
    }                                     \
  } while (0)
  /* No save between the steps: a teardown interrupted by a crash is run
   * again by the next delete, which treats parts already gone as done.
   * While the domain exists its disks and NICs are in use: a hypervisor
   * that cannot undefine it stops the teardown, the VM left whole. */
  if ((r = domain_undefine(vm)) < 0) {
    msg = strdup(error_get());
    return error_code(r,
                      "%s; the VM's disks and NICs were left untouched "
                      "(the domain still exists)",
                      msg ? msg : "undefine failed");
  }
  for (size_t i = vm->n_nics; i-- > 0;)
    NOTE(port_unbind(vm, &vm->nics[i]));
  for (size_t i = vm->n_disks; i-- > 0;) {
    struct vm_disk *d = &vm->disks[i];
    if ((r = volume_unmake(d)) == 0) {
      vms_wrlock_vm(vm);
      d->created = 0;
      vms_unlock();
    }
    NOTE(r);
  }
#undef NOTE
  if (first)
    error_set("%s", msg ? msg : "teardown failed");
  return first;
}

/* ---- create ------------------------------------------------------------- */

/* Make the create's volumes, their space reserved first (resources.h),
 * each a step of its progress (*step of steps). */
static int make_volumes(struct task *t, uint64_t steps, uint64_t *step) {
  struct vm *vm = t->vm;
  int r = resources_disks_reserve(vm->disks, vm->n_disks);
  if (r < 0)
    return r;
  char what[128];
  for (size_t i = 0; i < vm->n_disks && r == 0; i++) {
    struct vm_disk *d = &vm->disks[i];
    snprintf(what, sizeof what, "disk %s", d->name);
    ops_progress(t->r, (*step)++, steps, what);
    if ((r = volume_make(vm, d)) == 0)
      save(vm);
  }
  resources_disks_release(vm->disks, vm->n_disks);
  return r;
}

static int create_steps(struct task *t) {
  struct vm *vm = t->vm;
  int r;
  /* The record is on disk before any backend is touched, so a crash from
   * here on leaves a record saying what was made.  Saved here, on a
   * worker, rather than in vm_create: a front-end never waits for a disk. */
  struct journal_wait w;
  vms_rdlock();
  r = state_queue(vm, &w);
  vms_unlock();
  if (r < 0 || (r = state_wait(&w)) < 0)
    return r;
  /* Progress in steps: each disk, each NIC, the domain. */
  uint64_t steps = vm->n_disks + vm->n_nics + 1, step = 0;
  char what[128];
  if ((r = make_volumes(t, steps, &step)) < 0)
    return r;
  for (size_t i = 0; i < vm->n_nics; i++) {
    snprintf(what, sizeof what, "NIC %s", vm->nics[i].name);
    ops_progress(t->r, step++, steps, what);
    if ((r = port_bind(vm, &vm->nics[i])) < 0)
      return r;
    save(vm);
  }
  ops_progress(t->r, step, steps, "defining the domain");
  uint32_t define_flags =
      (t->flags & VMH_CREATE_NO_START) ? 0 : VMH_DEFINE_START;
  /* Saved by the caller with the status it reaches: one synced write. */
  return domain_define(vm, define_flags);
}

static void create_task(void *arg) {
  struct task *t = arg;
  struct vm *vm = t->vm;
  int r = workers_cancelled()
              ? error_code(VMH_ECANCELED,
                           "vmhostd stopped before the create could run")
              : ops_begin(t->r);
  if (r == 0)
    r = create_steps(t);
  if (r == 0) {
    vm_refresh(vm);
    set_status(vm, VMH_STATUS_READY, NULL);
    save(vm);
    log_info("VM '%s' (%s) created", vm->name, vm->id);
    emit_vm(VMH_EVENT_VM_CREATED, vm);
    vms_rdlock();
    vm_reply_record(vm, t->r);
    vms_unlock();
    reply_done(t->r, 0);
    task_free(t);
    return;
  }

  _cleanup_free_ char *why = strdup(error_get());
  log_info("VM '%s' (%s): create failed, undoing: %s", vm->name, vm->id,
           why ? why : "");
  if (teardown(vm) == 0) {
    state_remove(vm->id);
    vms_remove(vm);
    error_set("%s", why ? why : "create failed");
  } else {
    _cleanup_free_ char *undo = strdup(error_get());
    _cleanup_free_ char *msg = NULL;
    if (asprintf(&msg,
                 "%s; undoing it also failed: %s (delete the VM to retry)",
                 why ? why : "", undo ? undo : "") < 0)
      msg = NULL;
    set_status(vm, VMH_STATUS_FAILED, msg);
    save(vm);
    log_error("VM '%s' (%s): %s", vm->name, vm->id, msg ? msg : "");
    error_set("%s", msg ? msg : "create failed");
  }
  reply_done(t->r, r);
  task_free(t);
}

void vm_create(const struct vmh_vm_spec *spec, vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, VMH_CREATE_NO_START) < 0)
    return;
  if (!spec || spec->struct_size < offsetof(struct vmh_vm_spec, hypervisor)) {
    error_set("the VM spec is missing or too small");
    return fail(r, VMH_EINVAL);
  }
  struct vm *vm = NULL;
  int code = vm_from_spec(spec, &vm);
  if (code < 0)
    return fail(r, code);
  for (size_t i = 0; i < vm->n_disks; i++)
    if (!vm->disks[i].make &&
        vms_volume_in_use(vm->disks[i].pool, vm->disks[i].volume)) {
      error_set("disk %s: volume %s/%s is used by another VM",
                vm->disks[i].name, vm->disks[i].pool, vm->disks[i].volume);
      vm_free(vm);
      return fail(r, VMH_EBUSY);
    }
  if ((code = vms_insert(vm)) < 0) {
    vm_free(vm);
    return fail(r, code);
  }
  struct task *t = calloc(1, sizeof *t);
  if (!t) {
    vms_remove(vm);
    error_set("out of memory");
    return fail(r, VMH_ENOMEM);
  }
  t->vm = vm;
  t->r = r;
  t->flags = flags;
  if (workers_submit(vm->id, create_task, t) < 0) {
    vms_remove(vm);
    free(t);
    error_set("vmhostd is shutting down; try again");
    fail(r, VMH_EAGAIN);
  }
}

/* ---- operations on an existing VM -------------------------------------- */

/* Find the VM, make a task for fn and queue it keyed by the VM's id. */
static void on_vm(const char *key, work_fn fn, vmh_reply_t *r, uint32_t flags,
                  uint32_t known, struct task **ret_extra) {
  if (reply_check_flags(r, flags, known) < 0)
    return;
  vms_rdlock();
  struct vm *vm = vms_lookup(key);
  vms_unlock();
  if (!vm) {
    error_set("no VM '%s'", key ? key : "");
    return fail(r, VMH_ENOENT);
  }
  struct task *t = calloc(1, sizeof *t);
  if (!t) {
    error_set("out of memory");
    return fail(r, VMH_ENOMEM);
  }
  t->vm = vm;
  t->r = r;
  t->flags = flags;
  if (ret_extra) {
    *ret_extra = t;
    return;
  }
  submit(vm, fn, t);
}

/* The record may have been deleted between lookup and the task running
 * (a delete queued before it): check it is still in the table. */
static int still_there(struct task *t) {
  int code = workers_cancelled()
                 ? error_code(VMH_ECANCELED,
                              "vmhostd stopped before the operation could run")
                 : ops_begin(t->r);
  if (code) {
    reply_done(t->r, code);
    task_free(t);
    return 0;
  }
  vms_rdlock();
  struct vm *vm = vms_lookup(t->vm->id);
  vms_unlock();
  if (vm == t->vm)
    return 1;
  error_set("the VM was deleted");
  reply_done(t->r, VMH_ENOENT);
  task_free(t);
  return 0;
}

static int need_ready(struct task *t) {
  if (t->vm->status == VMH_STATUS_READY)
    return 1;
  static const char *const names[] = {
      [VMH_STATUS_CREATING] = "being created",
      [VMH_STATUS_FAILED] = "failed (delete it)",
      [VMH_STATUS_DELETING] = "being deleted",
      [VMH_STATUS_MISSING] = "missing from its hypervisor"};
  error_set(
      "VM '%s' is %s", t->vm->name,
      t->vm->status < sizeof names / sizeof names[0] && names[t->vm->status]
          ? names[t->vm->status]
          : "not ready");
  reply_done(t->r, VMH_ESTATE);
  task_free(t);
  return 0;
}

static void finish_with_record(struct task *t, int code) {
  if (code == 0) {
    vms_rdlock();
    vm_reply_record(t->vm, t->r);
    vms_unlock();
  }
  reply_done(t->r, code);
  task_free(t);
}

static void delete_task(void *arg) {
  struct task *t = arg;
  if (!still_there(t))
    return;
  struct vm *vm = t->vm;
  vms_rdlock();
  uint32_t was = vm->status;
  vms_unlock();
  set_status(vm, VMH_STATUS_DELETING, NULL);
  save(vm);
  int r = teardown(vm);
  if (r < 0 && vm->defined) {
    /* Nothing was touched: the VM is as it was. */
    set_status(vm, was, NULL);
    save(vm);
  } else if (r == 0) {
    if ((r = state_remove(vm->id)) == 0) {
      log_info("VM '%s' (%s) deleted", vm->name, vm->id);
      emit_vm(VMH_EVENT_VM_DELETED, vm);
      vms_remove(vm);
    }
  } else {
    set_status(vm, VMH_STATUS_FAILED, error_get());
    save(vm);
  }
  reply_done(t->r, r);
  task_free(t);
}

void vm_delete(const char *key, vmh_reply_t *r, uint32_t flags) {
  on_vm(key, delete_task, r, flags, 0, NULL);
}

static void action_task(void *arg) {
  struct task *t = arg;
  if (!still_there(t) || !need_ready(t))
    return;
  struct vmh_instance *hv = vm_hypervisor(t->vm);
  const char *id = t->vm->id;
  int r = VMH_EIO;
  if (hv) {
    switch (t->action) {
      case VMH_ACTION_START:
        r = INSTANCE_CALL(hv, hypervisor, start, id, 0);
        break;
      case VMH_ACTION_STOP:
        r = INSTANCE_CALL(hv, hypervisor, stop, id, t->timeout_s,
                          (t->flags & VMH_ACTION_FORCE) ? VMH_STOP_FORCE : 0);
        break;
      case VMH_ACTION_REBOOT:
        r = INSTANCE_CALL(hv, hypervisor, reboot, id, 0);
        break;
      case VMH_ACTION_PAUSE:
        r = INSTANCE_CALL(hv, hypervisor, pause, id, 0);
        break;
      default:
        r = INSTANCE_CALL(hv, hypervisor, resume, id, 0);
        break;
    }
  }
  if (r == 0)
    vm_refresh(t->vm);
  finish_with_record(t, r);
}

void vm_action(const char *key, uint32_t action, uint32_t timeout_s,
               vmh_reply_t *r, uint32_t flags) {
  if (action < VMH_ACTION_START || action > VMH_ACTION_RESUME) {
    error_set("unknown action %" PRIu32, action);
    return fail(r, VMH_EINVAL);
  }
  if ((flags & VMH_ACTION_FORCE) && action != VMH_ACTION_STOP) {
    error_set("force applies to stop only");
    return fail(r, VMH_EINVAL);
  }
  if (timeout_s > 3600) {
    error_set("timeout %" PRIu32 " s is out of range 0..3600", timeout_s);
    return fail(r, VMH_EINVAL);
  }
  struct task *t = NULL;
  on_vm(key, action_task, r, flags, VMH_ACTION_FORCE, &t);
  if (!t)
    return;
  t->action = action;
  t->timeout_s = timeout_s;
  submit(t->vm, action_task, t);
}

static void forward_console(void *opaque, const struct vmh_console_info *c) {
  struct task *t = opaque;
  if (t->r->console)
    t->r->console(t->r->opaque, c);
}

static int console_cb(void *opaque, const struct vmh_console_info *c) {
  forward_console(opaque, c);
  return 0;
}

static void console_task(void *arg) {
  struct task *t = arg;
  if (!still_there(t) || !need_ready(t))
    return;
  struct vmh_instance *hv = vm_hypervisor(t->vm);
  int r =
      hv ? INSTANCE_CALL(hv, hypervisor, console, t->vm->id, console_cb, t, 0)
         : VMH_EIO;
  reply_done(t->r, r);
  task_free(t);
}

void vm_console(const char *key, vmh_reply_t *r, uint32_t flags) {
  on_vm(key, console_task, r, flags, 0, NULL);
}

/* ---- snapshots ------------------------------------------------------------
 */

static int snapshot_cb(void *opaque, const struct vmh_snapshot_info *s) {
  struct task *t = opaque;
  struct vmh_snapshot_info info;
  NORMALISE(info, s);
  info.struct_size = sizeof info;
  info.quiesced = t->quiesced;
  if (t->r->snapshot)
    t->r->snapshot(t->r->opaque, &info);
  return 0;
}

/* Quiesce: freeze the guest's filesystems through its agent.  0 when they
 * are frozen; otherwise the code, and *sent says whether a freeze reached
 * the agent (and so needs a thaw whatever it answered). */
static int quiesce(struct task *t, bool *sent) {
  struct vmh_agent_request req = {.struct_size = sizeof req,
                                  .op = VMH_AGENT_FREEZE};
  vms_rdlock();
  uint32_t state = t->vm->state;
  vms_unlock();
  if (state != VMH_VM_RUNNING) {
    /* A paused guest cannot answer: no waiting for a timeout. */
    *sent = false;
    return error_code(VMH_ESTATE,
                      "vm '%s' is not running: its agent cannot freeze it",
                      t->vm->name);
  }
  int r = agent_call_sync(t->vm->id, t->vm->name, &req, NULL, NULL);
  /* Not connected (or no guest front-end): nothing was sent. */
  *sent = r != VMH_ESTATE;
  return r;
}

static void thaw(struct task *t) {
  struct vmh_agent_request req = {.struct_size = sizeof req,
                                  .op = VMH_AGENT_THAW};
  if (agent_call_sync(t->vm->id, t->vm->name, &req, NULL, NULL) < 0)
    log_warn(
        "vm %s: thawing its filesystems failed (its agent thaws by "
        "itself after its freeze timeout): %s",
        t->vm->name, error_get());
}

/* Snapshot create, quiesced when asked: freeze, snapshot, thaw (the thaw
 * always, also when the snapshot fails). */
static int snapshot_make(struct task *t, struct vmh_instance *hv) {
  bool sent = false;
  if (t->flags & VMH_SNAPSHOT_QUIESCE) {
    int q = quiesce(t, &sent);
    if (q == 0) {
      t->quiesced = 1;
    } else if (!(t->flags & VMH_SNAPSHOT_QUIESCE_TRY)) {
      char why[ERROR_MSG_MAX];
      snprintf(why, sizeof why, "%s", error_get());
      if (sent)
        thaw(t);
      return error_code(q, "quiesced snapshot of vm '%s' refused: %s",
                        t->vm->name, why);
    } else {
      log_info("vm %s: snapshot taken without quiesce: %s", t->vm->name,
               error_get());
      if (sent)
        thaw(t);
      sent = false;
    }
  }
  int r = INSTANCE_CALL(hv, hypervisor, snapshot_create, t->vm->id, t->arg,
                        snapshot_cb, t, 0);
  if (t->quiesced) {
    char why[ERROR_MSG_MAX];
    snprintf(why, sizeof why, "%s", error_get());
    thaw(t);
    if (r < 0)
      error_set("%s", why);
  }
  return r;
}

enum { SNAP_LIST, SNAP_CREATE, SNAP_REVERT, SNAP_DELETE };

/* A VM's snapshot as a caller names it: by id, or else by name (names
 * are unique per VM), whatever the backend's own lookup does. */
struct snap_find {
  const char *key;
  char *by_id, *by_name; /* the ids found (owned) */
  bool oom;
};

static int snap_find_cb(void *opaque, const struct vmh_snapshot_info *s) {
  struct snap_find *f = opaque;
  char **slot = !s->id                                ? NULL
                : !strcmp(s->id, f->key)              ? &f->by_id
                : s->name && !strcmp(s->name, f->key) ? &f->by_name
                                                      : NULL;
  if (slot && !*slot && !(*slot = strdup(s->id)))
    f->oom = true;
  return 0;
}

/* Resolve t->arg against the VM's snapshots: for a create, refuse a name
 * another snapshot has as its name or id; otherwise replace a name by the
 * id of its snapshot.  A backend that cannot list is passed the key as
 * is. */
static int snap_resolve(struct task *t, struct vmh_instance *hv) {
  if (!hv->plugin->ops.hypervisor.snapshot_list)
    return 0;
  struct snap_find f = {.key = t->arg};
  int r = INSTANCE_CALL(hv, hypervisor, snapshot_list, t->vm->id, snap_find_cb,
                        &f, 0);
  if (r == 0 && f.oom)
    r = error_code(VMH_ENOMEM, "out of memory");
  else if (r == 0 && t->action == SNAP_CREATE && (f.by_id || f.by_name))
    r = error_code(VMH_EEXIST, "VM '%s' already has a snapshot %s '%s'",
                   t->vm->name, f.by_name ? "named" : "with the id", t->arg);
  else if (r == 0 && t->action != SNAP_CREATE && !f.by_id && !f.by_name)
    r = error_code(VMH_ENOENT, "VM '%s' has no snapshot '%s' (by id or name)",
                   t->vm->name, t->arg);
  else if (r == 0 && t->action != SNAP_CREATE && !f.by_id) {
    free(t->arg);
    t->arg = f.by_name;
    f.by_name = NULL;
  }
  free(f.by_id);
  free(f.by_name);
  return r;
}

static void snapshot_task(void *arg) {
  struct task *t = arg;
  if (!still_there(t) || !need_ready(t))
    return;
  struct vmh_instance *hv = vm_hypervisor(t->vm);
  const char *id = t->vm->id;
  int r = VMH_EIO;
  if (hv && t->action != SNAP_LIST && (r = snap_resolve(t, hv)) < 0)
    hv = NULL;
  if (hv) {
    switch (t->action) {
      case SNAP_LIST:
        r = INSTANCE_CALL(hv, hypervisor, snapshot_list, id, snapshot_cb, t, 0);
        break;
      case SNAP_CREATE:
        r = snapshot_make(t, hv);
        break;
      case SNAP_REVERT:
        r = INSTANCE_CALL(hv, hypervisor, snapshot_revert, id, t->arg, 0);
        if (r == 0)
          vm_refresh(t->vm);
        break;
      default:
        r = INSTANCE_CALL(hv, hypervisor, snapshot_delete, id, t->arg, 0);
        break;
    }
  }
  reply_done(t->r, r);
  task_free(t);
}

static void snapshot_op(const char *key, int op, const char *arg,
                        vmh_reply_t *r, uint32_t flags) {
  if (op != SNAP_LIST && (!arg || !vmh_name_valid(arg))) {
    error_set("snapshot %s '%s' is invalid (expected " VMH_NAME_RULE ")",
              op == SNAP_CREATE ? "name" : "id or name", arg ? arg : "");
    return fail(r, VMH_EINVAL);
  }
  struct task *t = NULL;
  if ((flags & VMH_SNAPSHOT_QUIESCE_TRY) && !(flags & VMH_SNAPSHOT_QUIESCE)) {
    error_set("VMH_SNAPSHOT_QUIESCE_TRY without VMH_SNAPSHOT_QUIESCE");
    return fail(r, VMH_EINVAL);
  }
  on_vm(key, snapshot_task, r, flags,
        op == SNAP_CREATE ? VMH_SNAPSHOT_QUIESCE | VMH_SNAPSHOT_QUIESCE_TRY : 0,
        &t);
  if (!t)
    return;
  t->action = (uint32_t)op;
  if (arg && !(t->arg = strdup(arg))) {
    task_free(t);
    error_set("out of memory");
    return fail(r, VMH_ENOMEM);
  }
  submit(t->vm, snapshot_task, t);
}

void vm_snapshot_list(const char *vm, vmh_reply_t *r, uint32_t flags) {
  snapshot_op(vm, SNAP_LIST, NULL, r, flags);
}
void vm_snapshot_create(const char *vm, const char *name, vmh_reply_t *r,
                        uint32_t flags) {
  snapshot_op(vm, SNAP_CREATE, name, r, flags);
}
void vm_snapshot_revert(const char *vm, const char *sid, vmh_reply_t *r,
                        uint32_t flags) {
  snapshot_op(vm, SNAP_REVERT, sid, r, flags);
}
void vm_snapshot_delete(const char *vm, const char *sid, vmh_reply_t *r,
                        uint32_t flags) {
  snapshot_op(vm, SNAP_DELETE, sid, r, flags);
}

/* ---- disk hot-plug ------------------------------------------------------ */

static struct vm_disk *find_disk(struct vm *vm, const char *name) {
  for (size_t i = 0; i < vm->n_disks; i++)
    if (strcmp(vm->disks[i].name, name) == 0)
      return &vm->disks[i];
  return NULL;
}

static void attach_task(void *arg) {
  struct task *t = arg;
  if (!still_there(t) || !need_ready(t))
    return;
  struct vm *vm = t->vm;
  struct vm_disk *d = t->disk;
  struct vmh_instance *hv = vm_hypervisor(vm);
  struct vmh_hypervisor_caps caps = {.struct_size = sizeof caps};
  struct vm_source src = {0};
  _cleanup_free_ char *why = NULL;
  int r;
  if (!hv) {
    r = VMH_EIO;
    goto done;
  }
  if (find_disk(vm, d->name)) {
    r = error_code(VMH_EEXIST, "VM '%s' already has a disk %s", vm->name,
                   d->name);
    goto done;
  }
  if (!hv->plugin->ops.hypervisor.attach_disk) {
    r = call_unsupported(hv, "attach_disk");
    goto done;
  }
  if ((r = INSTANCE_CALL(hv, hypervisor, caps, &caps, 0)) < 0 ||
      (r = resources_disks_reserve(d, 1)) < 0)
    goto done;
  r = volume_make(vm, d);
  resources_disks_release(d, 1);
  if (r < 0)
    goto done;
  if ((r = disk_source(vm, d, caps.source_types, &src)) < 0)
    goto undo;
  struct vmh_disk disk;
  struct vmh_disk_source source;
  vm_disk_view(d, &disk, &source);
  vm_source_view(&src, &source); /* with the secret */
  disk.source = &source;
  if ((r = INSTANCE_CALL(hv, hypervisor, attach_disk, vm->id, &disk, 0)) < 0)
    goto undo;

  vms_wrlock_vm(vm);
  struct vm_disk *disks =
      realloc(vm->disks, (vm->n_disks + 1) * sizeof *vm->disks);
  if (disks) {
    vm->disks = disks;
    vm->disks[vm->n_disks++] = *d;
    memset(d, 0, sizeof *d);
  }
  vms_unlock();
  if (!disks) {
    r = error_code(VMH_ENOMEM, "out of memory");
    goto done;
  }
  save(vm);
  vm_source_clear(&src);
  finish_with_record(t, 0);
  return;

undo:
  why = strdup(error_get());
  if (volume_unmake(d) < 0)
    log_error(
        "VM '%s': could not remove volume %s/%s after a failed attach: "
        "%s",
        vm->name, d->pool, d->volume, error_get());
  error_set("%s", why ? why : "attach failed");
done:
  vm_source_clear(&src);
  reply_done(t->r, r);
  task_free(t);
}

void vm_disk_attach(const char *key, const struct vmh_disk *disk,
                    vmh_reply_t *r, uint32_t flags) {
  if (!disk || disk->struct_size < offsetof(struct vmh_disk, source)) {
    error_set("the disk is missing or too small");
    return fail(r, VMH_EINVAL);
  }
  struct task *t = NULL;
  on_vm(key, attach_task, r, flags, 0, &t);
  if (!t)
    return;
  int code;
  if (!(t->disk = calloc(1, sizeof *t->disk))) {
    code = error_code(VMH_ENOMEM, "out of memory");
  } else {
    vms_rdlock();
    _cleanup_free_ char *name = strdup(t->vm->name);
    vms_unlock();
    code = !name || vm_disk_copy(t->disk, disk, 0) < 0
               ? error_code(VMH_ENOMEM, "out of memory")
               : check_disk(t->disk, name);
  }
  if (code == 0 && !t->disk->make &&
      vms_volume_in_use(t->disk->pool, t->disk->volume))
    code = error_code(VMH_EBUSY, "volume %s/%s is used by a VM", t->disk->pool,
                      t->disk->volume);
  if (code < 0) {
    task_free(t);
    return fail(r, code);
  }
  submit(t->vm, attach_task, t);
}

static void detach_task(void *arg) {
  struct task *t = arg;
  if (!still_there(t) || !need_ready(t))
    return;
  struct vm *vm = t->vm;
  struct vmh_instance *hv = vm_hypervisor(vm);
  struct vm_disk *d = find_disk(vm, t->arg);
  int r;
  if (!d)
    r = error_code(VMH_ENOENT, "VM '%s' has no disk %s", vm->name, t->arg);
  else if (!hv)
    r = VMH_EIO;
  else if ((r = INSTANCE_CALL(hv, hypervisor, detach_disk, vm->id, t->arg,
                              0)) == 0 ||
           r == VMH_ENOENT)
    /* The volume stays in its pool: detaching never destroys data. */
    r = volume_unmap(d);
  if (r == 0) {
    vms_wrlock_vm(vm);
    vm_disk_clear(d);
    size_t i = (size_t)(d - vm->disks);
    memmove(d, d + 1, (vm->n_disks - i - 1) * sizeof *d);
    vm->n_disks--;
    vms_unlock();
    save(vm);
  }
  finish_with_record(t, r);
}

void vm_disk_detach(const char *key, const char *disk, vmh_reply_t *r,
                    uint32_t flags) {
  if (!disk || !valid_device_name(disk)) {
    error_set("disk name '%s' is invalid", disk ? disk : "");
    return fail(r, VMH_EINVAL);
  }
  struct task *t = NULL;
  on_vm(key, detach_task, r, flags, 0, &t);
  if (!t)
    return;
  if (!(t->arg = strdup(disk))) {
    task_free(t);
    error_set("out of memory");
    return fail(r, VMH_ENOMEM);
  }
  submit(t->vm, detach_task, t);
}

/* ---- labels ------------------------------------------------------------- */

/* Where key is in vm's labels, or -1 (lock held). */
static ssize_t label_at(const struct vm *vm, const char *key) {
  for (size_t i = 0; i < vm->n_metadata; i++)
    if (strcmp(vm->metadata[i].key, key) == 0)
      return (ssize_t)i;
  return -1;
}

/* The number of labels vm has once the changes ch[0..n) are made (lock
 * held). */
static size_t labels_after(const struct vm *vm, const struct vm_kv *ch,
                           size_t n) {
  size_t count = vm->n_metadata;
  for (size_t i = 0; i < n; i++) {
    bool there = label_at(vm, ch[i].key) >= 0;
    if (ch[i].value && !there)
      count++;
    else if (!ch[i].value && there)
      count--;
  }
  return count;
}

/* Make the changes (lock held for writing, room for the labels added
 * made): each takes its strings from ch, which keeps what is replaced or
 * removed, to be freed. */
static void labels_apply(struct vm *vm, struct vm_kv *ch, size_t n) {
  for (size_t i = 0; i < n; i++) {
    ssize_t at = label_at(vm, ch[i].key);
    if (at < 0 && ch[i].value) {
      vm->metadata[vm->n_metadata++] = ch[i];
      ch[i] = (struct vm_kv){0};
    } else if (at >= 0 && ch[i].value) {
      char *old = vm->metadata[at].value;
      vm->metadata[at].value = ch[i].value;
      ch[i].value = old;
    } else if (at >= 0) {
      struct vm_kv gone = vm->metadata[at];
      memmove(&vm->metadata[at], &vm->metadata[at + 1],
              (vm->n_metadata - (size_t)at - 1) * sizeof *vm->metadata);
      vm->n_metadata--;
      free(ch[i].key);
      ch[i] = gone;
    }
  }
}

static void labels_task(void *arg) {
  struct task *t = arg;
  if (!still_there(t))
    return;
  struct vm *vm = t->vm;
  int r = 0;
  vms_wrlock_vm(vm);
  size_t count = labels_after(vm, t->labels, t->n_labels);
  struct vm_kv *md = NULL;
  if (vm->status == VMH_STATUS_DELETING)
    r = error_code(VMH_ESTATE, "VM '%s' is being deleted", vm->name);
  else if (count > SPEC_METADATA_MAX)
    r = error_code(VMH_EINVAL, "VM '%s' would have %zu labels; the limit is %d",
                   vm->name, count, SPEC_METADATA_MAX);
  else if (!(md =
                 realloc(vm->metadata,
                         (count > vm->n_metadata ? count : vm->n_metadata + 1) *
                             sizeof *md)))
    r = error_code(VMH_ENOMEM, "out of memory");
  if (r == 0) {
    vm->metadata = md;
    labels_apply(vm, t->labels, t->n_labels);
  }
  vms_unlock();
  if (r == 0) {
    save(vm);
    struct vmh_event ev = {.struct_size = sizeof ev,
                           .type = VMH_EVENT_VM_UPDATED,
                           .vm_id = vm->id,
                           .state = vm->state,
                           .object = "labels",
                           .message = vm->name};
    events_emit("core", &ev);
  }
  finish_with_record(t, r);
}

/* Copy and check the changes asked for into t. */
static int labels_copy(struct task *t, const struct vmh_keyval *in, size_t n) {
  if (n > 2 * SPEC_METADATA_MAX)
    return error_code(VMH_EINVAL, "%zu label changes; at most %d at once", n,
                      2 * SPEC_METADATA_MAX);
  if (!(t->labels = calloc(n ? n : 1, sizeof *t->labels)))
    return error_code(VMH_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    const struct vmh_keyval *kv = &in[i];
    struct vm_kv *to = &t->labels[i];
    if (!kv->key || !*kv->key)
      return error_code(VMH_EINVAL, "label change %zu has no key", i);
    for (size_t j = 0; j < i; j++)
      if (strcmp(t->labels[j].key, kv->key) == 0)
        return error_code(VMH_EINVAL, "label '%.80s' is changed twice",
                          kv->key);
    t->n_labels++; /* task_free frees what is copied */
    if (!(to->key = strdup(kv->key)) ||
        (kv->value && !(to->value = strdup(kv->value))))
      return error_code(VMH_ENOMEM, "out of memory");
    /* Removing takes any key there is (records made before keys were
     * checked may hold others). */
    int r = to->value ? check_label(to) : check_text("label key", to->key);
    if (r < 0)
      return r;
  }
  return 0;
}

void vm_update_labels(const char *key, const struct vmh_keyval *labels,
                      uint32_t n_labels, vmh_reply_t *r, uint32_t flags) {
  if (n_labels && !labels) {
    error_set("no labels");
    return fail(r, VMH_EINVAL);
  }
  struct task *t = NULL;
  on_vm(key, labels_task, r, flags, 0, &t);
  if (!t)
    return;
  int code = labels_copy(t, labels, n_labels);
  if (code < 0) {
    task_free(t);
    return fail(r, code);
  }
  submit(t->vm, labels_task, t);
}
