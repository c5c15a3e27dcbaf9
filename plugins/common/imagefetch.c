/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* imagefetch — download into a sink, hash while writing, resume, verify.
 * See imagefetch.h. */
#include <config.h>

#include "imagefetch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define SHA256_LEN 32
/* Read-back chunk when resuming. */
#define READ_CHUNK (1 << 20)
/* At most five progress calls a second: a fast file:// copy must not flood
 * the event stream. */
#define PROGRESS_NS 200000000L

const struct fetch_policy fetch_policy_default = {
    .protocols = "file,http,https",
    .redir_protocols = "http,https",
    .max_redirs = 5,
    .connect_timeout = 30,
    .low_speed_limit = 1,
    .low_speed_time = 60,
    .tries = 5,
};

/* One fetch_run: where it stands and what went wrong. */
struct xfer {
  const struct fetch_request *req;
  gnutls_hash_hd_t hash;
  uint64_t offset; /* bytes in the sink when this attempt began */
  uint64_t done;   /* bytes written by this attempt */
  int sink_rc;     /* a sink's failure (message set), 0: none */
  char blocked[INET6_ADDRSTRLEN]; /* an address refused by the policy */
  const struct fetch_policy *pol;
  long http; /* HTTP status of the last attempt, 0: none */
  struct timespec last;
};

int fetch_global_init(const struct vmh_host *host) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
    return vmh_fail(host, VMH_EINTERNAL, "libcurl failed to initialise");
  return 0;
}

/* Does url start with "<scheme>://" for one scheme of the comma-separated
 * list? */
static bool scheme_allowed(const char *url, const char *list) {
  for (const char *s = list; *s;) {
    size_t n = strcspn(s, ",");
    if (strncmp(url, s, n) == 0 && strncmp(url + n, "://", 3) == 0)
      return true;
    s += n + (s[n] == ',');
  }
  return false;
}

/* "file://, http:// or https://" from "file,http,https". */
static void scheme_names(const char *list, char *out, size_t len) {
  size_t used = 0;
  for (const char *s = list; *s && used < len;) {
    size_t n = strcspn(s, ",");
    const char *sep = used == 0 ? "" : s[n] ? ", " : " or ";
    used +=
        (size_t)snprintf(out + used, len - used, "%s%.*s://", sep, (int)n, s);
    s += n + (s[n] == ',');
  }
}

/* image_sources.schemes: the network schemes downloads and redirects may
 * use (file:// is file_dirs' business).  Bit 0 http, bit 1 https. */
static const struct {
  const char *protocols, *redir;
} scheme_sets[] = {
    [1] = {"file,http", "http"},
    [2] = {"file,https", "https"},
    [3] = {"file,http,https", "http,https"},
};

static int read_schemes(const struct vmh_host *host, const struct vmh_config *m,
                        struct fetch_policy *ret) {
  const struct vmh_config *list, *el;
  uint32_t n = 0;
  unsigned set = 0;
  int rc;
  if ((rc = host->config_list(m, "schemes", &list, &n, 0)) < 0 || !list)
    return rc;
  for (uint32_t i = 0; i < n; i++) {
    const char *v;
    if ((rc = host->config_at(list, i, &el)) < 0 ||
        (rc = host->config_string(el, NULL, NULL, &v, VMH_CFG_REQUIRED)) < 0)
      return rc;
    if (strcmp(v, "http") && strcmp(v, "https"))
      return vmh_fail(host, VMH_EINVAL,
                      "%s: image_sources.schemes: '%s' is not a scheme "
                      "downloads take (http, https; file:// is file_dirs')",
                      host->config_where(el), v);
    set |= strcmp(v, "http") ? 2u : 1u;
  }
  if (!set)
    return vmh_fail(host, VMH_EINVAL,
                    "%s: image_sources.schemes is empty: name http, https "
                    "or both",
                    host->config_key_where(m, "schemes"));
  ret->protocols = scheme_sets[set].protocols;
  ret->redir_protocols = scheme_sets[set].redir;
  return 0;
}

int fetch_policy_read(const struct vmh_host *host, const struct vmh_config *cfg,
                      struct fetch_policy *ret) {
  const struct vmh_config *m, *list, *el;
  uint32_t n = 0;
  int allow = 0, rc;
  *ret = fetch_policy_default;
  if ((rc = host->config_map(cfg, "image_sources", &m, 0)) < 0 ||
      (rc = host->config_bool(m, "allow_private", 0, &allow, 0)) < 0 ||
      (rc = read_schemes(host, m, ret)) < 0 ||
      (rc = host->config_list(m, "file_dirs", &list, &n, 0)) < 0)
    return rc;
  ret->allow_private = allow;
  char **dirs = n ? calloc(n, sizeof *dirs) : NULL;
  if (n && !dirs)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  ret->file_dirs = dirs;
  for (uint32_t i = 0; i < n; i++) {
    const char *d;
    if ((rc = host->config_at(list, i, &el)) < 0 ||
        (rc = host->config_path(el, NULL, NULL, &d, VMH_CFG_REQUIRED)) < 0)
      return rc;
    if (!(dirs[i] = strdup(d)))
      return vmh_fail(host, VMH_ENOMEM, "out of memory");
    ret->n_file_dirs = i + 1;
  }
  return 0;
}

