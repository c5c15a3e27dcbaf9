/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI — storage plugins.
 *
 * A storage instance is a pool of volumes.  Volume names are
 * [a-z0-9][a-z0-9._-]{0,62}; the core validates names before calling, the
 * plugin validates them again where a bad name could escape the pool
 * (vmh_check_name in <vmhost/host.h>).  The core knows which VM uses which
 * volume and refuses to delete a volume in use before calling vol_delete.
 *
 * Ordering and concurrency, on top of the plugin's thread model: the core
 * orders the API's volume operations (create, resize, delete, get after
 * them) per volume, so two of them on one volume never overlap; it runs the
 * volume steps of a VM's create, delete, disk attach and detach (vol_create,
 * vol_source, vol_unmap, vol_delete) in that VM's order instead.  A volume
 * step of a VM may therefore overlap an API operation on the same volume
 * (the core checks "in use" in both orders, so it is refused, not lost),
 * and pool_info, vol_list and image_* are not ordered at all.  A plugin with
 * VMH_THREAD_PARALLEL must make each operation safe against all others.
 *
 * Visitors (vmh_*_fn): called with a struct valid only during the call
 * (copy what you keep); a non-zero return stops the operation, which
 * returns that value.
 *
 * Flags: each operation has its own flag namespace; a bit means something
 * only to the operations named beside it.
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

/* Event reasons (host->emit, VMH_EVENT_PLUGIN, object: the volume's name,
 * message: what happened).  A pool that finds a volume gone while a VM uses
 * it (a LUN dropped by the array, say) keeps it and emits
 * VMH_REASON_VOLUME_VANISHED, then VMH_REASON_VOLUME_BACK if it returns.
 * The core reports it on each VM whose disk uses the volume: the VM's error
 * says so until the volume is back, and a VMH_EVENT_VM_STATE with the same
 * reason names the VM. */
#define VMH_REASON_VOLUME_VANISHED "volume-vanished"
#define VMH_REASON_VOLUME_BACK "volume-back"

/* vol_resize flag: allow making it smaller. */
#define VMH_RESIZE_SHRINK (UINT32_C(1) << 0)
/* vol_source flag: map to a local path/device (the same bit as
 * VMH_RESIZE_SHRINK: another operation's namespace). */
#define VMH_SOURCE_LOCAL (UINT32_C(1) << 0)

struct vmh_storage_ops {
  VMH_INSTANCE_OPS;

  /* Required.  Pool capacity and use; the core fills name and type. */
  int (*pool_info)(void *handle, vmh_pool_info_fn fn, void *opaque,
                   uint32_t flags);

  /* Required.  Volumes. */
  int (*vol_list)(void *handle, vmh_volume_info_fn fn, void *opaque,
                  uint32_t flags);
  /* vol_get: fn once with the volume; unknown → VMH_ENOENT (with a
   * message naming it) and fn is not called. */
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
  /* Optional.  The VM no longer uses the volume (VM deleted, disk
   * detached, create rolled back): undo a VMH_SOURCE_LOCAL mapping, or
   * release a volume the pool hands to one VM at a time; called mapped or
   * not (nothing to undo → 0). */
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
