/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* storage-rbd — a Ceph RBD pool (or one namespace of it) as a storage
 * pool, over librados and librbd: no rbd or ceph command ever runs.
 *
 * Names in the RBD pool (namespace):
 *   <name>           a volume: an RBD image (raw), maybe a clone
 *   _image.<name>    a cached base image, verified by SHA-256 (image
 *                    metadata vmhost.sha256); clones are made from its
 *                    snapshot "base"
 *   _part.<name>     an image being imported, renamed to _image.<name> only
 *                    once it is verified and has its snapshot
 * A volume name never starts with '_' (the name rule), so nothing half made
 * is ever listed.  Several hosts may share the pool, and then its image
 * cache.
 *
 * One cluster handle and one I/O context per instance; librados and librbd
 * are thread-safe, so the plugin is VMH_THREAD_PARALLEL.  Every librados
 * timeout (connect, monitor and OSD operations) is the config's `timeout`:
 * while the cluster is down operations fail with VMH_EIO within it, and
 * librados reconnects by itself once it is back. */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include "cleanup.h"
#include "errname.h"
#include "imagefetch.h"
#include "netcommon.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAGE_PREFIX "_image."
#define PART_PREFIX "_part."
#define BASE_SNAP "base"
/* A cephx key is 40 base64 characters; room for longer ones. */
#define KEY_MAX 128
/* A keyring file larger than this is not one. */
#define KEYRING_MAX 65536
/* RBD names of ours: a prefix and a name. */
#define RBD_NAME_MAX (VMH_NAME_MAX + 16)
/* Imports write whole 4 MiB objects (RBD's default object size), this
 * many at a time. */
#define CHUNK ((size_t)4 << 20)
#define DEPTH 8
/* Ceph's release number (rados_get_min_compatible_client) from which a
 * cluster makes clone v2: clones of a snapshot that is not protected. */
#define CEPH_RELEASE_MIMIC 13

static const struct vmh_host *host;

struct pool {
  const struct vmh_instance *inst;
  const char *name; /* instance name, for messages */
  const char *pool; /* the Ceph pool */
  const char *ns;   /* its namespace; "" the default one */
  const char *user; /* cephx id, without "client." */
  char key[KEY_MAX];
  char *mon_host;  /* as librados was told, for messages */
  char **monitors; /* "host:port" each, for disk sources */
  uint32_t n_monitors;
  int64_t timeout; /* seconds */
  bool set_features;
  uint64_t features; /* default_features, when set_features */
  rados_t cluster;
  rados_ioctx_t io;
  /* Clones take it shared while they clone a base; image_delete takes it
   * exclusive while it counts a base's clones and removes it, so that no
   * clone of a deleted image can appear (within this host). */
  pthread_rwlock_t images_lock;
  struct fetch_policy policy; /* image_sources (imagefetch.h) */
};

/* ---- Errors -------------------------------------------------------------- */

/* The VMH_E* code of a negative errno from librados or librbd. */
static int ceph_code(int r) {
  switch (-r) {
    case ENOTEMPTY: /* an image with snapshots */
      return VMH_EBUSY;
    case EINVAL:
      return VMH_EINVAL;
    case EOPNOTSUPP:
    case ENOSYS:
      return VMH_ENOTSUP;
    default:
      return errno_code(-r);
  }
}

/* Fails with the code of r (a negative errno) and "pool NAME: WHAT: why";
 * a cluster that did not answer is VMH_EIO naming the monitors. */
static int ceph_fail(struct pool *p, int r, const char *fmt, ...)
    VMH_PRINTF(3, 4);
static int ceph_fail(struct pool *p, int r, const char *fmt, ...) {
  char what[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (r == -ETIMEDOUT || r == -ENOTCONN || r == -ESHUTDOWN)
    return vmh_fail(host, VMH_EIO,
                    "pool %s: %s: the Ceph cluster is unavailable (no answer "
                    "within %" PRId64 " s; monitors %s): %s",
                    p->name, what, p->timeout, p->mon_host, strerror(-r));
  return vmh_fail(host, ceph_code(r), "pool %s: %s: %s", p->name, what,
                  strerror(-r));
}

/* ---- Images -------------------------------------------------------------- */

static void close_imagep(rbd_image_t *img) {
  if (*img != NULL)
    rbd_close(*img);
}
#define _cleanup_image_ __attribute__((cleanup(close_imagep)))

/* librbd calls the progress callback of resize and snapshot removal
 * without checking it for NULL. */
static int no_progress(uint64_t done, uint64_t total, void *opaque) {
  (void)done, (void)total, (void)opaque;
  return 0;
}

/* Opens the RBD image rbd_name (at snapshot snap, NULL: the head); what
 * names it in messages ("volume x").  Read-only opens set no watch. */
static int open_image(struct pool *p, const char *rbd_name, const char *what,
                      bool read_only, const char *snap, rbd_image_t *img) {
  int r = read_only ? rbd_open_read_only(p->io, rbd_name, img, snap)
                    : rbd_open(p->io, rbd_name, img, snap);

  *img = r < 0 ? NULL : *img;
  if (r == -ENOENT)
    return vmh_fail(host, VMH_ENOENT, "pool %s: no %s", p->name, what);
  if (r < 0)
    return ceph_fail(p, r, "open %s", what);
  return 0;
}

/* One of librbd's list calls on obj: fills up to *max entries of v and
 * sets *max to how many it filled, or fails with -ERANGE and sets *max to
 * how many there are. */
typedef int (*list_call)(void *obj, void *v, size_t *max);

static int call_list2(void *io, void *v, size_t *max) {
  return rbd_list2(io, v, max);
}

static int call_children(void *img, void *v, size_t *max) {
  return rbd_list_children3(img, v, max);
}

static int call_snaps(void *img, void *v, size_t *max) {
  int n = (int)*max, r = rbd_snap_list(img, v, &n);

  *max = (size_t)(r < 0 ? n : r);
  return r < 0 ? r : 0;
}

/* Calls fn with an array of elem-sized entries grown until they fit:
 * *ret (the caller frees it) holds *n entries.  what: "the images of …". */
static int list_all(struct pool *p, list_call fn, void *obj, size_t elem,
                    const char *what, void **ret, size_t *n) {
  void *v = NULL;
  size_t max = 16;
  int r;

  do {
    void *nv = realloc(v, (max + 1) * elem);
    if (nv == NULL) {
      free(v);
      return vmh_fail(host, VMH_ENOMEM, "out of memory");
    }
    v = nv;
  } while ((r = fn(obj, v, &max)) == -ERANGE);
  if (r < 0) {
    free(v);
    return ceph_fail(p, r, "list %s", what);
  }
  *ret = v;
  *n = max;
  return 0;
}

/* The images of the pool (namespace), all of them.  Free *ret with
 * free_images. */
static int list_images(struct pool *p, rbd_image_spec_t **ret, size_t *n) {
  char what[128];

  snprintf(what, sizeof what, "the images of Ceph pool %s", p->pool);
  return list_all(p, call_list2, p->io, sizeof **ret, what, (void **)ret, n);
}

static void free_images(rbd_image_spec_t *v, size_t n) {
  rbd_image_spec_list_cleanup(v, n);
  free(v);
}

/* Called by each_image with the RBD name of an image of the pool. */
typedef int (*image_fn)(struct pool *p, const char *rbd_name, void *opaque);

/* Calls fn for every image of the pool (namespace) until one returns
 * non-zero, which is returned; VMH_ENOENT (an image deleted since the
 * listing) does not stop the walk. */
static int each_image(struct pool *p, image_fn fn, void *opaque) {
  rbd_image_spec_t *v = NULL;
  size_t n = 0;
  int rc;

  if ((rc = list_images(p, &v, &n)) < 0)
    return rc;
  for (size_t i = 0; i < n && rc == 0; i++)
    if ((rc = fn(p, v[i].name, opaque)) == VMH_ENOENT)
      rc = 0;
  free_images(v, n);
  return rc;
}

/* Whether an RBD image name is a volume of ours. */
static bool is_volume(const char *rbd_name) {
  return vmh_name_valid(rbd_name);
}

/* The image name of an RBD name "_image.<name>", or NULL. */
static const char *image_of(const char *rbd_name) {
  size_t n = strlen(IMAGE_PREFIX);

  if (strncmp(rbd_name, IMAGE_PREFIX, n) != 0 || !vmh_name_valid(rbd_name + n))
    return NULL;
  return rbd_name + n;
}

/* Joins the names of the specs not in the trash (n of all) into buf:
 * "a, b, image c". */
static void join_specs(const rbd_linked_image_spec_t *specs, size_t n,
                       char *buf, size_t len) {
  size_t off = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < n && off < len; i++) {
    const char *img = image_of(specs[i].image_name);
    int w;
    if (specs[i].trash)
      continue;
    w = snprintf(buf + off, len - off, "%s%s%s", off ? ", " : "",
                 img ? "image " : "", img ? img : specs[i].image_name);
    off += w > 0 ? (size_t)w : 0;
  }
}

