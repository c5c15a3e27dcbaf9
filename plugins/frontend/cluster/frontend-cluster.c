/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cluster front-end: registers this node in etcd (v3, through its JSON
 * gateway, with libcurl) and keeps its record and VM inventory current
 * there, on a thread of its own, so that the core and the other front-ends
 * never wait for etcd.
 *
 * start() registers once (a name another vmhostd holds refuses the start;
 * etcd unreachable does not: the node serves, degraded, and registers when
 * etcd answers).  Then the thread keeps the lease alive (every third of
 * its TTL), rewrites the record every heartbeat_interval, writes what the
 * VM list says differently from what it wrote before, after each VM event
 * or change of the core's VM generation (so changes that come while a
 * transaction is out are coalesced into the next),
 * and on a failure marks the node degraded and retries with an
 * exponential backoff and jitter: the same lease when it still lives, a
 * fresh registration and a full inventory resync when it does not.
 * stop() writes status "draining" and revokes the lease.
 *
 * Config keys: etc/plugins/cluster.yaml.  Layout in etcd: registry.c. */
#include <config.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "cluster.h"

/* The first pause after a failure; doubled up to retry_max. */
#define RETRY_MIN_MS 250

const struct vmh_host *cl_host;

int64_t cl_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t cl_wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *const status_names[] = {
    [CS_STARTING] = "starting", [CS_UP] = "up",
    [CS_DEGRADED] = "degraded", [CS_CONFLICT] = "conflict",
    [CS_DRAINING] = "draining", [CS_STOPPED] = "stopped",
};

/* The status document (GET /api/v1/cluster), built under the lock. */
static json_t *status_doc(struct cluster *cl) {
  char lease[24] = "";
  if (cl->status == CS_UP || cl->status == CS_DRAINING ||
      cl->status == CS_DEGRADED)
    snprintf(lease, sizeof lease, "%" PRIx64, (uint64_t)cl->lease_shown);
  json_t *eps = json_array();
  for (size_t i = 0; eps && i < cl->c.n_endpoints; i++)
    json_array_append_new(eps, json_string(cl->c.endpoints[i]));
  return json_pack(
      "{s:s,s:s,s:s,s:o,s:s?,s:s,s:I,s:I,s:I,s:f,s:s?,s:I,s:I,s:I}", "status",
      status_names[cl->status], "node_name", cl->c.node_name, "key",
      cl->node_key, "endpoints", eps, "endpoint", cl->endpoint_shown,
      "lease_id", lease, "lease_ttl", (json_int_t)cl->lease_ttl,
      "heartbeat_interval", (json_int_t)cl->c.heartbeat_s, "last_heartbeat",
      (json_int_t)(cl->last_heartbeat_us / 1000000), "heartbeat_latency_ms",
      (double)cl->heartbeat_latency_us / 1000.0, "error",
      *cl->error ? cl->error : NULL, "registrations",
      (json_int_t)cl->registrations, "heartbeats", (json_int_t)cl->heartbeats,
      "txns", (json_int_t)cl->txns);
}

void cl_publish(struct cluster *cl) {
  if (!VMH_HAS_FIELD(cl_host, status_set))
    return; /* an older vmhostd: metrics and logs only */
  pthread_mutex_lock(&cl->lock);
  json_t *doc = status_doc(cl);
  pthread_mutex_unlock(&cl->lock);
  char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  if (text)
    cl_host->status_set(cl->inst, text);
  free(text);
}

int cl_set_status(struct cluster *cl, int status, const char *error) {
  pthread_mutex_lock(&cl->lock);
  int old = cl->status;
  if (status >= 0)
    cl->status = status;
  if (error)
    snprintf(cl->error, sizeof cl->error, "%s", error);
  status = cl->status;
  pthread_mutex_unlock(&cl->lock);
  cl_publish(cl);
  cl_host->gauge_set(cl->inst, "registered", status == CS_UP);
  cl_host->gauge_set(cl->inst, "degraded",
                     status == CS_DEGRADED || status == CS_CONFLICT);
  return old;
}

