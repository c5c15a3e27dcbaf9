/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Plugin instances and the call gate (the host-services table is in
 * host.c). */
#include <config.h>

#include "instance.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "conftree.h"
#include "error.h"
#include "log.h"
#include "metrics.h"

static struct vmh_instance *instances;
static size_t n_instances;
static int degraded;

/* Put a prefix before this thread's error message. */
static void prefix_error(const char *fmt, ...) VMH_PRINTF(1, 2);
static void prefix_error(const char *fmt, ...) {
  _cleanup_free_ char *msg = strdup(error_get());
  _cleanup_free_ char *prefix = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&prefix, fmt, ap) < 0)
    prefix = NULL;
  va_end(ap);
  error_set("%s%s", prefix ? prefix : "", msg ? msg : "");
}

/* ---- the call gate ----------------------------------------------------- */

static double elapsed_s(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) +
         (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

void call_begin(struct call *c, struct vmh_instance *inst, const char *op) {
  c->inst = inst;
  c->op = op;
  switch (inst->plugin->desc.thread_model) {
    case VMH_THREAD_PARALLEL:
      c->lock = NULL;
      break;
    case VMH_THREAD_SERIALIZE_INSTANCE:
      c->lock = &inst->lock;
      break;
    default:
      c->lock = &inst->plugin->lock;
      break;
  }
  if (c->lock)
    pthread_mutex_lock(c->lock);
  error_clear();
  clock_gettime(CLOCK_MONOTONIC, &c->t0);
}

int call_end(struct call *c, int rc) {
  double seconds = elapsed_s(&c->t0);
  if (c->lock)
    pthread_mutex_unlock(c->lock);
  /* A plugin that breaks the error convention still yields a code and a
   * message the user can act on. */
  if (rc > 0 || rc < VMH_ERROR_LOWEST) {
    error_set("%s: %s returned %d, which is not a vmhost error code",
              c->inst->name, c->op, rc);
    rc = VMH_EINTERNAL;
  } else if (rc < 0 && !*error_get()) {
    error_set("%s: %s failed (%s) without saying why", c->inst->name, c->op,
              error_name(rc));
  }
  metrics_observe(c->inst->name, c->op, rc, seconds);
  if (rc < 0)
    log_msg(c->inst->name, VMH_LOG_DEBUG, "%s: %s", c->op, error_get());
  return rc;
}

int instance_check_health(struct vmh_instance *inst) {
  int rc = 0;
  if (inst->is_open && inst->plugin->ops.hypervisor.health)
    rc = INSTANCE_CALL(inst, hypervisor, health, 0);
  atomic_store(&inst->unhealthy, rc < 0);
  return rc;
}

void instances_probe_health(void) {
  for (size_t i = 0; i < instances_count(); i++)
    instance_check_health(instance_at(i));
}

int call_unsupported(struct vmh_instance *inst, const char *op) {
  return error_code(VMH_ENOTSUP, "%s '%s' (plugin %s) does not support %s",
                    kind_name(inst->kind), inst->name, inst->plugin->desc.name,
                    op);
}

/* ---- load, open, close ------------------------------------------------- */

/* Refuse or, for an optional instance, disable with a warning. */
static int instance_refused(struct vmh_instance *inst) {
  if (!inst->conf->optional)
    return VMH_EINVAL;
  log_warn("optional %s '%s' is not used: %s", kind_name(inst->kind),
           inst->name, error_get());
  inst->failure = strdup(error_get());
  inst->plugin = NULL;
  degraded = 1;
  return 0;
}

static int instance_load(struct vmh_instance *inst, const char *plugin_dir) {
  const struct instance_conf *c = inst->conf;
  _cleanup_free_ char *found = NULL;
  const char *file = c->file;
  if (!file) {
    found = loader_find(plugin_dir, c->kind, c->plugin);
    if (!found) {
      prefix_error("%s: %s '%s': ", config_where(c->config), kind_name(c->kind),
                   c->name);
      return instance_refused(inst);
    }
    file = found;
  }
  if (loader_load(file, c->kind, c->name, &inst->plugin) < 0 ||
      loader_call_load(inst->plugin, &host_services) < 0) {
    inst->plugin = NULL;
    return instance_refused(inst);
  }
  if (strcmp(inst->plugin->desc.name, c->plugin) != 0 && !c->file) {
    error_set("%s: is plugin '%s', but instance '%s' asks for '%s'",
              inst->plugin->file, inst->plugin->desc.name, c->name, c->plugin);
    inst->plugin = NULL;
    return instance_refused(inst);
  }
  return 0;
}

int instances_load(const struct settings *s) {
  instances = calloc(s->n_instances ? s->n_instances : 1, sizeof *instances);
  if (!instances)
    return error_code(VMH_ENOMEM, "out of memory");
  n_instances = s->n_instances;
  for (size_t i = 0; i < n_instances; i++) {
    struct vmh_instance *inst = &instances[i];
    inst->conf = &s->instances[i];
    inst->kind = inst->conf->kind;
    inst->name = inst->conf->name;
    pthread_mutex_init(&inst->lock, NULL);
    /* A plugin that cannot be loaded is a problem of the config; the
     * other instances are still checked. */
    int r = problem_keep(instance_load(inst, s->plugin_dir));
    if (r < 0)
      return r;
  }
  return 0;
}

static int make_state_dir(struct vmh_instance *inst, const char *state_dir) {
  if (asprintf(&inst->state_dir, "%s/plugins/%s", state_dir, inst->name) < 0) {
    inst->state_dir = NULL;
    return error_code(VMH_ENOMEM, "out of memory");
  }
  _cleanup_free_ char *parent = NULL;
  if (asprintf(&parent, "%s/plugins", state_dir) < 0)
    return error_code(VMH_ENOMEM, "out of memory");
  if ((mkdir(parent, 0700) < 0 && errno != EEXIST) ||
      (mkdir(inst->state_dir, 0700) < 0 && errno != EEXIST))
    return error_code(VMH_EIO, "cannot create %s: %s", inst->state_dir,
                      strerror(errno));
  return 0;
}

/* The instance's config must have no key its plugin did not read.  Each
 * such key is named with the key the plugin asked for that it misspells,
 * if one is near; checking (keep), every one is a problem of its own. */
struct unread {
  struct vmh_instance *inst;
  bool keep;
};

static int unread_key(void *opaque, const struct vmh_config *node) {
  const struct unread *x = opaque;
  const char *hint = config_asked_suggest(node);
  int r = error_code(
      VMH_EINVAL, "%s: unknown key '%s' for plugin '%s' (%s '%s')%s%s%s",
      config_where(node), config_key_name(node), x->inst->plugin->desc.name,
      kind_name(x->inst->kind), x->inst->name, hint ? "; did you mean '" : "",
      hint ? hint : "", hint ? "'?" : "");
  return x->keep ? problem_keep(r) : r;
}

static int check_unread(struct vmh_instance *inst, bool keep) {
  struct unread x = {inst, keep};
  return config_unread_each(inst->conf->config, unread_key, &x);
}

static void instance_close(struct vmh_instance *inst) {
  if (!inst->is_open)
    return;
  struct call c;
  /* A scrape must not call into a closed instance. */
  metrics_source_set(inst, NULL, NULL);
  call_begin(&c, inst, "close");
  inst->plugin->ops.hypervisor.close(inst->handle);
  call_end(&c, 0);
  inst->is_open = 0;
  inst->handle = NULL;
}

static int instance_open(struct vmh_instance *inst, const char *state_dir,
                         int check_only) {
  if (!check_only && make_state_dir(inst, state_dir) < 0)
    return VMH_EIO;
  /* Every kind's ops table starts with the same open/close/health. */
  vmh_open_fn open_fn = inst->plugin->ops.hypervisor.open;
  struct call c;
  if (check_only)
    config_asked_begin();
  call_begin(&c, inst, "open");
  int r = call_end(
      &c, open_fn(&host_services, inst, inst->conf->config, &inst->handle,
                  check_only ? VMH_OPEN_CHECK_ONLY : 0));
  if (r < 0) {
    config_asked_end();
    prefix_error("%s '%s': ", kind_name(inst->kind), inst->name);
    return r;
  }
  inst->is_open = 1;
  r = check_unread(inst, check_only);
  config_asked_end();
  if (r < 0) {
    _cleanup_free_ char *msg = strdup(error_get());
    instance_close(inst);
    error_set("%s", msg ? msg : "unknown key");
    return r;
  }
  return 0;
}

int instances_open(const struct settings *s, int check_only) {
  for (size_t i = 0; i < n_instances; i++) {
    struct vmh_instance *inst = &instances[i];
    if (!inst->plugin)
      continue;
    int r = instance_open(inst, s->state_dir, check_only);
    /* Checking, each instance's mistakes are problems of the config and
     * the next instance is checked too. */
    if (check_only && r == VMH_EINVAL) {
      if ((r = problem_keep(r)) < 0)
        return r;
      continue;
    }
    if (r == VMH_EINVAL || (r < 0 && !inst->conf->optional)) {
      /* Closing the others runs plugin calls, which clear the message. */
      _cleanup_free_ char *msg = strdup(error_get());
      instances_close();
      error_set("%s", msg ? msg : "open failed");
      return r;
    }
    if (r < 0) {
      log_warn("optional %s '%s' is not used: %s", kind_name(inst->kind),
               inst->name, error_get());
      free(inst->failure);
      inst->failure = strdup(error_get());
      degraded = 1;
      continue;
    }
    if (check_only)
      instance_close(inst);
    else
      log_debug("%s '%s' open (plugin %s %s)", kind_name(inst->kind),
                inst->name, inst->plugin->desc.name,
                inst->plugin->desc.version ? inst->plugin->desc.version : "");
  }
  return 0;
}

void instances_close(void) {
  /* Front-ends first: they call into the rest. */
  for (size_t i = n_instances; i-- > 0;)
    if (instances[i].kind == VMH_KIND_FRONTEND)
      instance_close(&instances[i]);
  for (size_t i = n_instances; i-- > 0;)
    instance_close(&instances[i]);
}

void instances_free(void) {
  for (size_t i = 0; i < n_instances; i++) {
    pthread_mutex_destroy(&instances[i].lock);
    free(instances[i].state_dir);
    free(instances[i].failure);
    free(instances[i].status);
  }
  free(instances);
  instances = NULL;
  n_instances = 0;
}

struct vmh_instance *instance_find(int kind, const char *name) {
  for (size_t i = 0; i < n_instances; i++) {
    struct vmh_instance *inst = &instances[i];
    if (inst->kind != kind)
      continue;
    if (name ? strcmp(inst->name, name) == 0 : inst->is_open) {
      if (!inst->is_open) {
        error_set("%s '%s' is not available: %s", kind_name(kind), name,
                  inst->failure ? inst->failure : "not open");
        return NULL;
      }
      return inst;
    }
  }
  if (name)
    error_set("no %s named '%s'", kind_name(kind), name);
  else
    error_set("no %s is configured", kind_name(kind));
  return NULL;
}

size_t instances_count(void) {
  return n_instances;
}

struct vmh_instance *instance_at(size_t i) {
  return i < n_instances ? &instances[i] : NULL;
}

int instances_degraded(void) {
  return degraded;
}