/* The clones of img (at its snapshot, or of every snapshot at the head),
 * not counting those in the trash: *count, and their names in buf when
 * buf is not NULL. */
static int children(struct pool *p, rbd_image_t img, const char *what,
                    uint32_t *count, char *buf, size_t len) {
  rbd_linked_image_spec_t *v = NULL;
  size_t max = 0, kept = 0;
  char about[2 * RBD_NAME_MAX];
  int rc;

  snprintf(about, sizeof about, "the clones of %s", what);
  if ((rc = list_all(p, call_children, img, sizeof *v, about, (void **)&v,
                     &max)) < 0)
    return rc;
  for (size_t i = 0; i < max; i++)
    kept += !v[i].trash;
  *count = (uint32_t)kept;
  if (buf != NULL)
    join_specs(v, max, buf, len);
  rbd_linked_image_spec_list_cleanup(v, max);
  free(v);
  return 0;
}

/* ---- Configuration ------------------------------------------------------- */

/* Appends the monitors of a mon_host string to p->monitors as "host:port":
 * "a:1,b:2", "v2:a:3300", "[v2:a:3300,v1:a:6789] [v2:b:3300]" (the first
 * address of each bracketed group), "a:1/0" (a nonce); separators are ',',
 * ';' and blanks. */
/* A monitor with a port ("host:port", "[v6]:port") has one of 1..65535; a
 * bare host takes Ceph's default ports. */
static int check_monitor(struct pool *p, const char *s, size_t n) {
  char m[300], h[256];
  unsigned port;
  const char *why;
  if (n >= sizeof m)
    return vmh_fail(host, VMH_EINVAL, "pool %s: monitor '%.*s…' is too long",
                    p->name, 40, s);
  memcpy(m, s, n);
  m[n] = '\0';
  if ((strchr(m, ':') || m[0] == '[') &&
      net_split_hostport(m, h, sizeof h, 0, &port, &why) < 0)
    return vmh_fail(host, VMH_EINVAL, "pool %s: monitor '%s': %s", p->name, m,
                    why);
  return 0;
}

static int add_monitors(struct pool *p, const char *s) {
  int rc;
  while (*s != '\0') {
    size_t n;
    bool group = false;
    char **v;

    if (strchr(",; \t", *s)) {
      s++;
      continue;
    }
    if (s[0] == '[' &&
        (strncmp(s + 1, "v1:", 3) == 0 || strncmp(s + 1, "v2:", 3) == 0)) {
      group = true;
      s++;
    }
    if (strncmp(s, "v1:", 3) == 0 || strncmp(s, "v2:", 3) == 0)
      s += 3;
    n = strcspn(s, group ? ",]/" : ",; \t/");
    if (n == 0)
      return vmh_fail(host, VMH_EINVAL, "pool %s: monitor list '%s' is empty",
                      p->name, s);
    if ((rc = check_monitor(p, s, n)) < 0)
      return rc;
    v = realloc(p->monitors, (p->n_monitors + 1) * sizeof *v);
    if (v == NULL || (v[p->n_monitors] = strndup(s, n)) == NULL) {
      p->monitors = v ? v : p->monitors;
      return vmh_fail(host, VMH_ENOMEM, "out of memory");
    }
    p->monitors = v;
    p->n_monitors++;
    s += n;
    s += strcspn(s, group ? "]" : ",; \t");
    if (group && *s == ']')
      s++;
  }
  return 0;
}

/* Reads the file at path (a key or a keyring) into buf after checking
 * that nobody but its owner may read it.  key: the config key naming it. */
static int read_private(struct pool *p, const struct vmh_config *cfg,
                        const char *key, const char *path, char *buf,
                        size_t size) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  const char *where = host->config_key_where(cfg, key);
  struct stat st;
  size_t got = 0;

  (void)p;
  if (fd < 0 || fstat(fd, &st) < 0)
    return vmh_fail(host, VMH_EINVAL, "%s: %s %s: %s", where, key, path,
                    strerror(errno));
  if (!S_ISREG(st.st_mode))
    return vmh_fail(host, VMH_EINVAL, "%s: %s %s is not a regular file", where,
                    key, path);
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return vmh_fail(host, VMH_EPERM,
                    "%s: %s %s is open to group or others (mode %04o): chmod "
                    "600 it",
                    where, key, path, (unsigned)(st.st_mode & 07777));
  while (got < size - 1) {
    ssize_t n = read(fd, buf + got, size - 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return vmh_fail(host, VMH_EIO, "%s: %s %s: %s", where, key, path,
                      strerror(errno));
    if (n == 0)
      break;
    got += (size_t)n;
  }
  if (got == size - 1)
    return vmh_fail(host, VMH_EINVAL, "%s: %s %s is larger than %zu bytes",
                    where, key, path, size - 1);
  buf[got] = '\0';
  return 0;
}

