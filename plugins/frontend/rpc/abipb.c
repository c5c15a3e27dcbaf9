/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* abipb — see abipb.h. */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abijson.h"
#include "abipb.h"
#include "abistruct.h"
#include "sizes.h"
#include "speclimits.h"

/* ---- Strings ------------------------------------------------------------ */

char *abipb_str(struct abij_arena *a, const char *s) {
  if (!s || !*s)
    return (char *)protobuf_c_empty_string;
  size_t n = strlen(s) + 1;
  char *p = abij_arena_alloc(a, n);
  if (p)
    memcpy(p, s, n);
  return p;
}

/* A new message of a generated type, initialised. */
#define NEW(a, type, init)                          \
  ({                                                \
    type *m_ = abij_arena_alloc((a), sizeof(type)); \
    if (m_)                                         \
      init(m_);                                     \
    m_;                                             \
  })

/* Strings: a failed copy is out of memory (the empty string is static). */
#define STR(a, dst, s, fail)            \
  do {                                  \
    if (!((dst) = abipb_str((a), (s)))) \
      goto fail;                        \
  } while (0)

static char **strv(struct abij_arena *a, const char *const *v, uint32_t n,
                   size_t *ret_n) {
  *ret_n = 0;
  if (!n)
    return NULL;
  char **out = abij_arena_alloc(a, n * sizeof *out);
  if (!out)
    return NULL;
  for (uint32_t i = 0; i < n; i++)
    if (!(out[i] = abipb_str(a, v[i])))
      return NULL;
  *ret_n = n;
  return out;
}

/* ---- Encoders ------------------------------------------------------------ */

static Vmhost__V1__DiskSource *source_pb(struct abij_arena *a,
                                         const struct vmh_disk_source *src) {
  struct vmh_disk_source s;
  COPY_IN(s, src);
  Vmhost__V1__DiskSource *m =
      NEW(a, Vmhost__V1__DiskSource, vmhost__v1__disk_source__init);
  if (!m)
    return NULL;
  m->type = (Vmhost__V1__SourceType)s.type;
  m->format = (Vmhost__V1__DiskFormat)s.format;
  STR(a, m->path, s.path, nomem);
  STR(a, m->pool, s.pool, nomem);
  STR(a, m->image, s.image, nomem);
  STR(a, m->auth_user, s.auth_user, nomem);
  STR(a, m->portal, s.portal, nomem);
  STR(a, m->iqn, s.iqn, nomem);
  STR(a, m->server, s.server, nomem);
  STR(a, m->export_path, s.export_path, nomem);
  m->has_auth_secret = s.auth_secret != NULL;
  m->lun = s.lun;
  m->monitors = strv(a, s.monitors, s.n_monitors, &m->n_monitors);
  if (s.n_monitors && !m->monitors)
    goto nomem;
  return m;
nomem:
  return NULL;
}

static Vmhost__V1__Disk *disk_pb(struct abij_arena *a,
                                 const struct vmh_disk *src) {
  struct vmh_disk d;
  COPY_IN(d, src);
  Vmhost__V1__Disk *m = NEW(a, Vmhost__V1__Disk, vmhost__v1__disk__init);
  if (!m)
    return NULL;
  STR(a, m->name, d.name, nomem);
  STR(a, m->pool, d.pool, nomem);
  STR(a, m->volume, d.volume, nomem);
  STR(a, m->base_image, d.base_image, nomem);
  m->size = d.size;
  m->format = (Vmhost__V1__DiskFormat)d.format;
  m->bus = (Vmhost__V1__DiskBus)d.bus;
  m->readonly = d.readonly != 0;
  m->boot_order = d.boot_order;
  if (d.source && !(m->source = source_pb(a, d.source)))
    goto nomem;
  return m;
nomem:
  return NULL;
}

static Vmhost__V1__NicBinding *binding_pb(struct abij_arena *a,
                                          const struct vmh_nic_binding *src) {
  struct vmh_nic_binding b;
  COPY_IN(b, src);
  Vmhost__V1__NicBinding *m =
      NEW(a, Vmhost__V1__NicBinding, vmhost__v1__nic_binding__init);
  if (!m)
    return NULL;
  m->type = (Vmhost__V1__BindingType)b.type;
  STR(a, m->bridge, b.bridge, nomem);
  STR(a, m->port, b.port, nomem);
  STR(a, m->interface_id, b.interface_id, nomem);
  STR(a, m->tap, b.tap, nomem);
  STR(a, m->mac, b.mac, nomem);
  m->vlan = b.vlan;
  m->mtu = b.mtu;
  return m;
nomem:
  return NULL;
}

