/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Packing protobuf-c messages into frames (framepb.h). */
#include <config.h>

#include "framepb.h"

#include <errno.h>
#include <stdlib.h>

#include "frame.h"

uint8_t *af_pack(const ProtobufCMessage *msg, uint32_t max_frame,
                 size_t *ret_len) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  if (n > max_frame || n > AF_MAX_FRAME) {
    errno = EMSGSIZE;
    return NULL;
  }
  uint8_t *buf = malloc(AF_HEADER + n);
  if (buf == NULL)
    return NULL;
  af_header(buf, (uint32_t)n);
  protobuf_c_message_pack(msg, buf + AF_HEADER);
  *ret_len = AF_HEADER + n;
  return buf;
}
