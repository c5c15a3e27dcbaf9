/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* storage-nfs — a directory on an NFS server as a storage pool, every byte
 * through libnfs (no kernel mount, no root).
 *
 * Layout under the pool's directory (the export, or `path` under it):
 *   <name>                      a volume: a raw (sparse) or qcow2 file
 *   .tmp-<name>.<rand>          a volume being made (linked when complete)
 *   .images/<name>              a cached base image, verified by SHA-256
 *   .images/.part-<name>        a partial download, kept to resume it
 *   .vmhost/volumes/<name>      the record of a volume (nfsmeta.h)
 *   .vmhost/images/<name>       the record of an image
 *   .vmhost/images/.part-<name> the digest a partial download is for
 * Nothing whose name starts with a dot is a volume.  A volume is made under
 * a temporary name, its record is claimed (a hard link, which fails if the
 * name is taken), then the volume is linked to its name: a crash leaves a
 * temporary file or a record without a volume, which the next open removes
 * and logs.  Deleting unlinks the volume, then its record.
 *
 * The records are read once at open and kept in memory (one vmhostd per
 * pool directory); listings take sizes from one READDIRPLUS.  qcow2 work
 * runs qemu-img on nfs:// URLs (QEMU's libnfs driver) from an argv; a
 * clone's backing file is the absolute nfs:// URL of its image (QEMU
 * resolves a relative one under the clone's own name, not its directory).
 * Hypervisors get an NFS network source; nothing can be mapped locally. */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <nfsc/libnfs-raw-nfs.h>
#include <nfsc/libnfs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "imagefetch.h"
#include "nfsconn.h"
#include "nfsmeta.h"
#include "qemuimg.h"
#include "url.h"

#define VMHOST_DIR ".vmhost"
#define VOLUMES_DIR VMHOST_DIR "/volumes"
#define RECORDS_DIR VMHOST_DIR "/images"
#define IMAGES_DIR ".images"
#define PART_PREFIX ".part-"
#define PATH_LEN 4096

static const struct vmh_host *host;

struct pool {
  const struct vmh_instance *inst;
  const char *name;     /* instance name, for messages */
  const char *server;   /* as configured, brackets of an IPv6 one removed */
  const char *export;   /* "/…" */
  const char *qemu_img; /* program, looked up in PATH */
  char *server_buf;     /* owns server when brackets were removed */
  char *dir;            /* the pool in the export: "" or "/sub/dir" */
  char *url;            /* nfs://server/export/sub/dir, for qemu-img */
  char *location;       /* the same, percent-encoded: volume locations */
  char *query;          /* "" or "?uid=…&gid=…" */
  uint64_t reserved;
  uint32_t default_format;
  bool v4; /* NFSv4 chosen: pool_info's message warns about it */
  struct conns conns;
  /* The tables (struct meta *, nfsmeta.h) and the names being imported. */
  pthread_rwlock_t table_lock;
  struct ptrvec vols, imgs, importing;
  /* Clones take it shared while they look up their base and make the
   * volume; image_delete takes it exclusive while it counts users and
   * removes the image, so that no clone of a deleted image can appear. */
  pthread_rwlock_t images_lock;
};

/* ---- Paths ----------------------------------------------------------------
 */

/* dir/sub/name in the export (sub NULL: dir/name). */
static void pool_path(const struct pool *p, char *buf, size_t len,
                      const char *sub, const char *name) {
  if (sub)
    snprintf(buf, len, "%s/%s/%s", p->dir, sub, name);
  else
    snprintf(buf, len, "%s/%s", p->dir, name);
}

/* The nfs:// URL qemu-img and QEMU open a file of the pool by. */
static void pool_url(const struct pool *p, char *buf, size_t len,
                     const char *sub, const char *name) {
  if (sub)
    snprintf(buf, len, "%s/%s/%s%s", p->url, sub, name, p->query);
  else
    snprintf(buf, len, "%s/%s%s", p->url, name, p->query);
}

/* Give a context back after an operation that ended with rc (VMH_EIO may
 * be a connection gone: the context is not kept). */
static void put(struct pool *p, struct nfs_context *nfs, int rc) {
  conns_put(&p->conns, nfs, rc == VMH_EIO ? -EIO : 0);
}

/* Remove a temporary file of a failed or finished create; a connection
 * gone leaves it to the next open's clean-up. */
static void remove_tmp(struct pool *p, struct nfs_context *nfs,
                       const char *path) {
  int rc = nfs_unlink(nfs, path);

  if (rc < 0 && rc != -ENOENT && !conns_broken(rc))
    host->log(p->inst, VMH_LOG_ERROR, "cannot remove %s:%s%s: %s", p->server,
              p->export, path, nfs_get_error(nfs));
}

/* ---- Space ----------------------------------------------------------------
 */

/* Capacity, use and what volumes may still use (free space minus the
 * reserve), from the server (FSSTAT). */
static int space(struct pool *p, struct nfs_context *nfs, uint64_t *capacity,
                 uint64_t *used, uint64_t *avail) {
  struct nfs_statvfs_64 sv;
  uint64_t total, bfree, bavail;
  int rc = nfs_statvfs64(nfs, p->dir[0] ? p->dir : "/", &sv);

  if (rc < 0)
    return conns_fail(&p->conns, nfs, rc, "pool %s: statvfs", p->name);
  total = sv.f_blocks * sv.f_frsize;
  bfree = sv.f_bfree * sv.f_frsize;
  bavail = sv.f_bavail * sv.f_frsize;
  if (capacity)
    *capacity = total > p->reserved ? total - p->reserved : 0;
  if (used)
    *used = total - bfree;
  if (avail)
    *avail = bavail > p->reserved ? bavail - p->reserved : 0;
  return 0;
}

/* Raw volumes must fit whole; qcow2 ones (thin) need the pool not to be
 * past its reserve already (need 0). */
static int check_space(struct pool *p, struct nfs_context *nfs, const char *vol,
                       uint64_t need) {
  uint64_t avail = 0;
  int rc = space(p, nfs, NULL, NULL, &avail);

  if (rc < 0)
    return rc;
  if (need > avail || avail == 0)
    return vmh_fail(host, VMH_ENOSPC,
                    "pool %s: volume %s needs %" PRIu64 " bytes, only %" PRIu64
                    " are available (%" PRIu64
                    " reserved); free space on %s:%s, lower `reserved` or "
                    "ask for less",
                    p->name, vol, need, avail, p->reserved, p->server,
                    p->export);
  return 0;
}

/* ---- Tables ---------------------------------------------------------------
 */

/* A copy of the record of name from table t; VMH_ENOENT (message set with
 * `what`) when there is none. */
