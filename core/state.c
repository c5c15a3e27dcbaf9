/* VM records on disk, as JSON (jansson). */
#include <config.h>

#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomicfile.h"
#include "cleanup.h"
#include "error.h"
#include "log.h"

#define STATE_VERSION 1

static char *vms_dir;

int state_init(const char *state_dir) {
  free(vms_dir);
  if (asprintf(&vms_dir, "%s/vms", state_dir) < 0) {
    vms_dir = NULL;
    return error_code(VMH_ENOMEM, "out of memory");
  }
  if ((mkdir(state_dir, 0700) < 0 && errno != EEXIST) ||
      (mkdir(vms_dir, 0700) < 0 && errno != EEXIST))
    return error_code(VMH_EIO, "cannot create %s: %s", vms_dir,
                      strerror(errno));
  return 0;
}

/* ---- record → JSON ----------------------------------------------------- */

/* Set key to a string, or leave it out when s is NULL. */
static void set_str(json_t *o, const char *key, const char *s) {
  if (s)
    json_object_set_new(o, key, json_string(s));
}

static void set_int(json_t *o, const char *key, json_int_t v) {
  json_object_set_new(o, key, json_integer(v));
}

static json_t *disk_to_json(const struct vm_disk *d) {
  json_t *o = json_object();
  set_str(o, "name", d->name);
  set_str(o, "pool", d->pool);
  set_str(o, "volume", d->volume);
  set_str(o, "base_image", d->base_image);
  set_int(o, "size", (json_int_t)d->size);
  set_int(o, "format", d->format);
  set_int(o, "bus", d->bus);
  set_int(o, "readonly", d->readonly);
  set_int(o, "boot_order", d->boot_order);
  set_int(o, "created", d->created);
  set_int(o, "mapped", d->mapped);
  return o;
}

static json_t *nic_to_json(const struct vm_nic *n) {
  json_t *o = json_object();
  set_str(o, "name", n->name);
  set_str(o, "network", n->network);
  set_str(o, "mac", n->mac);
  set_int(o, "vlan", n->vlan);
  set_int(o, "model", n->model);
  set_int(o, "bound", n->bound);
  if (n->bound) {
    json_t *b = json_object();
    set_int(b, "type", n->b_type);
    set_str(b, "bridge", n->b_bridge);
    set_str(b, "port", n->b_port);
    set_str(b, "interface_id", n->b_interface_id);
    set_str(b, "tap", n->b_tap);
    set_str(b, "mac", n->b_mac);
    set_int(b, "vlan", n->b_vlan);
    set_int(b, "mtu", n->b_mtu);
    json_object_set_new(o, "binding", b);
  }
  return o;
}

static json_t *vm_to_json(const struct vm *vm) {
  json_t *o = json_object();
  set_int(o, "version", STATE_VERSION);
  set_str(o, "id", vm->id);
  set_str(o, "name", vm->name);
  set_int(o, "vcpus", vm->vcpus);
  set_int(o, "memory", (json_int_t)vm->memory);
  set_str(o, "kernel", vm->kernel);
  set_str(o, "initrd", vm->initrd);
  set_str(o, "cmdline", vm->cmdline);
  set_str(o, "firmware", vm->firmware);
  set_int(o, "guest_channel", vm->guest_channel);
  set_str(o, "user_data", vm->user_data);
  set_str(o, "meta_data", vm->meta_data);
  set_str(o, "network_config", vm->network_config);
  set_str(o, "hypervisor", vm->hypervisor);
  set_int(o, "status", vm->status);
  set_int(o, "defined", vm->defined);
  set_int(o, "created", vm->created);
  set_str(o, "error", vm->error);
  set_int(o, "state", vm->state);

  json_t *a = json_array();
  for (size_t i = 0; i < vm->n_disks; i++)
    json_array_append_new(a, disk_to_json(&vm->disks[i]));
  json_object_set_new(o, "disks", a);
  a = json_array();
  for (size_t i = 0; i < vm->n_nics; i++)
    json_array_append_new(a, nic_to_json(&vm->nics[i]));
  json_object_set_new(o, "nics", a);
  json_t *md = json_object();
  for (size_t i = 0; i < vm->n_metadata; i++)
    json_object_set_new(md, vm->metadata[i].key,
                        json_string(vm->metadata[i].value));
  json_object_set_new(o, "metadata", md);
  return o;
}

