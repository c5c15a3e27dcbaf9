/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PATCH /api/v1/vms/{vm}: a JSON merge patch (RFC 7396) of the VM, whose
 * one changeable part is its labels, "metadata":
 *
 *   {"metadata": {"tier": "gold", "old": null}}
 *
 * sets tier, removes old (not there: nothing to do) and keeps every other
 * label.  The core checks the keys and values (Kubernetes-like keys,
 * UTF-8 values of at most 64 KiB, at most 128 labels: vmh_core.
 * vm_update_labels), saves the record, then the answer is the VM as GET
 * shows it; ?wait=false answers 202 with the operation ("vm.labels"). */
#include <config.h>

#include <string.h>
#include <strings.h>

#include "rest.h"

/* The most label changes one patch may carry (each of 128 labels removed
 * and another set). */
#define PATCH_MAX 256

static bool merge_patch_type(const char *type) {
  static const char *const ok[] = {"application/merge-patch+json",
                                   "application/json"};
  if (!type)
    return false;
  size_t n = strcspn(type, "; ");
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (n == strlen(ok[i]) && !strncasecmp(type, ok[i], n))
      return true;
  return false;
}

int rest_vm_patch(struct call *k) {
  const struct vmh_core *core = k->rest->core;
  const char *key;
  json_t *v, *md;
  uint32_t f;
  if (rest_check_param(k, 0, "vm", true) < 0)
    return -1;
  if (rest_wait_query(k, &f) < 0)
    return -1;
  size_t len;
  h2s_body(k->req, &len);
  if (len && !merge_patch_type(h2s_header(k->req, "content-type"))) {
    rest_answer_error(k, 415, "unsupported_media_type",
                      "the body must be application/merge-patch+json (or "
                      "application/json)");
    return -1;
  }
  if (rest_need_body(k, false) < 0)
    return -1;
  if (!VMH_HAS_FIELD(core, vm_update_labels) || !core->vm_update_labels) {
    rest_answer_code(k, VMH_ENOTSUP, "this vmhostd cannot change labels");
    return -1;
  }
  json_object_foreach(k->body, key, v) {
    if (strcmp(key, "metadata"))
      return rest_bad(k,
                      "'%.60s' cannot be changed: a VM's patch changes its "
                      "labels ('metadata') only",
                      key);
  }
  md = json_object_get(k->body, "metadata");
  if (!json_is_object(md))
    return rest_bad(k,
                    "'metadata' is required: an object of label changes "
                    "(\"key\": \"value\" sets, \"key\": null removes)");
  size_t n = json_object_size(md), i = 0;
  if (n > PATCH_MAX)
    return rest_bad(k, "'metadata' changes %zu labels; at most %d at once", n,
                    PATCH_MAX);
  struct vmh_keyval *kv =
      abij_arena_alloc(&k->in.arena, (n ? n : 1) * sizeof *kv);
  if (!kv)
    return rest_refused(k, VMH_ENOMEM);
  json_object_foreach(md, key, v) {
    if (!json_is_string(v) && !json_is_null(v))
      return rest_bad(k,
                      "'metadata.%.60s' must be a string, or null to remove "
                      "the label",
                      key);
    kv[i++] = (struct vmh_keyval){key, json_string_value(v)};
  }
  k->shape = ONE;
  core->vm_update_labels(k->params[0], kv, (uint32_t)n, &k->reply.reply, f);
  return 0;
}
