/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The record journal: framing, recovery, group commit, compaction.  See
 * journal.h for the files, the frame and the guarantees. */
#include <config.h>

#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include "atomicfile.h"
#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "strmap.h"

#define LOG_NAME "vms.journal"
#define OLD_NAME "vms.journal.compacting"
#define SNAP_NAME "vms.snapshot"
#define SNAP_TMP_PREFIX ".vms.snapshot."
#define SNAP_MAGIC "vmhost-snapshot 1"
#define MAGIC "VMHJ"
#define HDR 20 /* magic, length, CRC, sequence */
#define MAX_PAYLOAD (2 + JOURNAL_MAX_KEY + JOURNAL_MAX_VALUE)
/* The log grows by zero-filled chunks of this size, written and synced
 * once: a batch then overwrites allocated blocks, and its fdatasync flushes
 * data only (no size change or extent to commit: about 4x faster on ext4).
 * Zeros after the last frame are the end of the log, not damage. */
#define CHUNK (1u << 20)
/* A batch buffer larger than this after a burst is given back. */
#define KEEP_BUFFER (4u << 20)
/* Direct writes go in whole blocks of this size, from memory aligned to
 * it: a multiple of every logical block size Linux file systems use. */
#define DIO_BLOCK 4096u

/* ---- CRC32C -------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_table[i] = c;
  }
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc,
                                                         const uint8_t *p,
                                                         size_t n) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  crc = (uint32_t)c;
  while (n--)
    crc = _mm_crc32_u8(crc, *p++);
  return crc;
}
#endif

uint32_t journal_crc32c(uint32_t crc, const void *data, size_t n) {
  const uint8_t *p = data;
  crc = ~crc;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse4.2"))
    return ~crc_hw(crc, p, n);
#endif
  pthread_once(&crc_once, crc_init);
  while (n--)
    crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/* ---- frames -------------------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}
static uint64_t get64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* Frames waiting for a write, and whoever waits for them. */
struct batch {
  unsigned char *buf;
  size_t len, cap;
  struct journal_wait *waiters;
};

/* Append one frame to b.  0 or -1 (out of memory, b unchanged). */
static int batch_add(struct batch *b, uint64_t seq, char type, const char *key,
                     size_t klen, const char *value, size_t vlen) {
  size_t plen = 2 + klen + vlen, need = b->len + HDR + plen;
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
      cap *= 2;
    unsigned char *buf = realloc(b->buf, cap);
    if (!buf)
      return -1;
    b->buf = buf;
    b->cap = cap;
  }
  unsigned char *p = b->buf + b->len;
  memcpy(p, MAGIC, 4);
  put32(p + 4, (uint32_t)plen);
  put64(p + 12, seq);
  p[20] = (unsigned char)type;
  p[21] = (unsigned char)klen;
  memcpy(p + 22, key, klen);
  if (vlen)
    memcpy(p + 22 + klen, value, vlen);
  put32(p + 8, journal_crc32c(0, p + 12, 8 + plen));
  b->len = need;
  return 0;
}

struct frame {
  uint64_t seq;
  char type;
  const char *key, *value;
  size_t klen, vlen;
};

/* 1 when a whole, valid frame starts at off; then *f and *next. */
static int frame_at(const unsigned char *buf, size_t size, size_t off,
                    struct frame *f, size_t *next) {
  if (off > size || size - off < HDR + 2)
    return 0;
  const unsigned char *p = buf + off;
  uint32_t plen = get32(p + 4);
  if (memcmp(p, MAGIC, 4) != 0 || plen < 2 || plen > MAX_PAYLOAD ||
      plen > size - off - HDR)
    return 0;
  if (journal_crc32c(0, p + 12, 8 + (size_t)plen) != get32(p + 8))
    return 0;
  f->seq = get64(p + 12);
  f->type = (char)p[20];
  f->klen = p[21];
  if (2 + f->klen > plen || !strchr("PDSE", f->type) || f->type == 0)
    return 0;
  f->key = (const char *)p + 22;
  f->value = f->key + f->klen;
  f->vlen = plen - 2 - f->klen;
  *next = off + HDR + plen;
  return 1;
}

/* ---- the table rebuilt by replaying ------------------------------------- */

struct entry {
  char *value; /* NUL-terminated */
  size_t len;
  bool dead;
  char key[]; /* NUL-terminated */
};

struct replay {
  struct strmap index; /* key -> live entry */
  struct entry **v;    /* in order of first put; dead ones skipped */
  size_t n, cap;
  uint64_t snap_seq; /* frames up to this one are in the snapshot */
  uint64_t last_seq; /* the newest frame applied */
};

