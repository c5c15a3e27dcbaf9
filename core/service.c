/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The core's services for front-ends: storage, networks, host, health,
 * plugins, metrics and events (VM operations are in vm.c and
 * orchestrate.c).  Anything that touches a backend runs on the worker pool;
 * answers from memory complete inline. */
#include <config.h>

#include "service.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "cleanup.h"
#include "error.h"
#include "events.h"
#include "hostinfo.h"
#include "hosttelemetry.h"
#include "instance.h"
#include "loader.h"
#include "metrics.h"
#include "operations.h"
#include "orchestrate.h"
#include "resources.h"
#include "speclimits.h"
#include "validate.h"
#include "vm.h"
#include "workers.h"

static atomic_int ready;

void service_set_ready(int r) {
  atomic_store(&ready, r);
}

static int service_ready(void) {
  return atomic_load(&ready);
}

/* A storage, network or host operation in flight. */
struct op {
  vmh_reply_t *r;
  uint32_t flags;
  char *a, *b; /* pool/network name, volume/image name */
  uint64_t size;
  struct vmh_volume_spec vol;
  struct vmh_image_spec img;
  char *url, *sha256, *base;           /* owned strings of vol/img */
  const struct vmh_instance *visiting; /* the instance a list is at */
  int (*fn)(struct op *op);
};

static void op_free(struct op *op) {
  free(op->a);
  free(op->b);
  free(op->url);
  free(op->sha256);
  free(op->base);
  free(op);
}

static void op_run(void *arg) {
  struct op *op = arg;
  int code = workers_cancelled()
                 ? error_code(VMH_ECANCELED,
                              "vmhostd stopped before the operation could run")
                 : ops_begin(op->r);
  reply_done(op->r, code ? code : op->fn(op));
  op_free(op);
}

static int dup_or_null(char **dst, const char *src) {
  *dst = src ? strdup(src) : NULL;
  return src && !*dst ? -1 : 0;
}

/* Queue fn with its arguments copied; key orders work on one object. */
static void queue(int (*fn)(struct op *), const char *key, const char *a,
                  const char *b, vmh_reply_t *r, uint32_t flags,
                  struct op **ret_op) {
  struct op *op = calloc(1, sizeof *op);
  if (!op || dup_or_null(&op->a, a) < 0 || dup_or_null(&op->b, b) < 0) {
    if (op)
      op_free(op);
    error_set("out of memory");
    reply_done(r, VMH_ENOMEM);
    return;
  }
  op->fn = fn;
  op->r = r;
  op->flags = flags;
  if (ret_op) {
    *ret_op = op;
    return;
  }
  if (workers_submit(key, op_run, op) < 0) {
    op_free(op);
    error_set("vmhostd is shutting down; try again");
    reply_done(r, VMH_EAGAIN);
  }
}

static void submit(struct op *op, const char *key) {
  if (workers_submit(key, op_run, op) < 0) {
    vmh_reply_t *r = op->r;
    op_free(op);
    error_set("vmhostd is shutting down; try again");
    reply_done(r, VMH_EAGAIN);
  }
}

static int refuse_name(const char *what, const char *name, vmh_reply_t *r) {
  if (vmh_name_valid(name))
    return 0;
  error_set("%s name '%s' is invalid (expected " VMH_NAME_RULE ")", what,
            name ? name : "");
  reply_done(r, VMH_EINVAL);
  return -1;
}

/* A named object's name must be given (NULL would pick the first). */
static int refuse_missing(const char *what, const char *name, vmh_reply_t *r) {
  if (name && *name)
    return 0;
  error_set("give the %s's name", what);
  reply_done(r, VMH_EINVAL);
  return -1;
}

/* ---- storage ------------------------------------------------------------ */

static struct vmh_instance *pool_of(struct op *op) {
  return instance_find(VMH_KIND_STORAGE, op->a);
}

static int pool_cb(void *opaque, const struct vmh_pool_info *in) {
  struct op *op = opaque;
  struct vmh_pool_info p = {0};
  memcpy(&p, in, in->struct_size < sizeof p ? in->struct_size : sizeof p);
  p.struct_size = sizeof p;
  p.name = op->visiting->name;
  p.type = op->visiting->plugin->desc.name;
  if (op->r->pool)
    op->r->pool(op->r->opaque, &p);
  return 0;
}

