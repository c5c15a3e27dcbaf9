/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* storage-local — a directory on a local filesystem as a storage pool.
 *
 * Layout under the pool's `path`:
 *   <name>                 a volume: a raw (sparse) or qcow2 file
 *   .images/<name>         a cached base image, verified by SHA-256
 *   .tmp-<name>.<rand>     a volume being made (renamed when complete)
 *   .images/.tmp-…         an image being made
 *   .images/.part-<name>   a partial download, kept to resume it
 * Nothing whose name starts with a dot is ever a volume, so a crash mid-way
 * leaves nothing that looks like one.  Every file is reached by openat/
 * fstatat with O_NOFOLLOW under directory fds opened once at open(), so a
 * planted symlink is never followed.
 *
 * A volume's format is recorded in the xattr user.vmhost.format when it is
 * made and never guessed from the data: a guest could write a qcow2 header
 * into a raw disk.  Images keep format, virtual size and checksum in xattrs
 * too.  qcow2 work runs qemu-img from an argv (posix_spawn, no shell);
 * listing reads qcow2 headers directly so that 10,000 volumes list fast. */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include "atomicfile.h"
#include "cleanup.h"
#include "errname.h"
#include "imagefetch.h"
#include "qemuimg.h"
#include "url.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define XATTR_FORMAT "user.vmhost.format"
#define XATTR_SHA256 "user.vmhost.sha256"
#define XATTR_VSIZE "user.vmhost.size"
#define IMAGES_DIR ".images"
#define TMP_PREFIX ".tmp-"
#define PART_PREFIX ".part-"

static const struct vmh_host *host;

struct pool {
  const struct vmh_instance *inst;
  const char *name;     /* instance name, for messages */
  char *path;           /* absolute, no trailing slash */
  char *url;            /* file:// URL of path, for volume locations */
  char *images_path;    /* path + "/.images" */
  const char *qemu_img; /* program, looked up in PATH */
  uint64_t reserved;
  uint32_t default_format;
  int dirfd; /* O_PATH|O_DIRECTORY: the pool */
  int imgfd; /* O_PATH|O_DIRECTORY: .images */
  /* Clones take it shared while they look up their base and make the
   * volume; image_delete takes it exclusive while it counts users and
   * unlinks, so that no clone of a deleted image can appear. */
  pthread_rwlock_t images_lock;
  struct fetch_policy policy; /* image_sources (imagefetch.h) */
};

/* ---- Helpers ------------------------------------------------------------- */

/* A format recorded in the xattr of fd; none (a file not made here) reads
 * as raw, the one format that gives the data no meaning. */
static uint32_t fd_format(int fd) {
  char buf[16];
  ssize_t n = fgetxattr(fd, XATTR_FORMAT, buf, sizeof buf - 1);
  uint32_t f;

  if (n <= 0)
    return VMH_FORMAT_RAW;
  buf[n] = '\0';
  f = disk_format_parse(buf);
  return f == VMH_FORMAT_DEFAULT ? VMH_FORMAT_RAW : f;
}

static int set_xattr(struct pool *p, int fd, const char *key, const char *value,
                     const char *what) {
  if (fsetxattr(fd, key, value, strlen(value), 0) < 0) {
    int e = errno;
    return vmh_fail(host, e == ENOTSUP ? VMH_ENOTSUP : errno_code(e),
                    "pool %s: cannot record %s of %s (xattr %s): %s%s", p->name,
                    key, what, key, strerror(e),
                    e == ENOTSUP
                        ? "; put the pool on a filesystem with user "
                          "extended attributes (ext4, xfs, btrfs, tmpfs)"
                        : "");
  }
  return 0;
}

/* Bytes volumes may still use: free space minus the reserve. */
static int space(struct pool *p, uint64_t *capacity, uint64_t *used,
                 uint64_t *avail) {
  struct statvfs sv;
  uint64_t total, bavail, bfree;

  if (fstatvfs(p->dirfd, &sv) < 0)
    return vmh_fail(host, VMH_EIO, "pool %s: statvfs %s: %s", p->name, p->path,
                    strerror(errno));
  total = (uint64_t)sv.f_blocks * sv.f_frsize;
  bfree = (uint64_t)sv.f_bfree * sv.f_frsize;
  bavail = (uint64_t)sv.f_bavail * sv.f_frsize;
  if (capacity)
    *capacity = total > p->reserved ? total - p->reserved : 0;
  if (used)
    *used = total - bfree;
  if (avail)
    *avail = bavail > p->reserved ? bavail - p->reserved : 0;
  return 0;
}

/* Raw volumes must fit whole: sparse on disk, but nothing stops the guest
 * from filling them.  qcow2 volumes are thin (they grow as the guest
 * writes), so they only need the pool not to be past its reserve already
 * (need == 0); qemu-img's own ENOSPC is caught when the disk is fuller
 * than statvfs said. */