static void replay_free(struct replay *r) {
  for (size_t i = 0; i < r->n; i++) {
    free(r->v[i]->value);
    free(r->v[i]);
  }
  free(r->v);
  strmap_free(&r->index);
  memset(r, 0, sizeof *r);
}

static int replay_apply(struct replay *r, const struct frame *f) {
  char key[JOURNAL_MAX_KEY + 1];
  memcpy(key, f->key, f->klen);
  key[f->klen] = 0;
  struct entry *e = strmap_get(&r->index, key);
  if (f->type == JOURNAL_DEL) {
    if (e) {
      strmap_remove(&r->index, e->key);
      e->dead = true;
      free(e->value);
      e->value = NULL;
    }
    return 0;
  }
  char *value = malloc(f->vlen + 1);
  if (!value)
    return error_code(VMH_ENOMEM, "out of memory");
  memcpy(value, f->value, f->vlen);
  value[f->vlen] = 0;
  if (e) {
    free(e->value);
    e->value = value;
    e->len = f->vlen;
    return 0;
  }
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    struct entry **v = realloc(r->v, cap * sizeof *v);
    if (!v)
      goto oom;
    r->v = v;
    r->cap = cap;
  }
  if (!(e = calloc(1, sizeof *e + f->klen + 1)))
    goto oom;
  memcpy(e->key, key, f->klen + 1);
  e->value = value;
  e->len = f->vlen;
  if (strmap_put(&r->index, e->key, e) < 0) {
    free(e);
    goto oom;
  }
  r->v[r->n++] = e;
  return 0;
oom:
  free(value);
  return error_code(VMH_ENOMEM, "out of memory");
}

/* ---- files --------------------------------------------------------------- */

/* The whole file at path into *buf (NULL and 0 when absent). */
static int read_whole(const char *path, unsigned char **buf, size_t *size) {
  *buf = NULL;
  *size = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0
                           : error_code(VMH_EIO, "cannot open %s: %s", path,
                                        strerror(errno));
  struct stat st;
  int r = 0;
  if (fstat(fd, &st) < 0) {
    r = error_code(VMH_EIO, "cannot stat %s: %s", path, strerror(errno));
    goto out;
  }
  size_t n = (size_t)st.st_size, got = 0;
  if (!(*buf = malloc(n ? n : 1))) {
    r = error_code(VMH_ENOMEM, "out of memory reading %s", path);
    goto out;
  }
  while (got < n) {
    ssize_t k = read(fd, *buf + got, n - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      r = error_code(VMH_EIO, "cannot read %s: %s", path,
                     k < 0 ? strerror(errno) : "file shrank");
      free(*buf);
      *buf = NULL;
      goto out;
    }
    got += (size_t)k;
  }
  *size = n;
out:
  close(fd);
  return r;
}

static int pwrite_all(int fd, const void *data, size_t len, off_t at) {
  const char *p = data;
  while (len) {
    ssize_t k = pwrite(fd, p, len, at);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return -1;
    p += k;
    at += k;
    len -= (size_t)k;
  }
  return 0;
}

/* ---- fault points -------------------------------------------------------- */

static char fault_point[64];
static long fault_nth;
static atomic_long fault_seen;

static void fault_init(void) {
  const char *e = getenv("VMHOSTD_FAULT");
  fault_point[0] = 0;
  atomic_store(&fault_seen, 0);
  if (!e || !*e)
    return;
  snprintf(fault_point, sizeof fault_point, "%s", e);
  char *colon = strchr(fault_point, ':');
  fault_nth = 1;
  if (colon) {
    *colon = 0;
    fault_nth = strtol(colon + 1, NULL, 10);
    if (fault_nth < 1)
      fault_nth = 1;
  }
  log_warn("VMHOSTD_FAULT: vmhostd will kill itself at fault point %s (#%ld)",
           fault_point, fault_nth);
}

/* 1 when the test asked to die here, this time. */
static bool fault_due(const char *point) {
  return fault_point[0] && strcmp(point, fault_point) == 0 &&
         atomic_fetch_add(&fault_seen, 1) + 1 == fault_nth;
}

static void fault_die(const char *point) {
  log_error("fault point %s reached (VMHOSTD_FAULT): killing vmhostd", point);
  raise(SIGKILL);
}

/* Die here if the test asked for it. */
static void fault(const char *point) {
  if (fault_due(point))
    fault_die(point);
}

/* ---- the journal ----------------------------------------------------------
 */

