/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Starting helper programs: see spawnproc.h. */
#include <config.h>

#include "spawnproc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int spawn(char *const argv[], int out_fd, int err_fd, int own_group,
                 pid_t *ret_pid) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none, all;
  int rc;

  if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
    return rc;
  if ((rc = posix_spawnattr_init(&attr)) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return rc;
  }
  /* vmhostd's threads block SIGTERM and friends (a thread waits for them)
   * and ignore SIGPIPE; a child inheriting either could not be stopped, or
   * would misbehave on a closed pipe. */
  sigemptyset(&none);
  sigfillset(&all);
  if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY,
                                             0)) != 0 ||
      (out_fd >= 0 &&
       (rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 1)) != 0) ||
      (err_fd >= 0 &&
       (rc = posix_spawn_file_actions_adddup2(&fa, err_fd, 2)) != 0) ||
      /* Descriptors opened without O_CLOEXEC (by a library, say) must not
       * leak into the child. */
      (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0 ||
      (rc = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
      (rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0 ||
      (own_group && (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0) ||
      (rc = posix_spawnattr_setflags(
           &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                      (own_group ? POSIX_SPAWN_SETPGROUP : 0))) != 0)
    goto out;
  rc = posix_spawnp(ret_pid, argv[0], &fa, &attr, argv, environ);
out:
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

int spawn_process(char *const argv[], int out_fd, int err_fd, pid_t *ret_pid) {
  return spawn(argv, out_fd, err_fd, 0, ret_pid);
}

int spawn_process_group(char *const argv[], int out_fd, int err_fd,
                        pid_t *ret_pid) {
  return spawn(argv, out_fd, err_fd, 1, ret_pid);
}

int spawn_pidfd(pid_t pid) {
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);

  if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int spawn_wait(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return status;
}
