/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* grpcwire — the gRPC-over-HTTP/2 framing rules that are not HTTP/2 itself
 * (gRPC's PROTOCOL-HTTP2.md): the 5-byte message prefix, grpc-timeout,
 * grpc-message's percent-encoding, gzip message compression (zlib).
 * Pure functions, no I/O; the rpc front-end and its unit test use them.
 */
#ifndef VMH_GRPCWIRE_H
#define VMH_GRPCWIRE_H

#include <stddef.h>
#include <stdint.h>

/* gRPC status codes. */
enum grpc_code {
  GRPC_OK = 0,
  GRPC_CANCELLED = 1,
  GRPC_UNKNOWN = 2,
  GRPC_INVALID_ARGUMENT = 3,
  GRPC_DEADLINE_EXCEEDED = 4,
  GRPC_NOT_FOUND = 5,
  GRPC_ALREADY_EXISTS = 6,
  GRPC_PERMISSION_DENIED = 7,
  GRPC_RESOURCE_EXHAUSTED = 8,
  GRPC_FAILED_PRECONDITION = 9,
  GRPC_ABORTED = 10,
  GRPC_OUT_OF_RANGE = 11,
  GRPC_UNIMPLEMENTED = 12,
  GRPC_INTERNAL = 13,
  GRPC_UNAVAILABLE = 14,
  GRPC_DATA_LOSS = 15,
  GRPC_UNAUTHENTICATED = 16,
};

#define GRPC_PREFIX 5

/* One length-prefixed message in a request body. */
struct grpc_msg {
  int compressed;
  const uint8_t *data; /* points into the body */
  size_t len;
};

/* Split a unary request body: exactly one message.  Returns GRPC_OK and
 * fills *ret, or a status with *why set: INTERNAL for a body shorter than
 * its prefix or its length, or with bytes after the message;
 * RESOURCE_EXHAUSTED for a length over max (checked before anything
 * else is looked at). */
int grpc_msg_one(const uint8_t *body, size_t len, size_t max,
                 struct grpc_msg *ret, const char **why);

/* The next message of a stream of them (a client or bidirectional
 * stream): GRPC_OK with *ret_used = 0 when b holds no whole message yet,
 * or its bytes (prefix included) consumed and *ret filled; else a status
 * and *why, as grpc_msg_one (the limit is checked as soon as the prefix
 * is in). */
int grpc_msg_next(const uint8_t *b, size_t len, size_t max,
                  struct grpc_msg *ret, size_t *ret_used, const char **why);

/* Write the 5-byte prefix of an uncompressed message of len bytes. */
void grpc_prefix(uint8_t out[GRPC_PREFIX], size_t len);

/* grpc-timeout ("1-8 digits" + H M S m u n) in microseconds: 0 and *ret,
 * or -1 when malformed. */
int grpc_timeout_us(const char *v, uint64_t *ret);

/* grpc-message: percent-encode every byte outside 0x20-0x7e and '%'.
 * Returns a new string, or NULL when out of memory. */
char *grpc_percent_encode(const char *msg);

/* Inflate a gzip message into a new buffer of at most max bytes: 0 and
 * *ret (malloc'd) / *ret_len, GRPC_RESOURCE_EXHAUSTED when it inflates to
 * more than max, GRPC_INTERNAL when it is not gzip. */
int grpc_gunzip(const uint8_t *in, size_t len, size_t max, uint8_t **ret,
                size_t *ret_len);

#endif /* VMH_GRPCWIRE_H */
