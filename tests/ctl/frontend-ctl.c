/* frontend-ctl — a test-only front-end: newline-delimited JSON over a unix
 * socket, one request object per line, one response object per line.
 *
 * It lets shell and python tests (tests/ctl/vmhctl.py) drive a running
 * vmhostd through the same struct vmh_core a real front-end uses, before
 * (and besides) the REST and gRPC front-ends.  It is never installed.
 *
 * Config (frontends: section):
 *   socket: PATH   required; the unix socket to listen on (a stale socket
 *                  left there by a dead daemon is removed; anything else
 *                  at the path, or a live listener, is refused)
 *   mode: "0600"   octal permissions of the socket
 *
 * Protocol.  A request is {"op": NAME, "flags": N?, ...fields}; "flags" is
 * OR-ed into the flags given to the core.  The fields of each op are in
 * op_table and its op_* functions (field names as in the ABI structs;
 * enums by name or by number; bools for the flag-like options live,
 * no_start, force, shrink).  Only JSON types are checked here: a missing
 * or null field reaches the core as NULL/0, so that tests can check how
 * the core takes it.  Unknown ops and fields, wrong types, malformed JSON
 * and lines over 1 MiB are answered with invalid_argument without calling
 * the core.  The response is {"code", "error", "http", "message"} plus the
 * results that arrived: "vms", "snapshots", "pools", "volumes", "images",
 * "networks", "checks", "plugins" (arrays), "console", "host" (objects),
 * "text" (metrics).  {"op":"ready"} answers {"ready": bool} (code
 * try_again when not ready, like /readyz).  {"op":"events"} answers once,
 * then streams {"event": {...}} lines, and {"dropped": N} when the
 * subscriber's queue overflowed, until the client closes the connection.
 *
 * Design: simple over clever.  One thread accepts; each connection gets its
 * own thread, which reads a line, calls the core, waits for done() and
 * writes the response.  The core's visitors may run on worker threads, so
 * results are collected under a mutex.  Every wait also watches an eventfd
 * that stop() makes readable, so stop() only has to signal it and join;
 * a request still in the core at that point answers from done() itself
 * (see struct call).
 *
 * Being a test tool, it also checks the core's side of the contract where
 * that is cheap: arguments are freed as soon as a core call returns (the
 * ABI says the core copies them), so a core that keeps a borrowed pointer
 * shows up under ASan or MALLOC_PERTURB_; a done() called twice or a
 * visitor after done() is logged as an error ("core bug: ...").
 */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A request line may hold this many bytes, not counting its newline. */
#define LINE_MAX_BYTES (1024 * 1024)
/* The buffer never holds more than one maximal line and its newline. */
#define LINE_LIMIT (LINE_MAX_BYTES + 1)
/* Events queued per subscriber before new ones are dropped (and counted). */
#define EVENT_QUEUE_MAX 1024

static const struct vmh_host *host;

/* ---- Instances and connections -------------------------------------------
 */

struct conn;

struct ctl {
  const struct vmh_instance *inst;
  const char *path; /* borrowed from the config */
  mode_t mode;
  const struct vmh_core *core; /* from start() */
  bool running;
  int listen_fd;
  /* Readable once stop() has begun; never read, so it stays readable and
   * every poll() in every thread sees it. */
  int stop_fd;
  atomic_bool stopping;
  dev_t sock_dev; /* the socket file we made, so that stop() unlinks only */
  ino_t sock_ino; /* ours and not one another daemon made since */
  pthread_t acceptor;
  pthread_mutex_t lock; /* guards conns and each conn's finished flag */
  struct conn *conns;
};