struct journal {
  char *dir, *log_path, *old_path, *snap_path;
  int dirfd, fd;
  /* The log opened O_DIRECT|O_DSYNC, or -1 where the file system refuses
   * it.  A batch is then one write that is durable when it returns: the
   * partial block at the end of the log (kept in dbuf, rewritten with the
   * same bytes) and the new frames, padded with zeros to whole blocks.  No
   * page cache write-back and no separate fdatasync: about a third less
   * kernel time per commit on ext4 and virtio.  dbuf (DIO_BLOCK-aligned,
   * dcap bytes) starts with that partial block; the writer's. */
  int dfd;
  unsigned char *dbuf;
  size_t dcap;

  pthread_mutex_t mu;
  pthread_cond_t cv; /* a batch is done, or the writer role is free */
  struct batch pending, spare;
  uint64_t seq;      /* last sequence number given */
  uint64_t log_size; /* bytes durable in the log (writer's) */
  uint64_t alloc;    /* the log file's size: zeros after log_size */
  bool writing;      /* a leader holds the writer role */
  bool failed;       /* an fsync failed: nothing more is accepted */
  char why[256];     /* why failed */
  uint64_t compact_size;
  uint64_t retry_at; /* after a failed compaction: log size to try again */
  struct journal_stats stats;
  uint64_t write_errors; /* batches that failed */

  /* The compactor: wakes on ccv when `wanted`. */
  pthread_t thread;
  bool thread_started, wanted, busy, stopping, old_present;
  pthread_cond_t ccv;

  struct replay recovered; /* until journal_records() */
};

int journal_present(const char *dir) {
  _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
  if (asprintf(&a, "%s/" LOG_NAME, dir) < 0 ||
      asprintf(&b, "%s/" SNAP_NAME, dir) < 0 ||
      asprintf(&c, "%s/" OLD_NAME, dir) < 0)
    return 0;
  return access(a, F_OK) == 0 || access(b, F_OK) == 0 || access(c, F_OK) == 0;
}

/* Copy the damaged bytes to <path>.corrupt-<time> (a name not taken). */
static int set_aside(const char *path, const unsigned char *data, size_t len,
                     char **ret) {
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  for (int i = 0; i < 100; i++) {
    _cleanup_free_ char *name = NULL;
    if ((i ? asprintf(&name, "%s.corrupt-%s-%d", path, stamp, i)
           : asprintf(&name, "%s.corrupt-%s", path, stamp)) < 0)
      return error_code(VMH_ENOMEM, "out of memory");
    int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
      continue;
    if (fd < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
      int e = errno;
      if (fd >= 0) {
        close(fd);
        unlink(name);
      }
      return error_code(VMH_EIO, "cannot write %s: %s", name, strerror(e));
    }
    close(fd);
    *ret = name;
    name = NULL;
    return 0;
  }
  return error_code(VMH_EIO, "cannot find a free name for %s.corrupt-%s", path,
                    stamp);
}

/* A bad frame at off: a torn tail (nothing valid after it) is cut off and
 * set aside; damage with valid frames after it refuses. */
static int bad_frame(struct journal *j, const char *path,
                     const unsigned char *buf, size_t size, size_t off,
                     uint64_t after_seq, bool tail_allowed) {
  struct frame f;
  size_t next, later = 0;
  for (size_t q = off + 1; q + HDR <= size && !later; q++)
    if (buf[q] == 'V' && frame_at(buf, size, q, &f, &next))
      later = q;
  if (later || !tail_allowed)
    return error_code(
        VMH_EIO,
        "%s is damaged at byte %zu (after record #%" PRIu64
        ")%s%s; vmhostd "
        "will not guess which changes to drop. Restore the state directory "
        "from a backup, or keep only what precedes the damage with "
        "`truncate -s %zu %s` (the changes after it are lost) and start "
        "again",
        path, off, after_seq, later ? ", and valid records follow it" : "",
        later ? "" : " (a log that was complete before compaction)", off, path);
  _cleanup_free_ char *aside = NULL;
  while (size > off + 1 && !buf[size - 1])
    size--; /* preallocated zeros are not part of the tail */
  int r = set_aside(path, buf + off, size - off, &aside);
  if (r < 0)
    return r;
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ftruncate(fd, (off_t)off) < 0 || fsync(fd) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return error_code(VMH_EIO, "cannot cut the damaged tail off %s: %s", path,
                      strerror(e));
  }
  close(fd);
  fsync(j->dirfd);
  log_error(
      "%s: cut off a torn or corrupt tail of %zu byte%s after record #%" PRIu64
      " (a write interrupted by a crash: never acknowledged) and set it "
      "aside as %s",
      path, size - off, size - off == 1 ? "" : "s", after_seq, aside);
  return 0;
}

