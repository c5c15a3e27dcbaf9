/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness: gRPC framing (plugins/frontend/rpc/grpcwire.c) on any
 * bytes: one message and a stream of them (with a small limit), the
 * timeout header, the message percent-encoding, gzip bodies (bounded).
 * Built and run by tests/test-fuzz.sh. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpcwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct grpc_msg m;
  const char *why;
  if (grpc_msg_one(data, size, 4096, &m, &why) == GRPC_OK &&
      (m.data < data || m.data + m.len > data + size))
    abort();
  size_t off = 0, used;
  while (off < size &&
         grpc_msg_next(data + off, size - off, 4096, &m, &used, &why) ==
             GRPC_OK &&
         used) {
    if (used > size - off)
      abort();
    off += used;
  }
  uint8_t *plain = NULL;
  size_t plen = 0;
  if (grpc_gunzip(data, size, 1 << 20, &plain, &plen) == 0 && plen > (1 << 20))
    abort();
  free(plain);
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  uint64_t us;
  (void)grpc_timeout_us(s, &us);
  free(grpc_percent_encode(s));
  free(s);
  return 0;
}
