/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* journal — an append-only log of keyed records with group commit,
 * compacted into a snapshot in the background.
 *
 * Files, all in one directory (the state dir):
 *   vms.journal             the log: frames appended, never rewritten
 *   vms.journal.compacting  the previous log, while it is merged
 *   vms.snapshot            every live record as of a sequence number,
 *                           written atomically (temp, fsync, rename)
 *   vms.journal.corrupt-*   a torn or corrupt tail cut off at open
 *
 * A frame is: magic "VMHJ", u32 length of the payload, u32 CRC32C of the
 * sequence number and payload, u64 sequence number (all little endian),
 * then the payload: a type byte ('P' put, 'D' delete; 'S' and 'E' open and
 * close a snapshot), a key length byte, the key, the value.  A put carries
 * the whole record, so replaying is idempotent and the last frame of a key
 * wins.  The log grows by zero-filled chunks (1 MiB, written once), so a
 * batch's sync flushes data only; zeros after the last frame are the end
 * of the log.  Where the file system takes it, a batch is one
 * O_DIRECT|O_DSYNC write of whole 4 KiB blocks: the log's partial last
 * block (kept in memory, rewritten with the same bytes, so a torn rewrite
 * cannot harm what it held) and the new frames, zero-padded.
 *
 * Group commit: journal_append() queues a frame (cheap, in memory);
 * journal_wait() returns once that frame is on disk.  The first waiter
 * while no write runs becomes the leader: it writes every frame queued so
 * far with one write and one sync, then wakes the waiters of that
 * batch; frames queued meanwhile wait for the next leader.  So one fsync
 * covers every change that arrived while the previous one ran, and no
 * call is acknowledged before its bytes are durable.
 *
 * Compaction: when the log passes compact_size the leader renames it to
 * vms.journal.compacting and starts a new log (a rename, a create and a
 * directory fsync); a background thread merges snapshot + old log into a
 * new snapshot and removes the old log.  Writers never wait for it.
 *
 * Recovery (journal_open): snapshot, then the old log, then the log;
 * frames already in the snapshot (by sequence number) are skipped.  A bad
 * frame with no valid frame after it is a torn tail: cut off, set aside as
 * vms.journal.corrupt-<time>, logged.  A bad frame followed by valid ones,
 * a damaged snapshot or a damaged old log: open fails saying what to do.
 *
 * Fault points for tests: VMHOSTD_FAULT=<point>[:<n>] kills the process
 * with SIGKILL the n-th time (default 1st) the point is reached.  Always
 * compiled in: a test of the shipped binary, at the cost of one branch per
 * batch; whoever can set vmhostd's environment can kill it anyway.  Points:
 * journal-before-write, journal-torn-write (half the batch written),
 * journal-after-write (before fdatasync), journal-after-sync (before the
 * waiters are told), compact-after-rotate, compact-after-write (snapshot
 * written under its temporary name, not renamed), compact-after-rename
 * (new snapshot in place, old log not yet removed).
 *
 * Thread safety: every function but open/close may be called from any
 * thread at once.  Errors are VMH_E* codes with the message set
 * (error.h). */
#ifndef VMHOST_CORE_JOURNAL_H
#define VMHOST_CORE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

struct journal;

#define JOURNAL_PUT 'P'
#define JOURNAL_DEL 'D'
#define JOURNAL_MAX_KEY 255
#define JOURNAL_MAX_VALUE (64u << 20)

/* Recover the journal in dir (created empty when absent).  compact_size:
 * log size that starts a compaction (0: never).  Returns 0 and *ret, or a
 * VMH_E* code with the message set (nothing started). */
int journal_open(const char *dir, uint64_t compact_size, struct journal **ret);

/* One live record found at open: key and value (NUL-terminated, len bytes
 * before the NUL) are valid during the call only. */
typedef void (*journal_record_fn)(void *opaque, const char *key,
                                  const char *value, size_t len);
/* Call fn for each record recovered by journal_open, in the order they were
 * first put, then forget them (once).  fn may append to the journal. */
void journal_records(struct journal *j, journal_record_fn fn, void *opaque);
/* Wait for a compaction in progress, stop the thread, close.  NULL ok. */
void journal_close(struct journal *j);

/* 1 when dir holds a journal or a snapshot (what a migration checks). */
int journal_present(const char *dir);

/* A waiter's ticket: on the caller's stack between append and wait. */
struct journal_wait {
  struct journal_wait *next;
  int done, err;
  char msg[256];
};

/* Queue a frame (type JOURNAL_PUT with value, or JOURNAL_DEL); frames are
 * written in the order queued.  w may be NULL: nobody waits for that frame
 * (a wait for a later frame covers it).  0, or VMH_EINVAL (too large),
 * VMH_ENOMEM, VMH_EIO (the journal failed earlier) with the message set;
 * on failure w is not queued. */
int journal_append(struct journal *j, char type, const char *key,
                   const char *value, size_t len, struct journal_wait *w);
/* Block until w's frame is durable (0) or its write failed (VMH_EIO,
 * message set). */
int journal_wait(struct journal *j, struct journal_wait *w);

/* Block until every frame queued so far is durable.  0, or VMH_EIO when
 * a write failed meanwhile (message set). */
int journal_sync(struct journal *j);

/* Ask for a compaction now (tests, and a log already large at open);
 * returns at once. */
void journal_compact(struct journal *j);

/* Counters (for metrics and benches): batches written (= synchronous
 * writes of the log), frames written, compactions done; direct: batches
 * go by O_DIRECT|O_DSYNC writes (0: write + fdatasync, where the file
 * system refuses O_DIRECT). */
struct journal_stats {
  uint64_t batches, frames, compactions, log_bytes;
  int direct;
};
void journal_get_stats(struct journal *j, struct journal_stats *out);

/* CRC32C (Castagnoli) of n bytes, continuing from crc (start with 0). */
uint32_t journal_crc32c(uint32_t crc, const void *data, size_t n);

#endif