static Vmhost__V1__Nic *nic_pb(struct abij_arena *a,
                               const struct vmh_nic *src) {
  struct vmh_nic n;
  COPY_IN(n, src);
  Vmhost__V1__Nic *m = NEW(a, Vmhost__V1__Nic, vmhost__v1__nic__init);
  if (!m)
    return NULL;
  STR(a, m->name, n.name, nomem);
  STR(a, m->network, n.network, nomem);
  STR(a, m->mac, n.mac, nomem);
  m->vlan = n.vlan;
  m->model = (Vmhost__V1__NicModel)n.model;
  if (n.binding && !(m->binding = binding_pb(a, n.binding)))
    goto nomem;
  return m;
nomem:
  return NULL;
}

static Vmhost__V1__VmSpec *spec_pb(struct abij_arena *a,
                                   const struct vmh_vm_spec *src) {
  struct vmh_vm_spec s;
  COPY_IN(s, src);
  Vmhost__V1__VmSpec *m = NEW(a, Vmhost__V1__VmSpec, vmhost__v1__vm_spec__init);
  if (!m)
    return NULL;
  STR(a, m->id, s.id, nomem);
  STR(a, m->name, s.name, nomem);
  STR(a, m->kernel, s.kernel, nomem);
  STR(a, m->initrd, s.initrd, nomem);
  STR(a, m->cmdline, s.cmdline, nomem);
  STR(a, m->firmware, s.firmware, nomem);
  STR(a, m->user_data, s.user_data, nomem);
  STR(a, m->meta_data, s.meta_data, nomem);
  STR(a, m->hypervisor, s.hypervisor, nomem);
  STR(a, m->network_config, s.network_config, nomem);
  m->vcpus = s.vcpus;
  m->memory = s.memory;
  m->guest_channel = s.guest_channel != 0;
  if (s.n_disks) {
    if (!(m->disks = abij_arena_alloc(a, s.n_disks * sizeof *m->disks)))
      goto nomem;
    for (uint32_t i = 0; i < s.n_disks; i++)
      if (!(m->disks[i] = disk_pb(a, ELEM(s.disks, i))))
        goto nomem;
    m->n_disks = s.n_disks;
  }
  if (s.n_nics) {
    if (!(m->nics = abij_arena_alloc(a, s.n_nics * sizeof *m->nics)))
      goto nomem;
    for (uint32_t i = 0; i < s.n_nics; i++)
      if (!(m->nics[i] = nic_pb(a, ELEM(s.nics, i))))
        goto nomem;
    m->n_nics = s.n_nics;
  }
  if (s.n_metadata) {
    if (!(m->labels = abij_arena_alloc(a, s.n_metadata * sizeof *m->labels)))
      goto nomem;
    for (uint32_t i = 0; i < s.n_metadata; i++) {
      Vmhost__V1__VmSpec__LabelsEntry *e =
          NEW(a, Vmhost__V1__VmSpec__LabelsEntry,
              vmhost__v1__vm_spec__labels_entry__init);
      if (!e)
        goto nomem;
      STR(a, e->key, s.metadata[i].key, nomem);
      STR(a, e->value, s.metadata[i].value, nomem);
      m->labels[i] = e;
    }
    m->n_labels = s.n_metadata;
  }
  return m;
nomem:
  return NULL;
}

static Vmhost__V1__VmInfo *info_pb(struct abij_arena *a,
                                   const struct vmh_vm_info *src) {
  struct vmh_vm_info v;
  COPY_IN(v, src);
  Vmhost__V1__VmInfo *m = NEW(a, Vmhost__V1__VmInfo, vmhost__v1__vm_info__init);
  if (!m)
    return NULL;
  m->state = (Vmhost__V1__VmState)v.state;
  m->vcpus = v.vcpus;
  m->memory = v.memory;
  m->memory_used = v.memory_used;
  m->cpu_time_ns = v.cpu_time_ns;
  m->disk_read_bytes = v.disk_read_bytes;
  m->disk_write_bytes = v.disk_write_bytes;
  m->net_rx_bytes = v.net_rx_bytes;
  m->net_tx_bytes = v.net_tx_bytes;
  m->uptime_s = v.uptime_s;
  m->channel_type = (Vmhost__V1__ChannelType)v.channel_type;
  m->channel_port = v.channel_port;
  STR(a, m->channel_path, v.channel_path, nomem);
  m->ips = strv(a, v.ips, v.n_ips, &m->n_ips);
  if (v.n_ips && !m->ips)
    goto nomem;
  return m;
nomem:
  return NULL;
}

