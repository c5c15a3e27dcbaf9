/* vmhost plugin ABI — storage plugins.
 *
 * A storage instance is a pool of volumes.  Volume names are
 * [a-z0-9][a-z0-9._-]{0,62}; the core validates names before calling, the
 * plugin validates them again where a bad name could escape the pool.  The
 * core knows which VM uses which volume and refuses to delete a volume in use
 * before calling vol_delete.
 */
#ifndef VMHOST_STORAGE_H
#define VMHOST_STORAGE_H

#include <vmhost/instance.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*vmh_pool_info_fn)(void *opaque, const struct vmh_pool_info *p);
typedef int (*vmh_volume_info_fn)(void *opaque,
                                  const struct vmh_volume_info *vol);
typedef int (*vmh_disk_source_fn)(void *opaque,
                                  const struct vmh_disk_source *src);
typedef int (*vmh_image_info_fn)(void *opaque,
                                 const struct vmh_image_info *img);

/* Flags. */
#define VMH_RESIZE_SHRINK (UINT32_C(1) << 0) /* allow making it smaller */
#define VMH_SOURCE_LOCAL (UINT32_C(1) << 0)  /* map to a local path/device */

struct vmh_storage_ops {
  VMH_INSTANCE_OPS;

  /* Required.  Pool capacity and use; the core fills name and type. */
  int (*pool_info)(void *handle, vmh_pool_info_fn fn, void *opaque,
                   uint32_t flags);

  /* Required.  Volumes. */
  int (*vol_list)(void *handle, vmh_volume_info_fn fn, void *opaque,
                  uint32_t flags);
  int (*vol_get)(void *handle, const char *name, vmh_volume_info_fn fn,
                 void *opaque, uint32_t flags);
  /* Create atomically: the volume appears under its name only when
   * complete; on failure nothing remains.  Exists → VMH_EEXIST; would
   * exceed the pool → VMH_ENOSPC; unknown base image → VMH_ENOENT. */
  int (*vol_create)(void *handle, const struct vmh_volume_spec *spec,
                    uint32_t flags);
  /* Unknown → VMH_ENOENT (the core treats that as done when deleting). */
  int (*vol_delete)(void *handle, const char *name, uint32_t flags);
  /* Optional.  Grow; shrink only with VMH_RESIZE_SHRINK and where the
   * format allows it (else VMH_ENOTSUP / VMH_EINVAL). */
  int (*vol_resize)(void *handle, const char *name, uint64_t size,
                    uint32_t flags);

  /* Required.  The disk source a hypervisor opens the volume through.  With
   * VMH_SOURCE_LOCAL the plugin must give a FILE or BLOCK source (mapping a
   * network volume locally if it can; VMH_ENOTSUP if it cannot); the core
   * calls vol_unmap when the VM no longer needs it. */
  int (*vol_source)(void *handle, const char *name, vmh_disk_source_fn fn,
                    void *opaque, uint32_t flags);
  /* Optional.  Undo a VMH_SOURCE_LOCAL mapping; not mapped → 0. */
  int (*vol_unmap)(void *handle, const char *name, uint32_t flags);

#if VMH_ABI_TARGET_MINOR >= 1
  /* Optional (ABI 1.1).  Verified base-image cache.  import downloads url,
   * checks sha256 before the image can be used (mismatch → VMH_EINVAL and
   * nothing kept) and may emit VMH_EVENT_PROGRESS.  delete while a volume is
   * backed by the image → VMH_EBUSY. */
  int (*image_import)(void *handle, const struct vmh_image_spec *spec,
                      uint32_t flags);
  int (*image_list)(void *handle, vmh_image_info_fn fn, void *opaque,
                    uint32_t flags);
  int (*image_delete)(void *handle, const char *name, uint32_t flags);
#endif
};

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_STORAGE_H */