/* ---- config ------------------------------------------------------------ */

static int read_endpoints(const struct vmh_config *config, struct cconf *c,
                          bool *any_https) {
  const struct vmh_config *list, *item;
  uint32_t n;
  int r;
  if ((r = cl_host->config_list(config, "endpoints", &list, &n,
                                VMH_CFG_REQUIRED)) < 0)
    return r;
  if (n == 0 || n > 16)
    return vmh_fail(cl_host, VMH_EINVAL,
                    "%s: endpoints: give 1 to 16 etcd client URLs "
                    "(http://host:2379 or https://host:2379)",
                    cl_host->config_key_where(config, "endpoints"));
  if ((c->endpoints = calloc(n, sizeof *c->endpoints)) == NULL)
    return vmh_fail(cl_host, VMH_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    const char *url;
    if ((r = cl_host->config_at(list, i, &item)) < 0 ||
        (r = cl_host->config_string(item, NULL, NULL, &url, VMH_CFG_REQUIRED)) <
            0)
      return r;
    bool https = !strncmp(url, "https://", 8);
    size_t skip = https ? 8 : !strncmp(url, "http://", 7) ? 7 : 0;
    size_t len = strlen(url);
    while (len > skip && url[len - 1] == '/')
      len--;
    if (skip == 0 || len == skip || strcspn(url + skip, "/?#@ \t") < len - skip)
      return vmh_fail(cl_host, VMH_EINVAL,
                      "%s: endpoint '%s' is not an etcd client URL: "
                      "http:// or https:// and host:port, no path, user or "
                      "query (e.g. https://etcd1.example:2379)",
                      cl_host->config_where(item), url);
    *any_https |= https;
    if ((c->endpoints[i] = strndup(url, len)) == NULL)
      return vmh_fail(cl_host, VMH_ENOMEM, "out of memory");
    c->n_endpoints++;
  }
  return 0;
}

/* A file the TLS setup reads: it must be there now, not at the first
 * request minutes later. */
static int read_tls_file(const struct vmh_config *config, const char *key,
                         const char **ret) {
  int r = cl_host->config_path(config, key, NULL, ret, 0);
  if (r < 0 || *ret == NULL)
    return r;
  if (access(*ret, R_OK) < 0)
    return vmh_fail(cl_host, VMH_EINVAL, "%s: %s: cannot read %s: %s",
                    cl_host->config_key_where(config, key), key, *ret,
                    strerror(errno));
  return 0;
}

static int read_tls(const struct vmh_config *config, struct cconf *c,
                    bool any_https) {
  int r;
  if ((r = read_tls_file(config, "ca", &c->ca)) < 0 ||
      (r = read_tls_file(config, "cert", &c->cert)) < 0 ||
      (r = read_tls_file(config, "key", &c->key)) < 0)
    return r;
  if (!c->cert != !c->key)
    return vmh_fail(
        cl_host, VMH_EINVAL,
        "%s: cert and key go together: the client certificate "
        "and its private key",
        cl_host->config_key_where(config, c->cert ? "cert" : "key"));
  if ((c->ca || c->cert) && !any_https)
    return vmh_fail(cl_host, VMH_EINVAL,
                    "%s: ca, cert and key are for TLS, but no endpoint is "
                    "https://",
                    cl_host->config_key_where(config, c->ca ? "ca" : "cert"));
  return 0;
}