Vmhost__V1__Vm *abipb_vm(struct abij_arena *a,
                         const struct vmh_vm_record *src) {
  struct vmh_vm_record r;
  COPY_IN(r, src);
  Vmhost__V1__Vm *m = NEW(a, Vmhost__V1__Vm, vmhost__v1__vm__init);
  if (!m)
    return NULL;
  if (r.spec && !(m->spec = spec_pb(a, r.spec)))
    return NULL;
  if (r.info && !(m->info = info_pb(a, r.info)))
    return NULL;
  m->id = m->spec ? m->spec->id : (char *)protobuf_c_empty_string;
  m->name = m->spec ? m->spec->name : (char *)protobuf_c_empty_string;
  m->status = (Vmhost__V1__VmStatus)r.status;
  m->created = r.created;
  m->updated_us = r.updated_us;
  STR(a, m->error, r.error, nomem);
  if (!(m->agent =
            NEW(a, Vmhost__V1__AgentSummary, vmhost__v1__agent_summary__init)))
    goto nomem;
  m->agent->state = (Vmhost__V1__AgentState)r.agent_state;
  STR(a, m->agent->version, r.agent_version, nomem);
  return m;
nomem:
  return NULL;
}

Vmhost__V1__VmStatusResponse *abipb_vm_status(struct abij_arena *a,
                                              const struct vmh_vm_record *src) {
  Vmhost__V1__Vm *vm = abipb_vm(a, src);
  Vmhost__V1__VmStatusResponse *m =
      vm ? NEW(a, Vmhost__V1__VmStatusResponse,
               vmhost__v1__vm_status_response__init)
         : NULL;
  if (!m)
    return NULL;
  m->id = vm->id;
  m->name = vm->name;
  m->status = vm->status;
  m->info = vm->info;
  m->error = vm->error;
  return m;
}

Vmhost__V1__Snapshot *abipb_snapshot(struct abij_arena *a,
                                     const struct vmh_snapshot_info *src) {
  struct vmh_snapshot_info s;
  COPY_IN(s, src);
  Vmhost__V1__Snapshot *m =
      NEW(a, Vmhost__V1__Snapshot, vmhost__v1__snapshot__init);
  if (!m)
    return NULL;
  STR(a, m->id, s.id, nomem);
  STR(a, m->name, s.name, nomem);
  STR(a, m->parent, s.parent, nomem);
  m->created = s.created;
  m->vm_state = (Vmhost__V1__VmState)s.vm_state;
  m->current = s.current != 0;
  m->quiesced = s.quiesced != 0;
  return m;
nomem:
  return NULL;
}

/* ---- The guest agent ------------------------------------------------------
 */

/* A copy of len bytes in the arena; false when out of memory. */
static bool bytes(struct abij_arena *a, ProtobufCBinaryData *dst,
                  const uint8_t *p, size_t len) {
  *dst = (ProtobufCBinaryData){0};
  if (!len)
    return true;
  if (!(dst->data = abij_arena_alloc(a, len)))
    return false;
  memcpy(dst->data, p, len);
  dst->len = len;
  return true;
}

static Vmhost__V1__AgentTelemetry *telemetry_pb(
    struct abij_arena *a, const struct vmh_agent_telemetry *src) {
  struct vmh_agent_telemetry t;
  COPY_IN(t, src);
  Vmhost__V1__AgentTelemetry *m =
      NEW(a, Vmhost__V1__AgentTelemetry, vmhost__v1__agent_telemetry__init);
  if (!m)
    return NULL;
  m->time_us = t.time_us;
  STR(a, m->os_name, t.os_name, nomem);
  STR(a, m->os_version, t.os_version, nomem);
  STR(a, m->kernel, t.kernel, nomem);
  STR(a, m->hostname, t.hostname, nomem);
  STR(a, m->arch, t.arch, nomem);
  m->uptime_s = t.uptime_s;
  m->cpus = t.cpus;
  m->cpu_use = t.cpu_use;
  m->memory_total = t.memory_total;
  m->memory_available = t.memory_available;
  if (t.n_filesystems && t.filesystems) {
    m->filesystems =
        abij_arena_alloc(a, t.n_filesystems * sizeof *m->filesystems);
    if (!m->filesystems)
      goto nomem;
    for (uint32_t i = 0; i < t.n_filesystems; i++) {
      struct vmh_agent_fs f;
      const struct vmh_agent_fs *fp = ELEM(t.filesystems, i);
      COPY_IN(f, fp);
      Vmhost__V1__AgentFilesystem *x = NEW(a, Vmhost__V1__AgentFilesystem,
                                           vmhost__v1__agent_filesystem__init);
      if (!x)
        goto nomem;
      STR(a, x->mountpoint, f.mountpoint, nomem);
      STR(a, x->device, f.device, nomem);
      STR(a, x->type, f.type, nomem);
      x->size = f.size;
      x->used = f.used;
      x->read_only = f.read_only != 0;
      m->filesystems[m->n_filesystems++] = x;
    }
  }
  if (t.n_nics && t.nics) {
    m->nics = abij_arena_alloc(a, t.n_nics * sizeof *m->nics);
    if (!m->nics)
      goto nomem;
    for (uint32_t i = 0; i < t.n_nics; i++) {
      struct vmh_agent_nic n;
      const struct vmh_agent_nic *np = ELEM(t.nics, i);
      COPY_IN(n, np);
      Vmhost__V1__AgentNic *x =
          NEW(a, Vmhost__V1__AgentNic, vmhost__v1__agent_nic__init);
      if (!x)
        goto nomem;
      STR(a, x->name, n.name, nomem);
      STR(a, x->mac, n.mac, nomem);
      x->addresses = strv(a, n.addresses, n.n_addresses, &x->n_addresses);
      if (n.n_addresses && !x->addresses)
        goto nomem;
      m->nics[m->n_nics++] = x;
    }
  }
  return m;
nomem:
  return NULL;
}