struct conn {
  struct ctl *ctl;
  int fd; /* closed by the connection's own thread when it ends */
  pthread_t thread;
  bool finished; /* the thread has ended and may be joined */
  struct conn *next;
  /* The read buffer: [0, len) holds data; the line handed out last ends at
   * consumed; [0, scanned) is known to hold no newline. */
  char *buf;
  size_t len, cap, consumed, scanned;
  bool discarding; /* inside a line that is too long */
};

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
static json_t *jstr(const char *s) {
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
static json_t *ju64(uint64_t v) {
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
static const char *const vm_states[] = {"unknown", "stopped",   "running",
                                        "paused",  "suspended", "crashed"};
static const char *const vm_statuses[] = {"",       "creating", "ready",
                                          "failed", "deleting", "missing"};
static const char *const channels[] = {"none", "unix", "vsock"};
static const char *const bindings[] = {"none", "bridge", "ovs", "tap"};
static const char *const consoles[] = {"none", "vnc", "spice", "serial"};
static const char *const sources[] = {"none", "file",  "block",
                                      "rbd",  "iscsi", "nfs"};
static const char *const check_statuses[] = {"ok", "degraded", "failed"};
static const char *const thread_models[] = {"serialize_all",
                                            "serialize_instance", "parallel"};
static const char *const event_types[] = {
    "",          "vm_state", "vm_created", "vm_deleted",
    "operation", "progress", "plugin"};

/* Copy a struct that crossed the boundary into one of our size: only the
 * bytes the other side said it filled, zeros after (types.h). */
#define COPY_IN(dst, src)                                          \
  do {                                                             \
    memset(&(dst), 0, sizeof(dst));                                \
    if ((src) != NULL)                                             \
      memcpy(&(dst), (src),                                        \
             (src)->struct_size < sizeof(dst) ? (src)->struct_size \
                                              : sizeof(dst));      \
  } while (0)

/* Arrays of structs are walked with their elements' struct_size as the
 * stride (types.h), so an older side's arrays read right. */
#define ELEM(arr, i)                                                         \
  ((const void *)((const char *)(arr) +                                      \
                  (size_t)(i) * ((arr)[0].struct_size ? (arr)[0].struct_size \
                                                      : sizeof(arr)[0])))

static json_t *jstrv(const char *const *v, uint32_t n) {
  json_t *a = json_array();
  for (uint32_t i = 0; a && v && i < n; i++)
    append(a, jstr(v[i]));
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
  set(o, "path", jstr(s.path));
  set(o, "pool", jstr(s.pool));
  set(o, "image", jstr(s.image));
  set(o, "monitors", jstrv(s.monitors, s.n_monitors));
  set(o, "auth_user", jstr(s.auth_user));
  /* Whether a secret is there, not the secret: responses end up in test
   * logs. */
  set(o, "auth_secret", json_boolean(s.auth_secret != NULL));
  set(o, "portal", jstr(s.portal));
  set(o, "iqn", jstr(s.iqn));
  set(o, "lun", json_integer(s.lun));
  set(o, "server", jstr(s.server));
  set(o, "export_path", jstr(s.export_path));
  return o;
}

static json_t *disk_json(const struct vmh_disk *in) {
  struct vmh_disk d;
  COPY_IN(d, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", jstr(d.name));
  set(o, "pool", jstr(d.pool));
  set(o, "volume", jstr(d.volume));
  set(o, "size", ju64(d.size));
  set(o, "format", JNAME(formats, d.format));
  set(o, "bus", JNAME(buses, d.bus));
  set(o, "base_image", jstr(d.base_image));
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
  set(o, "bridge", jstr(b.bridge));
  set(o, "port", jstr(b.port));
  set(o, "interface_id", jstr(b.interface_id));
  set(o, "tap", jstr(b.tap));
  set(o, "mac", jstr(b.mac));
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
  set(o, "name", jstr(n.name));
  set(o, "network", jstr(n.network));
  set(o, "mac", jstr(n.mac));
  set(o, "vlan", json_integer(n.vlan));
  set(o, "model", JNAME(nic_models, n.model));
  set(o, "binding", binding_json(n.binding));
  return o;
}

static json_t *vm_json(const struct vmh_vm_record *in) {
  struct vmh_vm_record rec;
  struct vmh_vm_spec spec;
  struct vmh_vm_info info;
  COPY_IN(rec, in);
  COPY_IN(spec, rec.spec);
  COPY_IN(info, rec.info);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "id", jstr(spec.id ? spec.id : info.id));
  set(o, "name", jstr(spec.name ? spec.name : info.name));
  set(o, "status", JNAME(vm_statuses, rec.status));
  set(o, "state", JNAME(vm_states, info.state));
  /* The record's spec is what the VM is meant to have. */
  set(o, "vcpus", json_integer(spec.vcpus));
  set(o, "memory", ju64(spec.memory));
  set(o, "memory_used", ju64(info.memory_used));
  set(o, "cpu_time_ns", ju64(info.cpu_time_ns));
  set(o, "uptime_s", ju64(info.uptime_s));
  set(o, "ips", jstrv(info.ips, info.n_ips));
  json_t *ch = json_object();
  if (ch) {
    set(ch, "type", JNAME(channels, info.channel_type));
    set(ch, "path", jstr(info.channel_path));
    set(ch, "port", json_integer(info.channel_port));
  }
  set(o, "channel", ch);
  set(o, "created", json_integer(rec.created));
  set(o, "updated_us", json_integer(rec.updated_us));
  set(o, "error", jstr(rec.error));
  set(o, "hypervisor", jstr(spec.hypervisor));
  set(o, "kernel", jstr(spec.kernel));
  set(o, "initrd", jstr(spec.initrd));
  set(o, "cmdline", jstr(spec.cmdline));
  set(o, "firmware", jstr(spec.firmware));
  set(o, "guest_channel", json_boolean(spec.guest_channel));
  set(o, "user_data", jstr(spec.user_data));
  set(o, "meta_data", jstr(spec.meta_data));
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
      set(md, spec.metadata[i].key, jstr(spec.metadata[i].value));
  set(o, "metadata", md);
  return o;
}

static json_t *snapshot_json(const struct vmh_snapshot_info *in) {
  struct vmh_snapshot_info s;
  COPY_IN(s, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "id", jstr(s.id));
  set(o, "name", jstr(s.name));
  set(o, "parent", jstr(s.parent));
  set(o, "created", json_integer(s.created));
  set(o, "vm_state", JNAME(vm_states, s.vm_state));
  set(o, "current", json_boolean(s.current));
  return o;
}

static json_t *console_json(const struct vmh_console_info *in) {
  struct vmh_console_info c;
  COPY_IN(c, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "type", JNAME(consoles, c.type));
  set(o, "host", jstr(c.host));
  set(o, "port", json_integer(c.port));
  set(o, "path", jstr(c.path));
  set(o, "password", jstr(c.password));
  return o;
}

static json_t *pool_json(const struct vmh_pool_info *in) {
  struct vmh_pool_info p;
  COPY_IN(p, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", jstr(p.name));
  set(o, "type", jstr(p.type));
  set(o, "capacity", ju64(p.capacity));
  set(o, "allocation", ju64(p.allocation));
  set(o, "available", ju64(p.available));
  set(o, "n_volumes", json_integer(p.n_volumes));
  set(o, "default_format", JNAME(formats, p.default_format));
  return o;
}

static json_t *volume_json(const struct vmh_volume_info *in) {
  struct vmh_volume_info v;
  COPY_IN(v, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", jstr(v.name));
  set(o, "capacity", ju64(v.capacity));
  set(o, "allocation", ju64(v.allocation));
  set(o, "format", JNAME(formats, v.format));
  set(o, "backing", jstr(v.backing));
  return o;
}

static json_t *image_json(const struct vmh_image_info *in) {
  struct vmh_image_info i;
  COPY_IN(i, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", jstr(i.name));
  set(o, "size", ju64(i.size));
  set(o, "sha256", jstr(i.sha256));
  set(o, "n_users", json_integer(i.n_users));
  return o;
}

static json_t *network_json(const struct vmh_network_info *in) {
  struct vmh_network_info n;
  COPY_IN(n, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", jstr(n.name));
  set(o, "type", jstr(n.type));
  set(o, "bridge", jstr(n.bridge));
  set(o, "cidr", jstr(n.cidr));
  set(o, "gateway", jstr(n.gateway));
  set(o, "mtu", json_integer(n.mtu));
  set(o, "n_ports", json_integer(n.n_ports));
  set(o, "up", json_boolean(n.up));
  return o;
}

static json_t *host_json(const struct vmh_host_info *in) {
  struct vmh_host_info h;
  COPY_IN(h, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "hostname", jstr(h.hostname));
  set(o, "os_name", jstr(h.os_name));
  set(o, "os_version", jstr(h.os_version));
  set(o, "kernel", jstr(h.kernel));
  set(o, "arch", jstr(h.arch));
  set(o, "cpu_model", jstr(h.cpu_model));
  set(o, "cpu_sockets", json_integer(h.cpu_sockets));
  set(o, "cpu_cores", json_integer(h.cpu_cores));
  set(o, "cpu_threads", json_integer(h.cpu_threads));
  set(o, "memory_total", ju64(h.memory_total));
  set(o, "memory_available", ju64(h.memory_available));
  set(o, "uptime_s", ju64(h.uptime_s));
  set(o, "n_vms", json_integer(h.n_vms));
  return o;
}

static json_t *check_json(const struct vmh_health_check *in) {
  struct vmh_health_check c;
  COPY_IN(c, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", jstr(c.name));
  set(o, "kind", jstr(c.kind));
  set(o, "status", JNAME(check_statuses, c.status));
  set(o, "message", jstr(c.message));
  return o;
}

static json_t *plugin_json(const struct vmh_plugin_info *in) {
  struct vmh_plugin_info p;
  COPY_IN(p, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "name", jstr(p.name));
  set(o, "kind", jstr(p.kind));
  set(o, "version", jstr(p.version));
  set(o, "description", jstr(p.description));
  set(o, "file", jstr(p.file));
  set(o, "abi_major", json_integer(p.abi_major));
  set(o, "abi_minor", json_integer(p.abi_minor));
  set(o, "thread_model", JNAME(thread_models, p.thread_model));
  set(o, "instances", jstrv(p.instances, p.n_instances));
  set(o, "ops", jstrv(p.ops, p.n_ops));
  return o;
}

static json_t *event_json(const struct vmh_event *in) {
  struct vmh_event e;
  COPY_IN(e, in);
  json_t *o = json_object();
  if (!o)
    return NULL;
  set(o, "type", JNAME(event_types, e.type));
  set(o, "time_us", json_integer(e.time_us));
  set(o, "source", jstr(e.source));
  set(o, "vm_id", jstr(e.vm_id));
  set(o, "state", JNAME(vm_states, e.state));
  set(o, "reason", jstr(e.reason));
  set(o, "operation", jstr(e.operation));
  set(o, "code", json_integer(e.code));
  set(o, "message", jstr(e.message));
  set(o, "object", jstr(e.object));
  set(o, "done", ju64(e.done));
  set(o, "total", ju64(e.total));
  return o;
}

/* ---- One request ---------------------------------------------------------
 */

/* Memory for the arguments of one core call, all freed together as soon
 * as the call returns. */
struct arena {
  void **v;
  size_t n, cap;
};

static void *arena_alloc(struct arena *a, size_t size) {
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

static char *arena_strndup(struct arena *a, const char *s, size_t len) {
  char *p = arena_alloc(a, len + 1);
  if (p)
    memcpy(p, s, len);
  return p;
}

static void arena_free(struct arena *a) {
  for (size_t i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
  *a = (struct arena){0};
}

/* ---- Responses -----------------------------------------------------------
 */

/* {"code", "error", "http", "message"} first, for whoever reads the line,
 * then the results in res (whose reference it takes). */
static json_t *response(const struct vmh_core *core, json_t *res, int code,
                        const char *message) {
  json_t *o = json_object();
  if (o) {
    set(o, "code", json_integer(code));
    set(o, "error", jstr(core->error_name(code)));
    set(o, "http", json_integer(core->http_status(code)));
    set(o, "message", jstr(message));
    if (res)
      json_object_update_missing(o, res);
  }
  json_decref(res);
  return o;
}

/* o as one line, newline included, in *ret (to free); takes the
 * reference.  Out of memory, a fixed line: still a valid answer. */
static const char oom_line[] =
    "{\"code\":-11,\"error\":\"no_memory\",\"http\":503,"
    "\"message\":\"out of memory\"}\n";

static size_t dump_line(json_t *o, char **ret) {
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  size_t len = s ? strlen(s) : 0;
  char *line = s ? realloc(s, len + 2) : NULL;
  if (!line) {
    free(s);
    *ret = NULL;
    return 0;
  }
  line[len++] = '\n';
  line[len] = '\0';
  *ret = line;
  return len;
}

/* ---- Calls ---------------------------------------------------------------
 *
 * A request in flight.  Two parties hold it: the connection thread, which
 * waits for done(), and the core, until it has called done().  Normally
 * the connection thread writes the response.  When stop() begins first,
 * the connection thread hands the connection over to the call and goes;
 * done() then writes the response itself (without blocking) and closes the
 * connection.  stop() does not wait for the core: the core drains its
 * workers after stopping the front-ends, within its drain deadline, which
 * a front-end is not told.
 */
struct call {
  const struct vmh_core *core;
  uint32_t flags;         /* the request's "flags" */
  struct arena arena;     /* the arguments, freed once the core has them */
  char err[512];          /* why the request was refused before the core */
  struct vmh_reply reply; /* must outlive done(): not on a stack */
  int efd;                /* eventfd: done() has been called */
  bool want_text;         /* "text" in the answer even if none came */

  pthread_mutex_t lock; /* guards everything below */
  unsigned refs;
  const struct vmh_instance *inst; /* for logs; NULL once handed over */
  int fd;                          /* >= 0: handed over; done() answers on it */
  bool done;
  int code;
  char *message;
  json_t *res; /* results, added as they arrive */
  char *text;  /* metrics text, in the pieces it came in */
  size_t text_len;
  bool text_oom;
};

static void call_free(struct call *k) {
  arena_free(&k->arena);
  if (k->efd >= 0)
    close(k->efd);
  pthread_mutex_destroy(&k->lock);
  free(k->message);
  free(k->text);
  json_decref(k->res);
  free(k);
}

/* Drop one holder's reference; the last frees. */
static void call_unref(struct call *k) {
  pthread_mutex_lock(&k->lock);
  bool last = --k->refs == 0;
  pthread_mutex_unlock(&k->lock);
  if (last)
    call_free(k);
}

/* The answer to a call done(): results, text, status.  Under k->lock. */
static json_t *call_response(struct call *k) {
  json_t *res = k->res;
  k->res = NULL;
  if (res && k->text)
    set(res, "text", jstr(k->text));
  else if (res && k->want_text)
    set(res, "text", json_string(""));
  if (k->text_oom)
    host->log(k->inst, VMH_LOG_WARN, "metrics text lost (no memory)");
  return response(k->core, res, k->code, k->message);
}

/* Every visitor checks this first: results after done() break the
 * contract (core.h), and the answer may have gone already. */
static bool late(struct call *k, const char *what) {
  if (!k->done)
    return false;
  host->log(k->inst, VMH_LOG_ERROR,
            "core bug: %s result delivered after done()", what);
  return true;
}

static void add_result(struct call *k, const char *key, json_t *v) {
  pthread_mutex_lock(&k->lock);
  if (late(k, key) || !k->res) {
    json_decref(v);
  } else {
    json_t *a = json_object_get(k->res, key);
    if (!json_is_array(a)) {
      a = json_array();
      set(k->res, key, a);
    }
    if (json_array_append_new(a, v) < 0)
      host->log(k->inst, VMH_LOG_WARN, "a %s result lost (no memory)", key);
  }
  pthread_mutex_unlock(&k->lock);
}

static void set_result(struct call *k, const char *key, json_t *v) {
  pthread_mutex_lock(&k->lock);
  if (late(k, key) || !k->res)
    json_decref(v);
  else
    set(k->res, key, v);
  pthread_mutex_unlock(&k->lock);
}

static void on_vm(void *opaque, const struct vmh_vm_record *vm) {
  add_result(opaque, "vms", vm_json(vm));
}

static void on_snapshot(void *opaque, const struct vmh_snapshot_info *s) {
  add_result(opaque, "snapshots", snapshot_json(s));
}

static void on_console(void *opaque, const struct vmh_console_info *c) {
  set_result(opaque, "console", console_json(c));
}

static void on_pool(void *opaque, const struct vmh_pool_info *p) {
  add_result(opaque, "pools", pool_json(p));
}

static void on_volume(void *opaque, const struct vmh_volume_info *v) {
  add_result(opaque, "volumes", volume_json(v));
}

static void on_image(void *opaque, const struct vmh_image_info *i) {
  add_result(opaque, "images", image_json(i));
}

static void on_network(void *opaque, const struct vmh_network_info *n) {
  add_result(opaque, "networks", network_json(n));
}

static void on_host(void *opaque, const struct vmh_host_info *h) {
  set_result(opaque, "host", host_json(h));
}

static void on_check(void *opaque, const struct vmh_health_check *c) {
  add_result(opaque, "checks", check_json(c));
}

static void on_plugin(void *opaque, const struct vmh_plugin_info *p) {
  add_result(opaque, "plugins", plugin_json(p));
}

static void on_text(void *opaque, const char *text, size_t len) {
  struct call *k = opaque;
  pthread_mutex_lock(&k->lock);
  if (!late(k, "text") && text && len) {
    char *t = realloc(k->text, k->text_len + len + 1);
    if (t) {
      memcpy(t + k->text_len, text, len);
      k->text_len += len;
      t[k->text_len] = '\0';
      k->text = t;
    } else {
      k->text_oom = true;
    }
  }
  pthread_mutex_unlock(&k->lock);
}

/* Write what the socket takes now, never waiting: this runs on a core
 * worker, after stop(), for a client that may not be reading. */
static void send_nowait(int fd, const char *data, size_t len) {
  while (len) {
    ssize_t n = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    data += n;
    len -= (size_t)n;
  }
}

static void on_done(void *opaque, int code, const char *message) {
  struct call *k = opaque;
  pthread_mutex_lock(&k->lock);
  if (k->done) {
    /* Its reference is gone already: nothing more to drop. */
    host->log(k->inst, VMH_LOG_ERROR,
              "core bug: done() called twice (first %d, then %d: %s)", k->code,
              code, message ? message : "(no message)");
    pthread_mutex_unlock(&k->lock);
    return;
  }
  k->done = true;
  k->code = code;
  /* Copied: the message is only valid during the call. */
  k->message = message ? strdup(message) : NULL;
  if (code && !message)
    host->log(k->inst, VMH_LOG_WARN, "core returned %d without a message",
              code);
  if (k->fd >= 0) {
    char *line;
    size_t len = dump_line(call_response(k), &line);
    if (line)
      send_nowait(k->fd, line, len);
    else
      send_nowait(k->fd, oom_line, sizeof oom_line - 1);
    free(line);
    close(k->fd);
    k->fd = -1;
  } else {
    eventfd_write(k->efd, 1);
  }
  bool last = --k->refs == 0;
  pthread_mutex_unlock(&k->lock);
  if (last)
    call_free(k);
}

static struct call *call_new(struct ctl *ctl, uint32_t flags) {
  struct call *k = calloc(1, sizeof *k);
  if (!k)
    return NULL;
  k->core = ctl->core;
  k->inst = ctl->inst;
  k->flags = flags;
  k->fd = -1;
  k->refs = 1;
  k->res = json_object();
  k->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_mutex_init(&k->lock, NULL);
  if (!k->res || k->efd < 0) {
    call_free(k);
    return NULL;
  }
  k->reply = (struct vmh_reply){
      .struct_size = sizeof k->reply,
      .opaque = k,
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
  };
  return k;
}

static int refuse(struct call *k, const char *fmt, ...)
    __attribute__((__format__(__printf__, 2, 3)));
static int refuse(struct call *k, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(k->err, sizeof k->err, fmt, ap);
  va_end(ap);
  return VMH_EINVAL;
}

static int no_memory(struct call *k) {
  snprintf(k->err, sizeof k->err, "out of memory");
  return VMH_ENOMEM;
}

/* ---- Request fields ------------------------------------------------------
 *
 * Only JSON types are checked here; what the values mean is the core's to
 * judge (that is what the tests test).  A field that is absent or null
 * goes to the core as NULL or 0, so a test can check how the core takes a
 * missing argument.  Each helper returns 0 or a VMH_E* code with k->err
 * set.  `where` prefixes messages ("spec.disks[0].").
 */

static int only_keys(struct call *k, json_t *obj, const char *where,
                     const char *const *keys) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    bool known = !where[0] && (!strcmp(key, "op") || !strcmp(key, "flags"));
    for (size_t i = 0; keys[i] && !known; i++)
      known = !strcmp(key, keys[i]);
    /* Strict, as the config is: a misspelt field would otherwise be a test
     * that silently tests nothing. */
    if (!known)
      return refuse(k, "unknown field '%s%s'", where, key);
  }
  return 0;
}

static int get_string(struct call *k, json_t *obj, const char *where,
                      const char *key, const char **ret) {
  json_t *v = json_object_get(obj, key);
  *ret = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_string(v))
    return refuse(k, "'%s%s' must be a string", where, key);
  /* Copied into the arena: freed as soon as the core call returns. */
  char *s =
      arena_strndup(&k->arena, json_string_value(v), json_string_length(v));
  if (!s)
    return no_memory(k);
  *ret = s;
  return 0;
}

static int get_bool(struct call *k, json_t *obj, const char *where,
                    const char *key, uint32_t *ret) {
  json_t *v = json_object_get(obj, key);
  *ret = 0;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_boolean(v))
    return refuse(k, "'%s%s' must be true or false", where, key);
  *ret = json_is_true(v);
  return 0;
}

static int get_uint(struct call *k, json_t *obj, const char *where,
                    const char *key, uint64_t max, uint64_t *ret) {
  json_t *v = json_object_get(obj, key);
  *ret = 0;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0 ||
      (uint64_t)json_integer_value(v) > max)
    return refuse(k, "'%s%s' must be an integer from 0 to %" PRIu64, where, key,
                  max);
  *ret = (uint64_t)json_integer_value(v);
  return 0;
}

static int get_u32(struct call *k, json_t *obj, const char *where,
                   const char *key, uint32_t *ret) {
  uint64_t v;
  int r = get_uint(k, obj, where, key, UINT32_MAX, &v);
  *ret = (uint32_t)v;
  return r;
}

/* An enum: one of its names, or any number (passed through so that a test
 * can check that the core refuses values it does not know). */
static int get_enum(struct call *k, json_t *obj, const char *where,
                    const char *key, const char *const *names, size_t n,
                    uint32_t *ret) {
  json_t *v = json_object_get(obj, key);
  *ret = 0;
  if (!v || json_is_null(v))
    return 0;
  if (json_is_integer(v))
    return get_u32(k, obj, where, key, ret);
  if (json_is_string(v)) {
    for (size_t i = 0; i < n; i++) {
      if (names[i][0] && !strcmp(json_string_value(v), names[i])) {
        *ret = (uint32_t)i;
        return 0;
      }
    }
  }
  char list[256] = "";
  size_t o = 0;
  for (size_t i = 0; i < n && o < sizeof list; i++)
    if (names[i][0])
      o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "",
                            names[i]);
  return refuse(k, "'%s%s' must be one of %s (or a number)", where, key, list);
}

#define GET_ENUM(k, obj, where, key, tab, ret)                              \
  get_enum((k), (obj), (where), (key), (tab), sizeof(tab) / sizeof(tab)[0], \
           (ret))

/* An optional object: absent or null gives NULL. */
static int get_object(struct call *k, json_t *obj, const char *where,
                      const char *key, json_t **ret) {
  json_t *v = json_object_get(obj, key);
  *ret = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_object(v))
    return refuse(k, "'%s%s' must be an object", where, key);
  *ret = v;
  return 0;
}

static int get_array(struct call *k, json_t *obj, const char *where,
                     const char *key, json_t **ret) {
  json_t *v = json_object_get(obj, key);
  *ret = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_array(v))
    return refuse(k, "'%s%s' must be an array", where, key);
  *ret = v;
  return 0;
}

static int parse_disk(struct call *k, json_t *o, const char *where,
                      struct vmh_disk *d) {
  static const char *const keys[] = {
      "name", "pool",       "volume",   "size",       "format",
      "bus",  "base_image", "readonly", "boot_order", NULL};
  int r;
  *d = (struct vmh_disk){.struct_size = sizeof *d};
  if ((r = only_keys(k, o, where, keys)) < 0 ||
      (r = get_string(k, o, where, "name", &d->name)) < 0 ||
      (r = get_string(k, o, where, "pool", &d->pool)) < 0 ||
      (r = get_string(k, o, where, "volume", &d->volume)) < 0 ||
      (r = get_uint(k, o, where, "size", INT64_MAX, &d->size)) < 0 ||
      (r = GET_ENUM(k, o, where, "format", formats, &d->format)) < 0 ||
      (r = GET_ENUM(k, o, where, "bus", buses, &d->bus)) < 0 ||
      (r = get_string(k, o, where, "base_image", &d->base_image)) < 0 ||
      (r = get_bool(k, o, where, "readonly", &d->readonly)) < 0 ||
      (r = get_u32(k, o, where, "boot_order", &d->boot_order)) < 0)
    return r;
  return 0;
}

static int parse_nic(struct call *k, json_t *o, const char *where,
                     struct vmh_nic *n) {
  static const char *const keys[] = {"name", "network", "mac",
                                     "vlan", "model",   NULL};
  int r;
  *n = (struct vmh_nic){.struct_size = sizeof *n};
  if ((r = only_keys(k, o, where, keys)) < 0 ||
      (r = get_string(k, o, where, "name", &n->name)) < 0 ||
      (r = get_string(k, o, where, "network", &n->network)) < 0 ||
      (r = get_string(k, o, where, "mac", &n->mac)) < 0 ||
      (r = get_u32(k, o, where, "vlan", &n->vlan)) < 0 ||
      (r = GET_ENUM(k, o, where, "model", nic_models, &n->model)) < 0)
    return r;
  return 0;
}

/* The elements of an array of objects, each parsed by fn into an
 * arena-allocated array of `size`-byte structs. */
static int parse_list(struct call *k, json_t *a, const char *what, size_t size,
                      void **ret, uint32_t *ret_n,
                      int (*fn)(struct call *, json_t *, const char *,
                                void *)) {
  *ret = NULL;
  *ret_n = 0;
  if (!a)
    return 0;
  size_t n = json_array_size(a);
  if (n > UINT32_MAX)
    return refuse(k, "'%s' has too many elements", what);
  char *v = arena_alloc(&k->arena, n * size);
  if (!v)
    return no_memory(k);
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(a, i);
    char where[64];
    snprintf(where, sizeof where, "%s[%zu].", what, i);
    if (!json_is_object(e))
      return refuse(k, "'%s[%zu]' must be an object", what, i);
    int r = fn(k, e, where, v + i * size);
    if (r < 0)
      return r;
  }
  *ret = v;
  *ret_n = (uint32_t)n;
  return 0;
}

