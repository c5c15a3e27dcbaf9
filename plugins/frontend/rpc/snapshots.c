/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GetSnapshot: one snapshot of a VM, by id or else by name (as the core
 * resolves a revert's or a delete's), picked from the VM's list (the
 * hypervisor ABI has no get of one).  REST's twin is GET
 * /api/v1/vms/{vm}/snapshots/{snapshot} (plugins/frontend/rest/snapshots.c). */
#include <config.h>

#include "rpc.h"

int rpc_snapshot_get(struct call *k) {
  const Vmhost__V1__SnapshotRequest *m = (const void *)rpc_in(k);
  if (rpc_ref(k, "vm", m->vm, true) < 0 || rpc_snap_id(k, m->snapshot_id) < 0 ||
      rpc_pick_id(k, m->snapshot_id,
                  "VM '%s' has no snapshot '%s' (by id or name)", m->vm,
                  m->snapshot_id) < 0)
    return -1;
  rpc_core(k)->snapshot_list(m->vm, rpc_reply(k), 0);
  return 0;
}