/* s without leading and trailing blanks (in place). */
static char *trim(char *s) {
  size_t n;

  s += strspn(s, " \t\r");
  n = strlen(s);
  while (n > 0 && strchr(" \t\r\n", s[n - 1]))
    s[--n] = '\0';
  return s;
}

/* Copies a base64 key into p->key. */
static int set_key(struct pool *p, const char *where, const char *key) {
  size_t n = strlen(key);

  if (n == 0 || n >= sizeof p->key ||
      strspn(key,
             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
             "0123456789+/=") != n)
    return vmh_fail(host, VMH_EINVAL,
                    "%s: the key of client.%s is not a cephx key (base64, "
                    "as `ceph auth get-key client.%s` prints it)",
                    where, p->user, p->user);
  memcpy(p->key, key, n + 1);
  return 0;
}

/* The key of [client.USER] in a keyring (text, changed in place). */
static int keyring_key(struct pool *p, const char *where, const char *path,
                       char *text) {
  char section[VMH_NAME_MAX + 16], *save = NULL;
  bool in = false;

  snprintf(section, sizeof section, "[client.%s]", p->user);
  for (char *line = strtok_r(text, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    char *l = trim(line), *eq;
    if (l[0] == '[') {
      in = strcmp(l, section) == 0;
      continue;
    }
    eq = strchr(l, '=');
    if (in && eq != NULL && strncmp(l, "key", 3) == 0 &&
        strspn(l + 3, " \t") == (size_t)(eq - l - 3))
      return set_key(p, where, trim(eq + 1));
  }
  return vmh_fail(host, VMH_EINVAL, "%s: keyring %s has no key for client.%s",
                  where, path, p->user);
}

/* The user's key from `keyring` or `key_file` (one of them). */
static int read_key(struct pool *p, const struct vmh_config *cfg) {
  const char *keyring, *key_file;
  _cleanup_free_ char *text = NULL;
  int rc;

  if ((rc = host->config_path(cfg, "keyring", NULL, &keyring, 0)) < 0 ||
      (rc = host->config_path(cfg, "key_file", NULL, &key_file, 0)) < 0)
    return rc;
  if ((keyring == NULL) == (key_file == NULL))
    return vmh_fail(host, VMH_EINVAL,
                    "%s: give the key of client.%s as `keyring` or `key_file` "
                    "(one of them)",
                    host->config_key_where(cfg, keyring ? "keyring" : NULL),
                    p->user);
  if ((text = malloc(KEYRING_MAX)) == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  if (keyring != NULL) {
    if ((rc = read_private(p, cfg, "keyring", keyring, text, KEYRING_MAX)) < 0)
      return rc;
    rc = keyring_key(p, host->config_key_where(cfg, "keyring"), keyring, text);
  } else {
    if ((rc = read_private(p, cfg, "key_file", key_file, text, KEYRING_MAX)) <
        0)
      return rc;
    rc = set_key(p, host->config_key_where(cfg, "key_file"), trim(text));
  }
  explicit_bzero(text, KEYRING_MAX);
  return rc;
}

/* `monitors` (a list) into p->monitors and p->mon_host. */
static int read_monitors(struct pool *p, const struct vmh_config *cfg) {
  const struct vmh_config *list, *el;
  uint32_t n;
  size_t len = 1;
  int rc;

  if ((rc = host->config_list(cfg, "monitors", &list, &n, 0)) < 0)
    return rc;
  for (uint32_t i = 0; i < n; i++) {
    const char *m;
    char *s;
    if ((rc = host->config_at(list, i, &el)) < 0 ||
        (rc = host->config_string(el, NULL, NULL, &m, VMH_CFG_REQUIRED)) < 0 ||
        (rc = add_monitors(p, m)) < 0)
      return rc;
    len += strlen(m) + 1;
    if ((s = realloc(p->mon_host, len)) == NULL)
      return vmh_fail(host, VMH_ENOMEM, "out of memory");
    if (p->mon_host == NULL)
      s[0] = '\0';
    p->mon_host = s;
    if (s[0] != '\0')
      strcat(s, ",");
    strcat(s, m);
  }
  return 0;
}

static void rb_close(void *handle) {
  struct pool *p = handle;

  if (p == NULL)
    return;
  if (p->io != NULL)
    rados_ioctx_destroy(p->io);
  if (p->cluster != NULL)
    rados_shutdown(p->cluster);
  for (uint32_t i = 0; i < p->n_monitors; i++)
    free(p->monitors[i]);
  free(p->monitors);
  free(p->mon_host);
  explicit_bzero(p->key, sizeof p->key);
  pthread_rwlock_destroy(&p->images_lock);
  fetch_policy_free(&p->policy);
  free(p);
}

/* Monitors from the ceph.conf librados read, when the config gave none. */
static int conf_monitors(struct pool *p, const char *conf) {
  char buf[4096];
  int r;

  if (p->n_monitors > 0)
    return rados_conf_set(p->cluster, "mon_host", p->mon_host) < 0
               ? vmh_fail(host, VMH_EINVAL, "pool %s: monitors '%s' refused",
                          p->name, p->mon_host)
               : 0;
  r = rados_conf_get(p->cluster, "mon_host", buf, sizeof buf);
  if (r < 0 || buf[0] == '\0')
    return vmh_fail(host, VMH_EINVAL,
                    "pool %s: %s names no monitors (mon host): list them "
                    "under `monitors`",
                    p->name, conf ? conf : "the config");
  if ((p->mon_host = strdup(buf)) == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  return add_monitors(p, buf);
}

/* Connects to the cluster within p->timeout and opens the pool. */
static int connect_cluster(struct pool *p, const char *conf) {
  char id[VMH_NAME_MAX + 16], t[32];
  int r, rc;

  snprintf(id, sizeof id, "client.%s", p->user);
  snprintf(t, sizeof t, "%" PRId64, p->timeout);
  if ((r = rados_create2(&p->cluster, "ceph", id, 0)) < 0) {
    p->cluster = NULL;
    return ceph_fail(p, r, "make a cluster handle");
  }
  if (conf != NULL && (r = rados_conf_read_file(p->cluster, conf)) < 0)
    return vmh_fail(host, VMH_EINVAL, "pool %s: ceph_conf %s: %s", p->name,
                    conf, strerror(-r));
  if ((rc = conf_monitors(p, conf)) < 0)
    return rc;
  /* The key of our own: no keyring from the environment or ceph.conf. */
  if ((r = rados_conf_set(p->cluster, "key", p->key)) < 0 ||
      (r = rados_conf_set(p->cluster, "client_mount_timeout", t)) < 0 ||
      (r = rados_conf_set(p->cluster, "rados_mon_op_timeout", t)) < 0 ||
      (r = rados_conf_set(p->cluster, "rados_osd_op_timeout", t)) < 0)
    return ceph_fail(p, r, "set the cluster handle's options");
  r = rados_connect(p->cluster);
  if (r == -EACCES || r == -EPERM)
    return vmh_fail(host, VMH_EPERM,
                    "pool %s: the Ceph monitors (%s) refused client.%s: "
                    "check its key and that it exists (ceph auth get "
                    "client.%s)",
                    p->name, p->mon_host, p->user, p->user);
  if (r == -ETIMEDOUT)
    return vmh_fail(host, VMH_EIO,
                    "pool %s: no Ceph monitor answered within %" PRId64
                    " s (monitors %s): is the cluster up and reachable, and "
                    "the key of client.%s right? (`timeout` sets the wait)",
                    p->name, p->timeout, p->mon_host, p->user);
  if (r < 0)
    return ceph_fail(p, r, "connect to the Ceph cluster");
  r = rados_ioctx_create(p->cluster, p->pool, &p->io);
  if (r < 0) {
    p->io = NULL;
    if (r == -ENOENT)
      return vmh_fail(host, VMH_ENOENT,
                      "pool %s: the Ceph cluster has no pool '%s' (ceph osd "
                      "pool create %s; rbd pool init %s)",
                      p->name, p->pool, p->pool, p->pool);
    return ceph_fail(p, r, "open Ceph pool %s", p->pool);
  }
  rados_ioctx_set_namespace(p->io, p->ns);
  return 0;
}

static int rb_open(const struct vmh_host *h, const struct vmh_instance *inst,
                   const struct vmh_config *config, void **ret_handle,
                   uint32_t flags) {
  struct pool *p;
  const char *conf, *features;
  int rc;

  (void)h;
  if ((rc = vmh_check_flags(host, "open", flags, VMH_OPEN_CHECK_ONLY)) < 0)
    return rc;
  if ((p = calloc(1, sizeof *p)) == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  p->inst = inst;
  p->name = host->instance_name(inst);
  pthread_rwlock_init(&p->images_lock, NULL);

  /* Every key is read before anything can fail, so that --check-config
   * sees them all. */
  if ((rc = host->config_string(config, "pool", NULL, &p->pool,
                                VMH_CFG_REQUIRED)) < 0 ||
      (rc = host->config_string(config, "namespace", "", &p->ns, 0)) < 0 ||
      (rc = host->config_string(config, "user", "vmhost", &p->user, 0)) < 0 ||
      (rc = host->config_path(config, "ceph_conf", NULL, &conf, 0)) < 0 ||
      (rc = host->config_int(config, "timeout", 1, 3600, 10, &p->timeout, 0)) <
          0 ||
      (rc = host->config_string(config, "default_features", NULL, &features,
                                0)) < 0 ||
      (rc = read_monitors(p, config)) < 0 || (rc = read_key(p, config)) < 0 ||
      (rc = fetch_policy_read(host, config, &p->policy)) < 0)
    goto fail;
  if (p->n_monitors == 0 && conf == NULL) {
    rc = vmh_fail(host, VMH_EINVAL,
                  "%s: pool %s: give the Ceph monitors (`monitors`) or a "
                  "`ceph_conf` that names them",
                  host->config_where(config), p->name);
    goto fail;
  }
  if (strlen(p->user) > VMH_NAME_MAX || strchr(p->user, '.') != NULL) {
    rc =
        vmh_fail(host, VMH_EINVAL,
                 "%s: user '%s' is a cephx id without \"client.\" (1 to %d "
                 "characters)",
                 host->config_key_where(config, "user"), p->user, VMH_NAME_MAX);
    goto fail;
  }
  p->set_features = features != NULL;
  if (features != NULL && rbd_features_from_string(features, &p->features)) {
    rc = vmh_fail(host, VMH_EINVAL,
                  "%s: default_features '%s': not a list of RBD features "
                  "(layering,exclusive-lock,object-map,fast-diff,"
                  "deep-flatten)",
                  host->config_key_where(config, "default_features"), features);
    goto fail;
  }
  if (!(flags & VMH_OPEN_CHECK_ONLY) && (rc = connect_cluster(p, conf)) < 0)
    goto fail;
  *ret_handle = p;
  return 0;
fail:
  rb_close(p);
  return rc;
}

/* ---- Pool ---------------------------------------------------------------- */

static int cluster_stat(struct pool *p, struct rados_cluster_stat_t *st) {
  int r = rados_cluster_stat(p->cluster, st);

  return r < 0 ? ceph_fail(p, r, "cluster usage") : 0;
}

static int rb_health(void *handle, uint32_t flags) {
  struct rados_cluster_stat_t st;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  return cluster_stat(handle, &st);
}

static int count_volume(struct pool *p, const char *rbd_name, void *opaque) {
  (void)p;
  *(uint32_t *)opaque += is_volume(rbd_name);
  return 0;
}

static int rb_pool_info(void *handle, vmh_pool_info_fn fn, void *opaque,
                        uint32_t flags) {
  struct pool *p = handle;
  struct rados_cluster_stat_t st;
  struct vmh_pool_info info = {0};
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 ||
      (rc = cluster_stat(p, &st)) < 0 ||
      (rc = each_image(p, count_volume, &info.n_volumes)) < 0)
    return rc;
  info.struct_size = sizeof info;
  info.capacity = st.kb << 10;
  info.allocation = st.kb_used << 10;
  info.available = st.kb_avail << 10;
  info.default_format = VMH_FORMAT_RAW;
  /* The monitors have usage statistics from a ceph-mgr only. */
  if (st.kb == 0)
    info.message =
        "the Ceph cluster reports no usage (is a ceph-mgr "
        "running?): capacity, allocation and available read as 0";
  return fn(opaque, &info);
}

/* ---- Volumes ------------------------------------------------------------- */

static int add_extent(uint64_t off, size_t len, int exists, void *opaque) {
  (void)off;
  if (exists)
    *(uint64_t *)opaque += len;
  return 0;
}

/* What a volume's parent is called: the image name for a base of ours,
 * else "[pool/][namespace/]image@snapshot". */
static void parent_name(struct pool *p, const rbd_linked_image_spec_t *img,
                        const rbd_snap_spec_t *snap, char *buf, size_t len) {
  const char *base = image_of(img->image_name);
  bool here = strcmp(img->pool_name, p->pool) == 0 &&
              strcmp(img->pool_namespace, p->ns) == 0;

  if (here && base != NULL && strcmp(snap->name, BASE_SNAP) == 0)
    snprintf(buf, len, "%s", base);
  else if (here)
    snprintf(buf, len, "%s@%s", img->image_name, snap->name);
  else
    snprintf(buf, len, "%s/%s%s%s@%s", img->pool_name, img->pool_namespace,
             img->pool_namespace[0] ? "/" : "", img->image_name, snap->name);
}

/* Visits volume `name` with its size, the bytes it holds itself (not its
 * parent's; from the object map where the image has one) and its parent. */
static int report_volume(struct pool *p, const char *name,
                         vmh_volume_info_fn fn, void *opaque) {
  _cleanup_image_ rbd_image_t img = NULL;
  struct vmh_volume_info info = {0};
  rbd_linked_image_spec_t parent;
  rbd_snap_spec_t psnap;
  char what[RBD_NAME_MAX], backing[512], location[512];
  uint64_t size, used = 0;
  int r, rc;

  snprintf(what, sizeof what, "volume %s", name);
  if ((rc = open_image(p, name, what, true, NULL, &img)) < 0)
    return rc;
  if ((r = rbd_get_size(img, &size)) < 0 ||
      (r = rbd_diff_iterate2(img, NULL, 0, size, 0, 1, add_extent, &used)) < 0)
    return ceph_fail(p, r, "read %s", what);
  r = rbd_get_parent(img, &parent, &psnap);
  if (r < 0 && r != -ENOENT)
    return ceph_fail(p, r, "read the parent of %s", what);
  if (r == 0) {
    parent_name(p, &parent, &psnap, backing, sizeof backing);
    info.backing = backing;
    rbd_linked_image_spec_cleanup(&parent);
    rbd_snap_spec_cleanup(&psnap);
  }
  snprintf(location, sizeof location, "rbd:%s/%s%s%s", p->pool, p->ns,
           p->ns[0] ? "/" : "", name);
  info.struct_size = sizeof info;
  info.name = name;
  info.capacity = size;
  info.allocation = used;
  info.format = VMH_FORMAT_RAW;
  info.location = location;
  return fn(opaque, &info);
}

/* A visitor and its argument, for the walks of each_image. */
struct visit {
  vmh_volume_info_fn vol;
  vmh_image_info_fn img;
  void *opaque;
};

static int list_volume(struct pool *p, const char *rbd_name, void *opaque) {
  struct visit *v = opaque;

  return is_volume(rbd_name) ? report_volume(p, rbd_name, v->vol, v->opaque)
                             : 0;
}

static int rb_vol_list(void *handle, vmh_volume_info_fn fn, void *opaque,
                       uint32_t flags) {
  struct visit v = {.vol = fn, .opaque = opaque};
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  return each_image(handle, list_volume, &v);
}

static int rb_vol_get(void *handle, const char *name, vmh_volume_info_fn fn,
                      void *opaque, uint32_t flags) {
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0)
    return rc;
  return report_volume(handle, name, fn, opaque);
}

/* Image options for a new image: the pool's default features, if set. */
static int new_options(struct pool *p, rbd_image_options_t *opts) {
  rbd_image_options_create(opts);
  if (p->set_features &&
      rbd_image_options_set_uint64(*opts, RBD_IMAGE_OPTION_FEATURES,
                                   p->features) < 0) {
    rbd_image_options_destroy(*opts);
    return vmh_fail(host, VMH_EINTERNAL, "pool %s: image options refused",
                    p->name);
  }
  return 0;
}

/* Makes volume `name` a clone of image `base`; the clone's size is the
 * base's unless size is larger (a smaller one is refused). */
static int clone_volume(struct pool *p, const char *name, const char *base,
                        uint64_t size) {
  _cleanup_image_ rbd_image_t img = NULL;
  char rbd_base[RBD_NAME_MAX], what[RBD_NAME_MAX];
  rbd_image_options_t opts;
  uint64_t have;
  int r, rc;

  if ((rc = vmh_check_name(host, "image", base)) < 0 ||
      (rc = new_options(p, &opts)) < 0)
    return rc;
  snprintf(rbd_base, sizeof rbd_base, IMAGE_PREFIX "%s", base);
  pthread_rwlock_rdlock(&p->images_lock);
  r = rbd_clone3(p->io, rbd_base, BASE_SNAP, p->io, name, opts);
  pthread_rwlock_unlock(&p->images_lock);
  rbd_image_options_destroy(opts);
  if (r == -EEXIST)
    return vmh_fail(host, VMH_EEXIST, "pool %s: volume %s exists", p->name,
                    name);
  if (r == -ENOENT)
    return vmh_fail(host, VMH_ENOENT, "pool %s: no image %s", p->name, base);
  if (r < 0)
    return ceph_fail(p, r, "clone image %s as volume %s", base, name);
  if (size == 0)
    return 0;
  snprintf(what, sizeof what, "volume %s", name);
  if ((rc = open_image(p, name, what, false, NULL, &img)) < 0)
    goto undo;
  if ((r = rbd_get_size(img, &have)) < 0 ||
      (size > have &&
       (r = rbd_resize2(img, size, false, no_progress, NULL)) < 0)) {
    rc = ceph_fail(p, r, "size %s", what);
    goto undo;
  }
  if (size >= have)
    return 0;
  rc = vmh_fail(host, VMH_EINVAL,
                "pool %s: volume %s: %" PRIu64
                " bytes is less than its image %s (%" PRIu64 " bytes)",
                p->name, name, size, base, have);
undo:
  close_imagep(&img);
  img = NULL;
  rbd_remove(p->io, name);
  return rc;
}

static int rb_vol_create(void *handle, const struct vmh_volume_spec *spec,
                         uint32_t flags) {
  struct pool *p = handle;
  rbd_image_options_t opts;
  int r, rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "volume", spec->name)) < 0)
    return rc;
  if (spec->format != VMH_FORMAT_DEFAULT && spec->format != VMH_FORMAT_RAW)
    return vmh_fail(host, VMH_ENOTSUP,
                    "pool %s: volume %s: RBD volumes are raw (no qcow2)",
                    p->name, spec->name);
  if (spec->base_image != NULL)
    return clone_volume(p, spec->name, spec->base_image, spec->size);
  if (spec->size == 0)
    return vmh_fail(host, VMH_EINVAL, "pool %s: volume %s: give a size",
                    p->name, spec->name);
  if ((rc = new_options(p, &opts)) < 0)
    return rc;
  r = rbd_create4(p->io, spec->name, spec->size, opts);
  rbd_image_options_destroy(opts);
  if (r == -EEXIST)
    return vmh_fail(host, VMH_EEXIST, "pool %s: volume %s exists", p->name,
                    spec->name);
  return r < 0 ? ceph_fail(p, r, "create volume %s", spec->name) : 0;
}

