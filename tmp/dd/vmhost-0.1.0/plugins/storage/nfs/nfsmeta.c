/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The nfs plugin's records of volumes and images: see nfsmeta.h. */
#include <config.h>

#include "nfsmeta.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <nfsc/libnfs.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qemuimg.h"

/* Records are small; a longer file is not one of ours. */
#define META_MAX 1024

static int by_name(const void *key, const void *elem) {
  return strcmp(key, *(const char *const *)elem);
}

struct meta *table_find(const struct ptrvec *t, const char *name, size_t *at) {
  size_t lo = 0, hi = t->n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int cmp = by_name(name, &t->v[mid]);
    if (cmp == 0) {
      if (at)
        *at = mid;
      return t->v[mid];
    }
    if (cmp < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  if (at)
    *at = lo;
  return NULL;
}

int table_add(struct ptrvec *t, struct meta *m) {
  size_t at;

  if (table_find(t, m->name, &at))
    return -1;
  return ptrvec_insert(t, at, m);
}

struct meta *table_take(struct ptrvec *t, const char *name) {
  size_t at;

  if (table_find(t, name, &at) == NULL)
    return NULL;
  return ptrvec_remove(t, at);
}

void table_free(struct ptrvec *t) {
  for (size_t i = 0; i < t->n; i++)
    free(t->v[i]);
  ptrvec_free(t);
}

void tmp_name(char *buf, size_t len, const char *name) {
  static atomic_uint counter;
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  snprintf(buf, len, TMP_PREFIX "%s.%lx%x%lx", name, (unsigned long)getpid(),
           atomic_fetch_add(&counter, 1), (unsigned long)ts.tv_nsec);
}

static void meta_text(const struct meta *m, char *buf, size_t len) {
  snprintf(buf, len,
           "format=%s\nvsize=%" PRIu64 "\nbytes=%" PRIu64
           "\nbacking=%s\nsha256=%s\n",
           disk_format_name(m->format), m->vsize, m->bytes, m->backing,
           m->sha256);
}

/* Parse "key=value" lines into m; 0, or -1 when a line or value is not
 * one of ours. */
static int meta_parse(char *text, struct meta *m) {
  char *line, *save = NULL;

  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *v = strchr(line, '='), *end;
    if (v == NULL)
      return -1;
    *v++ = '\0';
    if (strcmp(line, "format") == 0) {
      if ((m->format = disk_format_parse(v)) == VMH_FORMAT_DEFAULT)
        return -1;
    } else if (strcmp(line, "vsize") == 0 || strcmp(line, "bytes") == 0) {
      errno = 0;
      uint64_t n = strtoull(v, &end, 10);
      if (errno || *end || end == v)
        return -1;
      *(line[0] == 'v' ? &m->vsize : &m->bytes) = n;
    } else if (strcmp(line, "backing") == 0) {
      if (v[0] && !vmh_name_valid(v))
        return -1;
      snprintf(m->backing, sizeof m->backing, "%s", v);
    } else if (strcmp(line, "sha256") == 0) {
      if (strlen(v) > SHA256_HEX)
        return -1;
      snprintf(m->sha256, sizeof m->sha256, "%s", v);
    } else {
      return -1;
    }
  }
  return m->format == VMH_FORMAT_DEFAULT ? -1 : 0;
}

/* Write data as a new file at path (exclusive), flushed to the server. */
static int write_new(struct conns *c, struct nfs_context *nfs, const char *path,
                     const char *data, size_t len) {
  struct nfsfh *fh = NULL;
  int rc = nfs_create(nfs, path, O_WRONLY | O_EXCL, 0644, &fh);

  if (rc < 0)
    return conns_fail(c, nfs, rc, "create %s", path);
  if ((rc = nfs_pwrite(nfs, fh, 0, len, data)) >= 0 && (size_t)rc != len)
    rc = -EIO;
  if (rc >= 0)
    rc = nfs_fsync(nfs, fh);
  nfs_close(nfs, fh);
  if (rc < 0) {
    int code = conns_fail(c, nfs, rc, "write %s", path);
    nfs_unlink(nfs, path);
    return code;
  }
  return 0;
}

int meta_store(struct conns *c, struct nfs_context *nfs, const char *dir,
               const struct meta *m, int replace) {
  char text[META_MAX], tmp[VMH_NAME_MAX + 64], tpath[4096], path[4096];
  int rc;

  meta_text(m, text, sizeof text);
  tmp_name(tmp, sizeof tmp, m->name);
  snprintf(tpath, sizeof tpath, "%s/%s", dir, tmp);
  snprintf(path, sizeof path, "%s/%s", dir, m->name);
  if ((rc = write_new(c, nfs, tpath, text, strlen(text))) < 0)
    return rc;
  rc = replace ? nfs_rename(nfs, tpath, path) : nfs_link(nfs, tpath, path);
  if (rc < 0) {
    int code = rc == -EEXIST
                   ? vmh_fail(c->host, VMH_EEXIST, "%s exists already", path)
                   : conns_fail(c, nfs, rc, "record %s", path);
    nfs_unlink(nfs, tpath);
    return code;
  }
  /* A link leaves the temporary name behind; a failure here leaves it to
   * the next open's clean-up. */
  if (!replace)
    nfs_unlink(nfs, tpath);
  return 0;
}

int meta_load(struct conns *c, struct nfs_context *nfs, const char *dir,
              const char *name, struct meta *m) {
  char text[META_MAX + 1], path[4096];
  struct nfsfh *fh = NULL;
  int rc;

  snprintf(path, sizeof path, "%s/%s", dir, name);
  if ((rc = nfs_open(nfs, path, O_RDONLY, &fh)) < 0)
    return rc == -ENOENT ? VMH_ENOENT : conns_fail(c, nfs, rc, "open %s", path);
  rc = nfs_pread(nfs, fh, 0, META_MAX, text);
  nfs_close(nfs, fh);
  if (rc < 0)
    return conns_fail(c, nfs, rc, "read %s", path);
  text[rc] = '\0';
  memset(m, 0, sizeof *m);
  snprintf(m->name, sizeof m->name, "%s", name);
  if (rc == META_MAX || meta_parse(text, m) < 0)
    return vmh_fail(c->host, VMH_EINVAL, "%s is not a record vmhost wrote",
                    path);
  return 0;
}
