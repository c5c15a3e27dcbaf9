/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest agent through the core: vmh_core.vm_agent and agent_status
 * (handed to the front-end whose ops have agent_call, the guest
 * front-end), and a blocking form for the core's workers. */
#ifndef VMHOST_CORE_AGENT_H
#define VMHOST_CORE_AGENT_H

#include <stdint.h>
#include <vmhost/core.h>

/* vmh_core.vm_agent. */
void agent_vm_call(const char *vm, const struct vmh_agent_request *req,
                   vmh_reply_t *r, uint32_t flags);
/* vmh_core.agent_status. */
int agent_status_set(const char *vm_id, const struct vmh_agent_status *st,
                     uint32_t flags);

/* On a core worker: ask the agent of the VM vm_id (named vm_name in
 * messages) and wait for the answer (bounded by the guest front-end's
 * answer deadline).  fn, when not NULL, sees the result.  Returns 0 or a
 * VMH_E* code with the message set. */
typedef void (*agent_result_fn)(void *opaque,
                                const struct vmh_agent_result *res);
int agent_call_sync(const char *vm_id, const char *vm_name,
                    const struct vmh_agent_request *req, agent_result_fn fn,
                    void *opaque);

#endif