static int find_copy(struct pool *p, struct ptrvec *t, const char *name,
                     const char *what, struct meta *out) {
  struct meta *m;

  pthread_rwlock_rdlock(&p->table_lock);
  m = table_find(t, name, NULL);
  if (m)
    *out = *m;
  pthread_rwlock_unlock(&p->table_lock);
  if (m == NULL)
    return vmh_fail(host, VMH_ENOENT, "pool %s has no %s %s%s", p->name, what,
                    name,
                    t == &p->imgs ? "; import it first (image_import)" : "");
  return 0;
}

static bool has(struct pool *p, struct ptrvec *t, const char *name) {
  bool found;

  pthread_rwlock_rdlock(&p->table_lock);
  found = table_find(t, name, NULL) != NULL;
  pthread_rwlock_unlock(&p->table_lock);
  return found;
}

/* Put a copy of m into table t (replacing the entry of its name). */
static int table_put(struct pool *p, struct ptrvec *t, const struct meta *m) {
  struct meta *copy = malloc(sizeof *copy), *old;
  int rc = 0;

  if (copy == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  *copy = *m;
  pthread_rwlock_wrlock(&p->table_lock);
  if ((old = table_find(t, m->name, NULL)) != NULL) {
    *old = *m;
    free(copy);
  } else if (table_add(t, copy) < 0) {
    free(copy);
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
  }
  pthread_rwlock_unlock(&p->table_lock);
  return rc;
}

static void table_drop(struct pool *p, struct ptrvec *t, const char *name) {
  pthread_rwlock_wrlock(&p->table_lock);
  free(table_take(t, name));
  pthread_rwlock_unlock(&p->table_lock);
}

/* Volumes backed by image name. */
static uint32_t image_users(struct pool *p, const char *name) {
  uint32_t n = 0;

  pthread_rwlock_rdlock(&p->table_lock);
  for (size_t i = 0; i < p->vols.n; i++)
    if (strcmp(((struct meta *)p->vols.v[i])->backing, name) == 0)
      n++;
  pthread_rwlock_unlock(&p->table_lock);
  return n;
}

/* ---- Opening: directories, records, leftovers -----------------------------
 */

/* mkdir that is fine with a directory already there. */
static int make_dir(struct pool *p, struct nfs_context *nfs, const char *path) {
  int rc = nfs_mkdir2(nfs, path, 0755);

  if (rc < 0 && rc != -EEXIST)
    return conns_fail(&p->conns, nfs, rc, "pool %s: cannot create %s:%s%s",
                      p->name, p->server, p->export, path);
  return 0;
}

/* The pool's directory (each component of `path`) and its own ones. */
static int make_dirs(struct pool *p, struct nfs_context *nfs) {
  static const char *const own[] = {VMHOST_DIR, VOLUMES_DIR, RECORDS_DIR,
                                    IMAGES_DIR};
  char path[PATH_LEN];
  int rc;

  /* p->dir is "" or "/a/b" (short: check_subdir). */
  for (size_t i = 1, n = strlen(p->dir); i <= n; i++) {
    if (i < n && p->dir[i] != '/')
      continue;
    memcpy(path, p->dir, i);
    path[i] = '\0';
    if ((rc = make_dir(p, nfs, path)) < 0)
      return rc;
  }
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
    pool_path(p, path, sizeof path, NULL, own[i]);
    if ((rc = make_dir(p, nfs, path)) < 0)
      return rc;
  }
  return 0;
}

/* Remove a leftover of an interrupted create, saying so. */
static void remove_leftover(struct pool *p, struct nfs_context *nfs,
                            const char *path, const char *why) {
  int rc = nfs_unlink(nfs, path);

  if (rc == 0)
    host->log(p->inst, VMH_LOG_WARN, "removed %s:%s%s, %s", p->server,
              p->export, path, why);
  else
    host->log(p->inst, VMH_LOG_ERROR, "cannot remove leftover %s:%s%s: %s",
              p->server, p->export, path, nfs_get_error(nfs));
}

/* Names in a directory: fn for each entry (a regular file). */
typedef int (*entry_fn)(struct pool *p, struct nfs_context *nfs,
                        const char *dir, const struct nfsdirent *e,
                        void *opaque);

static int walk(struct pool *p, struct nfs_context *nfs, const char *dir,
                entry_fn fn, void *opaque) {
  struct nfsdir *d = NULL;
  struct nfsdirent *e;
  int rc = nfs_opendir(nfs, dir[0] ? dir : "/", &d);

  if (rc < 0)
    return conns_fail(&p->conns, nfs, rc, "pool %s: cannot list %s:%s%s",
                      p->name, p->server, p->export, dir);
  while (rc == 0 && (e = nfs_readdir(nfs, d)) != NULL)
    if (e->type == NF3REG)
      rc = fn(p, nfs, dir, e, opaque);
  nfs_closedir(nfs, d);
  return rc;
}

/* A record in .vmhost/{volumes,images}: into the table (opaque), or
 * removed when it is a temporary one. */
