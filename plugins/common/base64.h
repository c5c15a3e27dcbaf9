/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Standard base64 (RFC 4648 section 4, with padding) (libvmhutil): what
 * JSON gateways such as etcd's carry bytes in. */
#ifndef VMHOST_UTIL_BASE64_H
#define VMHOST_UTIL_BASE64_H

#include <stddef.h>

/* The encoding of len bytes at data, NUL-terminated; the caller frees it.
 * NULL when out of memory. */
char *base64_encode(const void *data, size_t len);

/* The bytes `in` encodes, NUL-terminated (so that text comes back as a
 * string), their count in *ret_len; the caller frees them.  NULL with
 * errno EINVAL when `in` is not padded base64, ENOMEM when out of
 * memory. */
unsigned char *base64_decode(const char *in, size_t *ret_len);

#endif
