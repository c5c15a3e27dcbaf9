/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* storage-mock — an in-memory storage pool for test harnesses.
 *
 * Volumes and cached base images exist only as records (no file is made);
 * capacity accounting, formats, resize rules and image reference counting
 * behave as a real pool's would, so the core's orchestration and rollback
 * can be tested without disks.  Latency and faults are injected through the
 * config (see mockcommon.h and etc/plugins/mock.yaml). */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "mockcommon.h"
#include "url.h"

enum {
  OP_OPEN,
  OP_HEALTH,
  OP_POOL_INFO,
  OP_VOL_LIST,
  OP_VOL_GET,
  OP_VOL_CREATE,
  OP_VOL_DELETE,
  OP_VOL_RESIZE,
  OP_VOL_SOURCE,
  OP_VOL_UNMAP,
  OP_IMAGE_IMPORT,
  OP_IMAGE_LIST,
  OP_IMAGE_DELETE,
};

static const char *const op_names[] = {
    "open",         "health",     "pool_info",    "vol_list",   "vol_get",
    "vol_create",   "vol_delete", "vol_resize",   "vol_source", "vol_unmap",
    "image_import", "image_list", "image_delete", NULL,
};

#define SHA256_HEX 64

struct image {
  char *name;
  uint64_t size;
  char sha256[SHA256_HEX + 1];
};

struct vol {
  char *name;
  uint64_t capacity;
  uint64_t allocation;   /* always 0: nothing is ever written */
  uint32_t format;       /* VMH_FORMAT_RAW or VMH_FORMAT_QCOW2 */
  struct image *backing; /* NULL: none; an image with users is never freed */
  int mapped; /* vol_source with VMH_SOURCE_LOCAL, no vol_unmap yet */
};

struct st {
  const struct vmh_host *host;
  const struct vmh_instance *inst;
  struct mock_common *mc;
  uint64_t capacity, import_size;
  uint32_t default_format;
  int64_t max_volumes;
  struct ptrvec vols;   /* of struct vol *, in creation order */
  struct ptrvec images; /* of struct image * */
  uint64_t used;        /* sum of the volumes' capacities */
  char *url;            /* file:// URL of the state directory */
  const char *message;  /* config `message`: the pool's condition */
};

/* ---- Helpers ------------------------------------------------------------- */

static const char *format_name(uint32_t f) {
  return f == VMH_FORMAT_RAW ? "raw" : f == VMH_FORMAT_QCOW2 ? "qcow2" : "?";
}

static uint64_t free_bytes(const struct st *s) {
  return s->used >= s->capacity ? 0 : s->capacity - s->used;
}

static void free_image(struct image *img) {
  if (img == NULL)
    return;
  free(img->name);
  free(img);
}

static void free_vol(struct vol *v) {
  if (v == NULL)
    return;
  free(v->name);
  free(v);
}

static struct vol *find_vol(struct st *s, const char *name, size_t *ret_idx) {
  size_t i;

  for (i = 0; i < s->vols.n; i++) {
    struct vol *v = s->vols.v[i];
    if (strcmp(v->name, name) == 0) {
      if (ret_idx)
        *ret_idx = i;
      return v;
    }
  }
  return NULL;
}

static struct image *find_image(struct st *s, const char *name,
                                size_t *ret_idx) {
  size_t i;

  for (i = 0; i < s->images.n; i++) {
    struct image *img = s->images.v[i];
    if (strcmp(img->name, name) == 0) {
      if (ret_idx)
        *ret_idx = i;
      return img;
    }
  }
  return NULL;
}

/* Volumes backed by `img`; *ret_first: one of them, for messages. */
static uint32_t image_users(const struct st *s, const struct image *img,
                            const char **ret_first) {
  uint32_t n = 0;
  size_t i;

  for (i = 0; i < s->vols.n; i++) {
    const struct vol *v = s->vols.v[i];
    if (v->backing == img) {
      if (n++ == 0 && ret_first)
        *ret_first = v->name;
    }
  }
  return n;
}

static int no_vol(struct st *s, const char *name) {
  return vmh_fail(s->host, VMH_ENOENT, "pool %s has no volume %s",
                  mock_common_name(s->mc), name);
}

static int valid_sha256(const char *h) {
  size_t i;

  for (i = 0; i < SHA256_HEX; i++)
    if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
      return 0;
  return h[SHA256_HEX] == '\0';
}

