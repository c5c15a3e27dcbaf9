/* SPDX-License-Identifier: MIT */
/* storage-example — a complete vmhost storage plugin, built out of tree.
 *
 * A pool is a directory; each volume is a raw file in it, sparse unless the
 * pool preallocates.  Hypervisors open volumes by path.  It is written the
 * way docs/plugin-guide.md explains, against the installed headers only:
 *
 *   make                  # pkg-config --cflags vmhost-plugin
 *   make install          # into pkg-config --variable=plugindir
 *
 * Config (an entry under `storage:` with `plugin: example`):
 *   path: DIR           required; relative to the config file's directory;
 *                       created (mode 0700) if missing
 *   capacity: SIZE      what the volumes' sizes may add up to (default 10G)
 *   preallocate: BOOL   allocate every block at create and resize (no)
 *
 * Thread model: the core runs one operation at a time per instance, so an
 * instance needs no lock; instances share nothing but `host`.
 *
 * The image cache (image_import, image_list, image_delete) is left out on
 * purpose: an operation a plugin does not have answers "not supported"
 * (VMH_ENOTSUP: 501, UNIMPLEMENTED), which is the right answer here.
 */
#define _POSIX_C_SOURCE 200809L

#define VMH_THREAD_MODEL VMH_THREAD_SERIALIZE_INSTANCE
#include <vmhost/vmhost-plugin.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GiB (UINT64_C(1) << 30)

/* The host's services, given to load() before any open(). */
static const struct vmh_host *host;

struct pool {
  const struct vmh_instance *inst;
  const char *path; /* borrowed from the config: lives as long as inst */
  int dirfd;        /* -1 in check-only mode */
  uint64_t capacity;
  int preallocate;
};

/* ---- Helpers --------------------------------------------------------- */

/* The VMH_E* code for a failed system call. */
static int errno_code(int err) {
  switch (err) {
    case ENOENT:
      return VMH_ENOENT;
    case EEXIST:
      return VMH_EEXIST;
    case ENOSPC:
    case EDQUOT:
      return VMH_ENOSPC;
    case ENOMEM:
      return VMH_ENOMEM;
    case EACCES:
    case EPERM:
    case EROFS:
      return VMH_EPERM;
    default:
      return VMH_EIO;
  }
}

/* Set the message for a failed system call on `name` and return its code.
 * vmh_fail (host.h) sets the message and returns the code in one line. */
static int sys_fail(const struct pool *p, const char *what, const char *name,
                    int err) {
  return vmh_fail(host, errno_code(err), "%s %s/%s: %s", what, p->path, name,
                  strerror(err));
}

/* stat a volume: 0, or VMH_ENOENT with a message when there is none. */
static int stat_volume(const struct pool *p, const char *name,
                       struct stat *st) {
  if (fstatat(p->dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno != ENOENT)
      return sys_fail(p, "cannot stat", name, errno);
    host->error("no volume '%s' in %s", name, p->path);
    return VMH_ENOENT;
  }
  if (!S_ISREG(st->st_mode)) {
    host->error("%s/%s is not a regular file: not a volume of this pool",
                p->path, name);
    return VMH_EIO;
  }
  return 0;
}

/* The volume `name`, checked and stat'ed.  Volume names follow the ABI's one
 * rule (vmh_name_valid, common.h); the core checks them before calling, and a
 * plugin checks again wherever a bad name could escape the pool: here every
 * name that becomes a path.  Our own temporary files start with '.', so they
 * are never volumes. */
static int find_volume(const struct pool *p, const char *name,
                       struct stat *st) {
  int r = vmh_check_name(host, "volume", name);
  return r < 0 ? r : stat_volume(p, name, st);
}

/* Call fn for every volume of the pool; a non-zero return stops the walk
 * and is returned. */
typedef int (*volume_fn)(void *opaque, const char *name, const struct stat *st);

