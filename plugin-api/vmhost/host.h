/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI — services the core offers every plugin.
 *
 * The core passes `const struct vmh_host *` to a plugin's load() and to every
 * open(); the table lives as long as the process.  A plugin links against no
 * vmhost library: this table is the only way into the core.
 */
#ifndef VMHOST_HOST_H
#define VMHOST_HOST_H

#include <stdarg.h>
#include <vmhost/common.h>
#include <vmhost/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An instance as the core knows it: handed to open(), passed back to the
 * host services so that logs, events and metrics name the instance.  Valid
 * until close() returns. */
struct vmh_instance;

/* A node of the read-only config tree: a map, a list or a scalar.  Nodes and
 * the strings read from them live as long as the instance. */
struct vmh_config;

/* Flags of the config accessors. */
#define VMH_CFG_REQUIRED (UINT32_C(1) << 0) /* missing key is an error */

/* Called once per key of a map by config_keys(). */
typedef int (*vmh_config_key_fn)(void *opaque, const char *key,
                                 const struct vmh_config *value);

struct vmh_host {
  uint32_t struct_size;
  uint32_t abi_major; /* the core's ABI */
  uint32_t abi_minor;
  const char *version; /* vmhostd's version string */

  /* Log a line naming the instance (NULL: the plugin as a whole is not
   * known; the core logs under "core").  Lines above the instance's level are
   * dropped cheaply.  Thread-safe. */
  void (*log)(const struct vmh_instance *inst, int level, const char *fmt, ...)
      VMH_PRINTF(3, 4);

  /* Set the message of the error the current operation is about to return.
   * Thread-local: call it on the thread that returns the error.  The message
   * should say what to fix. */
  void (*error)(const char *fmt, ...) VMH_PRINTF(1, 2);

  /* Config accessors.  `map` is the instance's config (given to open()) or a
   * node reached from it.  With key == NULL the accessor reads `map` itself
   * (a list element, say).  Every key of an instance's config must be read
   * by the time open() returns: a key nobody read is a typo, and the core
   * refuses the config naming file, line, key and plugin.
   *
   * Each returns 0 and sets *ret, or a negative VMH_E* code with the error
   * message set (wrong type, out of range, missing with VMH_CFG_REQUIRED) and
   * leaves *ret untouched.  A missing key without VMH_CFG_REQUIRED sets *ret
   * to the default.  Strings are borrowed and live as long as the instance. */
  int (*config_string)(const struct vmh_config *map, const char *key,
                       const char *def, const char **ret, uint32_t flags);
  int (*config_int)(const struct vmh_config *map, const char *key, int64_t min,
                    int64_t max, int64_t def, int64_t *ret, uint32_t flags);
  /* A size: a plain number of bytes or one with a unit (K, M, G, T; KiB, MiB,
   * GiB, TiB are the same powers of 1024; KB, MB, GB, TB powers of 1000). */
  int (*config_size)(const struct vmh_config *map, const char *key,
                     uint64_t min, uint64_t max, uint64_t def, uint64_t *ret,
                     uint32_t flags);
  /* true/false, yes/no, on/off. */
  int (*config_bool)(const struct vmh_config *map, const char *key, int def,
                     int *ret, uint32_t flags);
  /* A nested map; missing: *ret = NULL. */
  int (*config_map)(const struct vmh_config *map, const char *key,
                    const struct vmh_config **ret, uint32_t flags);
  /* A list; missing: *ret = NULL, *ret_count = 0.  Elements by config_at. */
  int (*config_list)(const struct vmh_config *map, const char *key,
                     const struct vmh_config **ret, uint32_t *ret_count,
                     uint32_t flags);
  int (*config_at)(const struct vmh_config *list, uint32_t index,
                   const struct vmh_config **ret);
  /* Visit every key of a map in file order (marks them all read).  A
   * non-zero return from fn stops the walk and is returned.  The key and
   * node passed to fn live as long as the instance. */
  int (*config_keys)(const struct vmh_config *map, vmh_config_key_fn fn,
                     void *opaque);
  /* Where a node stands, for messages: "file:line:column".  Does not mark
   * anything read. */
  const char *(*config_where)(const struct vmh_config *node);

  /* Publish an event (VM lifecycle, progress …).  The core copies it before
   * returning; callable from any thread, including the plugin's own. */
  void (*emit)(const struct vmh_instance *inst, const struct vmh_event *ev);

  /* Metrics, exposed as vmhost_plugin_<name>{instance="…"}.  `name` is
   * [a-z0-9_]+; counters only grow, gauges are set. */
  void (*counter_add)(const struct vmh_instance *inst, const char *name,
                      uint64_t delta);
  void (*gauge_set)(const struct vmh_instance *inst, const char *name,
                    int64_t value);