static int check_space(struct pool *p, const char *vol, uint64_t need) {
  uint64_t avail = 0;
  int rc = space(p, NULL, NULL, &avail);

  if (rc < 0)
    return rc;
  if (need > avail || avail == 0)
    return vmh_fail(host, VMH_ENOSPC,
                    "pool %s: volume %s needs %" PRIu64 " bytes, only %" PRIu64
                    " are available (%" PRIu64
                    " reserved); free space in %s, lower `reserved` or ask for "
                    "less",
                    p->name, vol, need, avail, p->reserved, p->path);
  return 0;
}

static uint64_t be64(const unsigned char *b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | b[i];
  return v;
}

static uint32_t be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         b[3];
}

/* A temporary name that is no volume name: .tmp-<name>.<random>. */
static void tmp_name(char *buf, size_t len, const char *name) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  snprintf(buf, len, TMP_PREFIX "%s.%lx%lx", name, (unsigned long)ts.tv_nsec,
           (unsigned long)pthread_self() & 0xffffff);
}

/* ---- Volumes as files ---------------------------------------------------- */

struct volinfo {
  char name[VMH_NAME_MAX + 1];
  char backing[VMH_NAME_MAX + 1]; /* image name, "" none */
  uint64_t capacity, allocation;
  uint32_t format;
};

/* Opens name under dirfd without following a symlink: a regular file, or
 * an error saying what is there instead. */
static int open_vol(struct pool *p, const char *name, int flags, int *ret_fd) {
  struct stat st;
  int fd = openat(p->dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

  if (fd < 0) {
    int e = errno;
    if (e == ENOENT)
      return vmh_fail(host, VMH_ENOENT, "pool %s has no volume %s", p->name,
                      name);
    if (e == ELOOP)
      return vmh_fail(host, VMH_EINVAL,
                      "pool %s: %s/%s is a symlink, not a volume; remove it",
                      p->name, p->path, name);
    return vmh_fail(host, errno_code(e), "pool %s: open %s/%s: %s", p->name,
                    p->path, name, strerror(e));
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return vmh_fail(
        host, VMH_EINVAL,
        "pool %s: %s/%s is not a regular file, not a volume; remove "
        "it",
        p->name, p->path, name);
  }
  *ret_fd = fd;
  return 0;
}

/* The image name a qcow2 backing path points at, "" when it is not one of
 * the pool's images. */
static void backing_image(struct pool *p, const char *bpath, char *out,
                          size_t len) {
  size_t n = strlen(p->images_path);

  out[0] = '\0';
  if (strncmp(bpath, p->images_path, n) == 0 && bpath[n] == '/' &&
      vmh_name_valid(bpath + n + 1))
    snprintf(out, len, "%s", bpath + n + 1);
  else if (bpath[0])
    snprintf(out, len, "?");
}

/* What a listing shows of a volume: sizes from st, the format as recorded
 * and, for qcow2, the virtual size and backing file from the header of the
 * open fd (raw volumes need no fd: -1). */
static int read_vol(struct pool *p, int fd, const char *name,
                    const struct stat *st, uint32_t format, struct volinfo *v) {
  unsigned char h[32];

  memset(v, 0, sizeof *v);
  snprintf(v->name, sizeof v->name, "%.63s", name);
  v->allocation = (uint64_t)st->st_blocks * 512;
  v->capacity = (uint64_t)st->st_size;
  v->format = format;
  if (format != VMH_FORMAT_QCOW2)
    return 0;
  if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h ||
      memcmp(h, "QFI\xfb", 4) != 0)
    return vmh_fail(host, VMH_EIO,
                    "pool %s: volume %s is recorded as qcow2 but has no "
                    "qcow2 header; check it with qemu-img check",
                    p->name, name);
  v->capacity = be64(h + 24);
  uint64_t boff = be64(h + 8);
  uint32_t blen = be32(h + 16);
  if (boff && blen) {
    char bpath[1024];
    if (blen >= sizeof bpath ||
        pread(fd, bpath, blen, (off_t)boff) != (ssize_t)blen)
      return vmh_fail(host, VMH_EIO,
                      "pool %s: volume %s: cannot read its backing name",
                      p->name, name);
    bpath[blen] = '\0';
    backing_image(p, bpath, v->backing, sizeof v->backing);
  }
  return 0;
}

/* read_vol of an open volume. */
static int read_vol_fd(struct pool *p, int fd, const char *name,
                       struct volinfo *v) {
  struct stat st;

  if (fstat(fd, &st) < 0)
    return vmh_fail(host, VMH_EIO, "pool %s: stat %s: %s", p->name, name,
                    strerror(errno));
  return read_vol(p, fd, name, &st, fd_format(fd), v);
}

/* The recorded format of the volume `name`, read by path without following
 * a symlink in the last component (the pool's own path is trusted): no
 * open() per raw volume keeps a listing of thousands cheap. */