static int check_sha256(struct st *s, const char *what, const char *h) {
  if (h == NULL || !valid_sha256(h))
    return vmh_fail(s->host, VMH_EINVAL,
                    "%s: sha256 must be 64 lower-case hex digits", what);
  return 0;
}

/* ---- State file ---------------------------------------------------------- */

static int st_dump(void *opaque, struct mock_out *out) {
  struct st *s = opaque;
  size_t i;

  /* Images first: the loader resolves a volume's backing by name. */
  for (i = 0; i < s->images.n; i++) {
    const struct image *img = s->images.v[i];
    mock_out_rec(out, "image");
    mock_out_str(out, "name", img->name);
    mock_out_u64(out, "size", img->size);
    mock_out_str(out, "sha256", img->sha256);
  }
  for (i = 0; i < s->vols.n; i++) {
    const struct vol *v = s->vols.v[i];
    mock_out_rec(out, "vol");
    mock_out_str(out, "name", v->name);
    mock_out_u64(out, "capacity", v->capacity);
    mock_out_u64(out, "allocation", v->allocation);
    mock_out_u64(out, "format", v->format);
    mock_out_str(out, "backing", v->backing ? v->backing->name : NULL);
    mock_out_u64(out, "mapped", (uint64_t)v->mapped);
  }
  return 0;
}

static int save(struct st *s) {
  return mock_common_save(s->mc, st_dump, s);
}

static int load_record(void *opaque, struct mock_rec *rec) {
  struct st *s = opaque;
  const char *type = mock_rec_type(rec), *name, *sha, *backing;
  uint64_t u, mapped;
  int rc;

  if (strcmp(type, "image") == 0) {
    struct image *img;
    if ((rc = mock_rec_str(rec, "name", 1, &name)) < 0 ||
        (rc = mock_rec_u64(rec, "size", 1, 1, UINT64_MAX, 0, &u)) < 0 ||
        (rc = mock_rec_str(rec, "sha256", 1, &sha)) < 0)
      return rc;
    if (vmh_check_name(s->host, "image", name) < 0 || !valid_sha256(sha))
      return mock_rec_fail(rec, "bad image name or sha256");
    if (find_image(s, name, NULL))
      return mock_rec_fail(rec, "image %s twice", name);
    img = calloc(1, sizeof *img);
    if (img == NULL)
      return vmh_fail(s->host, VMH_ENOMEM, "out of memory");
    img->size = u;
    memcpy(img->sha256, sha, SHA256_HEX + 1);
    if ((rc = mock_dup(s->host, name, &img->name)) < 0 ||
        (rc = mock_vec_push(s->host, &s->images, img)) < 0) {
      free_image(img);
      return rc;
    }
    return 0;
  }
  if (strcmp(type, "vol") == 0) {
    struct vol *v;
    uint64_t cap, alloc, format;
    struct image *img = NULL;
    if ((rc = mock_rec_str(rec, "name", 1, &name)) < 0 ||
        (rc = mock_rec_u64(rec, "capacity", 1, 1, UINT64_MAX, 0, &cap)) < 0 ||
        (rc = mock_rec_u64(rec, "allocation", 1, 0, UINT64_MAX, 0, &alloc)) <
            0 ||
        (rc = mock_rec_u64(rec, "format", 1, VMH_FORMAT_RAW, VMH_FORMAT_QCOW2,
                           0, &format)) < 0 ||
        (rc = mock_rec_str(rec, "backing", 0, &backing)) < 0 ||
        (rc = mock_rec_u64(rec, "mapped", 1, 0, 1, 0, &mapped)) < 0)
      return rc;
    if (vmh_check_name(s->host, "volume", name) < 0)
      return mock_rec_fail(rec, "bad volume name");
    if (find_vol(s, name, NULL))
      return mock_rec_fail(rec, "volume %s twice", name);
    if (backing && (img = find_image(s, backing, NULL)) == NULL)
      return mock_rec_fail(rec, "volume %s: backing image %s is not listed",
                           name, backing);
    if (cap > UINT64_MAX - s->used)
      return mock_rec_fail(rec, "capacities overflow");
    v = calloc(1, sizeof *v);
    if (v == NULL)
      return vmh_fail(s->host, VMH_ENOMEM, "out of memory");
    v->capacity = cap;
    v->allocation = alloc;
    v->format = (uint32_t)format;
    v->backing = img;
    v->mapped = (int)mapped;
    if ((rc = mock_dup(s->host, name, &v->name)) < 0 ||
        (rc = mock_vec_push(s->host, &s->vols, v)) < 0) {
      free_vol(v);
      return rc;
    }
    s->used += cap;
    return 0;
  }
  return mock_rec_fail(rec, "unknown record type %s", type);
}