/* VMH_EBUSY naming the snapshots of img, if it has any. */
static int check_no_snaps(struct pool *p, rbd_image_t img, const char *what) {
  rbd_snap_info_t *s = NULL;
  char names[512], about[2 * RBD_NAME_MAX];
  size_t n = 0, off = 0;
  int rc;

  snprintf(about, sizeof about, "the snapshots of %s", what);
  if ((rc = list_all(p, call_snaps, img, sizeof *s, about, (void **)&s, &n)) <
      0)
    return rc;
  names[0] = '\0';
  for (size_t i = 0; i < n && off < sizeof names; i++) {
    rbd_snap_namespace_type_t type;
    int w;
    /* A snapshot removed while it has clones (clone v2) waits in the
     * trash: the clones are what keeps it (see children()). */
    if (rbd_snap_get_namespace_type(img, s[i].id, &type) == 0 &&
        type == RBD_SNAP_NAMESPACE_TYPE_TRASH)
      continue;
    w = snprintf(names + off, sizeof names - off, "%s%s", off ? ", " : "",
                 s[i].name);
    off += w > 0 ? (size_t)w : 0;
  }
  rbd_snap_list_end(s); /* it ends at an entry without a name */
  free(s);
  if (off > 0)
    return vmh_fail(host, VMH_EBUSY,
                    "pool %s: %s has snapshots: %s; remove them first", p->name,
                    what, names);
  return 0;
}