static bool all_zero(const unsigned char *p, size_t n) {
  while (n && !*p)
    p++, n--;
  return n == 0;
}

/* Replay a log file into r.  *present: the file exists; *end: where its
 * frames end (zeros after that are preallocated). */
static int recover_log(struct journal *j, struct replay *r, const char *path,
                       bool is_old, bool *present, size_t *end) {
  _cleanup_free_ unsigned char *buf = NULL;
  size_t size, off = 0, next;
  int rc = read_whole(path, &buf, &size);
  if (rc < 0)
    return rc;
  *present = buf != NULL;
  struct frame f;
  while (off < size && frame_at(buf, size, off, &f, &next)) {
    if (f.type != JOURNAL_PUT && f.type != JOURNAL_DEL)
      break;
    if (f.seq > r->snap_seq) {
      if (f.seq <= r->last_seq)
        break; /* out of order: damage */
      if ((rc = replay_apply(r, &f)) < 0)
        return rc;
      r->last_seq = f.seq;
    }
    off = next;
  }
  *end = off;
  if (off == size || all_zero(buf + off, size - off))
    return 0;
  return bad_frame(j, path, buf, size, off, r->last_seq, !is_old);
}

/* Load the snapshot into r (absent: empty). */
static int recover_snapshot(const char *path, struct replay *r) {
  _cleanup_free_ unsigned char *buf = NULL;
  size_t size, off = 0, next, count = 0;
  int rc = read_whole(path, &buf, &size);
  if (rc < 0 || !buf)
    return rc;
  struct frame f;
  const char *why = "its first record is not a snapshot header";
  if (!frame_at(buf, size, 0, &f, &next) || f.type != 'S' ||
      f.vlen != strlen(SNAP_MAGIC) || memcmp(f.value, SNAP_MAGIC, f.vlen))
    goto damaged;
  r->snap_seq = r->last_seq = f.seq;
  off = next;
  why = "a record is damaged or it is cut short";
  while (frame_at(buf, size, off, &f, &next)) {
    off = next;
    if (f.type == 'E') {
      char n[24];
      snprintf(n, sizeof n, "%zu", count);
      why = "its end record does not match its records";
      if (off != size || f.vlen != strlen(n) || memcmp(f.value, n, f.vlen))
        goto damaged;
      return 0;
    }
    if (f.type != JOURNAL_PUT)
      goto damaged;
    if ((rc = replay_apply(r, &f)) < 0)
      return rc;
    count++;
  }
damaged:
  return error_code(VMH_EIO,
                    "%s is damaged (%s, byte %zu); it is only ever replaced "
                    "whole, so the disk lost data: restore the state "
                    "directory from a backup",
                    path, why, off);
}

/* Remove snapshot temp files a crash left. */
static void remove_leftovers(struct journal *j) {
  DIR *d = fdopendir(dup(j->dirfd));
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, SNAP_TMP_PREFIX, strlen(SNAP_TMP_PREFIX)) == 0) {
      log_info("removing %s/%s, left by an interrupted write", j->dir,
               e->d_name);
      unlinkat(j->dirfd, e->d_name, 0);
    }
  closedir(d);
}

/* ---- compaction ---------------------------------------------------------- */

/* Write r as the new snapshot covering frames up to seq. */
static int write_snapshot(struct journal *j, const struct replay *r,
                          uint64_t seq) {
  struct atomic_file af;
  struct batch b = {0};
  int rc = 0;
  char count[24];
  size_t n = 0;
  if (atomic_open(&af, j->snap_path, 0600) < 0)
    return error_code(VMH_EIO, "cannot write %s: %s", j->snap_path,
                      strerror(errno));
  if (batch_add(&b, seq, 'S', "", 0, SNAP_MAGIC, strlen(SNAP_MAGIC)) < 0)
    goto oom;
  for (size_t i = 0; i < r->n; i++) {
    const struct entry *e = r->v[i];
    if (e->dead)
      continue;
    if (batch_add(&b, seq, JOURNAL_PUT, e->key, strlen(e->key), e->value,
                  e->len) < 0)
      goto oom;
    n++;
    if (b.len >= (1u << 20)) {
      if (write_all(af.fd, b.buf, b.len) < 0)
        goto io;
      b.len = 0;
    }
  }
  snprintf(count, sizeof count, "%zu", n);
  if (batch_add(&b, seq, 'E', "", 0, count, strlen(count)) < 0)
    goto oom;
  if (write_all(af.fd, b.buf, b.len) < 0)
    goto io;
  free(b.buf);
  fault("compact-after-write");
  if (atomic_commit(&af) < 0)
    return error_code(VMH_EIO, "cannot write %s: %s", j->snap_path,
                      strerror(errno));
  return 0;
oom:
  rc = error_code(VMH_ENOMEM, "out of memory writing %s", j->snap_path);
  goto out;
io:
  rc =
      error_code(VMH_EIO, "cannot write %s: %s", j->snap_path, strerror(errno));
out:
  free(b.buf);
  atomic_abort(&af);
  return rc;
}