static uint32_t path_format(struct pool *p, const char *name) {
  char path[4096], buf[16];
  ssize_t n;
  uint32_t f;

  snprintf(path, sizeof path, "%s/%s", p->path, name);
  n = lgetxattr(path, XATTR_FORMAT, buf, sizeof buf - 1);
  if (n <= 0)
    return VMH_FORMAT_RAW;
  buf[n] = '\0';
  f = disk_format_parse(buf);
  return f == VMH_FORMAT_DEFAULT ? VMH_FORMAT_RAW : f;
}

static int report(const struct pool *p, const struct volinfo *v,
                  vmh_volume_info_fn fn, void *opaque) {
  struct vmh_volume_info info = {0};
  _cleanup_free_ char *location = NULL;

  /* Volume names need no escaping in a URL. */
  if (asprintf(&location, "%s/%s", p->url, v->name) < 0) {
    location = NULL;
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  }
  info.struct_size = sizeof info;
  info.location = location;
  info.name = v->name;
  info.capacity = v->capacity;
  info.allocation = v->allocation;
  info.format = v->format;
  info.backing = v->backing[0] ? v->backing : NULL;
  return fn(opaque, &info);
}

/* A readable fd of the directory dfd (an O_PATH fd cannot be listed). */
static DIR *open_dir(int dfd) {
  int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d;

  if (fd < 0)
    return NULL;
  d = fdopendir(fd);
  if (d == NULL)
    close(fd);
  return d;
}

/* Calls fn for every volume (a regular file with a volume name); with
 * fn == NULL counts them only (no file opened). */
typedef int (*vol_fn)(struct pool *p, const struct volinfo *v, void *opaque);

