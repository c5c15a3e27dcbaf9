/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2listen — listeners: TCP and unix sockets bound, connections accepted
 * up to max_connections (see h2int.h). */
#include <config.h>

#include <arpa/inet.h>
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
#include "netcommon.h"

struct listener {
  enum ev_kind kind; /* first: epoll data points here */
  int fd;
  int tls;
  char *unix_path; /* unlinked at stop */
  struct listener *next;
};

void h2listen_addr_key(const struct sockaddr_storage *ss, unsigned char *key) {
  memset(key, 0, 17);
  key[0] = (unsigned char)ss->ss_family;
  if (ss->ss_family == AF_INET)
    memcpy(key + 1, &((const struct sockaddr_in *)(const void *)ss)->sin_addr,
           4);
  else if (ss->ss_family == AF_INET6)
    memcpy(key + 1, &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr,
           16);
}

/* Connections open from the address of key. */
static uint32_t peer_count(struct h2s *s, const unsigned char *key) {
  uint32_t n = 0;
  for (struct conn *c = s->conns; c; c = c->next)
    n += !c->unix_peer && !memcmp(c->addr, key, 17);
  return n;
}

/* The oldest TCP connection that has not finished its TLS handshake (or
 * said which protocol) for a second: the first to go when slots run out,
 * since it costs an attacker nothing to hold one. */
static struct conn *oldest_silent(struct h2s *s) {
  struct conn *best = NULL;
  uint64_t t = now_ms();
  for (struct conn *c = s->conns; c; c = c->next)
    if (!c->unix_peer && !c->closing &&
        (c->state == C_HANDSHAKE || c->state == C_DETECT) &&
        t - c->t_open >= 1000 && (!best || c->t_open < best->t_open))
      best = c;
  return best;
}

static void refuse(struct h2s *s, int fd, const char *why, const char *peer) {
  close(fd);
  s->refused++;
  uint64_t t = now_ms();
  if (t - s->t_refused_log >= 10000) {
    s->t_refused_log = t;
    LOG(s, VMH_LOG_WARN,
        "connection from %s refused: %s (%" PRIu32 " open, %" PRIu64
        " refused so far)",
        peer, why, s->n_conns, s->refused);
  }
}

/* Whether a new connection from ss may have a slot.  Unix-socket peers may
 * use them all; TCP peers leave a reserve of max_connections / 16 (the
 * local administrator gets in during a flood), and each address holds at
 * most max_connections_per_peer.  When TCP slots run out, the oldest
 * connection still silent gives its slot. */
static bool admit(struct h2s *s, int fd, const struct sockaddr_storage *ss) {
  const struct h2s_conf *cf = s->conf;
  char peer[INET6_ADDRSTRLEN] = "unix";
  if (ss->ss_family == AF_UNIX) {
    if (s->n_conns < cf->max_connections)
      return true;
    refuse(s, fd, "max_connections", peer);
    return false;
  }
  unsigned char key[17];
  h2listen_addr_key(ss, key);
  inet_ntop(ss->ss_family, key + 1, peer, sizeof peer);
  if (peer_count(s, key) >= cf->max_connections_per_peer) {
    refuse(s, fd, "max_connections_per_peer", peer);
    return false;
  }
  uint32_t reserve = cf->max_connections / 16;
  if (s->n_conns + reserve < cf->max_connections)
    return true;
  struct conn *victim = oldest_silent(s);
  if (victim) {
    h2conn_close(victim, "slot taken back (no handshake yet)");
    return true;
  }
  refuse(s, fd, "max_connections (the rest kept for unix-socket peers)", peer);
  return false;
}

void h2listen_event(struct h2s *s, struct listener *l) {
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    if (admit(s, fd, &ss))
      h2conn_open(s, fd, &ss, l->tls);
  }
}

/* The address fd is bound to, as "ip:port" or "[ip6]:port" (a port 0 in
 * the config becomes the one the kernel chose); a unix socket's is its
 * path, given as configured. */
static void bound_address(int fd, const char *configured, char *buf,
                          size_t size) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char ip[INET6_ADDRSTRLEN];
  snprintf(buf, size, "%s", configured);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
    return;
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    if (inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip))
      snprintf(buf, size, "%s:%u", ip, ntohs(in->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    if (inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip))
      snprintf(buf, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
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
    char host[256], port[8];
    unsigned n;
    const char *why;
    if (net_split_hostport(a, host, sizeof host, 1, &n, &why) < 0) {
      s->host->error("listener '%s': %s", a, why);
      goto fail;
    }
    snprintf(port, sizeof port, "%u", n);
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
  if (spec->insecure)
    LOG(s, VMH_LOG_WARN,
        "INSECURE: listener %s is cleartext on a network address "
        "('insecure: true'): bearer tokens and all data cross the network "
        "readable and alterable by anyone on the path",
        a);
  char bound[INET6_ADDRSTRLEN + 16];
  bound_address(fd, a, bound, sizeof bound);
  LOG(s, VMH_LOG_INFO, "listening on %s%s%s%s (%s)", bound,
      strcmp(bound, a) ? " (configured as " : "", strcmp(bound, a) ? a : "",
      strcmp(bound, a) ? ")" : "",
      l->tls
          ? (s->conf->client_ca ? "TLS, client certificates required" : "TLS")
          : "cleartext HTTP/2 and HTTP/1.1");
  return 0;

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
