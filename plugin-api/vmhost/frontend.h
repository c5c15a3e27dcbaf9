/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI — front-end plugins.
 *
 * A front-end serves an API (REST, gRPC, the guest channel) on its own I/O
 * threads and calls the core through struct vmh_core, whose operations are
 * asynchronous: a front-end never blocks its I/O thread on a backend.
 */
#ifndef VMHOST_FRONTEND_H
#define VMHOST_FRONTEND_H

#include <vmhost/core.h>
#include <vmhost/instance.h>

#ifdef __cplusplus
extern "C" {
#endif

#if VMH_ABI_TARGET_MINOR >= 2
/* Event reasons of the guest front-end (ABI 1.2, no layout change):
 * host->emit() of VMH_EVENT_PLUGIN with vm_id the VM whose guest agent
 * connected (message: the agent's version), disconnected, or was cut off
 * for going over a bound (message: which). */
#define VMH_REASON_AGENT_CONNECTED "agent-connected"
#define VMH_REASON_AGENT_DISCONNECTED "agent-disconnected"
#define VMH_REASON_AGENT_CUT_OFF "agent-cut-off"
#endif

struct vmh_frontend_ops {
  VMH_INSTANCE_OPS;

  /* Required.  Start serving: bind listeners, start threads, return.  The
   * core table lives as long as the process.  On failure nothing may be left
   * listening or running. */
  int (*start)(void *handle, const struct vmh_core *core, uint32_t flags);

  /* Required.  Stop accepting, finish or cancel in-flight requests within
   * the core's drain deadline, join threads, return.  After it returns the
   * front-end makes no more core calls. */
  void (*stop)(void *handle, uint32_t flags);

#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2, optional: a front-end that reaches guest agents (the guest
   * front-end) serves vmh_core.vm_agent through it; the core hands each
   * request to the first open front-end that has it.  vm_id is the
   * VM's id; req is borrowed for the call (copy it).  Must not block:
   * answer through r (r->agent, then r->done exactly once) from any
   * thread, also when stopping (VMH_ECANCELED). */
  void (*agent_call)(void *handle, const char *vm_id, const char *vm_name,
                     const struct vmh_agent_request *req, vmh_reply_t *r,
                     uint32_t flags);
#endif
};

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_FRONTEND_H */