static int load_record(struct pool *p, struct nfs_context *nfs, const char *dir,
                       const struct nfsdirent *e, void *opaque) {
  char path[PATH_LEN];
  struct meta m;
  int rc;

  snprintf(path, sizeof path, "%s/%s", dir, e->name);
  if (strncmp(e->name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
    remove_leftover(p, nfs, path, "left by an interrupted write");
    return 0;
  }
  if (!vmh_name_valid(e->name))
    return 0;
  rc = meta_load(&p->conns, nfs, dir, e->name, &m);
  if (rc == VMH_ENOENT)
    return 0;
  if (rc == VMH_EINVAL) {
    /* A broken record must not hide the rest of the pool. */
    host->log(p->inst, VMH_LOG_ERROR,
              "pool %s: %s is not a record vmhost "
              "wrote; it is ignored",
              p->name, path);
    return 0;
  }
  return rc < 0 ? rc : table_put(p, opaque, &m);
}

struct present {
  struct ptrvec *table;
  struct ptrvec seen; /* names of the table found as files */
  const char *what;   /* "volume", "image" */
};

/* A file where volumes or images live: a temporary one is removed, one
 * without a record is a volume made outside vmhost (listed as raw) or a
 * stray image file (ignored). */
static int check_file(struct pool *p, struct nfs_context *nfs, const char *dir,
                      const struct nfsdirent *e, void *opaque) {
  struct present *pr = opaque;
  char path[PATH_LEN];
  struct meta *m;

  snprintf(path, sizeof path, "%s/%s", dir, e->name);
  if (strncmp(e->name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
    remove_leftover(p, nfs, path, "left by an interrupted create");
    return 0;
  }
  if (!vmh_name_valid(e->name))
    return 0;
  m = table_find(pr->table, e->name, NULL);
  if (m == NULL && pr->table == &p->vols) {
    struct meta raw = {.format = VMH_FORMAT_RAW};
    snprintf(raw.name, sizeof raw.name, "%s", e->name);
    host->log(p->inst, VMH_LOG_WARN,
              "pool %s: volume %s has no record (not made by vmhost); it is "
              "listed as raw",
              p->name, e->name);
    return table_put(p, pr->table, &raw);
  }
  if (m && ptrvec_push(&pr->seen, m) < 0)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  return 0;
}

/* Records whose file is not there: a create or import that was
 * interrupted before it published, or a delete after it unlinked. */
static void drop_orphans(struct pool *p, struct nfs_context *nfs,
                         struct present *pr, const char *records_sub) {
  for (size_t i = pr->table->n; i-- > 0;) {
    struct meta *m = pr->table->v[i];
    char path[PATH_LEN];
    bool seen = false;
    for (size_t j = 0; j < pr->seen.n && !seen; j++)
      seen = pr->seen.v[j] == m;
    if (seen)
      continue;
    pool_path(p, path, sizeof path, records_sub, m->name);
    remove_leftover(p, nfs, path,
                    "the record of a volume or image that was never "
                    "completed or was deleted");
    free(ptrvec_remove(pr->table, i));
  }
}

/* Read the records of one kind and reconcile them with the files. */
static int load_kind(struct pool *p, struct nfs_context *nfs,
                     struct ptrvec *table, const char *records_sub,
                     const char *files_sub) {
  char records[PATH_LEN], files[PATH_LEN];
  struct present pr = {.table = table};
  int rc;

  snprintf(records, sizeof records, "%s/%s", p->dir, records_sub);
  if (files_sub)
    snprintf(files, sizeof files, "%s/%s", p->dir, files_sub);
  else
    snprintf(files, sizeof files, "%s", p->dir);
  if ((rc = walk(p, nfs, records, load_record, table)) < 0 ||
      (rc = walk(p, nfs, files, check_file, &pr)) < 0)
    goto cleanup;
  drop_orphans(p, nfs, &pr, records_sub);
cleanup:
  ptrvec_free(&pr.seen);
  return rc;
}

/* ---- Instance -------------------------------------------------------------
 */

static void nfs_pool_close(void *handle) {
  struct pool *p = handle;

  if (p == NULL)
    return;
  conns_destroy(&p->conns);
  table_free(&p->vols);
  table_free(&p->imgs);
  ptrvec_free(&p->importing);
  pthread_rwlock_destroy(&p->table_lock);
  pthread_rwlock_destroy(&p->images_lock);
  free(p->server_buf);
  free(p->dir);
  free(p->url);
  free(p->location);
  free(p->query);
  free(p);
}

/* `path`: names (the name rule) separated by '/'; "" for the export. */
static int check_subdir(struct pool *p, const char *path) {
  char part[VMH_NAME_MAX + 2];
  const char *s = path, *slash;

  /* Every path of the pool fits PATH_LEN with room to spare. */
  if (strlen(path) > 1024)
    return vmh_fail(host, VMH_EINVAL, "pool %s: path is longer than 1024",
                    p->name);
  while (*s) {
    slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    snprintf(part, sizeof part, "%.*s", (int)(n < sizeof part ? n : 0), s);
    if (n == 0 || n >= sizeof part || !vmh_name_valid(part))
      return vmh_fail(host, VMH_EINVAL,
                      "pool %s: path '%s' must be names separated by '/' "
                      "(each %s), under the export",
                      p->name, path, VMH_NAME_RULE);
    s += n + (slash != NULL);
  }
  return 0;
}

/* server, export and path into the pool's names for paths and URLs. */
static int set_location(struct pool *p, const char *server, const char *path,
                        int64_t uid, int64_t gid) {
  _cleanup_free_ char *authority = NULL, *where = NULL;
  size_t n = strlen(server);
  bool v6;

  if (n > 2 && server[0] == '[' && server[n - 1] == ']') {
    if ((p->server_buf = strndup(server + 1, n - 2)) == NULL)
      return vmh_fail(host, VMH_ENOMEM, "out of memory");
    server = p->server_buf;
  }
  if (server[0] == '\0' || strpbrk(server, "/?#@[] \t"))
    return vmh_fail(host, VMH_EINVAL,
                    "pool %s: server '%s' is not a host name or address",
                    p->name, server);
  if (p->export[0] != '/' || strpbrk(p->export, "?#% \t"))
    return vmh_fail(host, VMH_EINVAL,
                    "pool %s: export '%s' must be the absolute path the "
                    "server exports, e.g. /srv/vm",
                    p->name, p->export);
  p->server = server;
  v6 = strchr(server, ':') != NULL;
  for (n = strlen(p->export); n > 1 && p->export[n - 1] == '/'; n--)
    ;
  if (asprintf(&p->dir, "%s%s", path[0] ? "/" : "", path) < 0 ||
      asprintf(&authority, "nfs://%s%s%s", v6 ? "[" : "", server,
               v6 ? "]" : "") < 0 ||
      asprintf(&where, "%.*s%s", (int)n, p->export, p->dir) < 0 ||
      asprintf(&p->url, "%s%s", authority, where) < 0 ||
      (p->location = url_path(authority, where)) == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  if (uid >= 0 && gid >= 0)
    n = (size_t)asprintf(&p->query, "?uid=%" PRId64 "&gid=%" PRId64, uid, gid);
  else if (uid >= 0 || gid >= 0)
    n = (size_t)asprintf(&p->query, "?%s=%" PRId64, uid >= 0 ? "uid" : "gid",
                         uid >= 0 ? uid : gid);
  else
    p->query = strdup("");
  if (p->query == NULL || n == (size_t)-1)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  return 0;
}

/* Every key, read before anything touches the server (--check-config). */
static int read_config(struct pool *p, const struct vmh_config *config,
                       int64_t *version, int64_t *uid, int64_t *gid,
                       int64_t *timeout, const char **server,
                       const char **path) {
  const char *format;
  int rc;

  if ((rc = host->config_string(config, "server", NULL, server,
                                VMH_CFG_REQUIRED)) < 0 ||
      (rc = host->config_string(config, "export", NULL, &p->export,
                                VMH_CFG_REQUIRED)) < 0 ||
      (rc = host->config_string(config, "path", "", path, 0)) < 0 ||
      (rc = host->config_int(config, "version", 3, 4, 3, version, 0)) < 0 ||
      (rc = host->config_int(config, "uid", 0, UINT32_MAX, -1, uid, 0)) < 0 ||
      (rc = host->config_int(config, "gid", 0, UINT32_MAX, -1, gid, 0)) < 0 ||
      (rc = host->config_int(config, "timeout", 1, 3600, 10, timeout, 0)) < 0 ||
      (rc = host->config_size(config, "reserved", 0, UINT64_MAX, 0,
                              &p->reserved, 0)) < 0 ||
      (rc = host->config_string(config, "default_format", "qcow2", &format,
                                0)) < 0 ||
      (rc = host->config_string(config, "qemu_img", "qemu-img", &p->qemu_img,
                                0)) < 0)
    return rc;
  p->default_format = disk_format_parse(format);
  if (p->default_format == VMH_FORMAT_DEFAULT)
    return vmh_fail(host, VMH_EINVAL,
                    "pool %s: default_format '%s' is not raw or qcow2", p->name,
                    format);
  return check_subdir(p, *path);
}

/* Mount, make the directories, read the records, remove leftovers. */
static int load_pool(struct pool *p) {
  struct nfs_context *nfs;
  int rc;

  if ((rc = conns_get(&p->conns, &nfs)) < 0)
    return rc;
  if ((rc = make_dirs(p, nfs)) == 0 &&
      (rc = load_kind(p, nfs, &p->vols, VOLUMES_DIR, NULL)) == 0)
    rc = load_kind(p, nfs, &p->imgs, RECORDS_DIR, IMAGES_DIR);
  put(p, nfs, rc);
  return rc;
}

static int nfs_pool_open(const struct vmh_host *h,
                         const struct vmh_instance *inst,
                         const struct vmh_config *config, void **ret_handle,
                         uint32_t flags) {
  struct pool *p;
  const char *server, *path;
  int64_t version, uid, gid, timeout;
  int rc;

  (void)h;
  if ((rc = vmh_check_flags(host, "open", flags, VMH_OPEN_CHECK_ONLY)) < 0)
    return rc;
  p = calloc(1, sizeof *p);
  if (p == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  p->inst = inst;
  p->name = host->instance_name(inst);
  pthread_rwlock_init(&p->table_lock, NULL);
  pthread_rwlock_init(&p->images_lock, NULL);
  if ((rc = read_config(p, config, &version, &uid, &gid, &timeout, &server,
                        &path)) < 0 ||
      (rc = set_location(p, server, path, uid, gid)) < 0)
    goto fail;
  conns_init(&p->conns, host, p->server, p->export, (int)version, uid, gid,
             (int)timeout);
  if (flags & VMH_OPEN_CHECK_ONLY) {
    *ret_handle = p;
    return 0;
  }
  p->v4 = version == 4;
  if (p->v4)
    host->log(inst, VMH_LOG_WARN,
              "pool %s: NFSv4 chosen; libnfs 4.0.0 (Debian 12) corrupts "
              "NFSv4 writes over about 3.5 KB: use version 3 with that "
              "libnfs (qemu-img and QEMU use NFSv3 whatever this says)",
              p->name);
  if ((rc = load_pool(p)) < 0)
    goto fail;
  host->log(inst, VMH_LOG_INFO,
            "pool %s on %s:%s%s (NFSv%" PRId64 "): %zu volumes, %zu images",
            p->name, p->server, p->export, p->dir, version, p->vols.n,
            p->imgs.n);
  *ret_handle = p;
  return 0;
fail:
  nfs_pool_close(p);
  return rc;
}

/* ---- Operations -----------------------------------------------------------
 */

static int nfs_health(void *handle, uint32_t flags) {
  struct pool *p = handle;
  struct nfs_context *nfs;
  int rc;

  if ((rc = vmh_check_flags(host, "health", flags, 0)) < 0 ||
      (rc = conns_get(&p->conns, &nfs)) < 0)
    return rc;
  rc = space(p, nfs, NULL, NULL, NULL);
  put(p, nfs, rc);
  return rc;
}

/* What is not simply fine with the pool, for pool_info's message: no room
 * left for volumes, or the NFSv4 data-corruption risk. */
static void pool_message(const struct pool *p, struct vmh_pool_info *info,
                         char *buf, size_t len) {
  if (info->available == 0)
    snprintf(buf, len,
             "no room for volumes: %s:%s is full or within the %" PRIu64
             " bytes reserved",
             p->server, p->export, p->reserved);
  else if (p->v4)
    snprintf(buf, len,
             "NFSv4 with libnfs 4.0.0 corrupts writes over about 3.5 KB; "
             "use version 3");
  else
    return;
  info->message = buf;
}

static int nfs_pool_info(void *handle, vmh_pool_info_fn fn, void *opaque,
                         uint32_t flags) {
  struct pool *p = handle;
  struct vmh_pool_info info = {0};
  char msg[512];
  struct nfs_context *nfs;
  int rc;

  if ((rc = vmh_check_flags(host, "pool_info", flags, 0)) < 0 ||
      (rc = conns_get(&p->conns, &nfs)) < 0)
    return rc;
  info.struct_size = sizeof info;
  rc = space(p, nfs, &info.capacity, &info.allocation, &info.available);
  put(p, nfs, rc);
  if (rc < 0)
    return rc;
  pthread_rwlock_rdlock(&p->table_lock);
  info.n_volumes = (uint32_t)p->vols.n;
  pthread_rwlock_unlock(&p->table_lock);
  info.default_format = p->default_format;
  pool_message(p, &info, msg, sizeof msg);
  return fn(opaque, &info);
}

/* What the core sees of a volume: its record, sizes from the server. */
static int report(const struct pool *p, const struct meta *m, uint64_t size,
                  uint64_t used, vmh_volume_info_fn fn, void *opaque) {
  struct vmh_volume_info info = {0};
  _cleanup_free_ char *location = NULL;

  /* Volume names need no escaping in a URL. */
  if (asprintf(&location, "%s/%s", p->location, m->name) < 0) {
    location = NULL;
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  }
  info.struct_size = sizeof info;
  info.location = location;
  info.name = m->name;
  info.capacity = m->format == VMH_FORMAT_QCOW2 ? m->vsize : size;
  info.allocation = used;
  info.format = m->format;
  info.backing = m->backing[0] ? m->backing : NULL;
  return fn(opaque, &info);
}

struct list_ctx {
  vmh_volume_info_fn fn;
  void *opaque;
};

static int list_one(struct pool *p, struct nfs_context *nfs, const char *dir,
                    const struct nfsdirent *e, void *opaque) {
  struct list_ctx *c = opaque;
  struct meta *m;

  (void)nfs;
  (void)dir;
  if (!vmh_name_valid(e->name))
    return 0;
  /* The walk holds no lock while it reads the directory; a file made or
   * removed meanwhile is listed by its record or not at all. */
  pthread_rwlock_rdlock(&p->table_lock);
  m = table_find(&p->vols, e->name, NULL);
  int rc = m ? report(p, m, e->size, e->used, c->fn, c->opaque) : 0;
  pthread_rwlock_unlock(&p->table_lock);
  return rc;
}

static int nfs_vol_list(void *handle, vmh_volume_info_fn fn, void *opaque,
                        uint32_t flags) {
  struct pool *p = handle;
  struct list_ctx c = {fn, opaque};
  struct nfs_context *nfs;
  int rc;

  if ((rc = vmh_check_flags(host, "vol_list", flags, 0)) < 0 ||
      (rc = conns_get(&p->conns, &nfs)) < 0)
    return rc;
  rc = walk(p, nfs, p->dir, list_one, &c);
  put(p, nfs, rc);
  return rc;
}

/* lstat of a volume: a regular file, else an error saying what is there. */
static int stat_vol(struct pool *p, struct nfs_context *nfs, const char *name,
                    struct nfs_stat_64 *st) {
  char path[PATH_LEN];
  int rc;

  pool_path(p, path, sizeof path, NULL, name);
  if ((rc = nfs_lstat64(nfs, path, st)) < 0)
    return rc == -ENOENT ? vmh_fail(host, VMH_ENOENT,
                                    "pool %s: volume %s is gone from %s:%s%s",
                                    p->name, name, p->server, p->export, path)
                         : conns_fail(&p->conns, nfs, rc, "pool %s: stat %s",
                                      p->name, path);
  if (!S_ISREG(st->nfs_mode))
    return vmh_fail(host, VMH_EINVAL,
                    "pool %s: %s:%s%s is not a regular file, not a volume; "
                    "remove it",
                    p->name, p->server, p->export, path);
  return 0;
}

static int nfs_vol_get(void *handle, const char *name, vmh_volume_info_fn fn,
                       void *opaque, uint32_t flags) {
  struct pool *p = handle;
  struct nfs_stat_64 st;
  struct nfs_context *nfs;
  struct meta m;
  int rc;

  if ((rc = vmh_check_flags(host, "vol_get", flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0 ||
      (rc = find_copy(p, &p->vols, name, "volume", &m)) < 0 ||
      (rc = conns_get(&p->conns, &nfs)) < 0)
    return rc;
  rc = stat_vol(p, nfs, name, &st);
  put(p, nfs, rc);
  return rc < 0 ? rc : report(p, &m, st.nfs_size, st.nfs_used, fn, opaque);
}

/* The spec's format, size and base image checked; with a base, its record
 * in *base (the caller holds images_lock shared). */
static int check_spec(struct pool *p, const struct vmh_volume_spec *spec,
                      struct meta *m, struct meta *base) {
  int rc;

  memset(m, 0, sizeof *m);
  if ((rc = file_vol_spec(host, spec, p->default_format, &m->format,
                          &m->vsize)) < 0)
    return rc;
  snprintf(m->name, sizeof m->name, "%s", spec->name);
  if (spec->base_image == NULL)
    return 0;
  snprintf(m->backing, sizeof m->backing, "%s", spec->base_image);
  if ((rc = find_copy(p, &p->imgs, spec->base_image, "image", base)) < 0)
    return rc;
  return file_vol_clone_size(host, spec, base->vsize, &m->vsize);
}

/* The volume's data under the temporary name tmp: a sparse raw file, or a
 * qcow2 image (a clone of base when it has one) made by qemu-img. */
static int make_data(struct pool *p, struct nfs_context *nfs,
                     const struct meta *m, const struct meta *base,
                     const char *tmp) {
  char path[PATH_LEN], url[PATH_LEN], burl[PATH_LEN], sizearg[32];
  char err[QEMU_IMG_ERR_MAX];
  struct nfsfh *fh = NULL;
  char *argv[16];
  int a = 0, rc;

  if (m->format == VMH_FORMAT_RAW) {
    pool_path(p, path, sizeof path, NULL, tmp);
    if ((rc = nfs_create(nfs, path, O_RDWR | O_EXCL, 0600, &fh)) < 0)
      return conns_fail(&p->conns, nfs, rc, "pool %s: create %s", p->name,
                        path);
    rc = nfs_ftruncate(nfs, fh, m->vsize);
    nfs_close(nfs, fh);
    return rc < 0 ? conns_fail(&p->conns, nfs, rc,
                               "pool %s: volume %s: truncate to %" PRIu64,
                               p->name, m->name, m->vsize)
                  : 0;
  }
  pool_url(p, url, sizeof url, NULL, tmp);
  snprintf(sizearg, sizeof sizearg, "%" PRIu64, m->vsize);
  argv[a++] = (char *)p->qemu_img;
  argv[a++] = "create";
  argv[a++] = "-q";
  argv[a++] = "-f";
  argv[a++] = "qcow2";
  if (m->backing[0]) {
    pool_url(p, burl, sizeof burl, IMAGES_DIR, m->backing);
    argv[a++] = "-b";
    argv[a++] = burl;
    argv[a++] = "-F";
    argv[a++] = (char *)disk_format_name(base->format);
  }
  argv[a++] = url;
  argv[a++] = sizearg;
  argv[a] = NULL;
  if ((rc = qemu_img_run(argv, NULL, err, sizeof err)) < 0)
    return vmh_fail(
        host, rc, "pool %s: volume %s: qemu-img create failed: %s%s", p->name,
        m->name, err, rc == VMH_ENOSPC ? "; free space on the NFS server" : "");
  return 0;
}

/* Claim the record, then link the data to its name: either fails when the
 * name is taken. */
static int publish(struct pool *p, struct nfs_context *nfs,
                   const struct meta *m, const char *tmp) {
  char records[PATH_LEN], tpath[PATH_LEN], path[PATH_LEN];
  int rc;

  snprintf(records, sizeof records, "%s/" VOLUMES_DIR, p->dir);
  if ((rc = meta_store(&p->conns, nfs, records, m, 0)) < 0)
    return rc == VMH_EEXIST
               ? vmh_fail(host, VMH_EEXIST,
                          "pool %s already has a volume %s; pick another name",
                          p->name, m->name)
               : rc;
  pool_path(p, tpath, sizeof tpath, NULL, tmp);
  pool_path(p, path, sizeof path, NULL, m->name);
  if ((rc = nfs_link(nfs, tpath, path)) < 0) {
    int code = rc == -EEXIST ? vmh_fail(host, VMH_EEXIST,
                                        "pool %s already has a file %s; pick "
                                        "another name",
                                        p->name, m->name)
                             : conns_fail(&p->conns, nfs, rc,
                                          "pool %s: publish %s", p->name, path);
    pool_path(p, path, sizeof path, VOLUMES_DIR, m->name);
    nfs_unlink(nfs, path);
    return code;
  }
  return 0;
}

static int nfs_vol_create(void *handle, const struct vmh_volume_spec *spec,
                          uint32_t flags) {
  struct pool *p = handle;
  char tmp[VMH_NAME_MAX + 64], tpath[PATH_LEN];
  struct nfs_context *nfs = NULL;
  struct meta m, base;
  bool made = false;
  int rc;

  if ((rc = vmh_check_flags(host, "vol_create", flags, 0)) < 0)
    return rc;
  if (spec == NULL)
    return vmh_fail(host, VMH_EINVAL, "vol_create: no volume spec");
  pthread_rwlock_rdlock(&p->images_lock);
  if ((rc = check_spec(p, spec, &m, &base)) < 0)
    goto cleanup;
  if (has(p, &p->vols, m.name)) {
    rc = vmh_fail(host, VMH_EEXIST,
                  "pool %s already has a volume %s; pick another name", p->name,
                  m.name);
    goto cleanup;
  }
  if ((rc = conns_get(&p->conns, &nfs)) < 0 ||
      (rc = check_space(p, nfs, m.name,
                        m.format == VMH_FORMAT_RAW ? m.vsize : 0)) < 0)
    goto cleanup;
  tmp_name(tmp, sizeof tmp, m.name);
  pool_path(p, tpath, sizeof tpath, NULL, tmp);
  made = true;
  if ((rc = make_data(p, nfs, &m, &base, tmp)) < 0 ||
      (rc = publish(p, nfs, &m, tmp)) < 0)
    goto cleanup;
  if (m.format == VMH_FORMAT_RAW)
    m.vsize = 0; /* the file's size says it */
  rc = table_put(p, &p->vols, &m);
cleanup:
  if (made)
    remove_tmp(p, nfs, tpath);
  if (nfs)
    put(p, nfs, rc);
  pthread_rwlock_unlock(&p->images_lock);
  return rc;
}

/* Unlink dir-relative path; a file already gone is fine. */
static int unlink_file(struct pool *p, struct nfs_context *nfs,
                       const char *path) {
  int rc = nfs_unlink(nfs, path);

  if (rc < 0 && rc != -ENOENT)
    return conns_fail(&p->conns, nfs, rc, "pool %s: delete %s:%s%s", p->name,
                      p->server, p->export, path);
  return 0;
}

static int nfs_vol_delete(void *handle, const char *name, uint32_t flags) {
  struct pool *p = handle;
  char path[PATH_LEN];
  struct nfs_context *nfs;
  int rc;

  if ((rc = vmh_check_flags(host, "vol_delete", flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0)
    return rc;
  if (!has(p, &p->vols, name))
    return vmh_fail(host, VMH_ENOENT, "pool %s has no volume %s", p->name,
                    name);
  if ((rc = conns_get(&p->conns, &nfs)) < 0)
    return rc;
  /* The volume first: a crash in between leaves a record without a
   * volume, which the next open removes. */
  pool_path(p, path, sizeof path, NULL, name);
  if ((rc = unlink_file(p, nfs, path)) == 0) {
    pool_path(p, path, sizeof path, VOLUMES_DIR, name);
    table_drop(p, &p->vols, name);
    rc = unlink_file(p, nfs, path);
  }
  put(p, nfs, rc);
  return rc;
}

/* Grow or shrink the data of m to size: truncate a raw file, qemu-img
 * resize a qcow2 one and record its new virtual size. */
static int resize_data(struct pool *p, struct nfs_context *nfs, struct meta *m,
                       uint64_t size) {
  char path[PATH_LEN], url[PATH_LEN], sizearg[32], err[QEMU_IMG_ERR_MAX];
  int rc;

  if (m->format == VMH_FORMAT_RAW) {
    pool_path(p, path, sizeof path, NULL, m->name);
    if ((rc = nfs_truncate(nfs, path, size)) < 0)
      return conns_fail(&p->conns, nfs, rc, "volume %s: resize to %" PRIu64,
                        m->name, size);
    return 0;
  }
  pool_url(p, url, sizeof url, NULL, m->name);
  snprintf(sizearg, sizeof sizearg, "%" PRIu64, size);
  char *argv[] = {
      (char *)p->qemu_img, "resize", "-q", "-f", "qcow2", url, sizearg, NULL};
  if ((rc = qemu_img_run(argv, NULL, err, sizeof err)) < 0)
    return vmh_fail(host, rc, "volume %s: qemu-img resize failed: %s", m->name,
                    err);
  m->vsize = size;
  snprintf(path, sizeof path, "%s/" VOLUMES_DIR, p->dir);
  if ((rc = meta_store(&p->conns, nfs, path, m, 1)) < 0)
    return rc;
  return table_put(p, &p->vols, m);
}

static int nfs_vol_resize(void *handle, const char *name, uint64_t size,
                          uint32_t flags) {
  struct pool *p = handle;
  struct nfs_stat_64 st;
  struct nfs_context *nfs;
  struct meta m;
  uint64_t now, need;
  int rc;

  if ((rc = vmh_check_flags(host, "vol_resize", flags, VMH_RESIZE_SHRINK)) <
          0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0 ||
      (rc = find_copy(p, &p->vols, name, "volume", &m)) < 0 ||
      (rc = conns_get(&p->conns, &nfs)) < 0)
    return rc;
  if ((rc = stat_vol(p, nfs, name, &st)) < 0)
    goto cleanup;
  now = m.format == VMH_FORMAT_QCOW2 ? m.vsize : st.nfs_size;
  if ((rc = file_vol_resize_check(host, name, m.format, now, size, flags,
                                  &need)) <= 0 ||
      (size > now && (rc = check_space(p, nfs, name, need)) < 0))
    goto cleanup;
  rc = resize_data(p, nfs, &m, size);
cleanup:
  put(p, nfs, rc);
  return rc;
}

static int nfs_vol_source(void *handle, const char *name, vmh_disk_source_fn fn,
                          void *opaque, uint32_t flags) {
  struct pool *p = handle;
  struct vmh_disk_source src = {0};
  struct nfs_stat_64 st;
  struct nfs_context *nfs;
  char path[PATH_LEN];
  struct meta m;
  int rc;

  if ((rc = vmh_check_flags(host, "vol_source", flags, VMH_SOURCE_LOCAL)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0)
    return rc;
  if (flags & VMH_SOURCE_LOCAL)
    return vmh_fail(host, VMH_ENOTSUP,
                    "pool %s: volume %s lives on NFS server %s, reached "
                    "through libnfs only; vmhostd mounts nothing, so it has "
                    "no local path to give. Use a hypervisor that opens NFS "
                    "disks itself (libvirt with QEMU), or a local pool",
                    p->name, name, p->server);
  if ((rc = find_copy(p, &p->vols, name, "volume", &m)) < 0 ||
      (rc = conns_get(&p->conns, &nfs)) < 0)
    return rc;
  /* A file replaced by a symlink on the server would lead the hypervisor
   * out of the pool. */
  rc = stat_vol(p, nfs, name, &st);
  put(p, nfs, rc);
  if (rc < 0)
    return rc;
  pool_path(p, path, sizeof path, NULL, name);
  src.struct_size = sizeof src;
  src.type = VMH_SOURCE_NFS;
  src.format = m.format;
  src.server = p->server;
  src.export_path = p->export;
  src.path = path;
  return fn(opaque, &src);
}

static int nfs_vol_unmap(void *handle, const char *name, uint32_t flags) {
  int rc;
  (void)handle;
  /* Nothing is ever mapped locally: nothing to undo. */
  if ((rc = vmh_check_flags(host, "vol_unmap", flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0)
    return rc;
  return 0;
}

/* ---- Image cache ----------------------------------------------------------
 */

/* The part file of an import, as imagefetch's sink. */
struct part_sink {
  struct pool *p;
  struct nfs_context *nfs;
  struct nfsfh *fh;
  const char *name; /* the image */
  const char *path; /* in the export */
};

static int part_write(void *opaque, const void *buf, size_t len,
                      uint64_t offset) {
  struct part_sink *pt = opaque;

  while (len > 0) {
    int n = nfs_pwrite(pt->nfs, pt->fh, offset, len, buf);
    if (n <= 0) {
      int rc = n < 0 ? n : -EIO;
      return conns_fail(&pt->p->conns, pt->nfs, rc, "image %s: writing %s%s",
                        pt->name, pt->path,
                        rc == -ENOSPC ? " (free space on the NFS server)" : "");
    }
    buf = (const char *)buf + n;
    len -= (size_t)n;
    offset += (uint64_t)n;
  }
  return 0;
}

static ssize_t part_read(void *opaque, void *buf, size_t len, uint64_t offset) {
  struct part_sink *pt = opaque;
  int n = nfs_pread(pt->nfs, pt->fh, offset, len, buf);

  if (n < 0)
    return conns_fail(&pt->p->conns, pt->nfs, n, "reading %s to hash it",
                      pt->path);
  return n;
}

static int part_truncate(void *opaque, uint64_t size) {
  struct part_sink *pt = opaque;
  int rc = nfs_ftruncate(pt->nfs, pt->fh, size);

  return rc < 0
             ? conns_fail(&pt->p->conns, pt->nfs, rc, "truncate %s", pt->path)
             : 0;
}

/* Claim name for one import at a time; VMH_EBUSY when one runs. */
static int claim_import(struct pool *p, const char *name) {
  int rc = 0;

  pthread_rwlock_wrlock(&p->table_lock);
  for (size_t i = 0; i < p->importing.n && rc == 0; i++)
    if (strcmp(p->importing.v[i], name) == 0)
      rc = vmh_fail(host, VMH_EBUSY,
                    "image %s is being imported already; wait for it", name);
  if (rc == 0 && ptrvec_push(&p->importing, (void *)name) < 0)
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
  pthread_rwlock_unlock(&p->table_lock);
  return rc;
}

static void release_import(struct pool *p, const char *name) {
  pthread_rwlock_wrlock(&p->table_lock);
  for (size_t i = 0; i < p->importing.n; i++)
    if (p->importing.v[i] == name) {
      ptrvec_remove(&p->importing, i);
      break;
    }
  pthread_rwlock_unlock(&p->table_lock);
}

struct stale_parts {
  char prefix[VMH_NAME_MAX + 16]; /* ".part-NAME-" */
  const char *keep;               /* the part of this import */
};

/* Parts of earlier imports of the same name with another digest. */
static int drop_stale_part(struct pool *p, struct nfs_context *nfs,
                           const char *dir, const struct nfsdirent *e,
                           void *opaque) {
  struct stale_parts *s = opaque;
  char path[PATH_LEN];

  if (strncmp(e->name, s->prefix, strlen(s->prefix)) != 0 ||
      strcmp(e->name, s->keep) == 0)
    return 0;
  snprintf(path, sizeof path, "%s/%s", dir, e->name);
  remove_leftover(p, nfs, path, "a partial download of other content");
  return 0;
}

/* Open the part file of an import of name with digest want (its name says
 * the digest, so a part of other content is never resumed): what it holds
 * already in *have. */
static int open_part(struct pool *p, struct nfs_context *nfs,
                     struct part_sink *pt, const char *part, uint64_t *have) {
  struct stale_parts s;
  struct nfs_stat_64 st;
  char dir[PATH_LEN];
  int rc;

  snprintf(s.prefix, sizeof s.prefix, PART_PREFIX "%s-", pt->name);
  s.keep = part;
  snprintf(dir, sizeof dir, "%s/" IMAGES_DIR, p->dir);
  if ((rc = walk(p, nfs, dir, drop_stale_part, &s)) < 0)
    return rc;
  *have = 0;
  rc = nfs_open(nfs, pt->path, O_RDWR, &pt->fh);
  if (rc == -ENOENT)
    rc = nfs_create(nfs, pt->path, O_RDWR | O_EXCL, 0600, &pt->fh);
  else if (rc == 0 && (rc = nfs_fstat64(nfs, pt->fh, &st)) == 0)
    *have = st.nfs_size;
  if (rc < 0)
    return conns_fail(&p->conns, nfs, rc, "pool %s: image %s: open %s", p->name,
                      pt->name, pt->path);
  if (*have)
    host->log(p->inst, VMH_LOG_INFO,
              "image %s: %" PRIu64 " bytes of an earlier download are kept",
              pt->name, *have);
  return 0;
}

/* A verified download: look at it, make it read-only, record it and give
 * it its name. */
static int publish_image(struct pool *p, struct part_sink *pt, const char *what,
                         const struct fetch_result *res) {
  char url[PATH_LEN], records[PATH_LEN], path[PATH_LEN];
  struct meta m = {0};
  int rc;

  snprintf(m.name, sizeof m.name, "%s", pt->name);
  pool_url(p, url, sizeof url, NULL, pt->path + strlen(p->dir) + 1);
  if ((rc = qemu_img_probe(host, p->qemu_img, url, what, &m.format, &m.vsize)) <
      0)
    return rc;
  m.bytes = res->size;
  snprintf(m.sha256, sizeof m.sha256, "%s", res->sha256);
  /* Read-only from here: clones only ever read their base. */
  if ((rc = nfs_fsync(pt->nfs, pt->fh)) < 0 ||
      (rc = nfs_fchmod(pt->nfs, pt->fh, 0444)) < 0)
    return conns_fail(&p->conns, pt->nfs, rc, "pool %s: image %s: %s", p->name,
                      pt->name, pt->path);
  snprintf(records, sizeof records, "%s/" RECORDS_DIR, p->dir);
  if ((rc = meta_store(&p->conns, pt->nfs, records, &m, 0)) < 0)
    return rc;
  pool_path(p, path, sizeof path, IMAGES_DIR, m.name);
  if ((rc = nfs_link(pt->nfs, pt->path, path)) < 0) {
    rc = conns_fail(&p->conns, pt->nfs, rc, "pool %s: publish image %s",
                    p->name, m.name);
    pool_path(p, path, sizeof path, RECORDS_DIR, m.name);
    nfs_unlink(pt->nfs, path);
    return rc;
  }
  host->log(p->inst, VMH_LOG_INFO,
            "image %s imported: %s, %" PRIu64 " bytes, sha256 %s", m.name,
            disk_format_name(m.format), m.vsize, m.sha256);
  return table_put(p, &p->imgs, &m);
}

static int nfs_image_import(void *handle, const struct vmh_image_spec *spec,
                            uint32_t flags) {
  struct pool *p = handle;
  char want[FETCH_SHA256_HEX + 1], what[VMH_NAME_MAX + 32];
  char part[VMH_NAME_MAX + FETCH_SHA256_HEX + 16], ppath[PATH_LEN];
  struct part_sink pt = {.p = p, .path = ppath};
  const struct fetch_sink sink = {part_write, part_read, part_truncate, &pt};
  struct fetch_progress_target target = {host, p->inst, NULL};
  struct fetch_request req = {0};
  struct fetch_result res = {0};
  bool keep = true;
  int rc;

  if ((rc = vmh_check_flags(host, "image_import", flags, 0)) < 0)
    return rc;
  if (spec == NULL)
    return vmh_fail(host, VMH_EINVAL, "image_import: no image spec");
  if ((rc = vmh_check_name(host, "image", spec->name)) < 0)
    return rc;
  snprintf(what, sizeof what, "image %s", spec->name);
  if ((rc = fetch_check(host, what, spec->url, spec->sha256, NULL, want)) < 0)
    return rc;
  if (has(p, &p->imgs, spec->name))
    return vmh_fail(host, VMH_EEXIST,
                    "pool %s already has an image %s; delete it first or pick "
                    "another name",
                    p->name, spec->name);
  if ((rc = claim_import(p, spec->name)) < 0)
    return rc;
  if ((rc = conns_get(&p->conns, &pt.nfs)) < 0) {
    release_import(p, spec->name);
    return rc;
  }
  pt.name = target.name = spec->name;
  snprintf(part, sizeof part, PART_PREFIX "%s-%s", spec->name, want);
  pool_path(p, ppath, sizeof ppath, IMAGES_DIR, part);
  if ((rc = open_part(p, pt.nfs, &pt, part, &req.have)) < 0)
    goto cleanup;
  req.host = host;
  req.inst = p->inst;
  req.what = what;
  req.url = spec->url;
  req.sha256 = want;
  req.sink = &sink;
  req.progress = fetch_progress_event;
  req.progress_opaque = &target;
  if ((rc = fetch_run(&req, &res)) < 0) {
    keep = res.keep;
    goto cleanup;
  }
  keep = false; /* linked to its name, or not wanted */
  rc = publish_image(p, &pt, what, &res);
cleanup:
  if (pt.fh)
    nfs_close(pt.nfs, pt.fh);
  if (!keep)
    remove_tmp(p, pt.nfs, ppath);
  put(p, pt.nfs, rc);
  release_import(p, spec->name);
  return rc;
}

static int nfs_image_list(void *handle, vmh_image_info_fn fn, void *opaque,
                          uint32_t flags) {
  struct pool *p = handle;
  int rc = vmh_check_flags(host, "image_list", flags, 0);

  pthread_rwlock_rdlock(&p->table_lock);
  for (size_t i = 0; rc == 0 && i < p->imgs.n; i++) {
    const struct meta *m = p->imgs.v[i];
    struct vmh_image_info info = {0};
    info.struct_size = sizeof info;
    info.name = m->name;
    info.size = m->bytes;
    info.sha256 = m->sha256;
    for (size_t j = 0; j < p->vols.n; j++)
      if (strcmp(((struct meta *)p->vols.v[j])->backing, m->name) == 0)
        info.n_users++;
    rc = fn(opaque, &info);
  }
  pthread_rwlock_unlock(&p->table_lock);
  return rc;
}

static int nfs_image_delete(void *handle, const char *name, uint32_t flags) {
  struct pool *p = handle;
  struct nfs_context *nfs = NULL;
  char path[PATH_LEN];
  uint32_t users;
  int rc;

  if ((rc = vmh_check_flags(host, "image_delete", flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "image", name)) < 0)
    return rc;
  pthread_rwlock_wrlock(&p->images_lock);
  if (!has(p, &p->imgs, name)) {
    rc = vmh_fail(host, VMH_ENOENT, "pool %s has no image %s", p->name, name);
    goto cleanup;
  }
  if ((users = image_users(p, name)) > 0) {
    rc = vmh_fail(host, VMH_EBUSY,
                  "pool %s: image %s backs %" PRIu32
                  " volume(s); delete them first",
                  p->name, name, users);
    goto cleanup;
  }
  if ((rc = conns_get(&p->conns, &nfs)) < 0)
    goto cleanup;
  pool_path(p, path, sizeof path, IMAGES_DIR, name);
  if ((rc = unlink_file(p, nfs, path)) == 0) {
    table_drop(p, &p->imgs, name);
    pool_path(p, path, sizeof path, RECORDS_DIR, name);
    rc = unlink_file(p, nfs, path);
  }
  put(p, nfs, rc);
cleanup:
  pthread_rwlock_unlock(&p->images_lock);
  return rc;
}

/* ---- Registration -------------------------------------------------------- */

static int nfs_load(const struct vmh_host *h) {
  host = h;
  return fetch_global_init(h); /* once, before any instance runs */
}

static struct vmh_storage_ops ops = {
    .open = nfs_pool_open,
    .close = nfs_pool_close,
    .health = nfs_health,
    .pool_info = nfs_pool_info,
    .vol_list = nfs_vol_list,
    .vol_get = nfs_vol_get,
    .vol_create = nfs_vol_create,
    .vol_delete = nfs_vol_delete,
    .vol_resize = nfs_vol_resize,
    .vol_source = nfs_vol_source,
    .vol_unmap = nfs_vol_unmap,
    .image_import = nfs_image_import,
    .image_list = nfs_image_list,
    .image_delete = nfs_image_delete,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_STORAGE,
    .name = "nfs",
    .version = VMH_PACKAGE_VERSION,
    .description = "NFS pool over libnfs: raw/qcow2 files, clones, image cache",
    .load = nfs_load,
    .storage = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
