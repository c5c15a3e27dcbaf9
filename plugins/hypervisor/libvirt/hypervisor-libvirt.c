/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hypervisor-libvirt — VMs as libvirt domains.
 *
 * One connection per instance (libvirt connections are thread-safe, so the
 * plugin runs PARALLEL; the core still serializes operations on one VM).
 * Domain XML comes from lv-xml.c.  Lifecycle events arrive on libvirt's
 * default event loop, which runs in one thread of ours shared by every
 * instance of the process (libvirt allows one event loop implementation per
 * process); the same thread reconnects a lost connection with backoff.
 *
 * Config keys (etc/plugins/libvirt.yaml):
 *   uri               libvirt URI (qemu:///system)
 *   domain_type       auto | kvm | qemu | any type the driver offers (auto)
 *   machine           machine type (libvirt's default)
 *   emulator          emulator path (libvirt's default)
 *   channel_dir       where guest-channel and console sockets and
 *                     cloud-init seed images go (the instance's state dir)
 *   shutdown_timeout  seconds a graceful stop waits when the caller gives
 *                     no timeout (60)
 */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lv-xml.h"
#include "seediso.h"

#define ERRLEN 1024
/* Reconnect backoff, milliseconds. */
#define BACKOFF_MIN 250
#define BACKOFF_MAX 30000
/* How often a graceful stop looks at the domain's state. */
#define STOP_POLL_NS 100000000L

static const struct vmh_host *host;

/* What we know of a domain without asking libvirt: its last start as far
 * as we saw it (libvirt has no uptime) and its guest-channel socket (from
 * the spec we defined it with, or read once from its XML). */
struct known {
  char uuid[VIR_UUID_STRING_BUFLEN];
  uint64_t started_ns; /* 0: not running as far as we saw */
  int chan_known;      /* chan is set (NULL: the domain has no channel) */
  char *chan;
};

struct hv {
  const struct vmh_instance *inst;
  const char *uri, *type_cfg, *machine, *emulator, *channel_dir;
  int64_t shutdown_timeout;
  char *domain_type; /* the type chosen at open */

  pthread_mutex_t lock; /* conn, lost, timer, cb_id, known, closing … */
  pthread_cond_t cond;  /* reconnecting went 0 */
  virConnectPtr conn;   /* NULL while disconnected */
  int lost;             /* the close callback fired: reconnect pending */
  int closing;          /* close() began: no more reconnects */
  int reconnecting;     /* reconnect_cb runs on the event thread */
  int timer;            /* reconnect timer, -1: none */
  int backoff_ms;
  int cb_id; /* lifecycle callback, -1: none */
  struct known *known;
  size_t n_known;
  int loop_ref; /* holds a reference on the shared event loop */
};

/* ---- Errors -------------------------------------------------------------- */

/* libvirt would print every error to stderr; the plugin reports them
 * itself, through the operation's error. */
static void quiet(void *opaque, virErrorPtr err) {
  (void)opaque;
  (void)err;
}

static int is_conn_error(const virError *e) {
  return e->domain == VIR_FROM_RPC || e->code == VIR_ERR_NO_CONNECT ||
         e->code == VIR_ERR_INVALID_CONN || e->code == VIR_ERR_RPC ||
         e->code == VIR_ERR_AUTH_FAILED || e->code == VIR_ERR_AUTH_CANCELLED;
}

/* The VMH code for libvirt's last error on this thread, with its message
 * after `what`. */
static int lv_fail(struct hv *h, const char *what) {
  virErrorPtr e = virGetLastError();
  const char *msg = e && e->message ? e->message : "unknown libvirt error";
  int code = VMH_EIO;

  if (e != NULL) {
    switch (e->code) {
      case VIR_ERR_NO_DOMAIN:
      case VIR_ERR_NO_DOMAIN_SNAPSHOT:
      case VIR_ERR_NO_SECRET:
        code = VMH_ENOENT;
        break;
      case VIR_ERR_OPERATION_INVALID:
        code = VMH_ESTATE;
        break;
      case VIR_ERR_OPERATION_UNSUPPORTED:
      case VIR_ERR_NO_SUPPORT:
        code = VMH_ENOTSUP;
        break;
      case VIR_ERR_DOM_EXIST:
        code = VMH_EEXIST;
        break;
      case VIR_ERR_XML_ERROR:
      case VIR_ERR_XML_DETAIL:
      case VIR_ERR_CONFIG_UNSUPPORTED:
      case VIR_ERR_INVALID_ARG:
        code = VMH_EINVAL;
        break;
      case VIR_ERR_OPERATION_TIMEOUT:
      case VIR_ERR_AGENT_UNRESPONSIVE:
        code = VMH_ETIMEDOUT;
        break;
      case VIR_ERR_OPERATION_DENIED:
      case VIR_ERR_ACCESS_DENIED:
        code = VMH_EPERM;
        break;
      default:
        break;
    }
    if (is_conn_error(e))
      return vmh_fail(host, VMH_EIO, "%s: libvirt at %s unavailable: %s", what,
                      h->uri, msg);
  }
  return vmh_fail(host, code, "%s: %s", what, msg);
}

static uint64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- The shared event loop ----------------------------------------------
 * libvirt takes one event loop implementation per process, registered
 * before the first connection; the first instance starts the thread, the
 * last one stops it. */

static pthread_mutex_t loop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t loop_thread;
static unsigned loop_users;
static atomic_int loop_run;
static int loop_registered;

static void *loop_main(void *arg) {
  (void)arg;
  /* libvirt wakes this loop for each domain event it queues; the events
   * can wait until the worker that caused them finishes its request, so
   * the loop does not preempt it (SCHED_BATCH: no wake-up preemption). */
  pthread_setschedparam(pthread_self(), SCHED_BATCH,
                        &(struct sched_param){.sched_priority = 0});
  while (atomic_load(&loop_run)) {
    if (virEventRunDefaultImpl() < 0)
      host->log(NULL, VMH_LOG_ERROR, "libvirt event loop: %s",
                virGetLastErrorMessage());
  }
  return NULL;
}

static void wake_cb(int timer, void *opaque) {
  (void)opaque;
  virEventRemoveTimeout(timer);
}

static int loop_get(void) {
  int rc = 0;

  pthread_mutex_lock(&loop_lock);
  if (!loop_registered) {
    if (virEventRegisterDefaultImpl() < 0) {
      rc = vmh_fail(host, VMH_EINTERNAL, "libvirt event loop: %s",
                    virGetLastErrorMessage());
      goto out;
    }
    loop_registered = 1;
  }
  if (loop_users == 0) {
    atomic_store(&loop_run, 1);
    if (pthread_create(&loop_thread, NULL, loop_main, NULL) != 0) {
      rc = vmh_fail(host, VMH_EINTERNAL,
                    "cannot start the libvirt event thread");
      goto out;
    }
  }
  loop_users++;
out:
  pthread_mutex_unlock(&loop_lock);
  return rc;
}

static void loop_put(void) {
  pthread_mutex_lock(&loop_lock);
  if (--loop_users == 0) {
    atomic_store(&loop_run, 0);
    /* A timer due at once ends the thread's current iteration. */
    if (virEventAddTimeout(0, wake_cb, NULL, NULL) < 0)
      host->log(NULL, VMH_LOG_ERROR, "cannot wake the libvirt event thread");
    pthread_join(loop_thread, NULL);
  }
  pthread_mutex_unlock(&loop_lock);
}

/* ---- What we know of each domain ----------------------------------------- */

/* The entry of uuid, made when add; NULL when absent or out of memory (the
 * caller then asks libvirt or goes without: not worth failing for).
 * Called with h->lock held. */
static struct known *known_find(struct hv *h, const char *uuid, int add) {
  struct known *n;
  size_t i;

  for (i = 0; i < h->n_known; i++)
    if (strcmp(h->known[i].uuid, uuid) == 0)
      return &h->known[i];
  if (!add)
    return NULL;
  n = realloc(h->known, (h->n_known + 1) * sizeof *h->known);
  if (n == NULL)
    return NULL;
  h->known = n;
  n = &h->known[h->n_known++];
  memset(n, 0, sizeof *n);
  snprintf(n->uuid, sizeof n->uuid, "%s", uuid);
  return n;
}

/* Drops what we know of an undefined domain. */
static void forget(struct hv *h, const char *uuid) {
  struct known *k;

  pthread_mutex_lock(&h->lock);
  if ((k = known_find(h, uuid, 0)) != NULL) {
    free(k->chan);
    *k = h->known[--h->n_known];
  }
  pthread_mutex_unlock(&h->lock);
}

static void mark_started(struct hv *h, const char *uuid, int running) {
  struct known *k;

  pthread_mutex_lock(&h->lock);
  if ((k = known_find(h, uuid, running)) != NULL)
    k->started_ns = running ? now_ns() : 0;
  pthread_mutex_unlock(&h->lock);
}

static uint64_t uptime_s(struct hv *h, const char *uuid) {
  struct known *k;
  uint64_t up = 0;

  pthread_mutex_lock(&h->lock);
  if ((k = known_find(h, uuid, 0)) != NULL && k->started_ns > 0)
    up = (now_ns() - k->started_ns) / 1000000000u;
  pthread_mutex_unlock(&h->lock);
  return up;
}

/* Records a domain's channel socket (NULL: none). */
static void set_channel(struct hv *h, const char *uuid, const char *chan) {
  struct known *k;
  char *copy = chan != NULL ? strdup(chan) : NULL;

  if (chan != NULL && copy == NULL)
    return;
  pthread_mutex_lock(&h->lock);
  if ((k = known_find(h, uuid, 1)) != NULL) {
    free(k->chan);
    k->chan = copy;
    k->chan_known = 1;
    copy = NULL;
  }
  pthread_mutex_unlock(&h->lock);
  free(copy);
}

/* Makes the next report read the domain's channel from its XML. */
static void set_channel_unknown(struct hv *h, const char *uuid) {
  struct known *k;

  pthread_mutex_lock(&h->lock);
  if ((k = known_find(h, uuid, 0)) != NULL) {
    free(k->chan);
    k->chan = NULL;
    k->chan_known = 0;
  }
  pthread_mutex_unlock(&h->lock);
}

/* A copy of the channel socket we know for uuid in *ret; 0 when unknown. */
static int get_channel(struct hv *h, const char *uuid, char **ret) {
  struct known *k;
  int found = 0;

  *ret = NULL;
  pthread_mutex_lock(&h->lock);
  if ((k = known_find(h, uuid, 0)) != NULL && k->chan_known) {
    found = 1;
    if (k->chan != NULL)
      *ret = strdup(k->chan);
  }
  pthread_mutex_unlock(&h->lock);
  return found;
}

/* ---- Events -------------------------------------------------------------- */

static uint32_t state_of(int st) {
  switch (st) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:
      return VMH_VM_RUNNING;
    case VIR_DOMAIN_PAUSED:
      return VMH_VM_PAUSED;
    case VIR_DOMAIN_PMSUSPENDED:
      return VMH_VM_SUSPENDED;
    case VIR_DOMAIN_CRASHED:
      return VMH_VM_CRASHED;
    case VIR_DOMAIN_SHUTDOWN: /* on its way down: still running */
      return VMH_VM_RUNNING;
    case VIR_DOMAIN_SHUTOFF:
      return VMH_VM_STOPPED;
    default:
      return VMH_VM_UNKNOWN;
  }
}

static int lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event,
                        int detail, void *opaque) {
  struct hv *h = opaque;
  char uuid[VIR_UUID_STRING_BUFLEN];
  struct vmh_event ev = {0};
  const char *reason;
  (void)conn;

  if (virDomainGetUUIDString(dom, uuid) < 0)
    return 0;
  ev.struct_size = sizeof ev;
  ev.type = VMH_EVENT_VM_STATE;
  ev.vm_id = uuid;
  switch (event) {
    case VIR_DOMAIN_EVENT_STARTED:
      ev.state = VMH_VM_RUNNING;
      reason = detail == VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT ? "snapshot"
               : detail == VIR_DOMAIN_EVENT_STARTED_RESTORED    ? "restored"
                                                                : "booted";
      mark_started(h, uuid, 1);
      break;
    case VIR_DOMAIN_EVENT_SUSPENDED:
      ev.state = VMH_VM_PAUSED;
      reason =
          detail == VIR_DOMAIN_EVENT_SUSPENDED_IOERROR ? "io-error" : "paused";
      break;
    case VIR_DOMAIN_EVENT_RESUMED:
      ev.state = VMH_VM_RUNNING;
      reason = "resumed";
      break;
    case VIR_DOMAIN_EVENT_PMSUSPENDED:
      ev.state = VMH_VM_SUSPENDED;
      reason = "pm-suspended";
      break;
    case VIR_DOMAIN_EVENT_CRASHED:
      ev.state = VMH_VM_CRASHED;
      reason = "crashed";
      break;
    case VIR_DOMAIN_EVENT_STOPPED:
      ev.state = detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED ? VMH_VM_CRASHED
                                                            : VMH_VM_STOPPED;
      reason = detail == VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN        ? "shutdown"
               : detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED     ? "destroyed"
               : detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED       ? "crashed"
               : detail == VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT ? "snapshot"
                                                                  : "stopped";
      mark_started(h, uuid, 0);
      break;
    case VIR_DOMAIN_EVENT_DEFINED:
      /* Redefined behind our back: its channel may have moved. */
      if (detail == VIR_DOMAIN_EVENT_DEFINED_UPDATED)
        set_channel_unknown(h, uuid);
      return 0;
    case VIR_DOMAIN_EVENT_UNDEFINED:
      forget(h, uuid);
      return 0;
    default:
      /* SHUTDOWN (the guest is going down: STOPPED follows). */
      return 0;
  }
  ev.reason = reason;
  host->log(h->inst, VMH_LOG_DEBUG, "domain %s: event %d/%d → state %u (%s)",
            uuid, event, detail, ev.state, reason);
  host->emit(h->inst, &ev);
  return 0;
}

/* ---- Connection ---------------------------------------------------------- */

static void close_cb(virConnectPtr conn, int reason, void *opaque);

/* Opens a connection with our callbacks.  Called without h->lock: an
 * open may take long, and operations must meanwhile fail fast. */
static int open_link(struct hv *h, virConnectPtr *ret, int *ret_cb) {
  virConnectPtr c = virConnectOpen(h->uri);
  int cb;

  if (c == NULL)
    return lv_fail(h, "connect");
  virConnSetErrorFunc(c, NULL, quiet);
  cb = virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                        VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb),
                                        h, NULL);
  if (cb < 0) {
    int rc = lv_fail(h, "register for domain events");
    virConnectClose(c);
    return rc;
  }
  /* Drivers without a remote end (test:///, embed) have no close
   * callback: they never disconnect. */
  if (virConnectRegisterCloseCallback(c, close_cb, h, NULL) < 0)
    virResetLastError();
  *ret = c;
  *ret_cb = cb;
  return 0;
}

