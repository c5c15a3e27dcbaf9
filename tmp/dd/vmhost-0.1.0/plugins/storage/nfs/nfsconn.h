/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small pool of libnfs contexts, each mounted on the export (part of the
 * nfs storage plugin).  A libnfs context is not thread-safe: an operation
 * takes one for itself (conns_get), uses it alone and gives it back
 * (conns_put), so operations on different volumes run in parallel over up
 * to CONNS_MAX connections instead of queueing behind one lock.
 *
 * A context whose connection broke (server stopped, restarted, network
 * gone) is destroyed when it is given back or found broken while idle; the
 * next conns_get mounts again, so the pool reconnects by itself once the
 * server is back.  libnfs's own reconnect is off: a call to a server that is
 * gone fails at once instead of retrying for ever. */
#ifndef VMHOST_NFSCONN_H
#define VMHOST_NFSCONN_H

#include <pthread.h>
#include <stdint.h>
#include <vmhost/vmhost-plugin.h>

#define CONNS_MAX 4

struct nfs_context;

struct conns {
  const struct vmh_host *host;
  const char *server; /* host name or address, for messages too */
  const char *export; /* "/export" */
  int version;        /* 3 or 4 */
  int64_t uid, gid;   /* AUTH_SYS credentials; -1: the process's */
  int timeout_ms;     /* per RPC */
  pthread_mutex_t lock;
  pthread_cond_t freed;
  struct nfs_context *idle[CONNS_MAX];
  unsigned n_idle, n_open; /* n_open counts idle ones and those taken */
};

/* Set up an empty pool (no connection is made).  The strings are borrowed
 * for the pool's life. */
void conns_init(struct conns *c, const struct vmh_host *host,
                const char *server, const char *export, int version,
                int64_t uid, int64_t gid, int timeout_s);
/* Destroy every idle context; none may be taken. */
void conns_destroy(struct conns *c);

/* A mounted context for the caller alone: an idle one, a new one while
 * fewer than CONNS_MAX are open, else the next one given back.  0, or
 * VMH_EIO "NFS server … is unavailable" with the message set. */
int conns_get(struct conns *c, struct nfs_context **ret);
/* Give a context back; rc is the last libnfs result on it (0 or -errno): a
 * failure that says the connection is gone destroys the context. */
void conns_put(struct conns *c, struct nfs_context *nfs, int rc);

/* The VMH_E* code of a failed libnfs call (-errno): the errno's code, or
 * VMH_EIO for a connection that is gone. */
int conns_code(int rc);
/* True when a libnfs failure (-errno) is the connection's, not an answer
 * of the server about a file. */
int conns_broken(int rc);

/* Set the message for a libnfs call that failed with rc on nfs and return
 * its code: "WHAT: libnfs's error" or, when the connection is gone, "NFS
 * server S is unavailable (WHAT: …); …".  WHAT is printf-formatted. */
int conns_fail(struct conns *c, struct nfs_context *nfs, int rc,
               const char *fmt, ...) __attribute__((__format__(printf, 4, 5)));

#endif
