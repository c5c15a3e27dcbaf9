/* SPDX-License-Identifier: MIT */
/* vmhost plugin ABI — common definitions.
 *
 * Versioning: a plugin records the ABI it was built against (major, minor).
 * The core accepts a plugin whose major equals its own and whose minor is not
 * newer.  Every table and every struct that crosses the boundary starts with
 * its size, and fields are only ever appended: the core copies
 * min(plugin size, core size) bytes and zero-fills the rest, so an operation a
 * plugin does not have reads as NULL, which the core answers with
 * VMH_ENOTSUP.
 *
 * A plugin may build against an older minor by defining VMH_ABI_TARGET_MINOR
 * before including any vmhost header: fields appended after that minor are
 * then left out of the structs, exactly as they were when it was current.
 *
 * Minor history (fields appended; nothing ever removed or reordered):
 *   1.0  initial ABI.
 *   1.1  storage: image_import, image_list, image_delete (verified base-image
 *        cache); hypervisor: attach_disk, detach_disk (hot-plug); network:
 *        port_addresses (guest addresses from DHCP leases); VM spec:
 *        network_config (cloud-init); core: vm_generation.
 *   1.2  host: verror, config_path, config_key_where; core: error_message;
 *        pool info: message; volume info: location.  Events (no layout
 *        change): VMH_REASON_VOLUME_VANISHED, VMH_REASON_VOLUME_BACK,
 *        VMH_REASON_AGENT_CONNECTED, _DISCONNECTED, _CUT_OFF.
 *        Error VMH_ECAPACITY (admission control), VMH_ERROR_LOWEST;
 *        hypervisor caps:
 *        host_cpus, host_memory; core: host_resources.
 *        Header helpers (no layout change): vmh_name_valid, VMH_HAS_FIELD
 *        (here), vmh_fail, vmh_check_flags (host.h).
 */
#ifndef VMHOST_COMMON_H
#define VMHOST_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMH_ABI_MAJOR 1
#define VMH_ABI_MINOR 2

#ifndef VMH_ABI_TARGET_MINOR
#define VMH_ABI_TARGET_MINOR VMH_ABI_MINOR
#endif
#if VMH_ABI_TARGET_MINOR > VMH_ABI_MINOR || VMH_ABI_TARGET_MINOR < 0
#error "VMH_ABI_TARGET_MINOR is newer than these headers"
#endif

#if defined(__GNUC__) || defined(__clang__)
#define VMH_PRINTF(fmt, args) __attribute__((__format__(__printf__, fmt, args)))
#define VMH_EXPORT __attribute__((__visibility__("default")))
#else
#define VMH_PRINTF(fmt, args)
#define VMH_EXPORT
#endif

/* Error codes.  Every operation returns 0 or one of these (negative) and, on
 * failure, sets a message with vmh_host.error().  The core maps each code to
 * an HTTP status and a gRPC status, as noted beside each code; the REST
 * error code is the upper-case form of vmh_core.error_name(). */
enum vmh_error {
  VMH_OK = 0,
  VMH_EINVAL = -1, /* bad argument or config: 400 / INVALID_ARGUMENT */
  VMH_ENOENT = -2, /* no such object: 404 / NOT_FOUND */
  VMH_EEXIST = -3, /* already exists: 409 / ALREADY_EXISTS */
  VMH_EBUSY = -4,  /* in use by something else: 409 / FAILED_PRECONDITION */
  VMH_ESTATE = -5, /* illegal in the current state: 409 / FAILED_PRECONDITION */
  VMH_ENOSPC = -6, /* out of space or capacity: 507 / RESOURCE_EXHAUSTED */
  VMH_ENOTSUP = -7,   /* operation not supported: 501 / UNIMPLEMENTED */
  VMH_EPERM = -8,     /* not allowed: 403 / PERMISSION_DENIED */
  VMH_ETIMEDOUT = -9, /* deadline passed: 504 / DEADLINE_EXCEEDED */
  VMH_EIO = -10,      /* backend failed or unreachable: 502 / UNAVAILABLE */
  VMH_ENOMEM = -11,   /* out of memory: 503 / RESOURCE_EXHAUSTED */
  VMH_EAGAIN = -12,   /* try again later (overloaded): 503 / UNAVAILABLE */
  VMH_ELIMIT = -13, /* rate or count limit reached: 429 / RESOURCE_EXHAUSTED */
  VMH_ECANCELED = -14, /* cancelled (shutdown, client gone): 499 / CANCELLED */
  VMH_EINTERNAL = -15, /* bug or unexpected failure: 500 / INTERNAL */
#if VMH_ABI_TARGET_MINOR >= 2
  /* ABI 1.2: the host's admission limit (resources: reserved and overcommit
   * of CPUs, memory, pool space) would be crossed: 409 / RESOURCE_EXHAUSTED */
  VMH_ECAPACITY = -16,
#endif
};
/* The lowest code of ABI 1.0 and 1.1; kept as it was (a plugin built
 * against those minors never sees a lower one). */