  /* The instance's own directory under state_dir (created by the core,
   * mode 0700), for whatever the plugin must keep across restarts.  In
   * check-only mode (VMH_OPEN_CHECK_ONLY) the core has not made it: a
   * plugin may not write there, and it answers NULL. */
  const char *(*state_dir)(const struct vmh_instance *inst);
  /* The instance's name as the config gives it. */
  const char *(*instance_name)(const struct vmh_instance *inst);

#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2.  error() with a va_list, for a plugin's own error helper
   * (vmh_fail below is one). */
  void (*verror)(const char *fmt, va_list ap) VMH_PRINTF(1, 0);
  /* A path: config_string, then resolved against the directory of the
   * config file the value (or, for the default, `map`) stands in, as every
   * relative path of the config is.  Absolute paths are kept as written,
   * "./x" becomes "x", ".." is kept (the path need not exist).  An empty
   * value is refused.  Missing and def NULL: *ret = NULL.  The string lives
   * as long as the instance. */
  int (*config_path)(const struct vmh_config *map, const char *key,
                     const char *def, const char **ret, uint32_t flags);
  /* Where the value of `key` in `map` stands ("file:line:column"), for a
   * message about that one value, without marking anything read (unlike
   * config_keys).  A missing key, or a map that is NULL or not a map, gives
   * the position of `map` itself. */
  const char *(*config_key_where)(const struct vmh_config *map,
                                  const char *key);
  /* ABI 1.2.  Publish the instance's status document: a JSON object (as
   * text, copied) that the API's front-ends serve as they are told to,
   * e.g. the cluster plugin's at GET /api/v1/cluster
   * (vmh_core.plugin_status).  Replaces the previous one; NULL withdraws
   * it.  Text that is not a JSON object is dropped with a warning.  Any
   * thread; cheap enough for every change of state. */
  void (*status_set)(const struct vmh_instance *inst, const char *json);
  /* ABI 1.2.  Add the instance's own metric families to every scrape
   * (GET /metrics, StreamMetrics), for metrics that counter_add and
   * gauge_set cannot say (labels, histograms; the front-ends' per-route
   * and per-method series).  On each scrape the core calls
   * fn(opaque, write, wopaque) on the scraping thread, concurrently with
   * the plugin's own threads; fn writes whole families in the Prometheus
   * text format (version 0.0.4: "# HELP", "# TYPE", then the samples)
   * through write(wopaque, text, len), as many times as it likes.  Label
   * values must be escaped (\\, \", \n).  The same family from several
   * instances is merged under one HELP and TYPE (the first one's), so
   * series should carry the instance's name as a label.  Names must not
   * be the core's (docs/metrics.md); lines before any "# TYPE" are
   * dropped.  fn == NULL withdraws it; the core stops calling fn before
   * the instance's close() and once metrics_source returns after a
   * withdrawal.  One per instance: a second call replaces the first. */
  void (*metrics_source)(const struct vmh_instance *inst,
                         void (*fn)(void *opaque,
                                    void (*write)(void *wopaque,
                                                  const char *text, size_t len),
                                    void *wopaque),
                         void *opaque);
#endif
};

#if VMH_ABI_TARGET_MINOR >= 2
/* Set the operation's error message and return `code`, so that a failure
 * is one line: return vmh_fail(host, VMH_ENOENT, "no volume %s", name); */
static inline int vmh_fail(const struct vmh_host *host, int code,
                           const char *fmt, ...) VMH_PRINTF(3, 4);
static inline int vmh_fail(const struct vmh_host *host, int code,
                           const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  host->verror(fmt, ap);
  va_end(ap);
  return code;
}

/* Refuse flag bits outside `known` (VMH_EINVAL, message "OP: unknown flags
 * 0x…"); 0 when there are none.  Every operation takes flags: an unknown bit
 * is a caller newer than the plugin, and must not be ignored silently. */
static inline int vmh_check_flags(const struct vmh_host *host, const char *op,
                                  uint32_t flags, uint32_t known) {
  if (flags & ~known)
    return vmh_fail(host, VMH_EINVAL, "%s: unknown flags 0x%lx", op,
                    (unsigned long)(flags & ~known));
  return 0;
}

/* Refuse a name that breaks the name rule (vmh_name_valid) with VMH_EINVAL
 * and a message saying what `what` ("volume", "snapshot" …) must look
 * like; 0 when it is a name. */
static inline int vmh_check_name(const struct vmh_host *host, const char *what,
                                 const char *name) {
  if (vmh_name_valid(name))
    return 0;
  return vmh_fail(host, VMH_EINVAL,
                  "%s name '%s' is not a name: 1 to %d of a-z, 0-9, '.', '_' "
                  "and '-', starting with a letter or a digit",
                  what, name ? name : "", VMH_NAME_MAX);
}

/* vmh_check_flags naming the calling function: `if ((rc =
 * VMH_CHECK_FLAGS(host, flags, VMH_RESIZE_SHRINK)) < 0) return rc;` */
#define VMH_CHECK_FLAGS(host, flags, known) \
  vmh_check_flags((host), __func__, (flags), (known))
#endif

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_HOST_H */
