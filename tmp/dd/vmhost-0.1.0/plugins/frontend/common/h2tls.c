/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2tls — see h2tls.h; and the server's certificate (see h2int.h). */
#include <config.h>

#include "h2int.h"

#include "atomicfile.h"
#include "errname.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int h2tls_load(const char *cert, const char *key, const char *client_ca,
               struct h2tls_creds **ret, char *err, size_t errlen) {
  struct h2tls_creds *c = calloc(1, sizeof *c);
  int r;
  if (!c)
    return errbuf_fail(err, errlen, -1, "out of memory");
  atomic_init(&c->refs, 1);
  if ((r = gnutls_certificate_allocate_credentials(&c->x)) < 0) {
    free(c);
    return errbuf_fail(err, errlen, -1, "credentials: %s", gnutls_strerror(r));
  }
  r = gnutls_certificate_set_x509_key_file2(c->x, cert, key,
                                            GNUTLS_X509_FMT_PEM, NULL, 0);
  if (r < 0) {
    errbuf_fail(err, errlen, -1, "cannot use certificate %s with key %s: %s",
                cert, key, gnutls_strerror(r));
    goto fail_creds;
  }
  if (client_ca) {
    r = gnutls_certificate_set_x509_trust_file(c->x, client_ca,
                                               GNUTLS_X509_FMT_PEM);
    if (r <= 0) {
      errbuf_fail(err, errlen, -1, "client_ca %s: %s", client_ca,
                  r < 0 ? gnutls_strerror(r) : "no certificate in it");
      goto fail_creds;
    }
  }
  *ret = c;
  return 0;

fail_creds:
  gnutls_certificate_free_credentials(c->x);
  free(c);
  return -1;
}

struct h2tls_creds *h2tls_ref(struct h2tls_creds *c) {
  if (c)
    atomic_fetch_add(&c->refs, 1);
  return c;
}

void h2tls_unref(struct h2tls_creds *c) {
  if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
    gnutls_certificate_free_credentials(c->x);
    free(c);
  }
}

/* Write data to path crash-safely: a reader (a reload, a crash) sees the
 * old file or the new one. */
static int write_atomic(const char *path, const void *data, size_t len,
                        mode_t mode, char *err, size_t errlen) {
  if (atomic_write(path, data, len, mode) < 0)
    return errbuf_fail(err, errlen, -1, "cannot write %s: %s", path,
                       strerror(errno));
  return 0;
}

/* Create the directory of path if missing (one level: the state dir
 * exists). */
static void make_parent(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    mkdir(dir, 0700);
  }
}

static int add_san(gnutls_x509_crt_t crt, const char *name) {
  unsigned char ip[16];
  if (inet_pton(AF_INET, name, ip) == 1)
    return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip,
                                                4, GNUTLS_FSAN_APPEND);
  if (inet_pton(AF_INET6, name, ip) == 1)
    return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip,
                                                16, GNUTLS_FSAN_APPEND);
  return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                              (unsigned)strlen(name),
                                              GNUTLS_FSAN_APPEND);
}

