/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Plugin instances: each config entry that names a plugin, opened through
 * its plugin with the host-services table, and the call gate every
 * operation on an instance goes through (thread model, errors, metrics). */
#ifndef VMHOST_CORE_INSTANCE_H
#define VMHOST_CORE_INSTANCE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "loader.h"
#include "settings.h"

/* The definition of the ABI's opaque struct vmh_instance. */
struct vmh_instance {
  int kind;
  const char *name;
  const struct instance_conf *conf;
  struct plugin *plugin; /* NULL when an optional one was refused */
  void *handle;
  char *state_dir;
  pthread_mutex_t lock; /* held around calls for SERIALIZE_INSTANCE */
  int is_open;
  char *failure; /* why an optional instance is not serving */
  char *status;  /* host->status_set's document, under instance_status_lock */
  /* Its last health check failed (instance_check_health): for metrics. */
  atomic_bool unhealthy;
};

/* Guards every instance's status (host.c sets, service.c reads). */
extern pthread_mutex_t instance_status_lock;

extern const struct vmh_host host_services;

/* Load the plugin of every instance in s (storage, network, hypervisor,
 * frontend order).  A refused plugin is fatal unless the instance is
 * optional (then logged and the daemon is degraded).  Returns 0 or
 * VMH_EINVAL with the message set. */
int instances_load(const struct settings *s);

/* Open every loaded instance, then check its config for unread keys.
 * check_only passes VMH_OPEN_CHECK_ONLY and closes each at once.  Returns 0,
 * VMH_EINVAL for config errors (unread key), or another code when a required
 * instance fails to open; the message is set.  On failure everything opened
 * is closed again. */
int instances_open(const struct settings *s, int check_only);

/* Close every open instance, front-ends first, in reverse load order. */
void instances_close(void);
/* Free the instance table (after instances_close). */
void instances_free(void);

/* The instance named `name` of `kind`, or the first serving instance of
 * that kind when name is NULL.  NULL when there is none (message set). */
struct vmh_instance *instance_find(int kind, const char *name);
size_t instances_count(void);

/* Run the instance's health op, if it has one and is open: 0, or the
 * op's error (message set).  Remembers the outcome in inst->unhealthy. */
int instance_check_health(struct vmh_instance *inst);
/* instance_check_health on every instance (the reconcile, on a worker). */
void instances_probe_health(void);
struct vmh_instance *instance_at(size_t i);
/* 1 when an optional instance failed to load or open. */
int instances_degraded(void);

/* The call gate.  Use INSTANCE_CALL; these are its parts. */
struct call {
  struct vmh_instance *inst;
  const char *op;
  pthread_mutex_t *lock;
  struct timespec t0;
};
void call_begin(struct call *c, struct vmh_instance *inst, const char *op);
int call_end(struct call *c, int rc);
int call_unsupported(struct vmh_instance *inst, const char *op);

/* Call operation `op` of ops table `table` on instance `inst` with the
 * arguments after the handle.  Evaluates to 0 or a VMH_E* code with the
 * message set (VMH_ENOTSUP when the plugin lacks the operation). */
#define INSTANCE_CALL(inst, table, op, ...)                                    \
  ({                                                                           \
    struct vmh_instance *inst_ = (inst);                                       \
    int rc_;                                                                   \
    if (!inst_->plugin->ops.table.op) {                                        \
      rc_ = call_unsupported(inst_, #op);                                      \
    } else {                                                                   \
      struct call c_;                                                          \
      call_begin(&c_, inst_, #op);                                             \
      rc_ = call_end(&c_,                                                      \
                     inst_->plugin->ops.table.op(inst_->handle, __VA_ARGS__)); \
    }                                                                          \
    rc_;                                                                       \
  })

#endif
