/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2conf — h2server's keys in a front-end's config (see h2server.h and
 * etc/plugins/rest.yaml). */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "h2int.h"
#include "netcommon.h"

/* A path as written, or resolved against the directory of the config file
 * it was read from (relative paths in the config are relative to it). */
static char *resolve(const struct vmh_host *host, const struct vmh_config *node,
                     const char *path) {
  if (!path)
    return NULL;
  if (path[0] == '/')
    return strdup(path);
  const char *where = host->config_where(node);
  const char *colon = where ? strchr(where, ':') : NULL;
  const char *slash =
      where
          ? memrchr(where, '/', colon ? (size_t)(colon - where) : strlen(where))
          : NULL;
  if (!slash)
    return strdup(path);
  size_t dl = (size_t)(slash - where);
  char *r = malloc(dl + 1 + strlen(path) + 1);
  if (r) {
    memcpy(r, where, dl);
    r[dl] = '/';
    strcpy(r + dl + 1, path);
  }
  return r;
}

static int read_listen(const struct vmh_host *host,
                       const struct vmh_config *cfg, struct h2s_conf *c) {
  const struct vmh_config *list, *el;
  uint32_t n;
  int r = host->config_list(cfg, "listen", &list, &n, VMH_CFG_REQUIRED);
  if (r < 0)
    return r;
  if (n == 0) {
    host->error("%s: 'listen' needs at least one listener",
                host->config_where(list));
    return VMH_EINVAL;
  }
  c->listen = calloc(n, sizeof *c->listen);
  if (!c->listen)
    return VMH_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    const char *addr;
    int tls, insecure;
    if ((r = host->config_at(list, i, &el)) < 0 ||
        (r = host->config_string(el, "address", NULL, &addr,
                                 VMH_CFG_REQUIRED)) < 0 ||
        (r = host->config_bool(el, "tls", 0, &tls, 0)) < 0 ||
        (r = host->config_bool(el, "insecure", 0, &insecure, 0)) < 0)
      return r;
    bool path = addr[0] == '/' || addr[0] == '.';
    char h[256];
    unsigned port;
    const char *why;
    if (!path && net_split_hostport(addr, h, sizeof h, 1, &port, &why) < 0) {
      host->error("%s: listener '%s': %s",
                  host->config_key_where(el, "address"), addr, why);
      return VMH_EINVAL;
    }
    c->listen[i].address = path ? resolve(host, el, addr) : strdup(addr);
    c->listen[i].tls = tls;
    c->listen[i].insecure = insecure;
    c->n_listen = i + 1;
    if (!c->listen[i].address)
      return VMH_ENOMEM;
    if ((r = h2auth_check_listener(host, el, &c->listen[i])) < 0)
      return r;
  }
  return 0;
}

static int read_tls(const struct vmh_host *host, const struct vmh_config *cfg,
                    struct h2s_conf *c) {
  const struct vmh_config *t, *names;
  const char *cert, *key, *ca, *minv;
  uint32_t n;
  int r = host->config_map(cfg, "tls", &t, 0);
  if (r < 0 || !t)
    return r;
  if ((r = host->config_string(t, "cert", NULL, &cert, 0)) < 0 ||
      (r = host->config_string(t, "key", NULL, &key, 0)) < 0 ||
      (r = host->config_string(t, "client_ca", NULL, &ca, 0)) < 0 ||
      (r = host->config_string(t, "min_version", "1.3", &minv, 0)) < 0 ||
      (r = host->config_list(t, "hostnames", &names, &n, 0)) < 0)
    return r;
  if (!cert != !key) {
    host->error("%s: 'cert' and 'key' go together", host->config_where(t));
    return VMH_EINVAL;
  }
  if (strcmp(minv, "1.3") && strcmp(minv, "1.2")) {
    host->error("%s: 'min_version' is \"1.3\" or \"1.2\", not \"%s\"",
                host->config_where(t), minv);
    return VMH_EINVAL;
  }
  c->tls12 = !strcmp(minv, "1.2");
  if ((cert && !(c->cert = resolve(host, t, cert))) ||
      (key && !(c->key = resolve(host, t, key))) ||
      (ca && !(c->client_ca = resolve(host, t, ca))))
    return VMH_ENOMEM;
  c->hostnames = calloc(n ? n : 1, sizeof *c->hostnames);
  if (!c->hostnames)
    return VMH_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    const struct vmh_config *el;
    const char *name;
    if ((r = host->config_at(names, i, &el)) < 0 ||
        (r = host->config_string(el, NULL, NULL, &name, VMH_CFG_REQUIRED)) < 0)
      return r;
    if (!(c->hostnames[i] = strdup(name)))
      return VMH_ENOMEM;
    c->n_hostnames = i + 1;
  }
  return 0;
}