static int parse_disk_v(struct call *k, json_t *o, const char *where, void *d) {
  return parse_disk(k, o, where, d);
}

static int parse_nic_v(struct call *k, json_t *o, const char *where, void *n) {
  return parse_nic(k, o, where, n);
}

static int parse_spec(struct call *k, json_t *o, struct vmh_vm_spec *s) {
  static const char *const keys[] = {
      "name",     "vcpus",      "memory",        "kernel",    "initrd",
      "cmdline",  "firmware",   "guest_channel", "user_data", "meta_data",
      "metadata", "hypervisor", "disks",         "nics",      NULL};
  const char *w = "spec.";
  json_t *disks, *nics, *md;
  void *dv, *nv;
  int r;
  *s = (struct vmh_vm_spec){.struct_size = sizeof *s};
  uint64_t vcpus;
  if ((r = only_keys(k, o, w, keys)) < 0 ||
      (r = get_string(k, o, w, "name", &s->name)) < 0 ||
      (r = get_uint(k, o, w, "vcpus", UINT32_MAX, &vcpus)) < 0 ||
      (r = get_uint(k, o, w, "memory", INT64_MAX, &s->memory)) < 0 ||
      (r = get_string(k, o, w, "kernel", &s->kernel)) < 0 ||
      (r = get_string(k, o, w, "initrd", &s->initrd)) < 0 ||
      (r = get_string(k, o, w, "cmdline", &s->cmdline)) < 0 ||
      (r = get_string(k, o, w, "firmware", &s->firmware)) < 0 ||
      (r = get_bool(k, o, w, "guest_channel", &s->guest_channel)) < 0 ||
      (r = get_string(k, o, w, "user_data", &s->user_data)) < 0 ||
      (r = get_string(k, o, w, "meta_data", &s->meta_data)) < 0 ||
      (r = get_string(k, o, w, "hypervisor", &s->hypervisor)) < 0 ||
      (r = get_object(k, o, w, "metadata", &md)) < 0 ||
      (r = get_array(k, o, w, "disks", &disks)) < 0 ||
      (r = get_array(k, o, w, "nics", &nics)) < 0)
    return r;
  s->vcpus = (uint32_t)vcpus;
  if ((r = parse_list(k, disks, "spec.disks", sizeof(struct vmh_disk), &dv,
                      &s->n_disks, parse_disk_v)) < 0 ||
      (r = parse_list(k, nics, "spec.nics", sizeof(struct vmh_nic), &nv,
                      &s->n_nics, parse_nic_v)) < 0)
    return r;
  s->disks = dv;
  s->nics = nv;
  if (md) {
    size_t n = json_object_size(md), i = 0;
    struct vmh_keyval *kv = arena_alloc(&k->arena, n * sizeof *kv);
    if (!kv)
      return no_memory(k);
    const char *key;
    json_t *v;
    json_object_foreach(md, key, v) {
      if (!json_is_string(v))
        return refuse(k, "'spec.metadata.%s' must be a string", key);
      kv[i].key = arena_strndup(&k->arena, key, strlen(key));
      kv[i].value =
          arena_strndup(&k->arena, json_string_value(v), json_string_length(v));
      if (!kv[i].key || !kv[i].value)
        return no_memory(k);
      i++;
    }
    s->metadata = kv;
    s->n_metadata = (uint32_t)i;
  }
  return 0;
}

