/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* abijson — the ABI's structs as JSON: see abijson.h. */
#include <config.h>

#include "abijson.h"
#include "abistruct.h"
#include "numfmt.h"
#include "sizes.h"
#include "speclimits.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON helpers --------------------------------------------------------
 */

/* The length of the valid UTF-8 sequence at s, 0 if it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s) {
  unsigned c = s[0];
  size_t n;
  uint32_t cp, min;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0)
    n = 3, cp = c & 0x0F, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4, cp = c & 0x07, min = 0x10000;
  else
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
      return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

/* A string, or null for NULL.  Plugins' strings (error messages above all)
 * are not guaranteed to be UTF-8, which jansson refuses; a test should see
 * them anyway, so each bad byte becomes U+FFFD. */
json_t *abij_str(const char *s) {
  if (!s)
    return json_null();
  json_t *v = json_string(s);
  if (v)
    return v;
  size_t len = strlen(s);
  char *clean = malloc(len * 3 + 1);
  if (!clean)
    return NULL;
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    size_t n = utf8_len(p);
    if (n) {
      memcpy(clean + o, p, n);
      o += n;
      p += n;
    } else {
      memcpy(clean + o, "\xEF\xBF\xBD", 3);
      o += 3;
      p++;
    }
  }
  clean[o] = '\0';
  v = json_string(clean);
  free(clean);
  return v;
}

/* jansson integers are signed 64-bit; the few uint64 values above that
 * (a mock pool of "unlimited" capacity, say) go out as reals rather than
 * wrapping to a negative number. */