static int read_limits(const struct vmh_host *host,
                       const struct vmh_config *cfg, struct h2s_conf *c) {
  const struct vmh_config *l;
  int64_t conns, per_peer, streams, rps, resets, idle, req, hs;
  uint64_t hdr, body, sbuf, cbuf, smem;
  int64_t speer;
  int r = host->config_map(cfg, "limits", &l, 0);
  if (r < 0)
    return r;
  /* A missing map reads every key as its default. */
  if ((r = host->config_int(l, "max_connections", 1, 1000000, 1024, &conns,
                            0)) < 0 ||
      (r = host->config_int(l, "max_connections_per_peer", 1, 1000000, 64,
                            &per_peer, 0)) < 0 ||
      (r = host->config_int(l, "max_streams", 1, 10000, 100, &streams, 0)) <
          0 ||
      (r = host->config_size(l, "max_header_size", 1024, 1 << 20, 16384, &hdr,
                             0)) < 0 ||
      (r = host->config_size(l, "max_body_size", 0, UINT64_C(1) << 32, 1 << 20,
                             &body, 0)) < 0 ||
      (r = host->config_int(l, "requests_per_second", 1, 1000000, 1000, &rps,
                            0)) < 0 ||
      (r = host->config_int(l, "resets_per_second", 1, 1000000, 200, &resets,
                            0)) < 0 ||
      (r = host->config_int(l, "idle_timeout", 1, 86400, 120, &idle, 0)) < 0 ||
      (r = host->config_int(l, "request_timeout", 1, 3600, 10, &req, 0)) < 0 ||
      (r = host->config_int(l, "handshake_timeout", 1, 3600, 10, &hs, 0)) < 0 ||
      (r = host->config_size(l, "stream_buffer", 4096, 64 << 20, 256 << 10,
                             &sbuf, 0)) < 0 ||
      (r = host->config_size(l, "stream_memory", 64 << 10, UINT64_C(1) << 40,
                             64 << 20, &smem, 0)) < 0 ||
      (r = host->config_int(l, "max_streams_per_peer", 1, 1000000, 256, &speer,
                            0)) < 0 ||
      (r = host->config_size(l, "max_connection_buffer", 64 << 10,
                             (UINT64_C(1) << 31) - 1, 4 << 20, &cbuf, 0)) < 0)
    return r;
  /* A body as large as allowed must fit in the window, or it would stall. */
  if (cbuf < body) {
    host->error("limits: max_connection_buffer (%" PRIu64
                ") must be at least max_body_size (%" PRIu64 ")",
                cbuf, body);
    return VMH_EINVAL;
  }
  c->max_connections = (uint32_t)conns;
  c->max_connections_per_peer = (uint32_t)per_peer;
  c->max_streams = (uint32_t)streams;
  c->max_header_size = (uint32_t)hdr;
  c->max_body_size = body;
  c->max_conn_buffer = cbuf;
  c->requests_per_s = (uint32_t)rps;
  c->resets_per_s = (uint32_t)resets;
  c->idle_timeout_s = (uint32_t)idle;
  c->request_timeout_s = (uint32_t)req;
  c->handshake_timeout_s = (uint32_t)hs;
  c->stream_buffer = (uint32_t)sbuf;
  c->stream_memory = smem;
  c->max_streams_per_peer = (uint32_t)speer;
  return 0;
}

int h2s_conf_read(const struct vmh_host *host, const struct vmh_config *cfg,
                  struct h2s_conf *ret) {
  memset(ret, 0, sizeof *ret);
  int r;
  if ((r = read_listen(host, cfg, ret)) < 0 ||
      (r = read_tls(host, cfg, ret)) < 0 ||
      (r = read_limits(host, cfg, ret)) < 0 ||
      (r = h2auth_conf_read(host, cfg, ret)) < 0 ||
      (r = host->config_bool(cfg, "access_log", 1, &ret->access_log, 0)) < 0)
    return r;
  return 0;
}

void h2s_conf_free(struct h2s_conf *c) {
  for (uint32_t i = 0; i < c->n_listen; i++)
    free(c->listen[i].address);
  free(c->listen);
  for (uint32_t i = 0; i < c->n_hostnames; i++)
    free(c->hostnames[i]);
  free(c->hostnames);
  free(c->cert);
  free(c->key);
  free(c->client_ca);
  h2auth_conf_free(c);
  memset(c, 0, sizeof *c);
}
