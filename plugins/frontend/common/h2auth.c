/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2auth — who is calling, and whether they may (see h2server.h): the
 * `auth` keys and `insecure` of the config, the identity of a connection
 * (unix-socket peer credentials, a verified client certificate with the
 * clientAuth key purpose), bearer tokens (plugins/common/authtoken.h), and
 * the answer to "may this request act as role R". */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <gnutls/x509.h>
#include <grp.h>
#include <inttypes.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "h2int.h"

/* ---- Config ---------------------------------------------------------------
 */

static int read_role(const struct vmh_host *host, const struct vmh_config *el,
                     int *ret) {
  const char *name;
  int r = host->config_string(el, "role", NULL, &name, VMH_CFG_REQUIRED);
  if (r < 0)
    return r;
  if ((*ret = auth_role_parse(name)) < 0) {
    host->error("%s: role is reader, operator or admin, not '%s'",
                host->config_key_where(el, "role"), name);
    return VMH_EINVAL;
  }
  return 0;
}

/* One entry of auth.clients: {subject: DN | sha256: FINGERPRINT, role}. */
static int read_client(const struct vmh_host *host, const struct vmh_config *el,
                       struct h2s_auth_map *m) {
  const char *subject, *sha;
  int r;
  if ((r = host->config_string(el, "subject", NULL, &subject, 0)) < 0 ||
      (r = host->config_string(el, "sha256", NULL, &sha, 0)) < 0 ||
      (r = read_role(host, el, &m->role)) < 0)
    return r;
  if (!subject == !sha) {
    host->error("%s: a client is named by 'subject' or by 'sha256' (one)",
                host->config_where(el));
    return VMH_EINVAL;
  }
  m->uid = m->gid = -1;
  if (!(m->name = strdup(subject ? subject : sha)))
    return VMH_ENOMEM;
  m->by_sha256 = sha != NULL;
  if (sha)
    for (char *p = m->name; *p; p++)
      *p = (char)toupper((unsigned char)*p);
  return 0;
}

/* One entry of auth.unix_peers: {uid | user | gid | group, role}. */
static int read_peer(const struct vmh_host *host, const struct vmh_config *el,
                     struct h2s_auth_map *m) {
  const char *user, *group;
  int64_t uid, gid;
  int r;
  if ((r = host->config_int(el, "uid", -1, INT32_MAX, -1, &uid, 0)) < 0 ||
      (r = host->config_int(el, "gid", -1, INT32_MAX, -1, &gid, 0)) < 0 ||
      (r = host->config_string(el, "user", NULL, &user, 0)) < 0 ||
      (r = host->config_string(el, "group", NULL, &group, 0)) < 0 ||
      (r = read_role(host, el, &m->role)) < 0)
    return r;
  if ((uid >= 0) + (gid >= 0) + !!user + !!group != 1) {
    host->error("%s: a peer is named by one of uid, user, gid, group",
                host->config_where(el));
    return VMH_EINVAL;
  }
  if (user) {
    struct passwd *pw = getpwnam(user);
    if (!pw) {
      host->error("%s: no user '%s' on this host",
                  host->config_key_where(el, "user"), user);
      return VMH_EINVAL;
    }
    uid = pw->pw_uid;
  }
  if (group) {
    struct group *gr = getgrnam(group);
    if (!gr) {
      host->error("%s: no group '%s' on this host",
                  host->config_key_where(el, "group"), group);
      return VMH_EINVAL;
    }
    gid = gr->gr_gid;
  }
  m->uid = uid;
  m->gid = gid;
  return 0;
}

typedef int (*read_fn)(const struct vmh_host *, const struct vmh_config *,
                       struct h2s_auth_map *);

static int read_maps(const struct vmh_host *host, const struct vmh_config *a,
                     const char *key, read_fn fn, struct h2s_auth_map **ret,
                     uint32_t *ret_n) {
  const struct vmh_config *list, *el;
  uint32_t n;
  int r = host->config_list(a, key, &list, &n, 0);
  if (r < 0 || !n)
    return r;
  if (!(*ret = calloc(n, sizeof **ret)))
    return VMH_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    if ((r = host->config_at(list, i, &el)) < 0 ||
        (r = fn(host, el, &(*ret)[i])) < 0)
      return r;
    *ret_n = i + 1;
  }
  return 0;
}

