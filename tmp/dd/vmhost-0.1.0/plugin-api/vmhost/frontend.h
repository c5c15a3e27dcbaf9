/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI — front-end plugins.
 *
 * A front-end serves an API (REST, gRPC, the guest channel) on its own I/O
 * threads and calls the core through struct vmh_core, whose operations are
 * asynchronous: a front-end never blocks its I/O thread on a backend.
 */
#ifndef VMHOST_FRONTEND_H
#define VMHOST_FRONTEND_H

#include <vmhost/core.h>
#include <vmhost/instance.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vmh_frontend_ops {
  VMH_INSTANCE_OPS;

  /* Required.  Start serving: bind listeners, start threads, return.  The
   * core table lives as long as the process.  On failure nothing may be left
   * listening or running. */
  int (*start)(void *handle, const struct vmh_core *core, uint32_t flags);

  /* Required.  Stop accepting, finish or cancel in-flight requests within
   * the core's drain deadline, join threads, return.  After it returns the
   * front-end makes no more core calls. */
  void (*stop)(void *handle, uint32_t flags);
};

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_FRONTEND_H */
