/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The record journal (core/journal.c) on its own: CRC32C, frames written by
 * concurrent writers (direct writes where the file system allows) and read
 * back after a reopen, a torn tail cut off and
 * set aside, damage in the middle refused, compaction into a snapshot. */
#include <config.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core-unit.h"
#include "error.h"
#include "journal.h"

#define THREADS 8
#define PER_THREAD 200

static char dir[] = "/tmp/test-journal-unit.XXXXXX";

/* What a reopen delivered: key -> value, kept as "key=value\n" lines. */
struct seen {
  char *text;
  size_t len, n;
};

static void seen_cb(void *opaque, const char *key, const char *value,
                    size_t len) {
  struct seen *s = opaque;
  size_t add = strlen(key) + len + 2;
  s->text = realloc(s->text, s->len + add + 1);
  CHECK(s->text);
  s->len += (size_t)sprintf(s->text + s->len, "%s=%s\n", key, value);
  s->n++;
}

static struct journal *reopen(uint64_t compact, struct seen *s) {
  struct journal *j = NULL;
  int r = journal_open(dir, compact, &j);
  if (r < 0)
    unit_fail(__FILE__, __LINE__, "journal_open: %s", error_get());
  free(s->text);
  memset(s, 0, sizeof *s);
  journal_records(j, seen_cb, s);
  return j;
}

static void put(struct journal *j, const char *key, const char *value) {
  struct journal_wait w;
  CHECK_INT(journal_append(j, JOURNAL_PUT, key, value, strlen(value), &w), ==,
            0);
  CHECK_INT(journal_wait(j, &w), ==, 0);
}

static void del(struct journal *j, const char *key) {
  struct journal_wait w;
  CHECK_INT(journal_append(j, JOURNAL_DEL, key, NULL, 0, &w), ==, 0);
  CHECK_INT(journal_wait(j, &w), ==, 0);
}

struct worker {
  struct journal *j;
  int id;
};

/* Each thread puts its keys twice (the second value wins) and deletes
 * every fourth. */
static void *writer(void *arg) {
  struct worker *w = arg;
  char key[32], value[64];
  for (int i = 0; i < PER_THREAD; i++) {
    snprintf(key, sizeof key, "t%d-%d", w->id, i);
    snprintf(value, sizeof value, "first %d", i);
    put(w->j, key, value);
    snprintf(value, sizeof value, "second %d", i);
    put(w->j, key, value);
    if (i % 4 == 0)
      del(w->j, key);
  }
  return NULL;
}

static void concurrent(struct journal *j) {
  pthread_t t[THREADS];
  struct worker w[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (struct worker){j, i};
    CHECK(pthread_create(&t[i], NULL, writer, &w[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
}

/* extra: records not from the writers. */
static void check_concurrent(const struct seen *s, size_t extra) {
  CHECK_INT(s->n, ==, THREADS * (PER_THREAD - PER_THREAD / 4) + extra);
  CHECK_HAS(s->text, "t3-7=second 7\n");
  CHECK_LACKS(s->text, "t3-8=");
  CHECK_LACKS(s->text, "first");
}

static char *path(const char *name) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%s/%s", dir, name);
  return buf;
}

static off_t size_of(const char *name) {
  struct stat st;
  return stat(path(name), &st) == 0 ? st.st_size : -1;
}

static void append_bytes(const char *name, const void *data, size_t len) {
  int fd = open(path(name), O_WRONLY | O_APPEND);
  CHECK(fd >= 0);
  CHECK(write(fd, data, len) == (ssize_t)len);
  close(fd);
}

static int count_prefix(const char *prefix) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)))
    n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return n;
}

