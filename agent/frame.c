/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest channel's frame codec (frame.h). */
#include <config.h>

#include "frame.h"

#include <stdlib.h>
#include <string.h>

int af_reader_init(struct af_reader *r, uint32_t max_frame) {
  memset(r, 0, sizeof *r);
  if (max_frame == 0 || max_frame > AF_MAX_FRAME)
    max_frame = AF_MAX_FRAME;
  r->max_frame = max_frame;
  r->buf = malloc((size_t)max_frame + AF_HEADER);
  return r->buf ? 0 : -1;
}

void af_reader_free(struct af_reader *r) {
  free(r->buf);
  r->buf = NULL;
  r->off = r->len = r->skip = 0;
}

void af_reader_reset(struct af_reader *r) {
  r->off = r->len = r->skip = 0;
  r->lost = 0;
}

static size_t capacity(const struct af_reader *r) {
  return (size_t)r->max_frame + AF_HEADER;
}

/* Dropping only moves the start: bytes are moved once per read, in
 * af_reader_space(), however many frames one read brought. */
static void drop(struct af_reader *r, size_t n) {
  r->off += n;
  r->len -= n;
  if (r->len == 0)
    r->off = 0;
}

/* Drops the frame handed out by the previous af_reader_next(). */
static void drop_last(struct af_reader *r) {
  if (r->skip) {
    drop(r, r->skip);
    r->skip = 0;
  }
}

/* How many leading bytes can never start a frame: everything before the
 * first full magic, or before a trailing partial magic. */
static size_t junk_prefix(const struct af_reader *r) {
  for (size_t i = 0; i < r->len; i++) {
    size_t n = r->len - i < AF_MAGIC_LEN ? r->len - i : AF_MAGIC_LEN;
    const uint8_t *p = r->buf + r->off + i;
    if (p[0] == AF_MAGIC[0] && memcmp(p, AF_MAGIC, n) == 0)
      return i;
  }
  return r->len;
}

/* Counts n bytes of garbage; a run of garbage counts one resync however
 * many reads it spans. */
static void garbage(struct af_reader *r, size_t n) {
  r->garbage_bytes += n;
  if (!r->lost)
    r->resyncs++;
  r->lost = 1;
}

/* Skips to the next magic. */
static void resync(struct af_reader *r) {
  size_t junk = junk_prefix(r);
  if (junk) {
    garbage(r, junk);
    drop(r, junk);
  }
}

uint8_t *af_reader_space(struct af_reader *r, size_t *ret_len) {
  drop_last(r);
  if (r->off) {
    memmove(r->buf, r->buf + r->off, r->len);
    r->off = 0;
  }
  if (r->len == capacity(r)) {
    /* Full and yet no frame: af_reader_next() resyncs past garbage and
     * refuses oversize headers, so a full buffer starts with a magic and
     * holds one frame; this cannot happen.  Be safe all the same. */
    garbage(r, r->len);
    r->len = 0;
  }
  *ret_len = capacity(r) - r->len;
  return r->buf + r->len;
}

void af_reader_commit(struct af_reader *r, size_t n) {
  size_t room = capacity(r) - r->off - r->len;
  r->len += n < room ? n : room;
}

size_t af_reader_feed(struct af_reader *r, const void *data, size_t len) {
  size_t room;
  uint8_t *p = af_reader_space(r, &room);
  if (len > room)
    len = room;
  memcpy(p, data, len);
  af_reader_commit(r, len);
  return len;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

int af_reader_next(struct af_reader *r, const uint8_t **ret,
                   uint32_t *ret_len) {
  drop_last(r);
  for (;;) {
    resync(r);
    if (r->len < AF_HEADER)
      return 0;
    const uint8_t *p = r->buf + r->off;
    uint32_t n = be32(p + AF_MAGIC_LEN);
    if (n > r->max_frame) {
      /* A lie or garbage that happens to hold a magic: skip the magic and
       * look for the next one. */
      r->oversize++;
      garbage(r, AF_MAGIC_LEN);
      drop(r, AF_MAGIC_LEN);
      continue;
    }
    if (r->len - AF_HEADER < n)
      return 0;
    *ret = p + AF_HEADER;
    *ret_len = n;
    r->skip = AF_HEADER + (size_t)n;
    r->frames++;
    r->lost = 0;
    return 1;
  }
}

void af_header(uint8_t hdr[AF_HEADER], uint32_t len) {
  memcpy(hdr, AF_MAGIC, AF_MAGIC_LEN);
  hdr[4] = (uint8_t)(len >> 24);
  hdr[5] = (uint8_t)(len >> 16);
  hdr[6] = (uint8_t)(len >> 8);
  hdr[7] = (uint8_t)len;
}
