/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The resources: section of vmhostd.yaml (admission control, resources.h):
 *
 *   resources:
 *     reserved_cpus: 2         # 0..65536
 *     reserved_memory: 4G      # default: 4 GiB, at most a quarter of the host
 *     reserved_disk: 50GB      # for each pool, or {POOL: SIZE, ...}; default:
 *                              # 50 GB, at most a tenth of the pool, none in
 *                              # a pool under 10 GiB
 *     cpu_overcommit: 16       # 0.1..100
 *     memory_overcommit: 1.0   # 0.1..100
 */
#ifndef VMHOST_CORE_RESCONF_H
#define VMHOST_CORE_RESCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <vmhost/host.h>

#define GIB (UINT64_C(1) << 30)
#define DEFAULT_RESERVED_CPUS 2
#define DEFAULT_RESERVED_MEMORY (4 * GIB)
#define DEFAULT_RESERVED_DISK (UINT64_C(50) * 1000 * 1000 * 1000)
#define DEFAULT_CPU_MILLI 16000
#define DEFAULT_MEMORY_MILLI 1000
#define MIN_MILLI 100
#define MAX_MILLI 100000
#define MIN_POOL_FOR_DEFAULT (10 * GIB)

/* A pool named in a map under reserved_disk (borrowed from the tree). */
struct pool_reserve {
  const char *pool;
  const struct vmh_config *node; /* for messages */
  uint64_t bytes;
};

struct resources_conf {
  uint64_t reserved_cpus;
  uint64_t reserved_memory;
  bool reserved_memory_set;
  uint64_t reserved_disk; /* every pool not in pools[] */
  bool reserved_disk_set;
  struct pool_reserve *pools;
  size_t n_pools;
  uint32_t cpu_milli, memory_milli; /* overcommit × 1000 */
};

/* Read the resources: map (NULL: all defaults) into *ret.  Returns 0 or
 * VMH_EINVAL with "FILE:L:C: …" set. */
int resources_conf_read(const struct vmh_config *map,
                        struct resources_conf *ret);
void resources_conf_free(struct resources_conf *c);

#endif