#define VMH_ERROR_MIN VMH_EINTERNAL
#if VMH_ABI_TARGET_MINOR >= 2
/* ABI 1.2: the lowest code of the minor targeted; a core or front-end
 * that maps every code uses this one. */
#define VMH_ERROR_LOWEST VMH_ECAPACITY
#endif

/* Plugin kinds. */
enum vmh_kind {
  VMH_KIND_HYPERVISOR = 1,
  VMH_KIND_STORAGE = 2,
  VMH_KIND_NETWORK = 3,
  VMH_KIND_FRONTEND = 4,
};

/* Thread models: what the core enforces around a plugin's operations.  The
 * zero value is the safest, so a plugin that says nothing is serialized. */
enum vmh_thread_model {
  VMH_THREAD_SERIALIZE_ALL = 0,      /* one call at a time, all instances */
  VMH_THREAD_SERIALIZE_INSTANCE = 1, /* one call at a time per instance */
  VMH_THREAD_PARALLEL = 2,           /* any number of concurrent calls */
};

/* Log levels. */
enum vmh_log_level {
  VMH_LOG_ERROR = 0,
  VMH_LOG_WARN = 1,
  VMH_LOG_INFO = 2,
  VMH_LOG_DEBUG = 3,
};

/* Limits on names that cross the boundary (bytes, without the NUL). */
#define VMH_NAME_MAX 63
#define VMH_ID_LEN 36 /* a UUID in its canonical text form */

/* The one rule for the names of pools, volumes, images, snapshots, networks
 * and instances: [a-z0-9][a-z0-9._-]{0,62}.  Safe as a file name (no '/',
 * never "." or ".."), in a URL path segment and in a metrics label.  The
 * core checks names against it before calling a plugin, and front-ends
 * before calling the core.  Returns 1 when s (may be NULL) is such a name;
 * VMH_NAME_RULE spells the rule for messages. */
#define VMH_NAME_RULE "[a-z0-9][a-z0-9._-]{0,62}"
static inline int vmh_name_valid(const char *s) {
  size_t i;
  if (s == NULL)
    return 0;
  for (i = 0; s[i] != '\0'; i++) {
    char c = s[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (i >= VMH_NAME_MAX ||
        !(alnum || (i > 0 && (c == '.' || c == '_' || c == '-'))))
      return 0;
  }
  return i > 0;
}

/* Whether the struct at p, which the other side of the ABI filled and sized
 * (p->struct_size), is large enough to hold `field`: read a field appended
 * in a later minor only when this is true.  The core already zero-fills
 * short ops tables and descriptors; this is for the structs passed to
 * operations (specs, requests, infos).  p must not be NULL. */
#define VMH_HAS_FIELD(p, field)                              \
  ((size_t)((const char *)&(p)->field - (const char *)(p)) + \
       sizeof((p)->field) <=                                 \
   (size_t)(p)->struct_size)

#ifdef __cplusplus
}
#endif

#endif /* VMHOST_COMMON_H */