int main(void) {
  struct seen s = {0};
  CHECK(mkdtemp(dir));

  /* The check value of CRC32C. */
  CHECK_INT(journal_crc32c(0, "123456789", 9), ==, 0xE3069283u);
  CHECK_INT(journal_crc32c(journal_crc32c(0, "1234", 4), "56789", 5), ==,
            0xE3069283u);

  /* Concurrent writers, read back after a reopen. */
  struct journal *j = reopen(0, &s);
  CHECK_INT(s.n, ==, 0);
  concurrent(j);
  struct journal_stats st;
  journal_get_stats(j, &st);
  CHECK_INT(st.frames, ==, THREADS * PER_THREAD * 9 / 4);
  CHECK(st.batches >= 1 && st.batches <= st.frames);
  /* Batches go by direct synchronous writes wherever the file system
   * takes O_DIRECT (the reopens below prove the partial last block is
   * carried over, not zeroed). */
  int probe = open(path("probe"), O_WRONLY | O_CREAT | O_DIRECT, 0600);
  CHECK_INT(st.direct, ==, probe >= 0);
  if (probe >= 0)
    close(probe);
  unlink(path("probe"));
  journal_close(j);
  j = reopen(0, &s);
  check_concurrent(&s, 0);

  /* A torn tail (half a frame) is cut off and set aside. */
  off_t good = size_of("vms.journal");
  journal_close(j);
  append_bytes("vms.journal", "VMHJ\x40\0\0\0garbage", 15);
  j = reopen(0, &s);
  check_concurrent(&s, 0);
  CHECK(size_of("vms.journal") <= good);
  CHECK_INT(count_prefix("vms.journal.corrupt-"), ==, 1);
  /* Writes go on after the cut, and survive; frames nobody waits for
   * are durable after journal_sync. */
  put(j, "after", "cut");
  CHECK_INT(journal_append(j, JOURNAL_PUT, "nowait", "1", 1, NULL), ==, 0);
  CHECK_INT(journal_append(j, JOURNAL_DEL, "nowait", NULL, 0, NULL), ==, 0);
  CHECK_INT(journal_append(j, JOURNAL_PUT, "synced", "2", 1, NULL), ==, 0);
  CHECK_INT(journal_sync(j), ==, 0);
  journal_close(j);
  j = reopen(0, &s);
  CHECK_HAS(s.text, "after=cut\n");
  CHECK_HAS(s.text, "synced=2\n");
  CHECK_LACKS(s.text, "nowait=");
  journal_close(j);

  /* Damage in the middle refuses to open and changes nothing. */
  int fd = open(path("vms.journal"), O_RDWR);
  CHECK(fd >= 0);
  char byte;
  CHECK(pread(fd, &byte, 1, 100) == 1);
  byte ^= 0x55;
  CHECK(pwrite(fd, &byte, 1, 100) == 1);
  j = NULL;
  CHECK(journal_open(dir, 0, &j) < 0 && !j);
  CHECK_HAS(error_get(), "is damaged at byte");
  CHECK_HAS(error_get(), "valid records follow");
  CHECK_HAS(error_get(), "truncate -s");
  byte ^= 0x55;
  CHECK(pwrite(fd, &byte, 1, 100) == 1);
  close(fd);

  /* Compaction: a small limit, writers going on meanwhile. */
  j = reopen(4096, &s);
  concurrent(j);
  journal_compact(j);
  put(j, "late", "one");
  journal_close(j); /* waits for the compaction */
  CHECK(size_of("vms.snapshot") > 0);
  CHECK_INT(size_of("vms.journal.compacting"), ==, -1);
  j = reopen(4096, &s);
  check_concurrent(&s, 3);
  CHECK_HAS(s.text, "after=cut\n");
  CHECK_HAS(s.text, "late=one\n");
  journal_get_stats(j, &st);
  CHECK(st.log_bytes < 100000); /* frames after the last compaction */
  journal_close(j);

  /* A damaged snapshot refuses to open. */
  fd = open(path("vms.snapshot"), O_RDWR);
  CHECK(fd >= 0);
  CHECK(pwrite(fd, "X", 1, 40) == 1);
  close(fd);
  j = NULL;
  CHECK(journal_open(dir, 0, &j) < 0 && !j);
  CHECK_HAS(error_get(), "vms.snapshot is damaged");

  free(s.text);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
  return 0;
}
