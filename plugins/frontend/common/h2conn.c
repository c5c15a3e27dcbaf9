/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2conn — connections: the TLS handshake, protocol detection, reading,
 * writing with back-pressure, lingering and closing (see h2int.h). */
#include <config.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "h2int.h"

/* Ask nghttp2 for more frames only while less than this is waiting. */
#define OUT_LOW (64 * 1024)
#define READ_CHUNK 16384
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

static void peer_name(const struct sockaddr_storage *ss, char *out,
                      size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(out, len, "%s:%u", ip, ntohs(a->sin_port));
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    snprintf(out, len, "[%s]:%u", ip, ntohs(a->sin6_port));
  } else {
    snprintf(out, len, "unix");
  }
}

void h2conn_open(struct h2s *s, int fd, const struct sockaddr_storage *ss,
                 bool tls) {
  struct conn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return;
  }
  c->kind = EV_CONN;
  c->s = s;
  c->fd = fd;
  c->t_open = c->t_active = now_ms();
  c->t_tokens = now_us();
  c->tokens = s->conf->requests_per_s;
  peer_name(ss, c->peer, sizeof c->peer);
  h2listen_addr_key(ss, c->addr);
  c->unix_peer = ss->ss_family == AF_UNIX;
  if (ss->ss_family != AF_UNIX) {
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    h2auth_conn_anonymous(c);
  } else {
    h2auth_conn_unix(c);
  }
  c->state = C_DETECT;
  if (tls) {
    pthread_mutex_lock(&s->lock);
    c->creds = h2tls_ref(s->creds);
    pthread_mutex_unlock(&s->lock);
    static const gnutls_datum_t protos[] = {{(unsigned char *)"h2", 2},
                                            {(unsigned char *)"http/1.1", 8}};
    if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0 ||
        gnutls_priority_set(c->tls, s->prio) < 0 ||
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->creds->x) <
            0 ||
        gnutls_alpn_set_protocols(c->tls, protos, 2,
                                  GNUTLS_ALPN_SERVER_PRECEDENCE) < 0) {
      if (c->tls)
        gnutls_deinit(c->tls);
      h2tls_unref(c->creds);
      close(fd);
      free(c);
      return;
    }
    if (s->conf->client_ca) {
      gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_REQUIRE);
      gnutls_session_set_verify_cert(c->tls, NULL, 0);
    }
    gnutls_transport_set_int(c->tls, fd);
    c->state = C_HANDSHAKE;
  }
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  s->n_conns++;
  c->events = EPOLLIN;
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e);
}

void h2conn_set_events(struct conn *c) {
  uint32_t ev = 0;
  /* No reading while an HTTP/1.1 request is served, nor while output is
   * backed up (the client must read first). */
  bool h1_busy = c->state == C_H1 && c->h1req && c->h1req->dispatched;
  if (!c->in_closed && (c->lingering || !h1_busy) &&
      h2buf_size(&c->out) < 4 * OUT_LOW)
    ev |= EPOLLIN;
  /* Not reading, but told when the client closes: the HTTP/1.1 twin of
   * HTTP/2's RST_STREAM (h2conn_event). */
  else if (!c->in_closed && h1_busy)
    ev |= EPOLLRDHUP;
  if (c->want_out)
    ev |= EPOLLOUT;
  if (c->state == C_HANDSHAKE)
    ev = gnutls_record_get_direction(c->tls) ? EPOLLOUT : EPOLLIN;
  if (ev == c->events)
    return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  epoll_ctl(c->s->ep, EPOLL_CTL_MOD, c->fd, &e);
  c->events = ev;
}