/* Merge snapshot + old log into a new snapshot; remove the old log. */
static int compact(struct journal *j) {
  struct replay r = {0};
  bool present = false;
  size_t end;
  int rc = recover_snapshot(j->snap_path, &r);
  if (rc == 0)
    rc = recover_log(j, &r, j->old_path, true, &present, &end);
  if (rc == 0 && present)
    rc = write_snapshot(j, &r, r.last_seq);
  replay_free(&r);
  if (rc < 0 || !present)
    return rc;
  fault("compact-after-rename");
  if (unlink(j->old_path) < 0 || fsync(j->dirfd) < 0)
    return error_code(VMH_EIO, "cannot remove %s: %s", j->old_path,
                      strerror(errno));
  return 0;
}

static void *compactor(void *arg) {
  struct journal *j = arg;
  pthread_mutex_lock(&j->mu);
  for (;;) {
    while (!j->wanted && !j->stopping)
      pthread_cond_wait(&j->ccv, &j->mu);
    if (!j->wanted)
      break;
    j->wanted = false;
    j->busy = true;
    pthread_mutex_unlock(&j->mu);
    int rc = compact(j);
    if (rc < 0)
      log_error("journal compaction failed (retried at the next one): %s",
                error_get());
    pthread_mutex_lock(&j->mu);
    j->busy = false;
    /* Not again at every batch: once the log has grown as much again. */
    j->retry_at = rc == 0 ? 0 : j->log_size + j->compact_size;
    if (rc == 0) {
      j->old_present = false;
      j->stats.compactions++;
    }
    pthread_cond_broadcast(&j->cv);
  }
  pthread_mutex_unlock(&j->mu);
  return NULL;
}

/* ---- direct writes ------------------------------------------------------- */

static size_t round_block(size_t n) {
  return (n + DIO_BLOCK - 1) / DIO_BLOCK * DIO_BLOCK;
}

/* Open the log for direct writes and load its partial last block (writer
 * role held, or at open).  A file system that refuses O_DIRECT leaves dfd
 * at -1: buffered writes and fdatasync, as durable, slower. */
static void direct_open(struct journal *j) {
  if (j->dfd >= 0)
    close(j->dfd);
  j->dfd =
      openat(j->dirfd, LOG_NAME, O_WRONLY | O_DIRECT | O_DSYNC | O_CLOEXEC);
  if (j->dfd < 0)
    goto out;
  if (!j->dbuf) {
    void *p = NULL;
    if (posix_memalign(&p, DIO_BLOCK, DIO_BLOCK) != 0)
      goto buffered;
    j->dbuf = p;
    j->dcap = DIO_BLOCK;
  }
  size_t head = j->log_size % DIO_BLOCK;
  if (head &&
      pread(j->fd, j->dbuf, head, (off_t)(j->log_size - head)) != (ssize_t)head)
    goto buffered;
  goto out;
buffered:
  close(j->dfd);
  j->dfd = -1;
out:
  pthread_mutex_lock(&j->mu);
  j->stats.direct = j->dfd >= 0;
  pthread_mutex_unlock(&j->mu);
}

/* Make dbuf hold n bytes, keeping its first head bytes.  0 or -1. */
static int direct_reserve(struct journal *j, size_t n, size_t head) {
  if (n <= j->dcap)
    return 0;
  size_t cap = j->dcap;
  while (cap < n)
    cap *= 2;
  void *p = NULL;
  if (posix_memalign(&p, DIO_BLOCK, cap) != 0)
    return -1;
  memcpy(p, j->dbuf, head);
  free(j->dbuf);
  j->dbuf = p;
  j->dcap = cap;
  return 0;
}

/* Write b at off, durably, in whole blocks from the block holding off;
 * then keep the new partial last block.  0 or -1 (errno). */
