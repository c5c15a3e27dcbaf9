/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* file_read, file_write: only under the directories of the config, after
 * resolving symlinks (a link inside an allowed directory that points out
 * of it is refused), regular files only, sizes capped. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define E(x) VMHOST__AGENT__V1__ERROR_CODE__ERROR_##x

/* 1 when path (resolved) is dir or lies under it (dir resolved too). */
static int under(const char *dir, const char *path) {
  char real[PATH_MAX];
  if (realpath(dir, real) == NULL)
    return 0;
  size_t n = strlen(real);
  if (n == 1)
    return 1; /* "/" */
  return strncmp(real, path, n) == 0 && (path[n] == '/' || path[n] == 0);
}

/* Resolves req_path into ret (PATH_MAX): the file itself when it exists
 * (read), else its directory plus its last component (write); checks it
 * lies under one of dirs.  0, or an error set in resp. */
static int resolve(AgentResponse *resp, const char *req_path, char **dirs,
                   size_t n_dirs, const char *what, char *ret) {
  if (req_path[0] != '/' || strlen(req_path) >= PATH_MAX)
    return agent_error(resp, E(INVALID_ARGUMENT),
                       "path must be absolute and under %d bytes", PATH_MAX);
  if (n_dirs == 0)
    return agent_error(resp, E(PERMISSION_DENIED),
                       "the agent's config allows no file %s (files.%s)", what,
                       what);
  char parent[PATH_MAX], real[PATH_MAX];
  const char *slash = strrchr(req_path, '/');
  const char *base = slash + 1;
  if (*base == 0 || !strcmp(base, ".") || !strcmp(base, ".."))
    return agent_error(resp, E(INVALID_ARGUMENT), "%s does not name a file",
                       req_path);
  memcpy(parent, req_path, (size_t)(slash - req_path));
  parent[slash - req_path] = 0;
  if (realpath(parent[0] ? parent : "/", real) == NULL)
    return agent_error(resp, E(NOT_FOUND), "%s: %s", parent, strerror(errno));
  int n = snprintf(ret, PATH_MAX, "%s/%s", strcmp(real, "/") ? real : "", base);
  if (n < 0 || n >= PATH_MAX)
    return agent_error(resp, E(INVALID_ARGUMENT), "path too long");
  for (size_t i = 0; i < n_dirs; i++)
    if (under(dirs[i], ret))
      return 0;
  return agent_error(resp, E(PERMISSION_DENIED),
                     "%s is not under a directory the agent's config allows "
                     "to %s (files.%s)",
                     req_path, what, what);
}

int do_file_read(const struct agent_config *c,
                 const Vmhost__Agent__V1__FileReadRequest *req,
                 AgentResponse *resp) {
  char path[PATH_MAX];
  if (resolve(resp, req->path, c->read_dirs, c->n_read_dirs, "read", path) < 0)
    return -1;
  /* O_NOFOLLOW: the last component must not be a link either. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0 && errno == ELOOP)
    return agent_error(resp, E(PERMISSION_DENIED),
                       "%s is a symbolic link (never followed)", req->path);
  if (fd < 0)
    return agent_error(resp, errno == ENOENT ? E(NOT_FOUND) : E(IO), "%s: %s",
                       req->path, strerror(errno));
  struct stat st;
  int r = -1;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    agent_error(resp, E(INVALID_ARGUMENT), "%s is not a regular file",
                req->path);
    goto out;
  }
  size_t want = req->max_bytes && req->max_bytes < c->file_max_bytes
                    ? req->max_bytes
                    : c->file_max_bytes;
  Vmhost__Agent__V1__FileReadResponse *f = malloc(sizeof *f);
  if (f == NULL)
    goto out;
  vmhost__agent__v1__file_read_response__init(f);
  resp->body_case = VMHOST__AGENT__V1__RESPONSE__BODY_FILE_READ;
  resp->file_read = f;
  f->size = (uint64_t)st.st_size;
  if ((f->data.data = malloc(want ? want : 1)) == NULL)
    goto out;
  ssize_t n = pread(fd, f->data.data, want, (off_t)req->offset);
  if (n < 0) {
    agent_error(resp, E(IO), "%s: %s", req->path, strerror(errno));
    goto out;
  }
  f->data.len = (size_t)n;
  f->eof = req->offset + (uint64_t)n >= f->size;
  r = 0;
out:
  close(fd);
  return r;
}

int do_file_write(const struct agent_config *c,
                  const Vmhost__Agent__V1__FileWriteRequest *req,
                  AgentResponse *resp) {
  char path[PATH_MAX], tmp[PATH_MAX + 32];
  if (req->data.len > c->file_max_bytes)
    return agent_error(
        resp, E(TOO_LARGE),
        "%zu bytes is over the agent's cap of %u (files.max_bytes)",
        req->data.len, c->file_max_bytes);
  if (req->mode & ~07777u)
    return agent_error(resp, E(INVALID_ARGUMENT), "mode %o is not 0..07777",
                       req->mode);
  if (resolve(resp, req->path, c->write_dirs, c->n_write_dirs, "write", path) <
      0)
    return -1;
  struct stat st;
  if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
    return agent_error(resp, E(INVALID_ARGUMENT),
                       "%s exists and is not a regular file", req->path);
  snprintf(tmp, sizeof tmp, "%s.vmhost-agent.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                req->mode ? req->mode : 0644);
  if (fd < 0)
    return agent_error(resp, E(IO), "%s: %s", tmp, strerror(errno));
  size_t done = 0;
  while (done < req->data.len) {
    ssize_t w = write(fd, req->data.data + done, req->data.len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      break;
    done += (size_t)w;
  }
  int failed = done < req->data.len ||
               fchmod(fd, req->mode ? req->mode : 0644) < 0 || fsync(fd) < 0;
  int e = errno;
  if (close(fd) < 0 && !failed) {
    failed = 1;
    e = errno;
  }
  if (!failed && rename(tmp, path) < 0) {
    failed = 1;
    e = errno;
  }
  if (failed) {
    unlink(tmp);
    return agent_error(resp, E(IO), "writing %s: %s", req->path, strerror(e));
  }
  Vmhost__Agent__V1__FileWriteResponse *f = malloc(sizeof *f);
  if (f == NULL)
    return -1;
  vmhost__agent__v1__file_write_response__init(f);
  f->size = req->data.len;
  resp->body_case = VMHOST__AGENT__V1__RESPONSE__BODY_FILE_WRITE;
  resp->file_write = f;
  return 0;
}
