/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What frontend-rpc.c lends the methods in its other files (agent.c,
 * images.c).
 * Not part of any ABI. */
#ifndef VMH_RPC_H
#define VMH_RPC_H

#include <stdbool.h>
#include <vmhost/vmhost-plugin.h>

#include "vmhost/v1/node.pb-c.h"

struct call;
struct abij_arena;

/* The request message (unpacked), the core, and the reply for one core
 * call (it holds the call until done()). */
const ProtobufCMessage *rpc_in(struct call *k);
const struct vmh_core *rpc_core(struct call *k);
const struct vmh_reply *rpc_reply(struct call *k);
/* Memory that lives as long as the call (abijson.h). */
struct abij_arena *rpc_arena(struct call *k);
/* Refusals before the core: answered, -1. */
int rpc_bad(struct call *k, const char *fmt, ...)
    __attribute__((__format__(__printf__, 2, 3)));
int rpc_code(struct call *k, int code, const char *message);
/* A name or (uuid) a VM id; answered and -1 when not. */
int rpc_ref(struct call *k, const char *what, const char *s, bool uuid);

/* labels.c: UpdateVMLabels. */
int rpc_vm_update_labels(struct call *k);

/* VMH_ASYNC for an *Async method (answer with the operation), else 0. */
uint32_t rpc_async(struct call *k);
/* A Get answered from the core's list: the answer is the result whose
 * "name" is name (which must outlive the call), else NOT_FOUND with the
 * message fmt.  0, or -1 (answered). */
int rpc_pick(struct call *k, const char *name, const char *fmt, ...)
    __attribute__((__format__(__printf__, 3, 4)));
/* rpc_pick by "id", else by "name" (a snapshot as the core resolves one). */
int rpc_pick_id(struct call *k, const char *key, const char *fmt, ...)
    __attribute__((__format__(__printf__, 3, 4)));

/* A snapshot_id (an id or a name): 0, or -1 (answered). */
int rpc_snap_id(struct call *k, const char *id);
/* snapshots.c: GetSnapshot. */
int rpc_snapshot_get(struct call *k);

/* images.c: a pool's image cache. */
int rpc_image_list(struct call *k);
int rpc_image_get(struct call *k);
int rpc_image_import(struct call *k);
int rpc_image_delete(struct call *k);

/* agent.c: the guest agent's methods. */
int rpc_agent_get(struct call *k);
int rpc_agent_ping(struct call *k);
int rpc_agent_exec(struct call *k);
int rpc_agent_read_file(struct call *k);
int rpc_agent_write_file(struct call *k);
int rpc_agent_time_sync(struct call *k);
/* CreateSnapshot's quiesce as the core's flags; -1 (answered) if unknown. */
int rpc_quiesce_flags(struct call *k, int quiesce, uint32_t *flags);

#endif
