/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The nfs plugin's pool of libnfs contexts: see nfsconn.h. */
#include <config.h>

#include "nfsconn.h"

#include <errno.h>
#include <nfsc/libnfs.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errname.h"

void conns_init(struct conns *c, const struct vmh_host *host,
                const char *server, const char *export, int version,
                int64_t uid, int64_t gid, int timeout_s) {
  memset(c, 0, sizeof *c);
  c->host = host;
  c->server = server;
  c->export = export;
  c->version = version;
  c->uid = uid;
  c->gid = gid;
  c->timeout_ms = timeout_s * 1000;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->freed, NULL);
}

void conns_destroy(struct conns *c) {
  while (c->n_idle > 0)
    nfs_destroy_context(c->idle[--c->n_idle]);
  pthread_cond_destroy(&c->freed);
  pthread_mutex_destroy(&c->lock);
}

int conns_broken(int rc) {
  switch (-rc) {
    case 0:
    case ENOENT:
    case EEXIST:
    case ENOTDIR:
    case EISDIR:
    case ENOTEMPTY:
    case ENOSPC:
    case EDQUOT:
    case EACCES:
    case EPERM:
    case EROFS:
    case EINVAL:
    case EFBIG:
    case ENAMETOOLONG:
    case EXDEV:
    case ELOOP:
    case EMLINK:
    case ENOTSUP:
      return 0;
    default:
      return 1;
  }
}

int conns_code(int rc) {
  return conns_broken(rc) ? VMH_EIO : errno_code(-rc);
}

int conns_fail(struct conns *c, struct nfs_context *nfs, int rc,
               const char *fmt, ...) {
  char what[1024];
  const char *err = nfs ? nfs_get_error(nfs) : NULL;
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (err == NULL || err[0] == '\0')
    err = strerror(-rc);
  if (conns_broken(rc))
    return vmh_fail(c->host, VMH_EIO,
                    "NFS server %s is unavailable (%s: %s); vmhostd "
                    "reconnects by itself when it answers again",
                    c->server, what, err);
  return vmh_fail(c->host, conns_code(rc), "%s: %s", what, err);
}

/* A new context, mounted on the export. */
static int conn_open(struct conns *c, struct nfs_context **ret) {
  struct nfs_context *nfs = nfs_init_context();
  int rc;

  if (nfs == NULL)
    return vmh_fail(c->host, VMH_ENOMEM, "libnfs: cannot make a context");
  if (c->uid >= 0)
    nfs_set_uid(nfs, (int)c->uid);
  if (c->gid >= 0)
    nfs_set_gid(nfs, (int)c->gid);
  nfs_set_timeout(nfs, c->timeout_ms);
  nfs_set_autoreconnect(nfs, 0);
  /* Another context may change a directory behind this one's cache. */
  nfs_set_dircache(nfs, 0);
  if (nfs_set_version(nfs, c->version) < 0 ||
      (rc = nfs_mount(nfs, c->server, c->export)) < 0) {
    rc = vmh_fail(c->host, VMH_EIO,
                  "NFS server %s is unavailable: cannot mount %s (NFSv%d): "
                  "%s",
                  c->server, c->export, c->version, nfs_get_error(nfs));
    nfs_destroy_context(nfs);
    return rc;
  }
  *ret = nfs;
  return 0;
}

/* An idle connection has nothing to read: if its socket is readable or
 * hung up, the server closed it (stopped, restarted). */
static int conn_dead(struct nfs_context *nfs) {
  struct pollfd pf = {.fd = nfs_get_fd(nfs), .events = POLLIN};

  if (pf.fd < 0)
    return 1;
  return poll(&pf, 1, 0) != 0;
}

int conns_get(struct conns *c, struct nfs_context **ret) {
  struct nfs_context *nfs;
  int rc;

  pthread_mutex_lock(&c->lock);
  for (;;) {
    if (c->n_idle > 0) {
      nfs = c->idle[--c->n_idle];
      if (!conn_dead(nfs)) {
        pthread_mutex_unlock(&c->lock);
        *ret = nfs;
        return 0;
      }
      nfs_destroy_context(nfs);
      c->n_open--;
    } else if (c->n_open < CONNS_MAX) {
      break;
    } else {
      pthread_cond_wait(&c->freed, &c->lock);
    }
  }
  c->n_open++; /* the one made below */
  pthread_mutex_unlock(&c->lock);
  /* Mounting takes round trips: not under the lock. */
  if ((rc = conn_open(c, ret)) < 0) {
    pthread_mutex_lock(&c->lock);
    c->n_open--;
    pthread_cond_signal(&c->freed);
    pthread_mutex_unlock(&c->lock);
  }
  return rc;
}

void conns_put(struct conns *c, struct nfs_context *nfs, int rc) {
  pthread_mutex_lock(&c->lock);
  if (conns_broken(rc)) {
    nfs_destroy_context(nfs);
    c->n_open--;
  } else {
    c->idle[c->n_idle++] = nfs;
  }
  pthread_cond_signal(&c->freed);
  pthread_mutex_unlock(&c->lock);
}