static int read_prefix(const struct vmh_config *config, struct cconf *c) {
  int r = cl_host->config_string(config, "prefix", "/vmhost/", &c->prefix, 0);
  if (r < 0)
    return r;
  size_t n = strlen(c->prefix);
  bool ok = n >= 2 && n <= 128 && c->prefix[0] == '/' &&
            c->prefix[n - 1] == '/' && !strstr(c->prefix, "//");
  for (size_t i = 0; ok && i < n; i++)
    ok = isalnum((unsigned char)c->prefix[i]) ||
         strchr("/._-", c->prefix[i]) != NULL;
  if (!ok)
    return vmh_fail(cl_host, VMH_EINVAL,
                    "%s: prefix '%s' must start and end with '/' and hold "
                    "only letters, digits, '.', '_', '-' and single '/' (at "
                    "most 128 characters), e.g. /vmhost/",
                    cl_host->config_key_where(config, "prefix"), c->prefix);
  return 0;
}

static int read_node_name(const struct vmh_config *config, struct cconf *c) {
  const char *name;
  char hn[256] = "";
  int r = cl_host->config_string(config, "node_name", NULL, &name, 0);
  if (r < 0)
    return r;
  if (name == NULL) {
    if (gethostname(hn, sizeof hn - 1) < 0)
      return vmh_fail(cl_host, VMH_EIO, "gethostname: %s", strerror(errno));
    /* The short name, lower case: what the name rule allows. */
    hn[strcspn(hn, ".")] = '\0';
    for (char *p = hn; *p; p++)
      *p = (char)tolower((unsigned char)*p);
    name = hn;
  }
  if (!vmh_name_valid(name))
    return vmh_fail(cl_host, VMH_EINVAL,
                    "%s: node_name '%s'%s is not a name: 1 to %d of a-z, "
                    "0-9, '.', '_' and '-', starting with a letter or a "
                    "digit",
                    cl_host->config_key_where(config, "node_name"), name,
                    name == hn ? " (from the hostname)" : "", VMH_NAME_MAX);
  if ((c->node_name = strdup(name)) == NULL)
    return vmh_fail(cl_host, VMH_ENOMEM, "out of memory");
  return 0;
}

/* A list of strings, each checked by ok() (NULL: any). */
static int read_strings(const struct vmh_config *config, const char *key,
                        bool (*ok)(const char *), const char *what,
                        const char ***ret, size_t *ret_n) {
  const struct vmh_config *list, *item;
  uint32_t n;
  int r = cl_host->config_list(config, key, &list, &n, 0);
  if (r < 0 || n == 0)
    return r;
  if (n > 64)
    return vmh_fail(cl_host, VMH_EINVAL, "%s: %s: at most 64 entries",
                    cl_host->config_key_where(config, key), key);
  if ((*ret = calloc(n, sizeof **ret)) == NULL)
    return vmh_fail(cl_host, VMH_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    if ((r = cl_host->config_at(list, i, &item)) < 0 ||
        (r = cl_host->config_string(item, NULL, NULL, &(*ret)[i],
                                    VMH_CFG_REQUIRED)) < 0)
      return r;
    if (!ok((*ret)[i]))
      return vmh_fail(cl_host, VMH_EINVAL, "%s: %s: '%s' is not %s",
                      cl_host->config_where(item), key, (*ret)[i], what);
    *ret_n = i + 1;
  }
  return 0;
}

static bool is_address(const char *s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static bool is_api_url(const char *s) {
  return (!strncmp(s, "https://", 8) || !strncmp(s, "http://", 7) ||
          !strncmp(s, "unix:/", 6)) &&
         strlen(s) < 512 && strcspn(s, " \t\r\n\"") == strlen(s);
}

/* The host's addresses, when the config names none: every address of an
 * interface that is up, loopback and link-local ones left out. */
static int host_addresses(struct cluster *cl) {
  struct ifaddrs *ifs, *i;
  if (getifaddrs(&ifs) < 0)
    return vmh_fail(cl_host, VMH_EIO, "getifaddrs: %s", strerror(errno));
  size_t n = 0;
  for (i = ifs; i; i = i->ifa_next)
    n++;
  /* The strings live in one block after the array. */
  char **v = calloc(1, n * (sizeof *v + INET6_ADDRSTRLEN) + 1);
  if (v == NULL) {
    freeifaddrs(ifs);
    return vmh_fail(cl_host, VMH_ENOMEM, "out of memory");
  }
  char *text = (char *)(v + n);
  size_t k = 0;
  for (i = ifs; i; i = i->ifa_next) {
    if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP) ||
        (i->ifa_flags & IFF_LOOPBACK))
      continue;
    const void *a;
    int af = i->ifa_addr->sa_family;
    if (af == AF_INET)
      a = &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr;
    else if (af == AF_INET6 &&
             !IN6_IS_ADDR_LINKLOCAL(
                 &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr))
      a = &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr;
    else
      continue;
    if (inet_ntop(af, a, text, INET6_ADDRSTRLEN)) {
      v[k++] = text;
      text += INET6_ADDRSTRLEN;
    }
  }
  freeifaddrs(ifs);
  cl->c.addresses = (const char **)v;
  cl->c.n_addresses = k;
  return 0;
}

