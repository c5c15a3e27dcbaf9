/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The gRPC methods of a VM's guest agent (vmh_core.vm_agent, answered by
 * the guest front-end through the core): GetAgent (reader), AgentExec and
 * AgentReadFile/AgentWriteFile (admin: root in the guest without its
 * credentials), AgentTimeSync (operator).  The same checks as the REST
 * routes (plugins/frontend/rest/agent.c). */
#include <config.h>

#include <inttypes.h>
#include <string.h>

#include "rpc.h"

/* What a file or exec's stdin may carry: the guest channel's frame less
 * room for the rest of the message (the REST routes' cap too). */
#define AGENT_DATA_MAX ((UINT64_C(1) << 20) - 8192)
#define MAX_ARGS 256

static int start(struct call *k, const char *vm,
                 const struct vmh_agent_request *req) {
  const struct vmh_core *core = rpc_core(k);
  if (!VMH_HAS_FIELD(core, vm_agent) || !core->vm_agent)
    return rpc_code(k, VMH_ENOTSUP, "this vmhostd has no guest agent API");
  core->vm_agent(vm, req, rpc_reply(k), 0);
  return 0;
}

int rpc_agent_get(struct call *k) {
  const Vmhost__V1__VmRequest *m = (const void *)rpc_in(k);
  if (rpc_ref(k, "vm", m->vm, true) < 0)
    return -1;
  /* live: fresh telemetry, a round trip to the agent. */
  struct vmh_agent_request req = {
      .struct_size = sizeof req,
      .op = m->live ? VMH_AGENT_TELEMETRY : VMH_AGENT_SHOW};
  return start(k, m->vm, &req);
}

int rpc_agent_ping(struct call *k) {
  const Vmhost__V1__VmRequest *m = (const void *)rpc_in(k);
  if (rpc_ref(k, "vm", m->vm, true) < 0)
    return -1;
  struct vmh_agent_request req = {.struct_size = sizeof req,
                                  .op = VMH_AGENT_PING};
  return start(k, m->vm, &req);
}

int rpc_agent_time_sync(struct call *k) {
  const Vmhost__V1__VmRequest *m = (const void *)rpc_in(k);
  if (rpc_ref(k, "vm", m->vm, true) < 0)
    return -1;
  struct vmh_agent_request req = {.struct_size = sizeof req,
                                  .op = VMH_AGENT_TIME_SYNC};
  return start(k, m->vm, &req);
}

int rpc_agent_exec(struct call *k) {
  const Vmhost__V1__AgentExecRequest *m = (const void *)rpc_in(k);
  if (rpc_ref(k, "vm", m->vm, true) < 0)
    return -1;
  if (m->n_argv < 1 || m->n_argv > MAX_ARGS)
    return rpc_bad(k, "'argv' must have 1 to %d strings", MAX_ARGS);
  if (m->argv[0][0] != '/')
    return rpc_bad(k,
                   "'argv[0]' must be an absolute path (there is no "
                   "shell and no PATH search)");
  if (m->stdin.len > AGENT_DATA_MAX)
    return rpc_bad(k, "'stdin' is over %" PRIu64 " bytes", AGENT_DATA_MAX);
  struct vmh_agent_request req = {.struct_size = sizeof req,
                                  .op = VMH_AGENT_EXEC,
                                  .argv = (const char *const *)m->argv,
                                  .argc = (uint32_t)m->n_argv,
                                  .timeout_ms = m->timeout_ms,
                                  .max_output = m->max_output,
                                  .data = m->stdin.data,
                                  .len = m->stdin.len};
  return start(k, m->vm, &req);
}

static int check_path(struct call *k, const char *path) {
  if (path[0] != '/')
    return rpc_bad(k, "'path' must be an absolute path in the guest");
  return 0;
}

int rpc_agent_read_file(struct call *k) {
  const Vmhost__V1__AgentReadFileRequest *m = (const void *)rpc_in(k);
  if (rpc_ref(k, "vm", m->vm, true) < 0 || check_path(k, m->path) < 0)
    return -1;
  if (m->max_bytes > AGENT_DATA_MAX)
    return rpc_bad(k, "'max_bytes' must be 0 to %" PRIu64, AGENT_DATA_MAX);
  struct vmh_agent_request req = {.struct_size = sizeof req,
                                  .op = VMH_AGENT_FILE_READ,
                                  .path = m->path,
                                  .offset = m->offset,
                                  .max_bytes = m->max_bytes};
  return start(k, m->vm, &req);
}

int rpc_agent_write_file(struct call *k) {
  const Vmhost__V1__AgentWriteFileRequest *m = (const void *)rpc_in(k);
  if (rpc_ref(k, "vm", m->vm, true) < 0 || check_path(k, m->path) < 0)
    return -1;
  if (m->data.len > AGENT_DATA_MAX)
    return rpc_bad(k, "'data' is over %" PRIu64 " bytes", AGENT_DATA_MAX);
  if (m->mode > 07777)
    return rpc_bad(k, "'mode' must be permission bits (0..07777)");
  struct vmh_agent_request req = {.struct_size = sizeof req,
                                  .op = VMH_AGENT_FILE_WRITE,
                                  .path = m->path,
                                  .mode = m->mode,
                                  .data = m->data.data,
                                  .len = m->data.len};
  return start(k, m->vm, &req);
}

int rpc_quiesce_flags(struct call *k, int quiesce, uint32_t *flags) {
  switch (quiesce) {
    case VMHOST__V1__QUIESCE__QUIESCE_NO:
      *flags = 0;
      return 0;
    case VMHOST__V1__QUIESCE__QUIESCE_YES:
      *flags = VMH_SNAPSHOT_QUIESCE;
      return 0;
    case VMHOST__V1__QUIESCE__QUIESCE_TRY:
      *flags = VMH_SNAPSHOT_QUIESCE | VMH_SNAPSHOT_QUIESCE_TRY;
      return 0;
    default:
      return rpc_bad(k, "'quiesce' %d is not a Quiesce value", quiesce);
  }
}