static int scan(struct pool *p, vol_fn fn, void *opaque, uint32_t *count) {
  DIR *d = open_dir(p->dirfd);
  struct dirent *e;
  uint32_t n = 0;
  int rc = 0;

  if (d == NULL)
    return vmh_fail(host, VMH_EIO, "pool %s: cannot list %s: %s", p->name,
                    p->path, strerror(errno));
  while (rc == 0 && (e = readdir(d)) != NULL) {
    struct volinfo v;
    int fd;
    if (!vmh_name_valid(e->d_name))
      continue;
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
      continue;
    if (fn == NULL) {
      struct stat st;
      if (e->d_type == DT_UNKNOWN &&
          (fstatat(p->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
           !S_ISREG(st.st_mode)))
        continue;
      n++;
      continue;
    }
    struct stat st;
    uint32_t format;
    if (fstatat(p->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISREG(st.st_mode))
      continue; /* deleted meanwhile, or a symlink */
    format = path_format(p, e->d_name);
    if (format == VMH_FORMAT_QCOW2) {
      fd = openat(p->dirfd, e->d_name,
                  O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
      if (fd < 0)
        continue;
      rc = read_vol_fd(p, fd, e->d_name, &v);
      close(fd);
      /* One damaged file must not hide the others: it is listed with what
       * stat knows, and logged. */
      if (rc < 0) {
        host->log(p->inst, VMH_LOG_WARN, "volume %s: unreadable qcow2 header",
                  e->d_name);
        rc = read_vol(p, -1, e->d_name, &st, VMH_FORMAT_RAW, &v);
        v.format = VMH_FORMAT_QCOW2;
      }
    } else {
      rc = read_vol(p, -1, e->d_name, &st, format, &v);
    }
    if (rc == 0) {
      n++;
      rc = fn(p, &v, opaque);
    }
  }
  closedir(d);
  if (count)
    *count = n;
  return rc;
}

/* ---- Instance -------------------------------------------------------------
 */

/* Leftovers of a crash: temporary files are removed, partial downloads
 * kept for the next import of the same image to resume. */
static void clean_leftovers(struct pool *p, int dfd, const char *where) {
  DIR *d = open_dir(dfd);
  struct dirent *e;

  if (d == NULL)
    return;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
      if (unlinkat(dfd, e->d_name, 0) == 0)
        host->log(p->inst, VMH_LOG_WARN,
                  "removed %s/%s, left by an interrupted create", where,
                  e->d_name);
      else
        host->log(p->inst, VMH_LOG_ERROR, "cannot remove leftover %s/%s: %s",
                  where, e->d_name, strerror(errno));
    } else if (strncmp(e->d_name, PART_PREFIX, strlen(PART_PREFIX)) == 0) {
      host->log(p->inst, VMH_LOG_INFO,
                "keeping partial download %s/%s: the next import of that "
                "image resumes it",
                where, e->d_name);
    }
  }
  closedir(d);
}

static void lc_close(void *handle) {
  struct pool *p = handle;

  if (p == NULL)
    return;
  if (p->dirfd >= 0)
    close(p->dirfd);
  if (p->imgfd >= 0)
    close(p->imgfd);
  pthread_rwlock_destroy(&p->images_lock);
  free(p->path);
  free(p->url);
  free(p->images_path);
  fetch_policy_free(&p->policy);
  free(p);
}

static int lc_open(const struct vmh_host *h, const struct vmh_instance *inst,
                   const struct vmh_config *config, void **ret_handle,
                   uint32_t flags) {
  struct pool *p;
  const char *path, *format;
  int rc;

  (void)h;
  if ((rc = vmh_check_flags(host, "open", flags, VMH_OPEN_CHECK_ONLY)) < 0)
    return rc;
  p = calloc(1, sizeof *p);
  if (p == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  p->inst = inst;
  p->name = host->instance_name(inst);
  p->dirfd = p->imgfd = -1;
  pthread_rwlock_init(&p->images_lock, NULL);

  /* Every key is read before anything can fail on the filesystem, so
   * that --check-config sees them all. */
  if ((rc = host->config_string(config, "path", NULL, &path,
                                VMH_CFG_REQUIRED)) < 0 ||
      (rc = host->config_size(config, "reserved", 0, UINT64_MAX, 0,
                              &p->reserved, 0)) < 0 ||
      (rc = host->config_string(config, "default_format", "qcow2", &format,
                                0)) < 0 ||
      (rc = host->config_string(config, "qemu_img", "qemu-img", &p->qemu_img,
                                0)) < 0 ||
      (rc = fetch_policy_read(host, config, &p->policy)) < 0)
    goto fail;
  p->default_format = disk_format_parse(format);
  if (p->default_format == VMH_FORMAT_DEFAULT) {
    rc = vmh_fail(host, VMH_EINVAL,
                  "pool %s: default_format '%s' is not raw or qcow2", p->name,
                  format);
    goto fail;
  }
  if (path[0] != '/') {
    rc = vmh_fail(host, VMH_EINVAL, "pool %s: path '%s' must be absolute",
                  p->name, path);
    goto fail;
  }
  p->path = strdup(path);
  if (p->path == NULL) {
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
    goto fail;
  }
  for (size_t n = strlen(p->path); n > 1 && p->path[n - 1] == '/'; n--)
    p->path[n - 1] = '\0';
  if ((p->url = url_path("file://", p->path)) == NULL) {
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
    goto fail;
  }
  if (asprintf(&p->images_path, "%s/" IMAGES_DIR, p->path) < 0) {
    p->images_path = NULL;
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
    goto fail;
  }
  if (flags & VMH_OPEN_CHECK_ONLY) {
    *ret_handle = p;
    return 0;
  }

  p->dirfd = open(p->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (p->dirfd < 0) {
    rc = vmh_fail(host, errno_code(errno),
                  "pool %s: cannot open directory %s: %s; create it or fix "
                  "`path`",
                  p->name, p->path, strerror(errno));
    goto fail;
  }
  if (mkdirat(p->dirfd, IMAGES_DIR, 0755) < 0 && errno != EEXIST) {
    rc = vmh_fail(host, errno_code(errno), "pool %s: cannot create %s: %s",
                  p->name, p->images_path, strerror(errno));
    goto fail;
  }
  p->imgfd = openat(p->dirfd, IMAGES_DIR,
                    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (p->imgfd < 0) {
    rc = vmh_fail(host, VMH_EIO,
                  "pool %s: cannot open %s (is it a directory?): %s", p->name,
                  p->images_path, strerror(errno));
    goto fail;
  }
  clean_leftovers(p, p->dirfd, p->path);
  clean_leftovers(p, p->imgfd, p->images_path);
  *ret_handle = p;
  return 0;
fail:
  lc_close(p);
  return rc;
}

static int lc_health(void *handle, uint32_t flags) {
  struct pool *p = handle;
  uint64_t avail = 0;
  int rc = vmh_check_flags(host, "health", flags, 0);

  if (rc < 0 || (rc = space(p, NULL, NULL, &avail)) < 0)
    return rc;
  if (faccessat(p->dirfd, ".", W_OK, AT_EACCESS) < 0)
    return vmh_fail(host, VMH_EIO, "pool %s: %s is not writable: %s", p->name,
                    p->path, strerror(errno));
  return 0;
}

static int lc_pool_info(void *handle, vmh_pool_info_fn fn, void *opaque,
                        uint32_t flags) {
  struct pool *p = handle;
  struct vmh_pool_info info = {0};
  int rc = vmh_check_flags(host, "pool_info", flags, 0);

  if (rc < 0)
    return rc;
  info.struct_size = sizeof info;
  if ((rc = space(p, &info.capacity, &info.allocation, &info.available)) < 0 ||
      (rc = scan(p, NULL, NULL, &info.n_volumes)) < 0)
    return rc;
  info.default_format = p->default_format;
  return fn(opaque, &info);
}

struct list_ctx {
  vmh_volume_info_fn fn;
  void *opaque;
};

static int list_one(struct pool *p, const struct volinfo *v, void *opaque) {
  struct list_ctx *c = opaque;
  return report(p, v, c->fn, c->opaque);
}

static int lc_vol_list(void *handle, vmh_volume_info_fn fn, void *opaque,
                       uint32_t flags) {
  struct list_ctx c = {fn, opaque};
  int rc = vmh_check_flags(host, "vol_list", flags, 0);

  return rc < 0 ? rc : scan(handle, list_one, &c, NULL);
}

static int lc_vol_get(void *handle, const char *name, vmh_volume_info_fn fn,
                      void *opaque, uint32_t flags) {
  struct pool *p = handle;
  struct volinfo v;
  int fd = -1, rc;

  if ((rc = vmh_check_flags(host, "vol_get", flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0 ||
      (rc = open_vol(p, name, O_RDONLY, &fd)) < 0)
    return rc;
  rc = read_vol_fd(p, fd, name, &v);
  close(fd);
  return rc < 0 ? rc : report(p, &v, fn, opaque);
}

/* An image's recorded format and virtual size. */
static int image_meta(struct pool *p, const char *name, uint32_t *format,
                      uint64_t *vsize, char *sha, size_t shalen) {
  char buf[32];
  ssize_t n;
  int fd = openat(p->imgfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  int rc = 0;

  if (fd < 0)
    return vmh_fail(host, errno == ENOENT ? VMH_ENOENT : VMH_EINVAL,
                    "pool %s has no image %s; import it first (image_import)",
                    p->name, name);
  *format = fd_format(fd);
  n = fgetxattr(fd, XATTR_VSIZE, buf, sizeof buf - 1);
  if (n <= 0) {
    rc = vmh_fail(host, VMH_EIO,
                  "pool %s: image %s has lost its metadata (xattr " XATTR_VSIZE
                  "); delete and import it again",
                  p->name, name);
    goto cleanup;
  }
  buf[n] = '\0';
  *vsize = strtoull(buf, NULL, 10);
  if (sha) {
    n = fgetxattr(fd, XATTR_SHA256, sha, shalen - 1);
    sha[n > 0 ? n : 0] = '\0';
  }
cleanup:
  close(fd);
  return rc;
}

static int lc_vol_create(void *handle, const struct vmh_volume_spec *spec,
                         uint32_t flags) {
  struct pool *p = handle;
  char tmp[VMH_NAME_MAX + 64], tpath[4096], bpath[4096], sizearg[32];
  char err[QEMU_IMG_ERR_MAX];
  uint32_t format, bformat = 0;
  uint64_t size, bsize = 0;
  struct stat st;
  bool locked = false, made = false;
  int fd = -1, rc;

  if ((rc = vmh_check_flags(host, "vol_create", flags, 0)) < 0)
    return rc;
  if (spec == NULL)
    return vmh_fail(host, VMH_EINVAL, "vol_create: no volume spec");
  if ((rc = file_vol_spec(host, spec, p->default_format, &format, &size)) < 0)
    return rc;
  if (fstatat(p->dirfd, spec->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    return vmh_fail(host, VMH_EEXIST,
                    "pool %s already has a volume %s; pick another name",
                    p->name, spec->name);

  if (spec->base_image) {
    pthread_rwlock_rdlock(&p->images_lock);
    locked = true;
    if ((rc = image_meta(p, spec->base_image, &bformat, &bsize, NULL, 0)) < 0 ||
        (rc = file_vol_clone_size(host, spec, bsize, &size)) < 0)
      goto cleanup;
  }
  if ((rc = check_space(p, spec->name, format == VMH_FORMAT_RAW ? size : 0)) <
      0)
    goto cleanup;

  tmp_name(tmp, sizeof tmp, spec->name);
  snprintf(tpath, sizeof tpath, "%s/%s", p->path, tmp);
  /* Made by us, exclusively: nothing planted can be at the temp name. */
  fd = openat(p->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
  if (fd < 0) {
    rc = vmh_fail(host, errno_code(errno), "pool %s: cannot create %s: %s",
                  p->name, tpath, strerror(errno));
    goto cleanup;
  }
  made = true;
  if (format == VMH_FORMAT_RAW) {
    if (ftruncate(fd, (off_t)size) < 0) {
      rc = vmh_fail(host, errno_code(errno),
                    "pool %s: volume %s: truncate to %" PRIu64 ": %s", p->name,
                    spec->name, size, strerror(errno));
      goto cleanup;
    }
  } else {
    snprintf(sizearg, sizeof sizearg, "%" PRIu64, size);
    char *argv[16];
    int a = 0;
    argv[a++] = (char *)p->qemu_img;
    argv[a++] = "create";
    argv[a++] = "-q";
    argv[a++] = "-f";
    argv[a++] = "qcow2";
    if (spec->base_image) {
      snprintf(bpath, sizeof bpath, "%s/%s", p->images_path, spec->base_image);
      argv[a++] = "-b";
      argv[a++] = bpath;
      argv[a++] = "-F";
      argv[a++] = (char *)disk_format_name(bformat);
    }
    argv[a++] = tpath;
    argv[a++] = sizearg;
    argv[a] = NULL;
    rc = qemu_img_run(argv, NULL, err, sizeof err);
    if (rc < 0) {
      rc = vmh_fail(
          host, rc, "pool %s: volume %s: qemu-img create failed: %s%s", p->name,
          spec->name, err,
          rc == VMH_ENOSPC ? "; free space in the pool's filesystem" : "");
      goto cleanup;
    }
  }
  if ((rc = set_xattr(p, fd, XATTR_FORMAT, disk_format_name(format),
                      spec->name)) < 0)
    goto cleanup;
  /* The volume appears complete or not at all; never over another. */
  if (publish_at(fd, p->dirfd, tmp, spec->name) < 0) {
    int e = errno;
    rc = e == EEXIST
             ? vmh_fail(host, VMH_EEXIST,
                        "pool %s already has a volume %s; pick another "
                        "name",
                        p->name, spec->name)
             : vmh_fail(host, errno_code(e), "pool %s: publish %s as %s: %s",
                        p->name, tmp, spec->name, strerror(e));
    goto cleanup;
  }
  made = false;
  rc = 0;
cleanup:
  if (made && unlinkat(p->dirfd, tmp, 0) < 0)
    host->log(p->inst, VMH_LOG_ERROR, "cannot remove %s: %s", tpath,
              strerror(errno));
  if (fd >= 0)
    close(fd);
  if (locked)
    pthread_rwlock_unlock(&p->images_lock);
  return rc;
}

static int lc_vol_delete(void *handle, const char *name, uint32_t flags) {
  struct pool *p = handle;
  int fd = -1, rc;

  if ((rc = vmh_check_flags(host, "vol_delete", flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0 ||
      (rc = open_vol(p, name, O_RDONLY, &fd)) < 0)
    return rc;
  close(fd);
  if (unlinkat(p->dirfd, name, 0) < 0)
    return vmh_fail(host, errno_code(errno), "pool %s: delete %s/%s: %s",
                    p->name, p->path, name, strerror(errno));
  return 0;
}

static int lc_vol_resize(void *handle, const char *name, uint64_t size,
                         uint32_t flags) {
  struct pool *p = handle;
  struct volinfo v;
  char err[QEMU_IMG_ERR_MAX], path[64], sizearg[32];
  uint64_t need;
  int fd = -1, rc;

  if ((rc = vmh_check_flags(host, "vol_resize", flags, VMH_RESIZE_SHRINK)) <
          0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0 ||
      (rc = open_vol(p, name, O_RDWR, &fd)) < 0)
    return rc;
  if ((rc = read_vol_fd(p, fd, name, &v)) < 0 ||
      (rc = file_vol_resize_check(host, name, v.format, v.capacity, size, flags,
                                  &need)) <= 0 ||
      (size > v.capacity && (rc = check_space(p, name, need)) < 0))
    goto cleanup;
  if (v.format == VMH_FORMAT_RAW) {
    rc = ftruncate(fd, (off_t)size) < 0
             ? vmh_fail(host, errno_code(errno),
                        "volume %s: resize to %" PRIu64 ": %s", name, size,
                        strerror(errno))
             : 0;
    goto cleanup;
  }
  /* qemu-img reopens the very file we checked, through our fd: a rename
   * meanwhile cannot redirect it. */
  snprintf(path, sizeof path, "/proc/%ld/fd/%d", (long)getpid(), fd);
  snprintf(sizearg, sizeof sizearg, "%" PRIu64, size);
  char *argv[] = {
      (char *)p->qemu_img, "resize", "-q", "-f", "qcow2", path, sizearg, NULL};
  rc = qemu_img_run(argv, NULL, err, sizeof err);
  if (rc < 0)
    rc = vmh_fail(host, rc, "volume %s: qemu-img resize failed: %s", name, err);
cleanup:
  close(fd);
  return rc;
}

static int lc_vol_source(void *handle, const char *name, vmh_disk_source_fn fn,
                         void *opaque, uint32_t flags) {
  struct pool *p = handle;
  struct vmh_disk_source src = {0};
  char path[4096];
  int fd = -1, rc;

  if ((rc = vmh_check_flags(host, "vol_source", flags, VMH_SOURCE_LOCAL)) < 0 ||
      (rc = vmh_check_name(host, "volume", name)) < 0 ||
      (rc = open_vol(p, name, O_RDONLY, &fd)) < 0)
    return rc;
  src.struct_size = sizeof src;
  src.type = VMH_SOURCE_FILE;
  src.format = fd_format(fd);
  close(fd);
  snprintf(path, sizeof path, "%s/%s", p->path, name);
  src.path = path;
  return fn(opaque, &src);
}

static int lc_vol_unmap(void *handle, const char *name, uint32_t flags) {
  int rc;
  (void)handle;
  /* A file needs no mapping: there is nothing to undo. */
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
  const char *name; /* the image */
  const char *path; /* for messages */
  int fd;           /* stands at the end: writes append */
};

static int part_write(void *opaque, const void *buf, size_t len,
                      uint64_t offset) {
  struct part_sink *pt = opaque;
  int e;

  (void)offset; /* sequential, and the fd stands there */
  if (write_all(pt->fd, buf, len) == 0)
    return 0;
  e = errno;
  return vmh_fail(host, errno_code(e), "image %s: writing %s: %s%s", pt->name,
                  pt->path, strerror(e),
                  e == ENOSPC ? "; free space in the pool's filesystem" : "");
}

static ssize_t part_read(void *opaque, void *buf, size_t len, uint64_t offset) {
  struct part_sink *pt = opaque;
  ssize_t n = pread(pt->fd, buf, len, (off_t)offset);

  if (n < 0)
    return vmh_fail(host, VMH_EIO, "reading %s to hash it: %s", pt->path,
                    strerror(errno));
  return n;
}

static int part_truncate(void *opaque, uint64_t size) {
  struct part_sink *pt = opaque;

  if (ftruncate(pt->fd, (off_t)size) < 0 ||
      lseek(pt->fd, (off_t)size, SEEK_SET) < 0)
    return vmh_fail(host, VMH_EIO, "truncate %s: %s", pt->path,
                    strerror(errno));
  return 0;
}

static int lc_image_import(void *handle, const struct vmh_image_spec *spec,
                           uint32_t flags) {
  struct pool *p = handle;
  char part[VMH_NAME_MAX + 16], ppath[4096];
  char sha[FETCH_SHA256_HEX + 1], want[FETCH_SHA256_HEX + 1];
  char sizebuf[32], what[VMH_NAME_MAX + 32];
  struct part_sink pt = {.p = p, .path = ppath};
  const struct fetch_sink sink = {part_write, part_read, part_truncate, &pt};
  struct fetch_progress_target target = {host, p->inst, spec->name};
  struct fetch_request req = {0};
  struct fetch_result res;
  struct stat st;
  uint32_t format = 0;
  uint64_t vsize = 0;
  bool keep_part = false;
  off_t end;
  int fd = -1, rc;

  if ((rc = vmh_check_flags(host, "image_import", flags, 0)) < 0)
    return rc;
  if (spec == NULL)
    return vmh_fail(host, VMH_EINVAL, "image_import: no image spec");
  if ((rc = vmh_check_name(host, "image", spec->name)) < 0)
    return rc;
  snprintf(what, sizeof what, "image %s", spec->name);
  if ((rc = fetch_check(host, what, spec->url, spec->sha256, &p->policy,
                        want)) < 0)
    return rc;
  if (fstatat(p->imgfd, spec->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    return vmh_fail(host, VMH_EEXIST,
                    "pool %s already has an image %s; delete it first or pick "
                    "another name",
                    p->name, spec->name);

  snprintf(part, sizeof part, PART_PREFIX "%s", spec->name);
  snprintf(ppath, sizeof ppath, "%s/%s", p->images_path, part);
  fd = openat(p->imgfd, part, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return vmh_fail(host, errno_code(errno), "pool %s: cannot create %s: %s",
                    p->name, ppath, strerror(errno));
  /* Two imports of one name would write the same part file. */
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    close(fd);
    return vmh_fail(host, VMH_EBUSY,
                    "image %s is being imported already; wait for it",
                    spec->name);
  }
  keep_part = true;
  /* A part left by an import of other content starts over. */
  ssize_t n = fgetxattr(fd, XATTR_SHA256, sha, sizeof sha - 1);
  sha[n > 0 ? n : 0] = '\0';
  if (strcmp(sha, want) != 0) {
    if (ftruncate(fd, 0) < 0 ||
        (rc = set_xattr(p, fd, XATTR_SHA256, want, ppath)) < 0) {
      if (rc == 0)
        rc = vmh_fail(host, VMH_EIO, "truncate %s: %s", ppath, strerror(errno));
      keep_part = false;
      goto cleanup;
    }
  }
  /* What the part holds is resumed; writes append from there. */
  if ((end = lseek(fd, 0, SEEK_END)) < 0) {
    rc = vmh_fail(host, VMH_EIO, "%s: %s", ppath, strerror(errno));
    goto cleanup;
  }
  pt.name = spec->name;
  pt.fd = fd;
  req.host = host;
  req.inst = p->inst;
  req.what = what;
  req.url = spec->url;
  req.sha256 = want;
  req.policy = &p->policy;
  req.sink = &sink;
  req.have = (uint64_t)end;
  req.progress = fetch_progress_event;
  req.progress_opaque = &target;
  if ((rc = fetch_run(&req, &res)) < 0) {
    keep_part = res.keep;
    goto cleanup;
  }
  /* Verified: now it may be looked at. */
  if ((rc = qemu_img_probe(host, p->qemu_img, ppath, what, &format, &vsize)) <
      0) {
    keep_part = false;
    goto cleanup;
  }
  snprintf(sizebuf, sizeof sizebuf, "%" PRIu64, vsize);
  if ((rc = set_xattr(p, fd, XATTR_FORMAT, disk_format_name(format), ppath)) <
          0 ||
      (rc = set_xattr(p, fd, XATTR_VSIZE, sizebuf, ppath)) < 0)
    goto cleanup;
  /* Read-only from here: clones only ever read their base. */
  fchmod(fd, 0444);
  if (publish_at(fd, p->imgfd, part, spec->name) < 0) {
    rc = vmh_fail(host, errno == EEXIST ? VMH_EEXIST : errno_code(errno),
                  "pool %s: image %s: publish: %s", p->name, spec->name,
                  strerror(errno));
    keep_part = false;
    goto cleanup;
  }
  keep_part = true; /* renamed: nothing to remove */
  host->log(p->inst, VMH_LOG_INFO,
            "image %s imported from %s: %s, %" PRIu64 " bytes, sha256 %s",
            spec->name, spec->url, disk_format_name(format), vsize, res.sha256);
  rc = 0;
cleanup:
  if (!keep_part)
    unlinkat(p->imgfd, part, 0);
  if (fd >= 0)
    close(fd);
  return rc;
}

/* Counts the volumes backed by one image, and names the first few (for a
 * refused delete). */
struct users_ctx {
  const char *name;
  uint32_t n;
  char names[256]; /* "vol1, vol2" */
};

static int count_user(struct pool *p, const struct volinfo *v, void *opaque) {
  struct users_ctx *c = opaque;
  (void)p;
  if (!v->backing[0] || strcmp(v->backing, c->name) != 0)
    return 0;
  size_t used = strlen(c->names);
  if (c->n++ < 4)
    snprintf(c->names + used, sizeof c->names - used, "%s%s", used ? ", " : "",
             v->name);
  else if (c->n == 5)
    snprintf(c->names + used, sizeof c->names - used, ", ...");
  return 0;
}

static int lc_image_list(void *handle, vmh_image_info_fn fn, void *opaque,
                         uint32_t flags) {
  struct pool *p = handle;
  DIR *d;
  struct dirent *e;
  int rc = vmh_check_flags(host, "image_list", flags, 0);

  if (rc < 0)
    return rc;
  d = open_dir(p->imgfd);
  if (d == NULL)
    return vmh_fail(host, VMH_EIO, "pool %s: cannot list %s: %s", p->name,
                    p->images_path, strerror(errno));
  while (rc == 0 && (e = readdir(d)) != NULL) {
    struct vmh_image_info info = {0};
    struct users_ctx c = {.name = e->d_name};
    char sha[FETCH_SHA256_HEX + 1];
    uint32_t format = 0;
    uint64_t vsize = 0;
    struct stat st;

    if (!vmh_name_valid(e->d_name) ||
        fstatat(p->imgfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISREG(st.st_mode) ||
        image_meta(p, e->d_name, &format, &vsize, sha, sizeof sha) < 0)
      continue;
    if ((rc = scan(p, count_user, &c, NULL)) < 0)
      break;
    info.struct_size = sizeof info;
    info.name = e->d_name;
    info.size = (uint64_t)st.st_size;
    info.sha256 = sha;
    info.n_users = c.n;
    rc = fn(opaque, &info);
  }
  closedir(d);
  return rc;
}

static int lc_image_delete(void *handle, const char *name, uint32_t flags) {
  struct pool *p = handle;
  struct users_ctx c = {.name = name};
  struct stat st;
  int rc;

  if ((rc = vmh_check_flags(host, "image_delete", flags, 0)) < 0 ||
      (rc = vmh_check_name(host, "image", name)) < 0)
    return rc;
  pthread_rwlock_wrlock(&p->images_lock);
  if (fstatat(p->imgfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    rc = vmh_fail(host, VMH_ENOENT, "pool %s has no image %s", p->name, name);
    goto cleanup;
  }
  if ((rc = scan(p, count_user, &c, NULL)) < 0)
    goto cleanup;
  if (c.n > 0) {
    rc = vmh_fail(host, VMH_EBUSY,
                  "pool %s: image %s backs %" PRIu32
                  " volume(s) (%s); delete them first",
                  p->name, name, c.n, c.names);
    goto cleanup;
  }
  if (unlinkat(p->imgfd, name, 0) < 0)
    rc = vmh_fail(host, errno_code(errno), "pool %s: delete image %s: %s",
                  p->name, name, strerror(errno));
cleanup:
  pthread_rwlock_unlock(&p->images_lock);
  return rc;
}

/* ---- Registration -------------------------------------------------------- */

static int lc_load(const struct vmh_host *h) {
  host = h;
  return fetch_global_init(h); /* once, before any instance runs */
}

static struct vmh_storage_ops ops = {
    .open = lc_open,
    .close = lc_close,
    .health = lc_health,
    .pool_info = lc_pool_info,
    .vol_list = lc_vol_list,
    .vol_get = lc_vol_get,
    .vol_create = lc_vol_create,
    .vol_delete = lc_vol_delete,
    .vol_resize = lc_vol_resize,
    .vol_source = lc_vol_source,
    .vol_unmap = lc_vol_unmap,
    .image_import = lc_image_import,
    .image_list = lc_image_list,
    .image_delete = lc_image_delete,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_STORAGE,
    .name = "local",
    .version = VMH_PACKAGE_VERSION,
    .description = "directory pool: raw/qcow2 files, clones, image cache",
    .load = lc_load,
    .storage = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