json_t *abij_u64(uint64_t v) {
  return v <= INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

/* Ownership of v passes to o; a NULL v (out of memory) just leaves the key
 * out. */
static void set(json_t *o, const char *key, json_t *v) {
  json_object_set_new(o, key, v);
}

static void append(json_t *a, json_t *v) {
  json_array_append_new(a, v);
}

/* Enum values by name ("" where a value has none); an unknown value goes
 * out as its number, so that a test sees it rather than a made-up name. */
static json_t *jname(const char *const *names, size_t n, uint32_t v) {
  if (v < n && names[v][0])
    return json_string(names[v]);
  return json_integer(v);
}

#define JNAME(tab, v) jname((tab), sizeof(tab) / sizeof(tab)[0], (v))

static const char *const formats[] = {"default", "raw", "qcow2"};
static const char *const buses[] = {"virtio", "scsi", "sata"};
static const char *const nic_models[] = {"virtio", "e1000"};
static const char *const actions[] = {"",       "start", "stop",
                                      "reboot", "pause", "resume"};
static const char *const vm_states[] = {
    "unknown", "stopped",  "running",  "paused",   "suspended",
    "crashed", "creating", "starting", "stopping", "deleting"};
static const char *const vm_statuses[] = {"",       "creating", "ready",
                                          "failed", "deleting", "missing"};
static const char *const channels[] = {"none", "unix", "vsock"};
static const char *const agent_states[] = {"absent", "connected", "cut-off"};
static const char *const bindings[] = {"none", "bridge", "ovs", "tap"};
static const char *const consoles[] = {"none", "vnc", "spice", "serial"};
static const char *const sources[] = {"none", "file",  "block",
                                      "rbd",  "iscsi", "nfs"};
static const char *const check_statuses[] = {"ok", "degraded", "failed"};
static const char *const thread_models[] = {"serialize_all",
                                            "serialize_instance", "parallel"};
static const char *const event_types[] = {"",
                                          "vm_state",
                                          "vm_created",
                                          "vm_deleted",
                                          "operation_ended",
                                          "progress",
                                          "plugin",
                                          "operation_created",
                                          "operation_updated",
                                          "vm_updated",
                                          "reset"};
static const char *const op_statuses[] = {"",          "queued", "running",
                                          "succeeded", "failed", "cancelled"};

#define ENUM(tab) \
  { (tab), sizeof(tab) / sizeof(tab)[0] }
const struct abij_enum abij_formats = ENUM(formats), abij_buses = ENUM(buses),
                       abij_nic_models = ENUM(nic_models),
                       abij_actions = ENUM(actions),
                       abij_vm_states = ENUM(vm_states),
                       abij_event_types = ENUM(event_types);

static json_t *jstrv(const char *const *v, uint32_t n) {
  json_t *a = json_array();
  for (uint32_t i = 0; a && v && i < n; i++)
    append(a, abij_str(v[i]));
  return a;
}

/* ---- Results to JSON -----------------------------------------------------
 */

static json_t *source_json(const struct vmh_disk_source *in) {
  if (!in)
    return json_null();
  struct vmh_disk_source s;
  COPY_IN(s, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "type", JNAME(sources, s.type));
  set(o, "format", JNAME(formats, s.format));
  set(o, "path", abij_str(s.path));
  set(o, "pool", abij_str(s.pool));
  set(o, "image", abij_str(s.image));
  set(o, "monitors", jstrv(s.monitors, s.n_monitors));
  set(o, "auth_user", abij_str(s.auth_user));
  /* Whether a secret is there, not the secret: responses end up in test
   * logs. */
  set(o, "auth_secret", json_boolean(s.auth_secret != NULL));
  set(o, "portal", abij_str(s.portal));
  set(o, "iqn", abij_str(s.iqn));
  set(o, "lun", json_integer(s.lun));
  set(o, "server", abij_str(s.server));
  set(o, "export_path", abij_str(s.export_path));
  return o;
}

static json_t *disk_json(const struct vmh_disk *in) {
  struct vmh_disk d;
  COPY_IN(d, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", abij_str(d.name));
  set(o, "pool", abij_str(d.pool));
  set(o, "volume", abij_str(d.volume));
  set(o, "size", abij_u64(d.size));
  set(o, "format", JNAME(formats, d.format));
  set(o, "bus", JNAME(buses, d.bus));
  set(o, "base_image", abij_str(d.base_image));
  set(o, "readonly", json_boolean(d.readonly));
  set(o, "boot_order", json_integer(d.boot_order));
  set(o, "source", source_json(d.source));
  return o;
}

static json_t *binding_json(const struct vmh_nic_binding *in) {
  if (!in)
    return json_null();
  struct vmh_nic_binding b;
  COPY_IN(b, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "type", JNAME(bindings, b.type));
  set(o, "bridge", abij_str(b.bridge));
  set(o, "port", abij_str(b.port));
  set(o, "interface_id", abij_str(b.interface_id));
  set(o, "tap", abij_str(b.tap));
  set(o, "mac", abij_str(b.mac));
  set(o, "vlan", json_integer(b.vlan));
  set(o, "mtu", json_integer(b.mtu));
  return o;
}

static json_t *nic_json(const struct vmh_nic *in) {
  struct vmh_nic n;
  COPY_IN(n, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", abij_str(n.name));
  set(o, "network", abij_str(n.network));
  set(o, "mac", abij_str(n.mac));
  set(o, "vlan", json_integer(n.vlan));
  set(o, "model", JNAME(nic_models, n.model));
  set(o, "binding", binding_json(n.binding));
  return o;
}

json_t *abij_vm(const struct vmh_vm_record *in) {
  struct vmh_vm_record rec;
  struct vmh_vm_spec spec;
  struct vmh_vm_info info;
  COPY_IN(rec, in);
  COPY_IN(spec, rec.spec);
  COPY_IN(info, rec.info);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "id", abij_str(spec.id ? spec.id : info.id));
  set(o, "name", abij_str(spec.name ? spec.name : info.name));
  set(o, "status", JNAME(vm_statuses, rec.status));
  set(o, "state", JNAME(vm_states, info.state));
  /* The record's spec is what the VM is meant to have. */
  set(o, "vcpus", json_integer(spec.vcpus));
  set(o, "memory", abij_u64(spec.memory));
  set(o, "memory_used", abij_u64(info.memory_used));
  set(o, "cpu_time_ns", abij_u64(info.cpu_time_ns));
  set(o, "disk_read_bytes", abij_u64(info.disk_read_bytes));
  set(o, "disk_write_bytes", abij_u64(info.disk_write_bytes));
  set(o, "net_rx_bytes", abij_u64(info.net_rx_bytes));
  set(o, "net_tx_bytes", abij_u64(info.net_tx_bytes));
  set(o, "uptime_s", abij_u64(info.uptime_s));
  set(o, "ips", jstrv(info.ips, info.n_ips));
  json_t *ch = json_object();
  if (ch) {
    set(ch, "type", JNAME(channels, info.channel_type));
    set(ch, "path", abij_str(info.channel_path));
    set(ch, "port", json_integer(info.channel_port));
  }
  set(o, "channel", ch);
  json_t *ag = json_object();
  if (ag) {
    set(ag, "state", JNAME(agent_states, rec.agent_state));
    set(ag, "version", abij_str(rec.agent_version));
  }
  set(o, "agent", ag);
  set(o, "created", json_integer(rec.created));
  set(o, "updated_us", json_integer(rec.updated_us));
  set(o, "error", abij_str(rec.error));
  set(o, "hypervisor", abij_str(spec.hypervisor));
  set(o, "kernel", abij_str(spec.kernel));
  set(o, "initrd", abij_str(spec.initrd));
  set(o, "cmdline", abij_str(spec.cmdline));
  set(o, "firmware", abij_str(spec.firmware));
  set(o, "guest_channel", json_boolean(spec.guest_channel));
  set(o, "user_data", abij_str(spec.user_data));
  set(o, "meta_data", abij_str(spec.meta_data));
  set(o, "network_config", abij_str(spec.network_config));
  json_t *disks = json_array();
  for (uint32_t i = 0; disks && spec.disks && i < spec.n_disks; i++)
    append(disks, disk_json(ELEM(spec.disks, i)));
  set(o, "disks", disks);
  json_t *nics = json_array();
  for (uint32_t i = 0; nics && spec.nics && i < spec.n_nics; i++)
    append(nics, nic_json(ELEM(spec.nics, i)));
  set(o, "nics", nics);
  /* vmh_keyval has no struct_size: a plain array. */
  json_t *md = json_object();
  for (uint32_t i = 0; md && spec.metadata && i < spec.n_metadata; i++)
    if (spec.metadata[i].key)
      set(md, spec.metadata[i].key, abij_str(spec.metadata[i].value));
  set(o, "metadata", md);
  return o;
}

/* ---- The guest agent (ABI 1.2) ------------------------------------------ */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Whether len bytes at p are UTF-8 text a JSON string carries as is (no
 * NUL: many clients end strings there). */
static bool utf8_text(const uint8_t *p, size_t len) {
  for (size_t i = 0; i < len;) {
    if (!p[i])
      return false;
    size_t n;
    if (p[i] < 0x80) {
      n = 1;
    } else {
      unsigned char tmp[5] = {0};
      memcpy(tmp, p + i, len - i < 4 ? len - i : 4);
      if (!(n = utf8_len(tmp)))
        return false;
    }
    i += n;
  }
  return true;
}

json_t *abij_base64(const uint8_t *p, size_t len) {
  char *out = malloc((len + 2) / 3 * 4 + 1);
  if (!out)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < len)
      v |= p[i + 2];
    out[o++] = b64[v >> 18 & 63];
    out[o++] = b64[v >> 12 & 63];
    out[o++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
    out[o++] = i + 2 < len ? b64[v & 63] : '=';
  }
  out[o] = 0;
  json_t *v = json_stringn(out, o);
  free(out);
  return v;
}

long abij_unbase64(const char *in, uint8_t *out, size_t size) {
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0, i = 0, len = strlen(in);
  if (len % 4)
    return -1;
  for (; i < len && in[i] != '='; i++) {
    const char *c = memchr(b64, in[i], 64);
    if (!c || !in[i])
      return -1;
    acc = acc << 6 | (uint32_t)(c - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o == size)
        return -1;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  if (len - i > 2 || strspn(in + i, "=") != len - i)
    return -1;
  return (long)o;
}

/* Bytes under key: UTF-8 text as is, anything else in base64, and
 * <key>_encoding saying which. */
static void put_bytes(json_t *o, const char *key, const uint8_t *p,
                      size_t len) {
  char enc[64];
  snprintf(enc, sizeof enc, "%s_encoding", key);
  if (!p) /* nothing: json_stringn() would make no string of NULL */
    p = (const uint8_t *)"", len = 0;
  if (utf8_text(p, len)) {
    set(o, key, json_stringn((const char *)p, len));
    set(o, enc, json_string("utf-8"));
  } else {
    set(o, key, abij_base64(p, len));
    set(o, enc, json_string("base64"));
  }
}

static json_t *agent_telemetry(const struct vmh_agent_telemetry *in) {
  struct vmh_agent_telemetry t;
  COPY_IN(t, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "time_us", json_integer(t.time_us));
  set(o, "os_name", abij_str(t.os_name));
  set(o, "os_version", abij_str(t.os_version));
  set(o, "kernel", abij_str(t.kernel));
  set(o, "hostname", abij_str(t.hostname));
  set(o, "arch", abij_str(t.arch));
  set(o, "uptime_s", abij_u64(t.uptime_s));
  set(o, "cpus", json_integer(t.cpus));
  set(o, "cpu_use", json_real(t.cpu_use));
  set(o, "memory_total", abij_u64(t.memory_total));
  set(o, "memory_available", abij_u64(t.memory_available));
  json_t *fss = json_array();
  for (uint32_t i = 0; fss && t.filesystems && i < t.n_filesystems; i++) {
    struct vmh_agent_fs f;
    const struct vmh_agent_fs *fp = ELEM(t.filesystems, i);
    COPY_IN(f, fp);
    json_t *x = json_object();
    if (!x)
      continue;
    set(x, "mountpoint", abij_str(f.mountpoint));
    set(x, "device", abij_str(f.device));
    set(x, "type", abij_str(f.type));
    set(x, "size", abij_u64(f.size));
    set(x, "used", abij_u64(f.used));
    set(x, "read_only", json_boolean(f.read_only));
    append(fss, x);
  }
  set(o, "filesystems", fss);
  json_t *nics = json_array();
  for (uint32_t i = 0; nics && t.nics && i < t.n_nics; i++) {
    struct vmh_agent_nic n;
    const struct vmh_agent_nic *np = ELEM(t.nics, i);
    COPY_IN(n, np);
    json_t *x = json_object();
    if (!x)
      continue;
    set(x, "name", abij_str(n.name));
    set(x, "mac", abij_str(n.mac));
    set(x, "addresses", jstrv(n.addresses, n.n_addresses));
    append(nics, x);
  }
  set(o, "nics", nics);
  return o;
}

json_t *abij_agent(const struct vmh_agent_result *in) {
  struct vmh_agent_result a;
  COPY_IN(a, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  switch (a.op) {
    case VMH_AGENT_SHOW:
    case VMH_AGENT_TELEMETRY: /* the same, with fresh telemetry */
      set(o, "state", JNAME(agent_states, a.state));
      set(o, "version", abij_str(a.version));
      set(o, "capabilities", jstrv(a.capabilities, a.n_capabilities));
      set(o, "message", abij_str(a.message));
      set(o, "thaw_pending", json_boolean(a.thaw_pending));
      set(o, "telemetry",
          a.telemetry ? agent_telemetry(a.telemetry) : json_null());
      break;
    case VMH_AGENT_EXEC:
      set(o, "exit_status", json_integer(a.exit_status));
      set(o, "signal", json_integer(a.signal));
      set(o, "timed_out", json_boolean(a.timed_out));
      put_bytes(o, "stdout", a.out, a.out_len);
      put_bytes(o, "stderr", a.err, a.err_len);
      set(o, "stdout_truncated", json_boolean(a.out_truncated));
      set(o, "stderr_truncated", json_boolean(a.err_truncated));
      break;
    case VMH_AGENT_FILE_READ:
      put_bytes(o, "data", a.data, a.len);
      set(o, "size", abij_u64(a.size));
      set(o, "eof", json_boolean(a.eof));
      break;
    case VMH_AGENT_FILE_WRITE:
      set(o, "size", abij_u64(a.size));
      break;
    case VMH_AGENT_TIME_SYNC:
      set(o, "offset_ns", json_integer(a.offset_ns));
      break;
    case VMH_AGENT_FREEZE:
      set(o, "frozen", jstrv(a.frozen, a.n_frozen));
      break;
    case VMH_AGENT_THAW:
      set(o, "thawed", json_integer(a.n_frozen));
      break;
    default:
      break;
  }
  return o;
}

json_t *abij_snapshot(const struct vmh_snapshot_info *in) {
  struct vmh_snapshot_info s;
  COPY_IN(s, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "id", abij_str(s.id));
  set(o, "name", abij_str(s.name));
  set(o, "parent", abij_str(s.parent));
  set(o, "created", json_integer(s.created));
  set(o, "vm_state", JNAME(vm_states, s.vm_state));
  set(o, "current", json_boolean(s.current));
  set(o, "quiesced", json_boolean(s.quiesced));
  return o;
}

json_t *abij_console(const struct vmh_console_info *in) {
  struct vmh_console_info c;
  COPY_IN(c, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "type", JNAME(consoles, c.type));
  set(o, "host", abij_str(c.host));
  set(o, "port", json_integer(c.port));
  set(o, "path", abij_str(c.path));
  set(o, "password", abij_str(c.password));
  return o;
}

json_t *abij_pool(const struct vmh_pool_info *in) {
  struct vmh_pool_info p;
  COPY_IN(p, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", abij_str(p.name));
  set(o, "type", abij_str(p.type));
  set(o, "capacity", abij_u64(p.capacity));
  set(o, "allocation", abij_u64(p.allocation));
  set(o, "available", abij_u64(p.available));
  set(o, "n_volumes", json_integer(p.n_volumes));
  set(o, "default_format", JNAME(formats, p.default_format));
  set(o, "message", abij_str(p.message));
  return o;
}

json_t *abij_volume(const struct vmh_volume_info *in) {
  struct vmh_volume_info v;
  COPY_IN(v, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", abij_str(v.name));
  set(o, "capacity", abij_u64(v.capacity));
  set(o, "allocation", abij_u64(v.allocation));
  set(o, "format", JNAME(formats, v.format));
  set(o, "backing", abij_str(v.backing));
  set(o, "location", abij_str(v.location));
  return o;
}

json_t *abij_image(const struct vmh_image_info *in) {
  struct vmh_image_info i;
  COPY_IN(i, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", abij_str(i.name));
  set(o, "size", abij_u64(i.size));
  set(o, "sha256", abij_str(i.sha256));
  set(o, "n_users", json_integer(i.n_users));
  return o;
}

json_t *abij_network(const struct vmh_network_info *in) {
  struct vmh_network_info n;
  COPY_IN(n, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", abij_str(n.name));
  set(o, "type", abij_str(n.type));
  set(o, "bridge", abij_str(n.bridge));
  set(o, "cidr", abij_str(n.cidr));
  set(o, "gateway", abij_str(n.gateway));
  set(o, "mtu", json_integer(n.mtu));
  set(o, "n_ports", json_integer(n.n_ports));
  set(o, "up", json_boolean(n.up));
  return o;
}

json_t *abij_host(const struct vmh_host_info *in) {
  struct vmh_host_info h;
  COPY_IN(h, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "hostname", abij_str(h.hostname));
  set(o, "os_name", abij_str(h.os_name));
  set(o, "os_version", abij_str(h.os_version));
  set(o, "kernel", abij_str(h.kernel));
  set(o, "arch", abij_str(h.arch));
  set(o, "cpu_model", abij_str(h.cpu_model));
  set(o, "cpu_sockets", json_integer(h.cpu_sockets));
  set(o, "cpu_cores", json_integer(h.cpu_cores));
  set(o, "cpu_threads", json_integer(h.cpu_threads));
  set(o, "memory_total", abij_u64(h.memory_total));
  set(o, "memory_available", abij_u64(h.memory_available));
  set(o, "uptime_s", abij_u64(h.uptime_s));
  set(o, "n_vms", json_integer(h.n_vms));
  return o;
}

/* ---- Text without a tree --------------------------------------------------
 *
 * What json_dumps(JSON_COMPACT) writes, for the few answers on hot paths:
 * strings escaped as jansson escapes them ('"', '\\', \b \f \n \r \t,
 * other control characters as \u00XX), nothing else.  A value jansson's
 * path would change (a string not UTF-8, a number past INT64_MAX) makes
 * the writer fail, and the caller takes the tree. */

struct text {
  char *p;
  size_t len, cap;
  bool failed;
};

/* The writer's block is sized once, for the worst case (every byte of
 * every string escaped as \u00XX): no growing. */
static void text_put(struct text *t, const char *d, size_t n) {
  if (t->failed || t->len + n + 1 > t->cap) {
    t->failed = true;
    return;
  }
  memcpy(t->p + t->len, d, n);
  t->len += n;
  t->p[t->len] = '\0';
}

/* A block for the keys, numbers and punctuation of a record (fixed) and
 * the n strings of sv escaped. */
struct text_str_field {
  const char *key, *v;
};
static int text_init(struct text *t, const struct text_str_field *sv,
                     size_t n) {
  size_t cap = 512;
  for (size_t i = 0; i < n; i++)
    cap += sv[i].v ? 6 * strlen(sv[i].v) : 0;
  *t = (struct text){.p = malloc(cap), .cap = cap};
  return t->p ? 0 : -1;
}

/* ,"key": (the first key of an object after its '{', without the comma) */
static void text_key(struct text *t, const char *key) {
  if (t->len && t->p[t->len - 1] != '{')
    text_put(t, ",", 1);
  text_put(t, "\"", 1);
  text_put(t, key, strlen(key));
  text_put(t, "\":", 2);
}

static void text_str(struct text *t, const char *key, const char *s) {
  text_key(t, key);
  if (!s) {
    text_put(t, "null", 4);
    return;
  }
  text_put(t, "\"", 1);
  const unsigned char *p = (const unsigned char *)s, *run = p;
  while (*p) {
    size_t n = utf8_len(p);
    if (!n) {
      t->failed = true; /* abij_str replaces it: the tree's path */
      return;
    }
    if (*p >= 0x20 && *p != '"' && *p != '\\') {
      p += n;
      continue;
    }
    text_put(t, (const char *)run, (size_t)(p - run));
    static const char chars[] = "\"\\\b\f\n\r\t", names[] = "\"\\bfnrt";
    char esc[8];
    const char *e = strchr(chars, *p);
    if (e) {
      esc[0] = '\\';
      esc[1] = names[e - chars];
      text_put(t, esc, 2);
    } else {
      snprintf(esc, sizeof esc, "\\u%04X", *p);
      text_put(t, esc, 6);
    }
    run = ++p;
  }
  text_put(t, (const char *)run, (size_t)(p - run));
  text_put(t, "\"", 1);
}

static void text_u64(struct text *t, const char *key, uint64_t v) {
  char num[NUMFMT_U64_LEN];
  if (v > INT64_MAX) {
    t->failed = true; /* abij_u64 makes it a real */
    return;
  }
  text_key(t, key);
  text_put(t, num, numfmt_u64(num, v));
}

int abij_host_text(const struct vmh_host_info *in, char **ret,
                   size_t *ret_len) {
  struct vmh_host_info h;
  COPY_IN(h, in);
  /* The order of abij_host. */
  const struct text_str_field sv[] = {{"hostname", h.hostname},
                                      {"os_name", h.os_name},
                                      {"os_version", h.os_version},
                                      {"kernel", h.kernel},
                                      {"arch", h.arch},
                                      {"cpu_model", h.cpu_model}};
  const struct {
    const char *key;
    uint64_t v;
  } nv[] = {{"cpu_sockets", h.cpu_sockets},
            {"cpu_cores", h.cpu_cores},
            {"cpu_threads", h.cpu_threads},
            {"memory_total", h.memory_total},
            {"memory_available", h.memory_available},
            {"uptime_s", h.uptime_s},
            {"n_vms", h.n_vms}};
  struct text t;
  if (text_init(&t, sv, sizeof sv / sizeof sv[0]) < 0)
    return -1;
  text_put(&t, "{", 1);
  for (size_t i = 0; i < sizeof sv / sizeof sv[0]; i++)
    text_str(&t, sv[i].key, sv[i].v);
  for (size_t i = 0; i < sizeof nv / sizeof nv[0]; i++)
    text_u64(&t, nv[i].key, nv[i].v);
  text_put(&t, "}", 1);
  if (t.failed) {
    free(t.p);
    return -1;
  }
  *ret = t.p;
  *ret_len = t.len;
  return 0;
}

json_t *abij_check(const struct vmh_health_check *in) {
  struct vmh_health_check c;
  COPY_IN(c, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", abij_str(c.name));
  set(o, "kind", abij_str(c.kind));
  set(o, "status", JNAME(check_statuses, c.status));
  set(o, "message", abij_str(c.message));
  return o;
}

json_t *abij_plugin(const struct vmh_plugin_info *in) {
  struct vmh_plugin_info p;
  COPY_IN(p, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", abij_str(p.name));
  set(o, "kind", abij_str(p.kind));
  set(o, "version", abij_str(p.version));
  set(o, "description", abij_str(p.description));
  set(o, "file", abij_str(p.file));
  set(o, "abi_major", json_integer(p.abi_major));
  set(o, "abi_minor", json_integer(p.abi_minor));
  set(o, "thread_model", JNAME(thread_models, p.thread_model));
  set(o, "instances", jstrv(p.instances, p.n_instances));
  set(o, "ops", jstrv(p.ops, p.n_ops));
  return o;
}

json_t *abij_event(const struct vmh_event *in) {
  struct vmh_event e;
  COPY_IN(e, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "id", abij_str(e.id));
  set(o, "type", JNAME(event_types, e.type));
  set(o, "time_us", json_integer(e.time_us));
  set(o, "source", abij_str(e.source));
  set(o, "vm_id", abij_str(e.vm_id));
  set(o, "vm_name", abij_str(e.vm_name));
  set(o, "state", JNAME(vm_states, e.state));
  set(o, "reason", abij_str(e.reason));
  set(o, "operation", abij_str(e.operation));
  set(o, "code", json_integer(e.code));
  set(o, "message", abij_str(e.message));
  set(o, "object", abij_str(e.object));
  set(o, "done", abij_u64(e.done));
  set(o, "total", abij_u64(e.total));
  set(o, "pool", abij_str(e.pool));
  set(o, "target", abij_str(e.target));
  return o;
}

/* A succeeded operation's result, by reference, with the path that GETs
 * it where there is one (names and ids are checked by the core: nothing
 * to escape); null when it has none. */
static json_t *operation_result(const struct vmh_operation *op) {
  const char *kind = op->result_kind;
  if (!kind)
    return json_null();
  json_t *o = json_object();
  char href[512] = "";
  set(o, "kind", abij_str(kind));
  if (!strcmp(kind, "vm")) {
    set(o, "id", abij_str(op->result_id));
    set(o, "name", abij_str(op->result_name));
    snprintf(href, sizeof href, "/api/v1/vms/%s",
             op->result_id ? op->result_id : "");
  } else if (!strcmp(kind, "snapshot")) {
    set(o, "vm_id", abij_str(op->vm_id));
    set(o, "id", abij_str(op->result_id));
    set(o, "name", abij_str(op->result_name));
    snprintf(href, sizeof href, "/api/v1/vms/%s/snapshots/%s",
             op->vm_id ? op->vm_id : "", op->result_id ? op->result_id : "");
  } else {
    set(o, "pool", abij_str(op->pool));
    set(o, "name", abij_str(op->result_name));
    const char *what = !strcmp(kind, "volume")  ? "volumes"
                       : !strcmp(kind, "image") ? "images"
                                                : NULL;
    if (what)
      snprintf(href, sizeof href, "/api/v1/storage/pools/%s/%s/%s",
               op->pool ? op->pool : "", what,
               op->result_name ? op->result_name : "");
  }
  set(o, "href", *href ? json_string(href) : json_null());
  return o;
}

json_t *abij_operation(const struct vmh_operation *in) {
  struct vmh_operation op;
  COPY_IN(op, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "id", abij_str(op.id));
  set(o, "kind", abij_str(op.kind));
  set(o, "status", JNAME(op_statuses, op.status));
  json_t *t = json_object();
  set(t, "vm_id", abij_str(op.vm_id));
  set(t, "vm_name", abij_str(op.vm_name));
  set(t, "pool", abij_str(op.pool));
  set(t, "object", abij_str(op.object));
  set(o, "target", t);
  json_t *p = json_object();
  set(p, "percent", op.progress >= 0 ? json_integer(op.progress) : json_null());
  set(p, "done", abij_u64(op.done));
  set(p, "total", abij_u64(op.total));
  set(p, "message", abij_str(op.message));
  set(o, "progress", p);
  set(o, "error",
      op.code ? json_pack("{s:i,s:o}", "code", op.code, "message",
                          abij_str(op.error))
              : json_null());
  set(o, "created_us", json_integer(op.created_us));
  set(o, "updated_us", json_integer(op.updated_us));
  set(o, "result", operation_result(&op));
  return o;
}

const char *abij_operation_status(uint32_t status) {
  return status < sizeof op_statuses / sizeof op_statuses[0]
             ? op_statuses[status]
             : "";
}

static void *arena_alloc(struct abij_arena *a, size_t size) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    void **v = realloc(a->v, cap * sizeof *v);
    if (!v)
      return NULL;
    a->v = v;
    a->cap = cap;
  }
  void *p = calloc(1, size ? size : 1);
  if (p)
    a->v[a->n++] = p;
  return p;
}

static char *arena_strndup(struct abij_arena *a, const char *s, size_t len) {
  char *p = arena_alloc(a, len + 1);
  if (p)
    memcpy(p, s, len);
  return p;
}

void *abij_arena_alloc(struct abij_arena *a, size_t size) {
  return arena_alloc(a, size);
}

void abij_arena_free(struct abij_arena *a) {
  for (size_t i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
  *a = (struct abij_arena){0};
}

/* ---- Replies -------------------------------------------------------------
 */

#define VISITOR(fn, type, key, enc)               \
  static void fn(void *o, const struct type *v) { \
    struct abij_reply *r = o;                     \
    r->result(r->opaque, (key), enc(v));          \
  }
VISITOR(on_vm, vmh_vm_record, "vms", abij_vm)
VISITOR(on_snapshot, vmh_snapshot_info, "snapshots", abij_snapshot)
VISITOR(on_console, vmh_console_info, "console", abij_console)
VISITOR(on_pool, vmh_pool_info, "pools", abij_pool)
VISITOR(on_volume, vmh_volume_info, "volumes", abij_volume)
VISITOR(on_image, vmh_image_info, "images", abij_image)
VISITOR(on_network, vmh_network_info, "networks", abij_network)
VISITOR(on_host, vmh_host_info, "host", abij_host)
VISITOR(on_check, vmh_health_check, "checks", abij_check)
VISITOR(on_plugin, vmh_plugin_info, "plugins", abij_plugin)
VISITOR(on_operation, vmh_operation, "operations", abij_operation)
VISITOR(on_agent, vmh_agent_result, "agent", abij_agent)
#undef VISITOR

static void on_text(void *o, const char *text, size_t len) {
  struct abij_reply *r = o;
  r->text(r->opaque, text, len);
}

static void on_done(void *o, int code, const char *message) {
  struct abij_reply *r = o;
  r->done(r->opaque, code, message);
}

void abij_reply_init(struct abij_reply *r, void *opaque,
                     void (*result)(void *, const char *, json_t *),
                     void (*text)(void *, const char *, size_t),
                     void (*done)(void *, int, const char *)) {
  *r = (struct abij_reply){
      .reply =
          {
              .struct_size = sizeof r->reply,
              .opaque = r,
              .vm = on_vm,
              .snapshot = on_snapshot,
              .console = on_console,
              .pool = on_pool,
              .volume = on_volume,
              .image = on_image,
              .network = on_network,
              .host = on_host,
              .check = on_check,
              .plugin = on_plugin,
              .text = on_text,
              .done = on_done,
              .operation = on_operation,
              .agent = on_agent,
          },
      .opaque = opaque,
      .result = result,
      .text = text,
      .done = done,
  };
}

/* ---- Request fields ------------------------------------------------------
 *
 * Without ABIJ_STRICT only JSON types are checked; what the values mean
 * is the core's to judge (a test tool checks exactly that).  A field that
 * is absent or null goes to the core as NULL or 0.  Each helper returns 0
 * or a VMH_E* code with k->err set.  `where` prefixes messages
 * ("spec.disks[0].").
 */

/* An integer field in [lo, hi] under ABIJ_STRICT (when present), in
 * [0, max] otherwise. */
static int ranged(struct abij_in *k, json_t *obj, const char *where,
                  const char *key, uint64_t max, uint64_t lo, uint64_t hi,
                  uint64_t *ret) {
  if (!(k->flags & ABIJ_STRICT))
    return abij_uint(k, obj, where, key, max, ret);
  json_t *v = json_object_get(obj, key);
  *ret = 0;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0 ||
      (uint64_t)json_integer_value(v) < lo ||
      (uint64_t)json_integer_value(v) > hi)
    return abij_refuse(k,
                       "'%s%s' must be an integer from %" PRIu64 " to %" PRIu64,
                       where, key, lo, hi);
  *ret = (uint64_t)json_integer_value(v);
  return 0;
}

int abij_refuse(struct abij_in *k, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(k->err, sizeof k->err, fmt, ap);
  va_end(ap);
  return VMH_EINVAL;
}

static int abij_no_memory(struct abij_in *k) {
  snprintf(k->err, sizeof k->err, "out of memory");
  return VMH_ENOMEM;
}

int abij_only_keys(struct abij_in *k, json_t *obj, const char *where,
                   const char *const *keys) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    bool known = false;
    for (size_t i = 0; keys[i] && !known; i++)
      known = !strcmp(key, keys[i]);
    /* Strict, as the config is: a misspelt field would otherwise be lost
     * silently. */
    if (!known)
      return abij_refuse(k, "unknown field '%s%s'", where, key);
  }
  return 0;
}

int abij_string(struct abij_in *k, json_t *obj, const char *where,
                const char *key, const char **ret) {
  json_t *v = json_object_get(obj, key);
  *ret = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_string(v))
    return abij_refuse(k, "'%s%s' must be a string", where, key);
  /* Copied into the arena: freed as soon as the core call returns. */
  char *s =
      arena_strndup(&k->arena, json_string_value(v), json_string_length(v));
  if (!s)
    return abij_no_memory(k);
  *ret = s;
  return 0;
}

int abij_name(struct abij_in *k, json_t *obj, const char *where,
              const char *key, const char **ret) {
  int r = abij_string(k, obj, where, key, ret);
  if (r == 0 && *ret && (k->flags & ABIJ_STRICT) && !vmh_name_valid(*ret))
    return abij_refuse(k,
                       "'%s%s' must be a name: 1 to 63 of a-z, 0-9, '.', '_' "
                       "and '-', starting with a letter or a digit",
                       where, key);
  return r;
}

int abij_bool(struct abij_in *k, json_t *obj, const char *where,
              const char *key, uint32_t *ret) {
  json_t *v = json_object_get(obj, key);
  *ret = 0;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_boolean(v))
    return abij_refuse(k, "'%s%s' must be true or false", where, key);
  *ret = json_is_true(v);
  return 0;
}

int abij_uint(struct abij_in *k, json_t *obj, const char *where,
              const char *key, uint64_t max, uint64_t *ret) {
  json_t *v = json_object_get(obj, key);
  *ret = 0;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0 ||
      (uint64_t)json_integer_value(v) > max)
    return abij_refuse(k, "'%s%s' must be an integer from 0 to %" PRIu64, where,
                       key, max);
  *ret = (uint64_t)json_integer_value(v);
  return 0;
}

int abij_size(struct abij_in *k, json_t *obj, const char *where,
              const char *key, uint64_t lo, uint64_t hi, uint64_t *ret) {
  json_t *v = json_object_get(obj, key);
  uint64_t x = 0;
  *ret = 0;
  if (!v || json_is_null(v))
    return 0;
  bool ok = json_is_integer(v)  ? json_integer_value(v) >= 0
            : json_is_string(v) ? size_parse(json_string_value(v), &x) == NUM_OK
                                : false;
  if (json_is_integer(v))
    x = (uint64_t)json_integer_value(v);
  if (!(k->flags & ABIJ_STRICT))
    lo = 0;
  if (!ok || x < lo || x > hi) {
    char a[32], b[32];
    return abij_refuse(k,
                       "'%s%s' must be a size from %s to %s: bytes, or a "
                       "string with a unit (\"2GiB\"; K/KiB, M/MiB, G/GiB, "
                       "T/TiB, KB, MB, GB, TB)",
                       where, key, size_format(lo, a, sizeof a),
                       size_format(hi, b, sizeof b));
  }
  *ret = x;
  return 0;
}

int abij_u32(struct abij_in *k, json_t *obj, const char *where, const char *key,
             uint32_t *ret) {
  uint64_t v;
  int r = abij_uint(k, obj, where, key, UINT32_MAX, &v);
  *ret = (uint32_t)v;
  return r;
}

/* An enum: one of its names, or any number (passed through so that a test
 * can check that the core refuses values it does not know). */
int abij_enum(struct abij_in *k, json_t *obj, const char *where,
              const char *key, const struct abij_enum *e, uint32_t *ret) {
  json_t *v = json_object_get(obj, key);
  bool strict = k->flags & ABIJ_STRICT;
  *ret = 0;
  if (!v || json_is_null(v))
    return 0;
  if (json_is_integer(v) && !strict)
    return abij_u32(k, obj, where, key, ret);
  if (json_is_string(v)) {
    for (size_t i = 0; i < e->n; i++) {
      if (e->names[i][0] && !strcmp(json_string_value(v), e->names[i])) {
        *ret = (uint32_t)i;
        return 0;
      }
    }
  }
  char list[256] = "";
  size_t o = 0;
  for (size_t i = 0; i < e->n && o < sizeof list; i++)
    if (e->names[i][0])
      o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "",
                            e->names[i]);
  return abij_refuse(k, "'%s%s' must be one of %s%s", where, key, list,
                     strict ? "" : " (or a number)");
}

/* An optional object: absent or null gives NULL. */
int abij_object(struct abij_in *k, json_t *obj, const char *where,
                const char *key, json_t **ret) {
  json_t *v = json_object_get(obj, key);
  *ret = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_object(v))
    return abij_refuse(k, "'%s%s' must be an object", where, key);
  *ret = v;
  return 0;
}