int h2tls_generate(const char *cert, const char *key, char *const *names,
                   size_t n_names, char *err, size_t errlen) {
  gnutls_x509_privkey_t pk = NULL;
  gnutls_x509_crt_t crt = NULL;
  gnutls_datum_t kpem = {0}, cpem = {0};
  unsigned char serial[16];
  time_t now = time(NULL);
  int r, ret = -1;

#define TRY(what, call)                                                   \
  do {                                                                    \
    if ((r = (call)) < 0) {                                               \
      errbuf_fail(err, errlen, -1, "%s: %s", (what), gnutls_strerror(r)); \
      goto cleanup;                                                       \
    }                                                                     \
  } while (0)
  TRY("key", gnutls_x509_privkey_init(&pk));
  TRY("key", gnutls_x509_privkey_generate(
                 pk, GNUTLS_PK_ECDSA,
                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
  TRY("certificate", gnutls_x509_crt_init(&crt));
  TRY("certificate", gnutls_x509_crt_set_version(crt, 3));
  TRY("serial", gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial));
  serial[0] &= 0x7f; /* a positive number */
  TRY("serial", gnutls_x509_crt_set_serial(crt, serial, sizeof serial));
  TRY("dates", gnutls_x509_crt_set_activation_time(crt, now - 3600));
  TRY("dates", gnutls_x509_crt_set_expiration_time(
                   crt, now + (time_t)10 * 365 * 24 * 3600));
  const char *cn = n_names ? names[0] : "vmhostd";
  TRY("subject", gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME,
                                               0, cn, (unsigned)strlen(cn)));
  TRY("subject",
      gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
                                    "vmhostd self-signed", 19));
  for (size_t i = 0; i < n_names; i++)
    TRY("subject alternative name", add_san(crt, names[i]));
  TRY("constraints", gnutls_x509_crt_set_basic_constraints(crt, 0, -1));
  TRY("key usage",
      gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE));
  TRY("key purpose",
      gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0));
  TRY("key", gnutls_x509_crt_set_key(crt, pk));
  TRY("subject key id", gnutls_x509_crt_set_subject_key_id(crt, serial, 8));
  TRY("signature", gnutls_x509_crt_sign2(crt, crt, pk, GNUTLS_DIG_SHA256, 0));
  TRY("export", gnutls_x509_privkey_export2(pk, GNUTLS_X509_FMT_PEM, &kpem));
  TRY("export", gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cpem));
#undef TRY
  make_parent(key);
  make_parent(cert);
  if (write_atomic(key, kpem.data, kpem.size, 0600, err, errlen) < 0 ||
      write_atomic(cert, cpem.data, cpem.size, 0644, err, errlen) < 0)
    goto cleanup;
  ret = 0;

cleanup:
  gnutls_free(kpem.data);
  gnutls_free(cpem.data);
  if (crt)
    gnutls_x509_crt_deinit(crt);
  if (pk)
    gnutls_x509_privkey_deinit(pk);
  return ret;
}

static void describe(gnutls_x509_crt_t crt, struct h2s_cert_info *ret) {
  size_t n = sizeof ret->subject;
  if (gnutls_x509_crt_get_dn(crt, ret->subject, &n) < 0)
    ret->subject[0] = '\0';
  n = sizeof ret->issuer;
  if (gnutls_x509_crt_get_issuer_dn(crt, ret->issuer, &n) < 0)
    ret->issuer[0] = '\0';
  ret->not_before = gnutls_x509_crt_get_activation_time(crt);
  ret->not_after = gnutls_x509_crt_get_expiration_time(crt);
  ret->self_signed = gnutls_x509_crt_check_issuer(crt, crt) == 1;
  size_t o = 0;
  ret->names[0] = '\0';
  for (unsigned i = 0;; i++) {
    char san[256];
    size_t sz = sizeof san - 1;
    int t = gnutls_x509_crt_get_subject_alt_name(crt, i, san, &sz, NULL);
    if (t == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
      break;
    if (t < 0)
      continue;
    char text[INET6_ADDRSTRLEN];
    const char *v = san;
    if (t == GNUTLS_SAN_IPADDRESS)
      v = inet_ntop(sz == 4 ? AF_INET : AF_INET6, san, text, sizeof text);
    else
      san[sz] = '\0';
    if (v && o < sizeof ret->names)
      o += (size_t)snprintf(ret->names + o, sizeof ret->names - o, "%s%s",
                            o ? "," : "", v);
  }
  unsigned char fp[32];
  n = sizeof fp;
  ret->sha256[0] = '\0';
  if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &n) == 0)
    for (size_t i = 0; i < n && i * 3 + 3 <= sizeof ret->sha256; i++)
      snprintf(ret->sha256 + i * 3, 4, "%02X%s", fp[i], i + 1 < n ? ":" : "");
}

