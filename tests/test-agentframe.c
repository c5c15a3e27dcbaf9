/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest channel's frame codec (agent/frame.c, framepb.c): frames in
 * one piece and byte by byte, truncation, huge lengths, garbage and
 * resynchronisation, a full buffer, and protobuf round trips.  Then each
 * file of the fuzz seed corpus (argv[1..]) through the fuzz target's path,
 * so the corpus stays valid input. */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-unit.h"
#include "frame.h"
#include "framepb.h"
#include "vmhost/agent/v1/agent.pb-c.h"

#define MAX 64

static size_t frame(uint8_t *out, const char *payload, uint32_t announced) {
  af_header(out, announced);
  size_t n = strlen(payload);
  memcpy(out + AF_HEADER, payload, n);
  return AF_HEADER + n;
}

/* Feeds len bytes in pieces of `piece`; collects the frames seen as
 * "payload|payload|". */
static void run(struct af_reader *r, const uint8_t *data, size_t len,
                size_t piece, char *seen, size_t seen_size) {
  size_t off = 0;
  seen[0] = 0;
  while (off < len) {
    size_t n = len - off < piece ? len - off : piece;
    off += af_reader_feed(r, data + off, n);
    const uint8_t *f;
    uint32_t fl;
    while (af_reader_next(r, &f, &fl)) {
      size_t l = strlen(seen);
      snprintf(seen + l, seen_size - l, "%.*s|", (int)fl, (const char *)f);
    }
  }
}

static void test_pieces(void) {
  uint8_t buf[256];
  size_t n = frame(buf, "one", 3);
  n += frame(buf + n, "", 0);
  n += frame(buf + n, "three", 5);
  for (size_t piece = 1; piece <= n; piece++) {
    struct af_reader r;
    char seen[128];
    CHECK(af_reader_init(&r, MAX) == 0);
    run(&r, buf, n, piece, seen, sizeof seen);
    CHECK_STR(seen, "one||three|");
    CHECK_INT(r.frames, ==, 3);
    CHECK_INT(r.resyncs, ==, 0);
    CHECK_INT(r.garbage_bytes, ==, 0);
    af_reader_free(&r);
  }
}

static void test_truncated(void) {
  uint8_t buf[64];
  size_t n = frame(buf, "abcdef", 6);
  struct af_reader r;
  char seen[64];
  CHECK(af_reader_init(&r, MAX) == 0);
  /* Every prefix short of the whole frame yields nothing. */
  for (size_t cut = 0; cut < n; cut++) {
    af_reader_reset(&r);
    run(&r, buf, cut, 1, seen, sizeof seen);
    CHECK_STR(seen, "");
  }
  CHECK_INT(r.frames, ==, 0);
  af_reader_free(&r);
}

static void test_garbage_and_resync(void) {
  uint8_t buf[256];
  size_t n = 0;
  memcpy(buf, "garbage VM", 10); /* with a false start of the magic */
  n = 10;
  n += frame(buf + n, "ok", 2);
  memcpy(buf + n, "VMH", 3); /* a partial magic, then garbage */
  n += 3;
  buf[n++] = 'x';
  n += frame(buf + n, "again", 5);
  struct af_reader r;
  char seen[64];
  CHECK(af_reader_init(&r, MAX) == 0);
  run(&r, buf, n, 7, seen, sizeof seen);
  CHECK_STR(seen, "ok|again|");
  CHECK_INT(r.resyncs, ==, 2);
  CHECK_INT(r.garbage_bytes, ==, 14);
  af_reader_free(&r);
}

static void test_huge_length(void) {
  uint8_t buf[256];
  size_t n = 0;
  /* A 4 GiB header (the peer lies), its "payload", then a good frame: the
   * reader skips the lie and resyncs at the next magic, holding at most
   * its own cap. */
  af_header(buf, UINT32_MAX);
  n = AF_HEADER;
  memcpy(buf + n, "junkjunk", 8);
  n += 8;
  af_header(buf + n, MAX + 1);
  n += AF_HEADER;
  n += frame(buf + n, "fine", 4);
  struct af_reader r;
  char seen[64];
  CHECK(af_reader_init(&r, MAX) == 0);
  run(&r, buf, n, 5, seen, sizeof seen);
  CHECK_STR(seen, "fine|");
  CHECK_INT(r.oversize, ==, 2);
  CHECK(r.len <= MAX + AF_HEADER);
  af_reader_free(&r);
}