int abij_array(struct abij_in *k, json_t *obj, const char *where,
               const char *key, json_t **ret) {
  json_t *v = json_object_get(obj, key);
  *ret = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_array(v))
    return abij_refuse(k, "'%s%s' must be an array", where, key);
  *ret = v;
  return 0;
}

int abij_disk_in(struct abij_in *k, json_t *o, const char *where,
                 struct vmh_disk *d) {
  static const char *const keys[] = {
      "name", "pool",       "volume",   "size",       "format",
      "bus",  "base_image", "readonly", "boot_order", NULL};
  uint64_t boot;
  int r;
  *d = (struct vmh_disk){.struct_size = sizeof *d};
  if ((r = abij_only_keys(k, o, where, keys)) < 0 ||
      (r = abij_name(k, o, where, "name", &d->name)) < 0 ||
      (r = abij_name(k, o, where, "pool", &d->pool)) < 0 ||
      (r = abij_name(k, o, where, "volume", &d->volume)) < 0 ||
      (r = abij_size(k, o, where, "size", 0, INT64_MAX, &d->size)) < 0 ||
      (r = abij_enum(k, o, where, "format", &abij_formats, &d->format)) < 0 ||
      (r = abij_enum(k, o, where, "bus", &abij_buses, &d->bus)) < 0 ||
      (r = abij_name(k, o, where, "base_image", &d->base_image)) < 0 ||
      (r = abij_bool(k, o, where, "readonly", &d->readonly)) < 0 ||
      (r = ranged(k, o, where, "boot_order", UINT32_MAX, 0, SPEC_BOOT_ORDER_MAX,
                  &boot)) < 0)
    return r;
  d->boot_order = (uint32_t)boot;
  if ((k->flags & ABIJ_STRICT) && !d->name)
    return abij_refuse(k, "'%sname' is required", where);
  return 0;
}