static int direct_write(struct journal *j, const struct batch *b,
                        uint64_t off) {
  size_t head = off % DIO_BLOCK, len = round_block(head + b->len);
  if (direct_reserve(j, len, head) < 0) {
    errno = ENOMEM;
    return -1;
  }
  memcpy(j->dbuf + head, b->buf, b->len);
  memset(j->dbuf + head + b->len, 0, len - head - b->len);
  if (pwrite_all(j->dfd, j->dbuf, len, (off_t)(off - head)) < 0)
    return -1;
  size_t end = head + b->len, tail = end % DIO_BLOCK;
  memmove(j->dbuf, j->dbuf + end - tail, tail);
  if (j->dcap > KEEP_BUFFER) {
    void *p = NULL;
    if (posix_memalign(&p, DIO_BLOCK, DIO_BLOCK) == 0) {
      memcpy(p, j->dbuf, tail);
      free(j->dbuf);
      j->dbuf = p;
      j->dcap = DIO_BLOCK;
    }
  }
  return 0;
}

/* Start a new log (writer role held, lock not held): the current one
 * becomes the old log the compactor merges.  0, or -1 when the log stays
 * (logged). */
static int rotate(struct journal *j) {
  if (renameat(j->dirfd, LOG_NAME, j->dirfd, OLD_NAME) < 0) {
    log_warn("cannot rename %s to %s for compaction: %s", j->log_path,
             j->old_path, strerror(errno));
    return -1;
  }
  int fd =
      openat(j->dirfd, LOG_NAME, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || fsync(j->dirfd) < 0) {
    log_warn("cannot start a new %s for compaction: %s", j->log_path,
             strerror(errno));
    if (fd >= 0) {
      close(fd);
      unlinkat(j->dirfd, LOG_NAME, 0);
    }
    renameat(j->dirfd, OLD_NAME, j->dirfd, LOG_NAME);
    return -1;
  }
  close(j->fd);
  pthread_mutex_lock(&j->mu);
  j->fd = fd;
  j->log_size = 0;
  j->alloc = 0;
  j->old_present = true;
  pthread_mutex_unlock(&j->mu);
  direct_open(j);
  fault("compact-after-rotate");
  return 0;
}

/* ---- group commit -------------------------------------------------------- */

/* Make the log at least `need` bytes long, in zero-filled chunks (writer
 * role held).  Synced with the batch that needed them.  0 or -1 (errno). */
static int grow(struct journal *j, uint64_t need) {
  static const unsigned char zeros[64 << 10];
  if (need <= j->alloc)
    return 0;
  uint64_t to = (need + CHUNK - 1) / CHUNK * CHUNK;
  for (uint64_t at = j->alloc; at < to; at += sizeof zeros)
    if (pwrite_all(j->fd, zeros, sizeof zeros, (off_t)at) < 0)
      return -1;
  j->alloc = to;
  return 0;
}

/* Write and sync b at off (writer role held, lock not held).  0, or
 * VMH_EIO with msg; *fatal when the log can no longer be trusted. */
static int write_batch(struct journal *j, const struct batch *b, uint64_t off,
                       char *msg, size_t n, bool *fatal) {
  fault("journal-before-write");
  if (fault_due("journal-torn-write")) {
    (void)!pwrite(j->fd, b->buf, b->len / 2 + 1, (off_t)off);
    fault_die("journal-torn-write");
  }
  uint64_t had = j->alloc;
  /* (Direct: the last block is written whole, zeros after the frames.) */
  if (grow(j, j->dfd >= 0 ? round_block(off + b->len) : off + b->len) < 0 ||
      (j->dfd < 0 && pwrite_all(j->fd, b->buf, b->len, (off_t)off) < 0)) {
    int e = errno;
    snprintf(msg, n, "cannot append to %s: %s", j->log_path, strerror(e));
    /* Undo a partial append, so the next batch starts on a frame. */
    *fatal = ftruncate(j->fd, (off_t)off) < 0;
    j->alloc = off;
    return VMH_EIO;
  }
  if (j->dfd >= 0) {
    /* New chunks are on disk before a direct write lands in them: their
     * blocks and the file's size are what that write does not sync. */
    if (j->alloc != had && fdatasync(j->fd) < 0) {
      snprintf(msg, n, "cannot sync %s: %s", j->log_path, strerror(errno));
      *fatal = true;
      return VMH_EIO;
    }
    if (direct_write(j, b, off) < 0) {
      /* What reached the disk is unknown, as after a failed fsync. */
      int e = errno;
      snprintf(msg, n, "cannot write %s: %s", j->log_path, strerror(e));
      *fatal = e != ENOMEM;
      return VMH_EIO;
    }
    fault("journal-after-write");
    return 0;
  }
  fault("journal-after-write");
  if (fdatasync(j->fd) < 0) {
    /* After a failed fsync the page cache may hold data that will never
     * reach the disk: nothing written from now on can be trusted. */
    snprintf(msg, n, "cannot sync %s: %s", j->log_path, strerror(errno));
    *fatal = true;
    return VMH_EIO;
  }
  return 0;
}

