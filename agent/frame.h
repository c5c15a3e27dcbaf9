/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The frame codec of the guest channel (proto/vmhost/agent/v1/agent.proto),
 * shared by the guest agent and the host's guest front-end.
 *
 * A frame is the 4 bytes AF_MAGIC, a 32-bit big-endian payload length,
 * then the payload (one protobuf message).  The reader is incremental and
 * never trusts the peer: it holds at most max_frame + AF_HEADER bytes, and
 * on garbage or a length over max_frame it skips ahead to the next magic,
 * counting what it skipped.  No allocation happens after af_reader_init. */
#ifndef VMH_AGENT_FRAME_H
#define VMH_AGENT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define AF_MAGIC "VMH\x01"
#define AF_MAGIC_LEN 4
#define AF_HEADER 8
/* The protocol's hard cap; a side may configure a lower one. */
#define AF_MAX_FRAME (UINT32_C(1) << 20)

struct af_reader {
  uint8_t *buf; /* owned; max_frame + AF_HEADER bytes */
  size_t off;   /* where the held bytes start in buf */
  size_t len;   /* bytes held, from off */
  size_t skip;  /* bytes of the frame handed out last, dropped on next use */
  uint32_t max_frame;
  int lost; /* skipping garbage since the last good frame */
  /* Counters, for the owner's metrics. */
  uint64_t garbage_bytes; /* bytes skipped while looking for a magic */
  uint64_t resyncs;       /* runs of garbage (each counts once) */
  uint64_t oversize;      /* headers announcing more than max_frame */
  uint64_t frames;        /* frames handed out */
};

/* 0, or -1 (ENOMEM) when the buffer cannot be allocated. */
int af_reader_init(struct af_reader *r, uint32_t max_frame);
void af_reader_free(struct af_reader *r);
/* Forget what is buffered (after a reconnect); counters stay. */
void af_reader_reset(struct af_reader *r);

/* Where the next bytes read from the stream go: *ret_len bytes at the
 * returned pointer (never 0: the reader makes room by discarding what can
 * never be a frame).  Then af_reader_commit() the count actually read. */
uint8_t *af_reader_space(struct af_reader *r, size_t *ret_len);
void af_reader_commit(struct af_reader *r, size_t n);

/* Copies up to len bytes in (for callers that hold a buffer already);
 * returns how many were taken. */
size_t af_reader_feed(struct af_reader *r, const void *data, size_t len);

/* The next whole frame's payload: 1 and *ret and *ret_len (valid until the
 * next call on the reader), or 0 when more bytes are needed. */
int af_reader_next(struct af_reader *r, const uint8_t **ret, uint32_t *ret_len);

/* Writes the header of a payload of len bytes into hdr. */
void af_header(uint8_t hdr[AF_HEADER], uint32_t len);

#endif /* VMH_AGENT_FRAME_H */
