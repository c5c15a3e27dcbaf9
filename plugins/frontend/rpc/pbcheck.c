/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What protobuf-c does not check in a request message: see pbcheck.h. */
#include <config.h>

#include "pbcheck.h"

#include <string.h>

/* A varint at *p (before end): its value, *p moved past it; -1 when it
 * does not end before end or is longer than 10 bytes. */
static int wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret) {
  uint64_t v = 0;
  for (int shift = 0; *p < end && shift < 70; shift += 7) {
    uint8_t b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *ret = v;
      return 0;
    }
  }
  return -1;
}

static bool has_nul(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
                    size_t len, int depth) {
  const uint8_t *p = buf, *end = buf + len;
  uint64_t key, n;
  while (p < end && depth < 32) {
    if (wire_varint(&p, end, &key) < 0)
      return false;
    switch (key & 7) {
      case 0:
        if (wire_varint(&p, end, &n) < 0)
          return false;
        break;
      case 1:
        if (end - p < 8)
          return false;
        p += 8;
        break;
      case 5:
        if (end - p < 4)
          return false;
        p += 4;
        break;
      case 2: {
        if (wire_varint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
          return false;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3));
        if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, n))
          return true;
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
            has_nul(f->descriptor, p, n, depth + 1))
          return true;
        p += n;
        break;
      }
      default:
        return false;
    }
  }
  return false;
}

bool pb_string_has_nul(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
                       size_t len) {
  return has_nul(d, buf, len, 0);
}