/* ---- Operations ----------------------------------------------------------
 *
 * Each parses its fields, then calls the core (returning 0: done() will
 * come) or refuses (a VMH_E* code, k->err set, the core not called).
 */

/* Whether the core's table has op: the table may be older (smaller) than
 * these headers, and a missing operation reads as not supported. */
#define CORE_HAS(core, fn)                                   \
  ((core)->struct_size >=                                    \
       offsetof(struct vmh_core, fn) + sizeof((core)->fn) && \
   (core)->fn != NULL)

#define CORE_CALL(k, fn, ...)                                \
  (CORE_HAS((k)->core, fn) ? ((k)->core->fn(__VA_ARGS__), 0) \
                           : not_supported((k), #fn))

static int not_supported(struct call *k, const char *fn) {
  snprintf(k->err, sizeof k->err, "the core has no %s operation", fn);
  return VMH_ENOTSUP;
}

#define KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Most operations name a VM (and maybe a second string); these cover them. */
static int parse_vm(struct call *k, json_t *q, const char *const *keys,
                    const char **vm) {
  int r = only_keys(k, q, "", keys);
  return r < 0 ? r : get_string(k, q, "", "vm", vm);
}

static int op_vm_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  uint32_t live;
  int r;
  if ((r = only_keys(k, q, "", KEYS("live"))) < 0 ||
      (r = get_bool(k, q, "", "live", &live)) < 0)
    return r;
  return CORE_CALL(k, vm_list, rp, k->flags | (live ? VMH_READ_LIVE : 0));
}

static int op_vm_get(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  uint32_t live;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "live"), &vm)) < 0 ||
      (r = get_bool(k, q, "", "live", &live)) < 0)
    return r;
  return CORE_CALL(k, vm_get, vm, rp, k->flags | (live ? VMH_READ_LIVE : 0));
}