static int pool_one(struct op *op, struct vmh_instance *inst) {
  op->visiting = inst;
  return INSTANCE_CALL(inst, storage, pool_info, pool_cb, op, 0);
}

/* A pool that cannot answer (its server is down) is still listed, with
 * why: one pool must not hide the others. */
static int do_pool_list(struct op *op) {
  for (size_t i = 0; i < instances_count(); i++) {
    struct vmh_instance *inst = instance_at(i);
    if (inst->kind != VMH_KIND_STORAGE || !inst->is_open ||
        pool_one(op, inst) == 0)
      continue;
    struct vmh_pool_info p = {.struct_size = sizeof p, .message = error_get()};
    pool_cb(op, &p);
  }
  return 0;
}

static int do_pool_get(struct op *op) {
  struct vmh_instance *inst = pool_of(op);
  return inst ? pool_one(op, inst) : VMH_ENOENT;
}

static void pool_list(vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, 0) == 0)
    queue(do_pool_list, NULL, NULL, NULL, r, flags, NULL);
}

static void pool_get(const char *pool, vmh_reply_t *r, uint32_t flags) {
  if (refuse_missing("pool", pool, r) == 0 &&
      reply_check_flags(r, flags, 0) == 0)
    queue(do_pool_get, NULL, pool, NULL, r, flags, NULL);
}

static int volume_cb(void *opaque, const struct vmh_volume_info *in) {
  struct op *op = opaque;
  struct vmh_volume_info v = {0};
  memcpy(&v, in, in->struct_size < sizeof v ? in->struct_size : sizeof v);
  v.struct_size = sizeof v;
  if (op->r->volume)
    op->r->volume(op->r->opaque, &v);
  return 0;
}

static int do_volume_list(struct op *op) {
  struct vmh_instance *inst = pool_of(op);
  return inst ? INSTANCE_CALL(inst, storage, vol_list, volume_cb, op, 0)
              : VMH_ENOENT;
}

static int do_volume_get(struct op *op) {
  struct vmh_instance *inst = pool_of(op);
  return inst ? INSTANCE_CALL(inst, storage, vol_get, op->b, volume_cb, op, 0)
              : VMH_ENOENT;
}

static int do_volume_create(struct op *op) {
  struct vmh_instance *inst = pool_of(op);
  if (!inst)
    return VMH_ENOENT;
  int r = resources_volume_reserve(inst->name, op->b, op->vol.size);
  if (r < 0)
    return r;
  r = INSTANCE_CALL(inst, storage, vol_create, &op->vol, 0);
  resources_volume_release(inst->name, op->vol.size, r == 0);
  return r ? r : INSTANCE_CALL(inst, storage, vol_get, op->b, volume_cb, op, 0);
}

static int do_volume_resize(struct op *op) {
  struct vmh_instance *inst = pool_of(op);
  if (!inst)
    return VMH_ENOENT;
  /* A VM's record keeps its disks' sizes, and its guest sees the old one
   * until the hypervisor is told: a volume in use is not resized behind
   * it. */
  if (vms_volume_in_use(inst->name, op->b))
    return error_code(VMH_EBUSY,
                      "volume %s/%s is used by a VM; detach it (or delete "
                      "the VM) before resizing it",
                      inst->name, op->b);
  int r = INSTANCE_CALL(inst, storage, vol_resize, op->b, op->size, op->flags);
  return r ? r : INSTANCE_CALL(inst, storage, vol_get, op->b, volume_cb, op, 0);
}

static int do_volume_delete(struct op *op) {
  struct vmh_instance *inst = pool_of(op);
  if (!inst)
    return VMH_ENOENT;
  /* Checked again here, in the volume's order, against a VM create that
   * raced the request. */
  if (vms_volume_in_use(inst->name, op->b))
    return error_code(VMH_EBUSY,
                      "volume %s/%s is used by a VM; detach it or "
                      "delete the VM first",
                      inst->name, op->b);
  int r = INSTANCE_CALL(inst, storage, vol_delete, op->b, 0);
  resources_sample_pool(inst->name);
  return r;
}

