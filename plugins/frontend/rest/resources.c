/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GET /api/v1/host/resources: see resources.h. */
#include <config.h>

#include "resources.h"

static json_t *amount(uint64_t total, uint64_t reserved, uint64_t allocated,
                      uint64_t available) {
  return json_pack("{s:I,s:I,s:I,s:I}", "total", (json_int_t)total, "reserved",
                   (json_int_t)reserved, "allocated", (json_int_t)allocated,
                   "available", (json_int_t)available);
}

static void add_pool(void *opaque, const struct vmh_pool_resources *p) {
  json_t *o = amount(p->total, p->reserved, p->allocated, p->available);
  if (o && json_object_set_new(o, "name", json_string(p->name)) == 0 &&
      json_object_set_new(o, "sampled_us", json_integer(p->sampled_us)) == 0)
    json_array_append(opaque, o);
  json_decref(o);
}

json_t *rest_host_resources(const struct vmh_core *core, int *code) {
  *code = VMH_ENOMEM;
  if (!VMH_HAS_FIELD(core, host_resources) || !core->host_resources) {
    *code = VMH_ENOTSUP;
    return NULL;
  }
  struct vmh_host_resources h = {.struct_size = sizeof h};
  json_t *pools = json_array();
  if (!pools || core->host_resources(&h, add_pool, pools, 0) < 0) {
    json_decref(pools);
    return NULL;
  }
  json_t *cpu = amount(h.vcpus_total, h.vcpus_reserved, h.vcpus_allocated,
                       h.vcpus_available);
  json_t *mem = amount(h.memory_total, h.memory_reserved, h.memory_allocated,
                       h.memory_available);
  json_t *disk =
      amount(h.disk_total, h.disk_reserved, h.disk_allocated, h.disk_available);
  json_t *o = NULL;
  if (cpu && mem && disk &&
      json_object_set_new(cpu, "host_cpus", json_integer(h.host_cpus)) == 0 &&
      json_object_set_new(cpu, "overcommit",
                          json_real(h.cpu_overcommit_milli / 1000.0)) == 0 &&
      json_object_set_new(mem, "host_bytes",
                          json_integer((json_int_t)h.host_memory)) == 0 &&
      json_object_set_new(mem, "overcommit",
                          json_real(h.memory_overcommit_milli / 1000.0)) == 0 &&
      json_object_set(disk, "pools", pools) == 0)
    o = json_pack("{s:O,s:O,s:O,s:I}", "vcpus", cpu, "memory", mem, "disk",
                  disk, "vms", (json_int_t)h.n_vms);
  json_decref(cpu);
  json_decref(mem);
  json_decref(disk);
  json_decref(pools);
  return o;
}