static int rb_vol_delete(void *handle, const char *name, uint32_t flags) {
  struct pool *p = handle;
  _cleanup_image_ rbd_image_t img = NULL;
  char what[RBD_NAME_MAX], names[512];
  uint32_t n;
  int r, rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0)
    return rc;
  snprintf(what, sizeof what, "volume %s", name);
  if ((rc = open_image(p, name, what, true, NULL, &img)) < 0 ||
      (rc = check_no_snaps(p, img, what)) < 0 ||
      (rc = children(p, img, what, &n, names, sizeof names)) < 0)
    return rc;
  if (n > 0)
    return vmh_fail(host, VMH_EBUSY,
                    "pool %s: %s has clones: %s; delete or flatten them first",
                    p->name, what, names);
  close_imagep(&img);
  img = NULL;
  r = rbd_remove(p->io, name);
  if (r == -ENOENT)
    return vmh_fail(host, VMH_ENOENT, "pool %s: no %s", p->name, what);
  if (r == -EBUSY)
    return vmh_fail(host, VMH_EBUSY,
                    "pool %s: %s is open elsewhere (a VM on another host?)",
                    p->name, what);
  return r < 0 ? ceph_fail(p, r, "remove %s", what) : 0;
}

static int rb_vol_resize(void *handle, const char *name, uint64_t size,
                         uint32_t flags) {
  struct pool *p = handle;
  _cleanup_image_ rbd_image_t img = NULL;
  char what[RBD_NAME_MAX];
  uint64_t have;
  int r, rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, VMH_RESIZE_SHRINK)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0)
    return rc;
  if (size == 0)
    return vmh_fail(host, VMH_EINVAL, "pool %s: volume %s: a size of 0",
                    p->name, name);
  snprintf(what, sizeof what, "volume %s", name);
  if ((rc = open_image(p, name, what, false, NULL, &img)) < 0)
    return rc;
  if ((r = rbd_get_size(img, &have)) < 0)
    return ceph_fail(p, r, "read %s", what);
  if (size < have && !(flags & VMH_RESIZE_SHRINK))
    return vmh_fail(host, VMH_EINVAL,
                    "pool %s: %s: %" PRIu64 " bytes is less than its %" PRIu64
                    "; shrinking loses data, ask for it (shrink flag)",
                    p->name, what, size, have);
  r = rbd_resize2(img, size, true, no_progress, NULL);
  return r < 0 ? ceph_fail(p, r, "resize %s", what) : 0;
}