static void close_link(virConnectPtr c, int cb) {
  if (c == NULL)
    return;
  if (cb >= 0)
    virConnectDomainEventDeregisterAny(c, cb);
  virConnectUnregisterCloseCallback(c, close_cb);
  virConnectClose(c);
  virResetLastError();
}

static void reconnect_cb(int timer, void *opaque) {
  struct hv *h = opaque;
  virConnectPtr old, c = NULL;
  int old_cb, cb = -1, rc;

  pthread_mutex_lock(&h->lock);
  if (h->closing) {
    pthread_mutex_unlock(&h->lock);
    return;
  }
  h->reconnecting = 1;
  old = h->conn;
  old_cb = h->cb_id;
  h->conn = NULL;
  h->cb_id = -1;
  pthread_mutex_unlock(&h->lock);

  close_link(old, old_cb);
  rc = open_link(h, &c, &cb);

  pthread_mutex_lock(&h->lock);
  if (rc == 0 && !h->closing) {
    h->conn = c;
    h->cb_id = cb;
    h->lost = 0;
    c = NULL;
    virEventRemoveTimeout(timer);
    h->timer = -1;
    h->backoff_ms = BACKOFF_MIN;
    host->log(h->inst, VMH_LOG_INFO, "reconnected to %s", h->uri);
  } else if (rc < 0) {
    h->backoff_ms =
        h->backoff_ms * 2 > BACKOFF_MAX ? BACKOFF_MAX : h->backoff_ms * 2;
    host->log(h->inst, VMH_LOG_WARN,
              "reconnect to %s failed (%s); next try in %d ms", h->uri,
              virGetLastErrorMessage(), h->backoff_ms);
    virEventUpdateTimeout(timer, h->backoff_ms);
  }
  h->reconnecting = 0;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
  /* Opened while close() began: not ours to keep. */
  close_link(c, cb);
}

/* On the event thread, when libvirtd went away.  Operations fail fast from
 * now on; the reconnect timer does the rest (libvirt forbids closing the
 * connection from inside this callback). */
