/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <config.h>

#include "etcd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "cleanup.h"

/* An answer is a small JSON document; a bigger one is refused rather than
 * buffered without bound (a range of every VM key of a node with 100k VMs
 * stays far below it). */
#define MAX_ANSWER (64u << 20)

struct buf {
  char *data;
  size_t len;
  bool too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *opaque) {
  struct buf *b = opaque;
  size_t n = size * nmemb;
  if (b->len + n > MAX_ANSWER) {
    b->too_big = true;
    return 0;
  }
  char *d = realloc(b->data, b->len + n + 1);
  if (d == NULL)
    return 0;
  memcpy(d + b->len, ptr, n);
  b->len += n;
  d[b->len] = '\0';
  b->data = d;
  return n;
}

int etcd_init(struct etcd *e, const char *const *endpoints, size_t n,
              const char *ca, const char *cert, const char *key,
              long timeout_ms) {
  memset(e, 0, sizeof *e);
  e->endpoints = endpoints;
  e->n_endpoints = n;
  e->timeout_ms = timeout_ms;
  if ((e->curl = curl_easy_init()) == NULL ||
      (e->headers =
           curl_slist_append(NULL, "Content-Type: application/json")) == NULL) {
    etcd_free(e);
    return -1;
  }
  CURL *c = e->curl;
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->headers);
  /* h2 through ALPN on TLS; HTTP/1.1 in clear (etcd's port also speaks
   * gRPC, which an h2c prior-knowledge request would reach). */
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, e->errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  if (ca)
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
  if (cert) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
    curl_easy_setopt(c, CURLOPT_SSLKEY, key);
  }
  return 0;
}

void etcd_free(struct etcd *e) {
  if (e->curl)
    curl_easy_cleanup(e->curl);
  curl_slist_free_all(e->headers);
  e->curl = NULL;
  e->headers = NULL;
}

const char *etcd_endpoint(const struct etcd *e) {
  return e->endpoints[e->cur];
}

const char *etcd_protocol(const struct etcd *e) {
  switch (e->http_version) {
    case CURL_HTTP_VERSION_1_0:
      return "HTTP/1.0";
    case CURL_HTTP_VERSION_1_1:
      return "HTTP/1.1";
    case CURL_HTTP_VERSION_2_0:
      return "HTTP/2";
    default:
      return "HTTP";
  }
}

/* One POST to one endpoint: ETCD_OK with the parsed answer, ETCD_EAPI when
 * etcd answered an error, ETCD_ENET when it did not answer at all. */
static int post(struct etcd *e, size_t at, const char *path, const char *body,
                json_t **ret) {
  _cleanup_free_ char *url = NULL;
  struct buf b = {0};
  if (asprintf(&url, "%s%s", e->endpoints[at], path) < 0)
    return ETCD_ENOMEM;
  e->errbuf[0] = '\0';
  curl_easy_setopt(e->curl, CURLOPT_URL, url);
  curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, &b);
  CURLcode cc = curl_easy_perform(e->curl);
  long status = 0;
  curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(e->curl, CURLINFO_HTTP_VERSION, &e->http_version);
  if (cc != CURLE_OK) {
    snprintf(e->err, sizeof e->err, "%s: %s", e->endpoints[at],
             b.too_big    ? "answer over 64 MiB"
             : *e->errbuf ? e->errbuf
                          : curl_easy_strerror(cc));
    free(b.data);
    return ETCD_ENET;
  }
  json_error_t jerr;
  json_t *j = b.data ? json_loads(b.data, 0, &jerr) : NULL;
  free(b.data);
  if (!json_is_object(j)) {
    snprintf(e->err, sizeof e->err,
             "%s%s answered HTTP %ld without a JSON object (is it etcd's v3 "
             "gateway?)",
             e->endpoints[at], path, status);
    json_decref(j);
    /* Not etcd, or a proxy in the way: try the next endpoint. */
    return ETCD_ENET;
  }
  json_t *err = json_object_get(j, "error");
  if (status != 200 || err) {
    const char *m = json_string_value(err);
    e->code = (long)json_integer_value(json_object_get(j, "code"));
    snprintf(e->err, sizeof e->err, "%s%s: HTTP %ld: %s", e->endpoints[at],
             path, status, m ? m : "no message");
    json_decref(j);
    return ETCD_EAPI;
  }
  *ret = j;
  return ETCD_OK;
}

int etcd_call(struct etcd *e, const char *path, json_t *body, json_t **ret) {
  _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (text == NULL) {
    snprintf(e->err, sizeof e->err, "out of memory");
    return ETCD_ENOMEM;
  }
  int r = ETCD_ENET;
  char all[sizeof e->err] = "";
  size_t len = 0;
  for (size_t i = 0; i < e->n_endpoints && r == ETCD_ENET; i++) {
    size_t at = (e->cur + i) % e->n_endpoints;
    if ((r = post(e, at, path, text, ret)) != ETCD_ENET)
      e->cur = at;
    else if (len < sizeof all)
      /* Every endpoint's reason, so that the message names them all. */
      len += (size_t)snprintf(all + len, sizeof all - len, "%s%s",
                              len ? "; " : "", e->err);
  }
  if (r == ETCD_ENET && e->n_endpoints > 1)
    snprintf(e->err, sizeof e->err, "%s", all);
  return r;
}