static ProtobufCMessage *agent_show_pb(struct abij_arena *a,
                                       const struct vmh_agent_result *r) {
  Vmhost__V1__Agent *m = NEW(a, Vmhost__V1__Agent, vmhost__v1__agent__init);
  if (!m)
    return NULL;
  m->state = (Vmhost__V1__AgentState)r->state;
  STR(a, m->version, r->version, nomem);
  STR(a, m->message, r->message, nomem);
  m->thaw_pending = r->thaw_pending != 0;
  m->capabilities =
      strv(a, r->capabilities, r->n_capabilities, &m->n_capabilities);
  if (r->n_capabilities && !m->capabilities)
    goto nomem;
  if (r->telemetry && !(m->telemetry = telemetry_pb(a, r->telemetry)))
    goto nomem;
  return &m->base;
nomem:
  return NULL;
}

ProtobufCMessage *abipb_agent(struct abij_arena *a,
                              const struct vmh_agent_result *src) {
  struct vmh_agent_result r;
  COPY_IN(r, src);
  switch (r.op) {
    case VMH_AGENT_SHOW:
    case VMH_AGENT_TELEMETRY: /* the same, with fresh telemetry */
      return agent_show_pb(a, &r);
    case VMH_AGENT_PING: {
      Vmhost__V1__AgentPingResponse *m =
          NEW(a, Vmhost__V1__AgentPingResponse,
              vmhost__v1__agent_ping_response__init);
      return m ? &m->base : NULL;
    }
    case VMH_AGENT_EXEC: {
      Vmhost__V1__AgentExecResponse *m =
          NEW(a, Vmhost__V1__AgentExecResponse,
              vmhost__v1__agent_exec_response__init);
      if (!m)
        return NULL;
      m->exit_status = r.exit_status;
      m->signal = r.signal;
      m->timed_out = r.timed_out != 0;
      if (!bytes(a, &m->stdout, r.out, r.out_len) ||
          !bytes(a, &m->stderr, r.err, r.err_len))
        return NULL;
      m->stdout_truncated = r.out_truncated != 0;
      m->stderr_truncated = r.err_truncated != 0;
      return &m->base;
    }
    case VMH_AGENT_FILE_READ: {
      Vmhost__V1__AgentReadFileResponse *m =
          NEW(a, Vmhost__V1__AgentReadFileResponse,
              vmhost__v1__agent_read_file_response__init);
      if (!m)
        return NULL;
      if (!bytes(a, &m->data, r.data, r.len))
        return NULL;
      m->size = r.size;
      m->eof = r.eof != 0;
      return &m->base;
    }
    case VMH_AGENT_FILE_WRITE: {
      Vmhost__V1__AgentWriteFileResponse *m =
          NEW(a, Vmhost__V1__AgentWriteFileResponse,
              vmhost__v1__agent_write_file_response__init);
      if (!m)
        return NULL;
      m->size = r.size;
      return &m->base;
    }
    case VMH_AGENT_TIME_SYNC: {
      Vmhost__V1__AgentTimeSyncResponse *m =
          NEW(a, Vmhost__V1__AgentTimeSyncResponse,
              vmhost__v1__agent_time_sync_response__init);
      if (!m)
        return NULL;
      m->offset_ns = r.offset_ns;
      return &m->base;
    }
    default:
      return NULL;
  }
}

Vmhost__V1__Console *abipb_console(struct abij_arena *a,
                                   const struct vmh_console_info *src) {
  struct vmh_console_info c;
  COPY_IN(c, src);
  Vmhost__V1__Console *m =
      NEW(a, Vmhost__V1__Console, vmhost__v1__console__init);
  if (!m)
    return NULL;
  m->type = (Vmhost__V1__ConsoleType)c.type;
  STR(a, m->host, c.host, nomem);
  STR(a, m->path, c.path, nomem);
  STR(a, m->password, c.password, nomem);
  m->port = c.port;
  return m;
nomem:
  return NULL;
}

