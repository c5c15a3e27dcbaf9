/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Errors: the thread-local message; the code table is libvmhutil's
 * (errname.c). */
#include <config.h>

#include "errname.h"
#include "error.h"
#include "validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

static char **problems;
static size_t n_problems, cap_problems;

int problem_keep(int r) {
  if (r != VMH_EINVAL)
    return r;
  if (n_problems == cap_problems) {
    size_t cap = cap_problems ? cap_problems * 2 : 8;
    char **v = realloc(problems, cap * sizeof *v);
    if (!v)
      return error_code(VMH_ENOMEM, "out of memory");
    problems = v;
    cap_problems = cap;
  }
  if (!(problems[n_problems] = strdup(error_msg)))
    return error_code(VMH_ENOMEM, "out of memory");
  n_problems++;
  return 0;
}

size_t problems_count(void) {
  return n_problems;
}

const char *problem_at(size_t i) {
  return i < n_problems ? problems[i] : NULL;
}

void problems_clear(void) {
  for (size_t i = 0; i < n_problems; i++)
    free(problems[i]);
  free(problems);
  problems = NULL;
  n_problems = cap_problems = 0;
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