static json_t *b64(const char *s) {
  _cleanup_free_ char *enc = base64_encode(s, strlen(s));
  return enc ? json_string(enc) : NULL;
}

/* int64 fields go as strings, as the gateway writes them. */
static json_t *i64(int64_t v) {
  char s[24];
  snprintf(s, sizeof s, "%" PRId64, v);
  return json_string(s);
}

int64_t etcd_int(json_t *obj, const char *field, int64_t def) {
  json_t *v = json_object_get(obj, field);
  if (json_is_integer(v))
    return (int64_t)json_integer_value(v);
  const char *s = json_string_value(v);
  char *end;
  if (s == NULL || *s == '\0')
    return def;
  long long n = strtoll(s, &end, 10);
  return *end ? def : (int64_t)n;
}

char *etcd_bytes(json_t *kv, const char *field) {
  const char *s = json_string_value(json_object_get(kv, field));
  size_t len;
  return s ? (char *)base64_decode(s, &len) : NULL;
}

int etcd_lease_grant(struct etcd *e, int64_t ttl, int64_t *ret_id) {
  json_t *ans = NULL;
  int r = etcd_call(e, "/v3/lease/grant", json_pack("{s:o}", "TTL", i64(ttl)),
                    &ans);
  if (r < 0)
    return r;
  int64_t id = etcd_int(ans, "ID", 0);
  json_decref(ans);
  if (id == 0) {
    snprintf(e->err, sizeof e->err, "%s: lease grant answered no ID",
             etcd_endpoint(e));
    return ETCD_EAPI;
  }
  *ret_id = id;
  return 0;
}

int etcd_lease_keepalive(struct etcd *e, int64_t id, int64_t *ret_ttl) {
  json_t *ans = NULL;
  int r = etcd_call(e, "/v3/lease/keepalive", json_pack("{s:o}", "ID", i64(id)),
                    &ans);
  if (r < 0)
    return r;
  /* {"result":{"ID":…,"TTL":…}}; no TTL: the lease is gone. */
  *ret_ttl = etcd_int(json_object_get(ans, "result"), "TTL", 0);
  json_decref(ans);
  return 0;
}

int etcd_lease_revoke(struct etcd *e, int64_t id) {
  json_t *ans = NULL;
  int r =
      etcd_call(e, "/v3/lease/revoke", json_pack("{s:o}", "ID", i64(id)), &ans);
  json_decref(ans);
  /* NotFound (5): expired or revoked already. */
  return r == ETCD_EAPI && e->code == 5 ? 0 : r;
}

json_t *etcd_put(const char *key, const char *value, int64_t lease) {
  json_t *put = json_pack("{s:o,s:o}", "key", b64(key), "value", b64(value));
  if (put && lease && json_object_set_new(put, "lease", i64(lease)) < 0) {
    json_decref(put);
    return NULL;
  }
  return put ? json_pack("{s:o}", "request_put", put) : NULL;
}

json_t *etcd_delete(const char *key) {
  return json_pack("{s:{s:o}}", "request_delete_range", "key", b64(key));
}

json_t *etcd_range(const char *key, const char *range_end, bool keys_only) {
  json_t *r = json_pack("{s:o,s:b}", "key", b64(key), "keys_only", keys_only);
  if (r && range_end &&
      json_object_set_new(r, "range_end", b64(range_end)) < 0) {
    json_decref(r);
    return NULL;
  }
  return r;
}

json_t *etcd_cmp_absent(const char *key) {
  return json_pack("{s:o,s:s,s:s,s:s}", "key", b64(key), "target", "CREATE",
                   "result", "EQUAL", "create_revision", "0");
}

json_t *etcd_cmp_lease(const char *key, int64_t lease) {
  return json_pack("{s:o,s:s,s:s,s:o}", "key", b64(key), "target", "LEASE",
                   "result", "EQUAL", "lease", i64(lease));
}

char *etcd_prefix_end(const char *prefix) {
  /* The prefix with its last byte incremented (a prefix of 0xff bytes
   * cannot occur: ours are text). */
  char *end = strdup(prefix);
  size_t n = end ? strlen(end) : 0;
  if (n)
    end[n - 1]++;
  return end;
}

int etcd_txn(struct etcd *e, json_t *compare, json_t *success, json_t *failure,
             bool *ret_ok, json_t **ret) {
  json_t *ans = NULL;
  json_t *body = json_pack("{s:o,s:o,s:o}", "compare", compare, "success",
                           success, "failure", failure);
  if (body == NULL) {
    snprintf(e->err, sizeof e->err, "out of memory");
    return ETCD_ENOMEM;
  }
  int r = etcd_call(e, "/v3/kv/txn", body, &ans);
  if (r < 0)
    return r;
  *ret_ok = json_is_true(json_object_get(ans, "succeeded"));
  if (ret)
    *ret = ans;
  else
    json_decref(ans);
  return 0;
}
