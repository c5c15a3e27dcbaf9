/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The node record and the VM inventory in etcd.
 *
 * <prefix>nodes/<name> holds the node record, <prefix>nodes/<name>/vms/<id>
 * one VM each, all under one lease: when vmhostd dies without revoking it,
 * etcd drops them when the lease expires.  Every write after registration
 * compares the record's lease with ours in the same transaction, so a
 * record that another vmhostd took over is never overwritten. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abijson.h"
#include "atomicfile.h"
#include "cleanup.h"
#include "cluster.h"
#include "ptrvec.h"

/* Operations per transaction: etcd refuses more than --max-txn-ops (128
 * by default). */
#define TXN_OPS 100

/* ---- the core's answers, waited for on this thread --------------------- */

struct wait {
  struct abij_reply r;
  pthread_mutex_t m;
  pthread_cond_t c;
  bool done;
  int code;
  json_t *results; /* array */
};

static void w_result(void *opaque, const char *key, json_t *v) {
  struct wait *w = opaque;
  (void)key;
  if (v)
    json_array_append_new(w->results, v);
}

static void w_done(void *opaque, int code, const char *message) {
  struct wait *w = opaque;
  (void)message;
  pthread_mutex_lock(&w->m);
  w->code = code;
  w->done = true;
  pthread_cond_signal(&w->c);
  pthread_mutex_unlock(&w->m);
}

/* Call one of the core's argument-less listings (vm_list, host_info,
 * plugin_list) and wait for its answer: an array of the results (new
 * reference), NULL when it failed.  Served from memory, they answer at
 * once. */
static json_t *core_wait(void (*call)(vmh_reply_t *, uint32_t)) {
  struct wait w = {.results = json_array()};
  if (w.results == NULL)
    return NULL;
  pthread_mutex_init(&w.m, NULL);
  pthread_cond_init(&w.c, NULL);
  abij_reply_init(&w.r, &w, w_result, NULL, w_done);
  call(&w.r.reply, 0);
  pthread_mutex_lock(&w.m);
  while (!w.done)
    pthread_cond_wait(&w.c, &w.m);
  pthread_mutex_unlock(&w.m);
  pthread_mutex_destroy(&w.m);
  pthread_cond_destroy(&w.c);
  if (w.code) {
    json_decref(w.results);
    return NULL;
  }
  return w.results;
}

/* ---- what the records say ---------------------------------------------- */

