/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Per-VM, per-network and per-instance metrics: see vmmetrics.h. */
#include <config.h>

#include "vmmetrics.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <vmhost/core.h>

#include "histogram.h"
#include "instance.h"
#include "settings.h"
#include "vm.h"

/* The per-VM families, from the records' spec and live fields (kept
 * current by reads and the periodic reconcile). */
enum vm_family {
  VF_STATE,
  VF_VCPUS,
  VF_MEMORY,
  VF_CPU,
  VF_MEMORY_USED,
  VF_DISK_READ,
  VF_DISK_WRITTEN,
  VF_NET_RX,
  VF_NET_TX,
  N_VM_FAMILIES
};

static const struct {
  const char *name, *type, *help;
} vm_families[N_VM_FAMILIES] = {
    [VF_STATE] = {"vmhost_vm_state", "gauge",
                  "Always 1, for the state the VM is in (label state: "
                  "stopped, running, paused, suspended, crashed, creating, "
                  "starting, stopping, deleting, unknown)."},
    [VF_VCPUS] = {"vmhost_vm_vcpus", "gauge", "vCPUs the VM is defined with."},
    [VF_MEMORY] = {"vmhost_vm_memory_bytes", "gauge",
                   "Memory the VM is defined with, in bytes."},
    [VF_CPU] = {"vmhost_vm_cpu_seconds_total", "counter",
                "vCPU time the VM used since it last started, in seconds."},
    [VF_MEMORY_USED] = {"vmhost_vm_memory_used_bytes", "gauge",
                        "Memory the VM's guest uses, in bytes (0: the "
                        "hypervisor does not say)."},
    [VF_DISK_READ] = {"vmhost_vm_disk_read_bytes_total", "counter",
                      "Bytes the VM read from its disks since it last "
                      "started."},
    [VF_DISK_WRITTEN] = {"vmhost_vm_disk_written_bytes_total", "counter",
                         "Bytes the VM wrote to its disks since it last "
                         "started."},
    [VF_NET_RX] = {"vmhost_vm_network_receive_bytes_total", "counter",
                   "Bytes the VM's NICs received since it last started."},
    [VF_NET_TX] = {"vmhost_vm_network_transmit_bytes_total", "counter",
                   "Bytes the VM's NICs sent since it last started."},
};

/* enum vmh_vm_state as the state label says it. */
static const char *const state_names[] = {
    "unknown", "stopped",  "running",  "paused",   "suspended",
    "crashed", "creating", "starting", "stopping", "deleting"};
#define N_STATES (sizeof state_names / sizeof state_names[0])

/* One stream per family, joined at the end (a family's lines together),
 * and the NICs counted per network instance. */
struct vm_lines {
  FILE *f[N_VM_FAMILIES];
  char *buf[N_VM_FAMILIES];
  size_t len[N_VM_FAMILIES];
  const char **networks; /* the network instances, in config order */
  uint64_t *ports;
  size_t n_networks;
};

static void count_ports(struct vm_lines *l, const struct vmh_vm_spec *spec) {
  for (uint32_t i = 0; i < spec->n_nics && l->n_networks; i++) {
    const char *net = spec->nics[i].network;
    size_t k = 0;
    if (net)
      while (k < l->n_networks && strcmp(l->networks[k], net))
        k++;
    if (k < l->n_networks)
      l->ports[k]++;
  }
}

/* {vm="…",id="…" (the brace left open for more labels), escaped once for
 * the VM's nine series.  buf holds the longest: the name rule and a UUID
 * keep it far below (a longer one would be cut, never overrun). */
static void vm_labels(char *buf, size_t size, const struct vmh_vm_spec *spec) {
  const char *parts[] = {"{vm=\"", spec->name, "\",id=\"", spec->id, "\""};
  size_t n = 0;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    if (i % 2)
      n += prom_escape(buf + n, size - n, parts[i]);
    else
      n += (size_t)snprintf(buf + n, size - n, "%s", parts[i]);
    if (n >= size) {
      buf[size - 1] = '\0';
      return;
    }
  }
}