int abij_nic_in(struct abij_in *k, json_t *o, const char *where,
                struct vmh_nic *n) {
  static const char *const keys[] = {"name", "network", "mac",
                                     "vlan", "model",   NULL};
  uint64_t vlan;
  int r;
  *n = (struct vmh_nic){.struct_size = sizeof *n};
  if ((r = abij_only_keys(k, o, where, keys)) < 0 ||
      (r = abij_name(k, o, where, "name", &n->name)) < 0 ||
      (r = abij_name(k, o, where, "network", &n->network)) < 0 ||
      (r = abij_string(k, o, where, "mac", &n->mac)) < 0 ||
      (r = ranged(k, o, where, "vlan", UINT32_MAX, 0, SPEC_VLAN_MAX, &vlan)) <
          0 ||
      (r = abij_enum(k, o, where, "model", &abij_nic_models, &n->model)) < 0)
    return r;
  n->vlan = (uint32_t)vlan;
  if ((k->flags & ABIJ_STRICT) && !n->name)
    return abij_refuse(k, "'%sname' is required", where);
  return 0;
}

/* The elements of an array of objects, each parsed by fn into an
 * arena-allocated array of `size`-byte structs. */
static int parse_list(struct abij_in *k, json_t *a, const char *w,
                      const char *what, size_t size, void **ret,
                      uint32_t *ret_n,
                      int (*fn)(struct abij_in *, json_t *, const char *,
                                void *)) {
  *ret = NULL;
  *ret_n = 0;
  if (!a)
    return 0;
  size_t n = json_array_size(a);
  if (n > UINT32_MAX)
    return abij_refuse(k, "'%s%s' has too many elements", w, what);
  char *v = arena_alloc(&k->arena, n * size);
  if (!v)
    return abij_no_memory(k);
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(a, i);
    char where[128];
    snprintf(where, sizeof where, "%s%s[%zu].", w, what, i);
    if (!json_is_object(e))
      return abij_refuse(k, "'%s%s[%zu]' must be an object", w, what, i);
    int r = fn(k, e, where, v + i * size);
    if (r < 0)
      return r;
  }
  *ret = v;
  *ret_n = (uint32_t)n;
  return 0;
}