/* ---- JSON → record ----------------------------------------------------- */

/* A copy of key's string, NULL when absent; *bad set on a wrong type. */
static char *get_str(json_t *o, const char *key, int *bad) {
  json_t *v = json_object_get(o, key);
  if (!v)
    return NULL;
  if (!json_is_string(v)) {
    *bad = 1;
    return NULL;
  }
  char *s = strdup(json_string_value(v));
  if (!s)
    *bad = 1;
  return s;
}

static uint64_t get_u64(json_t *o, const char *key, int *bad) {
  json_t *v = json_object_get(o, key);
  if (!v)
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0) {
    *bad = 1;
    return 0;
  }
  return (uint64_t)json_integer_value(v);
}

static void disk_from_json(json_t *o, struct vm_disk *d, int *bad) {
  d->name = get_str(o, "name", bad);
  d->pool = get_str(o, "pool", bad);
  d->volume = get_str(o, "volume", bad);
  d->base_image = get_str(o, "base_image", bad);
  d->size = get_u64(o, "size", bad);
  d->format = (uint32_t)get_u64(o, "format", bad);
  d->bus = (uint32_t)get_u64(o, "bus", bad);
  d->readonly = (uint32_t)get_u64(o, "readonly", bad);
  d->boot_order = (uint32_t)get_u64(o, "boot_order", bad);
  d->created = (int)get_u64(o, "created", bad);
  d->mapped = (int)get_u64(o, "mapped", bad);
  if (!d->name || !d->pool || !d->volume)
    *bad = 1;
}

static void nic_from_json(json_t *o, struct vm_nic *n, int *bad) {
  n->name = get_str(o, "name", bad);
  n->network = get_str(o, "network", bad);
  n->mac = get_str(o, "mac", bad);
  n->vlan = (uint32_t)get_u64(o, "vlan", bad);
  n->model = (uint32_t)get_u64(o, "model", bad);
  n->bound = (int)get_u64(o, "bound", bad);
  json_t *b = json_object_get(o, "binding");
  if (n->bound && json_is_object(b)) {
    n->b_type = (uint32_t)get_u64(b, "type", bad);
    n->b_bridge = get_str(b, "bridge", bad);
    n->b_port = get_str(b, "port", bad);
    n->b_interface_id = get_str(b, "interface_id", bad);
    n->b_tap = get_str(b, "tap", bad);
    n->b_mac = get_str(b, "mac", bad);
    n->b_vlan = (uint32_t)get_u64(b, "vlan", bad);
    n->b_mtu = (uint32_t)get_u64(b, "mtu", bad);
  } else if (n->bound) {
    *bad = 1;
  }
  if (!n->name || !n->network)
    *bad = 1;
}

static struct vm *vm_from_json(json_t *o) {
  int bad = 0;
  struct vm *vm = calloc(1, sizeof *vm);
  if (!vm)
    return NULL;
  if (get_u64(o, "version", &bad) != STATE_VERSION)
    bad = 1;
  _cleanup_free_ char *id = get_str(o, "id", &bad);
  if (!id || strlen(id) != VMH_ID_LEN)
    bad = 1;
  else
    memcpy(vm->id, id, VMH_ID_LEN + 1);
  vm->name = get_str(o, "name", &bad);
  vm->vcpus = (uint32_t)get_u64(o, "vcpus", &bad);
  vm->memory = get_u64(o, "memory", &bad);
  vm->kernel = get_str(o, "kernel", &bad);
  vm->initrd = get_str(o, "initrd", &bad);
  vm->cmdline = get_str(o, "cmdline", &bad);
  vm->firmware = get_str(o, "firmware", &bad);
  vm->guest_channel = (int)get_u64(o, "guest_channel", &bad);
  vm->user_data = get_str(o, "user_data", &bad);
  vm->meta_data = get_str(o, "meta_data", &bad);
  vm->network_config = get_str(o, "network_config", &bad);
  vm->hypervisor = get_str(o, "hypervisor", &bad);
  vm->status = (uint32_t)get_u64(o, "status", &bad);
  vm->defined = (int)get_u64(o, "defined", &bad);
  vm->created = (int64_t)get_u64(o, "created", &bad);
  vm->error = get_str(o, "error", &bad);
  vm->state = (uint32_t)get_u64(o, "state", &bad);
  if (!vm->name || !vm->hypervisor)
    bad = 1;

