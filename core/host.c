/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host-services table (struct vmh_host): what the core offers every
 * plugin.  Each entry forwards to the core unit that does the work, naming
 * the instance where the service is per instance. */
#include <config.h>

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "conftree.h"
#include "error.h"
#include "events.h"
#include "instance.h"
#include "log.h"
#include "metrics.h"
#include "operations.h"
#include "vm.h"

static const char *source_name(const struct vmh_instance *inst) {
  return inst ? inst->name : "core";
}

static void host_log(const struct vmh_instance *inst, int level,
                     const char *fmt, ...) VMH_PRINTF(3, 4);
static void host_log(const struct vmh_instance *inst, int level,
                     const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_vmsg(source_name(inst), level, fmt, ap);
  va_end(ap);
}

static void host_emit(const struct vmh_instance *inst,
                      const struct vmh_event *ev) {
  if (!ev)
    return;
  /* The VM's name beside its id, from the record (a plugin knows ids). */
  struct vmh_event named = {0};
  char name[VMH_NAME_MAX + 1];
  memcpy(&named, ev,
         ev->struct_size < sizeof named ? ev->struct_size : sizeof named);
  named.struct_size = sizeof named;
  named.vm_name =
      named.vm_id && vms_name_of(named.vm_id, name, sizeof name) == 0 ? name
                                                                      : NULL;
  events_emit(source_name(inst), &named);
  /* An import's bytes are its operation's progress too. */
  if (inst && ev->type == VMH_EVENT_PROGRESS && VMH_HAS_FIELD(ev, total))
    ops_backend_progress(source_name(inst), ev->object, ev->done, ev->total);
}

static void host_counter_add(const struct vmh_instance *inst, const char *name,
                             uint64_t delta) {
  metrics_counter_add(source_name(inst), name, delta);
}

static void host_gauge_set(const struct vmh_instance *inst, const char *name,
                           int64_t value) {
  metrics_gauge_set(source_name(inst), name, value);
}

static void host_metrics_source(
    const struct vmh_instance *inst,
    void (*fn)(void *opaque,
               void (*write)(void *wopaque, const char *text, size_t len),
               void *wopaque),
    void *opaque) {
  if (inst == NULL)
    return;
  if (metrics_source_set(inst, fn, opaque) < 0)
    log_warn("%s: metrics_source: out of memory, its metrics are left out",
             inst->name);
}

static const char *host_state_dir(const struct vmh_instance *inst) {
  return inst ? inst->state_dir : NULL;
}

static const char *host_instance_name(const struct vmh_instance *inst) {
  return source_name(inst);
}

pthread_mutex_t instance_status_lock = PTHREAD_MUTEX_INITIALIZER;

static void host_status_set(const struct vmh_instance *inst, const char *json) {
  if (inst == NULL)
    return;
  char *copy = NULL;
  if (json) {
    /* Front-ends copy it into their answers as it is: it must parse. */
    json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_object(o);
    json_decref(o);
    if (!ok) {
      log_warn("%s: status_set: not a JSON object, dropped", inst->name);
      return;
    }
    if ((copy = strdup(json)) == NULL)
      return;
  }
  /* The table's entries are the core's own (inst is borrowed as const). */
  struct vmh_instance *w = (struct vmh_instance *)inst;
  pthread_mutex_lock(&instance_status_lock);
  char *old = w->status;
  w->status = copy;
  pthread_mutex_unlock(&instance_status_lock);
  free(old);
}

const struct vmh_host host_services = {
    .struct_size = sizeof(struct vmh_host),
    .abi_major = VMH_ABI_MAJOR,
    .abi_minor = VMH_ABI_MINOR,
    .version = PACKAGE_VERSION,
    .log = host_log,
    .error = error_set,
    .config_string = config_string,
    .config_int = config_int,
    .config_size = config_size,
    .config_bool = config_bool,
    .config_map = config_map,
    .config_list = config_list,
    .config_at = config_at,
    .config_keys = config_keys,
    .config_where = config_where,
    .emit = host_emit,
    .counter_add = host_counter_add,
    .gauge_set = host_gauge_set,
    .state_dir = host_state_dir,
    .instance_name = host_instance_name,
    .verror = error_vset,
    .config_path = config_path_kept,
    .config_key_where = config_key_where,
    .status_set = host_status_set,
    .metrics_source = host_metrics_source,
};
