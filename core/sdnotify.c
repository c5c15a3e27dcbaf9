/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sdnotify.h"

/* The manager's address; len 0 while there is none.  Written only by
 * sdnotify_init/close (before and after the threads), read by sdnotify. */
static struct sockaddr_un notify_addr;
static socklen_t notify_len;
static int notify_fd = -1;
static int warned;

int sdnotify_init(void) {
  const char *env = getenv("NOTIFY_SOCKET");
  sdnotify_close();
  if (!env || !*env)
    return 0;
  size_t n = strlen(env);
  int rc = -1;
  if ((env[0] != '/' && env[0] != '@') || n >= sizeof notify_addr.sun_path) {
    log_warn(
        "NOTIFY_SOCKET '%s' is not an absolute path or @abstract name "
        "of at most %zu bytes: not notifying the service manager",
        env, sizeof notify_addr.sun_path - 1);
    goto out;
  }
  notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (notify_fd < 0) {
    log_warn("cannot make the NOTIFY_SOCKET socket: %s", strerror(errno));
    goto out;
  }
  memset(&notify_addr, 0, sizeof notify_addr);
  notify_addr.sun_family = AF_UNIX;
  memcpy(notify_addr.sun_path, env, n);
  if (env[0] == '@')
    notify_addr.sun_path[0] = '\0'; /* abstract: the length bounds it */
  notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                           (env[0] == '/' ? 1 : 0));
  rc = 0;
out:
  unsetenv("NOTIFY_SOCKET");
  return rc;
}

int sdnotify(const char *fmt, ...) {
  if (!notify_len)
    return 0;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -1;
  /* A STATUS= cut at the buffer's end is still a valid message. */
  size_t len = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
  if (sendto(notify_fd, msg, len, MSG_NOSIGNAL, (struct sockaddr *)&notify_addr,
             notify_len) < 0) {
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
      log_warn("cannot notify the service manager (NOTIFY_SOCKET): %s",
               strerror(errno));
    return -1;
  }
  return 1;
}

void sdnotify_close(void) {
  if (notify_fd >= 0)
    close(notify_fd);
  notify_fd = -1;
  notify_len = 0;
  warned = 0;
}
