/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* h2bench — the C HTTP/2 client of the control-path benchmarks
 * (tests/bench/libvirt-overhead.py, tests/bench/create-rate.py): one
 * kept-alive cleartext HTTP/2 connection (prior knowledge) to vmhostd's
 * REST front-end, so no Python runs on the measured path.
 *
 *   h2bench HOST PORT TOKEN cycle N
 *       N cycles, one request at a time: POST /api/v1/vms (define+start),
 *       POST /api/v1/vms/NAME/stop {"force":true}, DELETE /api/v1/vms/NAME.
 *   h2bench HOST PORT TOKEN create N INFLIGHT
 *       N creates (define+start) with INFLIGHT streams open at once.
 *
 * Prints one line: wall seconds, client CPU seconds; for create, then the
 * seconds each successive thousand took.  Any answer other than 2xx stops
 * it (exit 1, the answer on stderr).  Built by `make -C tests bench-clients`
 * or by the benchmark itself with cc and pkg-config. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_INFLIGHT 256

struct req {
  char path[128];
  char body[256];
  size_t len, off;
  int status;
  int done;
  char answer[512];
  size_t alen;
};

static int fd;
static nghttp2_session *session;
static const char *host_hdr;
static char auth[300];
static int in_flight, finished;

static double now(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len,
                       int flags, void *u) {
  (void)s, (void)flags, (void)u;
  ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
  return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static int header_cb(nghttp2_session *s, const nghttp2_frame *f,
                     const uint8_t *name, size_t nlen, const uint8_t *value,
                     size_t vlen, uint8_t flags, void *u) {
  (void)flags, (void)u, (void)vlen;
  struct req *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
  if (r && nlen == 7 && memcmp(name, ":status", 7) == 0)
    r->status = atoi((const char *)value);
  return 0;
}

static int data_cb(nghttp2_session *s, uint8_t flags, int32_t id,
                   const uint8_t *data, size_t len, void *u) {
  (void)flags, (void)u;
  struct req *r = nghttp2_session_get_stream_user_data(s, id);
  if (r && r->alen + 1 < sizeof r->answer) {
    size_t n = len < sizeof r->answer - 1 - r->alen
                   ? len
                   : sizeof r->answer - 1 - r->alen;
    memcpy(r->answer + r->alen, data, n);
    r->alen += n;
    r->answer[r->alen] = 0;
  }
  return 0;
}

static int close_cb(nghttp2_session *s, int32_t id, uint32_t code, void *u) {
  (void)code, (void)u;
  struct req *r = nghttp2_session_get_stream_user_data(s, id);
  if (r) {
    r->done = 1;
    in_flight--;
    finished++;
    if (r->status < 200 || r->status >= 300) {
      fprintf(stderr, "%s: HTTP %d %s\n", r->path, r->status, r->answer);
      exit(1);
    }
  }
  return 0;
}

static ssize_t body_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *u) {
  (void)s, (void)id, (void)u;
  struct req *r = src->ptr;
  size_t n = r->len - r->off < len ? r->len - r->off : len;
  memcpy(buf, r->body + r->off, n);
  r->off += n;
  if (r->off == r->len)
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static void submit(struct req *r, const char *method) {
  nghttp2_nv nv[] = {
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), 0}
      NV(":method", method),      NV(":scheme", "http"),
      NV(":authority", host_hdr), NV(":path", r->path),
      NV("authorization", auth),  NV("content-type", "application/json"),
#undef NV
  };
  nghttp2_data_provider dp = {.source.ptr = r, .read_callback = body_cb};
  r->done = r->status = 0;
  r->off = r->alen = 0;
  r->answer[0] = 0;
  if (nghttp2_submit_request(session, NULL, nv, sizeof nv / sizeof nv[0],
                             r->len ? &dp : NULL, r) < 0) {
    fprintf(stderr, "submit failed\n");
    exit(1);
  }
  in_flight++;
}

