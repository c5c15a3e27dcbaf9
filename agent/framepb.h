/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Packing protobuf-c messages into guest-channel frames (frame.h). */
#ifndef VMH_AGENT_FRAMEPB_H
#define VMH_AGENT_FRAMEPB_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* The whole frame (header + packed msg) in a buffer the caller frees, its
 * length in *ret_len.  NULL when the message packs to more than max_frame
 * bytes (errno EMSGSIZE) or memory runs out (ENOMEM). */
uint8_t *af_pack(const ProtobufCMessage *msg, uint32_t max_frame,
                 size_t *ret_len);

#endif /* VMH_AGENT_FRAMEPB_H */