static int read_config(const struct vmh_config *config, struct cconf *c) {
  bool any_https = false;
  int r;
  if ((r = read_endpoints(config, c, &any_https)) < 0 ||
      (r = read_tls(config, c, any_https)) < 0 ||
      (r = read_prefix(config, c)) < 0 || (r = read_node_name(config, c)) < 0 ||
      (r = cl_host->config_int(config, "heartbeat_interval", 1, 3600, 30,
                               &c->heartbeat_s, 0)) < 0 ||
      (r = cl_host->config_int(config, "lease_ttl", 5, 86400, 90,
                               &c->lease_ttl_s, 0)) < 0 ||
      (r = cl_host->config_int(config, "timeout_ms", 100, 60000, 2000,
                               &c->timeout_ms, 0)) < 0 ||
      (r = cl_host->config_int(config, "retry_max_ms", RETRY_MIN_MS, 600000,
                               30000, &c->retry_max_ms, 0)) < 0 ||
      (r = read_strings(config, "addresses", is_address, "an IP address",
                        &c->addresses, &c->n_addresses)) < 0 ||
      (r = read_strings(config, "api_endpoints", is_api_url,
                        "a URL (https://, http:// or unix:/)",
                        &c->api_endpoints, &c->n_api_endpoints)) < 0)
    return r;
  /* The lease is kept alive every third of its TTL: it must outlive a
   * missed keepalive with room for a request timeout. */
  if (c->lease_ttl_s * 1000 < 3 * c->timeout_ms)
    return vmh_fail(cl_host, VMH_EINVAL,
                    "%s: lease_ttl %" PRId64
                    " s is shorter than three "
                    "request timeouts (timeout_ms %" PRId64
                    "): raise lease_ttl or lower timeout_ms",
                    cl_host->config_key_where(config, "lease_ttl"),
                    c->lease_ttl_s, c->timeout_ms);
  return 0;
}

static void conf_free(struct cconf *c) {
  for (size_t i = 0; c->endpoints && i < c->n_endpoints; i++)
    free(c->endpoints[i]);
  free(c->endpoints);
  free(c->node_name);
  free(c->addresses);
  free(c->api_endpoints);
  memset(c, 0, sizeof *c);
}

/* ---- events (core threads) -------------------------------------------- */

static void on_event(void *opaque, const struct vmh_event *ev) {
  struct cluster *cl = opaque;
  if ((ev->type != VMH_EVENT_VM_STATE && ev->type != VMH_EVENT_VM_CREATED &&
       ev->type != VMH_EVENT_VM_DELETED) ||
      ev->vm_id == NULL)
    return;
  /* The flush lists the VMs and writes what differs: a storm of events
   * while a txn is out becomes one listing. */
  pthread_mutex_lock(&cl->lock);
  cl->dirty = true;
  pthread_cond_signal(&cl->cond);
  pthread_mutex_unlock(&cl->lock);
}

/* ---- the thread -------------------------------------------------------- */

/* The pause before retry number `failures`: exponential, capped, and
 * jittered down to half (so that a fleet does not come back at once). */
