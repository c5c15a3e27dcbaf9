/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The table of VMH_E* codes: see errname.h. */
#include <config.h>

#include "errname.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <vmhost/common.h>

struct errinfo {
  const char *name;
  uint32_t http;
  uint32_t grpc; /* google.rpc.Code */
};

/* Indexed by -code.  Every code of enum vmh_error has an entry. */
static const struct errinfo table[] = {
    [-VMH_OK] = {"ok", 200, 0},
    [-VMH_EINVAL] = {"invalid_argument", 400, 3},
    [-VMH_ENOENT] = {"not_found", 404, 5},
    [-VMH_EEXIST] = {"already_exists", 409, 6},
    [-VMH_EBUSY] = {"busy", 409, 9},
    [-VMH_ESTATE] = {"invalid_state", 409, 9},
    [-VMH_ENOSPC] = {"no_space", 507, 8},
    [-VMH_ENOTSUP] = {"not_supported", 501, 12},
    [-VMH_EPERM] = {"permission_denied", 403, 7},
    [-VMH_ETIMEDOUT] = {"timeout", 504, 4},
    [-VMH_EIO] = {"io_error", 502, 14},
    [-VMH_ENOMEM] = {"no_memory", 503, 8},
    [-VMH_EAGAIN] = {"try_again", 503, 14},
    [-VMH_ELIMIT] = {"limit_exceeded", 429, 8},
    [-VMH_ECANCELED] = {"canceled", 499, 1},
    [-VMH_EINTERNAL] = {"internal", 500, 13},
    [-VMH_ECAPACITY] = {"insufficient_capacity", 409, 8},
};

_Static_assert(sizeof table / sizeof table[0] == -VMH_ERROR_LOWEST + 1,
               "the table must cover every VMH_E* code");

static const struct errinfo *info(int code) {
  if (code > 0 || code < VMH_ERROR_LOWEST)
    return &table[-VMH_EINTERNAL];
  return &table[-code];
}

const char *errname_name(int code) {
  return info(code)->name;
}

uint32_t errname_http_status(int code) {
  return info(code)->http;
}

uint32_t errname_grpc_status(int code) {
  return info(code)->grpc;
}

int errno_code(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return VMH_ENOENT;
    case EEXIST:
      return VMH_EEXIST;
    case ENOSPC:
    case EDQUOT:
      return VMH_ENOSPC;
    case ENOMEM:
      return VMH_ENOMEM;
    case EACCES:
    case EPERM:
    case EROFS:
      return VMH_EPERM;
    case EBUSY:
      return VMH_EBUSY;
    default:
      return VMH_EIO;
  }
}

int errname_code(const char *name) {
  if (!name)
    return 1;
  for (int code = 0; code >= VMH_ERROR_LOWEST; code--)
    if (strcmp(table[-code].name, name) == 0)
      return code;
  return 1;
}

int errbuf_fail(char *err, size_t errlen, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return code;
}