/* ---- Operations ---------------------------------------------------------- */

static int st_health(void *handle, uint32_t flags) {
  struct st *s = handle;
  int rc = mock_common_enter(s->mc, OP_HEALTH);

  if (rc < 0)
    return rc;
  return vmh_check_flags(s->host, "health", flags, 0);
}

static int st_pool_info(void *handle, vmh_pool_info_fn fn, void *opaque,
                        uint32_t flags) {
  struct st *s = handle;
  struct vmh_pool_info info = {0};
  int rc = mock_common_enter(s->mc, OP_POOL_INFO);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(s->host, "pool_info", flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(s->host, VMH_EINVAL, "pool_info: no visitor");
  info.struct_size = sizeof info;
  mock_common_lock(s->mc);
  info.capacity = s->capacity;
  info.allocation = s->used;
  info.available = free_bytes(s);
  info.n_volumes = (uint32_t)s->vols.n;
  info.default_format = s->default_format;
  info.message = s->message;
  mock_common_unlock(s->mc);
  return fn(opaque, &info);
}

/* A volume as reported, copied under the lock so that visitors run
 * without it. */
struct vol_view {
  char name[VMH_NAME_MAX + 1];
  char backing[VMH_NAME_MAX + 1];
  uint64_t capacity, allocation;
  uint32_t format;
};

static void view_vol(const struct vol *v, struct vol_view *w) {
  snprintf(w->name, sizeof w->name, "%s", v->name);
  snprintf(w->backing, sizeof w->backing, "%s",
           v->backing ? v->backing->name : "");
  w->capacity = v->capacity;
  w->allocation = v->allocation;
  w->format = v->format;
}

static int report_vol(const struct st *s, const struct vol_view *w,
                      vmh_volume_info_fn fn, void *opaque) {
  struct vmh_volume_info info = {0};
  _cleanup_free_ char *location = NULL;

  /* Where vol_source says it is; volume names need no escaping. */
  if (asprintf(&location, "%s/%s", s->url, w->name) < 0) {
    location = NULL;
    return vmh_fail(s->host, VMH_ENOMEM, "out of memory");
  }
  info.struct_size = sizeof info;
  info.location = location;
  info.name = w->name;
  info.capacity = w->capacity;
  info.allocation = w->allocation;
  info.format = w->format;
  info.backing = w->backing[0] ? w->backing : NULL;
  return fn(opaque, &info);
}

static int st_vol_list(void *handle, vmh_volume_info_fn fn, void *opaque,
                       uint32_t flags) {
  struct st *s = handle;
  struct vol_view *views = NULL;
  size_t n, i;
  int rc = mock_common_enter(s->mc, OP_VOL_LIST);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(s->host, "vol_list", flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(s->host, VMH_EINVAL, "vol_list: no visitor");
  mock_common_lock(s->mc);
  n = s->vols.n;
  if (n > 0 && (views = malloc(n * sizeof *views)) == NULL)
    rc = vmh_fail(s->host, VMH_ENOMEM, "out of memory");
  for (i = 0; views && i < n; i++)
    view_vol(s->vols.v[i], &views[i]);
  mock_common_unlock(s->mc);
  for (i = 0; rc == 0 && i < n; i++)
    rc = report_vol(s, &views[i], fn, opaque);
  free(views);
  return rc;
}

static int st_vol_get(void *handle, const char *name, vmh_volume_info_fn fn,
                      void *opaque, uint32_t flags) {
  struct st *s = handle;
  struct vol_view w;
  struct vol *v;
  int rc = mock_common_enter(s->mc, OP_VOL_GET);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(s->host, "vol_get", flags, 0)) < 0 ||
      (rc = vmh_check_name(s->host, "volume", name)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(s->host, VMH_EINVAL, "vol_get: no visitor");
  mock_common_lock(s->mc);
  v = find_vol(s, name, NULL);
  if (v == NULL)
    rc = no_vol(s, name);
  else
    view_vol(v, &w);
  mock_common_unlock(s->mc);
  if (rc < 0)
    return rc;
  return report_vol(s, &w, fn, opaque);
}

static int st_vol_create(void *handle, const struct vmh_volume_spec *spec,
                         uint32_t flags) {
  struct st *s = handle;
  const char *pool = mock_common_name(s->mc);
  struct image *img = NULL;
  struct vol *v = NULL;
  uint64_t size;
  uint32_t format;
  int rc = mock_common_enter(s->mc, OP_VOL_CREATE);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(s->host, "vol_create", flags, 0)) < 0 ||
      (rc = mock_check_struct(s->host, "volume spec", spec,
                              spec ? spec->struct_size : 0, sizeof *spec)) <
          0 ||
      (rc = vmh_check_name(s->host, "volume", spec->name)) < 0 ||
      (spec->base_image != NULL &&
       (rc = vmh_check_name(s->host, "base image", spec->base_image)) < 0))
    return rc;
  format =
      spec->format == VMH_FORMAT_DEFAULT ? s->default_format : spec->format;
  if (format != VMH_FORMAT_RAW && format != VMH_FORMAT_QCOW2)
    return vmh_fail(s->host, VMH_EINVAL,
                    "volume %s: format %" PRIu32
                    " is not default (0), raw (1) or qcow2 (2)",
                    spec->name, spec->format);
  if (spec->base_image == NULL && spec->size == 0)
    return vmh_fail(s->host, VMH_EINVAL,
                    "volume %s: size must not be 0 without a base image",
                    spec->name);

  v = calloc(1, sizeof *v);
  if (v == NULL)
    return vmh_fail(s->host, VMH_ENOMEM, "out of memory");
  if ((rc = mock_dup(s->host, spec->name, &v->name)) < 0) {
    free_vol(v);
    return rc;
  }

  mock_common_lock(s->mc);
  size = spec->size;
  if (find_vol(s, spec->name, NULL)) {
    rc = vmh_fail(s->host, VMH_EEXIST, "pool %s already has a volume %s", pool,
                  spec->name);
    goto out;
  }
  if (spec->base_image != NULL) {
    img = find_image(s, spec->base_image, NULL);
    if (img == NULL) {
      rc = vmh_fail(s->host, VMH_ENOENT,
                    "pool %s has no image %s; import it first", pool,
                    spec->base_image);
      goto out;
    }
    if (size == 0)
      size = img->size;
    if (size < img->size) {
      rc = vmh_fail(s->host, VMH_EINVAL,
                    "volume %s: size %" PRIu64
                    " is smaller than its base image %s (%" PRIu64 " bytes)",
                    spec->name, size, img->name, img->size);
      goto out;
    }
  }
  if (s->vols.n >= (size_t)s->max_volumes) {
    rc = vmh_fail(s->host, VMH_ENOSPC,
                  "pool %s already holds %zu volumes, its max_volumes", pool,
                  s->vols.n);
    goto out;
  }
  if (size > free_bytes(s)) {
    rc =
        vmh_fail(s->host, VMH_ENOSPC,
                 "pool %s has %" PRIu64 " bytes free, volume %s needs %" PRIu64,
                 pool, free_bytes(s), spec->name, size);
    goto out;
  }
  v->capacity = size;
  v->format = format;
  v->backing = img;
  rc = mock_vec_push(s->host, &s->vols, v);
  if (rc < 0)
    goto out;
  s->used += size;
  rc = save(s);
  if (rc < 0) {
    ptrvec_remove(&s->vols, s->vols.n - 1);
    s->used -= size;
    goto out;
  }
  v = NULL;
out:
  mock_common_unlock(s->mc);
  free_vol(v);
  return rc;
}