static void close_cb(virConnectPtr conn, int reason, void *opaque) {
  struct hv *h = opaque;
  (void)conn;

  pthread_mutex_lock(&h->lock);
  if (!h->lost && !h->closing) {
    h->lost = 1;
    h->backoff_ms = BACKOFF_MIN;
    host->log(h->inst, VMH_LOG_WARN,
              "connection to %s lost (reason %d); reconnecting", h->uri,
              reason);
    if (h->timer < 0)
      h->timer = virEventAddTimeout(h->backoff_ms, reconnect_cb, h, NULL);
  }
  pthread_mutex_unlock(&h->lock);
}

/* A reference on the live connection for one operation; release with
 * virConnectClose. */
static int get_conn(struct hv *h, virConnectPtr *ret) {
  virConnectPtr c = NULL;

  pthread_mutex_lock(&h->lock);
  if (!h->lost && h->conn != NULL && virConnectRef(h->conn) == 0)
    c = h->conn;
  pthread_mutex_unlock(&h->lock);
  if (c == NULL)
    return vmh_fail(host, VMH_EIO, "libvirt at %s unavailable (reconnecting)",
                    h->uri);
  *ret = c;
  return 0;
}

/* The domain of vm_id, with a reference on the connection in *conn. */
static int get_dom(struct hv *h, const char *vm_id, virConnectPtr *conn,
                   virDomainPtr *dom) {
  int rc;

  if (vm_id == NULL)
    return vmh_fail(host, VMH_EINVAL, "no VM id");
  if ((rc = get_conn(h, conn)) < 0)
    return rc;
  *dom = virDomainLookupByUUIDString(*conn, vm_id);
  if (*dom == NULL) {
    virErrorPtr e = virGetLastError();
    if (e != NULL &&
        (e->code == VIR_ERR_NO_DOMAIN || e->code == VIR_ERR_INVALID_ARG))
      rc = vmh_fail(host, VMH_ENOENT, "no VM %s in %s", vm_id, h->uri);
    else
      rc = lv_fail(h, "look up the domain");
    virConnectClose(*conn);
    *conn = NULL;
    return rc;
  }
  return 0;
}

static void put_dom(virConnectPtr conn, virDomainPtr dom) {
  if (dom != NULL)
    virDomainFree(dom);
  if (conn != NULL)
    virConnectClose(conn);
}

/* ---- XML helpers --------------------------------------------------------- */

/* The string at an XPath in a document (malloc'ed), or NULL. */
static char *xpath_str(xmlDocPtr doc, const char *expr) {
  xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
  xmlXPathObjectPtr obj = NULL;
  char *s = NULL;

  if (ctx == NULL)
    return NULL;
  obj = xmlXPathEvalExpression(BAD_CAST expr, ctx);
  if (obj != NULL && obj->type == XPATH_NODESET && obj->nodesetval &&
      obj->nodesetval->nodeNr > 0) {
    xmlChar *c = xmlNodeGetContent(obj->nodesetval->nodeTab[0]);
    if (c != NULL)
      s = strdup((const char *)c);
    xmlFree(c);
  }
  xmlXPathFreeObject(obj);
  xmlXPathFreeContext(ctx);
  return s;
}