/* what: "volume" or "image", the kind of object vol names. */
static void object_op(int (*fn)(struct op *), const char *what,
                      const char *pool, const char *vol, vmh_reply_t *r,
                      uint32_t flags, struct op **ret_op) {
  if (refuse_missing("pool", pool, r) < 0 || refuse_name(what, vol, r) < 0)
    return;
  queue(fn, NULL, pool, vol, r, flags, ret_op);
}

static void volume_op(int (*fn)(struct op *), const char *pool, const char *vol,
                      vmh_reply_t *r, uint32_t flags, struct op **ret_op) {
  object_op(fn, "volume", pool, vol, r, flags, ret_op);
}

/* Volume work is ordered per volume. */
static void submit_volume(struct op *op) {
  _cleanup_free_ char *key = volume_key(op->a, op->b);
  submit(op, key);
}

static void volume_list(const char *pool, vmh_reply_t *r, uint32_t flags) {
  if (refuse_missing("pool", pool, r) == 0 &&
      reply_check_flags(r, flags, 0) == 0)
    queue(do_volume_list, NULL, pool, NULL, r, flags, NULL);
}

static void volume_get(const char *pool, const char *vol, vmh_reply_t *r,
                       uint32_t flags) {
  if (reply_check_flags(r, flags, 0) == 0)
    volume_op(do_volume_get, pool, vol, r, flags, NULL);
}

static void volume_create(const char *pool, const struct vmh_volume_spec *in,
                          vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, 0) < 0)
    return;
  if (!in || in->struct_size < offsetof(struct vmh_volume_spec, base_image)) {
    error_set("the volume spec is missing or too small");
    return reply_done(r, VMH_EINVAL);
  }
  struct vmh_volume_spec s = {0};
  memcpy(&s, in, in->struct_size < sizeof s ? in->struct_size : sizeof s);
  if (s.format > VMH_FORMAT_QCOW2) {
    error_set("unknown volume format %" PRIu32, s.format);
    return reply_done(r, VMH_EINVAL);
  }
  if (s.base_image && refuse_name("image", s.base_image, r) < 0)
    return;
  if (!s.size && !s.base_image) {
    error_set("give the volume a size, or a base_image to clone");
    return reply_done(r, VMH_EINVAL);
  }
  struct op *op = NULL;
  volume_op(do_volume_create, pool, s.name, r, flags, &op);
  if (!op)
    return;
  if (dup_or_null(&op->base, s.base_image) < 0) {
    op_free(op);
    error_set("out of memory");
    return reply_done(r, VMH_ENOMEM);
  }
  op->vol = (struct vmh_volume_spec){.struct_size = sizeof op->vol,
                                     .name = op->b,
                                     .size = s.size,
                                     .format = s.format,
                                     .base_image = op->base};
  submit_volume(op);
}

static void volume_resize(const char *pool, const char *vol, uint64_t size,
                          vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, VMH_RESIZE_SHRINK) < 0)
    return;
  if (size == 0) {
    error_set("the new size must be more than 0");
    return reply_done(r, VMH_EINVAL);
  }
  struct op *op = NULL;
  volume_op(do_volume_resize, pool, vol, r, flags, &op);
  if (!op)
    return;
  op->size = size;
  submit_volume(op);
}

static void volume_delete(const char *pool, const char *vol, vmh_reply_t *r,
                          uint32_t flags) {
  if (reply_check_flags(r, flags, 0) < 0)
    return;
  struct op *op = NULL;
  volume_op(do_volume_delete, pool, vol, r, flags, &op);
  if (op)
    submit_volume(op);
}

static int do_image_list(struct op *op);

static int image_cb(void *opaque, const struct vmh_image_info *in) {
  struct op *op = opaque;
  struct vmh_image_info i = {0};
  memcpy(&i, in, in->struct_size < sizeof i ? in->struct_size : sizeof i);
  i.struct_size = sizeof i;
  /* After an import: only the image made (op->b). */
  if (op->fn != do_image_list && (!i.name || strcmp(i.name, op->b)))
    return 0;
  if (op->r->image)
    op->r->image(op->r->opaque, &i);
  return 0;
}

