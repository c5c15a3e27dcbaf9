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

/* ---- host telemetry ------------------------------------------------------ */

static json_t *fs_json(const struct vmh_fs_usage *f) {
  json_t *o = json_pack("{s:s,s:I,s:I,s:I}", "name", f->name, "total",
                        (json_int_t)f->total, "used", (json_int_t)f->used,
                        "available", (json_int_t)f->available);
  if (o && f->path)
    json_object_set_new(o, "path", json_string(f->path));
  return o;
}

static json_t *nic_json(const struct vmh_nic_rate *n) {
  return json_pack("{s:s,s:I,s:I,s:I,s:I}", "name", n->name, "rx_bytes",
                   (json_int_t)n->rx_bytes, "tx_bytes", (json_int_t)n->tx_bytes,
                   "rx_bytes_per_s", (json_int_t)n->rx_bytes_per_s,
                   "tx_bytes_per_s", (json_int_t)n->tx_bytes_per_s);
}

static json_t *sample_json(const struct vmh_host_sample *s) {
  json_t *cores = json_array(), *fs = json_array(), *nics = json_array();
  for (uint32_t i = 0; cores && i < s->n_cpus; i++)
    json_array_append_new(cores, json_real(s->cpu_core_permille[i] / 1000.0));
  for (uint32_t i = 0; fs && i < s->n_filesystems; i++)
    json_array_append_new(fs, fs_json(&s->filesystems[i]));
  for (uint32_t i = 0; nics && i < s->n_nics; i++)
    json_array_append_new(nics, nic_json(&s->nics[i]));
  return json_pack(
      "{s:I,s:i,s:{s:f,s:o*},s:{s:f,s:f,s:f},s:{s:I,s:I,s:I},s:o*,s:o*}",
      "time_us", (json_int_t)s->time_us, "interval_ms", (int)s->interval_ms,
      "cpu", "usage", s->cpu_usage_permille / 1000.0, "per_core", cores, "load",
      "load1", s->load1_milli / 1000.0, "load5", s->load5_milli / 1000.0,
      "load15", s->load15_milli / 1000.0, "memory", "total",
      (json_int_t)s->memory_total, "available", (json_int_t)s->memory_available,
      "used", (json_int_t)s->memory_used, "filesystems", fs, "nics", nics);
}

struct samples {
  json_t *history, *latest;
};

static void add_sample(void *opaque, const struct vmh_host_sample *s) {
  struct samples *ss = opaque;
  json_decref(ss->latest);
  ss->latest = sample_json(s);
  json_array_append_new(
      ss->history,
      json_pack("{s:I,s:f,s:f,s:I}", "time_us", (json_int_t)s->time_us,
                "cpu_usage", s->cpu_usage_permille / 1000.0, "load1",
                s->load1_milli / 1000.0, "memory_used",
                (json_int_t)s->memory_used));
}

int rest_host_samples(const struct vmh_core *core, json_t *into) {
  if (!VMH_HAS_FIELD(core, host_samples) || !core->host_samples)
    return VMH_ENOTSUP;
  struct samples ss = {.history = json_array()};
  if (!ss.history || core->host_samples(add_sample, &ss, 0) < 0 ||
      json_object_set_new(into, "sample", ss.latest ? ss.latest : json_null()) <
          0 ||
      json_object_set_new(into, "history", ss.history) < 0) {
    json_decref(ss.history);
    return VMH_ENOMEM;
  }
  return 0;
}