int h2auth_conf_read(const struct vmh_host *host, const struct vmh_config *cfg,
                     struct h2s_conf *c) {
  const struct vmh_config *a;
  int r = host->config_map(cfg, "auth", &a, 0);
  if (r < 0)
    return r;
  /* A missing map reads every key as its default. */
  if ((r = host->config_bool(a, "open_metrics", 0, &c->open_metrics, 0)) < 0 ||
      (r = read_maps(host, a, "clients", read_client, &c->clients,
                     &c->n_clients)) < 0 ||
      (r = read_maps(host, a, "unix_peers", read_peer, &c->unix_peers,
                     &c->n_unix_peers)) < 0)
    return r;
  return 0;
}

static void maps_free(struct h2s_auth_map *m, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    free(m[i].name);
  free(m);
}

void h2auth_conf_free(struct h2s_conf *c) {
  maps_free(c->clients, c->n_clients);
  maps_free(c->unix_peers, c->n_unix_peers);
}

/* Whether the host part of "host:port" / "[v6]:port" is a loopback
 * address (a name other than localhost counts as not). */
static bool loopback(const char *address) {
  char host[256];
  const char *e;
  if (address[0] == '[') {
    e = strchr(address, ']');
    if (!e)
      return false;
    address++;
  } else {
    e = strrchr(address, ':');
  }
  if (!e || (size_t)(e - address) >= sizeof host)
    return false;
  memcpy(host, address, (size_t)(e - address));
  host[e - address] = '\0';
  if (!strcmp(host, "localhost"))
    return true;
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

int h2auth_check_listener(const struct vmh_host *host,
                          const struct vmh_config *el,
                          const struct h2s_listen *l) {
  if (l->tls || l->address[0] == '/' || l->address[0] == '.' ||
      loopback(l->address) || l->insecure)
    return 0;
  host->error(
      "%s: listener %s is cleartext on an address other hosts reach: "
      "bearer tokens would cross the network readable; use 'tls: "
      "true', or set 'insecure: true' on it to accept that",
      host->config_where(el), l->address);
  return VMH_EINVAL;
}

/* ---- Connections ----------------------------------------------------------
 */

static void set_who(struct conn *c, int role, const char *fmt, ...)
    __attribute__((__format__(__printf__, 3, 4)));
static void set_who(struct conn *c, int role, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->who, sizeof c->who, fmt, ap);
  va_end(ap);
  c->role = role;
}

static bool in_groups(gid_t want, gid_t primary, const gid_t *g, size_t n) {
  if (want == primary)
    return true;
  for (size_t i = 0; i < n; i++)
    if (g[i] == want)
      return true;
  return false;
}

void h2auth_conn_unix(struct conn *c) {
  const struct h2s_conf *conf = c->s->conf;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    set_who(c, AUTH_NONE, "unix:?");
    return;
  }
  /* Root, and the daemon's own user (who could read its state anyway). */
  if (cred.uid == 0 || cred.uid == geteuid()) {
    set_who(c, AUTH_ADMIN, "uid:%u", (unsigned)cred.uid);
    return;
  }
  gid_t groups[64];
  socklen_t glen = sizeof groups;
  size_t ng = getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0
                  ? glen / sizeof groups[0]
                  : 0;
  int role = AUTH_NONE;
  for (uint32_t i = 0; i < conf->n_unix_peers; i++) {
    const struct h2s_auth_map *m = &conf->unix_peers[i];
    bool hit = m->uid >= 0 ? (uid_t)m->uid == cred.uid
                           : in_groups((gid_t)m->gid, cred.gid, groups, ng);
    if (hit && m->role > role)
      role = m->role;
  }
  set_who(c, role, "uid:%u", (unsigned)cred.uid);
}

void h2auth_conn_anonymous(struct conn *c) {
  set_who(c, AUTH_NONE, "anonymous");
}

