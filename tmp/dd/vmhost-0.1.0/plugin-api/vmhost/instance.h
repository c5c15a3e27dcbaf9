/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI — the operations every kind of plugin shares.
 *
 * Every ops table of every kind starts with the same four fields, in this
 * order: struct_size, open, close, health (VMH_INSTANCE_OPS below).
 *
 * Each instance is opened twice when vmhostd starts: first with
 * VMH_OPEN_CHECK_ONLY (every instance's config is checked before anything
 * starts) and closed at once, then for real.  vmhostd --check-config does
 * only the first.
 */
#ifndef VMHOST_INSTANCE_H
#define VMHOST_INSTANCE_H

#include <vmhost/common.h>
#include <vmhost/host.h>

#ifdef __cplusplus
extern "C" {
#endif

/* open: make an instance from its config.  Read every key of `config`
 * through the host's accessors (a key left unread is refused as a typo).
 * On success store the plugin's handle in *ret_handle and return 0; the core
 * passes it back to every operation.  On failure release everything made so
 * far, set the message and return a VMH_E* code; *ret_handle is untouched
 * and close() is not called.  `inst` stays valid until close() returns. */
/* open flag: only read and check the config (at every start, and for
 * vmhostd --check-config): connect to nothing, create nothing, write
 * nothing; host->state_dir() answers NULL (the core has not made it);
 * close() follows at once. */
#define VMH_OPEN_CHECK_ONLY (UINT32_C(1) << 0)

typedef int (*vmh_open_fn)(const struct vmh_host *host,
                           const struct vmh_instance *inst,
                           const struct vmh_config *config, void **ret_handle,
                           uint32_t flags);

/* close: release the instance.  Called once, after the last operation on
 * the handle has returned.  It does not touch what it manages (VMs,
 * volumes, ports stay as they are). */
typedef void (*vmh_close_fn)(void *handle);

/* health: 0 when the instance can serve; else a VMH_E* code and a message
 * saying what is wrong (backend unreachable, pool full …).  Optional. */
typedef int (*vmh_health_fn)(void *handle, uint32_t flags);

#define VMH_INSTANCE_OPS \
  uint32_t struct_size;  \
  vmh_open_fn open;      \
  vmh_close_fn close;    \
  vmh_health_fn health

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_INSTANCE_H */
