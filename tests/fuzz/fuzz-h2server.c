/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness: the HTTP server under the front-ends
 * (plugins/frontend/common: HTTP/1.1 through http-parser, h2c and HTTP/2
 * through nghttp2, requests, answers, authorization) fed any bytes as a
 * client's, over its unix-socket listener.  The handler authorizes each
 * request (reader), and answers it, as a front-end does; streamed answers
 * too.  Each input is one connection: written whole, then read until the
 * server closes it (its limits and timeouts are short).  Built and run by
 * tests/test-fuzz.sh. */
#include <config.h>

#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "h2server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], sock[96];

static void fz_log(const struct vmh_instance *inst, int level, const char *fmt,
                   ...) {
  (void)inst, (void)level, (void)fmt;
}
static void fz_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}
static const char *fz_state_dir(const struct vmh_instance *inst) {
  (void)inst;
  return dir;
}

static struct vmh_host host = {
    .struct_size = sizeof host,
    .log = fz_log,
    .error = fz_error,
    .state_dir = fz_state_dir,
};

static void on_close(void *opaque) {
  (void)opaque;
}

static void handler(void *opaque, struct h2s_req *req) {
  (void)opaque;
  char why[256];
  int st = h2s_error_status(req);
  if (!st)
    st = h2s_authorize(req, AUTH_READER, why, sizeof why);
  if (st) {
    h2s_respond(req, st, "text/plain", "no\n", 3);
    return;
  }
  size_t len;
  (void)h2s_body(req, &len);
  (void)h2s_header(req, "content-type");
  (void)h2s_query(req);
  if (!strcmp(h2s_path(req), "/stream")) {
    h2s_stream_begin(req, 200, "text/event-stream", on_close, NULL);
    h2s_stream_send(req, "data: x\n\n", 9);
    h2s_stream_end(req);
    return;
  }
  h2s_add_trailer(req, "grpc-status", "0");
  h2s_respond(req, 200, "text/plain", "ok\n", 3);
}

static void start(void) {
  static struct h2s_listen l;
  static struct h2s_conf c;
  snprintf(dir, sizeof dir, "/tmp/fuzz-h2.XXXXXX");
  if (!mkdtemp(dir))
    abort();
  snprintf(sock, sizeof sock, "%s/s", dir);
  l.address = sock;
  c.listen = &l;
  c.n_listen = 1;
  c.max_connections = 64;
  c.max_connections_per_peer = 64;
  c.max_streams = 16;
  c.max_header_size = 4096;
  c.max_body_size = 65536;
  c.max_conn_buffer = 1 << 20;
  c.requests_per_s = 1000000;
  c.resets_per_s = 1000000;
  c.idle_timeout_s = 1;
  c.request_timeout_s = 1;
  c.handshake_timeout_s = 1;
  c.stream_buffer = 65536;
  c.stream_memory = 1 << 20;
  c.max_streams_per_peer = 64;
  struct h2s *s = h2s_new(&host, NULL, &c, handler, NULL);
  if (!s || h2s_start(s) < 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!sock[0])
    start();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  snprintf(un.sun_path, sizeof un.sun_path, "%s", sock);
  if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof un) < 0)
    abort();
  size_t off = 0;
  while (off < size) {
    ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
    if (n <= 0)
      break;
    off += (size_t)n;
  }
  shutdown(fd, SHUT_WR);
  char buf[4096];
  struct pollfd p = {.fd = fd, .events = POLLIN};
  /* The server answers, then closes on EOF (or its timeouts do). */
  while (poll(&p, 1, 5000) > 0 && recv(fd, buf, sizeof buf, 0) > 0)
    ;
  close(fd);
  return 0;
}