/* The client certificate's leaf, imported; NULL when there is none. */
static gnutls_x509_crt_t peer_leaf(struct conn *c) {
  unsigned n = 0;
  const gnutls_datum_t *list = gnutls_certificate_get_peers(c->tls, &n);
  gnutls_x509_crt_t crt;
  if (!list || !n || gnutls_x509_crt_init(&crt) < 0)
    return NULL;
  if (gnutls_x509_crt_import(crt, &list[0], GNUTLS_X509_FMT_DER) < 0) {
    gnutls_x509_crt_deinit(crt);
    return NULL;
  }
  return crt;
}

static bool has_client_purpose(gnutls_x509_crt_t crt) {
  for (unsigned i = 0;; i++) {
    char oid[128];
    size_t len = sizeof oid;
    int r = gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &len, NULL);
    if (r == GNUTLS_E_SHORT_MEMORY_BUFFER)
      continue;
    if (r < 0)
      return false;
    if (!strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT))
      return true;
  }
}

int h2auth_conn_tls(struct conn *c, char *why, size_t len) {
  const struct h2s_conf *conf = c->s->conf;
  h2auth_conn_anonymous(c);
  if (!conf->client_ca)
    return 0;
  gnutls_x509_crt_t crt = peer_leaf(c);
  if (!crt) {
    snprintf(why, len, "no client certificate");
    return -1;
  }
  char dn[200] = "?";
  size_t dlen = sizeof dn;
  gnutls_x509_crt_get_dn(crt, dn, &dlen);
  if (!has_client_purpose(crt)) {
    snprintf(why, len,
             "client certificate %s lacks the clientAuth extended key usage",
             dn);
    gnutls_x509_crt_deinit(crt);
    return -1;
  }
  unsigned char fp[32];
  size_t n = sizeof fp;
  char sha[96] = "";
  if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &n) == 0)
    for (size_t i = 0; i < n; i++)
      snprintf(sha + i * 3, 4, "%02X%s", fp[i], i + 1 < n ? ":" : "");
  gnutls_x509_crt_deinit(crt);
  int role = AUTH_NONE;
  for (uint32_t i = 0; i < conf->n_clients; i++) {
    const struct h2s_auth_map *m = &conf->clients[i];
    if (!strcmp(m->name, m->by_sha256 ? sha : dn) && m->role > role)
      role = m->role;
  }
  set_who(c, role, "cert:%s", dn);
  return 0;
}

/* ---- Requests -------------------------------------------------------------
 */

int h2auth_start(struct h2s *s) {
  /* The instance's directory is STATE_DIR/plugins/NAME; the store is the
   * daemon's, STATE_DIR/auth (authtoken.h). */
  const char *dir = s->host->state_dir(s->inst);
  char *path = NULL;
  if (dir && asprintf(&path, "%s/../../auth", dir) < 0)
    path = NULL;
  s->tokens = path ? auth_store_new(path) : NULL;
  free(path);
  if (!s->tokens) {
    s->host->error("out of memory");
    return VMH_ENOMEM;
  }
  return 0;
}

/* The token of "Authorization: Bearer <token>", or NULL. */
static const char *bearer(const struct h2s_req *req) {
  const char *a = h2s_header(req, "authorization");
  if (!a || strncasecmp(a, "bearer ", 7))
    return NULL;
  a += 7;
  while (*a == ' ')
    a++;
  return a;
}

/* Whether secret a (the connection's kept token, n bytes and its NUL)
 * is b, in time independent of where they differ: a connection may carry
 * several callers' requests (a proxy), and one must not learn another's
 * token from how fast a guess was refused. */
static bool same_secret(const char *a, size_t n, const char *b) {
  unsigned char d = 0;
  for (size_t i = 0; i <= n; i++) {
    d |= (unsigned char)(a[i] ^ b[i]);
    if (!b[i])
      break; /* b is shorter: d is already non-zero, or both end here */
  }
  return d == 0;
}

/* The role of token tok (and its name into name), as the store says
 * after the latest read of the connection's bytes.  A connection sends
 * the same token with each request: the answer is kept with it until the
 * store changes (no hash, no stat per request). */
