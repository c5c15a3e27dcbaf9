/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GET /api/v1/vms/{vm}/snapshots/{snapshot}: one snapshot, by id or else
 * by name as the core resolves a revert's or a delete's (core/orchestrate.c
 * snap_resolve), picked from the VM's list (the hypervisor ABI has no get
 * of one).  The href of a snapshot operation's result.  gRPC's twin is
 * GetSnapshot (plugins/frontend/rpc/snapshots.c). */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "rest.h"

/* The snapshot of the VM's list whose member key is the one asked for. */
static json_t *find(json_t *list, const char *key, const char *want) {
  size_t i;
  json_t *s;
  json_array_foreach(list, i, s) {
    const char *v = json_string_value(json_object_get(s, key));
    if (v && !strcmp(v, want))
      return s;
  }
  return NULL;
}

static void finish_one_snapshot(struct call *k, int code, const char *message) {
  if (code) {
    rest_answer_code(k, code, message);
    return;
  }
  const char *want = rest_param(k, 1);
  json_t *s = find(k->res, "id", want);
  if (!s)
    s = find(k->res, "name", want);
  if (s) {
    rest_answer_json(k, 200, json_incref(s));
    return;
  }
  char msg[320];
  snprintf(msg, sizeof msg, "VM '%s' has no snapshot '%s' (by id or name)",
           rest_param(k, 0), want);
  rest_answer_code(k, VMH_ENOENT, msg);
}

int rest_snap_get(struct call *k) {
  if (rest_check_param(k, 0, "vm", true) < 0 || rest_snap_id(k) < 0 ||
      rest_no_query(k) < 0)
    return -1;
  k->finish = finish_one_snapshot;
  k->rest->core->snapshot_list(rest_param(k, 0), &k->reply.reply, 0);
  return 0;
}