static int64_t backoff_us(struct cluster *cl) {
  int64_t d = (int64_t)RETRY_MIN_MS * 1000;
  for (unsigned i = 1; i < cl->failures && d < cl->c.retry_max_ms * 1000; i++)
    d *= 2;
  if (d > cl->c.retry_max_ms * 1000)
    d = cl->c.retry_max_ms * 1000;
  cl->rng ^= cl->rng << 13;
  cl->rng ^= cl->rng >> 7;
  cl->rng ^= cl->rng << 17;
  return d / 2 + (int64_t)(cl->rng % (uint64_t)(d / 2 + 1));
}

/* Wait until `deadline` (monotonic µs), a VM change or stop.  True when
 * stopping. */
static bool wait_until(struct cluster *cl, int64_t deadline, bool for_vms) {
  pthread_mutex_lock(&cl->lock);
  while (!cl->stopping && !(for_vms && (cl->dirty || cl->resync)) &&
         cl_mono_us() < deadline) {
    struct timespec ts = {.tv_sec = deadline / 1000000,
                          .tv_nsec = deadline % 1000000 * 1000};
    pthread_cond_timedwait(&cl->cond, &cl->lock, &ts);
  }
  bool stop = cl->stopping;
  pthread_mutex_unlock(&cl->lock);
  return stop;
}

/* A VM event came, or a record changed without one after it. */
static bool flush_wanted(struct cluster *cl) {
  pthread_mutex_lock(&cl->lock);
  bool want = cl->dirty || cl->resync;
  pthread_mutex_unlock(&cl->lock);
  return want || reg_vms_changed(cl);
}

/* One attempt to get back to "up" after a failure: the same lease when
 * etcd still has it, else a fresh registration. */
static int recover(struct cluster *cl) {
  int r = cl->lease ? reg_keepalive(cl) : REG_LOST;
  if (r == REG_OK) {
    r = reg_heartbeat(cl);
    if (r == REG_OK)
      r = reg_flush(cl, true);
  }
  if (r == REG_LOST) {
    reg_revoke(cl); /* gone already, most likely: then a no-op */
    r = reg_register(cl);
  }
  return r;
}

static void on_failure(struct cluster *cl, int r) {
  cl->failures++;
  int status = r == REG_CONFLICT ? CS_CONFLICT : CS_DEGRADED;
  if (cl_set_status(cl, status, NULL) != status) {
    pthread_mutex_lock(&cl->lock);
    char msg[sizeof cl->error];
    snprintf(msg, sizeof msg, "%s", cl->error);
    pthread_mutex_unlock(&cl->lock);
    cl_host->log(cl->inst, r == REG_CONFLICT ? VMH_LOG_ERROR : VMH_LOG_WARN,
                 "%s: %s; serving on, retrying", status_names[status], msg);
  }
}

static void on_success(struct cluster *cl) {
  if (cl->failures)
    cl_host->log(cl->inst, VMH_LOG_INFO,
                 "etcd answers again: up (lease %" PRIx64 ")",
                 (uint64_t)cl->lease);
  cl->failures = 0;
  cl_set_status(cl, cl->draining ? CS_DRAINING : CS_UP, "");
}