static int op_vm_create(struct call *k, json_t *q, vmh_reply_t *rp) {
  json_t *so;
  uint32_t no_start;
  struct vmh_vm_spec spec;
  int r;
  if ((r = only_keys(k, q, "", KEYS("spec", "no_start"))) < 0 ||
      (r = get_bool(k, q, "", "no_start", &no_start)) < 0 ||
      (r = get_object(k, q, "", "spec", &so)) < 0 ||
      (so && (r = parse_spec(k, so, &spec)) < 0))
    return r;
  return CORE_CALL(k, vm_create, so ? &spec : NULL, rp,
                   k->flags | (no_start ? VMH_CREATE_NO_START : 0));
}

static int op_vm_delete(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  int r = parse_vm(k, q, KEYS("vm"), &vm);
  return r < 0 ? r : CORE_CALL(k, vm_delete, vm, rp, k->flags);
}

static int op_vm_action(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  uint32_t action, timeout, force;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "action", "timeout", "force"), &vm)) < 0 ||
      (r = GET_ENUM(k, q, "", "action", actions, &action)) < 0 ||
      (r = get_u32(k, q, "", "timeout", &timeout)) < 0 ||
      (r = get_bool(k, q, "", "force", &force)) < 0)
    return r;
  return CORE_CALL(k, vm_action, vm, action, timeout, rp,
                   k->flags | (force ? VMH_ACTION_FORCE : 0));
}

static int op_vm_console(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  int r = parse_vm(k, q, KEYS("vm"), &vm);
  return r < 0 ? r : CORE_CALL(k, vm_console, vm, rp, k->flags);
}

static int op_snapshot_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  int r = parse_vm(k, q, KEYS("vm"), &vm);
  return r < 0 ? r : CORE_CALL(k, snapshot_list, vm, rp, k->flags);
}

static int op_snapshot_create(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm, *name;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "name"), &vm)) < 0 ||
      (r = get_string(k, q, "", "name", &name)) < 0)
    return r;
  return CORE_CALL(k, snapshot_create, vm, name, rp, k->flags);
}

static int op_snapshot_revert(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm, *id;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "id"), &vm)) < 0 ||
      (r = get_string(k, q, "", "id", &id)) < 0)
    return r;
  return CORE_CALL(k, snapshot_revert, vm, id, rp, k->flags);
}

static int op_snapshot_delete(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm, *id;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "id"), &vm)) < 0 ||
      (r = get_string(k, q, "", "id", &id)) < 0)
    return r;
  return CORE_CALL(k, snapshot_delete, vm, id, rp, k->flags);
}

static int op_disk_attach(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  json_t *dobj;
  struct vmh_disk disk;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "disk"), &vm)) < 0 ||
      (r = get_object(k, q, "", "disk", &dobj)) < 0 ||
      (dobj && (r = parse_disk(k, dobj, "disk.", &disk)) < 0))
    return r;
  return CORE_CALL(k, disk_attach, vm, dobj ? &disk : NULL, rp, k->flags);
}

static int op_disk_detach(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm, *disk;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "disk"), &vm)) < 0 ||
      (r = get_string(k, q, "", "disk", &disk)) < 0)
    return r;
  return CORE_CALL(k, disk_detach, vm, disk, rp, k->flags);
}

static int op_pool_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = only_keys(k, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, pool_list, rp, k->flags);
}

/* pool, volume, image: the name fields of the storage operations. */
static int parse_pool(struct call *k, json_t *q, const char *const *keys,
                      const char **pool) {
  int r = only_keys(k, q, "", keys);
  return r < 0 ? r : get_string(k, q, "", "pool", pool);
}

static int op_pool_get(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool;
  int r = parse_pool(k, q, KEYS("pool"), &pool);
  return r < 0 ? r : CORE_CALL(k, pool_get, pool, rp, k->flags);
}

static int op_volume_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool;
  int r = parse_pool(k, q, KEYS("pool"), &pool);
  return r < 0 ? r : CORE_CALL(k, volume_list, pool, rp, k->flags);
}

static int op_volume_get(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool, *vol;
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "volume"), &pool)) < 0 ||
      (r = get_string(k, q, "", "volume", &vol)) < 0)
    return r;
  return CORE_CALL(k, volume_get, pool, vol, rp, k->flags);
}

static int op_volume_create(struct call *k, json_t *q, vmh_reply_t *rp) {
  static const char *const keys[] = {"name", "size", "format", "base_image",
                                     NULL};
  const char *pool;
  json_t *vo;
  struct vmh_volume_spec s = {.struct_size = sizeof s};
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "volume"), &pool)) < 0 ||
      (r = get_object(k, q, "", "volume", &vo)) < 0)
    return r;
  if (vo &&
      ((r = only_keys(k, vo, "volume.", keys)) < 0 ||
       (r = get_string(k, vo, "volume.", "name", &s.name)) < 0 ||
       (r = get_uint(k, vo, "volume.", "size", INT64_MAX, &s.size)) < 0 ||
       (r = GET_ENUM(k, vo, "volume.", "format", formats, &s.format)) < 0 ||
       (r = get_string(k, vo, "volume.", "base_image", &s.base_image)) < 0))
    return r;
  return CORE_CALL(k, volume_create, pool, vo ? &s : NULL, rp, k->flags);
}

static int op_volume_resize(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool, *vol;
  uint64_t size;
  uint32_t shrink;
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "volume", "size", "shrink"), &pool)) <
          0 ||
      (r = get_string(k, q, "", "volume", &vol)) < 0 ||
      (r = get_uint(k, q, "", "size", INT64_MAX, &size)) < 0 ||
      (r = get_bool(k, q, "", "shrink", &shrink)) < 0)
    return r;
  return CORE_CALL(k, volume_resize, pool, vol, size, rp,
                   k->flags | (shrink ? VMH_RESIZE_SHRINK : 0));
}

static int op_volume_delete(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool, *vol;
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "volume"), &pool)) < 0 ||
      (r = get_string(k, q, "", "volume", &vol)) < 0)
    return r;
  return CORE_CALL(k, volume_delete, pool, vol, rp, k->flags);
}

static int op_image_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool;
  int r = parse_pool(k, q, KEYS("pool"), &pool);
  return r < 0 ? r : CORE_CALL(k, image_list, pool, rp, k->flags);
}