static int token_role(struct h2s_req *req, const char *tok, char *name) {
  struct h2s *s = req->s;
  struct conn *c = req->c;
  if (s->tokens_reads != s->reads) {
    s->tokens_gen = auth_store_refresh(s->tokens);
    s->tokens_reads = s->reads;
  }
  if (c && c->tok_gen == s->tokens_gen &&
      same_secret(c->tok, strlen(c->tok), tok)) {
    memcpy(name, c->tok_name, AUTH_NAME_MAX);
    return c->tok_role;
  }
  uint64_t gen;
  int role = auth_token_check_read(s->tokens, tok, name, &gen);
  size_t n = strlen(tok);
  if (c && n < sizeof c->tok) {
    memcpy(c->tok, tok, n + 1);
    c->tok_role = role;
    memcpy(c->tok_name, name, AUTH_NAME_MAX);
    c->tok_gen = gen;
  }
  return role;
}

int h2s_authorize(struct h2s_req *req, int need, char *msg, size_t len) {
  struct h2s *s = req->s;
  if (need == H2S_METRICS)
    need = s->conf->open_metrics ? H2S_OPEN : AUTH_READER;
  const char *a = h2s_header(req, "authorization");
  const char *tok = bearer(req);
  if (tok) {
    char name[AUTH_NAME_MAX] = "";
    req->role = token_role(req, tok, name);
    memcpy(req->who, "token:", 6);
    h2_strlcpy(req->who + 6, req->role == AUTH_NONE ? "?" : name,
               sizeof req->who - 6);
  }
  if (need == H2S_OPEN)
    return 0;
  int status = 0;
  if (a && !tok) {
    snprintf(msg, len, "the Authorization header must be 'Bearer <token>'");
    status = 401;
  } else if (tok && req->role == AUTH_NONE) {
    snprintf(msg, len, "the bearer token is not valid (unknown or revoked)");
    status = 401;
  } else if (req->role == AUTH_NONE && !strcmp(req->who, "anonymous")) {
    snprintf(msg, len,
             "credentials required: send 'Authorization: Bearer <token>' (the "
             "first start wrote an admin token to STATE_DIR/auth/admin.token; "
             "vmhostd --token-create makes more), a client certificate, or "
             "use the unix socket");
    status = 401;
  } else if (req->role < need) {
    snprintf(msg, len, "%s has role %s; this call needs %s", req->who,
             auth_role_name(req->role), auth_role_name(need));
    status = 403;
  }
  if (status) {
    LOG(s, VMH_LOG_WARN, "refused %s %s from %s (%s): %s", h2s_method(req),
        h2s_path(req), req->peer, req->who, msg);
    if (status == 401)
      h2s_add_header(req, "www-authenticate", "Bearer realm=\"vmhost\"");
  }
  return status;
}

/* Whether the word at p (in msg) is an absolute path other than the
 * request's own; its length into *ret_len. */
static bool host_path_at(const struct h2s_req *req, const char *msg,
                         const char *p, size_t *ret_len) {
  if (*p != '/' || (p != msg && !strchr(" '\"(=,[", p[-1])))
    return false;
  size_t wl = strcspn(p, " '\":,)]");
  *ret_len = wl;
  /* The request's own path is the caller's, not the host's. */
  return wl > 1 &&
         !(req->path && wl == strlen(req->path) && !strncmp(p, req->path, wl));
}

const char *h2s_caller_message(const struct h2s_req *req, const char *msg,
                               char *buf, size_t len) {
  static const char mark[] = "(a host path)";
  if (!msg || req->role >= AUTH_OPERATOR || !len)
    return msg;
  size_t o = 0, wl;
  for (const char *p = msg; *p && o + 1 < len;) {
    if (host_path_at(req, msg, p, &wl)) {
      p += wl;
      size_t n = sizeof mark - 1 < len - 1 - o ? sizeof mark - 1 : len - 1 - o;
      memcpy(buf + o, mark, n);
      o += n;
      continue;
    }
    buf[o++] = *p++;
  }
  buf[o] = '\0';
  return buf;
}

const char *h2s_who(const struct h2s_req *req) {
  return req->who;
}

int h2s_role(const struct h2s_req *req) {
  return req->role;
}

struct auth_store *h2s_tokens(struct h2s *s) {
  return s->tokens;
}
