/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2tls — h2server's certificates (GnuTLS): load, generate, inspect,
 * validate and install.  Internal to plugins/frontend/common. */
#ifndef VMH_H2TLS_H
#define VMH_H2TLS_H

#include <gnutls/gnutls.h>
#include <stdatomic.h>
#include <stddef.h>

#include "h2server.h"

/* Credentials shared by the connections made while they were current; the
 * last unref frees them, so a reload never pulls them from under a live
 * session. */
struct h2tls_creds {
  gnutls_certificate_credentials_t x;
  atomic_uint refs;
};

/* Each returns 0 or -1 with err set (what failed, and GnuTLS's reason). */
int h2tls_load(const char *cert, const char *key, const char *client_ca,
               struct h2tls_creds **ret, char *err, size_t errlen);
struct h2tls_creds *h2tls_ref(struct h2tls_creds *c);
void h2tls_unref(struct h2tls_creds *c);

/* A self-signed ECDSA P-256 certificate for names (host names, or IPv4 /
 * IPv6 addresses, which become IP SANs), valid for ten years, written with
 * its key (mode 0600) atomically to cert and key. */
int h2tls_generate(const char *cert, const char *key, char *const *names,
                   size_t n_names, char *err, size_t errlen);

/* The certificate file's first certificate, described. */
int h2tls_info(const char *cert, struct h2s_cert_info *ret, char *err,
               size_t errlen);

/* Check a PEM chain and key (see h2s_cert_install), then write them. */
int h2tls_install(const char *cert, const char *key, const char *cert_pem,
                  size_t cert_len, const char *key_pem, size_t key_len,
                  char *err, size_t errlen);

#endif /* VMH_H2TLS_H */