static int op_image_import(struct call *k, json_t *q, vmh_reply_t *rp) {
  static const char *const keys[] = {"name", "url", "sha256", NULL};
  const char *pool;
  json_t *io;
  struct vmh_image_spec s = {.struct_size = sizeof s};
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "image"), &pool)) < 0 ||
      (r = get_object(k, q, "", "image", &io)) < 0)
    return r;
  if (io && ((r = only_keys(k, io, "image.", keys)) < 0 ||
             (r = get_string(k, io, "image.", "name", &s.name)) < 0 ||
             (r = get_string(k, io, "image.", "url", &s.url)) < 0 ||
             (r = get_string(k, io, "image.", "sha256", &s.sha256)) < 0))
    return r;
  return CORE_CALL(k, image_import, pool, io ? &s : NULL, rp, k->flags);
}

static int op_image_delete(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool, *image;
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "image"), &pool)) < 0 ||
      (r = get_string(k, q, "", "image", &image)) < 0)
    return r;
  return CORE_CALL(k, image_delete, pool, image, rp, k->flags);
}

static int op_network_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = only_keys(k, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, network_list, rp, k->flags);
}

static int op_network_get(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *net;
  int r;
  if ((r = only_keys(k, q, "", KEYS("network"))) < 0 ||
      (r = get_string(k, q, "", "network", &net)) < 0)
    return r;
  return CORE_CALL(k, network_get, net, rp, k->flags);
}

static int op_host_info(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = only_keys(k, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, host_info, rp, k->flags);
}

static int op_health(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = only_keys(k, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, health, rp, k->flags);
}

static int op_plugin_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = only_keys(k, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, plugin_list, rp, k->flags);
}

static int op_metrics(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = only_keys(k, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, metrics, rp, k->flags);
}

struct op_desc {
  const char *name;
  /* The array results go to, present (maybe empty) in every answer, so
   * that a test can take len() of it; NULL: none expected. */
  const char *results;
  int (*call)(struct call *k, json_t *q, vmh_reply_t *rp);
};

static const struct op_desc op_table[] = {
    {"vm_list", "vms", op_vm_list},
    {"vm_get", "vms", op_vm_get},
    {"vm_create", "vms", op_vm_create},
    {"vm_delete", NULL, op_vm_delete},
    {"vm_action", NULL, op_vm_action},
    {"vm_console", NULL, op_vm_console},
    {"snapshot_list", "snapshots", op_snapshot_list},
    {"snapshot_create", NULL, op_snapshot_create},
    {"snapshot_revert", NULL, op_snapshot_revert},
    {"snapshot_delete", NULL, op_snapshot_delete},
    {"disk_attach", NULL, op_disk_attach},
    {"disk_detach", NULL, op_disk_detach},
    {"pool_list", "pools", op_pool_list},
    {"pool_get", "pools", op_pool_get},
    {"volume_list", "volumes", op_volume_list},
    {"volume_get", "volumes", op_volume_get},
    {"volume_create", "volumes", op_volume_create},
    {"volume_resize", "volumes", op_volume_resize},
    {"volume_delete", NULL, op_volume_delete},
    {"image_list", "images", op_image_list},
    {"image_import", NULL, op_image_import},
    {"image_delete", NULL, op_image_delete},
    {"network_list", "networks", op_network_list},
    {"network_get", "networks", op_network_get},
    {"host_info", NULL, op_host_info},
    {"health", "checks", op_health},
    {"plugin_list", "plugins", op_plugin_list},
    {"metrics", NULL, op_metrics},
};

/* ---- Connection I/O ------------------------------------------------------
 */

/* Wait until fd is ready for `events` or stop() has begun (false). */
static bool wait_fd(struct conn *c, short events) {
  struct pollfd p[2] = {{.fd = c->fd, .events = events},
                        {.fd = c->ctl->stop_fd, .events = POLLIN}};
  for (;;) {
    int n = poll(p, 2, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 || p[1].revents)
      return false;
    if (p[0].revents)
      return true;
  }
}

static int send_all(struct conn *c, const char *data, size_t len) {
  while (len) {
    /* Try first: a response to a request that was in flight when stop()
     * began still goes out if the socket takes it. */
    ssize_t n = send(c->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      data += n;
      len -= (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_fd(c, POLLOUT))
        return -1;
    } else {
      return -1;
    }
  }
  return 0;
}

/* Write o as one line; takes the reference. */
static int send_json(struct conn *c, json_t *o) {
  char *line;
  size_t len = dump_line(o, &line);
  int r = line ? send_all(c, line, len)
               : send_all(c, oom_line, sizeof oom_line - 1);
  free(line);
  return r;
}

static int respond(struct conn *c, json_t *res, int code, const char *message) {
  return send_json(c, response(c->ctl->core, res, code, message));
}

static int respond_invalid(struct conn *c, const char *message) {
  host->log(c->ctl->inst, VMH_LOG_DEBUG, "invalid request: %s", message);
  return respond(c, NULL, VMH_EINVAL, message);
}

enum { LINE_OK, LINE_END, LINE_TOO_LONG };

/* The next line (NUL-terminated, in c->buf, valid until the next call). */
static int read_line(struct conn *c, char **ret, size_t *ret_len) {
  if (c->consumed) {
    memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
    c->len -= c->consumed;
    c->consumed = 0;
    c->scanned = 0;
  }
  for (;;) {
    /* (memchr on the NULL buffer of a new connection would be undefined
     * even with a length of 0.) */
    char *nl = c->len > c->scanned
                   ? memchr(c->buf + c->scanned, '\n', c->len - c->scanned)
                   : NULL;
    if (nl) {
      size_t n = (size_t)(nl - c->buf);
      c->consumed = n + 1;
      if (c->discarding) {
        c->discarding = false;
        return LINE_TOO_LONG;
      }
      *nl = '\0';
      *ret = c->buf;
      *ret_len = n;
      return LINE_OK;
    }
    c->scanned = c->len;
    if (c->len >= LINE_LIMIT) {
      /* Drop what we have and keep dropping up to the newline; answer
       * once, when the line ends, so responses stay one per line. */
      c->discarding = true;
      c->len = 0;
      c->scanned = 0;
    }
    if (c->len == c->cap) {
      size_t cap = c->cap ? c->cap * 2 : 4096;
      if (cap > LINE_LIMIT)
        cap = LINE_LIMIT;
      char *b = realloc(c->buf, cap);
      if (!b)
        return LINE_END;
      c->buf = b;
      c->cap = cap;
    }
    if (!wait_fd(c, POLLIN))
      return LINE_END;
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
      continue;
    if (n <= 0)
      return LINE_END;
    c->len += (size_t)n;
  }
}

/* ---- Events --------------------------------------------------------------
 */

struct sub {
  struct ctl *ctl;
  int efd; /* readable while the queue has news */
  pthread_mutex_t lock;
  char *queue[EVENT_QUEUE_MAX]; /* lines, with their newline */
  size_t n;
  uint64_t dropped; /* since the last {"dropped":N} line */
};

/* On the emitting thread, under the core's event lock: no blocking. */
static void on_event(void *opaque, const struct vmh_event *ev) {
  struct sub *s = opaque;
  json_t *o = json_object();
  if (o)
    set(o, "event", event_json(ev));
  char *line;
  dump_line(o, &line);
  pthread_mutex_lock(&s->lock);
  /* An event that cannot be queued (full, or out of memory) is counted
   * so that the client learns it missed some. */
  if (line && s->n < EVENT_QUEUE_MAX) {
    s->queue[s->n++] = line;
    line = NULL;
  } else {
    s->dropped++;
  }
  pthread_mutex_unlock(&s->lock);
  free(line);
  /* Non-blocking eventfd: a write can only fail with a counter near
   * 2^64, and then it is readable anyway. */
  eventfd_write(s->efd, 1);
}

/* Send what is queued; -1 when the connection is gone. */
static int flush_events(struct conn *c, struct sub *s) {
  char *lines[EVENT_QUEUE_MAX];
  eventfd_t v;
  eventfd_read(s->efd, &v);
  pthread_mutex_lock(&s->lock);
  size_t n = s->n;
  uint64_t dropped = s->dropped;
  memcpy(lines, s->queue, n * sizeof *lines);
  s->n = 0;
  s->dropped = 0;
  pthread_mutex_unlock(&s->lock);
  /* Drops happen only while the queue is full, so every queued event came
   * before every dropped one: the dropped line goes last. */
  int r = 0;
  for (size_t i = 0; i < n; i++) {
    if (r == 0)
      r = send_all(c, lines[i], strlen(lines[i]));
    free(lines[i]);
  }
  if (r == 0 && dropped) {
    json_t *o = json_pack("{sI}", "dropped", (json_int_t)dropped);
    r = send_json(c, o);
  }
  return r;
}

/* {"op":"events"}: answer, then stream until the client goes or stop()
 * begins.  The connection ends with it. */