void fetch_policy_free(struct fetch_policy *p) {
  for (size_t i = 0; i < p->n_file_dirs; i++)
    free(p->file_dirs[i]);
  free((void *)p->file_dirs);
  p->file_dirs = NULL;
  p->n_file_dirs = 0;
}

/* A file:// url's file: a regular file under one of the policy's
 * directories, links resolved.  One message for every refusal: a caller
 * learns nothing of files elsewhere. */
static int check_file_url(const struct vmh_host *host, const char *what,
                          const char *url, const struct fetch_policy *pol) {
  const char *path = url + strlen("file://");
  char real[PATH_MAX], dir[PATH_MAX];
  struct stat st;
  /* curl decodes %XX and takes file://HOST/: none of that here. */
  if (path[0] == '/' && !strpbrk(path, "%?#") && realpath(path, real) &&
      stat(real, &st) == 0 && S_ISREG(st.st_mode))
    for (size_t i = 0; i < pol->n_file_dirs; i++) {
      size_t n;
      if (realpath(pol->file_dirs[i], dir) && (n = strlen(dir)) &&
          !strncmp(real, dir, n) && (real[n] == '/' || dir[n - 1] == '/'))
        return 0;
    }
  char dirs[512] = "";
  for (size_t i = 0, used = 0; i < pol->n_file_dirs && used < sizeof dirs; i++)
    used += (size_t)snprintf(dirs + used, sizeof dirs - used, "%s%s",
                             i ? ", " : "", pol->file_dirs[i]);
  return vmh_fail(host, VMH_EPERM,
                  "%s: url '%s' is not a file under a directory of "
                  "image_sources.file_dirs (%s)",
                  what, url, pol->n_file_dirs ? dirs : "the config names none");
}

/* Whether a is an address a download must not reach unless allowed. */
static bool private_addr(const struct sockaddr *a) {
  if (a->sa_family == AF_INET) {
    uint32_t v =
        ntohl(((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr);
    return (v >> 24) == 0 || (v >> 24) == 10 || (v >> 24) == 127 ||
           (v >> 20) == (172u << 4 | 1) || (v >> 16) == (192u << 8 | 168) ||
           (v >> 16) == (169u << 8 | 254) || (v >> 22) == (100u << 2 | 1) ||
           (v >> 28) == 14 || v == 0xffffffffu;
  }
  if (a->sa_family == AF_INET6) {
    const struct in6_addr *x =
        &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(x)) {
      struct sockaddr_in v4 = {.sin_family = AF_INET};
      memcpy(&v4.sin_addr, &x->s6_addr[12], 4);
      return private_addr((const struct sockaddr *)(const void *)&v4);
    }
    return IN6_IS_ADDR_LOOPBACK(x) || IN6_IS_ADDR_UNSPECIFIED(x) ||
           IN6_IS_ADDR_LINKLOCAL(x) || IN6_IS_ADDR_MULTICAST(x) ||
           (x->s6_addr[0] & 0xfe) == 0xfc;
  }
  return true;
}

/* curl asks for each socket it connects, after name resolution and for
 * every redirect: the place to refuse private addresses. */
static curl_socket_t open_socket(void *opaque, curlsocktype purpose,
                                 struct curl_sockaddr *a) {
  struct xfer *x = opaque;
  (void)purpose;
  if (!x->pol->allow_private && private_addr(&a->addr)) {
    const void *ip =
        a->family == AF_INET
            ? (const void *)&((struct sockaddr_in *)(void *)&a->addr)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)(void *)&a->addr)
                  ->sin6_addr;
    inet_ntop(a->family, ip, x->blocked, sizeof x->blocked);
    return CURL_SOCKET_BAD;
  }
  return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