static int rb_vol_source(void *handle, const char *name, vmh_disk_source_fn fn,
                         void *opaque, uint32_t flags) {
  struct pool *p = handle;
  _cleanup_image_ rbd_image_t img = NULL;
  struct vmh_disk_source src = {0};
  char what[RBD_NAME_MAX];
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, VMH_SOURCE_LOCAL)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0)
    return rc;
  if (flags & VMH_SOURCE_LOCAL)
    return vmh_fail(host, VMH_ENOTSUP,
                    "pool %s: volume %s: RBD volumes are network disks; "
                    "this pool maps none locally (no krbd or rbd-nbd): use "
                    "a hypervisor that opens RBD (libvirt)",
                    p->name, name);
  if (p->ns[0] != '\0')
    return vmh_fail(host, VMH_ENOTSUP,
                    "pool %s: volume %s: a disk source cannot name an RBD "
                    "namespace ('%s') yet; VMs need a pool without "
                    "`namespace`",
                    p->name, name, p->ns);
  snprintf(what, sizeof what, "volume %s", name);
  if ((rc = open_image(p, name, what, true, NULL, &img)) < 0)
    return rc;
  src.struct_size = sizeof src;
  src.type = VMH_SOURCE_RBD;
  src.format = VMH_FORMAT_RAW;
  src.pool = p->pool;
  src.image = name;
  src.monitors = (const char *const *)p->monitors;
  src.n_monitors = p->n_monitors;
  src.auth_user = p->user;
  src.auth_secret = p->key;
  return fn(opaque, &src);
}

/* ---- Image cache ----------------------------------------------------------
 */

/* Removes RBD image rbd_name of ours with its snapshot "base" (an image,
 * or a part that got as far as its snapshot).  Gone already: 0.  Open
 * elsewhere: VMH_EBUSY. */