static void serve_events(struct conn *c, uint32_t flags) {
  struct ctl *ctl = c->ctl;
  const struct vmh_core *core = ctl->core;
  struct sub *s = calloc(1, sizeof *s);
  if (!s) {
    respond(c, NULL, VMH_ENOMEM, "out of memory");
    return;
  }
  s->ctl = ctl;
  pthread_mutex_init(&s->lock, NULL);
  s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  uint64_t id = 0;
  int code;
  if (s->efd < 0) {
    respond(c, NULL, VMH_EIO, "eventfd failed");
    goto out;
  }
  if (!CORE_HAS(core, subscribe) || !CORE_HAS(core, unsubscribe)) {
    respond(c, NULL, VMH_ENOTSUP, "the core has no subscribe operation");
    goto out;
  }
  code = core->subscribe(on_event, s, &id, flags);
  if (code) {
    /* subscribe() sets its message in the core's thread-local error, which
     * a front-end cannot read (struct vmh_core has no getter). */
    char msg[128];
    snprintf(msg, sizeof msg,
             "subscribe failed (flags 0x%" PRIx32
             "); the core's message is not available to front-ends",
             flags);
    respond(c, NULL, code, msg);
    goto out;
  }
  host->log(ctl->inst, VMH_LOG_DEBUG, "subscriber %" PRIu64 " on fd %d", id,
            c->fd);
  if (respond(c, NULL, 0, NULL) == 0) {
    char scratch[4096];
    for (;;) {
      struct pollfd p[3] = {{.fd = c->fd, .events = POLLIN},
                            {.fd = s->efd, .events = POLLIN},
                            {.fd = ctl->stop_fd, .events = POLLIN}};
      int n = poll(p, 3, -1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 || p[2].revents)
        break;
      if (p[0].revents) {
        /* The client has nothing to say on this connection: whatever it
         * sends is ignored; end of file ends the stream. */
        ssize_t got = recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN &&
                         errno != EWOULDBLOCK))
          break;
      }
      if (p[1].revents && flush_events(c, s) < 0)
        break;
    }
  }
  core->unsubscribe(id);
  host->log(ctl->inst, VMH_LOG_DEBUG, "subscriber %" PRIu64 " gone", id);
out:
  /* After unsubscribe() returns no delivery is in flight (core.h). */
  for (size_t i = 0; i < s->n; i++)
    free(s->queue[i]);
  if (s->efd >= 0)
    close(s->efd);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* ---- Requests ------------------------------------------------------------
 */

static bool blank(const char *s) {
  return s[strspn(s, " \t\r")] == '\0';
}

/* Handle one line; -1 ends the connection. */
static int handle_line(struct conn *c, const char *line, size_t len) {
  struct ctl *ctl = c->ctl;
  json_error_t jerr;
  /* Duplicate keys are refused: which one would count is a guess. */
  json_t *q = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!q) {
    char msg[300];
    snprintf(msg, sizeof msg, "malformed JSON at column %d: %s", jerr.column,
             jerr.text);
    return respond_invalid(c, msg);
  }
  if (!json_is_object(q)) {
    json_decref(q);
    return respond_invalid(c, "a request must be a JSON object");
  }
  json_t *opv = json_object_get(q, "op"), *fv = json_object_get(q, "flags");
  if (!json_is_string(opv)) {
    json_decref(q);
    return respond_invalid(c, "'op' must be a string naming the operation");
  }
  if (fv && (!json_is_integer(fv) || json_integer_value(fv) < 0 ||
             json_integer_value(fv) > UINT32_MAX)) {
    json_decref(q);
    return respond_invalid(c,
                           "'flags' must be an integer from 0 to "
                           "4294967295");
  }
  uint32_t flags = fv ? (uint32_t)json_integer_value(fv) : 0;
  char op[64];
  snprintf(op, sizeof op, "%s", json_string_value(opv));

  if (!strcmp(op, "events")) {
    int r = json_object_size(q) > (fv ? 2u : 1u)
                ? respond_invalid(c, "'events' takes no fields but flags")
                : (serve_events(c, flags), -1);
    json_decref(q);
    return r;
  }
  if (!strcmp(op, "ready")) {
    size_t n = json_object_size(q);
    json_decref(q);
    if (flags || n > (fv ? 2u : 1u))
      return respond_invalid(c, "'ready' takes no fields and no flags");
    int ready = CORE_HAS(ctl->core, ready) && ctl->core->ready();
    json_t *res = json_pack("{sb}", "ready", ready);
    /* Like /readyz: a shell test can loop on the exit status. */
    return respond(c, res, ready ? 0 : VMH_EAGAIN,
                   ready ? NULL : "not ready: starting or draining");
  }

  const struct op_desc *d = NULL;
  for (size_t i = 0; i < sizeof op_table / sizeof op_table[0] && !d; i++)
    if (!strcmp(op, op_table[i].name))
      d = &op_table[i];
  if (!d) {
    char msg[128];
    snprintf(msg, sizeof msg, "unknown op '%.64s'", json_string_value(opv));
    json_decref(q);
    return respond_invalid(c, msg);
  }

  struct call *k = call_new(ctl, flags);
  if (!k) {
    json_decref(q);
    return respond(c, NULL, VMH_ENOMEM, "out of memory");
  }
  if (d->results)
    set(k->res, d->results, json_array());
  k->want_text = !strcmp(op, "metrics");
  /* The core's reference, dropped by done(); given back at once if the
   * request is refused before the core is called. */
  k->refs++;
  int r = d->call(k, q, &k->reply);
  /* The core has copied the arguments (core.h): free them now, so that a
   * core that kept a pointer reads freed memory under ASan. */
  arena_free(&k->arena);
  json_decref(q);
  if (r < 0) {
    k->refs--;
    host->log(ctl->inst, VMH_LOG_DEBUG, "%s refused: %s", op, k->err);
    r = respond(c, NULL, r, k->err);
    call_unref(k);
    return r;
  }

  /* Wait for done(), or hand the connection over if stop() comes first. */
  struct pollfd p[2] = {{.fd = k->efd, .events = POLLIN},
                        {.fd = ctl->stop_fd, .events = POLLIN}};
  for (;;) {
    pthread_mutex_lock(&k->lock);
    if (k->done)
      break;
    if (p[1].revents) {
      k->fd = c->fd;
      c->fd = -1;
      k->inst = NULL; /* the instance may be closed before done() */
      pthread_mutex_unlock(&k->lock);
      host->log(ctl->inst, VMH_LOG_DEBUG,
                "%s still running at stop; done() will answer", op);
      call_unref(k);
      return -1;
    }
    pthread_mutex_unlock(&k->lock);
    if (poll(p, 2, -1) < 0 && errno != EINTR)
      p[1].revents = POLLIN; /* cannot wait: treat as stop */
  }
  json_t *res = call_response(k);
  host->log(ctl->inst, VMH_LOG_DEBUG, "%s: %d%s%s", op, k->code,
            k->message ? " " : "", k->message ? k->message : "");
  pthread_mutex_unlock(&k->lock);
  call_unref(k);
  return send_json(c, res);
}

static void *conn_main(void *arg) {
  struct conn *c = arg;
  struct ctl *ctl = c->ctl;
  for (;;) {
    char *line = NULL;
    size_t len = 0;
    int r = read_line(c, &line, &len);
    /* Lines already buffered are not served once stop() has begun: after
     * it returns the front-end makes no more core calls (frontend.h). */
    if (r == LINE_END || atomic_load(&ctl->stopping))
      break;
    if (r == LINE_TOO_LONG) {
      if (respond_invalid(c, "request line longer than 1 MiB") < 0)
        break;
      continue;
    }
    if (blank(line))
      continue;
    if (handle_line(c, line, len) < 0)
      break;
  }
  if (c->fd >= 0) {
    host->log(ctl->inst, VMH_LOG_DEBUG, "connection on fd %d closed", c->fd);
    close(c->fd);
  }
  free(c->buf);
  c->buf = NULL;
  pthread_mutex_lock(&ctl->lock);
  c->finished = true;
  pthread_mutex_unlock(&ctl->lock);
  return NULL;
}

/* ---- Listener ------------------------------------------------------------
 */

/* Join the connections whose threads have ended (all of them with
 * `all`, once no new one can come). */
static void reap(struct ctl *ctl, bool all) {
  for (;;) {
    struct conn *done = NULL;
    pthread_mutex_lock(&ctl->lock);
    for (struct conn **pp = &ctl->conns; *pp; pp = &(*pp)->next) {
      if (all || (*pp)->finished) {
        done = *pp;
        *pp = done->next;
        break;
      }
    }
    pthread_mutex_unlock(&ctl->lock);
    if (!done)
      return;
    pthread_join(done->thread, NULL);
    free(done);
  }
}