/* Take the writer role and write everything pending (lock held on entry
 * and on return). */
static void lead(struct journal *j) {
  struct batch b = j->pending;
  j->pending = j->spare;
  j->pending.len = 0;
  j->pending.waiters = NULL;
  j->writing = true;
  uint64_t off = j->log_size;
  bool failed = j->failed, fatal = false;
  char msg[sizeof j->why] = "";
  pthread_mutex_unlock(&j->mu);

  int err = 0;
  if (failed) {
    err = VMH_EIO;
    snprintf(msg, sizeof msg, "%s", j->why);
  } else if (b.len) {
    err = write_batch(j, &b, off, msg, sizeof msg, &fatal);
  }
  if (!err && b.len)
    fault("journal-after-sync");

  pthread_mutex_lock(&j->mu);
  if (!err && b.len) {
    j->log_size = off + b.len;
    j->stats.batches++;
    j->stats.log_bytes = j->log_size;
  }
  if (err)
    j->write_errors++;
  if (fatal && !j->failed) {
    j->failed = true;
    snprintf(j->why, sizeof j->why,
             "%s; no record is saved until vmhostd restarts", msg);
    log_error("%s", j->why);
  }
  for (struct journal_wait *w = b.waiters; w; w = w->next) {
    w->err = err;
    snprintf(w->msg, sizeof w->msg, "%s", err ? msg : "");
    w->done = 1;
  }
  b.waiters = NULL;
  b.len = 0;
  if (b.cap > KEEP_BUFFER) {
    free(b.buf);
    memset(&b, 0, sizeof b);
  }
  j->spare = b;
  pthread_cond_broadcast(&j->cv);
  bool big =
      !err && j->compact_size && j->log_size >= j->compact_size && !j->stopping;
  if (big && j->old_present && !j->busy && !j->wanted &&
      j->log_size >= j->retry_at) {
    /* The last compaction failed: try it again. */
    j->wanted = true;
    pthread_cond_signal(&j->ccv);
  } else if (big && !j->old_present) {
    pthread_mutex_unlock(&j->mu);
    int rotated = rotate(j);
    pthread_mutex_lock(&j->mu);
    if (rotated == 0) {
      j->wanted = true;
      pthread_cond_signal(&j->ccv);
    }
  }
  j->writing = false;
  pthread_cond_broadcast(&j->cv);
}

int journal_append(struct journal *j, char type, const char *key,
                   const char *value, size_t len, struct journal_wait *w) {
  size_t klen = strlen(key);
  if (klen > JOURNAL_MAX_KEY || len > JOURNAL_MAX_VALUE ||
      (type != JOURNAL_PUT && type != JOURNAL_DEL))
    return error_code(VMH_EINVAL, "record %.40s: too large for the journal",
                      key);
  int rc = 0;
  pthread_mutex_lock(&j->mu);
  if (j->failed)
    rc = error_code(VMH_EIO, "%s", j->why);
  else if (batch_add(&j->pending, j->seq + 1, type, key, klen, value, len) < 0)
    rc = error_code(VMH_ENOMEM, "out of memory");
  else {
    j->seq++;
    j->stats.frames++;
    if (w) {
      w->done = 0;
      w->err = 0;
      w->next = j->pending.waiters;
      j->pending.waiters = w;
    }
  }
  pthread_mutex_unlock(&j->mu);
  return rc;
}

int journal_wait(struct journal *j, struct journal_wait *w) {
  pthread_mutex_lock(&j->mu);
  while (!w->done) {
    if (j->writing)
      pthread_cond_wait(&j->cv, &j->mu);
    else
      lead(j);
  }
  pthread_mutex_unlock(&j->mu);
  if (w->err)
    error_set("%s", w->msg);
  return w->err;
}

int journal_sync(struct journal *j) {
  struct journal_wait w = {0};
  pthread_mutex_lock(&j->mu);
  uint64_t errors = j->write_errors;
  w.next = j->pending.waiters;
  j->pending.waiters = &w;
  pthread_mutex_unlock(&j->mu);
  int rc = journal_wait(j, &w);
  pthread_mutex_lock(&j->mu);
  if (rc == 0 && j->write_errors != errors)
    rc = error_code(VMH_EIO, "%s: a write failed", j->log_path);
  pthread_mutex_unlock(&j->mu);
  return rc;
}