static int st_vol_delete(void *handle, const char *name, uint32_t flags) {
  struct st *s = handle;
  struct vol *v = NULL;
  size_t idx;
  int rc = mock_common_enter(s->mc, OP_VOL_DELETE);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(s->host, "vol_delete", flags, 0)) < 0 ||
      (rc = vmh_check_name(s->host, "volume", name)) < 0)
    return rc;
  mock_common_lock(s->mc);
  v = find_vol(s, name, &idx);
  if (v == NULL) {
    rc = no_vol(s, name);
  } else if (v->mapped) {
    /* A real pool cannot remove an image a host still has mapped (rbd,
     * iSCSI): the core must call vol_unmap first. */
    rc = vmh_fail(s->host, VMH_EBUSY,
                  "volume %s is mapped locally (vol_source with "
                  "VMH_SOURCE_LOCAL); vol_unmap it first",
                  name);
  } else {
    ptrvec_remove(&s->vols, idx);
    s->used -= v->capacity;
    rc = save(s);
    if (rc < 0) {
      mock_vec_insert(s->host, &s->vols, idx, v);
      s->used += v->capacity;
    }
  }
  mock_common_unlock(s->mc);
  if (rc == 0)
    free_vol(v);
  return rc;
}

static int st_vol_resize(void *handle, const char *name, uint64_t size,
                         uint32_t flags) {
  struct st *s = handle;
  const char *pool = mock_common_name(s->mc);
  struct vol *v;
  int rc = mock_common_enter(s->mc, OP_VOL_RESIZE);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(s->host, "vol_resize", flags, VMH_RESIZE_SHRINK)) <
          0 ||
      (rc = vmh_check_name(s->host, "volume", name)) < 0)
    return rc;
  if (size == 0)
    return vmh_fail(s->host, VMH_EINVAL, "volume %s: size must not be 0", name);
  mock_common_lock(s->mc);
  v = find_vol(s, name, NULL);
  if (v == NULL) {
    rc = no_vol(s, name);
  } else if (size > v->capacity) {
    if (size - v->capacity > free_bytes(s))
      rc = vmh_fail(s->host, VMH_ENOSPC,
                    "pool %s has %" PRIu64 " bytes free, growing %s to %" PRIu64
                    " needs %" PRIu64,
                    pool, free_bytes(s), name, size, size - v->capacity);
  } else if (size < v->capacity) {
    if (!(flags & VMH_RESIZE_SHRINK))
      rc = vmh_fail(s->host, VMH_EINVAL,
                    "volume %s is %" PRIu64 " bytes; making it %" PRIu64
                    " shrinks it, which needs VMH_RESIZE_SHRINK",
                    name, v->capacity, size);
    else if (v->format != VMH_FORMAT_RAW)
      rc = vmh_fail(s->host, VMH_ENOTSUP,
                    "volume %s is %s; only raw volumes can shrink", name,
                    format_name(v->format));
    else if (v->backing && size < v->backing->size)
      rc = vmh_fail(s->host, VMH_EINVAL,
                    "volume %s cannot shrink below its base image %s (%" PRIu64
                    " bytes)",
                    name, v->backing->name, v->backing->size);
  }
  if (rc == 0 && v->capacity != size) {
    uint64_t old = v->capacity;
    s->used = s->used - old + size;
    v->capacity = size;
    rc = save(s);
    if (rc < 0) {
      v->capacity = old;
      s->used = s->used - size + old;
    }
  }
  mock_common_unlock(s->mc);
  return rc;
}

