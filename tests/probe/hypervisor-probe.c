/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A test hypervisor that observes how the core calls it: how many of its
 * operations run at once in the whole plugin, per instance and per VM.  It
 * publishes the maxima as gauges (vmhost_plugin_max_inflight_*), and with
 * `barrier: N` each define/start waits until N calls are inside the plugin
 * at the same time, proving the core runs them in parallel; a barrier not
 * met within 10 s fails the call with VMH_ETIMEDOUT.
 *
 * Built three times, once per thread model (PROBE_MODEL), as probe-all,
 * probe-instance and probe-parallel. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VMH_THREAD_MODEL PROBE_MODEL
#include <vmhost/vmhost-plugin.h>

#define MAX_VMS 64

struct probe_vm {
  char id[VMH_ID_LEN + 1];
  char name[VMH_NAME_MAX + 1];
  uint32_t state;
  int inflight;
};

struct probe {
  const struct vmh_instance *inst;
  int64_t barrier, hold_ms;
  struct probe_vm vms[MAX_VMS];
  int inflight;
};

static const struct vmh_host *host;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int plugin_inflight, max_plugin, max_instance, max_vm;

static int probe_open(const struct vmh_host *h, const struct vmh_instance *inst,
                      const struct vmh_config *cfg, void **ret,
                      uint32_t flags) {
  host = h;
  struct probe *p = calloc(1, sizeof *p);
  if (!p)
    return VMH_ENOMEM;
  p->inst = inst;
  if (h->config_int(cfg, "barrier", 0, 64, 0, &p->barrier, 0) < 0 ||
      h->config_int(cfg, "hold_ms", 0, 10000, 0, &p->hold_ms, 0) < 0) {
    free(p);
    return VMH_EINVAL;
  }
  (void)flags;
  *ret = p;
  return 0;
}

static void probe_close(void *handle) {
  free(handle);
}

static struct probe_vm *find(struct probe *p, const char *id) {
  for (int i = 0; i < MAX_VMS; i++)
    if (p->vms[i].id[0] && strcmp(p->vms[i].id, id) == 0)
      return &p->vms[i];
  return NULL;
}

static void publish(struct probe *p) {
  host->gauge_set(p->inst, "max_inflight_plugin", max_plugin);
  host->gauge_set(p->inst, "max_inflight_instance", max_instance);
  host->gauge_set(p->inst, "max_inflight_vm", max_vm);
}

/* Enter a tracked call on vm (may be NULL), wait for the barrier, hold. */
static int enter(struct probe *p, struct probe_vm *vm) {
  int r = 0;
  pthread_mutex_lock(&lock);
  plugin_inflight++;
  p->inflight++;
  if (vm)
    vm->inflight++;
  if (plugin_inflight > max_plugin)
    max_plugin = plugin_inflight;
  if (p->inflight > max_instance)
    max_instance = p->inflight;
  if (vm && vm->inflight > max_vm)
    max_vm = vm->inflight;
  publish(p);
  pthread_cond_broadcast(&cond);
  if (p->barrier > 1) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    while (plugin_inflight < p->barrier && r == 0)
      if (pthread_cond_timedwait(&cond, &lock, &deadline) != 0)
        r = VMH_ETIMEDOUT;
  }
  pthread_mutex_unlock(&lock);
  if (r == 0 && p->hold_ms)
    usleep((useconds_t)p->hold_ms * 1000);
  if (r)
    host->error("barrier of %lld calls at once not reached in 10 s",
                (long long)p->barrier);
  return r;
}

static void leave(struct probe *p, struct probe_vm *vm) {
  pthread_mutex_lock(&lock);
  plugin_inflight--;
  p->inflight--;
  if (vm)
    vm->inflight--;
  pthread_mutex_unlock(&lock);
}

static int probe_caps(void *h, struct vmh_hypervisor_caps *c, uint32_t flags) {
  (void)h;
  (void)flags;
  c->source_types = 0xffff;
  c->binding_types = 0xffff;
  return 0;
}

