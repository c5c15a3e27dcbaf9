/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Errors: the thread-local message; the code table is libvmhutil's
 * (errname.c). */
#include <config.h>

#include "errname.h"
#include "error.h"
#include "validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char error_msg[ERROR_MSG_MAX];

void error_vset(const char *fmt, va_list ap) {
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
  return errname_http_status(code);
}

uint32_t error_grpc_status(int code) {
  return errname_grpc_status(code);
}

const char *error_name(int code) {
  return errname_name(code);
}

int error_from_name(const char *name) {
  return errname_code(name);
}