  json_t *a = json_object_get(o, "disks");
  if (json_is_array(a) && json_array_size(a) > 0) {
    vm->disks = calloc(json_array_size(a), sizeof *vm->disks);
    if (!vm->disks)
      bad = 1;
    for (size_t i = 0; vm->disks && i < json_array_size(a); i++) {
      vm->n_disks++;
      disk_from_json(json_array_get(a, i), &vm->disks[i], &bad);
    }
  }
  a = json_object_get(o, "nics");
  if (json_is_array(a) && json_array_size(a) > 0) {
    vm->nics = calloc(json_array_size(a), sizeof *vm->nics);
    if (!vm->nics)
      bad = 1;
    for (size_t i = 0; vm->nics && i < json_array_size(a); i++) {
      vm->n_nics++;
      nic_from_json(json_array_get(a, i), &vm->nics[i], &bad);
    }
  }
  json_t *md = json_object_get(o, "metadata");
  if (json_is_object(md) && json_object_size(md) > 0) {
    vm->metadata = calloc(json_object_size(md), sizeof *vm->metadata);
    if (!vm->metadata)
      bad = 1;
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v) {
      if (!vm->metadata || !json_is_string(v)) {
        bad = 1;
        break;
      }
      struct vm_kv *kv = &vm->metadata[vm->n_metadata++];
      kv->key = strdup(k);
      kv->value = strdup(json_string_value(v));
      if (!kv->key || !kv->value)
        bad = 1;
    }
  }
  if (bad) {
    vm_free(vm);
    return NULL;
  }
  return vm;
}

/* ---- files ------------------------------------------------------------- */

int state_save(const struct vm *vm) {
  _cleanup_free_ char *path = NULL, *text = NULL;
  if (asprintf(&path, "%s/%s.json", vms_dir, vm->id) < 0)
    return error_code(VMH_ENOMEM, "out of memory");
  json_t *o = vm_to_json(vm);
  text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(o);
  if (!text)
    return error_code(VMH_ENOMEM, "out of memory");
  if (atomic_write(path, text, strlen(text), 0600) < 0)
    return error_code(VMH_EIO, "cannot write the record of VM %s to %s: %s",
                      vm->name, path, strerror(errno));
  return 0;
}

int state_remove(const char *id) {
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/%s.json", vms_dir, id) < 0)
    return error_code(VMH_ENOMEM, "out of memory");
  if (unlink(path) < 0 && errno != ENOENT)
    return error_code(VMH_EIO, "cannot remove %s: %s", path, strerror(errno));
  fsync_parent(path);
  return 0;
}

static void set_aside(const char *path) {
  _cleanup_free_ char *aside = NULL;
  if (asprintf(&aside, "%s.corrupt", path) >= 0 && rename(path, aside) == 0)
    log_error("%s: unreadable VM record moved to %s", path, aside);
}

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

int state_load(void (*fn)(void *opaque, struct vm *vm), void *opaque) {
  DIR *dir = opendir(vms_dir);
  if (!dir)
    return error_code(VMH_EIO, "cannot read %s: %s", vms_dir, strerror(errno));
  int count = 0;
  struct dirent *e;
  while ((e = readdir(dir))) {
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/%s", vms_dir, e->d_name) < 0)
      break;
    if (e->d_name[0] == '.' && has_suffix(e->d_name, ".json.tmp")) {
      /* A write interrupted before its rename: the old record stands. */
      log_info("removing %s, left by an interrupted write", path);
      unlink(path);
      continue;
    }
    if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".json"))
      continue;
    json_error_t jerr;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    struct vm *vm = o ? vm_from_json(o) : NULL;
    json_decref(o);
    if (!vm) {
      log_error("%s: not a valid VM record%s%s", path, o ? "" : ": ",
                o ? "" : jerr.text);
      set_aside(path);
      continue;
    }
    fn(opaque, vm);
    count++;
  }
  closedir(dir);
  return count;
}