static void vm_usage(void *opaque, const struct vmh_vm_record *rec) {
  struct vm_lines *l = opaque;
  struct vmh_vm_info i = {0};
  memcpy(&i, rec->info,
         rec->info->struct_size < sizeof i ? rec->info->struct_size : sizeof i);
  const struct vmh_vm_spec *spec = rec->spec;
  uint64_t v[N_VM_FAMILIES] = {
      [VF_VCPUS] = spec->vcpus,
      [VF_MEMORY] = spec->memory,
      [VF_MEMORY_USED] = i.memory_used,
      [VF_DISK_READ] = i.disk_read_bytes,
      [VF_DISK_WRITTEN] = i.disk_write_bytes,
      [VF_NET_RX] = i.net_rx_bytes,
      [VF_NET_TX] = i.net_tx_bytes,
  };
  /* A name and an id escaped take at most 4 × 64 bytes. */
  char labels[300];
  vm_labels(labels, sizeof labels, spec);
  count_ports(l, spec);
  for (int k = 0; k < N_VM_FAMILIES; k++) {
    FILE *f = l->f[k];
    if (!f)
      continue;
    fputs(vm_families[k].name, f);
    fputs(labels, f);
    if (k == VF_STATE) {
      fprintf(f, ",state=\"%s\"} 1\n",
              state_names[i.state < N_STATES ? i.state : 0]);
    } else if (k == VF_CPU) {
      fputs("} ", f);
      hist_put_seconds(f, i.cpu_time_ns, 1000000000);
      fputc('\n', f);
    } else {
      fprintf(f, "} %" PRIu64 "\n", v[k]);
    }
  }
}

static void vm_usage_done(void *opaque, int code, const char *message) {
  (void)opaque, (void)code, (void)message;
}

/* vmhost_network_ports: the NICs of VM records on each network. */
static void render_ports(FILE *f, const struct vm_lines *l) {
  if (!l->n_networks)
    return;
  prom_put_family(f, "vmhost_network_ports", "gauge",
                  "NICs of VM records on the network (a port each, bound or "
                  "to be bound when the VM starts).");
  for (size_t k = 0; k < l->n_networks; k++) {
    fputs("vmhost_network_ports{network=\"", f);
    prom_put_label(f, l->networks[k]);
    fprintf(f, "\"} %" PRIu64 "\n", l->ports[k]);
  }
}

/* vmhost_instance_up: each configured instance, 1 when it serves. */
static void render_instances(FILE *f) {
  prom_put_family(f, "vmhost_instance_up", "gauge",
                  "1 when the plugin instance serves, 0 when not; reason: "
                  "ok, not_open (refused or failed to open) or "
                  "health_failed (its last health check failed).");
  for (size_t i = 0; i < instances_count(); i++) {
    const struct vmh_instance *inst = instance_at(i);
    const char *reason = !inst->is_open                  ? "not_open"
                         : atomic_load(&inst->unhealthy) ? "health_failed"
                                                         : "ok";
    fputs("vmhost_instance_up{instance=\"", f);
    prom_put_label(f, inst->name);
    fprintf(f, "\",kind=\"%s\",plugin=\"", kind_name(inst->kind));
    prom_put_label(f, inst->conf->plugin);
    fprintf(f, "\",reason=\"%s\"} %d\n", reason, strcmp(reason, "ok") == 0);
  }
}

/* The network instances, in config order, for the port counts. */
static int networks_list(struct vm_lines *l) {
  size_t n = instances_count();
  l->networks = calloc(n + 1, sizeof *l->networks);
  l->ports = calloc(n + 1, sizeof *l->ports);
  if (!l->networks || !l->ports)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (instance_at(i)->kind == VMH_KIND_NETWORK)
      l->networks[l->n_networks++] = instance_at(i)->name;
  return 0;
}

void vmmetrics_render(FILE *f) {
  struct vm_lines l;
  memset(&l, 0, sizeof l);
  if (networks_list(&l) < 0)
    l.n_networks = 0;
  for (size_t k = 0; k < N_VM_FAMILIES; k++)
    l.f[k] = open_memstream(&l.buf[k], &l.len[k]);
  /* From memory: answered before vm_list returns. */
  struct vmh_reply r = {.struct_size = sizeof r,
                        .opaque = &l,
                        .vm = vm_usage,
                        .done = vm_usage_done};
  vm_list(&r, 0);
  for (size_t k = 0; k < N_VM_FAMILIES; k++) {
    if (l.f[k])
      fclose(l.f[k]);
    if (l.len[k]) {
      prom_put_family(f, vm_families[k].name, vm_families[k].type,
                      vm_families[k].help);
      fwrite(l.buf[k], 1, l.len[k], f);
    }
    free(l.buf[k]);
  }
  render_ports(f, &l);
  render_instances(f);
  free(l.networks);
  free(l.ports);
}