Vmhost__V1__Pool *abipb_pool(struct abij_arena *a,
                             const struct vmh_pool_info *src) {
  struct vmh_pool_info p;
  COPY_IN(p, src);
  Vmhost__V1__Pool *m = NEW(a, Vmhost__V1__Pool, vmhost__v1__pool__init);
  if (!m)
    return NULL;
  STR(a, m->name, p.name, nomem);
  STR(a, m->type, p.type, nomem);
  m->capacity = p.capacity;
  m->allocation = p.allocation;
  m->available = p.available;
  m->n_volumes = p.n_volumes;
  m->default_format = (Vmhost__V1__DiskFormat)p.default_format;
  STR(a, m->message, p.message, nomem);
  return m;
nomem:
  return NULL;
}

Vmhost__V1__Volume *abipb_volume(struct abij_arena *a,
                                 const struct vmh_volume_info *src) {
  struct vmh_volume_info v;
  COPY_IN(v, src);
  Vmhost__V1__Volume *m = NEW(a, Vmhost__V1__Volume, vmhost__v1__volume__init);
  if (!m)
    return NULL;
  STR(a, m->name, v.name, nomem);
  STR(a, m->backing, v.backing, nomem);
  STR(a, m->location, v.location, nomem);
  m->capacity = v.capacity;
  m->allocation = v.allocation;
  m->format = (Vmhost__V1__DiskFormat)v.format;
  return m;
nomem:
  return NULL;
}

Vmhost__V1__Image *abipb_image(struct abij_arena *a,
                               const struct vmh_image_info *src) {
  struct vmh_image_info i;
  COPY_IN(i, src);
  Vmhost__V1__Image *m = NEW(a, Vmhost__V1__Image, vmhost__v1__image__init);
  if (!m)
    return NULL;
  STR(a, m->name, i.name, nomem);
  STR(a, m->sha256, i.sha256, nomem);
  m->size = i.size;
  m->n_users = i.n_users;
  return m;
nomem:
  return NULL;
}

Vmhost__V1__Network *abipb_network(struct abij_arena *a,
                                   const struct vmh_network_info *src) {
  struct vmh_network_info n;
  COPY_IN(n, src);
  Vmhost__V1__Network *m =
      NEW(a, Vmhost__V1__Network, vmhost__v1__network__init);
  if (!m)
    return NULL;
  STR(a, m->name, n.name, nomem);
  STR(a, m->type, n.type, nomem);
  STR(a, m->bridge, n.bridge, nomem);
  STR(a, m->cidr, n.cidr, nomem);
  STR(a, m->gateway, n.gateway, nomem);
  m->mtu = n.mtu;
  m->n_ports = n.n_ports;
  m->up = n.up != 0;
  return m;
nomem:
  return NULL;
}

Vmhost__V1__NodeInfo *abipb_host(struct abij_arena *a,
                                 const struct vmh_host_info *src) {
  struct vmh_host_info h;
  COPY_IN(h, src);
  Vmhost__V1__NodeInfo *m =
      NEW(a, Vmhost__V1__NodeInfo, vmhost__v1__node_info__init);
  if (!m)
    return NULL;
  STR(a, m->hostname, h.hostname, nomem);
  STR(a, m->os_name, h.os_name, nomem);
  STR(a, m->os_version, h.os_version, nomem);
  STR(a, m->kernel, h.kernel, nomem);
  STR(a, m->arch, h.arch, nomem);
  STR(a, m->cpu_model, h.cpu_model, nomem);
  m->cpu_sockets = h.cpu_sockets;
  m->cpu_cores = h.cpu_cores;
  m->cpu_threads = h.cpu_threads;
  m->memory_total = h.memory_total;
  m->memory_available = h.memory_available;
  m->uptime_s = h.uptime_s;
  m->n_vms = h.n_vms;
  return m;
nomem:
  return NULL;
}

Vmhost__V1__Check *abipb_check(struct abij_arena *a,
                               const struct vmh_health_check *src) {
  struct vmh_health_check c;
  COPY_IN(c, src);
  Vmhost__V1__Check *m = NEW(a, Vmhost__V1__Check, vmhost__v1__check__init);
  if (!m)
    return NULL;
  STR(a, m->name, c.name, nomem);
  STR(a, m->kind, c.kind, nomem);
  STR(a, m->message, c.message, nomem);
  m->status = (Vmhost__V1__CheckStatus)c.status;
  return m;
nomem:
  return NULL;
}