static int do_image_list(struct op *op) {
  struct vmh_instance *inst = pool_of(op);
  return inst ? INSTANCE_CALL(inst, storage, image_list, image_cb, op, 0)
              : VMH_ENOENT;
}

/* Answers with the image imported, as the pool lists it. */
static int do_image_import(struct op *op) {
  struct vmh_instance *inst = pool_of(op);
  if (!inst)
    return VMH_ENOENT;
  int r = INSTANCE_CALL(inst, storage, image_import, &op->img, 0);
  resources_sample_pool(inst->name);
  return r ? r : INSTANCE_CALL(inst, storage, image_list, image_cb, op, 0);
}

static int do_image_delete(struct op *op) {
  struct vmh_instance *inst = pool_of(op);
  if (!inst)
    return VMH_ENOENT;
  int r = INSTANCE_CALL(inst, storage, image_delete, op->b, 0);
  resources_sample_pool(inst->name);
  return r;
}

static void image_list(const char *pool, vmh_reply_t *r, uint32_t flags) {
  if (refuse_missing("pool", pool, r) == 0 &&
      reply_check_flags(r, flags, 0) == 0)
    queue(do_image_list, NULL, pool, NULL, r, flags, NULL);
}

/* Downloads may stall for minutes (imagefetch: 60 s without a byte ends an
 * attempt, and an import tries 5 times): at most IMPORT_LANES of them hold
 * a worker at once, whatever a client asks, so that VM work always finds
 * one.  The others wait queued (visible, cancellable operations). */
#define IMPORT_LANES 2

static void submit_import(struct op *op) {
  static atomic_uint next;
  char key[32];
  snprintf(key, sizeof key, "image-import/%u",
           atomic_fetch_add(&next, 1) % IMPORT_LANES);
  submit(op, key);
}

static int valid_sha256(const char *s) {
  return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static void image_import(const char *pool, const struct vmh_image_spec *in,
                         vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, 0) < 0)
    return;
  if (!in || in->struct_size < sizeof *in) {
    error_set("the image spec is missing or too small");
    return reply_done(r, VMH_EINVAL);
  }
  if (!in->url || (strncmp(in->url, "file://", 7) != 0 &&
                   strncmp(in->url, "http://", 7) != 0 &&
                   strncmp(in->url, "https://", 8) != 0)) {
    error_set(
        "image url '%.200s' must be file://, http:// or https:// "
        "(the pool's image_sources say which it allows)",
        in->url ? in->url : "");
    return reply_done(r, VMH_EINVAL);
  }
  if (strlen(in->url) > SPEC_IMAGE_URL_MAX) {
    error_set("image url is longer than %d bytes", SPEC_IMAGE_URL_MAX);
    return reply_done(r, VMH_EINVAL);
  }
  if (!valid_sha256(in->sha256)) {
    error_set("image sha256 must be 64 lower-case hex digits (sha256sum)");
    return reply_done(r, VMH_EINVAL);
  }
  if (refuse_missing("pool", pool, r) < 0 ||
      refuse_name("image", in->name, r) < 0)
    return;
  /* Refused now, not as a failed operation: no such pool, or a pool
   * without an image cache. */
  struct vmh_instance *inst = instance_find(VMH_KIND_STORAGE, pool);
  if (!inst)
    return reply_done(r, VMH_ENOENT);
  if (!inst->plugin->ops.storage.image_import)
    return reply_done(r, call_unsupported(inst, "image_import"));
  struct op *op = NULL;
  object_op(do_image_import, "image", pool, in->name, r, flags, &op);
  if (!op)
    return;
  if (dup_or_null(&op->url, in->url) < 0 ||
      dup_or_null(&op->sha256, in->sha256) < 0) {
    op_free(op);
    error_set("out of memory");
    return reply_done(r, VMH_ENOMEM);
  }
  op->img = (struct vmh_image_spec){.struct_size = sizeof op->img,
                                    .name = op->b,
                                    .url = op->url,
                                    .sha256 = op->sha256};
  submit_import(op);
}