static void *accept_main(void *arg) {
  struct ctl *ctl = arg;
  for (;;) {
    struct pollfd p[2] = {{.fd = ctl->listen_fd, .events = POLLIN},
                          {.fd = ctl->stop_fd, .events = POLLIN}};
    int n = poll(p, 2, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 || p[1].revents)
      break;
    reap(ctl, false);
    int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
        continue;
      host->log(ctl->inst, VMH_LOG_WARN, "accept on %s: %s", ctl->path,
                strerror(errno));
      /* Out of descriptors, say: wait a little instead of spinning. */
      if (poll(&p[1], 1, 100) > 0)
        break;
      continue;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->ctl = ctl;
    c->fd = fd;
    /* Listed before the thread starts, so that its end finds it. */
    pthread_mutex_lock(&ctl->lock);
    c->next = ctl->conns;
    ctl->conns = c;
    int r = pthread_create(&c->thread, NULL, conn_main, c);
    if (r) {
      ctl->conns = c->next;
      pthread_mutex_unlock(&ctl->lock);
      host->log(ctl->inst, VMH_LOG_WARN, "cannot start a connection thread: %s",
                strerror(r));
      close(fd);
      free(c);
      continue;
    }
    pthread_mutex_unlock(&ctl->lock);
    host->log(ctl->inst, VMH_LOG_DEBUG, "connection on fd %d", fd);
  }
  return NULL;
}

/* ---- Plugin operations ---------------------------------------------------
 */

static int ctl_load(const struct vmh_host *h) {
  host = h;
  return 0;
}

static int ctl_open(const struct vmh_host *h, const struct vmh_instance *inst,
                    const struct vmh_config *config, void **ret_handle,
                    uint32_t flags) {
  const char *path, *mode;
  int r;
  if (flags & ~VMH_OPEN_CHECK_ONLY) {
    h->error("unknown flags 0x%" PRIx32, flags & ~VMH_OPEN_CHECK_ONLY);
    return VMH_EINVAL;
  }
  if ((r = h->config_string(config, "socket", NULL, &path, VMH_CFG_REQUIRED)) <
          0 ||
      (r = h->config_string(config, "mode", "0600", &mode, 0)) < 0)
    return r;
  struct sockaddr_un sun;
  if (!path[0] || strlen(path) >= sizeof sun.sun_path) {
    h->error("%s: socket path must have 1 to %zu bytes",
             h->config_where(config), sizeof sun.sun_path - 1);
    return VMH_EINVAL;
  }
  /* Octal digits only, as chmod(1) takes them; no file-type bits. */
  char *end;
  errno = 0;
  unsigned long m = strtoul(mode, &end, 8);
  if (!mode[0] || *end || errno || mode[0] == '-' || mode[0] == '+' ||
      mode[0] == ' ' || m > 07777) {
    h->error("%s: mode '%s' must be octal permissions such as 0660",
             h->config_where(config), mode);
    return VMH_EINVAL;
  }
  struct ctl *ctl = calloc(1, sizeof *ctl);
  if (!ctl) {
    h->error("out of memory");
    return VMH_ENOMEM;
  }
  ctl->inst = inst;
  ctl->path = path;
  ctl->mode = (mode_t)m;
  ctl->listen_fd = -1;
  ctl->stop_fd = -1;
  pthread_mutex_init(&ctl->lock, NULL);
  *ret_handle = ctl;
  return 0;
}

/* Close the listener and remove its socket file, if it is still ours. */
static void unlisten(struct ctl *ctl) {
  struct stat st;
  if (ctl->listen_fd >= 0) {
    close(ctl->listen_fd);
    ctl->listen_fd = -1;
    if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->sock_dev &&
        st.st_ino == ctl->sock_ino)
      unlink(ctl->path);
  }
  if (ctl->stop_fd >= 0) {
    close(ctl->stop_fd);
    ctl->stop_fd = -1;
  }
}

/* A socket file left by a daemon that died is removed; anything else at
 * the path is refused rather than deleted. */
static int clear_stale(const struct ctl *ctl) {
  struct stat st;
  if (lstat(ctl->path, &st) < 0) {
    if (errno == ENOENT)
      return 0;
    host->error("%s: %s", ctl->path, strerror(errno));
    return VMH_EIO;
  }
  if (!S_ISSOCK(st.st_mode)) {
    host->error(
        "%s exists and is not a socket; remove it or choose "
        "another path",
        ctl->path);
    return VMH_EEXIST;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, ctl->path, strlen(ctl->path) + 1);
    int live = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
    close(fd);
    if (live) {
      host->error("%s: another process is listening on it", ctl->path);
      return VMH_EBUSY;
    }
  }
  if (unlink(ctl->path) < 0 && errno != ENOENT) {
    host->error("cannot remove the stale socket %s: %s", ctl->path,
                strerror(errno));
    return VMH_EIO;
  }
  return 0;
}

static int ctl_start(void *handle, const struct vmh_core *core,
                     uint32_t flags) {
  struct ctl *ctl = handle;
  struct stat st;
  int r;
  if (flags) {
    host->error("unknown flags 0x%" PRIx32, flags);
    return VMH_EINVAL;
  }
  if (ctl->running) {
    host->error("already started");
    return VMH_ESTATE;
  }
  if (!core || !CORE_HAS(core, error_name) || !CORE_HAS(core, http_status)) {
    host->error("the core table lacks error_name or http_status");
    return VMH_EINVAL;
  }
  ctl->core = core;
  atomic_store(&ctl->stopping, false);
  ctl->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (ctl->stop_fd < 0) {
    host->error("eventfd: %s", strerror(errno));
    return VMH_EIO;
  }
  if ((r = clear_stale(ctl)) < 0)
    goto fail;
  ctl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ctl->listen_fd < 0) {
    host->error("socket: %s", strerror(errno));
    r = VMH_EIO;
    goto fail;
  }
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  memcpy(sun.sun_path, ctl->path, strlen(ctl->path) + 1);
  if (bind(ctl->listen_fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
    host->error("cannot bind %s: %s", ctl->path, strerror(errno));
    close(ctl->listen_fd);
    ctl->listen_fd = -1;
    r = VMH_EIO;
    goto fail;
  }
  /* chmod before listen: until listen() nobody can connect, so there is
   * no window with the wrong permissions. */
  if (lstat(ctl->path, &st) < 0 || chmod(ctl->path, ctl->mode) < 0 ||
      listen(ctl->listen_fd, SOMAXCONN) < 0) {
    host->error("cannot listen on %s: %s", ctl->path, strerror(errno));
    r = VMH_EIO;
    goto fail_unlink;
  }
  ctl->sock_dev = st.st_dev;
  ctl->sock_ino = st.st_ino;
  if ((r = pthread_create(&ctl->acceptor, NULL, accept_main, ctl)) != 0) {
    host->error("cannot start the accept thread: %s", strerror(r));
    r = VMH_EIO;
    goto fail_unlink;
  }
  ctl->running = true;
  host->log(ctl->inst, VMH_LOG_INFO, "listening on %s (mode %04o)", ctl->path,
            (unsigned)ctl->mode);
  return 0;

fail_unlink:
  close(ctl->listen_fd);
  ctl->listen_fd = -1;
  unlink(ctl->path);
fail:
  unlisten(ctl);
  return r;
}

static void ctl_stop(void *handle, uint32_t flags) {
  struct ctl *ctl = handle;
  (void)flags; /* none defined, and stop() cannot refuse */
  if (!ctl->running)
    return;
  atomic_store(&ctl->stopping, true);
  eventfd_write(ctl->stop_fd, 1);
  /* The acceptor first, so that the list of connections stops growing;
   * then every connection, each of which finishes the core call it may
   * be waiting on (the core drains its workers only after stop()). */
  pthread_join(ctl->acceptor, NULL);
  reap(ctl, true);
  unlisten(ctl);
  ctl->running = false;
  host->log(ctl->inst, VMH_LOG_INFO, "stopped");
}

static void ctl_close(void *handle) {
  struct ctl *ctl = handle;
  if (!ctl)
    return;
  ctl_stop(ctl, 0);
  pthread_mutex_destroy(&ctl->lock);
  free(ctl);
}

static struct vmh_frontend_ops ops = {
    .open = ctl_open,
    .close = ctl_close,
    .start = ctl_start,
    .stop = ctl_stop,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_FRONTEND,
    .name = "ctl",
    .version = "1.0",
    .description = "test-only control socket: newline-delimited JSON",
    .load = ctl_load,
    .frontend = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
