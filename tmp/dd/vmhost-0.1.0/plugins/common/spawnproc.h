/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Starting a helper program (libvmhutil) from a daemon whose threads block
 * and ignore signals and whose descriptors must not leak into children. */
#ifndef VMHOST_UTIL_SPAWNPROC_H
#define VMHOST_UTIL_SPAWNPROC_H

#include <sys/types.h>

/* Run argv[0] (looked up in PATH, no shell) with argv and the current
 * environment.  In the child: stdin is /dev/null, stdout is out_fd and
 * stderr err_fd (-1: the parent's own), the signal mask is empty and every
 * signal has its default disposition, and no other descriptor is open.
 * Returns 0 with *ret_pid (the caller reaps it: spawn_wait), or an errno
 * value (not -1) when the program could not be started. */
int spawn_process(char *const argv[], int out_fd, int err_fd, pid_t *ret_pid);

/* waitpid(pid) through EINTR.  Returns the wait status, or -1 (errno set). */
int spawn_wait(pid_t pid);

#endif
