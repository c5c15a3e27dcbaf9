/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GetClusterStatus: the cluster plugin's status document (JSON, from
 * vmh_core.plugin_status) as a vmhost.v1.ClusterStatus. */
#ifndef VMHOST_RPC_CLUSTERPB_H
#define VMHOST_RPC_CLUSTERPB_H

#include <jansson.h>

#include "abijson.h"
#include "vmhost/v1/node.pb-c.h"

/* Fill m from the document o.  Strings point into o (which must outlive
 * m); the endpoints array is allocated in arena.  0, or -1 when o is not a
 * status document or out of memory. */
int clusterpb_from_json(json_t *o, struct abij_arena *arena,
                        Vmhost__V1__ClusterStatus *m);

#endif
