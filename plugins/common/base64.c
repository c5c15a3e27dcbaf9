/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <config.h>

#include "base64.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t len) {
  const unsigned char *p = data;
  if (len > (SIZE_MAX - 1) / 4 * 3 - 2)
    return NULL;
  char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < len)
      v |= p[i + 2];
    *o++ = alphabet[v >> 18];
    *o++ = alphabet[(v >> 12) & 63];
    *o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
    *o++ = i + 2 < len ? alphabet[v & 63] : '=';
  }
  *o = '\0';
  return out;
}

/* The value of one base64 character, -1 for anything else. */
static int sextet(char c) {
  const char *at = c ? strchr(alphabet, c) : NULL;
  return at ? (int)(at - alphabet) : -1;
}

unsigned char *base64_decode(const char *in, size_t *ret_len) {
  size_t n = strlen(in);
  if (n % 4) {
    errno = EINVAL;
    return NULL;
  }
  unsigned char *out = malloc(n / 4 * 3 + 1);
  if (out == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  size_t len = 0;
  for (size_t i = 0; i < n; i += 4) {
    int s[4], pad = 0;
    for (int k = 0; k < 4; k++) {
      /* '=' only at the end: one or two of them. */
      if (in[i + k] == '=' && i + 4 == n && k >= 2) {
        s[k] = 0;
        pad++;
      } else if (pad || (s[k] = sextet(in[i + k])) < 0) {
        free(out);
        errno = EINVAL;
        return NULL;
      }
    }
    uint32_t v = (uint32_t)s[0] << 18 | (uint32_t)s[1] << 12 |
                 (uint32_t)s[2] << 6 | (uint32_t)s[3];
    out[len++] = (unsigned char)(v >> 16);
    if (pad < 2)
      out[len++] = (unsigned char)(v >> 8);
    if (pad < 1)
      out[len++] = (unsigned char)v;
  }
  out[len] = '\0';
  *ret_len = len;
  return out;
}