void journal_compact(struct journal *j) {
  pthread_mutex_lock(&j->mu);
  while (j->writing)
    pthread_cond_wait(&j->cv, &j->mu);
  if (j->old_present || j->failed || j->stopping) {
    pthread_mutex_unlock(&j->mu);
    return;
  }
  j->writing = true;
  pthread_mutex_unlock(&j->mu);
  int rotated = rotate(j);
  pthread_mutex_lock(&j->mu);
  j->writing = false;
  if (rotated == 0) {
    j->wanted = true;
    pthread_cond_signal(&j->ccv);
  }
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
}

void journal_get_stats(struct journal *j, struct journal_stats *out) {
  pthread_mutex_lock(&j->mu);
  *out = j->stats;
  pthread_mutex_unlock(&j->mu);
}

/* ---- open and close ------------------------------------------------------ */

static int paths(struct journal *j, const char *dir) {
  if (!(j->dir = strdup(dir)) ||
      asprintf(&j->log_path, "%s/" LOG_NAME, dir) < 0 ||
      asprintf(&j->old_path, "%s/" OLD_NAME, dir) < 0 ||
      asprintf(&j->snap_path, "%s/" SNAP_NAME, dir) < 0)
    return error_code(VMH_ENOMEM, "out of memory");
  return 0;
}

static int recover(struct journal *j) {
  bool old = false, cur = false;
  size_t end = 0, old_end;
  int rc = recover_snapshot(j->snap_path, &j->recovered);
  if (rc == 0)
    rc = recover_log(j, &j->recovered, j->old_path, true, &old, &old_end);
  if (rc == 0)
    rc = recover_log(j, &j->recovered, j->log_path, false, &cur, &end);
  if (rc < 0)
    return rc;
  j->old_present = old;
  j->seq = j->recovered.last_seq;
  j->fd = openat(j->dirfd, LOG_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  struct stat st;
  if (j->fd < 0 || fstat(j->fd, &st) < 0 || (!cur && fsync(j->dirfd) < 0))
    return error_code(VMH_EIO, "cannot open %s: %s", j->log_path,
                      strerror(errno));
  j->log_size = end;
  j->alloc = (uint64_t)st.st_size;
  j->stats.log_bytes = j->log_size;
  direct_open(j);
  return 0;
}

int journal_open(const char *dir, uint64_t compact_size, struct journal **ret) {
  struct journal *j = calloc(1, sizeof *j);
  if (!j)
    return error_code(VMH_ENOMEM, "out of memory");
  j->fd = j->dirfd = j->dfd = -1;
  j->compact_size = compact_size;
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  pthread_cond_init(&j->ccv, NULL);
  fault_init();
  int rc = paths(j, dir);
  if (rc == 0 && (j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
    rc = error_code(VMH_EIO, "cannot open %s: %s", dir, strerror(errno));
  if (rc == 0) {
    remove_leftovers(j);
    rc = recover(j);
  }
  if (rc == 0 && pthread_create(&j->thread, NULL, compactor, j) != 0)
    rc = error_code(VMH_EIO, "cannot start the journal's compaction thread");
  if (rc < 0) {
    journal_close(j);
    return rc;
  }
  j->thread_started = true;
  if (j->old_present) {
    log_info("%s is left by an interrupted compaction: compacting again",
             j->old_path);
    j->wanted = true;
    pthread_cond_signal(&j->ccv);
  }
  *ret = j;
  return 0;
}

void journal_records(struct journal *j, journal_record_fn fn, void *opaque) {
  struct replay *r = &j->recovered;
  for (size_t i = 0; i < r->n; i++)
    if (!r->v[i]->dead)
      fn(opaque, r->v[i]->key, r->v[i]->value, r->v[i]->len);
  replay_free(r);
}

void journal_close(struct journal *j) {
  if (!j)
    return;
  if (j->thread_started) {
    pthread_mutex_lock(&j->mu);
    j->stopping = true;
    pthread_cond_signal(&j->ccv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
  }
  if (j->fd >= 0) {
    close(j->fd);
    log_info("journal: %" PRIu64 " record%s written in %" PRIu64
             " sync%s, %" PRIu64 " compaction%s",
             j->stats.frames, j->stats.frames == 1 ? "" : "s", j->stats.batches,
             j->stats.batches == 1 ? "" : "s", j->stats.compactions,
             j->stats.compactions == 1 ? "" : "s");
  }
  if (j->dfd >= 0)
    close(j->dfd);
  free(j->dbuf);
  if (j->dirfd >= 0)
    close(j->dirfd);
  replay_free(&j->recovered);
  free(j->pending.buf);
  free(j->spare.buf);
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cv);
  pthread_cond_destroy(&j->ccv);
  free(j->dir);
  free(j->log_path);
  free(j->old_path);
  free(j->snap_path);
  free(j);
}