static json_t *str_array(const char *const *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

/* A VM as the inventory shows it: the record's fields a control plane
 * places and finds VMs by, never cloud-init data (it may hold secrets). */
static json_t *vm_entry(json_t *vm) {
  static const char *const keep[] = {
      "id",     "name",    "status", "state",      "vcpus",
      "memory", "created", "error",  "hypervisor", "ips",
  };
  json_t *o = json_object();
  for (size_t i = 0; o && i < sizeof keep / sizeof *keep; i++) {
    json_t *v = json_object_get(vm, keep[i]);
    if (v)
      json_object_set(o, keep[i], v);
  }
  return o;
}

/* The capacity part of the node record, from the core's host info. */
static json_t *capacity(json_t *h) {
  json_t *o = json_object();
  if (o == NULL || h == NULL)
    return o;
  static const char *const from[][2] = {
      {"cpus", "cpu_threads"},
      {"memory", "memory_total"},
      {"memory_available", "memory_available"},
      {"arch", "arch"},
      {"cpu_model", "cpu_model"},
  };
  for (size_t i = 0; i < sizeof from / sizeof *from; i++) {
    json_t *v = json_object_get(h, from[i][1]);
    if (v)
      json_object_set(o, from[i][0], v);
  }
  return o;
}

/* {vcpus, memory, disk} of one column of the core's resources. */
static json_t *resource_column(uint64_t vcpus, uint64_t memory, uint64_t disk) {
  return json_pack("{s:I,s:I,s:I}", "vcpus", (json_int_t)vcpus, "memory",
                   (json_int_t)memory, "disk", (json_int_t)disk);
}

/* What the core reserves for the host, what VMs hold and what they may
 * still take, as admission control counts them (vmh_core.host_resources;
 * overcommit included): "reserved", "allocated", "available"; null when
 * the core cannot say. */
static void host_resources(json_t *rec, const struct vmh_core *core) {
  struct vmh_host_resources h = {.struct_size = sizeof h};
  bool have = VMH_HAS_FIELD(core, host_resources) && core->host_resources &&
              core->host_resources(&h, NULL, NULL, 0) == 0;
  json_object_set_new(rec, "reserved",
                      have ? resource_column(h.vcpus_reserved,
                                             h.memory_reserved, h.disk_reserved)
                           : json_null());
  json_object_set_new(
      rec, "allocated",
      have ? resource_column(h.vcpus_allocated, h.memory_allocated,
                             h.disk_allocated)
           : json_null());
  json_object_set_new(
      rec, "available",
      have ? resource_column(h.vcpus_available, h.memory_available,
                             h.disk_available)
           : json_null());
}

/* The front-end instances and every plugin, from plugin_list. */
static void plugins(json_t *rec, json_t *list) {
  json_t *all = json_array(), *fes = json_array();
  size_t i;
  json_t *p;
  json_array_foreach(list, i, p) {
    json_array_append_new(
        all, json_pack("{s:O?,s:O?,s:O?}", "name", json_object_get(p, "name"),
                       "kind", json_object_get(p, "kind"), "version",
                       json_object_get(p, "version")));
    const char *kind = json_string_value(json_object_get(p, "kind"));
    if (kind == NULL || strcmp(kind, "frontend"))
      continue;
    size_t j;
    json_t *inst;
    json_array_foreach(json_object_get(p, "instances"), j, inst)
        json_array_append_new(fes,
                              json_pack("{s:O,s:O?}", "name", inst, "plugin",
                                        json_object_get(p, "name")));
  }
  json_object_set_new(rec, "plugins", all);
  json_object_set_new(rec, "frontends", fes);
}

static json_t *vm_counts(json_t *vms) {
  size_t i, running = 0;
  json_t *vm;
  json_array_foreach(vms, i, vm) {
    const char *s = json_string_value(json_object_get(vm, "state"));
    if (s && !strcmp(s, "running"))
      running++;
  }
  return json_pack("{s:I,s:I}", "total", (json_int_t)json_array_size(vms),
                   "running", (json_int_t)running);
}

/* The node record as JSON text (caller frees), NULL when out of memory or
 * when the core did not answer. */
static char *node_record(struct cluster *cl) {
  const char *status = cl->draining ? "draining" : "up";
  json_t *vms = core_wait(cl->core->vm_list);
  json_t *hosts = core_wait(cl->core->host_info);
  json_t *plist = core_wait(cl->core->plugin_list);
  json_t *h = json_array_get(hosts, 0);
  char lease[24];
  snprintf(lease, sizeof lease, "%" PRIx64, (uint64_t)cl->lease);
  json_t *rec =
      json_pack("{s:s,s:s,s:s,s:O?,s:o,s:o,s:o,s:o,s:s,s:I,s:I}", "name",
                cl->c.node_name, "status", status, "version", cl_host->version,
                "hostname", json_object_get(h, "hostname"), "addresses",
                str_array(cl->c.addresses, cl->c.n_addresses), "api_endpoints",
                str_array(cl->c.api_endpoints, cl->c.n_api_endpoints),
                "capacity", capacity(h), "vms", vm_counts(vms), "lease", lease,
                "started", (json_int_t)cl->started, "heartbeat",
                (json_int_t)(cl_wall_us() / 1000000));
  char *text = NULL;
  if (rec && vms && hosts && plist) {
    plugins(rec, plist);
    host_resources(rec, cl->core);
    text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
  }
  json_decref(rec);
  json_decref(vms);
  json_decref(hosts);
  json_decref(plist);
  return text;
}

/* ---- etcd -------------------------------------------------------------- */

/* A failed call as a result, its message in cl->error. */
static int failed(struct cluster *cl, int r, const char *what) {
  char msg[sizeof cl->etcd.err + 128];
  snprintf(msg, sizeof msg, "%s: %s", what,
           r == ETCD_ENOMEM ? "out of memory" : cl->etcd.err);
  cl_host->counter_add(cl->inst, "errors_total", 1);
  cl_set_status(cl, -1, msg);
  return REG_NET;
}

/* Run a txn whose success branch is `ops`, guarded by our lease on the
 * node record. */
static int guarded_txn(struct cluster *cl, json_t *ops, const char *what) {
  bool ok;
  int r = etcd_txn(&cl->etcd,
                   json_pack("[o]", etcd_cmp_lease(cl->node_key, cl->lease)),
                   ops, json_array(), &ok, NULL);
  if (r < 0)
    return failed(cl, r, what);
  pthread_mutex_lock(&cl->lock);
  cl->txns++;
  pthread_mutex_unlock(&cl->lock);
  cl_host->counter_add(cl->inst, "txns_total", 1);
  if (!ok) {
    cl_set_status(cl, -1, "the node record is gone or no longer ours");
    return REG_LOST;
  }
  return REG_OK;
}

static void save_lease(struct cluster *cl) {
  char text[24];
  int n = snprintf(text, sizeof text, "%" PRId64 "\n", cl->lease);
  if (cl->lease_file && atomic_write(cl->lease_file, text, (size_t)n, 0600) < 0)
    cl_host->log(cl->inst, VMH_LOG_WARN,
                 "cannot write %s: %s (a restart within lease_ttl will find "
                 "its node name taken until the lease expires)",
                 cl->lease_file, strerror(errno));
}

/* The lease our previous run wrote, 0: none. */
static int64_t old_lease(struct cluster *cl) {
  _cleanup_fclose_ FILE *f =
      cl->lease_file ? fopen(cl->lease_file, "re") : NULL;
  long long v = 0;
  if (f == NULL || fscanf(f, "%lld", &v) != 1)
    return 0;
  return v;
}

/* The kv of the record from a failed create-if-absent txn's range. */
static json_t *taken_kv(json_t *ans) {
  json_t *resp = json_array_get(json_object_get(ans, "responses"), 0);
  json_t *range = json_object_get(resp, "response_range");
  return json_array_get(json_object_get(range, "kvs"), 0);
}

/* A clear message naming who holds the node name. */
static void conflict(struct cluster *cl, json_t *kv) {
  _cleanup_free_ char *value = etcd_bytes(kv, "value");
  json_t *rec = value ? json_loads(value, 0, NULL) : NULL;
  _cleanup_free_ char *addrs =
      rec ? json_dumps(json_object_get(rec, "addresses"), JSON_COMPACT) : NULL;
  char msg[sizeof cl->error];
  snprintf(msg, sizeof msg,
           "node name '%s' is taken: %s in etcd belongs to another vmhostd "
           "(hostname %s, addresses %s, lease %" PRIx64
           "); give this host its own node_name, or stop the other one",
           cl->c.node_name, cl->node_key,
           json_string_value(json_object_get(rec, "hostname"))
               ? json_string_value(json_object_get(rec, "hostname"))
               : "?",
           addrs ? addrs : "?", (uint64_t)etcd_int(kv, "lease", 0));
  json_decref(rec);
  cl_set_status(cl, CS_CONFLICT, msg);
}

/* Put the record under `lease` if `cmp` holds.  1: done, 0: cmp failed
 * (*ret_kv: the record there, a new reference), or REG_NET. */
static int put_record(struct cluster *cl, json_t *cmp, const char *rec,
                      json_t **ret_kv) {
  json_t *ans = NULL;
  bool ok;
  int r = etcd_txn(&cl->etcd, json_pack("[o]", cmp),
                   json_pack("[o]", etcd_put(cl->node_key, rec, cl->lease)),
                   json_pack("[{s:o}]", "request_range",
                             etcd_range(cl->node_key, NULL, false)),
                   &ok, &ans);
  if (r < 0)
    return failed(cl, r, "registering the node");
  if (!ok && ret_kv)
    *ret_kv = json_incref(taken_kv(ans));
  json_decref(ans);
  return ok;
}

int reg_register(struct cluster *cl) {
  int r;
  cl->registered = false;
  if ((r = etcd_lease_grant(&cl->etcd, cl->c.lease_ttl_s, &cl->lease)) < 0) {
    cl->lease = 0;
    return failed(cl, r, "granting a lease");
  }
  _cleanup_free_ char *rec = node_record(cl);
  if (rec == NULL) {
    reg_revoke(cl);
    return failed(cl, ETCD_ENOMEM, "the node record");
  }
  json_t *kv = NULL;
  r = put_record(cl, etcd_cmp_absent(cl->node_key), rec, &kv);
  int64_t prev = old_lease(cl);
  if (r == 0 && prev && etcd_int(kv, "lease", 0) == prev) {
    /* Our previous run's record (killed before it could revoke): take it
     * over, then end that lease and the inventory under it. */
    json_decref(kv);
    kv = NULL;
    r = put_record(cl, etcd_cmp_lease(cl->node_key, prev), rec, &kv);
    if (r == 1) {
      int64_t mine = cl->lease;
      cl->lease = prev;
      reg_revoke(cl);
      cl->lease = mine;
      cl_host->log(cl->inst, VMH_LOG_INFO,
                   "took over the record of this node's previous run (lease "
                   "%" PRIx64 ")",
                   (uint64_t)prev);
    }
  }
  if (r != 1) {
    if (r == 0)
      conflict(cl, kv);
    json_decref(kv);
    reg_revoke(cl);
    return r == 0 ? REG_CONFLICT : REG_NET;
  }
  json_decref(kv);
  cl->registered = true;
  save_lease(cl);
  pthread_mutex_lock(&cl->lock);
  cl->registrations++;
  cl->lease_ttl = cl->c.lease_ttl_s;
  cl->lease_shown = cl->lease;
  cl->endpoint_shown = etcd_endpoint(&cl->etcd);
  cl->last_heartbeat_us = cl_wall_us();
  pthread_mutex_unlock(&cl->lock);
  cl_publish(cl);
  cl_host->counter_add(cl->inst, "registrations_total", 1);
  cl_host->gauge_set(cl->inst, "lease_ttl_seconds", cl->c.lease_ttl_s);
  cl_host->log(cl->inst, VMH_LOG_INFO,
               "registered as %s in etcd at %s over %s (lease %" PRIx64
               ", ttl %" PRId64 " s)",
               cl->node_key, etcd_endpoint(&cl->etcd), etcd_protocol(&cl->etcd),
               (uint64_t)cl->lease, cl->c.lease_ttl_s);
  return reg_flush(cl, true);
}

int reg_keepalive(struct cluster *cl) {
  int64_t ttl;
  int r = etcd_lease_keepalive(&cl->etcd, cl->lease, &ttl);
  if (r < 0)
    return failed(cl, r, "keeping the lease alive");
  pthread_mutex_lock(&cl->lock);
  cl->lease_ttl = ttl;
  pthread_mutex_unlock(&cl->lock);
  cl_publish(cl);
  cl_host->counter_add(cl->inst, "keepalives_total", 1);
  if (ttl <= 0) {
    cl_set_status(cl, -1, "the lease expired");
    return REG_LOST;
  }
  return REG_OK;
}

int reg_heartbeat(struct cluster *cl) {
  int64_t t0 = cl_mono_us();
  _cleanup_free_ char *rec = node_record(cl);
  if (rec == NULL)
    return failed(cl, ETCD_ENOMEM, "the node record");
  int r =
      guarded_txn(cl, json_pack("[o]", etcd_put(cl->node_key, rec, cl->lease)),
                  "the heartbeat");
  if (r < 0)
    return r;
  int64_t dt = cl_mono_us() - t0;
  pthread_mutex_lock(&cl->lock);
  cl->heartbeats++;
  cl->last_heartbeat_us = cl_wall_us();
  cl->heartbeat_latency_us = dt;
  cl->endpoint_shown = etcd_endpoint(&cl->etcd);
  pthread_mutex_unlock(&cl->lock);
  cl_publish(cl);
  cl_host->counter_add(cl->inst, "heartbeats_total", 1);
  cl_host->gauge_set(cl->inst, "heartbeat_latency_us", dt);
  return REG_OK;
}

/* ---- the inventory ----------------------------------------------------- */

/* The VM keys etcd holds under our prefix now (a map of owned keys). */
static int etcd_vm_keys(struct cluster *cl, struct strmap *keys) {
  _cleanup_free_ char *end = etcd_prefix_end(cl->vms_prefix);
  json_t *ans = NULL;
  int r = end ? etcd_call(&cl->etcd, "/v3/kv/range",
                          etcd_range(cl->vms_prefix, end, true), &ans)
              : ETCD_ENOMEM;
  if (r < 0)
    return failed(cl, r, "listing the inventory");
  size_t i;
  json_t *kv;
  json_array_foreach(json_object_get(ans, "kvs"), i, kv) {
    char *k = etcd_bytes(kv, "key");
    if (k == NULL || strmap_put(keys, k, k) < 0)
      free(k);
  }
  json_decref(ans);
  return REG_OK;
}

void reg_keys_free(struct strmap *m) {
  for (size_t i = 0; i < m->cap; i++)
    free((char *)m->slots[i].key);
  strmap_free(m);
}

/* Send ops in transactions of TXN_OPS. */
static int send_ops(struct cluster *cl, json_t *ops) {
  size_t n = json_array_size(ops);
  for (size_t at = 0; at < n; at += TXN_OPS) {
    json_t *batch = json_array();
    for (size_t i = at; batch && i < n && i < at + TXN_OPS; i++)
      json_array_append(batch, json_array_get(ops, i));
    int r = guarded_txn(cl, batch, "writing the inventory");
    if (r < 0)
      return r;
    cl_host->counter_add(cl->inst, "inventory_txns_total", 1);
    cl_host->counter_add(cl->inst, "inventory_ops_total",
                         (n - at < TXN_OPS ? n - at : TXN_OPS));
  }
  return REG_OK;
}

/* What the inventory wrote for one VM (the cache a flush diffs against):
 * its key (the map's key too) and value. */
struct written {
  char *key;
  char *text; /* NULL in a change: the key is to be deleted */
};

static void written_free(struct written *w) {
  if (w) {
    free(w->key);
    free(w->text);
    free(w);
  }
}

void reg_written_free(struct strmap *m) {
  for (size_t i = 0; i < m->cap; i++)
    written_free(m->slots[i].value);
  strmap_free(m);
}

/* Record a put (text) or delete (NULL) of key in ops and changes. */
static int change(json_t *ops, struct ptrvec *changes, char *key, char *text,
                  int64_t lease) {
  struct written *w = calloc(1, sizeof *w);
  json_t *op = text ? etcd_put(key, text, lease) : etcd_delete(key);
  if (w == NULL || op == NULL || json_array_append_new(ops, op) < 0 ||
      ptrvec_push(changes, w) < 0) {
    free(w);
    free(key);
    free(text);
    return -1;
  }
  w->key = key;
  w->text = text;
  return 0;
}

/* The changes that bring etcd in line with the VM list `vms`: a put for
 * each VM whose entry differs from what was written, a delete for each
 * written key no longer listed and each key of `stale` (what etcd holds,
 * when resyncing) not listed. */
static int inventory_ops(struct cluster *cl, json_t *vms, struct strmap *stale,
                         json_t *ops, struct ptrvec *changes) {
  struct strmap listed = {0}; /* keys of this listing, owned by `keys` */
  struct ptrvec keys = {0};
  int r = 0;
  size_t i;
  json_t *vm;
  json_array_foreach(vms, i, vm) {
    const char *id = json_string_value(json_object_get(vm, "id"));
    char *key = NULL, *text = NULL;
    json_t *e = id ? vm_entry(vm) : NULL;
    if (id == NULL)
      continue;
    if (e == NULL ||
        (text = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
        asprintf(&key, "%s%s", cl->vms_prefix, id) < 0 ||
        ptrvec_push(&keys, key) < 0 || strmap_put(&listed, key, key) < 0) {
      json_decref(e);
      free(text);
      if (keys.n == 0 || keys.v[keys.n - 1] != key)
        free(key);
      r = -1;
      break;
    }
    json_decref(e);
    if (stale)
      free(strmap_remove(stale, key));
    struct written *w = strmap_get(&cl->written, key);
    char *k2 = NULL;
    if (w && !strcmp(w->text, text)) {
      free(text);
      continue;
    }
    if ((k2 = strdup(key)) == NULL ||
        change(ops, changes, k2, text, cl->lease) < 0) {
      if (k2 == NULL)
        free(text);
      r = -1;
      break;
    }
  }
  for (size_t j = 0; r == 0 && j < cl->written.cap; j++) {
    const char *k = cl->written.slots[j].key;
    char *k2;
    if (k && !strmap_get(&listed, k) &&
        ((k2 = strdup(k)) == NULL || change(ops, changes, k2, NULL, 0) < 0))
      r = -1;
  }
  for (size_t j = 0; r == 0 && stale && j < stale->cap; j++) {
    const char *k = stale->slots[j].key;
    char *k2;
    if (k && !strmap_get(&listed, k) &&
        ((k2 = strdup(k)) == NULL || change(ops, changes, k2, NULL, 0) < 0))
      r = -1;
  }
  strmap_free(&listed);
  for (size_t j = 0; j < keys.n; j++)
    free(keys.v[j]);
  ptrvec_free(&keys);
  return r;
}

/* After the txns went through: the cache says what etcd holds. */
static void apply(struct cluster *cl, struct ptrvec *changes) {
  for (size_t i = 0; i < changes->n; i++) {
    struct written *w = changes->v[i];
    written_free(strmap_remove(&cl->written, w->key));
    if (w->text == NULL || strmap_put(&cl->written, w->key, w) < 0) {
      /* Deleted (or no memory to remember it: written again next time). */
      written_free(w);
    }
    changes->v[i] = NULL;
  }
}

int reg_flush(struct cluster *cl, bool resync) {
  struct strmap stale = {0};
  struct ptrvec changes = {0};
  pthread_mutex_lock(&cl->lock);
  resync |= cl->resync;
  cl->resync = false;
  cl->dirty = false;
  pthread_mutex_unlock(&cl->lock);
  /* Read before the listing: a change after it bumps it again. */
  uint64_t gen =
      VMH_HAS_FIELD(cl->core, vm_generation) ? cl->core->vm_generation() : 0;
  if (resync)
    reg_written_free(&cl->written);
  int r = resync ? etcd_vm_keys(cl, &stale) : REG_OK;
  json_t *vms = r == REG_OK ? core_wait(cl->core->vm_list) : NULL;
  json_t *ops = json_array();
  if (r == REG_OK &&
      (vms == NULL || ops == NULL ||
       inventory_ops(cl, vms, resync ? &stale : NULL, ops, &changes) < 0))
    r = failed(cl, ETCD_ENOMEM, "the inventory");
  if (r == REG_OK)
    r = send_ops(cl, ops);
  if (r == REG_OK) {
    apply(cl, &changes);
    cl->flushed_gen = gen;
  } else {
    /* Start over from the whole list once etcd is back. */
    pthread_mutex_lock(&cl->lock);
    cl->resync = true;
    pthread_mutex_unlock(&cl->lock);
  }
  for (size_t i = 0; i < changes.n; i++)
    written_free(changes.v[i]);
  ptrvec_free(&changes);
  json_decref(ops);
  json_decref(vms);
  reg_keys_free(&stale);
  return r;
}

bool reg_vms_changed(struct cluster *cl) {
  return VMH_HAS_FIELD(cl->core, vm_generation) &&
         cl->core->vm_generation() != cl->flushed_gen;
}

void reg_revoke(struct cluster *cl) {
  if (cl->lease == 0)
    return;
  int r = etcd_lease_revoke(&cl->etcd, cl->lease);
  if (r < 0)
    cl_host->log(cl->inst, VMH_LOG_WARN,
                 "cannot revoke lease %" PRIx64 " (it expires in %" PRId64
                 " s): %s",
                 (uint64_t)cl->lease, cl->c.lease_ttl_s, cl->etcd.err);
  cl->lease = 0;
  cl->registered = false;
}
