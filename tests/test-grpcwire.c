/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit test of plugins/frontend/rpc/grpcwire.c: the message prefix and
 * its limit, grpc-timeout, grpc-message's percent-encoding, gzip with
 * its bound.  Compiled with the file itself (it is static-free, plain C
 * with zlib). */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../plugins/frontend/rpc/grpcwire.c"
#include "core-unit.h"

static void test_msg(void) {
  static const uint8_t ok[] = {0, 0, 0, 0, 2, 'h', 'i'};
  static const uint8_t big[] = {0, 0x7f, 0xff, 0xff, 0xff};
  static const uint8_t flag[] = {2, 0, 0, 0, 0};
  struct grpc_msg m;
  const char *why = NULL;
  CHECK_INT(grpc_msg_one(ok, sizeof ok, 100, &m, &why), ==, GRPC_OK);
  CHECK_INT(m.len, ==, 2);
  CHECK(!memcmp(m.data, "hi", 2) && !m.compressed);
  CHECK_INT(grpc_msg_one(ok, 3, 100, &m, &why), ==, GRPC_INTERNAL);
  CHECK_HAS(why, "truncated");
  CHECK_INT(grpc_msg_one(ok, 6, 100, &m, &why), ==, GRPC_INTERNAL);
  CHECK_INT(grpc_msg_one(ok, sizeof ok, 1, &m, &why), ==,
            GRPC_RESOURCE_EXHAUSTED);
  /* The limit is checked first, whatever else is wrong. */
  CHECK_INT(grpc_msg_one(big, sizeof big, 1 << 20, &m, &why), ==,
            GRPC_RESOURCE_EXHAUSTED);
  CHECK_INT(grpc_msg_one(flag, sizeof flag, 100, &m, &why), ==, GRPC_INTERNAL);
  uint8_t p[GRPC_PREFIX];
  grpc_prefix(p, 0x01020304);
  CHECK(p[0] == 0 && p[1] == 1 && p[2] == 2 && p[3] == 3 && p[4] == 4);
}

static void test_timeout(void) {
  uint64_t us = 0;
  CHECK(grpc_timeout_us("1H", &us) == 0 && us == UINT64_C(3600000000));
  CHECK(grpc_timeout_us("2M", &us) == 0 && us == 120000000);
  CHECK(grpc_timeout_us("3S", &us) == 0 && us == 3000000);
  CHECK(grpc_timeout_us("250m", &us) == 0 && us == 250000);
  CHECK(grpc_timeout_us("7u", &us) == 0 && us == 7);
  CHECK(grpc_timeout_us("1500n", &us) == 0 && us == 2);
  CHECK(grpc_timeout_us("99999999S", &us) == 0 &&
        us == UINT64_C(99999999000000));
  CHECK(grpc_timeout_us("123456789S", &us) < 0); /* 9 digits */
  CHECK(grpc_timeout_us("S", &us) < 0);
  CHECK(grpc_timeout_us("5", &us) < 0);
  CHECK(grpc_timeout_us("5s", &us) < 0);
  CHECK(grpc_timeout_us("5SS", &us) < 0);
  CHECK(grpc_timeout_us("-1S", &us) < 0);
  CHECK(grpc_timeout_us(NULL, &us) < 0);
}

static void test_percent(void) {
  char *e = grpc_percent_encode("no VM 'x': 100% caf\xc3\xa9\n");
  CHECK_STR(e, "no VM 'x': 100%25 caf%C3%A9%0A");
  free(e);
}

static void test_gunzip(void) {
  static char plain[100000];
  memset(plain, 'a', sizeof plain);
  uint8_t gz[4096];
  z_stream z = {0};
  CHECK(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) == Z_OK);
  z.next_in = (Bytef *)plain;
  z.avail_in = sizeof plain;
  z.next_out = gz;
  z.avail_out = sizeof gz;
  CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
  size_t n = sizeof gz - z.avail_out;
  deflateEnd(&z);

  uint8_t *out = NULL;
  size_t len = 0;
  CHECK_INT(grpc_gunzip(gz, n, sizeof plain, &out, &len), ==, GRPC_OK);
  CHECK(len == sizeof plain && !memcmp(out, plain, len));
  free(out);
  /* A bomb: it would inflate past the bound. */
  CHECK_INT(grpc_gunzip(gz, n, 1000, &out, &len), ==, GRPC_RESOURCE_EXHAUSTED);
  CHECK_INT(grpc_gunzip(gz, n / 2, sizeof plain, &out, &len), ==,
            GRPC_INTERNAL);
  CHECK_INT(grpc_gunzip((const uint8_t *)"junk", 4, 100, &out, &len), ==,
            GRPC_INTERNAL);
}

int main(void) {
  test_msg();
  test_timeout();
  test_percent();
  test_gunzip();
  return 0;
}