static void image_delete(const char *pool, const char *image, vmh_reply_t *r,
                         uint32_t flags) {
  if (reply_check_flags(r, flags, 0) < 0)
    return;
  struct op *op = NULL;
  object_op(do_image_delete, "image", pool, image, r, flags, &op);
  if (op)
    submit_volume(op);
}

/* ---- networks ----------------------------------------------------------- */

static int network_cb(void *opaque, const struct vmh_network_info *in) {
  struct op *op = opaque;
  struct vmh_network_info n = {0};
  memcpy(&n, in, in->struct_size < sizeof n ? in->struct_size : sizeof n);
  n.struct_size = sizeof n;
  n.name = op->visiting->name;
  n.type = op->visiting->plugin->desc.name;
  if (op->r->network)
    op->r->network(op->r->opaque, &n);
  return 0;
}

static int network_one(struct op *op, struct vmh_instance *inst) {
  op->visiting = inst;
  return INSTANCE_CALL(inst, network, info, network_cb, op, 0);
}

static int do_network_list(struct op *op) {
  for (size_t i = 0; i < instances_count(); i++) {
    struct vmh_instance *inst = instance_at(i);
    if (inst->kind == VMH_KIND_NETWORK && inst->is_open &&
        network_one(op, inst) < 0)
      return VMH_EIO;
  }
  return 0;
}

static int do_network_get(struct op *op) {
  struct vmh_instance *inst = instance_find(VMH_KIND_NETWORK, op->a);
  return inst ? network_one(op, inst) : VMH_ENOENT;
}

static void network_list(vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, 0) == 0)
    queue(do_network_list, NULL, NULL, NULL, r, flags, NULL);
}

static void network_get(const char *net, vmh_reply_t *r, uint32_t flags) {
  if (refuse_missing("network", net, r) == 0 &&
      reply_check_flags(r, flags, 0) == 0)
    queue(do_network_get, NULL, net, NULL, r, flags, NULL);
}

/* ---- host, health, plugins, metrics ----------------------------------- */

static void host_cb(void *opaque, const struct vmh_host_info *h) {
  vmh_reply_t *r = opaque;
  if (r->host)
    r->host(r->opaque, h);
}

static void host_info(vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, 0) < 0)
    return;
  hostinfo_read(host_cb, (void *)r);
  reply_done(r, 0);
}

static void check(vmh_reply_t *r, const char *name, const char *kind,
                  uint32_t status, const char *message) {
  struct vmh_health_check c = {.struct_size = sizeof c,
                               .name = name,
                               .kind = kind,
                               .status = status,
                               .message = message};
  if (r->check)
    r->check(r->opaque, &c);
}

static int do_health(struct op *op) {
  uint32_t worst = VMH_CHECK_OK;
  for (size_t i = 0; i < instances_count(); i++) {
    struct vmh_instance *inst = instance_at(i);
    uint32_t status = VMH_CHECK_OK;
    const char *msg = NULL;
    if (!inst->is_open) {
      status = inst->conf->optional ? VMH_CHECK_DEGRADED : VMH_CHECK_FAILED;
      msg = inst->failure ? inst->failure : "not open";
    } else if (instance_check_health(inst) < 0) {
      status = VMH_CHECK_FAILED;
      msg = error_get();
    }
    check(op->r, inst->name, kind_name(inst->kind), status, msg);
    if (status > worst)
      worst = status;
  }
  check(op->r, "core", "core",
        service_ready() ? VMH_CHECK_OK : VMH_CHECK_DEGRADED,
        service_ready() ? NULL : "starting or draining");
  /* The answer's code is readiness (/readyz, grpc.health.v1): the node
   * cannot serve while it starts or drains, or when an instance it needs
   * has failed.  An optional instance that is not serving leaves it
   * degraded, not unready. */
  if (!service_ready())
    return error_code(VMH_EAGAIN, "not ready: starting or draining");
  if (worst == VMH_CHECK_FAILED)
    return error_code(VMH_EIO, "not ready: an instance failed");
  return 0;
}

static _Atomic unsigned liveness_stall_s = 60;

void service_set_liveness_stall(unsigned seconds) {
  liveness_stall_s = seconds ? seconds : 1;
}

/* Whether the pool is wedged: a runnable task has waited liveness_stall
 * for a thread. */
