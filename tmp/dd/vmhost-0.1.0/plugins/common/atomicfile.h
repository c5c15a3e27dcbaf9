/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Crash-safe file writes (libvmhutil): the new content goes to a temporary
 * file in the same directory, is flushed to disk, renamed over the old file,
 * and the directory is flushed too, so that after a crash a reader finds the
 * old content or the new, never a mix, and the rename itself survives.
 *
 * Functions return 0, or -1 with errno set (the caller words the message:
 * "cannot write %s: %s", path, strerror(errno)); they never log. */
#ifndef VMHOST_UTIL_ATOMICFILE_H
#define VMHOST_UTIL_ATOMICFILE_H

#include <stddef.h>
#include <sys/types.h>

/* Write all of data to fd, going on after short writes and EINTR. */
int write_all(int fd, const void *data, size_t len);

/* fsync the directory that holds path (its last component removed). */
int fsync_parent(const char *path);

/* A file being written: fd is where to write (write_all, or a library that
 * wants an fd); nothing is visible under path until atomic_commit. */
struct atomic_file {
  int fd;
  char *path; /* owned */
  char *tmp;  /* owned: "<dir>/.<name>.XXXXXX", unique per call */
};

/* Create the temporary file for path with permissions `mode` (exactly:
 * the umask does not apply).  On failure *af holds nothing to release. */
int atomic_open(struct atomic_file *af, const char *path, mode_t mode);
/* fsync, close, rename over path, fsync the directory.  Releases af
 * whatever happens; on failure the temporary file is removed and path is
 * as it was (unless only the directory fsync failed: then the new content
 * is in place but may not survive a crash). */
int atomic_commit(struct atomic_file *af);
/* Give up: close and remove the temporary file, release af.  Keeps errno.
 * Does nothing on a released af (fd -1). */
void atomic_abort(struct atomic_file *af);

/* Publish a file made under a temporary name in the directory dirfd (by
 * this process or by a program it ran, such as qemu-img): fsync fd (the
 * file), rename tmp to name without replacing anything (renameat2
 * RENAME_NOREPLACE: EEXIST when name exists), fsync the directory.  On
 * failure the caller removes tmp; if only the directory fsync failed, tmp is
 * already name (complete, but the rename may not survive a crash). */
int publish_at(int fd, int dirfd, const char *tmp, const char *name);

/* The whole sequence for content already in memory. */
int atomic_write(const char *path, const void *data, size_t len, mode_t mode);

#endif