static int st_vol_source(void *handle, const char *name, vmh_disk_source_fn fn,
                         void *opaque, uint32_t flags) {
  struct st *s = handle;
  struct vmh_disk_source src = {0};
  struct vol *v;
  const char *dir = mock_common_state_dir(s->mc);
  char *path;
  int rc = mock_common_enter(s->mc, OP_VOL_SOURCE);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(s->host, "vol_source", flags, VMH_SOURCE_LOCAL)) <
          0 ||
      (rc = vmh_check_name(s->host, "volume", name)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(s->host, VMH_EINVAL, "vol_source: no visitor");
  path = malloc(strlen(dir) + strlen(name) + 2);
  if (path == NULL)
    return vmh_fail(s->host, VMH_ENOMEM, "out of memory");
  /* Just a name: no file is made, but a hypervisor test can check it. */
  sprintf(path, "%s/%s", dir, name);
  src.struct_size = sizeof src;
  src.type = VMH_SOURCE_FILE;
  src.path = path;
  mock_common_lock(s->mc);
  v = find_vol(s, name, NULL);
  if (v == NULL) {
    rc = no_vol(s, name);
  } else {
    src.format = v->format;
    if ((flags & VMH_SOURCE_LOCAL) && !v->mapped) {
      v->mapped = 1;
      rc = save(s);
      if (rc < 0)
        v->mapped = 0;
    }
  }
  mock_common_unlock(s->mc);
  if (rc == 0)
    rc = fn(opaque, &src);
  free(path);
  return rc;
}

