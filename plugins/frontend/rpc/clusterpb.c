/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <config.h>

#include "clusterpb.h"

/* A string of o, "" when missing or null (proto3 has no null). */
static char *str(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return (char *)(s ? s : protobuf_c_empty_string);
}

static int64_t num(json_t *o, const char *key) {
  return (int64_t)json_integer_value(json_object_get(o, key));
}

int clusterpb_from_json(json_t *o, struct abij_arena *arena,
                        Vmhost__V1__ClusterStatus *m) {
  if (!json_is_object(o) || !json_is_string(json_object_get(o, "status")))
    return -1;
  vmhost__v1__cluster_status__init(m);
  m->status = str(o, "status");
  m->node_name = str(o, "node_name");
  m->key = str(o, "key");
  m->endpoint = str(o, "endpoint");
  m->lease_id = str(o, "lease_id");
  m->error = str(o, "error");
  m->lease_ttl = num(o, "lease_ttl");
  m->heartbeat_interval = (uint32_t)num(o, "heartbeat_interval");
  m->last_heartbeat = num(o, "last_heartbeat");
  m->heartbeat_latency_ms =
      json_number_value(json_object_get(o, "heartbeat_latency_ms"));
  m->registrations = (uint64_t)num(o, "registrations");
  m->heartbeats = (uint64_t)num(o, "heartbeats");
  m->txns = (uint64_t)num(o, "txns");
  json_t *eps = json_object_get(o, "endpoints");
  size_t n = json_array_size(eps);
  m->endpoints = n ? abij_arena_alloc(arena, n * sizeof *m->endpoints) : NULL;
  if (n && m->endpoints == NULL)
    return -1;
  for (size_t i = 0; i < n; i++) {
    const char *s = json_string_value(json_array_get(eps, i));
    m->endpoints[m->n_endpoints++] = (char *)(s ? s : protobuf_c_empty_string);
  }
  return 0;
}
