/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: the frame reader fed in pieces whose sizes come from
 * the input, and every frame it yields decoded as a Request and as a
 * Response, as vmhostd and the agent do with what the peer sends. */
#include <config.h>

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "frame.h"
#include "vmhost/agent/v1/agent.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct af_reader r;
  if (r.buf == NULL && af_reader_init(&r, 4096) < 0)
    return 0;
  af_reader_reset(&r);
  /* The first byte picks the piece size, so splits are explored too. */
  size_t piece = size ? (size_t)data[0] % 64 + 1 : 1;
  size_t off = size ? 1 : 0;
  while (off < size) {
    size_t n = size - off < piece ? size - off : piece;
    size_t took = af_reader_feed(&r, data + off, n);
    off += took;
    const uint8_t *f;
    uint32_t len;
    while (af_reader_next(&r, &f, &len)) {
      assert(len <= r.max_frame);
      Vmhost__Agent__V1__Request *q =
          vmhost__agent__v1__request__unpack(NULL, len, f);
      if (q)
        vmhost__agent__v1__request__free_unpacked(q, NULL);
      Vmhost__Agent__V1__Response *p =
          vmhost__agent__v1__response__unpack(NULL, len, f);
      if (p)
        vmhost__agent__v1__response__free_unpacked(p, NULL);
    }
    assert(r.len <= (size_t)r.max_frame + AF_HEADER);
    if (took == 0)
      break;
  }
  return 0;
}
