/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one table of VMH_E* codes (libvmhutil): the stable name of each, and
 * the HTTP and gRPC statuses it maps to.  The core serves it through
 * vmh_core (error_name, http_status, grpc_status); in-tree plugins that
 * need a name without a core table (the mocks' fault config) use it
 * directly. */
#ifndef VMHOST_UTIL_ERRNAME_H
#define VMHOST_UTIL_ERRNAME_H

#include <stddef.h>
#include <stdint.h>

/* Codes that are not VMH_E* codes (positive, or below VMH_ERROR_LOWEST) map
 * like VMH_EINTERNAL.  Names: "ok", "invalid_argument", "not_found" … */
const char *errname_name(int code);
uint32_t errname_http_status(int code);
uint32_t errname_grpc_status(int code); /* google.rpc.Code */

/* The inverse of errname_name: 0 or a VMH_E* code; 1 when name is NULL or
 * names no code. */
int errname_code(const char *name);

/* The VMH_E* code for a failed system call's errno: ENOENT and ENOTDIR
 * → VMH_ENOENT, EEXIST → VMH_EEXIST, ENOSPC and EDQUOT → VMH_ENOSPC,
 * ENOMEM → VMH_ENOMEM, EACCES, EPERM and EROFS → VMH_EPERM, EBUSY →
 * VMH_EBUSY; anything else VMH_EIO. */
int errno_code(int err);

/* For code that reports errors into a caller's buffer instead of
 * host->error (h2tls, the libvirt seed writer): format the message into
 * err[0..errlen) and return code. */
int errbuf_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((__format__(__printf__, 4, 5)));

#endif