int h2tls_info(const char *cert, struct h2s_cert_info *ret, char *err,
               size_t errlen) {
  gnutls_datum_t pem = {0};
  gnutls_x509_crt_t crt = NULL;
  int r = gnutls_load_file(cert, &pem);
  if (r < 0)
    return errbuf_fail(err, errlen, -1, "%s: %s", cert, gnutls_strerror(r));
  if ((r = gnutls_x509_crt_init(&crt)) < 0 ||
      (r = gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM)) < 0) {
    errbuf_fail(err, errlen, -1, "%s: %s", cert, gnutls_strerror(r));
    if (crt)
      gnutls_x509_crt_deinit(crt);
    gnutls_free(pem.data);
    return -1;
  }
  memset(ret, 0, sizeof *ret);
  describe(crt, ret);
  snprintf(ret->cert_path, sizeof ret->cert_path, "%s", cert);
  gnutls_x509_crt_deinit(crt);
  gnutls_free(pem.data);
  return 0;
}

/* Each certificate of the chain issued by the next one. */
static int check_chain(const char *pem, size_t len, char *err, size_t errlen) {
  gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
  gnutls_x509_crt_t *list = NULL;
  unsigned n = 0;
  int r = gnutls_x509_crt_list_import2(&list, &n, &d, GNUTLS_X509_FMT_PEM,
                                       GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
  if (r < 0)
    return errbuf_fail(err, errlen, -1, "certificate chain: %s",
                       gnutls_strerror(r));
  int ret = n ? 0 : errbuf_fail(err, errlen, -1, "certificate chain: empty");
  for (unsigned i = 0; i < n; i++)
    gnutls_x509_crt_deinit(list[i]);
  gnutls_free(list);
  return ret;
}

int h2tls_install(const char *cert, const char *key, const char *cert_pem,
                  size_t cert_len, const char *key_pem, size_t key_len,
                  char *err, size_t errlen) {
  gnutls_certificate_credentials_t x;
  gnutls_datum_t c = {(unsigned char *)cert_pem, (unsigned)cert_len};
  gnutls_datum_t k = {(unsigned char *)key_pem, (unsigned)key_len};
  if (cert_len > UINT32_MAX || key_len > UINT32_MAX)
    return errbuf_fail(err, errlen, -1, "too large");
  if (check_chain(cert_pem, cert_len, err, errlen) < 0)
    return -1;
  /* GnuTLS parses both and refuses a key that is not the leaf's. */
  int r = gnutls_certificate_allocate_credentials(&x);
  if (r < 0)
    return errbuf_fail(err, errlen, -1, "credentials: %s", gnutls_strerror(r));
  r = gnutls_certificate_set_x509_key_mem2(x, &c, &k, GNUTLS_X509_FMT_PEM, NULL,
                                           0);
  gnutls_certificate_free_credentials(x);
  if (r < 0)
    return errbuf_fail(err, errlen, -1, "certificate and key: %s",
                       gnutls_strerror(r));
  make_parent(key);
  make_parent(cert);
  if (write_atomic(key, key_pem, key_len, 0600, err, errlen) < 0 ||
      write_atomic(cert, cert_pem, cert_len, 0644, err, errlen) < 0)
    return -1;
  return 0;
}

/* ---- The server's certificate ------------------------------------------- */

static struct timespec mtime_of(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0)
    return (struct timespec){0};
  return st.st_mtim;
}

/* Load the cert files into new credentials for new connections. */
static int reload(struct h2s *s, char *err, size_t errlen) {
  struct h2tls_creds *c;
  struct timespec m = mtime_of(s->cert);
  if (h2tls_load(s->cert, s->key, s->conf->client_ca, &c, err, errlen) < 0)
    return -1;
  pthread_mutex_lock(&s->lock);
  struct h2tls_creds *old = s->creds;
  s->creds = c;
  s->cert_mtime = m;
  pthread_mutex_unlock(&s->lock);
  h2tls_unref(old);
  return 0;
}

/* The names of a generated certificate: the configured ones, the host
 * name, localhost, and the listeners' hosts. */