/* >0 bytes, 0 end of file, -EAGAIN, or -EIO. */
static ssize_t conn_recv(struct conn *c, char *b, size_t n) {
  if (c->tls) {
    ssize_t r = gnutls_record_recv(c->tls, b, n);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
      return -EAGAIN;
    if (r == GNUTLS_E_PREMATURE_TERMINATION)
      return 0;
    return r < 0 ? -EIO : r;
  }
  ssize_t r = recv(c->fd, b, n, 0);
  if (r < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN
                                                                     : -EIO;
  return r;
}

static ssize_t conn_send(struct conn *c, const char *b, size_t n) {
  if (c->tls) {
    /* After EAGAIN GnuTLS wants the same data again. */
    if (c->tls_pending)
      n = c->tls_pending;
    else if (n > READ_CHUNK)
      n = READ_CHUNK;
    ssize_t r = gnutls_record_send(c->tls, b, n);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
      c->tls_pending = n;
      return -EAGAIN;
    }
    c->tls_pending = 0;
    return r < 0 ? -EIO : r;
  }
  ssize_t r = send(c->fd, b, n, MSG_NOSIGNAL);
  if (r < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN
                                                                     : -EIO;
  return r;
}

/* An HTTP/1.1 answer given before the whole request was read (413, 431):
 * closing at once could reset the connection before the client reads the
 * answer, so shut the write side and discard what still comes, for a
 * while (see sweep in h2server.c). */
static void linger(struct conn *c) {
  if (!c->lingering) {
    c->lingering = true;
    c->t_active = now_ms();
    if (c->tls)
      gnutls_bye(c->tls, GNUTLS_SHUT_WR);
    shutdown(c->fd, SHUT_WR);
  }
  h2conn_set_events(c);
}

void h2conn_flush(struct conn *c) {
  if (c->state == C_CLOSED)
    return;
  for (;;) {
    while (c->h2 && h2buf_size(&c->out) < OUT_LOW &&
           nghttp2_session_want_write(c->h2)) {
      const uint8_t *d;
      ssize_t n = nghttp2_session_mem_send(c->h2, &d);
      if (n < 0) {
        h2conn_close(c, nghttp2_strerror((int)n));
        return;
      }
      if (n == 0)
        break;
      if (h2buf_add(&c->out, d, (size_t)n) < 0) {
        h2conn_close(c, "out of memory");
        return;
      }
    }
    if (!h2buf_size(&c->out))
      break;
    ssize_t n = conn_send(c, c->out.p + c->out.off, h2buf_size(&c->out));
    if (n == -EAGAIN) {
      c->want_out = true;
      h2conn_set_events(c);
      return;
    }
    if (n < 0) {
      h2conn_close(c, "write failed");
      return;
    }
    c->out.off += (size_t)n;
  }
  h2buf_idle(&c->out);
  c->want_out = false;
  if (c->h2 && !nghttp2_session_want_read(c->h2) &&
      !nghttp2_session_want_write(c->h2)) {
    h2conn_close(c, NULL);
    return;
  }
  if (c->closing && c->state == C_H1 && !c->in_closed) {
    linger(c);
    return;
  }
  if (c->closing) {
    h2conn_close(c, NULL);
    return;
  }
  h2conn_set_events(c);
}

void h2conn_close(struct conn *c, const char *why) {
  struct h2s *s = c->s;
  if (c->state == C_CLOSED)
    return;
  if (why)
    LOG(s, VMH_LOG_DEBUG, "connection from %s closed: %s", c->peer, why);
  c->state = C_CLOSED;
  while (c->reqs)
    h2req_detach(c->reqs);
  c->h1req = NULL;
  if (c->tls) {
    gnutls_bye(c->tls, GNUTLS_SHUT_WR);
    gnutls_deinit(c->tls);
    c->tls = NULL;
  }
  h2tls_unref(c->creds);
  if (c->h2)
    nghttp2_session_del(c->h2);
  c->h2 = NULL;
  epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  s->n_conns--;
  /* Freed at the end of the loop's round: callers up the stack (and this
   * round's epoll events) may still look at c, and see C_CLOSED. */
  c->prev = NULL;
  c->next = s->dead;
  s->dead = c;
}

void h2conn_free_dead(struct h2s *s) {
  while (s->dead) {
    struct conn *c = s->dead;
    s->dead = c->next;
    h2buf_free(&c->in);
    h2buf_free(&c->out);
    free(c->hname);
    free(c);
  }
}

/* ---- Input -------------------------------------------------------------- */

static void handshake(struct conn *c) {
  struct h2s *s = c->s;
  int r = gnutls_handshake(c->tls);
  if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
    h2conn_set_events(c);
    return;
  }
  if (r < 0) {
    /* The reason: GnuTLS's error, and for a client certificate that did
     * not verify, why not ("The certificate issuer is unknown."). */
    char why[512] = "";
    gnutls_datum_t out = {0};
    if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
        gnutls_certificate_verification_status_print(
            gnutls_session_get_verify_cert_status(c->tls), GNUTLS_CRT_X509,
            &out, 0) == 0) {
      size_t n = out.size;
      while (n && (out.data[n - 1] == ' ' || out.data[n - 1] == '\0'))
        n--;
      snprintf(why, sizeof why, " (%.*s)", (int)n, out.data);
      gnutls_free(out.data);
    }
    LOG(s, VMH_LOG_WARN, "TLS handshake with %s refused: %s%s", c->peer,
        gnutls_strerror(r), why);
    h2conn_close(c, NULL);
    return;
  }
  char why[300];
  if (h2auth_conn_tls(c, why, sizeof why) < 0) {
    LOG(s, VMH_LOG_WARN, "TLS handshake with %s refused: %s", c->peer, why);
    h2conn_close(c, NULL);
    return;
  }
  gnutls_datum_t alpn = {0};
  bool h2 = gnutls_alpn_get_selected_protocol(c->tls, &alpn) == 0 &&
            alpn.size == 2 && !memcmp(alpn.data, "h2", 2);
  if (!h2)
    h2http1_start(c);
  else if (h2http2_start(c) < 0) {
    h2conn_close(c, "out of memory");
    return;
  }
  c->events = 0;
  h2conn_set_events(c);
}