static bool wedged(const struct workers_state *st) {
  return st->oldest_wait_ms >= (uint64_t)liveness_stall_s * 1000;
}

/* The pool's state as one check "workers", from memory on the caller's
 * thread (never queued: a wedged pool would never answer). */
static void answer_workers(vmh_reply_t *r, bool running,
                           const struct workers_state *st) {
  char msg[256];
  uint32_t status = VMH_CHECK_FAILED;
  int code = VMH_EAGAIN;
  if (!running) {
    snprintf(msg, sizeof msg, "the worker pool is not running");
  } else if (wedged(st)) {
    snprintf(msg, sizeof msg,
             "the worker pool is wedged: a task has waited %" PRIu64
             " s for a thread, %u of %u threads are busy in a backend call "
             "and %u tasks wait (daemon.liveness_stall: %u s)",
             st->oldest_wait_ms / 1000, st->busy, st->threads, st->runnable,
             (unsigned)liveness_stall_s);
    code = VMH_ETIMEDOUT;
  } else {
    snprintf(msg, sizeof msg, "%u of %u threads busy, %u tasks wait", st->busy,
             st->threads, st->runnable);
    status = VMH_CHECK_OK;
    code = 0;
  }
  struct vmh_health_check c = {.struct_size = sizeof c,
                               .name = "workers",
                               .kind = "core",
                               .status = status,
                               .message = msg};
  if (r->check)
    r->check(r->opaque, &c);
  if (code)
    error_set("%s", msg);
  reply_done(r, code);
}

static void health(vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, VMH_HEALTH_LIVENESS) < 0)
    return;
  struct workers_state st;
  bool running = workers_liveness(&st);
  /* Readiness of a wedged pool: the checks would wait behind the stuck
   * work; not ready, said at once. */
  if ((flags & VMH_HEALTH_LIVENESS) || (running && wedged(&st)))
    return answer_workers(r, running, &st);
  queue(do_health, NULL, NULL, NULL, r, flags, NULL);
}

static void plugin_list(vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, 0) < 0)
    return;
  for (size_t i = 0; i < loader_count(); i++) {
    const struct plugin *p = loader_at(i);
    const char *insts[instances_count() + 1];
    uint32_t n = 0;
    for (size_t j = 0; j < instances_count(); j++)
      if (instance_at(j)->plugin == p)
        insts[n++] = instance_at(j)->name;
    const char *ops[32];
    size_t n_ops = loader_ops(p, ops, 32);
    struct vmh_plugin_info info = {
        .struct_size = sizeof info,
        .name = p->desc.name,
        .kind = kind_name(p->desc.kind),
        .version = p->desc.version,
        .description = p->desc.description,
        .file = p->file,
        .abi_major = p->desc.abi_major,
        .abi_minor = p->desc.abi_minor,
        .thread_model = p->desc.thread_model,
        .instances = insts,
        .n_instances = n,
        .ops = ops,
        .n_ops = (uint32_t)n_ops,
    };
    if (r->plugin)
      r->plugin(r->opaque, &info);
  }
  reply_done(r, 0);
}

static void metrics(vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, 0) < 0)
    return;
  size_t len;
  _cleanup_free_ char *text = metrics_render(&len);
  if (!text) {
    error_set("out of memory");
    return reply_done(r, VMH_ENOMEM);
  }
  if (r->text)
    r->text(r->opaque, text, len);
  reply_done(r, 0);
}

static void plugin_status(const char *plugin, vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, 0) < 0)
    return;
  if (plugin == NULL) {
    error_set("plugin_status: no plugin named");
    return reply_done(r, VMH_EINVAL);
  }
  size_t n = 0;
  for (size_t i = 0; i < instances_count(); i++) {
    struct vmh_instance *inst = instance_at(i);
    if (!inst->plugin || strcmp(inst->plugin->desc.name, plugin))
      continue;
    pthread_mutex_lock(&instance_status_lock);
    _cleanup_free_ char *doc = inst->status ? strdup(inst->status) : NULL;
    pthread_mutex_unlock(&instance_status_lock);
    if (doc == NULL)
      continue;
    n++;
    if (r->text)
      r->text(r->opaque, doc, strlen(doc));
  }
  if (n == 0) {
    error_set(
        "no instance of plugin '%s' publishes a status (is one "
        "configured and started?)",
        plugin);
    return reply_done(r, VMH_ENOENT);
  }
  reply_done(r, 0);
}