static int st_vol_unmap(void *handle, const char *name, uint32_t flags) {
  struct st *s = handle;
  struct vol *v;
  int rc = mock_common_enter(s->mc, OP_VOL_UNMAP);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(s->host, "vol_unmap", flags, 0)) < 0 ||
      (rc = vmh_check_name(s->host, "volume", name)) < 0)
    return rc;
  mock_common_lock(s->mc);
  v = find_vol(s, name, NULL);
  if (v == NULL) {
    rc = no_vol(s, name);
  } else if (v->mapped) {
    v->mapped = 0;
    rc = save(s);
    if (rc < 0)
      v->mapped = 1;
  }
  mock_common_unlock(s->mc);
  return rc;
}

static int check_url(struct st *s, const char *name, const char *url) {
  static const char *const schemes[] = {"file://", "http://", "https://"};
  size_t i;
  int rc = mock_check_text(s->host, "image url", url, 4096);

  if (rc < 0)
    return rc;
  for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
    size_t len = strlen(schemes[i]);
    if (strncmp(url, schemes[i], len) == 0 && url[len] != '\0')
      return 0;
  }
  return vmh_fail(s->host, VMH_EINVAL,
                  "image %s: url '%s' must start with file://, http:// or "
                  "https:// and name something",
                  name, url);
}

static int st_image_import(void *handle, const struct vmh_image_spec *spec,
                           uint32_t flags) {
  struct st *s = handle;
  struct image *img = NULL;
  struct vmh_event ev = {0};
  int rc = mock_common_enter(s->mc, OP_IMAGE_IMPORT);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(s->host, "image_import", flags, 0)) < 0 ||
      (rc = mock_check_struct(s->host, "image spec", spec,
                              spec ? spec->struct_size : 0, sizeof *spec)) <
          0 ||
      (rc = vmh_check_name(s->host, "image", spec->name)) < 0 ||
      (rc = check_url(s, spec->name, spec->url)) < 0 ||
      (rc = check_sha256(s, spec->name, spec->sha256)) < 0)
    return rc;
  img = calloc(1, sizeof *img);
  if (img == NULL)
    return vmh_fail(s->host, VMH_ENOMEM, "out of memory");
  if ((rc = mock_dup(s->host, spec->name, &img->name)) < 0) {
    free_image(img);
    return rc;
  }
  memcpy(img->sha256, spec->sha256, SHA256_HEX + 1);
  /* Nothing is downloaded, so the checksum always "matches"; a test that
   * wants a mismatch injects a fault with error: invalid_argument. */
  img->size = s->import_size;
  mock_common_lock(s->mc);
  if (find_image(s, spec->name, NULL)) {
    rc = vmh_fail(s->host, VMH_EEXIST, "pool %s already has an image %s",
                  mock_common_name(s->mc), spec->name);
  } else if ((rc = mock_vec_push(s->host, &s->images, img)) == 0) {
    rc = save(s);
    if (rc < 0)
      ptrvec_remove(&s->images, s->images.n - 1);
    else
      img = NULL;
  }
  mock_common_unlock(s->mc);
  free_image(img);
  if (rc < 0)
    return rc;
  ev.struct_size = sizeof ev;
  ev.type = VMH_EVENT_PROGRESS;
  ev.object = spec->name;
  ev.done = ev.total = s->import_size;
  s->host->emit(s->inst, &ev);
  return 0;
}

struct image_view {
  char name[VMH_NAME_MAX + 1];
  char sha256[SHA256_HEX + 1];
  uint64_t size;
  uint32_t n_users;
};