int fetch_check(const struct vmh_host *host, const char *what, const char *url,
                const char *sha256, const struct fetch_policy *policy,
                char want[FETCH_SHA256_HEX + 1]) {
  size_t i;

  if (policy == NULL)
    policy = &fetch_policy_default;
  if (url == NULL || !scheme_allowed(url, policy->protocols)) {
    char names[128] = "";
    scheme_names(policy->protocols, names, sizeof names);
    return vmh_fail(host, VMH_EINVAL, "%s: url '%s' must start with %s", what,
                    url ? url : "(none)", names);
  }
  if (!strncmp(url, "file://", 7) &&
      check_file_url(host, what, url, policy) < 0)
    return VMH_EPERM;
  for (i = 0; sha256 && i < FETCH_SHA256_HEX; i++) {
    char c = sha256[i];
    if (c >= 'A' && c <= 'F')
      c = (char)(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      break;
    want[i] = c;
  }
  if (sha256 == NULL || i < FETCH_SHA256_HEX || sha256[i] != '\0')
    return vmh_fail(host, VMH_EINVAL,
                    "%s: give its sha256 as 64 hex digits (sha256sum FILE)",
                    what);
  want[FETCH_SHA256_HEX] = '\0';
  return 0;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *opaque) {
  struct xfer *x = opaque;
  const struct fetch_sink *sink = x->req->sink;
  size_t len = size * nmemb;
  int rc = sink->write(sink->opaque, data, len, x->offset + x->done);

  if (rc < 0) {
    x->sink_rc = rc;
    return 0; /* curl stops with CURLE_WRITE_ERROR */
  }
  gnutls_hash(x->hash, data, len);
  x->done += len;
  return len;
}

static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow) {
  struct xfer *x = opaque;
  struct timespec now;

  (void)ultotal;
  (void)ulnow;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if ((now.tv_sec - x->last.tv_sec) * 1000000000L + now.tv_nsec -
          x->last.tv_nsec <
      PROGRESS_NS)
    return 0;
  x->last = now;
  x->req->progress(x->req->progress_opaque, x->offset + (uint64_t)dlnow,
                   dltotal > 0 ? x->offset + (uint64_t)dltotal : 0);
  return 0;
}

/* One transfer of the url into the sink, resuming at x->offset. */
static CURLcode transfer(struct xfer *x, const struct fetch_policy *pol,
                         char *cerr) {
  CURL *c = curl_easy_init();
  CURLcode cc;

  if (c == NULL)
    return CURLE_OUT_OF_MEMORY;
  cerr[0] = '\0';
  curl_easy_setopt(c, CURLOPT_URL, x->req->url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, pol->protocols);
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, pol->redir_protocols);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, pol->max_redirs);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, pol->connect_timeout);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, pol->low_speed_limit);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, pol->low_speed_time);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  x->pol = pol;
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, x);
  if (x->req->progress) {
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  }
  curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)x->offset);
  cc = curl_easy_perform(c);
  x->http = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->http);
  curl_easy_cleanup(c);
  if (cerr[0] == '\0')
    snprintf(cerr, CURL_ERROR_SIZE, "%s", curl_easy_strerror(cc));
  return cc;
}

/* An interrupted transfer, which the next attempt resumes. */
static bool retryable(CURLcode cc) {
  return cc == CURLE_PARTIAL_FILE || cc == CURLE_RECV_ERROR ||
         cc == CURLE_GOT_NOTHING || cc == CURLE_OPERATION_TIMEDOUT ||
         cc == CURLE_SEND_ERROR || cc == CURLE_RANGE_ERROR ||
         cc == CURLE_BAD_DOWNLOAD_RESUME;
}

/* Hash the bytes the sink holds already. */
static int hash_kept(struct xfer *x) {
  const struct fetch_request *req = x->req;
  uint64_t off = 0;
  char *buf;

  if (req->have == 0)
    return 0;
  if (req->sink->read == NULL)
    return vmh_fail(req->host, VMH_EINTERNAL,
                    "%s: the sink holds %" PRIu64 " bytes but cannot read them",
                    req->what, req->have);
  buf = malloc(READ_CHUNK);
  if (buf == NULL)
    return vmh_fail(req->host, VMH_ENOMEM, "out of memory");
  while (off < req->have) {
    size_t want = req->have - off < READ_CHUNK ? req->have - off : READ_CHUNK;
    ssize_t n = req->sink->read(req->sink->opaque, buf, want, off);
    if (n <= 0) {
      free(buf);
      return n < 0 ? (int)n
                   : vmh_fail(req->host, VMH_EIO,
                              "%s: the partial download ends at byte %" PRIu64
                              ", not %" PRIu64,
                              req->what, off, req->have);
    }
    gnutls_hash(x->hash, buf, (size_t)n);
    off += (uint64_t)n;
  }
  free(buf);
  return 0;
}

/* Drop what the sink holds and start the hash over. */
static int start_over(struct xfer *x) {
  const struct fetch_sink *sink = x->req->sink;
  int rc = sink->truncate(sink->opaque, 0);

  if (rc < 0)
    return rc;
  gnutls_hash_deinit(x->hash, NULL);
  if (gnutls_hash_init(&x->hash, GNUTLS_DIG_SHA256) < 0) {
    x->hash = NULL;
    return vmh_fail(x->req->host, VMH_EINTERNAL,
                    "gnutls: cannot start a SHA-256 hash");
  }
  x->offset = 0;
  return 0;
}