static void test_full_frame_and_flood(void) {
  /* A frame of exactly the cap, then a stream of garbage far longer than
   * the buffer: memory stays bounded, and a frame after it is found. */
  struct af_reader r;
  uint8_t *big = malloc(AF_HEADER + MAX);
  char seen[256];
  CHECK(big && af_reader_init(&r, MAX) == 0);
  af_header(big, MAX);
  memset(big + AF_HEADER, 'a', MAX);
  run(&r, big, AF_HEADER + MAX, 1000, seen, sizeof seen);
  CHECK_INT(r.frames, ==, 1);
  CHECK_INT(strlen(seen), ==, MAX + 1);
  uint8_t junk[10000];
  memset(junk, 'z', sizeof junk);
  run(&r, junk, sizeof junk, 333, seen, sizeof seen);
  CHECK_STR(seen, "");
  CHECK_INT(r.garbage_bytes, ==, sizeof junk);
  uint8_t ok[32];
  run(&r, ok, frame(ok, "after", 5), 3, seen, sizeof seen);
  CHECK_STR(seen, "after|");
  free(big);
  af_reader_free(&r);
}

static void test_space_commit(void) {
  struct af_reader r;
  uint8_t buf[32];
  size_t n = frame(buf, "xyz", 3), room;
  CHECK(af_reader_init(&r, MAX) == 0);
  uint8_t *p = af_reader_space(&r, &room);
  CHECK(room == MAX + AF_HEADER);
  memcpy(p, buf, n);
  af_reader_commit(&r, n);
  const uint8_t *f;
  uint32_t fl;
  CHECK(af_reader_next(&r, &f, &fl) == 1);
  CHECK_INT(fl, ==, 3);
  CHECK(memcmp(f, "xyz", 3) == 0);
  CHECK(af_reader_next(&r, &f, &fl) == 0);
  af_reader_free(&r);
}

static void test_pack_roundtrip(void) {
  Vmhost__Agent__V1__Request q = VMHOST__AGENT__V1__REQUEST__INIT;
  Vmhost__Agent__V1__ExecRequest x = VMHOST__AGENT__V1__EXEC_REQUEST__INIT;
  char *argv[] = {"/bin/echo", "hi"};
  x.argv = argv;
  x.n_argv = 2;
  x.timeout_ms = 1234;
  q.id = 77;
  q.body_case = VMHOST__AGENT__V1__REQUEST__BODY_EXEC;
  q.exec = &x;
  size_t n;
  uint8_t *f = af_pack(&q.base, MAX, &n);
  CHECK(f != NULL);
  struct af_reader r;
  CHECK(af_reader_init(&r, MAX) == 0);
  CHECK(af_reader_feed(&r, f, n) == n);
  const uint8_t *p;
  uint32_t pl;
  CHECK(af_reader_next(&r, &p, &pl) == 1);
  Vmhost__Agent__V1__Request *d =
      vmhost__agent__v1__request__unpack(NULL, pl, p);
  CHECK(d != NULL);
  CHECK_INT(d->id, ==, 77);
  CHECK_INT(d->body_case, ==, VMHOST__AGENT__V1__REQUEST__BODY_EXEC);
  CHECK_STR(d->exec->argv[1], "hi");
  CHECK_INT(d->exec->timeout_ms, ==, 1234);
  vmhost__agent__v1__request__free_unpacked(d, NULL);
  free(f);
  /* Over the cap: refused, not truncated. */
  char big[MAX + 1];
  memset(big, 'b', MAX);
  big[MAX] = 0;
  argv[1] = big;
  CHECK(af_pack(&q.base, MAX, &n) == NULL);
  af_reader_free(&r);
}

/* The fuzz target itself, compiled in. */
#include "fuzz-frame.c"

static void run_corpus(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    CHECK(f != NULL);
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
  }
}

int main(int argc, char **argv) {
  test_pieces();
  test_truncated();
  test_garbage_and_resync();
  test_huge_length();
  test_full_frame_and_flood();
  test_space_commit();
  test_pack_roundtrip();
  run_corpus(argc, argv);
  return 0;
}