static xmlDocPtr parse_xml(const char *xml) {
  return xmlReadMemory(
      xml, (int)strlen(xml), "libvirt.xml", NULL,
      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static xmlDocPtr dom_xml(virDomainPtr dom, unsigned flags) {
  char *xml = virDomainGetXMLDesc(dom, flags);
  xmlDocPtr doc;

  if (xml == NULL)
    return NULL;
  doc = parse_xml(xml);
  free(xml);
  return doc;
}

/* ---- Paths --------------------------------------------------------------- */

/* The files a VM has under channel_dir: <id>.<suffix>. */
static const char *const vm_files[] = {"agent", "console", "seed.iso"};

/* Every one must fit a unix socket path, since the sockets do. */
static int vm_path(struct hv *h, const char *vm_id, const char *suffix,
                   char *buf, size_t size) {
  int n = snprintf(buf, size, "%s/%s.%s", h->channel_dir, vm_id, suffix);

  if (n < 0 || (size_t)n >= size ||
      (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return vmh_fail(host, VMH_EINVAL,
                    "channel_dir '%s' is too long for a unix socket path",
                    h->channel_dir);
  return 0;
}

/* Writes the cloud-init seed of a spec to path. */
static int make_seed(const struct vmh_vm_spec *spec, const char *path) {
  char err[ERRLEN];
  int rc = seed_for_spec(spec, path, err, sizeof err);

  return rc < 0 ? vmh_fail(host, rc, "%s", err) : 0;
}

/* ---- Operations ---------------------------------------------------------- */

static int hv_health(void *handle, uint32_t flags) {
  struct hv *h = handle;
  virConnectPtr c;
  int rc, alive;

  if ((rc = vmh_check_flags(host, "health", flags, 0)) < 0 ||
      (rc = get_conn(h, &c)) < 0)
    return rc;
  alive = virConnectIsAlive(c);
  if (alive < 0)
    rc = lv_fail(h, "health");
  else if (alive == 0)
    rc = vmh_fail(host, VMH_EIO, "libvirt at %s unavailable", h->uri);
  virConnectClose(c);
  return rc;
}

static int hv_caps(void *handle, struct vmh_hypervisor_caps *ret,
                   uint32_t flags) {
  struct hv *h = handle;
  virConnectPtr c;
  int rc, n;

  if ((rc = vmh_check_flags(host, "caps", flags, 0)) < 0)
    return rc;
  if (ret == NULL || !VMH_HAS_FIELD(ret, max_memory))
    return vmh_fail(host, VMH_EINVAL, "caps: struct too small");
  if ((rc = get_conn(h, &c)) < 0)
    return rc;
  ret->source_types =
      VMH_SOURCE_BIT(VMH_SOURCE_FILE) | VMH_SOURCE_BIT(VMH_SOURCE_BLOCK) |
      VMH_SOURCE_BIT(VMH_SOURCE_RBD) | VMH_SOURCE_BIT(VMH_SOURCE_ISCSI) |
      VMH_SOURCE_BIT(VMH_SOURCE_NFS);
  ret->binding_types = (UINT32_C(1) << VMH_BINDING_BRIDGE) |
                       (UINT32_C(1) << VMH_BINDING_OVS) |
                       (UINT32_C(1) << VMH_BINDING_TAP);
  ret->channel_type = VMH_CHANNEL_UNIX;
  ret->features =
      VMH_HV_SNAPSHOTS | VMH_HV_HOTPLUG_DISK | VMH_HV_PAUSE | VMH_HV_CONSOLE;
  n = virConnectGetMaxVcpus(c, h->domain_type);
  if (n > 0)
    ret->max_vcpus = (uint32_t)n;
  virResetLastError();
  ret->max_memory = 0;
  /* The node the connection's domains run on (another machine for a
   * remote URI, a simulated one for test:///), for admission control. */
  virNodeInfo ni;
  if (VMH_HAS_FIELD(ret, host_memory) && virNodeGetInfo(c, &ni) == 0) {
    ret->host_cpus = ni.cpus;
    ret->host_memory = (uint64_t)ni.memory * 1024;
  }
  virResetLastError();
  virConnectClose(c);
  return 0;
}

/* Decodes base64 (a Ceph key is stored base64-encoded; libvirt wants the
 * raw bytes).  Returns the length, or -1 on a bad character. */
static long unbase64(const char *in, unsigned char *out, size_t size) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;

  for (; *in && *in != '='; in++) {
    const char *p = strchr(tab, *in);
    if (p == NULL || *in == '\0')
      return -1;
    acc = (acc << 6) | (uint32_t)(p - tab);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n == size)
        return -1;
      out[n++] = (unsigned char)(acc >> bits);
    }
  }
  return (long)n;
}

/* Removes the secrets define_secrets made for vm_id (all disks). */
static void drop_secrets(virConnectPtr c, const struct vmh_vm_spec *spec,
                         const char *vm_id, const char *disk) {
  char usage[256];
  uint32_t i;

  for (i = 0; spec == NULL || i < spec->n_disks; i++) {
    const struct vmh_disk *d = spec ? &spec->disks[i] : NULL;
    const char *name = d ? d->name : disk;
    uint32_t t = d && d->source ? d->source->type : VMH_SOURCE_RBD;
    int types[2] = {VIR_SECRET_USAGE_TYPE_CEPH, VIR_SECRET_USAGE_TYPE_ISCSI};
    int k;

    if (d != NULL && (d->source == NULL || d->source->auth_secret == NULL ||
                      (t != VMH_SOURCE_RBD && t != VMH_SOURCE_ISCSI)))
      continue;
    if (lvx_secret_usage(vm_id, name, usage, sizeof usage) < 0)
      continue;
    for (k = 0; k < 2; k++) {
      virSecretPtr s = virSecretLookupByUsage(c, types[k], usage);
      if (s != NULL) {
        virSecretUndefine(s);
        virSecretFree(s);
      }
    }
    virResetLastError();
    if (spec == NULL)
      break;
  }
}

/* One libvirt secret per disk with credentials: domain XML only names it. */
static int define_secret(struct hv *h, virConnectPtr c, const char *vm_id,
                         const struct vmh_disk *d) {
  const struct vmh_disk_source *s = d->source;
  unsigned char val[512];
  char err[ERRLEN], *xml = NULL;
  virSecretPtr sec = NULL;
  long n;
  int rc;

  if (s == NULL || s->auth_secret == NULL ||
      (s->type != VMH_SOURCE_RBD && s->type != VMH_SOURCE_ISCSI))
    return 0;
  if (s->type == VMH_SOURCE_RBD) {
    n = unbase64(s->auth_secret, val, sizeof val);
    if (n < 0)
      return vmh_fail(host, VMH_EINVAL, "disk %s: the RBD key is not base64",
                      d->name);
  } else {
    n = (long)strlen(s->auth_secret);
    if ((size_t)n > sizeof val)
      return vmh_fail(host, VMH_EINVAL, "disk %s: CHAP secret too long",
                      d->name);
    memcpy(val, s->auth_secret, (size_t)n);
  }
  if ((rc = lvx_secret(vm_id, d->name, s->type, &xml, err, sizeof err)) < 0)
    return vmh_fail(host, rc, "%s", err);
  sec = virSecretDefineXML(c, xml, 0);
  if (sec == NULL) {
    rc = lv_fail(h, "define the disk's secret");
    goto out;
  }
  if (virSecretSetValue(sec, val, (size_t)n, 0) < 0) {
    rc = lv_fail(h, "set the disk's secret");
    virSecretUndefine(sec);
  }
out:
  if (sec != NULL)
    virSecretFree(sec);
  memset(val, 0, sizeof val);
  free(xml);
  return rc;
}

/* Undefines with everything libvirt keeps beside the definition (snapshot
 * and checkpoint metadata, managed save, NVRAM); libvirt's error stays
 * the thread's last. */
static int undefine_raw(virDomainPtr dom) {
  unsigned fl = VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_NVRAM |
                VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;

  if (virDomainUndefineFlags(dom, fl) == 0)
    return 0;
  /* Drivers that know no NVRAM or checkpoints (the test driver) refuse
   * the flags; ask again with what every driver knows. */
  if (virGetLastErrorCode() == VIR_ERR_INVALID_ARG ||
      virGetLastErrorCode() == VIR_ERR_NO_SUPPORT) {
    fl = VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
         VIR_DOMAIN_UNDEFINE_MANAGED_SAVE;
    if (virDomainUndefineFlags(dom, fl) == 0)
      return 0;
  }
  return -1;
}

static int hv_define(void *handle, const struct vmh_vm_spec *spec,
                     uint32_t flags) {
  struct hv *h = handle;
  char err[ERRLEN], chan[PATH_MAX], cons[PATH_MAX], seed[PATH_MAX];
  struct lvx_opts o = {0};
  virConnectPtr c = NULL;
  virDomainPtr dom = NULL;
  char *xml = NULL;
  int seeded = 0;
  uint32_t i;
  int rc;

  if ((rc = vmh_check_flags(host, "define", flags, VMH_DEFINE_START)) < 0)
    return rc;
  if (spec == NULL || spec->id == NULL || spec->name == NULL)
    return vmh_fail(host, VMH_EINVAL, "define: no id or name");
  if ((rc = vm_path(h, spec->id, "agent", chan, sizeof chan)) < 0 ||
      (rc = vm_path(h, spec->id, "console", cons, sizeof cons)) < 0 ||
      (rc = vm_path(h, spec->id, "seed.iso", seed, sizeof seed)) < 0)
    return rc;
  o.domain_type = h->domain_type;
  o.machine = h->machine;
  o.emulator = h->emulator;
  o.channel_path = chan;
  o.console_path = cons;
  o.seed_path = seed_wanted(spec) ? seed : NULL;
  if ((rc = lvx_domain(spec, &o, &xml, err, sizeof err)) < 0)
    return vmh_fail(host, rc, "%s", err);
  if (mkdir(h->channel_dir, 0700) < 0 && errno != EEXIST) {
    rc = vmh_fail(host, VMH_EIO, "cannot make %s: %s", h->channel_dir,
                  strerror(errno));
    goto out;
  }
  if ((rc = get_conn(h, &c)) < 0)
    goto out;
  dom = virDomainLookupByUUIDString(c, spec->id);
  if (dom != NULL) {
    rc = vmh_fail(host, VMH_EEXIST, "VM %s is already defined", spec->id);
    goto out;
  }
  dom = virDomainLookupByName(c, spec->name);
  if (dom != NULL) {
    rc = vmh_fail(host, VMH_EEXIST, "a domain named '%s' already exists",
                  spec->name);
    goto out;
  }
  virResetLastError();
  if (seed_wanted(spec)) {
    if ((rc = make_seed(spec, seed)) < 0)
      goto out;
    seeded = 1;
  }
  for (i = 0; i < spec->n_disks; i++)
    if ((rc = define_secret(h, c, spec->id, &spec->disks[i])) < 0)
      goto undo;
  dom = virDomainDefineXML(c, xml);
  if (dom == NULL) {
    rc = lv_fail(h, "define the domain");
    goto undo;
  }
  if (flags & VMH_DEFINE_START) {
    if (virDomainCreate(dom) < 0) {
      rc = lv_fail(h, "start the new domain");
      /* Nothing of the VM may remain; the start's error is the one to
       * report. */
      undefine_raw(dom);
      goto undo;
    }
    mark_started(h, spec->id, 1);
  }
  set_channel(h, spec->id, spec->guest_channel ? chan : NULL);
  host->log(h->inst, VMH_LOG_DEBUG, "defined %s (%s)%s", spec->name, spec->id,
            flags & VMH_DEFINE_START ? " and started it" : "");
  goto out;
undo:
  drop_secrets(c, spec, spec->id, NULL);
  if (seeded)
    unlink(seed);
out:
  put_dom(c, dom);
  free(xml);
  return rc;
}

static int undefine_dom(struct hv *h, virDomainPtr dom) {
  if (undefine_raw(dom) == 0)
    return 0;
  return lv_fail(h, "undefine the domain");
}

/* Removes a VM's sockets and seed image; missing ones are fine. */
static void unlink_files(struct hv *h, const char *vm_id) {
  char p[PATH_MAX];
  size_t i;

  for (i = 0; i < sizeof vm_files / sizeof vm_files[0]; i++)
    if (snprintf(p, sizeof p, "%s/%s.%s", h->channel_dir, vm_id, vm_files[i]) <
        (int)sizeof p)
      unlink(p);
}

/* Removes every secret of ours for vm_id (usage "vmhost-<id>-<disk>"),
 * whatever disks the domain has now: no XML to read, and nothing left by
 * a disk detached earlier.  A driver without secrets has none of ours. */
static void drop_vm_secrets(virConnectPtr c, const char *vm_id) {
  virSecretPtr *secs = NULL;
  char prefix[256];
  size_t len;
  int n, i;

  if (lvx_secret_usage(vm_id, "", prefix, sizeof prefix) < 0)
    return;
  len = strlen(prefix);
  n = virConnectListAllSecrets(c, &secs, 0);
  for (i = 0; i < n; i++) {
    const char *usage = virSecretGetUsageID(secs[i]);
    if (usage != NULL && strncmp(usage, prefix, len) == 0)
      virSecretUndefine(secs[i]);
    virSecretFree(secs[i]);
  }
  free(secs);
  virResetLastError();
}

static int hv_undefine(void *handle, const char *vm_id, uint32_t flags) {
  struct hv *h = handle;
  virConnectPtr c = NULL;
  virDomainPtr dom = NULL;
  int rc;

  if ((rc = vmh_check_flags(host, "undefine", flags, 0)) < 0)
    return rc;
  if ((rc = get_dom(h, vm_id, &c, &dom)) < 0) {
    /* A domain already gone (a VM the core shows as missing) leaves its
     * files behind unless they go now; the id names files under our
     * directory only when it is a name. */
    if (rc == VMH_ENOENT && vmh_name_valid(vm_id))
      unlink_files(h, vm_id);
    return rc;
  }
  if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0) {
    rc = lv_fail(h, "power off before undefining");
    goto out;
  }
  drop_vm_secrets(c, vm_id);
  if ((rc = undefine_dom(h, dom)) < 0)
    goto out;
  forget(h, vm_id);
  unlink_files(h, vm_id);
  host->log(h->inst, VMH_LOG_DEBUG, "undefined %s", vm_id);
out:
  put_dom(c, dom);
  return rc;
}