Vmhost__V1__Plugin *abipb_plugin(struct abij_arena *a,
                                 const struct vmh_plugin_info *src) {
  static const char *const models[] = {"serialize_all", "serialize_instance",
                                       "parallel"};
  struct vmh_plugin_info p;
  COPY_IN(p, src);
  Vmhost__V1__Plugin *m = NEW(a, Vmhost__V1__Plugin, vmhost__v1__plugin__init);
  if (!m)
    return NULL;
  STR(a, m->name, p.name, nomem);
  STR(a, m->kind, p.kind, nomem);
  STR(a, m->version, p.version, nomem);
  STR(a, m->description, p.description, nomem);
  STR(a, m->file, p.file, nomem);
  STR(a, m->thread_model, p.thread_model < 3 ? models[p.thread_model] : "",
      nomem);
  m->abi_major = p.abi_major;
  m->abi_minor = p.abi_minor;
  m->instances = strv(a, p.instances, p.n_instances, &m->n_instances);
  m->ops = strv(a, p.ops, p.n_ops, &m->n_ops);
  if ((p.n_instances && !m->instances) || (p.n_ops && !m->ops))
    goto nomem;
  return m;
nomem:
  return NULL;
}

Vmhost__V1__Event *abipb_event(struct abij_arena *a,
                               const struct vmh_event *src,
                               const char *(*name)(int code)) {
  struct vmh_event e;
  COPY_IN(e, src);
  Vmhost__V1__Event *m = NEW(a, Vmhost__V1__Event, vmhost__v1__event__init);
  if (!m)
    return NULL;
  m->type = (Vmhost__V1__EventType)e.type;
  m->time_us = e.time_us;
  m->state = (Vmhost__V1__VmState)e.state;
  m->done = e.done;
  m->total = e.total;
  STR(a, m->source, e.source, nomem);
  STR(a, m->vm_id, e.vm_id, nomem);
  STR(a, m->reason, e.reason, nomem);
  STR(a, m->operation, e.operation, nomem);
  STR(a, m->message, e.message, nomem);
  STR(a, m->object, e.object, nomem);
  STR(a, m->code, e.code ? name(e.code) : NULL, nomem);
  STR(a, m->id, e.id, nomem);
  STR(a, m->vm_name, e.vm_name, nomem);
  STR(a, m->pool, e.pool, nomem);
  STR(a, m->target, e.target, nomem);
  return m;
nomem:
  return NULL;
}

/* A succeeded operation's result (node.proto's OperationResult), NULL
 * when it has none or out of memory (*nomem set). */
static Vmhost__V1__OperationResult *op_result(struct abij_arena *a,
                                              const struct vmh_operation *o,
                                              bool *nomem) {
  const char *kind = o->result_kind;
  *nomem = true;
  if (!kind) {
    *nomem = false;
    return NULL;
  }
  Vmhost__V1__OperationResult *m =
      NEW(a, Vmhost__V1__OperationResult, vmhost__v1__operation_result__init);
  if (!m)
    return NULL;
  if (!strcmp(kind, "vm")) {
    Vmhost__V1__VmRef *v = NEW(a, Vmhost__V1__VmRef, vmhost__v1__vm_ref__init);
    if (!v)
      return NULL;
    STR(a, v->id, o->result_id, fail);
    STR(a, v->name, o->result_name, fail);
    m->kind_case = VMHOST__V1__OPERATION_RESULT__KIND_VM;
    m->vm = v;
  } else if (!strcmp(kind, "snapshot")) {
    Vmhost__V1__SnapshotRef *v =
        NEW(a, Vmhost__V1__SnapshotRef, vmhost__v1__snapshot_ref__init);
    if (!v)
      return NULL;
    STR(a, v->vm_id, o->vm_id, fail);
    STR(a, v->id, o->result_id, fail);
    STR(a, v->name, o->result_name, fail);
    m->kind_case = VMHOST__V1__OPERATION_RESULT__KIND_SNAPSHOT;
    m->snapshot = v;
  } else {
    Vmhost__V1__PoolObjectRef *v =
        NEW(a, Vmhost__V1__PoolObjectRef, vmhost__v1__pool_object_ref__init);
    if (!v)
      return NULL;
    STR(a, v->pool, o->pool, fail);
    STR(a, v->name, o->result_name, fail);
    if (!strcmp(kind, "volume")) {
      m->kind_case = VMHOST__V1__OPERATION_RESULT__KIND_VOLUME;
      m->volume = v;
    } else {
      m->kind_case = VMHOST__V1__OPERATION_RESULT__KIND_IMAGE;
      m->image = v;
    }
  }
  *nomem = false;
  return m;
fail:
  return NULL;
}