static int parse_disk_v(struct abij_in *k, json_t *o, const char *where,
                        void *d) {
  return abij_disk_in(k, o, where, d);
}

static int parse_nic_v(struct abij_in *k, json_t *o, const char *where,
                       void *n) {
  return abij_nic_in(k, o, where, n);
}

int abij_spec_in(struct abij_in *k, json_t *o, const char *w,
                 struct vmh_vm_spec *s) {
  static const char *const keys[] = {
      "name",      "vcpus",          "memory",   "kernel",
      "initrd",    "cmdline",        "firmware", "guest_channel",
      "user_data", "meta_data",      "metadata", "hypervisor",
      "disks",     "network_config", "nics",     NULL};
  json_t *disks, *nics, *md;
  void *dv, *nv;
  int r;
  *s = (struct vmh_vm_spec){.struct_size = sizeof *s};
  uint64_t vcpus;
  if ((r = abij_only_keys(k, o, w, keys)) < 0 ||
      (r = abij_name(k, o, w, "name", &s->name)) < 0 ||
      (r = ranged(k, o, w, "vcpus", UINT32_MAX, SPEC_VCPUS_MIN, SPEC_VCPUS_MAX,
                  &vcpus)) < 0 ||
      (r = abij_size(k, o, w, "memory", SPEC_MEMORY_MIN, SPEC_MEMORY_MAX,
                     &s->memory)) < 0 ||
      (r = abij_string(k, o, w, "kernel", &s->kernel)) < 0 ||
      (r = abij_string(k, o, w, "initrd", &s->initrd)) < 0 ||
      (r = abij_string(k, o, w, "cmdline", &s->cmdline)) < 0 ||
      (r = abij_string(k, o, w, "firmware", &s->firmware)) < 0 ||
      (r = abij_bool(k, o, w, "guest_channel", &s->guest_channel)) < 0 ||
      (r = abij_string(k, o, w, "user_data", &s->user_data)) < 0 ||
      (r = abij_string(k, o, w, "meta_data", &s->meta_data)) < 0 ||
      (r = abij_string(k, o, w, "network_config", &s->network_config)) < 0 ||
      (r = abij_name(k, o, w, "hypervisor", &s->hypervisor)) < 0 ||
      (r = abij_object(k, o, w, "metadata", &md)) < 0 ||
      (r = abij_array(k, o, w, "disks", &disks)) < 0 ||
      (r = abij_array(k, o, w, "nics", &nics)) < 0)
    return r;
  s->vcpus = (uint32_t)vcpus;
  if ((r = parse_list(k, disks, w, "disks", sizeof(struct vmh_disk), &dv,
                      &s->n_disks, parse_disk_v)) < 0 ||
      (r = parse_list(k, nics, w, "nics", sizeof(struct vmh_nic), &nv,
                      &s->n_nics, parse_nic_v)) < 0)
    return r;
  s->disks = dv;
  s->nics = nv;
  if (md) {
    size_t n = json_object_size(md), i = 0;
    struct vmh_keyval *kv = arena_alloc(&k->arena, n * sizeof *kv);
    if (!kv)
      return abij_no_memory(k);
    const char *key;
    json_t *v;
    json_object_foreach(md, key, v) {
      if (!json_is_string(v))
        return abij_refuse(k, "'%smetadata.%s' must be a string", w, key);
      kv[i].key = arena_strndup(&k->arena, key, strlen(key));
      kv[i].value =
          arena_strndup(&k->arena, json_string_value(v), json_string_length(v));
      if (!kv[i].key || !kv[i].value)
        return abij_no_memory(k);
      i++;
    }
    s->metadata = kv;
    s->n_metadata = (uint32_t)i;
  }
  /* What a caller left out is said so (not as a 0 out of range), once
   * what it gave is known to be well-formed. */
  static const char *const required[] = {"name", "vcpus", "memory"};
  for (size_t i = 0; (k->flags & ABIJ_STRICT) && i < 3; i++) {
    json_t *v = json_object_get(o, required[i]);
    if (!v || json_is_null(v))
      return abij_refuse(k, "'%s%s' is required", w, required[i]);
  }
  return 0;
}