/* Cleartext: the HTTP/2 preface, or HTTP/1.1. */
static void detect(struct conn *c) {
  size_t n = h2buf_size(&c->in);
  const char *d = c->in.p + c->in.off;
  size_t k = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;
  if (memcmp(d, H2_PREFACE, k) == 0) {
    if (n < H2_PREFACE_LEN)
      return; /* wait for the rest */
    if (h2http2_start(c) < 0) {
      h2conn_close(c, "out of memory");
      return;
    }
    c->in.off = c->in.len;
    h2http2_feed(c, d, n);
    return;
  }
  h2http1_start(c);
  h2http1_feed(c);
}

static void conn_input(struct conn *c) {
  char b[READ_CHUNK];
  while (c->lingering) {
    ssize_t n = conn_recv(c, b, sizeof b);
    if (n == -EAGAIN)
      return;
    if (n <= 0) {
      h2conn_close(c, NULL);
      return;
    }
  }
  for (int rounds = 0; rounds < 16 && c->state != C_CLOSED; rounds++) {
    if (c->state == C_H1 && c->h1req && c->h1req->dispatched)
      break; /* resumed when the response is written */
    ssize_t n = conn_recv(c, b, sizeof b);
    if (n == -EAGAIN)
      break;
    c->s->reads++;
    if (n <= 0) {
      c->in_closed = true;
      /* Requests in flight still get their answer on HTTP/1.1 (a client
       * may half-close); HTTP/2 clients do not half-close. */
      if (c->state == C_H1 && c->h1req && c->h1req->dispatched)
        c->closing = true;
      else {
        h2conn_close(c, n ? "read failed" : "end of file");
        return;
      }
      break;
    }
    if (c->state == C_H2) {
      h2http2_feed(c, b, (size_t)n);
    } else {
      if (h2buf_add(&c->in, b, (size_t)n) < 0) {
        h2conn_close(c, "out of memory");
        return;
      }
      if (c->state == C_DETECT)
        detect(c);
      else
        h2http1_feed(c);
    }
  }
  if (c->state != C_CLOSED)
    h2conn_flush(c);
}

/* The client of the HTTP/1.1 request being served closed its side before
 * the answer: it went away (as nginx counts it, 499).  A client that only
 * half-closes and still reads is not told apart: it loses its answer.  An
 * answer already given is still written (the client may read it). */
static bool h1_gone(struct conn *c) {
  struct h2s_req *r = c->h1req;
  if (c->state != C_H1 || !r || !r->dispatched)
    return false;
  pthread_mutex_lock(&c->s->lock);
  bool answered = r->answered;
  pthread_mutex_unlock(&c->s->lock);
  return !answered;
}

void h2conn_event(struct conn *c, uint32_t ev) {
  if (c->state == C_CLOSED)
    return;
  if (c->state == C_HANDSHAKE) {
    handshake(c);
    if (c->state == C_HANDSHAKE || c->state == C_CLOSED)
      return;
  }
  if (ev & (EPOLLERR | EPOLLHUP) && !(ev & EPOLLIN)) {
    h2conn_close(c, "connection error");
    return;
  }
  if ((ev & EPOLLRDHUP) && !(ev & EPOLLIN) && !c->in_closed) {
    if (h1_gone(c)) {
      /* Closing detaches the request: its watcher hears H2S_WATCH_GONE,
       * and the front-end tells the core its caller went away. */
      h2conn_close(c, "the client closed before its HTTP/1.1 answer");
      return;
    }
    /* Answered: written, then the connection closes (nothing more can
     * come from the client: h2http1_deliver).  No more RDHUP, which
     * would fire again. */
    c->in_closed = true;
    h2conn_set_events(c);
  }
  if (ev & EPOLLOUT)
    h2conn_flush(c);
  if (c->state != C_CLOSED && (ev & EPOLLIN))
    conn_input(c);
}