/* Send what is queued, read and process one read's worth. */
static void pump(void) {
  uint8_t buf[65536];
  if (nghttp2_session_send(session) != 0) {
    fprintf(stderr, "send failed\n");
    exit(1);
  }
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n <= 0) {
    fprintf(stderr, "connection closed\n");
    exit(1);
  }
  if (nghttp2_session_mem_recv(session, buf, (size_t)n) < 0) {
    fprintf(stderr, "bad HTTP/2 from the server\n");
    exit(1);
  }
  nghttp2_session_send(session);
}

static void one(struct req *r, const char *method) {
  submit(r, method);
  while (!r->done)
    pump();
}

static void connect_to(const char *host, const char *port) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  if (getaddrinfo(host, port, &hints, &ai) != 0) {
    fprintf(stderr, "cannot resolve %s\n", host);
    exit(2);
  }
  fd = socket(ai->ai_family, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    perror("connect");
    exit(2);
  }
  freeaddrinfo(ai);
  int one_ = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
  nghttp2_session_callbacks *cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_send_callback(cb, send_cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, header_cb);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, data_cb);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, close_cb);
  nghttp2_session_client_new(&session, cb, NULL);
  nghttp2_session_callbacks_del(cb);
  nghttp2_settings_entry s[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_INFLIGHT}};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, s, 1);
}

static void set(struct req *r, const char *body, const char *fmt,
                const char *name) {
  snprintf(r->path, sizeof r->path, fmt, name);
  snprintf(r->body, sizeof r->body, "%s", body);
  r->len = strlen(r->body);
}

static void cycles(int n) {
  struct req r;
  char name[32], body[256];
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "bench-%d", i);
    snprintf(body, sizeof body,
             "{\"name\":\"%s\",\"vcpus\":1,\"memory\":134217728,"
             "\"disks\":[],\"nics\":[]}",
             name);
    set(&r, body, "/api/v1/vms%s", "");
    one(&r, "POST");
    set(&r, "{\"force\":true}", "/api/v1/vms/%s/stop", name);
    one(&r, "POST");
    set(&r, "", "/api/v1/vms/%s", name);
    one(&r, "DELETE");
  }
}

static void creates(int n, int inflight) {
  static struct req reqs[MAX_INFLIGHT];
  int next = 0;
  double t0 = now(CLOCK_MONOTONIC), mark = t0;
  for (int i = 0; i < inflight; i++)
    reqs[i].done = 1;
  while (finished < n) {
    for (int i = 0; i < inflight && next < n; i++) {
      if (!reqs[i].done)
        continue;
      char body[256];
      snprintf(body, sizeof body,
               "{\"name\":\"c-%d\",\"vcpus\":1,\"memory\":134217728,"
               "\"disks\":[],\"nics\":[]}",
               next++);
      set(&reqs[i], body, "/api/v1/vms%s", "");
      submit(&reqs[i], "POST");
    }
    int before = finished;
    pump();
    for (int k = before + 1; k <= finished; k++)
      if (k % 1000 == 0) {
        double t = now(CLOCK_MONOTONIC);
        printf(" %.4f", t - mark);
        mark = t;
      }
  }
  (void)t0;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr,
            "usage: h2bench HOST PORT TOKEN cycle N | create N INFLIGHT\n");
    return 2;
  }
  static char hostport[300];
  snprintf(hostport, sizeof hostport, "%s:%s", argv[1], argv[2]);
  host_hdr = hostport;
  snprintf(auth, sizeof auth, "Bearer %s", argv[3]);
  connect_to(argv[1], argv[2]);
  int n = atoi(argv[5]);
  double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
  if (strcmp(argv[4], "cycle") == 0) {
    cycles(n);
    printf("%.6f %.6f\n", now(CLOCK_MONOTONIC) - w0,
           now(CLOCK_PROCESS_CPUTIME_ID) - c0);
  } else if (strcmp(argv[4], "create") == 0 && argc == 7) {
    int k = atoi(argv[6]);
    if (k < 1 || k > MAX_INFLIGHT)
      return 2;
    creates(n, k);
    printf("\n%.6f %.6f\n", now(CLOCK_MONOTONIC) - w0,
           now(CLOCK_PROCESS_CPUTIME_ID) - c0);
  } else {
    return 2;
  }
  nghttp2_session_del(session);
  close(fd);
  return 0;
}
