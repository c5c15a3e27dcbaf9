/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* numfmt — numbers written without printf, for the few texts every
 * request writes (HTTP/2 status and content-length, request ids, JSON
 * integers): snprintf parses its format each time, and that showed in
 * the profile of a small request. */
#ifndef VMH_NUMFMT_H
#define VMH_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

#define NUMFMT_U64_LEN 21 /* "18446744073709551615" and its NUL */

/* v in decimal into out (NUMFMT_U64_LEN bytes), NUL-terminated; returns
 * the number of digits. */
static inline size_t numfmt_u64(char *out, uint64_t v) {
  char tmp[NUMFMT_U64_LEN];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
  return n;
}

/* The low `digits` hex digits of v (lower case) into out, no NUL. */
static inline void numfmt_hex(char *out, uint64_t v, unsigned digits) {
  static const char hex[] = "0123456789abcdef";
  for (unsigned i = 0; i < digits; i++)
    out[digits - 1 - i] = hex[(v >> (4 * i)) & 15];
}

#endif