static int st_image_list(void *handle, vmh_image_info_fn fn, void *opaque,
                         uint32_t flags) {
  struct st *s = handle;
  struct image_view *views = NULL;
  size_t n, i;
  int rc = mock_common_enter(s->mc, OP_IMAGE_LIST);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(s->host, "image_list", flags, 0)) < 0)
    return rc;
  if (fn == NULL)
    return vmh_fail(s->host, VMH_EINVAL, "image_list: no visitor");
  mock_common_lock(s->mc);
  n = s->images.n;
  if (n > 0 && (views = malloc(n * sizeof *views)) == NULL)
    rc = vmh_fail(s->host, VMH_ENOMEM, "out of memory");
  for (i = 0; views && i < n; i++) {
    const struct image *img = s->images.v[i];
    snprintf(views[i].name, sizeof views[i].name, "%s", img->name);
    memcpy(views[i].sha256, img->sha256, sizeof views[i].sha256);
    views[i].size = img->size;
    views[i].n_users = image_users(s, img, NULL);
  }
  mock_common_unlock(s->mc);
  for (i = 0; rc == 0 && i < n; i++) {
    struct vmh_image_info info = {0};
    info.struct_size = sizeof info;
    info.name = views[i].name;
    info.size = views[i].size;
    info.sha256 = views[i].sha256;
    info.n_users = views[i].n_users;
    rc = fn(opaque, &info);
  }
  free(views);
  return rc;
}

static int st_image_delete(void *handle, const char *name, uint32_t flags) {
  struct st *s = handle;
  struct image *img = NULL;
  const char *user = NULL;
  uint32_t users;
  size_t idx;
  int rc = mock_common_enter(s->mc, OP_IMAGE_DELETE);

  if (rc < 0)
    return rc;
  if ((rc = vmh_check_flags(s->host, "image_delete", flags, 0)) < 0 ||
      (rc = vmh_check_name(s->host, "image", name)) < 0)
    return rc;
  mock_common_lock(s->mc);
  img = find_image(s, name, &idx);
  if (img == NULL) {
    rc = vmh_fail(s->host, VMH_ENOENT, "pool %s has no image %s",
                  mock_common_name(s->mc), name);
  } else if ((users = image_users(s, img, &user)) > 0) {
    rc = vmh_fail(s->host, VMH_EBUSY,
                  "image %s backs %" PRIu32
                  " volume(s), %s among them; delete those first",
                  name, users, user);
  } else {
    ptrvec_remove(&s->images, idx);
    rc = save(s);
    if (rc < 0)
      mock_vec_insert(s->host, &s->images, idx, img);
  }
  mock_common_unlock(s->mc);
  if (rc == 0)
    free_image(img);
  return rc;
}

/* ---- Open and close ------------------------------------------------------ */

/* Read `images:` into `out` (checked, not yet part of the pool). */
static int read_images(struct st *s, const struct vmh_config *config,
                       struct ptrvec *out) {
  const struct vmh_host *host = s->host;
  const struct vmh_config *list, *node;
  uint32_t n, i;
  size_t j;
  int rc;

  rc = host->config_list(config, "images", &list, &n, 0);
  if (rc < 0)
    return rc;
  for (i = 0; i < n; i++) {
    const char *name, *sha, *where;
    struct image *img;
    uint64_t size;
    if ((rc = host->config_at(list, i, &node)) < 0 ||
        (rc = host->config_string(node, "name", NULL, &name,
                                  VMH_CFG_REQUIRED)) < 0 ||
        (rc = host->config_size(node, "size", 1, UINT64_MAX, 0, &size,
                                VMH_CFG_REQUIRED)) < 0 ||
        (rc = host->config_string(node, "sha256", NULL, &sha,
                                  VMH_CFG_REQUIRED)) < 0)
      return rc;
    where = host->config_where(node);
    if ((rc = vmh_check_name(host, "image", name)) < 0)
      return vmh_fail(host, rc,
                      "%s: images[%" PRIu32
                      "]: name '%s' must match " VMH_NAME_RULE,
                      where, i, name);
    if (!valid_sha256(sha))
      return vmh_fail(host, VMH_EINVAL,
                      "%s: images[%" PRIu32
                      "]: sha256 must be 64 lower-case hex digits",
                      where, i);
    for (j = 0; j < out->n; j++)
      if (strcmp(((struct image *)out->v[j])->name, name) == 0)
        return vmh_fail(host, VMH_EINVAL,
                        "%s: images[%" PRIu32 "]: image %s is listed twice",
                        where, i, name);
    img = calloc(1, sizeof *img);
    if (img == NULL)
      return vmh_fail(host, VMH_ENOMEM, "out of memory");
    img->size = size;
    memcpy(img->sha256, sha, SHA256_HEX + 1);
    if ((rc = mock_dup(host, name, &img->name)) < 0 ||
        (rc = mock_vec_push(host, out, img)) < 0) {
      free_image(img);
      return rc;
    }
  }
  return 0;
}

