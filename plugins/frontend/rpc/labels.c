/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* UpdateVMLabels[Async]: a VM's labels changed as a merge patch (`set`
 * sets or replaces, `remove` removes, the others stay) through vmh_core.
 * vm_update_labels, which checks keys and values as at create; the answer
 * is the VM, or with UpdateVMLabelsAsync the operation ("vm.labels") once
 * it is queued.  REST's twin is PATCH /api/v1/vms/{vm}[?wait=false]
 * (plugins/frontend/rest/labels.c). */
#include <config.h>

#include <string.h>

#include "abijson.h"
#include "rpc.h"

/* The most label changes one request may carry (each of 128 labels
 * removed and another set). */
#define CHANGES_MAX 256

int rpc_vm_update_labels(struct call *k) {
  const Vmhost__V1__UpdateVMLabelsRequest *m = (const void *)rpc_in(k);
  const struct vmh_core *core = rpc_core(k);
  if (rpc_ref(k, "vm", m->vm, true) < 0)
    return -1;
  if (!VMH_HAS_FIELD(core, vm_update_labels) || !core->vm_update_labels)
    return rpc_code(k, VMH_ENOTSUP, "this vmhostd cannot change labels");
  size_t n = m->n_set + m->n_remove;
  if (n > CHANGES_MAX)
    return rpc_bad(k, "%zu label changes; at most %d at once", n, CHANGES_MAX);
  struct vmh_keyval *kv =
      abij_arena_alloc(rpc_arena(k), (n ? n : 1) * sizeof *kv);
  if (!kv)
    return rpc_code(k, VMH_ENOMEM, "out of memory");
  for (size_t i = 0; i < m->n_set; i++)
    kv[i] = (struct vmh_keyval){m->set[i]->key, m->set[i]->value};
  /* A key both set and removed is refused by the core (changed twice). */
  for (size_t i = 0; i < m->n_remove; i++)
    kv[m->n_set + i] = (struct vmh_keyval){m->remove[i], NULL};
  core->vm_update_labels(m->vm, kv, (uint32_t)n, rpc_reply(k), rpc_async(k));
  return 0;
}