int abij_volume_spec_in(struct abij_in *k, json_t *o, const char *w,
                        struct vmh_volume_spec *s) {
  static const char *const keys[] = {"name", "size", "format", "base_image",
                                     NULL};
  int r;
  *s = (struct vmh_volume_spec){.struct_size = sizeof *s};
  if ((r = abij_only_keys(k, o, w, keys)) < 0 ||
      (r = abij_name(k, o, w, "name", &s->name)) < 0 ||
      (r = abij_size(k, o, w, "size", 0, INT64_MAX, &s->size)) < 0 ||
      (r = abij_enum(k, o, w, "format", &abij_formats, &s->format)) < 0 ||
      (r = abij_name(k, o, w, "base_image", &s->base_image)) < 0)
    return r;
  if ((k->flags & ABIJ_STRICT) && !s->name)
    return abij_refuse(k, "'%sname' is required", w);
  return 0;
}

int abij_image_spec_in(struct abij_in *k, json_t *o, const char *w,
                       struct vmh_image_spec *s) {
  static const char *const keys[] = {"name", "url", "sha256", NULL};
  int r;
  *s = (struct vmh_image_spec){.struct_size = sizeof *s};
  if ((r = abij_only_keys(k, o, w, keys)) < 0 ||
      (r = abij_name(k, o, w, "name", &s->name)) < 0 ||
      (r = abij_string(k, o, w, "url", &s->url)) < 0 ||
      (r = abij_string(k, o, w, "sha256", &s->sha256)) < 0)
    return r;
  if (!(k->flags & ABIJ_STRICT))
    return 0;
  for (size_t i = 0; keys[i]; i++)
    if (!json_is_string(json_object_get(o, keys[i])))
      return abij_refuse(k, "'%s%s' is required", w, keys[i]);
  if (strlen(s->url) > SPEC_IMAGE_URL_MAX)
    return abij_refuse(k, "'%surl' is longer than %d bytes", w,
                       SPEC_IMAGE_URL_MAX);
  if (strlen(s->sha256) != 64 || strspn(s->sha256, "0123456789abcdef") != 64)
    return abij_refuse(k,
                       "'%ssha256' must be 64 lower-case hex digits (the "
                       "output of sha256sum)",
                       w);
  return 0;
}
