/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest agent through the core (vmh_core.vm_agent, agent_status): the
 * core finds the VM and the front-end that reaches agents (the guest
 * front-end's agent_call) and hands the request over; no front-end ever
 * looks another up.  Also the synchronous form the core's own workers use
 * for quiesced snapshots. */
#include <config.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "error.h"
#include "instance.h"
#include "vm.h"

/* The first open front-end that reaches agents, or NULL. */
static struct vmh_instance *provider(void) {
  for (size_t i = 0; i < instances_count(); i++) {
    struct vmh_instance *fe = instance_at(i);
    if (fe->kind == VMH_KIND_FRONTEND && fe->is_open && fe->plugin &&
        fe->plugin->ops.frontend.agent_call)
      return fe;
  }
  return NULL;
}

/* The VM's id and name, copied (lock taken here); VMH_ENOENT when none. */
static int lookup(const char *key, char *id, size_t id_len, char *name,
                  size_t name_len) {
  vms_rdlock();
  struct vm *vm = vms_lookup(key);
  if (vm) {
    snprintf(id, id_len, "%s", vm->id);
    snprintf(name, name_len, "%s", vm->name);
  }
  vms_unlock();
  if (!vm)
    return error_code(VMH_ENOENT, "no VM '%s'", key ? key : "");
  return 0;
}

/* Hand a request on; answers r itself when it cannot. */
static void call_provider(const char *id, const char *name,
                          const struct vmh_agent_request *req, vmh_reply_t *r) {
  struct vmh_instance *fe = provider();
  if (!fe && req->op == VMH_AGENT_SHOW) {
    /* Not an error to ask: there is just no agent to show. */
    struct vmh_agent_result res = {
        .struct_size = sizeof res,
        .op = VMH_AGENT_SHOW,
        .state = VMH_AGENT_ABSENT,
        .message = "no guest front-end is configured"};
    if (VMH_HAS_FIELD(r, agent) && r->agent)
      r->agent(r->opaque, &res);
    reply_done(r, 0);
    return;
  }
  if (!fe) {
    error_set(
        "agent not connected on vm '%s' (no guest front-end is "
        "configured)",
        name);
    reply_done(r, VMH_ESTATE);
    return;
  }
  fe->plugin->ops.frontend.agent_call(fe->handle, id, name, req, r, 0);
}

void agent_vm_call(const char *key, const struct vmh_agent_request *req,
                   vmh_reply_t *r, uint32_t flags) {
  char id[VMH_ID_LEN + 1], name[VMH_NAME_MAX + 1];
  if (reply_check_flags(r, flags, 0) < 0)
    return;
  if (!VMH_HAS_FIELD(r, agent)) {
    error_set("vm_agent: the reply has no agent visitor (ABI 1.2)");
    reply_done(r, VMH_EINVAL);
    return;
  }
  if (!req || req->struct_size <
                  offsetof(struct vmh_agent_request, op) + sizeof req->op) {
    error_set("vm_agent: no request");
    reply_done(r, VMH_EINVAL);
    return;
  }
  if (lookup(key, id, sizeof id, name, sizeof name) < 0) {
    reply_done(r, VMH_ENOENT);
    return;
  }
  call_provider(id, name, req, r);
}

static char **strv_copy(const char *const *v, uint32_t n, size_t *ret_n) {
  char **out = n ? calloc(n, sizeof *out) : NULL;
  size_t k = 0;
  for (uint32_t i = 0; out && i < n; i++)
    if (v[i] && (out[k] = strdup(v[i])))
      k++;
  *ret_n = out ? k : 0;
  return out;
}

int agent_status_set(const char *vm_id, const struct vmh_agent_status *in,
                     uint32_t flags) {
  struct vmh_agent_status st = {0};
  if (flags)
    return error_code(VMH_EINVAL, "agent_status: unknown flags 0x%x",
                      (unsigned)flags);
  if (!in || !vm_id)
    return error_code(VMH_EINVAL, "agent_status: no VM or no status");
  memcpy(&st, in, in->struct_size < sizeof st ? in->struct_size : sizeof st);
  char *version = st.version ? strdup(st.version) : NULL;
  size_t n_ips = 0;
  char **ips = strv_copy(st.ips, st.n_ips, &n_ips);
  if ((st.version && !version) || (st.n_ips && !ips)) {
    free(version);
    vm_strv_free(ips, n_ips);
    return error_code(VMH_ENOMEM, "out of memory");
  }
  vms_wrlock_record();
  struct vm *vm = vms_lookup(vm_id);
  if (vm) {
    vm_touch(vm);
    vm->agent_state = st.state;
    free(vm->agent_version);
    vm->agent_version = version;
    vm_strv_free(vm->agent_ips, vm->n_agent_ips);
    vm->agent_ips = ips;
    vm->n_agent_ips = n_ips;
    version = NULL;
    ips = NULL;
    n_ips = 0;
  }
  vms_unlock();
  free(version);
  vm_strv_free(ips, n_ips);
  return vm ? 0 : error_code(VMH_ENOENT, "no VM '%s'", vm_id);
}

/* ---- synchronous calls (core workers) ---------------------------------- */

struct sync_call {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int code;
  char message[512];
  agent_result_fn fn;
  void *opaque;
};

static void sync_result(void *o, const struct vmh_agent_result *res) {
  struct sync_call *s = o;
  if (s->fn)
    s->fn(s->opaque, res);
}

static void sync_done(void *o, int code, const char *message) {
  struct sync_call *s = o;
  pthread_mutex_lock(&s->lock);
  s->code = code;
  snprintf(s->message, sizeof s->message, "%s", message ? message : "");
  s->done = true;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->lock);
}

int agent_call_sync(const char *vm_id, const char *vm_name,
                    const struct vmh_agent_request *req, agent_result_fn fn,
                    void *opaque) {
  struct sync_call s = {.fn = fn, .opaque = opaque};
  struct vmh_reply r = {.struct_size = sizeof r,
                        .opaque = &s,
                        .agent = sync_result,
                        .done = sync_done};
  pthread_mutex_init(&s.lock, NULL);
  pthread_cond_init(&s.cond, NULL);
  call_provider(vm_id, vm_name, req, &r);
  /* The provider answers every request within its own deadline (and at
   * once when it stops), so this wait ends. */
  pthread_mutex_lock(&s.lock);
  while (!s.done)
    pthread_cond_wait(&s.cond, &s.lock);
  pthread_mutex_unlock(&s.lock);
  pthread_cond_destroy(&s.cond);
  pthread_mutex_destroy(&s.lock);
  if (s.code)
    error_set("%s", s.message);
  return s.code;
}