Vmhost__V1__Operation *abipb_operation(struct abij_arena *a,
                                       const struct vmh_operation *src,
                                       const char *(*name)(int code)) {
  struct vmh_operation o;
  COPY_IN(o, src);
  Vmhost__V1__Operation *m =
      NEW(a, Vmhost__V1__Operation, vmhost__v1__operation__init);
  if (!m)
    return NULL;
  m->status = (Vmhost__V1__OperationStatus)o.status;
  m->progress = o.progress;
  m->done = o.done;
  m->total = o.total;
  m->created_us = o.created_us;
  m->updated_us = o.updated_us;
  STR(a, m->id, o.id, nomem);
  STR(a, m->kind, o.kind, nomem);
  STR(a, m->vm_id, o.vm_id, nomem);
  STR(a, m->vm_name, o.vm_name, nomem);
  STR(a, m->pool, o.pool, nomem);
  STR(a, m->object, o.object, nomem);
  STR(a, m->message, o.message, nomem);
  STR(a, m->error_code, o.code ? name(o.code) : NULL, nomem);
  STR(a, m->error_message, o.error, nomem);
  bool result_nomem;
  m->result = op_result(a, &o, &result_nomem);
  if (result_nomem)
    goto nomem;
  return m;
nomem:
  return NULL;
}

/* ---- Decoders ------------------------------------------------------------ */