static void *cluster_main(void *arg) {
  struct cluster *cl = arg;
  int64_t now = cl_mono_us();
  int64_t keepalive_at = now + cl->c.lease_ttl_s * 1000000 / 3;
  int64_t heartbeat_at = now + cl->c.heartbeat_s * 1000000;
  int64_t retry_at = now;
  bool seen_ready = false;
  for (;;) {
    bool up = cl->failures == 0 && cl->registered;
    int64_t next =
        up ? (keepalive_at < heartbeat_at ? keepalive_at : heartbeat_at)
           : retry_at;
    /* While serving, look at the core's readiness every second: it drops
     * when SIGTERM starts the drain. */
    if (!cl->draining && next > cl_mono_us() + 1000000)
      next = cl_mono_us() + 1000000;
    if (wait_until(cl, next, up))
      break;
    int ready = cl->core->ready();
    seen_ready |= ready;
    now = cl_mono_us();
    if (seen_ready && !ready && !cl->draining) {
      /* From now on the record says "draining" (and the lease is kept
       * alive through the drain, until stop() revokes it). */
      cl->draining = true;
      cl_set_status(cl, CS_DRAINING, NULL);
      heartbeat_at = now;
    }
    int r = REG_OK;
    if (!up) {
      if (now < retry_at)
        continue;
      r = recover(cl);
      if (r == REG_OK) {
        keepalive_at = now + cl->c.lease_ttl_s * 1000000 / 3;
        heartbeat_at = now + cl->c.heartbeat_s * 1000000;
      }
    } else {
      if (now >= keepalive_at) {
        r = reg_keepalive(cl);
        keepalive_at = now + cl->c.lease_ttl_s * 1000000 / 3;
      }
      if (r == REG_OK && now >= heartbeat_at) {
        r = reg_heartbeat(cl);
        heartbeat_at = now + cl->c.heartbeat_s * 1000000;
      }
      if (r == REG_OK && flush_wanted(cl))
        r = reg_flush(cl, false);
    }
    if (r == REG_LOST) {
      /* The lease or record went (expired while etcd was away, or
       * deleted): register again at once. */
      reg_revoke(cl); /* what may remain under it goes with it */
      r = reg_register(cl);
      if (r == REG_OK) {
        keepalive_at = now + cl->c.lease_ttl_s * 1000000 / 3;
        heartbeat_at = now + cl->c.heartbeat_s * 1000000;
      }
    }
    if (r == REG_OK) {
      if (!up)
        on_success(cl);
      continue;
    }
    on_failure(cl, r);
    retry_at = cl_mono_us() + backoff_us(cl);
  }
  return NULL;
}

/* ---- plugin operations ------------------------------------------------- */

static int cluster_load(const struct vmh_host *h) {
  cl_host = h;
  return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK
             ? 0
             : vmh_fail(h, VMH_EIO, "libcurl cannot start");
}

static void cluster_free(struct cluster *cl) {
  reg_written_free(&cl->written);
  etcd_free(&cl->etcd);
  conf_free(&cl->c);
  free(cl->node_key);
  free(cl->vms_prefix);
  free(cl->lease_file);
  pthread_mutex_destroy(&cl->lock);
  pthread_cond_destroy(&cl->cond);
  free(cl);
}

static int cluster_open(const struct vmh_host *h,
                        const struct vmh_instance *inst,
                        const struct vmh_config *config, void **ret_handle,
                        uint32_t flags) {
  int r;
  if ((r = vmh_check_flags(h, "open", flags, VMH_OPEN_CHECK_ONLY)) < 0)
    return r;
  struct cluster *cl = calloc(1, sizeof *cl);
  if (cl == NULL)
    return vmh_fail(h, VMH_ENOMEM, "out of memory");
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&cl->cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&cl->lock, NULL);
  cl->inst = inst;
  if ((r = read_config(config, &cl->c)) < 0)
    goto fail;
  if (cl->c.n_addresses == 0 && (r = host_addresses(cl)) < 0)
    goto fail;
  if (asprintf(&cl->node_key, "%snodes/%s", cl->c.prefix, cl->c.node_name) <
          0 ||
      asprintf(&cl->vms_prefix, "%s/vms/", cl->node_key) < 0) {
    cl->node_key = cl->vms_prefix = NULL;
    r = vmh_fail(h, VMH_ENOMEM, "out of memory");
    goto fail;
  }
  const char *dir = h->state_dir(inst);
  if (dir && asprintf(&cl->lease_file, "%s/lease", dir) < 0) {
    cl->lease_file = NULL;
    r = vmh_fail(h, VMH_ENOMEM, "out of memory");
    goto fail;
  }
  if (etcd_init(&cl->etcd, (const char *const *)cl->c.endpoints,
                cl->c.n_endpoints, cl->c.ca, cl->c.cert, cl->c.key,
                (long)cl->c.timeout_ms) < 0) {
    r = vmh_fail(h, VMH_EIO, "libcurl: cannot make a handle");
    goto fail;
  }
  cl->rng = (uint64_t)cl_wall_us() ^ ((uint64_t)getpid() << 32) ^
            (uint64_t)(uintptr_t)cl;
  *ret_handle = cl;
  return 0;
