/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* grpcwire — see grpcwire.h. */
#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "grpcwire.h"

int grpc_msg_next(const uint8_t *b, size_t len, size_t max,
                  struct grpc_msg *ret, size_t *ret_used, const char **why) {
  *ret_used = 0;
  if (len < GRPC_PREFIX)
    return GRPC_OK;
  size_t n = (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 |
             (size_t)b[4];
  if (n > max) {
    *why = "the message is larger than the server's limit";
    return GRPC_RESOURCE_EXHAUSTED;
  }
  if (b[0] > 1) {
    *why = "the message's compressed flag is neither 0 nor 1";
    return GRPC_INTERNAL;
  }
  if (len - GRPC_PREFIX < n)
    return GRPC_OK;
  *ret = (struct grpc_msg){b[0], b + GRPC_PREFIX, n};
  *ret_used = GRPC_PREFIX + n;
  return GRPC_OK;
}

int grpc_msg_one(const uint8_t *b, size_t len, size_t max, struct grpc_msg *ret,
                 const char **why) {
  size_t used;
  int code = grpc_msg_next(b, len, max, ret, &used, why);
  if (code)
    return code;
  if (len < GRPC_PREFIX) {
    *why = "the message's 5-byte prefix is truncated";
    return GRPC_INTERNAL;
  }
  if (!used) {
    *why = "the body is shorter than the message's length";
    return GRPC_INTERNAL;
  }
  if (used < len) {
    *why = "a unary request carries exactly one message";
    return GRPC_INTERNAL;
  }
  return GRPC_OK;
}

void grpc_prefix(uint8_t out[GRPC_PREFIX], size_t len) {
  out[0] = 0;
  out[1] = (uint8_t)(len >> 24);
  out[2] = (uint8_t)(len >> 16);
  out[3] = (uint8_t)(len >> 8);
  out[4] = (uint8_t)len;
}

int grpc_timeout_us(const char *v, uint64_t *ret) {
  size_t d = v ? strspn(v, "0123456789") : 0;
  if (d < 1 || d > 8 || strlen(v) != d + 1)
    return -1;
  uint64_t n = strtoull(v, NULL, 10);
  switch (v[d]) {
    case 'H':
      n *= UINT64_C(3600000000);
      break;
    case 'M':
      n *= UINT64_C(60000000);
      break;
    case 'S':
      n *= 1000000;
      break;
    case 'm':
      n *= 1000;
      break;
    case 'u':
      break;
    case 'n':
      n = (n + 999) / 1000;
      break;
    default:
      return -1;
  }
  *ret = n;
  return 0;
}

char *grpc_percent_encode(const char *msg) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(msg);
  char *out = malloc(3 * n + 1), *p = out;
  if (!out)
    return NULL;
  for (const unsigned char *s = (const unsigned char *)msg; *s; s++) {
    if (*s >= 0x20 && *s <= 0x7e && *s != '%') {
      *p++ = (char)*s;
      continue;
    }
    *p++ = '%';
    *p++ = hex[*s >> 4];
    *p++ = hex[*s & 15];
  }
  *p = '\0';
  return out;
}

int grpc_gunzip(const uint8_t *in, size_t len, size_t max, uint8_t **ret,
                size_t *ret_len) {
  z_stream z = {0};
  uint8_t *out = NULL;
  size_t cap = 0, used = 0;
  int code = GRPC_INTERNAL;
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
    return GRPC_INTERNAL;
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)len;
  for (;;) {
    if (used == cap) {
      if (cap > max) {
        code = GRPC_RESOURCE_EXHAUSTED;
        goto fail;
      }
      size_t ncap = cap ? cap * 2 : 4096;
      uint8_t *p = realloc(out, ncap + 1);
      if (!p)
        goto fail;
      out = p;
      cap = ncap;
    }
    z.next_out = out + used;
    z.avail_out = (uInt)(cap - used);
    int e = inflate(&z, Z_NO_FLUSH);
    used = cap - z.avail_out;
    if (e == Z_STREAM_END)
      break;
    if (e != Z_OK && !(e == Z_BUF_ERROR && z.avail_out == 0))
      goto fail;
  }
  if (used > max) {
    code = GRPC_RESOURCE_EXHAUSTED;
    goto fail;
  }
  inflateEnd(&z);
  *ret = out;
  *ret_len = used;
  return GRPC_OK;
fail:
  inflateEnd(&z);
  free(out);
  return code;
}