static const char *vm_state_name(uint32_t s) {
  static const char *const names[] = {"unknown", "stopped",   "running",
                                      "paused",  "suspended", "crashed"};
  return s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

/* The domain's state, for the transition checks: libvirt's own checks
 * differ between drivers (the test driver reboots a paused domain). */
static int cur_state(struct hv *h, virDomainPtr dom, uint32_t *ret) {
  int st, reason;

  if (virDomainGetState(dom, &st, &reason, 0) < 0)
    return lv_fail(h, "read the domain's state");
  *ret = state_of(st);
  return 0;
}

enum action { A_START, A_STOP, A_REBOOT, A_PAUSE, A_RESUME };

static int act(struct hv *h, const char *vm_id, enum action a,
               uint32_t timeout_s, uint32_t flags) {
  static const char *const verbs[] = {"start", "stop", "reboot", "pause",
                                      "resume"};
  virConnectPtr c = NULL;
  virDomainPtr dom = NULL;
  uint32_t st = VMH_VM_UNKNOWN;
  int rc, ok;

  if ((rc = get_dom(h, vm_id, &c, &dom)) < 0)
    return rc;
  if ((rc = cur_state(h, dom, &st)) < 0)
    goto out;
  switch (a) {
    case A_START:
      ok = st == VMH_VM_STOPPED || st == VMH_VM_CRASHED;
      break;
    case A_STOP:
      ok = st != VMH_VM_STOPPED;
      break;
    case A_REBOOT:
    case A_PAUSE:
      ok = st == VMH_VM_RUNNING;
      break;
    case A_RESUME:
      ok = st == VMH_VM_PAUSED;
      break;
    default:
      ok = 0;
  }
  if (!ok) {
    rc = vmh_fail(host, VMH_ESTATE, "VM %s is %s: cannot %s", vm_id,
                  vm_state_name(st), verbs[a]);
    goto out;
  }
  switch (a) {
    case A_START:
      if (virDomainCreate(dom) < 0)
        rc = lv_fail(h, "start");
      else
        mark_started(h, vm_id, 1);
      break;
    case A_STOP: {
      uint64_t deadline;
      if ((flags & VMH_STOP_FORCE) || st != VMH_VM_RUNNING)
        goto destroy;
      if (virDomainShutdown(dom) < 0) {
        /* No ACPI answer possible (or refused): power off as promised. */
        host->log(h->inst, VMH_LOG_INFO,
                  "graceful shutdown of %s refused (%s); powering off", vm_id,
                  virGetLastErrorMessage());
        goto destroy;
      }
      deadline = now_ns() + (uint64_t)timeout_s * 1000000000u;
      for (;;) {
        struct timespec ts = {0, STOP_POLL_NS};
        if (virDomainIsActive(dom) == 0)
          goto stopped;
        if (now_ns() >= deadline)
          break;
        nanosleep(&ts, NULL);
      }
      host->log(h->inst, VMH_LOG_INFO,
                "%s did not shut down within %" PRIu32 " s; powering off",
                vm_id, timeout_s);
    destroy:
      if (virDomainDestroy(dom) < 0 && virDomainIsActive(dom) != 0) {
        rc = lv_fail(h, "power off");
        break;
      }
    stopped:
      mark_started(h, vm_id, 0);
      break;
    }
    case A_REBOOT:
      if (virDomainReboot(dom, 0) < 0)
        rc = lv_fail(h, "reboot");
      break;
    case A_PAUSE:
      if (virDomainSuspend(dom) < 0)
        rc = lv_fail(h, "pause");
      break;
    case A_RESUME:
      if (virDomainResume(dom) < 0)
        rc = lv_fail(h, "resume");
      break;
  }
out:
  put_dom(c, dom);
  return rc;
}

static int hv_start(void *handle, const char *vm_id, uint32_t flags) {
  int rc = vmh_check_flags(host, "start", flags, 0);
  return rc < 0 ? rc : act(handle, vm_id, A_START, 0, 0);
}

static int hv_stop(void *handle, const char *vm_id, uint32_t timeout_s,
                   uint32_t flags) {
  struct hv *h = handle;
  int rc = vmh_check_flags(host, "stop", flags, VMH_STOP_FORCE);

  if (rc < 0)
    return rc;
  if (timeout_s == 0)
    timeout_s = (uint32_t)h->shutdown_timeout;
  return act(h, vm_id, A_STOP, timeout_s, flags);
}

static int hv_reboot(void *handle, const char *vm_id, uint32_t flags) {
  int rc = vmh_check_flags(host, "reboot", flags, 0);
  return rc < 0 ? rc : act(handle, vm_id, A_REBOOT, 0, 0);
}

static int hv_pause(void *handle, const char *vm_id, uint32_t flags) {
  int rc = vmh_check_flags(host, "pause", flags, 0);
  return rc < 0 ? rc : act(handle, vm_id, A_PAUSE, 0, 0);
}

static int hv_resume(void *handle, const char *vm_id, uint32_t flags) {
  int rc = vmh_check_flags(host, "resume", flags, 0);
  return rc < 0 ? rc : act(handle, vm_id, A_RESUME, 0, 0);
}

/* Guest addresses: the agent knows them all; DHCP leases of libvirt's own
 * networks cover guests without one.  Either may be missing. */
static void collect_ips(virDomainPtr dom, char ***ret, uint32_t *n) {
  static const unsigned srcs[] = {VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
                                  VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE};
  size_t k;

  for (k = 0; k < sizeof srcs / sizeof srcs[0] && *n == 0; k++) {
    virDomainInterfacePtr *ifs = NULL;
    int nif = virDomainInterfaceAddresses(dom, &ifs, srcs[k], 0), i;
    size_t j;

    for (i = 0; i < nif; i++) {
      for (j = 0; j < ifs[i]->naddrs; j++) {
        const char *a = ifs[i]->addrs[j].addr;
        char **nv;
        if (a == NULL || strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0)
          continue;
        nv = realloc(*ret, (*n + 1) * sizeof **ret);
        if (nv == NULL)
          continue;
        *ret = nv;
        if (((*ret)[*n] = strdup(a)) != NULL)
          (*n)++;
      }
      virDomainInterfaceFree(ifs[i]);
    }
    free(ifs);
  }
  virResetLastError();
}

/* Whether a stats field named like "block.0.rd.bytes" is kind.N.what. */
static int stat_is(const char *field, const char *kind, const char *what) {
  size_t k = strlen(kind), f = strlen(field), w = strlen(what);
  return strncmp(field, kind, k) == 0 && field[k] == '.' && f > k + w + 1 &&
         strcmp(field + f - w, what) == 0 && field[f - w - 1] == '.';
}

/* The domain's disk and NIC bytes, summed, from its block and interface
 * stats (virDomainListGetStats; a driver without them leaves 0s). */
static void io_stats(virDomainPtr dom, struct vmh_vm_info *info) {
  virDomainPtr doms[] = {dom, NULL};
  virDomainStatsRecordPtr *recs = NULL;
  int n = virDomainListGetStats(
      doms, VIR_DOMAIN_STATS_BLOCK | VIR_DOMAIN_STATS_INTERFACE, &recs, 0);
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < recs[i]->nparams; j++) {
      const virTypedParameter *p = &recs[i]->params[j];
      if (p->type != VIR_TYPED_PARAM_ULLONG)
        continue;
      if (stat_is(p->field, "block", "rd.bytes"))
        info->disk_read_bytes += p->value.ul;
      else if (stat_is(p->field, "block", "wr.bytes"))
        info->disk_write_bytes += p->value.ul;
      else if (stat_is(p->field, "net", "rx.bytes"))
        info->net_rx_bytes += p->value.ul;
      else if (stat_is(p->field, "net", "tx.bytes"))
        info->net_tx_bytes += p->value.ul;
    }
  }
  if (recs)
    virDomainStatsRecordListFree(recs);
  virResetLastError();
}

