/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service manager's readiness protocol (systemd's sd_notify(3), the
 * documented datagram protocol, without libsystemd): state lines such as
 * "READY=1", "STOPPING=1", "STATUS=..." sent as one datagram to the
 * AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace).  Without $NOTIFY_SOCKET every call does nothing.
 *
 * sdnotify_init takes the variable out of the environment, so that the
 * programs plugins spawn (dnsmasq, QEMU, qemu-img) never talk to the
 * manager in the daemon's name.  Call it once, before threads start.
 * sdnotify is thread-safe (one sendto per message). */
#ifndef VMHOST_CORE_SDNOTIFY_H
#define VMHOST_CORE_SDNOTIFY_H

/* Read and unset $NOTIFY_SOCKET.  Returns 0, or -1 when the variable is
 * set but unusable (too long, not absolute nor abstract): a warning is
 * logged and notifications are off. */
int sdnotify_init(void);

/* Send one message (printf format; lines separated by '\n').  Returns 1
 * when sent, 0 when there is no manager to tell, -1 on a send error (logged
 * once as a warning: the daemon runs on without its manager). */
int sdnotify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Forget the socket (at exit, and between unit tests). */
void sdnotify_close(void);

#endif