static int remove_image(struct pool *p, const char *rbd_name,
                        const char *what) {
  int r = rbd_remove_with_progress(p->io, rbd_name, no_progress, NULL);

  if (r == -ENOTEMPTY) {
    _cleanup_image_ rbd_image_t img = NULL;
    int rc = open_image(p, rbd_name, what, false, NULL, &img);
    if (rc < 0)
      return rc;
    r = rbd_snap_remove2(img, BASE_SNAP, RBD_SNAP_REMOVE_UNPROTECT, no_progress,
                         NULL);
    if (r < 0 && r != -ENOENT)
      return ceph_fail(p, r, "remove the snapshot of %s", what);
    close_imagep(&img);
    img = NULL;
    r = rbd_remove_with_progress(p->io, rbd_name, no_progress, NULL);
  }
  if (r == -EBUSY)
    return vmh_fail(host, VMH_EBUSY,
                    "pool %s: %s is open elsewhere (being imported, or used "
                    "by another host; a host that died lets go within 30 s)",
                    p->name, what);
  if (r == -ENOENT)
    return 0;
  return r < 0 ? ceph_fail(p, r, "remove %s", what) : 0;
}

/* An import's sink: the part image, written in CHUNK-sized pieces with up
 * to DEPTH of them in flight.  The image grows by doubling as bytes come
 * and gets its exact size at the end.  All-zero pieces are not written: a
 * new image reads as zeros already (so the base stays thin). */
struct import {
  struct pool *p;
  const char *name;
  const char *what; /* "image NAME" */
  rbd_image_t img;
  uint64_t size; /* the image's size now */
  uint64_t off;  /* where buf[cur] starts in the image */
  size_t fill;   /* bytes in buf[cur] */
  unsigned cur;
  char *buf[DEPTH];
  rbd_completion_t comp[DEPTH];
};

/* Waits for the write from buf[i], if any. */
static int import_wait(struct import *im, unsigned i) {
  ssize_t r;

  if (im->comp[i] == NULL)
    return 0;
  rbd_aio_wait_for_complete(im->comp[i]);
  r = rbd_aio_get_return_value(im->comp[i]);
  rbd_aio_release(im->comp[i]);
  im->comp[i] = NULL;
  return r < 0 ? ceph_fail(im->p, (int)r, "write %s", im->what) : 0;
}

static int import_drain(struct import *im) {
  int rc = 0;

  for (unsigned i = 0; i < DEPTH; i++) {
    int r = import_wait(im, i);
    rc = rc < 0 ? rc : r;
  }
  return rc;
}

static int import_resize(struct import *im, uint64_t size) {
  int r, rc;

  if ((rc = import_drain(im)) < 0)
    return rc;
  if ((r = rbd_resize2(im->img, size, true, no_progress, NULL)) < 0)
    return ceph_fail(im->p, r, "size %s", im->what);
  im->size = size;
  return 0;
}

static bool all_zero(const char *b, size_t n) {
  return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* Writes buf[cur] (unless it is all zero) and moves on to the next
 * buffer, once the write from it is done. */
static int import_flush(struct import *im) {
  uint64_t end = im->off + im->fill;
  char *b = im->buf[im->cur];
  int r, rc;

  if (end > im->size &&
      (rc = import_resize(im, end > 2 * im->size ? end : 2 * im->size)) < 0)
    return rc;
  if (!all_zero(b, im->fill)) {
    if ((r = rbd_aio_create_completion(NULL, NULL, &im->comp[im->cur])) < 0)
      return ceph_fail(im->p, r, "write %s", im->what);
    r = rbd_aio_write2(im->img, im->off, im->fill, b, im->comp[im->cur],
                       LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL);
    if (r < 0) {
      rbd_aio_release(im->comp[im->cur]);
      im->comp[im->cur] = NULL;
      return ceph_fail(im->p, r, "write %s", im->what);
    }
  }
  im->cur = (im->cur + 1) % DEPTH;
  im->off = end;
  im->fill = 0;
  return import_wait(im, im->cur);
}

static int import_write(void *opaque, const void *data, size_t len,
                        uint64_t offset) {
  struct import *im = opaque;
  const char *d = data;
  int rc;

  /* Sequential: offset is always im->off + im->fill. */
  if (offset == 0 && len >= 4 && memcmp(d, "QFI\xfb", 4) == 0)
    return vmh_fail(host, VMH_EINVAL,
                    "%s is qcow2: RBD images are raw; convert it (qemu-img "
                    "convert -O raw) and import that",
                    im->what);
  while (len > 0) {
    size_t n = CHUNK - im->fill < len ? CHUNK - im->fill : len;
    memcpy(im->buf[im->cur] + im->fill, d, n);
    im->fill += n;
    d += n;
    len -= n;
    if (im->fill == CHUNK && (rc = import_flush(im)) < 0)
      return rc;
  }
  return 0;
}

/* Keeps the first size bytes: what is buffered is written first, then the
 * image is cut (what lay beyond reads as zeros again). */
static int import_truncate(void *opaque, uint64_t size) {
  struct import *im = opaque;
  int rc;

  if ((im->fill > 0 && (rc = import_flush(im)) < 0) ||
      (rc = import_resize(im, size)) < 0)
    return rc;
  im->off = size;
  return 0;
}

static void import_progress(void *opaque, uint64_t done, uint64_t total) {
  struct import *im = opaque;

  fetch_emit_progress(host, im->p->inst, im->name, done, total);
}

/* Makes the part image, removing one that an import which died left (an
 * import running elsewhere has it open: then it is refused). */
static int import_create(struct pool *p, const char *part, const char *what) {
  rbd_image_options_t opts;
  int r = 0, rc;

  for (int tries = 0; tries < 2; tries++) {
    if ((rc = new_options(p, &opts)) < 0)
      return rc;
    r = rbd_create4(p->io, part, 0, opts);
    rbd_image_options_destroy(opts);
    if (r != -EEXIST)
      break;
    if ((rc = remove_image(p, part, what)) < 0)
      return rc;
  }
  return r < 0 ? ceph_fail(p, r, "create %s", what) : 0;
}

/* The verified part becomes the image: its digest, its snapshot (protected
 * where the cluster cannot make clone v2), then its name. */
static int import_publish(struct import *im, const char *part,
                          const char *sha) {
  struct pool *p = im->p;
  char rbd_name[RBD_NAME_MAX];
  int8_t min_compat, require_compat;
  int r;

  if ((r = rbd_metadata_set(im->img, "vmhost.sha256", sha)) < 0 ||
      (r = rbd_snap_create(im->img, BASE_SNAP)) < 0 ||
      (r = rados_get_min_compatible_client(p->cluster, &min_compat,
                                           &require_compat)) < 0 ||
      (require_compat < CEPH_RELEASE_MIMIC &&
       (r = rbd_snap_protect(im->img, BASE_SNAP)) < 0))
    return ceph_fail(p, r, "snapshot %s", im->what);
  rbd_close(im->img);
  im->img = NULL;
  snprintf(rbd_name, sizeof rbd_name, IMAGE_PREFIX "%s", im->name);
  r = rbd_rename(p->io, part, rbd_name);
  if (r == -EEXIST)
    return vmh_fail(host, VMH_EEXIST,
                    "pool %s already has an image %s (imported meanwhile)",
                    p->name, im->name);
  return r < 0 ? ceph_fail(p, r, "publish %s", im->what) : 0;
}

static int rb_image_import(void *handle, const struct vmh_image_spec *spec,
                           uint32_t flags) {
  struct pool *p = handle;
  _cleanup_image_ rbd_image_t old = NULL;
  char part[RBD_NAME_MAX], rbd_name[RBD_NAME_MAX], what[RBD_NAME_MAX];
  char want[FETCH_SHA256_HEX + 1];
  struct import im = {.p = p, .name = spec->name, .what = what};
  const struct fetch_sink sink = {import_write, NULL, import_truncate, &im};
  const struct fetch_request req = {.host = host,
                                    .policy = &p->policy,
                                    .inst = p->inst,
                                    .what = what,
                                    .url = spec->url,
                                    .sha256 = want,
                                    .sink = &sink,
                                    .progress = import_progress,
                                    .progress_opaque = &im};
  struct fetch_result res;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "image", spec->name)) < 0)
    return rc;
  snprintf(what, sizeof what, "image %s", spec->name);
  if ((rc = fetch_check(host, what, spec->url, spec->sha256, &p->policy,
                        want)) < 0)
    return rc;
  snprintf(rbd_name, sizeof rbd_name, IMAGE_PREFIX "%s", spec->name);
  rc = open_image(p, rbd_name, what, true, NULL, &old);
  if (rc == 0)
    return vmh_fail(host, VMH_EEXIST,
                    "pool %s already has an image %s; delete it first or "
                    "pick another name",
                    p->name, spec->name);
  if (rc != VMH_ENOENT)
    return rc;
  snprintf(part, sizeof part, PART_PREFIX "%s", spec->name);
  if ((rc = import_create(p, part, what)) < 0)
    return rc;
  if ((rc = open_image(p, part, what, false, NULL, &im.img)) < 0)
    goto out;
  for (unsigned i = 0; i < DEPTH; i++)
    if ((im.buf[i] = malloc(CHUNK)) == NULL) {
      rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
      goto out;
    }
  /* A broken transfer resumes within this call; a part an earlier call
   * left is never resumed (nothing says how much of it was written). */
  if ((rc = fetch_run(&req, &res)) < 0 ||
      (im.fill > 0 && (rc = import_flush(&im)) < 0) ||
      (rc = import_resize(&im, res.size)) < 0 ||
      (rc = import_publish(&im, part, res.sha256)) < 0)
    goto out;
  host->log(p->inst, VMH_LOG_INFO,
            "image %s imported from %s: %" PRIu64 " bytes, sha256 %s",
            spec->name, spec->url, res.size, res.sha256);