static int report(struct hv *h, virDomainPtr dom, vmh_vm_info_fn fn,
                  void *opaque) {
  char uuid[VIR_UUID_STRING_BUFLEN];
  struct vmh_vm_info info = {0};
  virDomainInfo di;
  char **ips = NULL, *chan = NULL;
  uint32_t n_ips = 0, i;
  int rc;

  if (virDomainGetUUIDString(dom, uuid) < 0 || virDomainGetInfo(dom, &di) < 0)
    return lv_fail(h, "read the domain");
  info.struct_size = sizeof info;
  info.id = uuid;
  info.name = virDomainGetName(dom);
  info.state = state_of(di.state);
  info.vcpus = di.nrVirtCpu;
  info.memory = (uint64_t)di.maxMem * 1024;
  info.cpu_time_ns = di.cpuTime;
  if (info.state == VMH_VM_RUNNING || info.state == VMH_VM_PAUSED) {
    virDomainMemoryStatStruct ms[VIR_DOMAIN_MEMORY_STAT_NR];
    uint64_t avail = 0, unused = 0, balloon = 0;
    int n = virDomainMemoryStats(dom, ms, VIR_DOMAIN_MEMORY_STAT_NR, 0), k;

    for (k = 0; k < n; k++) {
      if (ms[k].tag == VIR_DOMAIN_MEMORY_STAT_AVAILABLE)
        avail = ms[k].val;
      else if (ms[k].tag == VIR_DOMAIN_MEMORY_STAT_UNUSED)
        unused = ms[k].val;
      else if (ms[k].tag == VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON)
        balloon = ms[k].val;
    }
    /* What the guest uses if its balloon driver says; else what it has. */
    info.memory_used = avail > unused && unused > 0 ? (avail - unused) * 1024
                       : balloon > 0                ? balloon * 1024
                                     : (uint64_t)di.memory * 1024;
    virResetLastError();
    info.uptime_s = uptime_s(h, uuid);
    io_stats(dom, &info);
    collect_ips(dom, &ips, &n_ips);
    info.ips = (const char *const *)ips;
    info.n_ips = n_ips;
  }
  if (!get_channel(h, uuid, &chan)) {
    /* A domain we did not define in this process: read it once. */
    xmlDocPtr doc = dom_xml(dom, VIR_DOMAIN_XML_INACTIVE);
    if (doc != NULL) {
      chan = xpath_str(doc,
                       "/domain/devices/channel[@type='unix']"
                       "[target/@name='" LVX_CHANNEL_NAME "']/source/@path");
      xmlFreeDoc(doc);
      set_channel(h, uuid, chan);
    }
    virResetLastError();
  }
  if (chan != NULL) {
    info.channel_type = VMH_CHANNEL_UNIX;
    info.channel_path = chan;
  }
  rc = fn(opaque, &info);
  for (i = 0; i < n_ips; i++)
    free(ips[i]);
  free(ips);
  free(chan);
  return rc;
}

