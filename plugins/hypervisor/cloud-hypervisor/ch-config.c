/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ch-config — see ch-config.h. */
#include <config.h>

#include "ch-config.h"

#include <stdlib.h>
#include <string.h>

#include "errname.h"

/* Cloud Hypervisor's memory is mapped in pages. */
#define PAGE 4096u

/* Sets key to a new value, or fails (out of memory); value may be NULL
 * after a failed json_* constructor. */
static int put(json_t *obj, const char *key, json_t *value) {
  return value == NULL || json_object_set_new(obj, key, value) < 0 ? -1 : 0;
}

static int oom(char *err, size_t errlen) {
  return errbuf_fail(err, errlen, VMH_ENOMEM, "out of memory");
}

int chc_disk_config(const struct vmh_disk *d, json_t **ret, char *err,
                    size_t errlen) {
  const struct vmh_disk_source *s = d->source;
  const char *name = d->name ? d->name : "";
  json_t *o;
  uint32_t fmt;

  if (name[0] == '\0' || name[0] == '_' || strcmp(name, CHC_SEED_ID) == 0)
    return errbuf_fail(err, errlen, VMH_EINVAL,
                       "disk name '%s' cannot be a Cloud Hypervisor device id "
                       "(empty, starting with '_', or '%s')",
                       name, CHC_SEED_ID);
  if (d->bus != VMH_BUS_VIRTIO)
    return errbuf_fail(err, errlen, VMH_EINVAL,
                       "disk %s: Cloud Hypervisor has only virtio disks; give "
                       "bus virtio",
                       name);
  if (s == NULL)
    return errbuf_fail(err, errlen, VMH_EINVAL,
                       "disk %s: the storage pool gave no source", name);
  if (s->type != VMH_SOURCE_FILE && s->type != VMH_SOURCE_BLOCK)
    return errbuf_fail(err, errlen, VMH_EINVAL,
                       "disk %s: Cloud Hypervisor opens only local files and "
                       "block devices, not source type %u; use a pool that "
                       "maps its volumes locally",
                       name, s->type);
  if (s->path == NULL || s->path[0] != '/')
    return errbuf_fail(err, errlen, VMH_EINVAL,
                       "disk %s: source path '%s' is not absolute", name,
                       s->path ? s->path : "");
  fmt = s->format != VMH_FORMAT_DEFAULT ? s->format : d->format;
  o = json_object();
  if (o == NULL || put(o, "id", json_string(name)) < 0 ||
      put(o, "path", json_string(s->path)) < 0 ||
      put(o, "readonly", json_boolean(d->readonly != 0)) < 0)
    goto nomem;
  /* A qcow2 volume cloned from a cached image has a backing file, which
   * Cloud Hypervisor opens only when told to. */
  if (fmt == VMH_FORMAT_QCOW2 &&
      (put(o, "image_type", json_string("Qcow2")) < 0 ||
       put(o, "backing_files", json_true()) < 0))
    goto nomem;
  if (fmt == VMH_FORMAT_RAW && put(o, "image_type", json_string("Raw")) < 0)
    goto nomem;
  *ret = o;
  return 0;
nomem:
  json_decref(o);
  return oom(err, errlen);
}

/* Where a disk goes: boot disks first, by boot order (the firmware boots
 * the first disk), then the others in spec order. */
static uint64_t disk_rank(const struct vmh_vm_spec *spec, uint32_t i) {
  uint32_t b = spec->disks[i].boot_order;
  return ((uint64_t)(b ? b : UINT32_MAX) << 32) | i;
}

