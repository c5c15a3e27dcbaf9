/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Starting helper programs: see spawnproc.h. */
#include <config.h>

#include "spawnproc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

int spawn_process(char *const argv[], int out_fd, int err_fd, pid_t *ret_pid) {
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
      (rc = posix_spawnattr_setflags(
           &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0)
    goto out;
  rc = posix_spawnp(ret_pid, argv[0], &fa, &attr, argv, environ);
out:
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

int spawn_wait(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return status;
}
