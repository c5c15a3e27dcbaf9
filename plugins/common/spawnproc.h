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

/* spawn_process, with the child leading a process group of its own (its
 * pid is the group's id): a signal sent to the daemon's group (a terminal's
 * Ctrl-C, a service manager stopping vmhostd) does not reach it, so a
 * supervised program (a VMM) outlives a daemon restart, and kill(-pid, sig)
 * reaches it and whatever it started. */
int spawn_process_group(char *const argv[], int out_fd, int err_fd,
                        pid_t *ret_pid);

/* A pidfd for pid (pidfd_open, close-on-exec): readable (POLLIN) once the
 * process has exited, and it names that process only, never a later one
 * that reuses the pid.  Works for processes that are not our children (a
 * VMM adopted after a restart).  Returns the fd, or -1 with errno set. */
int spawn_pidfd(pid_t pid);

/* waitpid(pid) through EINTR.  Returns the wait status, or -1 (errno set). */
int spawn_wait(pid_t pid);

#endif