static void free_images(struct ptrvec *vec) {
  size_t i;

  for (i = 0; i < vec->n; i++)
    free_image(vec->v[i]);
  ptrvec_free(vec);
}

static void st_close(void *handle) {
  struct st *s = handle;
  size_t i;

  if (s == NULL)
    return;
  for (i = 0; i < s->vols.n; i++)
    free_vol(s->vols.v[i]);
  ptrvec_free(&s->vols);
  free_images(&s->images);
  mock_common_close(s->mc);
  free(s->url);
  free(s);
}

static int st_open(const struct vmh_host *host, const struct vmh_instance *inst,
                   const struct vmh_config *config, void **ret_handle,
                   uint32_t flags) {
  struct ptrvec seed = {0};
  struct st *s;
  const char *format;
  int rc, found = 0;

  s = calloc(1, sizeof *s);
  if (s == NULL)
    return vmh_fail(host, VMH_ENOMEM, "out of memory");
  s->host = host;
  s->inst = inst;
  rc = mock_common_open(host, inst, config, "storage", op_names, flags, &s->mc);
  if (rc < 0) {
    free(s);
    return rc;
  }
  if ((rc = host->config_size(config, "capacity", 1, UINT64_MAX,
                              UINT64_C(1) << 40, &s->capacity, 0)) < 0 ||
      (rc = host->config_string(config, "default_format", "qcow2", &format,
                                0)) < 0 ||
      (rc = host->config_int(config, "max_volumes", 1, 1000000, 4096,
                             &s->max_volumes, 0)) < 0 ||
      (rc = host->config_size(config, "import_size", 1, UINT64_MAX,
                              UINT64_C(1) << 30, &s->import_size, 0)) < 0 ||
      (rc = host->config_string(config, "message", NULL, &s->message, 0)) < 0)
    goto fail;
  if ((s->url = url_path("file://", mock_common_state_dir(s->mc))) == NULL) {
    rc = vmh_fail(host, VMH_ENOMEM, "out of memory");
    goto fail;
  }
  if (strcmp(format, "raw") == 0) {
    s->default_format = VMH_FORMAT_RAW;
  } else if (strcmp(format, "qcow2") == 0) {
    s->default_format = VMH_FORMAT_QCOW2;
  } else {
    rc = vmh_fail(host, VMH_EINVAL, "default_format '%s' is not raw or qcow2",
                  format);
    goto fail;
  }

  rc = read_images(s, config, &seed);
  if (rc < 0)
    goto fail;

  if (!mock_common_check_only(s->mc)) {
    rc = mock_common_load(s->mc, load_record, s, &found);
    if (rc < 0)
      goto fail;
    /* The state file, when there is one, is the whole truth: images only
     * seeds a fresh pool, so that an image the test deleted stays gone
     * across a restart. */
    if (!found) {
      s->images = seed;
      memset(&seed, 0, sizeof seed);
    } else if (seed.n > 0) {
      host->log(inst, VMH_LOG_INFO,
                "state file loaded: images in the config are not added "
                "again");
    }
    rc = mock_common_enter(s->mc, OP_OPEN);
    if (rc < 0)
      goto fail;
    if (s->used > s->capacity)
      host->log(inst, VMH_LOG_WARN,
                "volumes hold %" PRIu64 " bytes, more than capacity %" PRIu64,
                s->used, s->capacity);
  }
  free_images(&seed);
  *ret_handle = s;
  return 0;
fail:
  free_images(&seed);
  st_close(s);
  return rc;
}

static struct vmh_storage_ops ops = {
    .open = st_open,
    .close = st_close,
    .health = st_health,
    .pool_info = st_pool_info,
    .vol_list = st_vol_list,
    .vol_get = st_vol_get,
    .vol_create = st_vol_create,
    .vol_delete = st_vol_delete,
    .vol_resize = st_vol_resize,
    .vol_source = st_vol_source,
    .vol_unmap = st_vol_unmap,
    .image_import = st_image_import,
    .image_list = st_image_list,
    .image_delete = st_image_delete,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_STORAGE,
    .name = "mock",
    .version = VMH_PACKAGE_VERSION,
    .description = "in-memory storage pool for test harnesses",
    .storage = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
