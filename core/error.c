/* Errors: the thread-local message and the code → status table. */
#include <config.h>

#include "error.h"
#include "validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char error_msg[ERROR_MSG_MAX];

struct error_info {
  const char *name;
  uint32_t http;
  uint32_t grpc; /* google.rpc.Code */
};

/* Indexed by -code.  Every code of enum vmh_error has an entry. */
static const struct error_info error_table[] = {
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
};

_Static_assert(sizeof error_table / sizeof error_table[0] == -VMH_ERROR_MIN + 1,
               "error_table must cover every VMH_E* code");

static const struct error_info *error_info(int code) {
  if (code > 0 || code < VMH_ERROR_MIN)
    return &error_table[-VMH_EINTERNAL];
  return &error_table[-code];
}

VMH_PRINTF(1, 0) static void error_vset(const char *fmt, va_list ap) {
  /* Format into a copy first: the arguments may point into error_msg. */
  char tmp[ERROR_MSG_MAX];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  size_t len;

  if (n < 0) {
    snprintf(error_msg, sizeof error_msg, "(unformattable error message)");
    return;
  }
  len = (size_t)n;
  if (len >= sizeof tmp)
    len = utf8_trim(tmp, sizeof tmp - 1);
  memcpy(error_msg, tmp, len);
  error_msg[len] = '\0';
}

void error_set(const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  error_vset(fmt, ap);
  va_end(ap);
}

int error_code(int code, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  error_vset(fmt, ap);
  va_end(ap);
  return code;
}

const char *error_get(void) {
  return error_msg;
}

void error_clear(void) {
  error_msg[0] = '\0';
}

uint32_t error_http_status(int code) {
  return error_info(code)->http;
}

uint32_t error_grpc_status(int code) {
  return error_info(code)->grpc;
}

const char *error_name(int code) {
  return error_info(code)->name;
}

int error_from_name(const char *name) {
  if (!name)
    return 1;
  for (int code = 0; code >= VMH_ERROR_MIN; code--)
    if (strcmp(error_table[-code].name, name) == 0)
      return code;
  return 1;
}