static int disks(const struct vmh_vm_spec *spec, const struct chc_opts *o,
                 json_t *cfg, char *err, size_t errlen) {
  json_t *arr = json_array(), *seed = NULL;
  uint64_t last = 0;
  uint32_t i, k;
  int rc;

  if (arr == NULL || put(cfg, "disks", arr) < 0)
    return oom(err, errlen);
  for (i = 0; i < spec->n_disks; i++)
    for (k = 0; k < i; k++)
      if (spec->disks[i].name && spec->disks[k].name &&
          strcmp(spec->disks[i].name, spec->disks[k].name) == 0)
        return errbuf_fail(err, errlen, VMH_EINVAL, "two disks named %s",
                           spec->disks[i].name);
  /* Selection by rank: a VM has a handful of disks. */
  for (k = 0; k < spec->n_disks; k++) {
    uint32_t best = UINT32_MAX;
    json_t *dc;
    for (i = 0; i < spec->n_disks; i++)
      if ((k == 0 || disk_rank(spec, i) > last) &&
          (best == UINT32_MAX || disk_rank(spec, i) < disk_rank(spec, best)))
        best = i;
    last = disk_rank(spec, best);
    if ((rc = chc_disk_config(&spec->disks[best], &dc, err, errlen)) < 0)
      return rc;
    if (json_array_append_new(arr, dc) < 0)
      return oom(err, errlen);
  }
  if (o->seed_path != NULL) {
    /* The array owns it from here. */
    seed = json_object();
    if (seed == NULL || json_array_append_new(arr, seed) < 0 ||
        put(seed, "id", json_string(CHC_SEED_ID)) < 0 ||
        put(seed, "path", json_string(o->seed_path)) < 0 ||
        put(seed, "readonly", json_true()) < 0 ||
        put(seed, "image_type", json_string("Raw")) < 0)
      return oom(err, errlen);
  }
  return 0;
}

static int nics(const struct vmh_vm_spec *spec, json_t *cfg, char *err,
                size_t errlen) {
  json_t *arr = json_array();
  uint32_t i;

  if (arr == NULL || put(cfg, "net", arr) < 0)
    return oom(err, errlen);
  for (i = 0; i < spec->n_nics; i++) {
    const struct vmh_nic *n = &spec->nics[i];
    const struct vmh_nic_binding *b = n->binding;
    const char *name = n->name ? n->name : "";
    const char *mac = b && b->mac ? b->mac : n->mac;
    json_t *nc;

    if (name[0] == '\0' || name[0] == '_')
      return errbuf_fail(err, errlen, VMH_EINVAL,
                         "NIC name '%s' cannot be a Cloud Hypervisor device "
                         "id (empty or starting with '_')",
                         name);
    if (n->model != VMH_NIC_VIRTIO)
      return errbuf_fail(err, errlen, VMH_EINVAL,
                         "NIC %s: Cloud Hypervisor has only virtio-net; give "
                         "model virtio",
                         name);
    if (b == NULL || b->type != VMH_BINDING_TAP || b->tap == NULL)
      return errbuf_fail(err, errlen, VMH_EINVAL,
                         "NIC %s: Cloud Hypervisor attaches only tap devices "
                         "by name (binding %u); use a network with binding "
                         "tap",
                         name, b ? b->type : 0);
    if (b->vlan != 0 || n->vlan != 0)
      return errbuf_fail(err, errlen, VMH_EINVAL,
                         "NIC %s: Cloud Hypervisor cannot tag VLANs; tag on "
                         "the host side of the tap",
                         name);
    nc = json_object();
    if (nc == NULL || json_array_append_new(arr, nc) < 0 ||
        put(nc, "id", json_string(name)) < 0 ||
        put(nc, "tap", json_string(b->tap)) < 0 ||
        (mac != NULL && put(nc, "mac", json_string(mac)) < 0) ||
        (b->mtu != 0 && put(nc, "mtu", json_integer(b->mtu)) < 0))
      return oom(err, errlen);
  }
  return 0;
}