/* ---- calls that change something run as operations (operations.h) ---- */

/* The VM vm (id or name) as an operation's target: its id and name when
 * it exists, else the name as given (the call will refuse it). */
static void vm_target(const char *vm, struct ops_target *t) {
  if (!vm)
    return;
  vms_rdlock();
  const struct vm *rec = vms_lookup(vm);
  if (rec) {
    snprintf(t->vm_id, sizeof t->vm_id, "%s", rec->id);
    snprintf(t->vm_name, sizeof t->vm_name, "%s", rec->name);
  }
  vms_unlock();
  if (!rec)
    snprintf(t->vm_name, sizeof t->vm_name, "%s", vm);
}

/* The id of the VM a create made (the name is unique), into t. */
static const char *created_id(struct ops_target *t) {
  if (t->vm_id[0] || !t->vm_name[0])
    return NULL;
  vm_target(t->vm_name, t);
  return t->vm_id[0] ? t->vm_id : NULL;
}

/* Run CALL (which answers w) as an operation of kind on the VM vm (id or
 * name, NULL: none) or pool/object. */
#define AS_OPERATION(kind, vm, pool_, object_, CALL)              \
  do {                                                            \
    struct ops_target t = {.pool = (pool_), .object = (object_)}; \
    vm_target((vm), &t);                                          \
    vmh_reply_t *w = ops_open((kind), &t, r, flags);              \
    if (w) {                                                      \
      flags &= ~VMH_ASYNC;                                        \
      CALL;                                                       \
      ops_close(w, created_id(&t));                               \
    }                                                             \
  } while (0)

static void op_vm_create(const struct vmh_vm_spec *spec, vmh_reply_t *r,
                         uint32_t flags) {
  const char *name =
      spec && VMH_HAS_FIELD(spec, name) && vmh_name_valid(spec->name)
          ? spec->name
          : NULL;
  AS_OPERATION("vm.create", name, NULL, NULL, vm_create(spec, w, flags));
}

static void op_vm_delete(const char *vm, vmh_reply_t *r, uint32_t flags) {
  AS_OPERATION("vm.delete", vm, NULL, NULL, vm_delete(vm, w, flags));
}

static void op_vm_action(const char *vm, uint32_t action, uint32_t timeout_s,
                         vmh_reply_t *r, uint32_t flags) {
  static const char *const kinds[] = {[VMH_ACTION_START] = "vm.start",
                                      [VMH_ACTION_STOP] = "vm.stop",
                                      [VMH_ACTION_REBOOT] = "vm.reboot",
                                      [VMH_ACTION_PAUSE] = "vm.pause",
                                      [VMH_ACTION_RESUME] = "vm.resume"};
  const char *kind = action >= VMH_ACTION_START && action <= VMH_ACTION_RESUME
                         ? kinds[action]
                         : "vm.action";
  AS_OPERATION(kind, vm, NULL, NULL,
               vm_action(vm, action, timeout_s, w, flags));
}

static void op_snapshot_create(const char *vm, const char *name, vmh_reply_t *r,
                               uint32_t flags) {
  AS_OPERATION("snapshot.create", vm, NULL, name,
               vm_snapshot_create(vm, name, w, flags));
}

static void op_snapshot_revert(const char *vm, const char *sid, vmh_reply_t *r,
                               uint32_t flags) {
  AS_OPERATION("snapshot.revert", vm, NULL, sid,
               vm_snapshot_revert(vm, sid, w, flags));
}

static void op_snapshot_delete(const char *vm, const char *sid, vmh_reply_t *r,
                               uint32_t flags) {
  AS_OPERATION("snapshot.delete", vm, NULL, sid,
               vm_snapshot_delete(vm, sid, w, flags));
}

static void op_disk_attach(const char *vm, const struct vmh_disk *disk,
                           vmh_reply_t *r, uint32_t flags) {
  const char *name =
      disk && VMH_HAS_FIELD(disk, name) && vmh_name_valid(disk->name)
          ? disk->name
          : NULL;
  AS_OPERATION("disk.attach", vm, NULL, name,
               vm_disk_attach(vm, disk, w, flags));
}

