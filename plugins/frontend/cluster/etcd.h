/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A client of etcd v3's JSON gateway (/v3/...) over libcurl: one easy
 * handle (its connections kept between requests), HTTP/2 where the server
 * offers it over TLS, client certificates, failover over several
 * endpoints.  Calls block the calling thread (the cluster plugin's own)
 * for at most the configured timeout per endpoint tried.  Not
 * thread-safe: one thread uses one struct etcd. */
#ifndef VMHOST_CLUSTER_ETCD_H
#define VMHOST_CLUSTER_ETCD_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* What went wrong in a call. */
enum etcd_err {
  ETCD_OK = 0,
  ETCD_ENET = -1,  /* no endpoint answered (e->err says why) */
  ETCD_EAPI = -2,  /* etcd answered an error (e->err, e->code) */
  ETCD_ENOMEM = -3 /* out of memory */
};

struct etcd {
  CURL *curl;
  struct curl_slist *headers;
  const char *const *endpoints; /* base URLs, borrowed */
  size_t n_endpoints;
  size_t cur; /* the endpoint that answered last */
  long timeout_ms;
  char errbuf[CURL_ERROR_SIZE];
  char err[512];     /* the last failure, for people */
  long code;         /* ETCD_EAPI: the gRPC code etcd answered */
  long http_version; /* CURL_HTTP_VERSION_* of the last answer */
};

/* Set up e (TLS files may be NULL: the system's CAs, no client
 * certificate).  Strings are borrowed and must outlive e.  0, or -1 when
 * libcurl cannot be set up. */
int etcd_init(struct etcd *e, const char *const *endpoints, size_t n,
              const char *ca, const char *cert, const char *key,
              long timeout_ms);
void etcd_free(struct etcd *e);

/* The endpoint that answered last (or is tried first next). */
const char *etcd_endpoint(const struct etcd *e);
/* The HTTP version of the last answer: "HTTP/2", "HTTP/1.1" … */
const char *etcd_protocol(const struct etcd *e);

/* POST body (stolen) to path ("/v3/kv/txn"), trying each endpoint from
 * the current one on a transport failure; the answer in *ret (a new
 * reference) on ETCD_OK. */
int etcd_call(struct etcd *e, const char *path, json_t *body, json_t **ret);

/* Lease operations.  grant: a new lease of ttl seconds, its id in *ret_id.
 * keepalive: *ret_ttl the lease's remaining TTL, 0 when it is gone.
 * revoke: the lease and every key under it are gone (a lease already gone
 * is not an error). */
int etcd_lease_grant(struct etcd *e, int64_t ttl, int64_t *ret_id);
int etcd_lease_keepalive(struct etcd *e, int64_t id, int64_t *ret_ttl);
int etcd_lease_revoke(struct etcd *e, int64_t id);

/* Transaction pieces (new references, NULL when out of memory). */
json_t *etcd_put(const char *key, const char *value, int64_t lease);
json_t *etcd_delete(const char *key);
json_t *etcd_range(const char *key, const char *range_end, bool keys_only);
/* Compares: the key was never created (create_revision 0); the key is
 * under this lease. */
json_t *etcd_cmp_absent(const char *key);
json_t *etcd_cmp_lease(const char *key, int64_t lease);
/* The end of the range of every key starting with prefix. */
char *etcd_prefix_end(const char *prefix);

/* Run a txn (compare, success and failure are stolen arrays); *ret_ok
 * whether the compares held, the answer in *ret (may be NULL). */
int etcd_txn(struct etcd *e, json_t *compare, json_t *success, json_t *failure,
             bool *ret_ok, json_t **ret);

/* An int64 field of an answer (the gateway writes them as strings); def
 * when absent (proto3 JSON leaves out zeros). */
int64_t etcd_int(json_t *obj, const char *field, int64_t def);
/* The decoded key or value of a kv of a range answer (caller frees); NULL
 * when absent or not base64. */
char *etcd_bytes(json_t *kv, const char *field);

#endif