static int generate(struct h2s *s, char *err, size_t errlen) {
  const struct h2s_conf *cf = s->conf;
  size_t cap = cf->n_hostnames + cf->n_listen + 4, n = 0;
  char **names = calloc(cap, sizeof *names);
  char hn[256];
  if (!names)
    return snprintf(err, errlen, "out of memory"), -1;
  for (uint32_t i = 0; i < cf->n_hostnames; i++)
    names[n++] = strdup(cf->hostnames[i]);
  if (gethostname(hn, sizeof hn) == 0 && hn[0])
    names[n++] = strndup(hn, sizeof hn);
  names[n++] = strdup("localhost");
  for (uint32_t i = 0; i < cf->n_listen; i++) {
    const char *a = cf->listen[i].address;
    if (a[0] == '/' || a[0] == '.')
      continue;
    const char *st = a[0] == '[' ? a + 1 : a;
    const char *e = a[0] == '[' ? strchr(a, ']') : strrchr(a, ':');
    if (e && e > st)
      names[n++] = strndup(st, (size_t)(e - st));
  }
  /* Drop failed copies and duplicates. */
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    bool dup = !names[i];
    for (size_t j = 0; j < k && !dup; j++)
      dup = !strcmp(names[j], names[i]);
    if (dup)
      free(names[i]);
    else
      names[k++] = names[i];
  }
  int r = h2tls_generate(s->cert, s->key, names, k, err, errlen);
  for (size_t i = 0; i < k; i++)
    free(names[i]);
  free(names);
  if (r == 0)
    LOG(s, VMH_LOG_INFO, "generated a self-signed certificate: %s", s->cert);
  return r;
}

int h2tls_setup(struct h2s *s) {
  char err[512];
  const char *prio = s->conf->tls12
                         ? "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
                         : "NORMAL:-VERS-ALL:+VERS-TLS1.3";
  if (gnutls_priority_init(&s->prio, prio, NULL) < 0) {
    s->host->error("TLS priorities '%s' refused", prio);
    return VMH_EINTERNAL;
  }
  if (s->conf->cert) {
    s->cert = strdup(s->conf->cert);
    s->key = strdup(s->conf->key);
  } else {
    const char *dir = s->host->state_dir(s->inst);
    if (asprintf(&s->cert, "%s/tls/cert.pem", dir) < 0)
      s->cert = NULL;
    if (asprintf(&s->key, "%s/tls/key.pem", dir) < 0)
      s->key = NULL;
  }
  if (!s->cert || !s->key) {
    s->host->error("out of memory");
    return VMH_ENOMEM;
  }
  if (!s->conf->cert && access(s->cert, F_OK) < 0 &&
      generate(s, err, sizeof err) < 0) {
    s->host->error("cannot generate a certificate: %s", err);
    return VMH_EIO;
  }
  if (reload(s, err, sizeof err) < 0) {
    s->host->error("%s", err);
    return VMH_EINVAL;
  }
  return 0;
}

void h2tls_check(struct h2s *s) {
  if (!s->cert)
    return;
  struct timespec m = mtime_of(s->cert);
  if (!m.tv_sec ||
      (m.tv_sec == s->cert_mtime.tv_sec && m.tv_nsec == s->cert_mtime.tv_nsec))
    return;
  char err[512];
  if (reload(s, err, sizeof err) == 0)
    LOG(s, VMH_LOG_INFO, "certificate %s changed: reloaded", s->cert);
  else {
    s->cert_mtime = m; /* once per change */
    LOG(s, VMH_LOG_WARN, "certificate changed but not usable: %s", err);
  }
}

int h2s_cert_info(struct h2s *s, struct h2s_cert_info *ret) {
  char err[256];
  if (!s->any_tls)
    return VMH_ENOENT;
  return h2tls_info(s->cert, ret, err, sizeof err) < 0 ? VMH_EIO : 0;
}

int h2s_cert_generate(struct h2s *s, char *err, size_t errlen) {
  if (!s->any_tls)
    return snprintf(err, errlen, "no TLS listener"), VMH_ENOENT;
  if (generate(s, err, errlen) < 0 || reload(s, err, errlen) < 0)
    return VMH_EIO;
  return 0;
}

int h2s_cert_install(struct h2s *s, const char *cert, size_t clen,
                     const char *key, size_t klen, char *err, size_t errlen) {
  if (!s->any_tls)
    return snprintf(err, errlen, "no TLS listener"), VMH_ENOENT;
  if (h2tls_install(s->cert, s->key, cert, clen, key, klen, err, errlen) < 0)
    return VMH_EINVAL;
  if (reload(s, err, errlen) < 0)
    return VMH_EIO;
  LOG(s, VMH_LOG_INFO, "installed a new certificate: %s", s->cert);
  return 0;
}