static int for_each_volume(const struct pool *p, volume_fn fn, void *opaque) {
  int fd = openat(p->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *dir = fd < 0 ? NULL : fdopendir(fd);
  struct dirent *e;
  struct stat st;
  int r = 0;

  if (dir == NULL) {
    r = sys_fail(p, "cannot read", ".", errno);
    if (fd >= 0)
      close(fd);
    return r;
  }
  while (r == 0 && (e = readdir(dir)) != NULL)
    if (vmh_name_valid(e->d_name) &&
        fstatat(p->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode))
      r = fn(opaque, e->d_name, &st);
  closedir(dir);
  return r;
}

struct usage {
  uint64_t size;       /* the volumes' sizes added up */
  uint64_t allocation; /* blocks in use */
  uint32_t n;
};

static int add_usage(void *opaque, const char *name, const struct stat *st) {
  struct usage *u = opaque;
  (void)name;
  u->size += (uint64_t)st->st_size;
  u->allocation += (uint64_t)st->st_blocks * 512;
  u->n++;
  return 0;
}

/* VMH_ENOSPC unless `more` bytes of volume fit in the pool. */
static int check_space(const struct pool *p, const char *name, uint64_t more) {
  struct usage u = {0, 0, 0};
  int r = for_each_volume(p, add_usage, &u);
  if (r < 0)
    return r;
  if (u.size <= p->capacity && more <= p->capacity - u.size)
    return 0;
  host->error("volume '%s': %" PRIu64 " more bytes do not fit: %" PRIu64
              " of the pool's %" PRIu64 " are given to volumes",
              name, more, u.size, p->capacity);
  return VMH_ENOSPC;
}

/* Set fd's size; with preallocation also allocate the blocks.  Then make
 * it durable. */
static int set_size(const struct pool *p, const char *name, int fd,
                    uint64_t size) {
  int err;
  if (size > INT64_MAX) {
    host->error("volume '%s': size %" PRIu64 " is too large", name, size);
    return VMH_EINVAL;
  }
  if (ftruncate(fd, (off_t)size) < 0)
    return sys_fail(p, "cannot resize", name, errno);
  if (p->preallocate && size > 0 &&
      (err = posix_fallocate(fd, 0, (off_t)size)) != 0)
    return sys_fail(p, "cannot allocate", name, err);
  if (fsync(fd) < 0)
    return sys_fail(p, "cannot sync", name, errno);
  return 0;
}

static void fill_info(const char *name, const struct stat *st,
                      struct vmh_volume_info *info) {
  memset(info, 0, sizeof *info);
  info->struct_size = sizeof *info;
  info->name = name;
  info->capacity = (uint64_t)st->st_size;
  info->allocation = (uint64_t)st->st_blocks * 512;
  info->format = VMH_FORMAT_RAW;
}

/* ---- Instance ---------------------------------------------------------- */

static int ex_load(const struct vmh_host *h) {
  host = h;
  return 0;
}

static void ex_close(void *handle) {
  struct pool *p = handle;
  if (p->dirfd >= 0)
    close(p->dirfd);
  free(p);
}

static int ex_open(const struct vmh_host *h, const struct vmh_instance *inst,
                   const struct vmh_config *config, void **ret_handle,
                   uint32_t flags) {
  struct pool *p;
  struct stat st;
  int r;

  if ((r = vmh_check_flags(h, "open", flags, VMH_OPEN_CHECK_ONLY)) < 0)
    return r;
  if ((p = calloc(1, sizeof *p)) == NULL) {
    h->error("out of memory");
    return VMH_ENOMEM;
  }
  p->inst = inst;
  p->dirfd = -1;
  /* Every key is read here, also in check-only mode: a key nobody reads
   * is refused as a typo. */
  if ((r = h->config_path(config, "path", NULL, &p->path, VMH_CFG_REQUIRED)) <
          0 ||
      (r = h->config_size(config, "capacity", 1, UINT64_MAX, 10 * GiB,
                          &p->capacity, 0)) < 0 ||
      (r = h->config_bool(config, "preallocate", 0, &p->preallocate, 0)) < 0)
    goto fail;
  /* Looking is not touching: check-only mode may refuse what exists. */
  if (stat(p->path, &st) == 0 && !S_ISDIR(st.st_mode)) {
    r = vmh_fail(h, VMH_EINVAL, "%s: path %s is not a directory",
                 h->config_key_where(config, "path"), p->path);
    goto fail;
  }
  if (flags & VMH_OPEN_CHECK_ONLY) {
    *ret_handle = p;
    return 0;
  }

  if (mkdir(p->path, 0700) < 0 && errno != EEXIST) {
    r = errno_code(errno);
    h->error("cannot create the pool directory %s: %s", p->path,
             strerror(errno));
    goto fail;
  }
  p->dirfd = open(p->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (p->dirfd < 0) {
    r = errno_code(errno);
    h->error("cannot open the pool directory %s: %s", p->path, strerror(errno));
    goto fail;
  }
  h->log(inst, VMH_LOG_INFO, "pool in %s, capacity %" PRIu64 " bytes%s",
         p->path, p->capacity, p->preallocate ? ", preallocated" : "");
  *ret_handle = p;
  return 0;

fail:
  ex_close(p);
  return r;
}

static int ex_health(void *handle, uint32_t flags) {
  struct pool *p = handle;
  struct stat st;
  int r;

  if ((r = vmh_check_flags(host, "health", flags, 0)) < 0)
    return r;
  if (fstat(p->dirfd, &st) < 0)
    return sys_fail(p, "cannot stat", ".", errno);
  if (st.st_nlink == 0) {
    host->error("the pool directory %s was removed", p->path);
    return VMH_EIO;
  }
  return 0;
}

/* ---- Pool and volumes -------------------------------------------------- */

static int ex_pool_info(void *handle, vmh_pool_info_fn fn, void *opaque,
                        uint32_t flags) {
  struct pool *p = handle;
  struct usage u = {0, 0, 0};
  struct vmh_pool_info info;
  int r;

  if ((r = vmh_check_flags(host, "pool_info", flags, 0)) < 0 ||
      (r = for_each_volume(p, add_usage, &u)) < 0)
    return r;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  info.capacity = p->capacity;
  info.allocation = u.allocation;
  info.available = u.size < p->capacity ? p->capacity - u.size : 0;
  info.n_volumes = u.n;
  info.default_format = VMH_FORMAT_RAW;
  return fn(opaque, &info);
}

struct visit {
  vmh_volume_info_fn fn;
  void *opaque;
};

static int visit_volume(void *opaque, const char *name, const struct stat *st) {
  struct visit *v = opaque;
  struct vmh_volume_info info;
  fill_info(name, st, &info);
  return v->fn(v->opaque, &info);
}

static int ex_vol_list(void *handle, vmh_volume_info_fn fn, void *opaque,
                       uint32_t flags) {
  struct visit v = {fn, opaque};
  int r = vmh_check_flags(host, "vol_list", flags, 0);
  return r < 0 ? r : for_each_volume(handle, visit_volume, &v);
}

static int ex_vol_get(void *handle, const char *name, vmh_volume_info_fn fn,
                      void *opaque, uint32_t flags) {
  struct vmh_volume_info info;
  struct stat st;
  int r;

  if ((r = vmh_check_flags(host, "vol_get", flags, 0)) < 0 ||
      (r = find_volume(handle, name, &st)) < 0)
    return r;
  fill_info(name, &st, &info);
  return fn(opaque, &info);
}

/* Create atomically: the file is made and sized under a temporary name,
 * then linked under its own, which fails if the name exists.  On any
 * failure nothing remains. */
static int ex_vol_create(void *handle, const struct vmh_volume_spec *spec,
                         uint32_t flags) {
  struct pool *p = handle;
  char tmp[VMH_NAME_MAX + 8];
  struct stat st;
  int fd, r;

  if ((r = vmh_check_flags(host, "vol_create", flags, 0)) < 0 ||
      (r = vmh_check_name(host, "volume", spec->name)) < 0)
    return r;
  if (spec->format != VMH_FORMAT_DEFAULT && spec->format != VMH_FORMAT_RAW) {
    host->error("volume '%s': this pool stores raw volumes only", spec->name);
    return VMH_ENOTSUP;
  }
  if (spec->base_image != NULL) {
    host->error("volume '%s': this pool has no image cache to clone '%s' from",
                spec->name, spec->base_image);
    return VMH_ENOTSUP;
  }
  if (spec->size == 0) {
    host->error("volume '%s': give a size", spec->name);
    return VMH_EINVAL;
  }
  if (fstatat(p->dirfd, spec->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    host->error("volume '%s' already exists in %s", spec->name, p->path);
    return VMH_EEXIST;
  }
  if ((r = check_space(p, spec->name, spec->size)) < 0)
    return r;

  snprintf(tmp, sizeof tmp, ".%s.tmp", spec->name);
  unlinkat(p->dirfd, tmp, 0); /* left by a crash */
  fd = openat(p->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return sys_fail(p, "cannot create", tmp, errno);
  r = set_size(p, spec->name, fd, spec->size);
  close(fd);
  if (r == 0 && linkat(p->dirfd, tmp, p->dirfd, spec->name, 0) < 0)
    r = sys_fail(p, "cannot link", spec->name, errno); /* EEXIST too */
  unlinkat(p->dirfd, tmp, 0);
  if (r == 0 && fsync(p->dirfd) < 0)
    r = sys_fail(p, "cannot sync", ".", errno);
  if (r == 0)
    host->counter_add(p->inst, "volumes_created", 1);
  return r;
}

static int ex_vol_delete(void *handle, const char *name, uint32_t flags) {
  struct pool *p = handle;
  struct stat st;
  int r;

  if ((r = vmh_check_flags(host, "vol_delete", flags, 0)) < 0 ||
      (r = find_volume(p, name, &st)) < 0)
    return r;
  if (unlinkat(p->dirfd, name, 0) < 0)
    return sys_fail(p, "cannot delete", name, errno);
  if (fsync(p->dirfd) < 0)
    return sys_fail(p, "cannot sync", ".", errno);
  return 0;
}

static int ex_vol_resize(void *handle, const char *name, uint64_t size,
                         uint32_t flags) {
  struct pool *p = handle;
  struct stat st;
  uint64_t cur;
  int fd, r;

  if ((r = vmh_check_flags(host, "vol_resize", flags, VMH_RESIZE_SHRINK)) < 0 ||
      (r = find_volume(p, name, &st)) < 0)
    return r;
  cur = (uint64_t)st.st_size;
  if (size == 0) {
    host->error("volume '%s': give a size", name);
    return VMH_EINVAL;
  }
  if (size < cur && !(flags & VMH_RESIZE_SHRINK)) {
    host->error("volume '%s': %" PRIu64 " is smaller than its %" PRIu64
                " bytes; shrinking loses data and needs the shrink flag",
                name, size, cur);
    return VMH_EINVAL;
  }
  if (size > cur && (r = check_space(p, name, size - cur)) < 0)
    return r;
  fd = openat(p->dirfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return sys_fail(p, "cannot open", name, errno);
  r = set_size(p, name, fd, size);
  close(fd);
  return r;
}

/* The volume is a local file already: VMH_SOURCE_LOCAL needs no mapping,
 * so vol_unmap has nothing to undo. */
static int ex_vol_source(void *handle, const char *name, vmh_disk_source_fn fn,
                         void *opaque, uint32_t flags) {
  struct pool *p = handle;
  struct vmh_disk_source src;
  struct stat st;
  char *path;
  int r;

  if ((r = vmh_check_flags(host, "vol_source", flags, VMH_SOURCE_LOCAL)) < 0 ||
      (r = find_volume(p, name, &st)) < 0)
    return r;
  if ((path = malloc(strlen(p->path) + strlen(name) + 2)) == NULL) {
    host->error("out of memory");
    return VMH_ENOMEM;
  }
  sprintf(path, "%s/%s", p->path, name);
  memset(&src, 0, sizeof src);
  src.struct_size = sizeof src;
  src.type = VMH_SOURCE_FILE;
  src.format = VMH_FORMAT_RAW;
  src.path = path;
  r = fn(opaque, &src); /* the core copies what it keeps */
  free(path);
  return r;
}

static int ex_vol_unmap(void *handle, const char *name, uint32_t flags) {
  int r = vmh_check_flags(host, "vol_unmap", flags, 0);
  (void)handle;
  return r < 0 ? r : vmh_check_name(host, "volume", name);
}

/* ---- Registration ------------------------------------------------------ */

static struct vmh_storage_ops ops = {
    .open = ex_open,
    .close = ex_close,
    .health = ex_health,
    .pool_info = ex_pool_info,
    .vol_list = ex_vol_list,
    .vol_get = ex_vol_get,
    .vol_create = ex_vol_create,
    .vol_delete = ex_vol_delete,
    .vol_resize = ex_vol_resize,
    .vol_source = ex_vol_source,
    .vol_unmap = ex_vol_unmap,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_STORAGE,
    .name = "example",
    .version = "1.0",
    .description = "raw volumes in a directory (the plugin guide's example)",
    .load = ex_load,
    .storage = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