static int hv_get(void *handle, const char *vm_id, vmh_vm_info_fn fn,
                  void *opaque, uint32_t flags) {
  struct hv *h = handle;
  virConnectPtr c = NULL;
  virDomainPtr dom = NULL;
  int rc;

  if ((rc = vmh_check_flags(host, "get", flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(host, VMH_EINVAL, "get: no visitor");
  if ((rc = get_dom(h, vm_id, &c, &dom)) < 0)
    return rc;
  rc = report(h, dom, fn, opaque);
  put_dom(c, dom);
  return rc;
}

static int hv_list(void *handle, vmh_vm_info_fn fn, void *opaque,
                   uint32_t flags) {
  struct hv *h = handle;
  virConnectPtr c = NULL;
  virDomainPtr *doms = NULL;
  int rc, n, i;

  if ((rc = vmh_check_flags(host, "list", flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(host, VMH_EINVAL, "list: no visitor");
  if ((rc = get_conn(h, &c)) < 0)
    return rc;
  n = virConnectListAllDomains(c, &doms, 0);
  if (n < 0)
    rc = lv_fail(h, "list domains");
  for (i = 0; i < n; i++) {
    if (rc == 0) {
      rc = report(h, doms[i], fn, opaque);
      /* Gone between the list and the read: not an error of the list. */
      if (rc == VMH_ENOENT)
        rc = 0;
    }
    virDomainFree(doms[i]);
  }
  free(doms);
  virConnectClose(c);
  return rc;
}

static int hv_console(void *handle, const char *vm_id, vmh_console_fn fn,
                      void *opaque, uint32_t flags) {
  struct hv *h = handle;
  virConnectPtr c = NULL;
  virDomainPtr dom = NULL;
  xmlDocPtr doc = NULL;
  xmlXPathContextPtr ctx = NULL;
  xmlXPathObjectPtr obj = NULL;
  uint32_t st = VMH_VM_UNKNOWN;
  int rc, i, found = 0;

  if ((rc = vmh_check_flags(host, "console", flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(host, VMH_EINVAL, "console: no visitor");
  if ((rc = get_dom(h, vm_id, &c, &dom)) < 0)
    return rc;
  if ((rc = cur_state(h, dom, &st)) < 0)
    goto out;
  if (st != VMH_VM_RUNNING && st != VMH_VM_PAUSED) {
    rc = vmh_fail(host, VMH_ESTATE, "VM %s is %s: cannot open its console",
                  vm_id, vm_state_name(st));
    goto out;
  }
  /* The live XML: a pty's path and an autoport's number exist only once
   * the domain runs. */
  doc = dom_xml(dom, 0);
  if (doc == NULL || (ctx = xmlXPathNewContext(doc)) == NULL) {
    rc = doc ? vmh_fail(host, VMH_ENOMEM, "out of memory")
             : lv_fail(h, "console");
    goto out;
  }
  obj = xmlXPathEvalExpression(
      BAD_CAST "/domain/devices/serial|/domain/devices/graphics", ctx);
  for (i = 0; rc == 0 && obj && obj->nodesetval && i < obj->nodesetval->nodeNr;
       i++) {
    xmlNodePtr node = obj->nodesetval->nodeTab[i], k;
    struct vmh_console_info ci = {0};
    xmlChar *type = xmlGetProp(node, BAD_CAST "type"), *path = NULL,
            *port = NULL, *listen = NULL, *pw = NULL;

    ci.struct_size = sizeof ci;
    if (xmlStrcmp(node->name, BAD_CAST "serial") == 0) {
      for (k = node->children; k; k = k->next)
        if (k->type == XML_ELEMENT_NODE &&
            xmlStrcmp(k->name, BAD_CAST "source") == 0)
          path = xmlGetProp(k, BAD_CAST "path");
      if (path == NULL)
        path = xmlGetProp(node, BAD_CAST "tty");
      ci.type = VMH_CONSOLE_SERIAL;
      ci.path = (const char *)path;
    } else if (type && (xmlStrcmp(type, BAD_CAST "vnc") == 0 ||
                        xmlStrcmp(type, BAD_CAST "spice") == 0)) {
      port = xmlGetProp(node, BAD_CAST "port");
      listen = xmlGetProp(node, BAD_CAST "listen");
      pw = xmlGetProp(node, BAD_CAST "passwd");
      ci.type = xmlStrcmp(type, BAD_CAST "vnc") == 0 ? VMH_CONSOLE_VNC
                                                     : VMH_CONSOLE_SPICE;
      ci.port = port ? (uint32_t)strtoul((const char *)port, NULL, 10) : 0;
      ci.host = listen ? (const char *)listen : "127.0.0.1";
      ci.password = (const char *)pw;
      /* autoport before start, or -1 on drivers that assign none. */
      if (port == NULL || atoi((const char *)port) <= 0)
        ci.type = VMH_CONSOLE_NONE;
    }
    if (ci.type != VMH_CONSOLE_NONE &&
        (ci.type != VMH_CONSOLE_SERIAL || ci.path != NULL)) {
      rc = fn(opaque, &ci);
      found++;
    }
    xmlFree(type);
    xmlFree(path);
    xmlFree(port);
    xmlFree(listen);
    xmlFree(pw);
  }
  if (rc == 0 && found == 0)
    rc = vmh_fail(host, VMH_ENOENT, "VM %s has no console that can be reached",
                  vm_id);
out:
  xmlXPathFreeObject(obj);
  xmlXPathFreeContext(ctx);
  xmlFreeDoc(doc);
  put_dom(c, dom);
  return rc;
}

/* ---- Snapshots ----------------------------------------------------------- */

static uint32_t snap_state(const char *s) {
  if (s == NULL)
    return VMH_VM_UNKNOWN;
  if (strcmp(s, "running") == 0 || strcmp(s, "blocked") == 0)
    return VMH_VM_RUNNING;
  if (strcmp(s, "paused") == 0)
    return VMH_VM_PAUSED;
  if (strcmp(s, "shutoff") == 0 || strcmp(s, "disk-snapshot") == 0)
    return VMH_VM_STOPPED;
  if (strcmp(s, "crashed") == 0)
    return VMH_VM_CRASHED;
  if (strcmp(s, "pmsuspended") == 0)
    return VMH_VM_SUSPENDED;
  return VMH_VM_UNKNOWN;
}

static int report_snap(struct hv *h, virDomainSnapshotPtr s, vmh_snapshot_fn fn,
                       void *opaque) {
  struct vmh_snapshot_info si = {0};
  char *xml = virDomainSnapshotGetXMLDesc(s, 0), *created = NULL, *state = NULL,
       *parent = NULL;
  xmlDocPtr doc;
  int rc, cur;

  if (xml == NULL)
    return lv_fail(h, "read the snapshot");
  doc = parse_xml(xml);
  free(xml);
  if (doc != NULL) {
    created = xpath_str(doc, "/domainsnapshot/creationTime");
    state = xpath_str(doc, "/domainsnapshot/state");
    parent = xpath_str(doc, "/domainsnapshot/parent/name");
    xmlFreeDoc(doc);
  }
  cur = virDomainSnapshotIsCurrent(s, 0);
  virResetLastError();
  si.struct_size = sizeof si;
  /* A snapshot's name is unique within its domain: it is the id too. */
  si.id = virDomainSnapshotGetName(s);
  si.name = si.id;
  si.parent = parent;
  si.created = created ? strtoll(created, NULL, 10) : 0;
  si.vm_state = snap_state(state);
  si.current = cur == 1;
  rc = fn(opaque, &si);
  free(created);
  free(state);
  free(parent);
  return rc;
}

static int hv_snapshot_create(void *handle, const char *vm_id, const char *name,
                              vmh_snapshot_fn fn, void *opaque,
                              uint32_t flags) {
  struct hv *h = handle;
  virConnectPtr c = NULL;
  virDomainPtr dom = NULL;
  virDomainSnapshotPtr s = NULL;
  char err[ERRLEN], *xml = NULL;
  int rc;

  if ((rc = vmh_check_flags(host, "snapshot_create", flags, 0)) < 0)
    return rc;
  if (name == NULL || name[0] == '\0')
    return vmh_fail(host, VMH_EINVAL, "snapshot_create: no name");
  if ((rc = get_dom(h, vm_id, &c, &dom)) < 0)
    return rc;
  s = virDomainSnapshotLookupByName(dom, name, 0);
  if (s != NULL) {
    rc = vmh_fail(host, VMH_EEXIST, "VM %s already has a snapshot '%s'", vm_id,
                  name);
    goto out;
  }
  virResetLastError();
  if ((rc = lvx_snapshot(name, &xml, err, sizeof err)) < 0) {
    rc = vmh_fail(host, rc, "%s", err);
    goto out;
  }
  s = virDomainSnapshotCreateXML(dom, xml, 0);
  if (s == NULL) {
    rc = lv_fail(h, "create the snapshot");
    goto out;
  }
  if (fn != NULL && (rc = report_snap(h, s, fn, opaque)) < 0) {
    /* Nothing of a failed create may remain. */
    virDomainSnapshotDelete(s, 0);
  }
out:
  if (s != NULL)
    virDomainSnapshotFree(s);
  free(xml);
  put_dom(c, dom);
  return rc;
}

static int hv_snapshot_list(void *handle, const char *vm_id, vmh_snapshot_fn fn,
                            void *opaque, uint32_t flags) {
  struct hv *h = handle;
  virConnectPtr c = NULL;
  virDomainPtr dom = NULL;
  virDomainSnapshotPtr *snaps = NULL;
  int rc, n, i;

  if ((rc = vmh_check_flags(host, "snapshot_list", flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(host, VMH_EINVAL, "snapshot_list: no visitor");
  if ((rc = get_dom(h, vm_id, &c, &dom)) < 0)
    return rc;
  n = virDomainListAllSnapshots(dom, &snaps,
                                VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL);
  if (n < 0)
    rc = lv_fail(h, "list snapshots");
  for (i = 0; i < n; i++) {
    if (rc == 0)
      rc = report_snap(h, snaps[i], fn, opaque);
    virDomainSnapshotFree(snaps[i]);
  }
  free(snaps);
  put_dom(c, dom);
  return rc;
}

static int get_snap(struct hv *h, virDomainPtr dom, const char *vm_id,
                    const char *id, virDomainSnapshotPtr *ret) {
  if (id == NULL)
    return vmh_fail(host, VMH_EINVAL, "no snapshot id");
  *ret = virDomainSnapshotLookupByName(dom, id, 0);
  if (*ret == NULL) {
    if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN_SNAPSHOT)
      return vmh_fail(host, VMH_ENOENT, "VM %s has no snapshot '%s'", vm_id,
                      id);
    return lv_fail(h, "look up the snapshot");
  }
  return 0;
}

static int snap_op(struct hv *h, const char *vm_id, const char *id,
                   int revert) {
  virConnectPtr c = NULL;
  virDomainPtr dom = NULL;
  virDomainSnapshotPtr s = NULL;
  int rc;

  if ((rc = get_dom(h, vm_id, &c, &dom)) < 0)
    return rc;
  if ((rc = get_snap(h, dom, vm_id, id, &s)) < 0)
    goto out;
  if (revert ? virDomainRevertToSnapshot(s, 0) < 0
             : virDomainSnapshotDelete(s, 0) < 0)
    rc = lv_fail(h, revert ? "revert to the snapshot" : "delete the snapshot");
  virDomainSnapshotFree(s);
out:
  put_dom(c, dom);
  return rc;
}

static int hv_snapshot_revert(void *handle, const char *vm_id,
                              const char *snapshot_id, uint32_t flags) {
  int rc = vmh_check_flags(host, "snapshot_revert", flags, 0);
  return rc < 0 ? rc : snap_op(handle, vm_id, snapshot_id, 1);
}

static int hv_snapshot_delete(void *handle, const char *vm_id,
                              const char *snapshot_id, uint32_t flags) {
  int rc = vmh_check_flags(host, "snapshot_delete", flags, 0);
  return rc < 0 ? rc : snap_op(handle, vm_id, snapshot_id, 0);
}

/* ---- Disk hot-plug ------------------------------------------------------- */

/* The <disk> whose target is `name` in the domain's persistent (or, with
 * live, running) definition, as XML (malloc'ed); NULL: none. */
static char *find_disk(virDomainPtr dom, const char *name, int live) {
  xmlDocPtr doc = dom_xml(dom, live ? 0 : VIR_DOMAIN_XML_INACTIVE);
  xmlXPathContextPtr ctx = NULL;
  xmlXPathObjectPtr obj = NULL;
  xmlBufferPtr buf = NULL;
  char *ret = NULL;
  int i;

  if (doc == NULL || (ctx = xmlXPathNewContext(doc)) == NULL)
    goto out;
  obj = xmlXPathEvalExpression(BAD_CAST "/domain/devices/disk", ctx);
  for (i = 0; obj && obj->nodesetval && i < obj->nodesetval->nodeNr; i++) {
    xmlNodePtr d = obj->nodesetval->nodeTab[i], k;
    for (k = d->children; k; k = k->next) {
      xmlChar *dev;
      int match;
      if (k->type != XML_ELEMENT_NODE ||
          xmlStrcmp(k->name, BAD_CAST "target") != 0)
        continue;
      dev = xmlGetProp(k, BAD_CAST "dev");
      match = dev && strcmp((const char *)dev, name) == 0;
      xmlFree(dev);
      if (match && (buf = xmlBufferCreate()) != NULL &&
          xmlNodeDump(buf, doc, d, 0, 0) >= 0)
        ret = strdup((const char *)xmlBufferContent(buf));
      if (match)
        goto out;
    }
  }
out:
  if (buf != NULL)
    xmlBufferFree(buf);
  xmlXPathFreeObject(obj);
  xmlXPathFreeContext(ctx);
  xmlFreeDoc(doc);
  virResetLastError();
  return ret;
}

static unsigned affect(virDomainPtr dom) {
  /* Persistent always; live too when it runs. */
  return VIR_DOMAIN_AFFECT_CONFIG |
         (virDomainIsActive(dom) == 1 ? VIR_DOMAIN_AFFECT_LIVE : 0);
}

static int hv_attach_disk(void *handle, const char *vm_id,
                          const struct vmh_disk *disk, uint32_t flags) {
  struct hv *h = handle;
  virConnectPtr c = NULL;
  virDomainPtr dom = NULL;
  char err[ERRLEN], *xml = NULL, *have;
  int rc;

  if ((rc = vmh_check_flags(host, "attach_disk", flags, 0)) < 0)
    return rc;
  if (disk == NULL || disk->name == NULL)
    return vmh_fail(host, VMH_EINVAL, "attach_disk: no disk name");
  if ((rc = lvx_disk(vm_id, disk, &xml, err, sizeof err)) < 0)
    return vmh_fail(host, rc, "%s", err);
  if ((rc = get_dom(h, vm_id, &c, &dom)) < 0)
    goto out;
  if ((have = find_disk(dom, disk->name, 0)) != NULL ||
      (have = find_disk(dom, disk->name, 1)) != NULL) {
    free(have);
    rc = vmh_fail(host, VMH_EEXIST, "VM %s already has a disk %s", vm_id,
                  disk->name);
    goto out;
  }
  if ((rc = define_secret(h, c, vm_id, disk)) < 0)
    goto out;
  if (virDomainAttachDeviceFlags(dom, xml, affect(dom)) < 0) {
    rc = lv_fail(h, "attach the disk");
    if (disk->source && disk->source->auth_secret)
      drop_secrets(c, NULL, vm_id, disk->name);
  }
out:
  free(xml);
  put_dom(c, dom);
  return rc;
}

static int hv_detach_disk(void *handle, const char *vm_id,
                          const char *disk_name, uint32_t flags) {
  struct hv *h = handle;
  virConnectPtr c = NULL;
  virDomainPtr dom = NULL;
  char *xml = NULL;
  int rc;

  if ((rc = vmh_check_flags(host, "detach_disk", flags, 0)) < 0)
    return rc;
  if (disk_name == NULL)
    return vmh_fail(host, VMH_EINVAL, "detach_disk: no disk name");
  if ((rc = get_dom(h, vm_id, &c, &dom)) < 0)
    return rc;
  /* libvirt matches the device by its XML: hand back its own. */
  xml = find_disk(dom, disk_name, 0);
  if (xml == NULL) {
    rc = vmh_fail(host, VMH_ENOENT, "VM %s has no disk %s", vm_id, disk_name);
    goto out;
  }
  if (virDomainDetachDeviceFlags(dom, xml, affect(dom)) < 0)
    rc = lv_fail(h, "detach the disk");
  else
    drop_secrets(c, NULL, vm_id, disk_name);
out:
  free(xml);
  put_dom(c, dom);
  return rc;
}

/* ---- Instance ------------------------------------------------------------ */

/* auto: kvm where the driver offers it, else qemu, else the first type the
 * driver knows (the test driver offers only "test"). */
static int pick_type(struct hv *h, virConnectPtr c) {
  char *caps = NULL;
  xmlDocPtr doc = NULL;
  char *first = NULL;
  int rc = 0;

  if (strcmp(h->type_cfg, "auto") != 0) {
    h->domain_type = strdup(h->type_cfg);
    goto out;
  }
  caps = virConnectGetCapabilities(c);
  if (caps == NULL) {
    rc = lv_fail(h, "read the capabilities");
    goto out;
  }
  doc = parse_xml(caps);
  if (doc == NULL) {
    rc = vmh_fail(host, VMH_EIO, "libvirt's capabilities are not XML");
    goto out;
  }
  if ((first = xpath_str(doc, "//guest/arch/domain[@type='kvm']/@type")) ||
      (first = xpath_str(doc, "//guest/arch/domain[@type='qemu']/@type")) ||
      (first = xpath_str(doc, "//guest/arch/domain/@type"))) {
    h->domain_type = first;
  } else {
    rc = vmh_fail(host, VMH_EIO, "%s offers no domain type", h->uri);
    goto out;
  }
  host->log(h->inst, VMH_LOG_INFO, "domain type %s (auto) on %s",
            h->domain_type, h->uri);
out:
  if (rc == 0 && h->domain_type == NULL)
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
  xmlFreeDoc(doc);
  free(caps);
  return rc;
}

static void hv_close(void *handle) {
  struct hv *h = handle;
  virConnectPtr c;
  int cb;

  if (h == NULL)
    return;
  pthread_mutex_lock(&h->lock);
  h->closing = 1;
  /* A reconnect in progress on the event thread uses h: let it end. */
  while (h->reconnecting)
    pthread_cond_wait(&h->cond, &h->lock);
  if (h->timer >= 0)
    virEventRemoveTimeout(h->timer);
  h->timer = -1;
  c = h->conn;
  cb = h->cb_id;
  h->conn = NULL;
  pthread_mutex_unlock(&h->lock);
  close_link(c, cb);
  /* Joins the event thread when this was its last user: no callback of
   * ours runs after that. */
  if (h->loop_ref)
    loop_put();
  pthread_mutex_destroy(&h->lock);
  pthread_cond_destroy(&h->cond);
  for (size_t i = 0; i < h->n_known; i++)
    free(h->known[i].chan);
  free(h->known);
  free(h->domain_type);
  free((char *)h->channel_dir);
  free(h);
}

static int hv_open(const struct vmh_host *host_,
                   const struct vmh_instance *inst,
                   const struct vmh_config *config, void **ret_handle,
                   uint32_t flags) {
  struct hv *h;
  const char *dir = NULL;
  int rc;

  (void)host_;
  h = calloc(1, sizeof *h);
  if (h == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  h->inst = inst;
  h->timer = -1;
  h->cb_id = -1;
  h->backoff_ms = BACKOFF_MIN;
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->cond, NULL);
  if ((rc = host->config_string(config, "uri", "qemu:///system", &h->uri, 0)) <
          0 ||
      (rc = host->config_string(config, "domain_type", "auto", &h->type_cfg,
                                0)) < 0 ||
      (rc = host->config_string(config, "machine", NULL, &h->machine, 0)) < 0 ||
      (rc = host->config_string(config, "emulator", NULL, &h->emulator, 0)) <
          0 ||
      (rc = host->config_string(config, "channel_dir", NULL, &dir, 0)) < 0 ||
      (rc = host->config_int(config, "shutdown_timeout", 0, 86400, 60,
                             &h->shutdown_timeout, 0)) < 0)
    goto fail;
  if (h->type_cfg[0] == '\0' ||
      strspn(h->type_cfg, "abcdefghijklmnopqrstuvwxyz0123456789") !=
          strlen(h->type_cfg)) {
    rc = vmh_fail(host, VMH_EINVAL, "domain_type '%s': give auto, kvm or qemu",
                  h->type_cfg);
    goto fail;
  }
  if (dir != NULL && dir[0] != '/') {
    rc = vmh_fail(host, VMH_EINVAL, "channel_dir '%s' must be an absolute path",
                  dir);
    goto fail;
  }
  if (flags & VMH_OPEN_CHECK_ONLY) {
    /* The state dir does not exist yet: nothing more to check. */
    *ret_handle = h;
    return 0;
  }
  if (dir == NULL)
    dir = host->state_dir(inst);
  h->channel_dir = dir ? strdup(dir) : NULL;
  if (h->channel_dir == NULL) {
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
    goto fail;
  }
  /* The loop's implementation must be registered before the connection
   * opens, or the connection never delivers events. */
  if ((rc = loop_get()) < 0)
    goto fail;
  h->loop_ref = 1;
  if ((rc = open_link(h, &h->conn, &h->cb_id)) < 0)
    goto fail;
  if ((rc = pick_type(h, h->conn)) < 0)
    goto fail;
  host->log(inst, VMH_LOG_DEBUG, "connected to %s; sockets in %s", h->uri,
            h->channel_dir);
  *ret_handle = h;
  return 0;
fail:
  hv_close(h);
  return rc;
}

static int hv_load(const struct vmh_host *host_) {
  host = host_;
  /* Before anything else in libvirt: it would print errors to stderr. */
  virSetErrorFunc(NULL, quiet);
  if (virInitialize() < 0)
    return vmh_fail(host, VMH_EINTERNAL, "libvirt failed to initialize");
  xmlInitParser();
  return 0;
}

static struct vmh_hypervisor_ops ops = {
    .open = hv_open,
    .close = hv_close,
    .health = hv_health,
    .caps = hv_caps,
    .define = hv_define,
    .undefine = hv_undefine,
    .start = hv_start,
    .stop = hv_stop,
    .reboot = hv_reboot,
    .pause = hv_pause,
    .resume = hv_resume,
    .get = hv_get,
    .list = hv_list,
    .console = hv_console,
    .snapshot_create = hv_snapshot_create,
    .snapshot_list = hv_snapshot_list,
    .snapshot_revert = hv_snapshot_revert,
    .snapshot_delete = hv_snapshot_delete,
    .attach_disk = hv_attach_disk,
    .detach_disk = hv_detach_disk,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_HYPERVISOR,
    .name = "libvirt",
    .version = VMH_PACKAGE_VERSION,
    .description = "libvirt domains (QEMU/KVM, test driver)",
    .load = hv_load,
    .hypervisor = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