static void op_disk_detach(const char *vm, const char *disk, vmh_reply_t *r,
                           uint32_t flags) {
  AS_OPERATION("disk.detach", vm, NULL, disk,
               vm_disk_detach(vm, disk, w, flags));
}

static void op_vm_update_labels(const char *vm, const struct vmh_keyval *labels,
                                uint32_t n_labels, vmh_reply_t *r,
                                uint32_t flags) {
  AS_OPERATION("vm.labels", vm, NULL, NULL,
               vm_update_labels(vm, labels, n_labels, w, flags));
}

static void op_volume_create(const char *pool,
                             const struct vmh_volume_spec *spec, vmh_reply_t *r,
                             uint32_t flags) {
  const char *name =
      spec && VMH_HAS_FIELD(spec, name) && vmh_name_valid(spec->name)
          ? spec->name
          : NULL;
  AS_OPERATION("volume.create", NULL, pool, name,
               volume_create(pool, spec, w, flags));
}

static void op_volume_resize(const char *pool, const char *vol, uint64_t size,
                             vmh_reply_t *r, uint32_t flags) {
  AS_OPERATION("volume.resize", NULL, pool, vol,
               volume_resize(pool, vol, size, w, flags));
}

static void op_volume_delete(const char *pool, const char *vol, vmh_reply_t *r,
                             uint32_t flags) {
  AS_OPERATION("volume.delete", NULL, pool, vol,
               volume_delete(pool, vol, w, flags));
}

static void op_image_import(const char *pool, const struct vmh_image_spec *in,
                            vmh_reply_t *r, uint32_t flags) {
  const char *name = in && VMH_HAS_FIELD(in, name) && vmh_name_valid(in->name)
                         ? in->name
                         : NULL;
  AS_OPERATION("image.import", NULL, pool, name,
               image_import(pool, in, w, flags));
}

static void op_image_delete(const char *pool, const char *image, vmh_reply_t *r,
                            uint32_t flags) {
  AS_OPERATION("image.delete", NULL, pool, image,
               image_delete(pool, image, w, flags));
}

const struct vmh_core core_services = {
    .struct_size = sizeof(struct vmh_core),
    .vm_list = vm_list,
    .vm_get = vm_get,
    .vm_create = op_vm_create,
    .vm_delete = op_vm_delete,
    .vm_action = op_vm_action,
    .vm_console = vm_console,
    .snapshot_list = vm_snapshot_list,
    .snapshot_create = op_snapshot_create,
    .snapshot_revert = op_snapshot_revert,
    .snapshot_delete = op_snapshot_delete,
    .disk_attach = op_disk_attach,
    .disk_detach = op_disk_detach,
    .pool_list = pool_list,
    .pool_get = pool_get,
    .volume_list = volume_list,
    .volume_get = volume_get,
    .volume_create = op_volume_create,
    .volume_resize = op_volume_resize,
    .volume_delete = op_volume_delete,
    .image_list = image_list,
    .image_import = op_image_import,
    .image_delete = op_image_delete,
    .network_list = network_list,
    .network_get = network_get,
    .host_info = host_info,
    .health = health,
    .plugin_list = plugin_list,
    .metrics = metrics,
    .subscribe = events_subscribe,
    .unsubscribe = events_unsubscribe,
    .http_status = error_http_status,
    .grpc_status = error_grpc_status,
    .error_name = error_name,
    .ready = service_ready,
    .vm_generation = vms_generation,
    .error_message = error_get,
    .plugin_status = plugin_status,
    .operation_list = ops_list,
    .operation_get = ops_get,
    .operation_wait = ops_wait,
    .operation_cancel = ops_cancel,
    .caller_gone = ops_caller_gone,
    .vm_agent = agent_vm_call,
    .agent_status = agent_status_set,
    .vm_query = vm_query,
    .host_resources = resources_get,
    .host_samples = telemetry_samples,
    .vm_update_labels = op_vm_update_labels,
    .subscribe_events = events_subscribe_filtered,
};
