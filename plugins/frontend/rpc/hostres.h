/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host's resources and newest sample as vmhost.v1 messages (NodeInfo,
 * MetricsSample), read from the core's memory. */
#ifndef VMHOST_RPC_HOSTRES_H
#define VMHOST_RPC_HOSTRES_H

#include <vmhost/core.h>

#include "abijson.h"
#include "vmhost/v1/node.pb-c.h"

/* Messages allocated in a (freed with it); NULL when the core lacks the
 * call, when there is no sample yet, or out of memory. */
Vmhost__V1__HostResources *rpc_host_resources(const struct vmh_core *core,
                                              struct abij_arena *a);
Vmhost__V1__HostSample *rpc_host_sample(const struct vmh_core *core,
                                        struct abij_arena *a);

#endif