static int payload(const struct vmh_vm_spec *spec, const struct chc_opts *o,
                   json_t *cfg, char *err, size_t errlen) {
  json_t *p = json_object();

  if (p == NULL || put(cfg, "payload", p) < 0)
    return oom(err, errlen);
  if (spec->kernel != NULL) {
    if ((put(p, "kernel", json_string(spec->kernel)) < 0) ||
        (spec->initrd && put(p, "initramfs", json_string(spec->initrd)) < 0) ||
        (spec->cmdline && put(p, "cmdline", json_string(spec->cmdline)) < 0))
      return oom(err, errlen);
    return 0;
  }
  if (spec->initrd != NULL || spec->cmdline != NULL)
    return errbuf_fail(err, errlen, VMH_EINVAL,
                       "initrd and cmdline need a kernel (direct boot)");
  if (spec->firmware != NULL && strcmp(spec->firmware, "uefi") != 0)
    return errbuf_fail(err, errlen, VMH_EINVAL,
                       "firmware '%s': Cloud Hypervisor boots its own "
                       "firmware (give uefi or none) or a kernel",
                       spec->firmware);
  if (o->firmware == NULL)
    return errbuf_fail(err, errlen, VMH_EINVAL,
                       "the VM has no kernel and the instance no firmware: "
                       "give a kernel, or set firmware in the plugin's "
                       "config");
  return put(p, "firmware", json_string(o->firmware)) < 0 ? oom(err, errlen)
                                                          : 0;
}

int chc_vm_config(const struct vmh_vm_spec *spec, const struct chc_opts *o,
                  json_t **ret, char *err, size_t errlen) {
  json_t *cfg = json_object(), *x;
  int rc = VMH_ENOMEM;

  if (cfg == NULL)
    return oom(err, errlen);
  if (spec->vcpus == 0 || spec->vcpus > 255) {
    rc = errbuf_fail(err, errlen, VMH_EINVAL,
                     "vcpus %u: Cloud Hypervisor takes 1 to 255", spec->vcpus);
    goto fail;
  }
  if (spec->memory == 0 || spec->memory % PAGE != 0 ||
      spec->memory > (uint64_t)INT64_MAX) {
    rc = errbuf_fail(err, errlen, VMH_EINVAL,
                     "memory %llu: give a positive multiple of %u bytes",
                     (unsigned long long)spec->memory, PAGE);
    goto fail;
  }
  if ((x = json_object()) == NULL || put(cfg, "cpus", x) < 0 ||
      put(x, "boot_vcpus", json_integer(spec->vcpus)) < 0 ||
      put(x, "max_vcpus", json_integer(spec->vcpus)) < 0 ||
      (x = json_object()) == NULL || put(cfg, "memory", x) < 0 ||
      put(x, "size", json_integer((json_int_t)spec->memory)) < 0)
    goto nomem;
  if ((rc = payload(spec, o, cfg, err, errlen)) < 0 ||
      (rc = disks(spec, o, cfg, err, errlen)) < 0 ||
      (rc = nics(spec, cfg, err, errlen)) < 0)
    goto fail;
  if ((x = json_object()) == NULL || put(cfg, "rng", x) < 0 ||
      put(x, "src", json_string("/dev/urandom")) < 0 ||
      (x = json_object()) == NULL || put(cfg, "serial", x) < 0 ||
      put(x, "mode", json_string("Socket")) < 0 ||
      put(x, "socket", json_string(o->serial_path)) < 0 ||
      (x = json_object()) == NULL || put(cfg, "console", x) < 0 ||
      put(x, "mode", json_string("Off")) < 0 ||
      /* The guest sees the VM's id as its SMBIOS system UUID. */
      (x = json_object()) == NULL || put(cfg, "platform", x) < 0 ||
      put(x, "system_uuid", json_string(spec->id)) < 0)
    goto nomem;
  if (o->vsock_path != NULL &&
      ((x = json_object()) == NULL || put(cfg, "vsock", x) < 0 ||
       put(x, "cid", json_integer(o->cid)) < 0 ||
       put(x, "socket", json_string(o->vsock_path)) < 0))
    goto nomem;
  *ret = cfg;
  return 0;
nomem:
  rc = oom(err, errlen);
fail:
  json_decref(cfg);
  return rc;
}
