/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cluster front-end's shared state: the config (frontend-cluster.c
 * reads it), the registration in etcd (registry.c keeps it), the status the
 * API shows.  One struct cluster per instance. */
#ifndef VMHOST_CLUSTER_H
#define VMHOST_CLUSTER_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <vmhost/vmhost-plugin.h>

#include "etcd.h"
#include "strmap.h"

struct cconf {
  char **endpoints; /* base URLs without a trailing '/', owned */
  size_t n_endpoints;
  const char *ca, *cert, *key; /* borrowed from the config, or NULL */
  const char *prefix;          /* "/vmhost/": starts and ends with '/' */
  char *node_name;             /* owned */
  int64_t heartbeat_s;
  int64_t lease_ttl_s;
  int64_t timeout_ms;     /* per request and endpoint */
  int64_t retry_max_ms;   /* the longest pause between retries */
  const char **addresses; /* borrowed strings, owned array */
  size_t n_addresses;
  const char **api_endpoints; /* borrowed strings, owned array */
  size_t n_api_endpoints;
};

/* Where the registration stands (the API's "status"). */
enum cstatus {
  CS_STARTING = 0, /* not registered yet */
  CS_UP,           /* registered, heartbeats go through */
  CS_DEGRADED,     /* etcd unreachable: retrying */
  CS_CONFLICT,     /* another vmhostd holds the node name: retrying */
  CS_DRAINING,     /* vmhostd is stopping */
  CS_STOPPED,      /* the lease is revoked */
};

struct cluster {
  const struct vmh_instance *inst;
  struct cconf c;
  char *node_key;   /* <prefix>nodes/<name> */
  char *vms_prefix; /* <prefix>nodes/<name>/vms/ */
  char *lease_file; /* state_dir/lease: the lease of the last run */
  const struct vmh_core *core;

  /* The worker thread's own (and start/stop's, when it does not run). */
  struct etcd etcd;
  int64_t lease; /* 0: none */
  bool registered;
  bool draining;     /* the record says "draining" from now on */
  int64_t started;   /* seconds since the epoch */
  unsigned failures; /* in a row, for the backoff */
  uint64_t rng;
  struct strmap written; /* VM key -> struct written: what etcd holds */
  uint64_t flushed_gen;  /* the core's VM generation the last flush saw */

  pthread_t thread;
  bool running;
  uint64_t sub_id;
  bool subscribed;

  /* Shared with the core's event callbacks and the API, under lock. */
  pthread_mutex_t lock;
  pthread_cond_t cond; /* CLOCK_MONOTONIC */
  bool stopping;
  bool dirty;                /* a VM event came since the last flush */
  bool resync;               /* every VM, and drop keys of VMs gone */
  int status;                /* enum cstatus */
  char error[1024];          /* the last failure, "" when none */
  int64_t last_heartbeat_us; /* wall clock, 0: none yet */
  int64_t heartbeat_latency_us;
  int64_t lease_ttl;          /* remaining, as the last keepalive said */
  int64_t lease_shown;        /* the lease registered last */
  const char *endpoint_shown; /* the endpoint that answered last */
  uint64_t txns, heartbeats, registrations;
};

/* The core's services to plugins (set by load()). */
extern const struct vmh_host *cl_host;

/* Microseconds on the monotonic and the wall clock. */
int64_t cl_mono_us(void);
int64_t cl_wall_us(void);

/* Set the status (and the error, NULL: keep it, "": clear it) under the
 * lock, with the metrics that mirror it (status -1: keep it).  Returns the
 * status before. */
int cl_set_status(struct cluster *cl, int status, const char *error);

/* Publish the status document (host->status_set) from the fields above:
 * after any of them changed. */
void cl_publish(struct cluster *cl);

/* ---- registry.c: what is written to etcd (the worker thread) ---------- */

enum reg_result {
  REG_OK = 0,
  REG_NET = -1,      /* etcd unreachable or failing: retry later */
  REG_CONFLICT = -2, /* another vmhostd holds the node name */
  REG_LOST = -3,     /* our record or lease is gone: register again */
};

/* Grant a lease and create the node record under it, or take over the
 * record our previous run left (its lease in lease_file); then the whole
 * inventory.  The message of a failure in cl->error. */
int reg_register(struct cluster *cl);
/* Keep the lease alive. */
int reg_keepalive(struct cluster *cl);
/* Rewrite the node record (status "up", or "draining"). */
int reg_heartbeat(struct cluster *cl);
/* Bring the inventory in line with the core's VM list: what differs from
 * what was written (with resync: everything, and etcd's keys of VMs gone
 * are deleted). */
int reg_flush(struct cluster *cl, bool resync);
/* Whether a VM record may have changed since the last flush (the core's
 * VM generation): an event can come before the record it tells of. */
bool reg_vms_changed(struct cluster *cl);
/* Free the cache of what was written. */
void reg_written_free(struct strmap *m);
/* Free a map of owned ids or keys (the key is the value). */
void reg_keys_free(struct strmap *m);
/* Revoke the lease: the record and inventory go at once. */
void reg_revoke(struct cluster *cl);

#endif