static int probe_define(void *h, const struct vmh_vm_spec *spec,
                        uint32_t flags) {
  struct probe *p = h;
  pthread_mutex_lock(&lock);
  struct probe_vm *vm = NULL;
  for (int i = 0; i < MAX_VMS && !vm; i++)
    if (!p->vms[i].id[0])
      vm = &p->vms[i];
  if (vm) {
    snprintf(vm->id, sizeof vm->id, "%s", spec->id);
    snprintf(vm->name, sizeof vm->name, "%s", spec->name);
    vm->state = (flags & VMH_DEFINE_START) ? VMH_VM_RUNNING : VMH_VM_STOPPED;
  }
  pthread_mutex_unlock(&lock);
  if (!vm) {
    host->error("probe: more than %d VMs", MAX_VMS);
    return VMH_ENOSPC;
  }
  int r = enter(p, vm);
  leave(p, vm);
  if (r) {
    pthread_mutex_lock(&lock);
    memset(vm, 0, sizeof *vm);
    pthread_mutex_unlock(&lock);
  }
  return r;
}

static int probe_undefine(void *h, const char *id, uint32_t flags) {
  struct probe *p = h;
  (void)flags;
  pthread_mutex_lock(&lock);
  struct probe_vm *vm = find(p, id);
  if (vm)
    memset(vm, 0, sizeof *vm);
  pthread_mutex_unlock(&lock);
  if (!vm)
    host->error("no VM %s", id);
  return vm ? 0 : VMH_ENOENT;
}

static int set_state(void *h, const char *id, uint32_t state) {
  struct probe *p = h;
  pthread_mutex_lock(&lock);
  struct probe_vm *vm = find(p, id);
  pthread_mutex_unlock(&lock);
  if (!vm) {
    host->error("no VM %s", id);
    return VMH_ENOENT;
  }
  int r = enter(p, vm);
  pthread_mutex_lock(&lock);
  if (r == 0)
    vm->state = state;
  pthread_mutex_unlock(&lock);
  leave(p, vm);
  return r;
}

static int probe_start(void *h, const char *id, uint32_t flags) {
  (void)flags;
  return set_state(h, id, VMH_VM_RUNNING);
}

static int probe_stop(void *h, const char *id, uint32_t t, uint32_t flags) {
  (void)t;
  (void)flags;
  return set_state(h, id, VMH_VM_STOPPED);
}

static int visit(const struct probe_vm *vm, vmh_vm_info_fn fn, void *opaque) {
  struct vmh_vm_info info = {.struct_size = sizeof info,
                             .id = vm->id,
                             .name = vm->name,
                             .state = vm->state};
  return fn(opaque, &info);
}

static int probe_get(void *h, const char *id, vmh_vm_info_fn fn, void *opaque,
                     uint32_t flags) {
  (void)flags;
  pthread_mutex_lock(&lock);
  struct probe_vm copy, *vm = find(h, id);
  if (vm)
    copy = *vm;
  pthread_mutex_unlock(&lock);
  if (!vm) {
    host->error("no VM %s", id);
    return VMH_ENOENT;
  }
  return visit(&copy, fn, opaque);
}

static int probe_list(void *h, vmh_vm_info_fn fn, void *opaque,
                      uint32_t flags) {
  struct probe *p = h;
  (void)flags;
  for (int i = 0; i < MAX_VMS; i++) {
    pthread_mutex_lock(&lock);
    struct probe_vm copy = p->vms[i];
    pthread_mutex_unlock(&lock);
    if (copy.id[0])
      visit(&copy, fn, opaque);
  }
  return 0;
}

static struct vmh_hypervisor_ops ops = {
    .open = probe_open,
    .close = probe_close,
    .caps = probe_caps,
    .define = probe_define,
    .undefine = probe_undefine,
    .start = probe_start,
    .stop = probe_stop,
    .get = probe_get,
    .list = probe_list,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_HYPERVISOR,
    .name = PROBE_NAME,
    .version = "1",
    .description = "test: observes concurrency",
    .hypervisor = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