fail:
  cluster_free(cl);
  return r;
}

static int cluster_start(void *handle, const struct vmh_core *core,
                         uint32_t flags) {
  struct cluster *cl = handle;
  int r;
  if ((r = vmh_check_flags(cl_host, "start", flags, 0)) < 0)
    return r;
  if (cl->running)
    return vmh_fail(cl_host, VMH_ESTATE, "already started");
  cl->core = core;
  cl->started = cl_wall_us() / 1000000;
  cl->stopping = false;
  cl->draining = false;
  cl->failures = 0;
  cl_set_status(cl, CS_STARTING, "");
  if ((r = core->subscribe(on_event, cl, &cl->sub_id, 0)) < 0)
    return vmh_fail(cl_host, r, "cannot follow the VM events: %s",
                    core->error_message());
  cl->subscribed = true;
  /* Once here, bounded by the request timeout per endpoint, so that a
   * duplicate name stops the daemon before it serves. */
  r = reg_register(cl);
  if (r == REG_CONFLICT) {
    core->unsubscribe(cl->sub_id);
    cl->subscribed = false;
    pthread_mutex_lock(&cl->lock);
    r = vmh_fail(cl_host, VMH_EEXIST, "%s", cl->error);
    pthread_mutex_unlock(&cl->lock);
    return r;
  }
  if (r == REG_OK)
    on_success(cl);
  else
    on_failure(cl, r);
  if ((r = pthread_create(&cl->thread, NULL, cluster_main, cl)) != 0) {
    core->unsubscribe(cl->sub_id);
    cl->subscribed = false;
    reg_revoke(cl);
    return vmh_fail(cl_host, VMH_EIO, "cannot start the cluster thread: %s",
                    strerror(r));
  }
  cl->running = true;
  return 0;
}

static void cluster_stop(void *handle, uint32_t flags) {
  struct cluster *cl = handle;
  (void)flags; /* none defined, and stop() cannot refuse */
  if (!cl->running)
    return;
  cl->core->unsubscribe(cl->sub_id);
  cl->subscribed = false;
  pthread_mutex_lock(&cl->lock);
  cl->stopping = true;
  pthread_cond_signal(&cl->cond);
  pthread_mutex_unlock(&cl->lock);
  pthread_join(cl->thread, NULL);
  cl->running = false;
  if (cl->registered) {
    cl->draining = true;
    cl_set_status(cl, CS_DRAINING, NULL);
    reg_heartbeat(cl);
  }
  if (cl->lease) {
    int64_t lease = cl->lease;
    reg_revoke(cl);
    if (cl->lease_file)
      unlink(cl->lease_file);
    cl_host->log(cl->inst, VMH_LOG_INFO, "lease %" PRIx64 " revoked",
                 (uint64_t)lease);
  }
  cl_set_status(cl, CS_STOPPED, NULL);
}

static void cluster_close(void *handle) {
  struct cluster *cl = handle;
  if (cl == NULL)
    return;
  cluster_stop(cl, 0);
  cluster_free(cl);
}

static struct vmh_frontend_ops ops = {
    .open = cluster_open,
    .close = cluster_close,
    .start = cluster_start,
    .stop = cluster_stop,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_FRONTEND,
    .name = "cluster",
    .version = "0.1",
    .description = "registers the node and its VMs in etcd",
    .load = cluster_load,
    .frontend = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