static int refuse(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((__format__(__printf__, 3, 4)));
static int refuse(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return VMH_EINVAL;
}

static int nomem(char *err, size_t errlen) {
  snprintf(err, errlen, "out of memory");
  return VMH_ENOMEM;
}

/* "" is unset. */
static const char *opt(const char *s) {
  return s && *s ? s : NULL;
}

/* An optional name field. */
static int name_in(const char *where, const char *field, const char *s,
                   const char **ret, char *err, size_t errlen) {
  *ret = opt(s);
  if (*ret && !vmh_name_valid(*ret))
    return refuse(err, errlen, "'%s%s' must be a name (" VMH_NAME_RULE ")",
                  where, field);
  return 0;
}

int abipb_ref(const char *what, const char *s, int uuid, char *err,
              size_t errlen) {
  if (s && vmh_name_valid(s))
    return 0;
  if (uuid && s && strlen(s) == VMH_ID_LEN &&
      strspn(s, "0123456789abcdefABCDEF-") == VMH_ID_LEN)
    return 0;
  return refuse(err, errlen, "'%s' must be a name%s, not '%.80s'", what,
                uuid ? " or an id" : "", s ? s : "");
}

int abipb_disk_in(struct abij_arena *a, const Vmhost__V1__Disk *m,
                  const char *w, struct vmh_disk *d, char *err, size_t errlen) {
  (void)a;
  int r;
  *d = (struct vmh_disk){.struct_size = sizeof *d};
  if (!m)
    return refuse(err, errlen, "'%s' is required", w);
  if ((r = name_in(w, "name", m->name, &d->name, err, errlen)) < 0 ||
      (r = name_in(w, "pool", m->pool, &d->pool, err, errlen)) < 0 ||
      (r = name_in(w, "volume", m->volume, &d->volume, err, errlen)) < 0 ||
      (r = name_in(w, "base_image", m->base_image, &d->base_image, err,
                   errlen)) < 0)
    return r;
  if (!d->name)
    return refuse(err, errlen, "'%sname' is required", w);
  if (m->size > INT64_MAX)
    return refuse(err, errlen, "'%ssize' is too large", w);
  if ((uint32_t)m->format > VMH_FORMAT_QCOW2)
    return refuse(err, errlen, "'%sformat' is not a DiskFormat", w);
  if ((uint32_t)m->bus > VMH_BUS_SATA)
    return refuse(err, errlen, "'%sbus' is not a DiskBus", w);
  if (m->boot_order > SPEC_BOOT_ORDER_MAX)
    return refuse(err, errlen, "'%sboot_order' must be 0 to %d", w,
                  SPEC_BOOT_ORDER_MAX);
  d->size = m->size;
  d->format = (uint32_t)m->format;
  d->bus = (uint32_t)m->bus;
  d->readonly = m->readonly ? 1 : 0;
  d->boot_order = m->boot_order;
  return 0;
}

static int nic_in(const Vmhost__V1__Nic *m, const char *w, struct vmh_nic *n,
                  char *err, size_t errlen) {
  int r;
  *n = (struct vmh_nic){.struct_size = sizeof *n};
  if ((r = name_in(w, "name", m->name, &n->name, err, errlen)) < 0 ||
      (r = name_in(w, "network", m->network, &n->network, err, errlen)) < 0)
    return r;
  if (!n->name)
    return refuse(err, errlen, "'%sname' is required", w);
  if (m->vlan > SPEC_VLAN_MAX)
    return refuse(err, errlen, "'%svlan' must be 0 to %d", w, SPEC_VLAN_MAX);
  if ((uint32_t)m->model > VMH_NIC_E1000)
    return refuse(err, errlen, "'%smodel' is not a NicModel", w);
  n->mac = opt(m->mac);
  n->vlan = m->vlan;
  n->model = (uint32_t)m->model;
  return 0;
}

int abipb_spec_in(struct abij_arena *a, const Vmhost__V1__VmSpec *m,
                  struct vmh_vm_spec *s, char *err, size_t errlen) {
  int r;
  *s = (struct vmh_vm_spec){.struct_size = sizeof *s};
  if (!m)
    return refuse(err, errlen, "'spec' is required");
  if ((r = name_in("spec.", "name", m->name, &s->name, err, errlen)) < 0 ||
      (r = name_in("spec.", "hypervisor", m->hypervisor, &s->hypervisor, err,
                   errlen)) < 0)
    return r;
  if (!s->name)
    return refuse(err, errlen, "'spec.name' is required");
  /* proto3 cannot tell a field left out from 0: 0 is "left out". */
  if (!m->vcpus || !m->memory)
    return refuse(err, errlen, "'spec.%s' is required",
                  !m->vcpus ? "vcpus" : "memory");
  if (m->vcpus < SPEC_VCPUS_MIN || m->vcpus > SPEC_VCPUS_MAX)
    return refuse(err, errlen, "'spec.vcpus' must be %d to %d", SPEC_VCPUS_MIN,
                  SPEC_VCPUS_MAX);
  if (m->memory < SPEC_MEMORY_MIN || m->memory > SPEC_MEMORY_MAX) {
    char lo[32], hi[32];
    return refuse(err, errlen, "'spec.memory' must be %s to %s (bytes)",
                  size_format(SPEC_MEMORY_MIN, lo, sizeof lo),
                  size_format(SPEC_MEMORY_MAX, hi, sizeof hi));
  }
  if (m->n_disks > UINT32_MAX || m->n_nics > UINT32_MAX ||
      m->n_labels > UINT32_MAX)
    return refuse(err, errlen, "'spec' has too many elements");
  s->vcpus = m->vcpus;
  s->memory = m->memory;
  s->kernel = opt(m->kernel);
  s->initrd = opt(m->initrd);
  s->cmdline = opt(m->cmdline);
  s->firmware = opt(m->firmware);
  s->guest_channel = m->guest_channel ? 1 : 0;
  s->user_data = opt(m->user_data);
  s->meta_data = opt(m->meta_data);
  s->network_config = opt(m->network_config);
  struct vmh_disk *disks = abij_arena_alloc(a, m->n_disks * sizeof *disks);
  struct vmh_nic *nics = abij_arena_alloc(a, m->n_nics * sizeof *nics);
  struct vmh_keyval *kv = abij_arena_alloc(a, m->n_labels * sizeof *kv);
  if (!disks || !nics || !kv)
    return nomem(err, errlen);
  for (size_t i = 0; i < m->n_disks; i++) {
    char w[48];
    snprintf(w, sizeof w, "spec.disks[%zu].", i);
    if ((r = abipb_disk_in(a, m->disks[i], w, &disks[i], err, errlen)) < 0)
      return r;
  }
  for (size_t i = 0; i < m->n_nics; i++) {
    char w[48];
    snprintf(w, sizeof w, "spec.nics[%zu].", i);
    if ((r = nic_in(m->nics[i], w, &nics[i], err, errlen)) < 0)
      return r;
  }
  for (size_t i = 0; i < m->n_labels; i++)
    kv[i] = (struct vmh_keyval){m->labels[i]->key, m->labels[i]->value};
  s->disks = disks;
  s->n_disks = (uint32_t)m->n_disks;
  s->nics = nics;
  s->n_nics = (uint32_t)m->n_nics;
  s->metadata = kv;
  s->n_metadata = (uint32_t)m->n_labels;
  return 0;
}

int abipb_volume_spec_in(struct abij_arena *a,
                         const Vmhost__V1__CreateVolumeRequest *m,
                         struct vmh_volume_spec *s, char *err, size_t errlen) {
  (void)a;
  int r;
  *s = (struct vmh_volume_spec){.struct_size = sizeof *s};
  if ((r = name_in("", "name", m->name, &s->name, err, errlen)) < 0 ||
      (r = name_in("", "base_image", m->base_image, &s->base_image, err,
                   errlen)) < 0)
    return r;
  if (!s->name)
    return refuse(err, errlen, "'name' is required");
  if (m->size > INT64_MAX)
    return refuse(err, errlen, "'size' is too large");
  if ((uint32_t)m->format > VMH_FORMAT_QCOW2)
    return refuse(err, errlen, "'format' is not a DiskFormat");
  s->size = m->size;
  s->format = (uint32_t)m->format;
  return 0;
}