out:
  import_drain(&im);
  for (unsigned i = 0; i < DEPTH; i++)
    free(im.buf[i]);
  if (im.img != NULL)
    rbd_close(im.img);
  if (rc < 0)
    remove_image(p, part, what);
  return rc;
}

static int list_image(struct pool *p, const char *rbd_name, void *opaque) {
  struct visit *v = opaque;
  _cleanup_image_ rbd_image_t img = NULL;
  struct vmh_image_info info = {0};
  const char *name = image_of(rbd_name);
  char what[RBD_NAME_MAX], sha[80];
  size_t len = sizeof sha;
  int r, rc;

  if (name == NULL)
    return 0;
  snprintf(what, sizeof what, "image %s", name);
  if ((rc = open_image(p, rbd_name, what, true, BASE_SNAP, &img)) < 0)
    return rc;
  info.struct_size = sizeof info;
  info.name = name;
  if ((r = rbd_get_size(img, &info.size)) < 0 ||
      (r = rbd_metadata_get(img, "vmhost.sha256", sha, &len)) < 0)
    return ceph_fail(p, r, "read %s", what);
  info.sha256 = sha;
  if ((rc = children(p, img, what, &info.n_users, NULL, 0)) < 0)
    return rc;
  return v->img(v->opaque, &info);
}

static int rb_image_list(void *handle, vmh_image_info_fn fn, void *opaque,
                         uint32_t flags) {
  struct visit v = {.img = fn, .opaque = opaque};
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0)
    return rc;
  return each_image(handle, list_image, &v);
}

static int rb_image_delete(void *handle, const char *name, uint32_t flags) {
  struct pool *p = handle;
  _cleanup_image_ rbd_image_t img = NULL;
  char rbd_name[RBD_NAME_MAX], what[RBD_NAME_MAX], names[512];
  uint32_t n;
  int rc;

  if ((rc = VMH_CHECK_FLAGS(host, flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "image", name)) < 0)
    return rc;
  snprintf(rbd_name, sizeof rbd_name, IMAGE_PREFIX "%s", name);
  snprintf(what, sizeof what, "image %s", name);
  pthread_rwlock_wrlock(&p->images_lock);
  if ((rc = open_image(p, rbd_name, what, true, NULL, &img)) < 0 ||
      (rc = children(p, img, what, &n, names, sizeof names)) < 0)
    goto out;
  close_imagep(&img);
  img = NULL;
  if (n > 0)
    rc = vmh_fail(host, VMH_EBUSY,
                  "pool %s: %s is the base of volumes: %s; delete them first",
                  p->name, what, names);
  else
    rc = remove_image(p, rbd_name, what);
out:
  pthread_rwlock_unlock(&p->images_lock);
  return rc;
}

/* ---- Registration -------------------------------------------------------- */

static int rb_load(const struct vmh_host *h) {
  host = h;
  return fetch_global_init(h); /* once, before any instance runs */
}

static struct vmh_storage_ops ops = {
    .open = rb_open,
    .close = rb_close,
    .health = rb_health,
    .pool_info = rb_pool_info,
    .vol_list = rb_vol_list,
    .vol_get = rb_vol_get,
    .vol_create = rb_vol_create,
    .vol_delete = rb_vol_delete,
    .vol_resize = rb_vol_resize,
    .vol_source = rb_vol_source,
    .image_import = rb_image_import,
    .image_list = rb_image_list,
    .image_delete = rb_image_delete,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_STORAGE,
    .name = "rbd",
    .version = VMH_PACKAGE_VERSION,
    .description = "Ceph RBD pool: volumes, RBD clones, image cache",
    .load = rb_load,
    .storage = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
