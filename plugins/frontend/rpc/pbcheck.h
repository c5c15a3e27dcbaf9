/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What protobuf-c does not check in a request message (rpc front-end). */
#ifndef VMH_PBCHECK_H
#define VMH_PBCHECK_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether a string field of the message in buf[0..len) (described by d),
 * or of its sub-messages, holds a NUL byte: protobuf-c hands strings over
 * NUL-terminated, so "web-1\0junk" would silently become "web-1".  Call it
 * on a message that unpacked: a malformed wire answers false. */
bool pb_string_has_nul(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
                       size_t len);

#endif