/* The attempts: CURLE_OK when the sink holds the whole content, else the
 * last failure (cerr says it); a sink failure or a failed restart sets
 * x->sink_rc. */
static CURLcode attempts(struct xfer *x, const struct fetch_policy *pol,
                         char *cerr) {
  const struct fetch_request *req = x->req;
  CURLcode cc = CURLE_OK;

  for (unsigned attempt = 0; attempt < pol->tries; attempt++) {
    x->offset += x->done;
    x->done = 0;
    if (x->offset > 0)
      req->host->log(req->inst, VMH_LOG_INFO,
                     "%s: resuming the download at byte %" PRIu64, req->what,
                     x->offset);
    cc = transfer(x, pol, cerr);
    /* 416 to a range from the end: the sink was complete already (a crash
     * after the download); the digest decides. */
    if (cc == CURLE_HTTP_RETURNED_ERROR && x->http == 416 && x->offset > 0)
      return CURLE_OK;
    if (cc == CURLE_OK || x->sink_rc < 0)
      return cc;
    /* The server ignored the range: start over rather than append a second
     * copy. */
    if (cc == CURLE_RANGE_ERROR || cc == CURLE_BAD_DOWNLOAD_RESUME) {
      x->done = 0;
      if ((x->sink_rc = start_over(x)) < 0)
        return cc;
    }
    if (!retryable(cc))
      return cc;
    req->host->log(req->inst, VMH_LOG_WARN,
                   "%s: download interrupted after %" PRIu64
                   " bytes (%s); resuming",
                   req->what, x->offset + x->done, cerr);
  }
  return cc;
}

int fetch_run(const struct fetch_request *req, struct fetch_result *res) {
  const struct fetch_policy *pol =
      req->policy ? req->policy : &fetch_policy_default;
  struct xfer x = {.req = req, .offset = req->have};
  unsigned char dig[SHA256_LEN];
  char cerr[CURL_ERROR_SIZE];
  CURLcode cc;
  int rc;

  memset(res, 0, sizeof *res);
  res->size = req->have;
  if (gnutls_hash_init(&x.hash, GNUTLS_DIG_SHA256) < 0)
    return vmh_fail(req->host, VMH_EINTERNAL,
                    "gnutls: cannot start a SHA-256 hash");
  if ((rc = hash_kept(&x)) < 0) {
    res->keep = true; /* a read failed: what is there may be fine */
    goto cleanup;
  }
  cc = attempts(&x, pol, cerr);
  res->size = x.offset + x.done;
  if ((rc = x.sink_rc) < 0)
    goto cleanup;
  if (cc != CURLE_OK) {
    /* Only an interrupted transfer is worth resuming; a refusal (404, no
     * such file) or nothing at all is dropped. */
    res->keep = retryable(cc) && res->size > 0;
    if (x.blocked[0]) {
      rc = vmh_fail(req->host, VMH_EPERM,
                    "%s: download of %s refused: it leads to %s, a loopback, "
                    "link-local or private address (image_sources."
                    "allow_private)",
                    req->what, req->url, x.blocked);
      goto cleanup;
    }
    rc = vmh_fail(req->host, VMH_EIO, "%s: download of %s failed: %s%s",
                  req->what, req->url, cerr,
                  res->keep ? "; the partial download is kept and the next "
                              "import resumes it"
                            : "; check the url");
    goto cleanup;
  }
  if (req->progress)
    req->progress(req->progress_opaque, res->size, res->size);

  gnutls_hash_output(x.hash, dig);
  for (int i = 0; i < SHA256_LEN; i++)
    snprintf(res->sha256 + 2 * i, 3, "%02x", dig[i]);
  if (strcmp(res->sha256, req->sha256) != 0) {
    rc = vmh_fail(req->host, VMH_EINVAL,
                  "%s: the download from %s does not have sha256 %s as "
                  "given; it was removed. Check the url and the checksum",
                  req->what, req->url, req->sha256);
    res->sha256[0] = '\0';
    goto cleanup;
  }
  rc = 0;
cleanup:
  if (x.hash)
    gnutls_hash_deinit(x.hash, NULL);
  return rc;
}

void fetch_emit_progress(const struct vmh_host *host,
                         const struct vmh_instance *inst, const char *name,
                         uint64_t done, uint64_t total) {
  char object[VMH_NAME_MAX + 16];
  struct vmh_event ev = {0};

  snprintf(object, sizeof object, "image/%s", name);
  ev.struct_size = sizeof ev;
  ev.type = VMH_EVENT_PROGRESS;
  ev.object = object;
  ev.done = done;
  ev.total = total;
  host->emit(inst, &ev);
}

void fetch_progress_event(void *opaque, uint64_t done, uint64_t total) {
  const struct fetch_progress_target *t = opaque;
  fetch_emit_progress(t->host, t->inst, t->name, done, total);
}
