/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Crash-safe file writes: see atomicfile.h. */
#include <config.h>

#include "atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* renameat2 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0) { /* no progress and no error: would loop for ever */
      errno = EIO;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* The directory part of path ("." when it has none); malloc'd. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    return strdup(".");
  if (slash == path)
    return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

/* fsync the directory dir (relative to the directory at).  at may be an
 * O_PATH descriptor, which fsync itself refuses. */
static int fsync_dir(int at, const char *dir) {
  int fd = openat(at, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int r = fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return r;
}

int fsync_parent(const char *path) {
  char *dir = dir_of(path);
  if (!dir)
    return -1;
  int r = fsync_dir(AT_FDCWD, dir);
  int e = errno;
  free(dir);
  errno = e;
  return r;
}

static void release(struct atomic_file *af) {
  free(af->path);
  free(af->tmp);
  af->path = af->tmp = NULL;
  af->fd = -1;
}

int atomic_open(struct atomic_file *af, const char *path, mode_t mode) {
  const char *slash = strrchr(path, '/');
  const char *name = slash ? slash + 1 : path;
  int dir_len = slash ? (int)(slash - path + 1) : 0;

  af->fd = -1;
  af->path = strdup(path);
  /* Hidden and with a random suffix: directory scanners skip it, and two
   * writers of one path never share a temporary file. */
  if (!af->path ||
      asprintf(&af->tmp, "%.*s.%s.XXXXXX", dir_len, path, name) < 0) {
    af->tmp = NULL;
    release(af);
    errno = ENOMEM;
    return -1;
  }
  af->fd = mkostemp(af->tmp, O_CLOEXEC);
  if (af->fd < 0) {
    int e = errno;
    release(af);
    errno = e;
    return -1;
  }
  if (fchmod(af->fd, mode) < 0) {
    atomic_abort(af);
    return -1;
  }
  return 0;
}

void atomic_abort(struct atomic_file *af) {
  int e = errno;
  if (af->fd >= 0)
    close(af->fd);
  if (af->tmp)
    unlink(af->tmp);
  release(af);
  errno = e;
}

int atomic_commit(struct atomic_file *af) {
  if (fsync(af->fd) < 0) {
    atomic_abort(af);
    return -1;
  }
  int fd = af->fd;
  af->fd = -1;
  if (close(fd) < 0 || rename(af->tmp, af->path) < 0) {
    atomic_abort(af);
    return -1;
  }
  int r = fsync_parent(af->path);
  int e = errno;
  release(af);
  errno = e;
  return r;
}

int publish_at(int fd, int dirfd, const char *tmp, const char *name) {
  if (fsync(fd) < 0 || renameat2(dirfd, tmp, dirfd, name, RENAME_NOREPLACE) < 0)
    return -1;
  return fsync_dir(dirfd, ".");
}

int atomic_write(const char *path, const void *data, size_t len, mode_t mode) {
  struct atomic_file af;
  if (atomic_open(&af, path, mode) < 0)
    return -1;
  if (write_all(af.fd, data, len) < 0) {
    atomic_abort(&af);
    return -1;
  }
  return atomic_commit(&af);
}
