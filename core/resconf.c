/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The resources: section of vmhostd.yaml: see resconf.h. */
#include <config.h>

#include "resconf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conftree.h"
#include "error.h"

/* ---- config ------------------------------------------------------------- */

static const char *const keys[] = {"reserved_cpus",     "reserved_memory",
                                   "reserved_disk",     "cpu_overcommit",
                                   "memory_overcommit", NULL};

/* A ratio written as a plain decimal (16, 1.5, 0.25), to the thousandth. */
static int read_ratio(const struct vmh_config *map, const char *key,
                      uint32_t def, uint32_t *ret) {
  const char *s;
  int r = config_string(map, key, NULL, &s, 0);
  if (r < 0)
    return r;
  if (!s) {
    *ret = def;
    return 0;
  }
  uint64_t milli = 0;
  size_t i = 0, frac = 0;
  bool ok = s[0] >= '0' && s[0] <= '9';
  for (; ok && s[i] >= '0' && s[i] <= '9' && milli <= MAX_MILLI; i++)
    milli = milli * 10 + (uint64_t)(s[i] - '0') * 1000;
  if (ok && s[i] == '.') {
    ok = s[++i] >= '0' && s[i] <= '9';
    for (uint64_t unit = 100; ok && s[i] >= '0' && s[i] <= '9'; i++, frac++)
      if (unit) {
        milli += (uint64_t)(s[i] - '0') * unit;
        unit /= 10;
      } else if (s[i] != '0') {
        ok = false; /* finer than a thousandth */
      }
  }
  if (!ok || s[i] || milli < MIN_MILLI || milli > MAX_MILLI)
    return error_code(VMH_EINVAL,
                      "%s: key '%s': expected a ratio from 0.1 to 100 (a plain "
                      "decimal such as 1.5), found '%.40s'",
                      config_key_where(map, key), key, s);
  *ret = (uint32_t)milli;
  return 0;
}

static int pool_entry(void *opaque, const char *key,
                      const struct vmh_config *value) {
  struct resources_conf *c = opaque;
  uint64_t bytes;
  int r = config_size(value, NULL, 0, UINT64_MAX, 0, &bytes, VMH_CFG_REQUIRED);
  if (r < 0)
    return r;
  struct pool_reserve *v = realloc(c->pools, (c->n_pools + 1) * sizeof *v);
  if (!v)
    return error_code(VMH_ENOMEM, "out of memory");
  c->pools = v;
  c->pools[c->n_pools++] =
      (struct pool_reserve){.pool = key, .node = value, .bytes = bytes};
  return 0;
}

/* reserved_disk: a size for every pool, or a map of pool name to size. */
static int read_disk(const struct vmh_config *map, struct resources_conf *c) {
  const struct vmh_config *node = config_lookup(map, "reserved_disk");
  if (!node)
    return 0;
  const struct vmh_config *pools;
  if (config_map(map, "reserved_disk", &pools, 0) == 0)
    return config_keys(pools, pool_entry, c);
  error_clear();
  c->reserved_disk_set = true;
  return config_size(map, "reserved_disk", 0, UINT64_MAX, 0, &c->reserved_disk,
                     0);
}

int resources_conf_read(const struct vmh_config *map,
                        struct resources_conf *ret) {
  struct resources_conf c = {.reserved_disk = DEFAULT_RESERVED_DISK,
                             .reserved_memory = DEFAULT_RESERVED_MEMORY};
  int64_t cpus;
  int r;
  c.reserved_memory_set = config_lookup(map, "reserved_memory") != NULL;
  if ((r = config_int(map, "reserved_cpus", 0, 65536, DEFAULT_RESERVED_CPUS,
                      &cpus, 0)) < 0 ||
      (r = config_size(map, "reserved_memory", 0, UINT64_MAX,
                       DEFAULT_RESERVED_MEMORY, &c.reserved_memory, 0)) < 0 ||
      (r = read_disk(map, &c)) < 0 ||
      (r = read_ratio(map, "cpu_overcommit", DEFAULT_CPU_MILLI, &c.cpu_milli)) <
          0 ||
      (r = read_ratio(map, "memory_overcommit", DEFAULT_MEMORY_MILLI,
                      &c.memory_milli)) < 0)
    goto fail;
  c.reserved_cpus = (uint64_t)cpus;
  const struct vmh_config *u = map ? config_unread(map) : NULL;
  if (u) {
    r = error_code(VMH_EINVAL,
                   "%s: unknown key '%s' under resources (expected one of: "
                   "%s, %s, %s, %s, %s)",
                   config_where(u), config_key_name(u), keys[0], keys[1],
                   keys[2], keys[3], keys[4]);
    goto fail;
  }
  *ret = c;
  return 0;

fail:
  resources_conf_free(&c);
  return r;
}

void resources_conf_free(struct resources_conf *c) {
  free(c->pools);
  memset(c, 0, sizeof *c);
}
