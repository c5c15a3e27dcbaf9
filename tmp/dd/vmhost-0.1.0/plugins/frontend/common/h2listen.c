/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2listen — listeners: TCP and unix sockets bound, connections accepted
 * up to max_connections (see h2int.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "h2int.h"

struct listener {
  enum ev_kind kind; /* first: epoll data points here */
  int fd;
  int tls;
  char *unix_path; /* unlinked at stop */
  struct listener *next;
};

void h2listen_event(struct h2s *s, struct listener *l) {
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    if (s->n_conns >= s->conf->max_connections) {
      close(fd);
      s->refused++;
      uint64_t t = now_ms();
      if (t - s->t_refused_log >= 10000) {
        s->t_refused_log = t;
        LOG(s, VMH_LOG_WARN,
            "%" PRIu32 " connections open (max_connections): refused %" PRIu64
            " so far",
            s->n_conns, s->refused);
      }
      continue;
    }
    h2conn_open(s, fd, &ss, l->tls);
  }
}

/* A listener for "host:port", "[v6]:port" or a unix socket path. */
int h2listen_bind(struct h2s *s, const struct h2s_listen *spec) {
  struct listener *l = calloc(1, sizeof *l);
  int fd = -1;
  if (!l)
    goto fail_nomem;
  l->kind = EV_LISTENER;
  l->tls = spec->tls;
  const char *a = spec->address;
  if (a[0] == '/' || a[0] == '.') {
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    if (strlen(a) >= sizeof un.sun_path) {
      s->host->error("listener %s: path too long", a);
      goto fail;
    }
    strcpy(un.sun_path, a);
    struct stat st;
    /* A socket left by a dead daemon; anything else is refused by bind. */
    if (lstat(a, &st) == 0 && S_ISSOCK(st.st_mode)) {
      int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (probe >= 0 && connect(probe, (void *)&un, sizeof un) < 0)
        unlink(a);
      if (probe >= 0)
        close(probe);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (void *)&un, sizeof un) < 0) {
      s->host->error("listener %s: %s", a, strerror(errno));
      goto fail;
    }
    chmod(a, 0660);
    if (!(l->unix_path = strdup(a)))
      goto fail_nomem;
  } else {
    char host[256];
    const char *port;
    if (a[0] == '[') {
      const char *e = strchr(a, ']');
      if (!e || e[1] != ':' || (size_t)(e - a) >= sizeof host)
        goto fail_syntax;
      memcpy(host, a + 1, (size_t)(e - a - 1));
      host[e - a - 1] = '\0';
      port = e + 2;
    } else {
      const char *e = strrchr(a, ':');
      if (!e || (size_t)(e - a) >= sizeof host || strchr(a, ':') != e)
        goto fail_syntax;
      memcpy(host, a, (size_t)(e - a));
      host[e - a] = '\0';
      port = e + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    int e = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (e) {
      s->host->error("listener %s: %s", a, gai_strerror(e));
      goto fail;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
      if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){1}, sizeof(int));
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
      s->host->error("listener %s: %s", a, strerror(errno));
      freeaddrinfo(ai);
      goto fail;
    }
    freeaddrinfo(ai);
  }
  if (listen(fd, 512) < 0) {
    s->host->error("listener %s: %s", a, strerror(errno));
    goto fail;
  }
  l->fd = fd;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
  epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
  l->next = s->listeners;
  s->listeners = l;
  LOG(s, VMH_LOG_INFO, "listening on %s (%s)", a,
      l->tls
          ? (s->conf->client_ca ? "TLS, client certificates required" : "TLS")
          : "cleartext HTTP/2 and HTTP/1.1");
  return 0;

fail_syntax:
  s->host->error("listener '%s': expected host:port, [v6]:port or a path", a);
  goto fail;
fail_nomem:
  s->host->error("out of memory");
fail:
  if (fd >= 0)
    close(fd);
  if (l) {
    if (l->unix_path)
      unlink(l->unix_path);
    free(l->unix_path);
    free(l);
  }
  return VMH_EINVAL;
}

void h2listen_close(struct h2s *s) {
  while (s->listeners) {
    struct listener *l = s->listeners;
    s->listeners = l->next;
    epoll_ctl(s->ep, EPOLL_CTL_DEL, l->fd, NULL);
    close(l->fd);
    if (l->unix_path)
      unlink(l->unix_path);
    free(l->unix_path);
    free(l);
  }
}
