/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmhost-agent: answers vmhostd's requests on the guest channel
 * (proto/vmhost/agent/v1/agent.proto).
 *
 *   vmhost-agent [--config FILE] [--device PATH]
 *
 * PATH is the virtio-serial port (the default) or, for tests and vsock
 * bridges, a unix socket to connect to.  With `transport: vsock` the agent
 * listens on an AF_VSOCK port instead and the host connects (Cloud
 * Hypervisor's vsock device); `unix-listen` does the same on a unix socket.
 * The agent never exits because the host went away: it waits for the host
 * to come back (virtio-serial reports a hang-up while no host is
 * connected), reconnects to the socket, or takes the host's next
 * connection. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
/* After sys/socket.h, which it uses without including it. */
#include <linux/vm_sockets.h>

#include "agent.h"
#include "frame.h"
#include "framepb.h"

#ifndef AGENT_VERSION
#define AGENT_VERSION "0"
#endif

#define PROTO_VERSION VMHOST__AGENT__V1__VERSION__VERSION_1

static volatile sig_atomic_t stopping;

void agent_log(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "vmhost-agent: %s\n", buf);
}

int agent_error(AgentResponse *resp, Vmhost__Agent__V1__ErrorCode code,
                const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  Vmhost__Agent__V1__Error *e = malloc(sizeof *e);
  char *m = strdup(buf);
  if (e == NULL || m == NULL) {
    free(e);
    free(m);
    return -1; /* the caller answers without a message */
  }
  vmhost__agent__v1__error__init(e);
  e->code = code;
  e->message = m;
  resp->error = e;
  return -1;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stopping) {
  }
}

/* ---- the requests answered here ---------------------------------------- */

static int add_cap(Vmhost__Agent__V1__HelloResponse *h, const char *cap) {
  char *s = strdup(cap);
  if (s == NULL)
    return -1;
  h->capabilities[h->n_capabilities++] = s;
  return 0;
}

static int do_hello(const struct agent_config *c, AgentResponse *resp) {
  Vmhost__Agent__V1__HelloResponse *h = malloc(sizeof *h);
  if (h == NULL)
    return -1;
  vmhost__agent__v1__hello_response__init(h);
  resp->body_case = VMHOST__AGENT__V1__RESPONSE__BODY_HELLO;
  resp->hello = h;
  h->version = PROTO_VERSION;
  h->max_frame = c->max_frame;
  if ((h->agent_version = strdup(AGENT_VERSION)) == NULL ||
      (h->capabilities = calloc(12, sizeof *h->capabilities)) == NULL)
    return -1;
  const char *always[] = {"hello", "sync",      "ping",      "telemetry",
                          "thaw",  "file_read", "file_write"};
  for (size_t i = 0; i < sizeof always / sizeof always[0]; i++)
    if (add_cap(h, always[i]) < 0)
      return -1;
  if ((c->n_exec_allow && add_cap(h, "exec") < 0) ||
      (c->allow_freeze && add_cap(h, "freeze") < 0) ||
      (c->allow_shutdown && add_cap(h, "shutdown") < 0) ||
      (c->allow_time_sync && add_cap(h, "time_sync") < 0))
    return -1;
  return 0;
}

static int do_time_sync(const struct agent_config *c,
                        const Vmhost__Agent__V1__TimeSyncRequest *req,
                        AgentResponse *resp) {
  if (!c->allow_time_sync)
    return agent_error(resp,
                       VMHOST__AGENT__V1__ERROR_CODE__ERROR_PERMISSION_DENIED,
                       "time_sync is disabled (allow_time_sync)");
  if (req->unix_ns <= 0)
    return agent_error(resp,
                       VMHOST__AGENT__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT,
                       "unix_ns must be a positive time");
  struct timespec now,
      to = {req->unix_ns / 1000000000, req->unix_ns % 1000000000};
  clock_gettime(CLOCK_REALTIME, &now);
  if (clock_settime(CLOCK_REALTIME, &to) < 0)
    return agent_error(resp, VMHOST__AGENT__V1__ERROR_CODE__ERROR_IO,
                       "cannot set the clock: %s", strerror(errno));
  Vmhost__Agent__V1__TimeSyncResponse *t = malloc(sizeof *t);
  if (t == NULL)
    return -1;
  vmhost__agent__v1__time_sync_response__init(t);
  t->offset_ns =
      req->unix_ns - ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
  resp->body_case = VMHOST__AGENT__V1__RESPONSE__BODY_TIME_SYNC;
  resp->time_sync = t;
  agent_log("clock set from the host (offset %lld ns)",
            (long long)t->offset_ns);
  return 0;
}

/* Shutdown happens after the answer is sent (pending_shutdown). */
static int pending_shutdown; /* 0, 1 power off, 2 reboot */

static int do_shutdown(const struct agent_config *c,
                       const Vmhost__Agent__V1__ShutdownRequest *req,
                       AgentResponse *resp) {
  if (!c->allow_shutdown)
    return agent_error(resp,
                       VMHOST__AGENT__V1__ERROR_CODE__ERROR_PERMISSION_DENIED,
                       "shutdown is disabled (allow_shutdown)");
  Vmhost__Agent__V1__ShutdownResponse *s = malloc(sizeof *s);
  if (s == NULL)
    return -1;
  vmhost__agent__v1__shutdown_response__init(s);
  resp->body_case = VMHOST__AGENT__V1__RESPONSE__BODY_SHUTDOWN;
  resp->shutdown = s;
  pending_shutdown = req->reboot ? 2 : 1;
  return 0;
}

/* Asks init to power off or reboot (so services stop cleanly); the system
 * call when there is no such program. */
static void shutdown_now(int how) {
  const char *prog = how == 2 ? "/sbin/reboot" : "/sbin/poweroff";
  agent_log("%s requested by the host", how == 2 ? "reboot" : "power off");
  freeze_release();
  sync();
  pid_t pid = fork();
  if (pid == 0) {
    execl(prog, prog, (char *)NULL);
    _exit(127);
  }
  int st = 0;
  if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
      WEXITSTATUS(st) == 0)
    return;
  reboot(how == 2 ? RB_AUTOBOOT : RB_POWER_OFF);
  agent_log("cannot %s: %s", how == 2 ? "reboot" : "power off",
            strerror(errno));
}

static int ok_body(AgentResponse *resp, int body_case) {
  /* Sync and ping answers are empty messages. */
  if (body_case == VMHOST__AGENT__V1__RESPONSE__BODY_SYNC) {
    Vmhost__Agent__V1__SyncRequest *s = malloc(sizeof *s);
    if (s == NULL)
      return -1;
    vmhost__agent__v1__sync_request__init(s);
    resp->sync = s;
  } else {
    Vmhost__Agent__V1__PingResponse *p = malloc(sizeof *p);
    if (p == NULL)
      return -1;
    vmhost__agent__v1__ping_response__init(p);
    resp->ping = p;
  }
  resp->body_case = body_case;
  return 0;
}

static int dispatch(const struct agent_config *c, const AgentRequest *req,
                    AgentResponse *resp) {
  switch (req->body_case) {
    case VMHOST__AGENT__V1__REQUEST__BODY_HELLO:
      return do_hello(c, resp);
    case VMHOST__AGENT__V1__REQUEST__BODY_SYNC:
      return ok_body(resp, VMHOST__AGENT__V1__RESPONSE__BODY_SYNC);
    case VMHOST__AGENT__V1__REQUEST__BODY_PING:
      return ok_body(resp, VMHOST__AGENT__V1__RESPONSE__BODY_PING);
    case VMHOST__AGENT__V1__REQUEST__BODY_TELEMETRY:
      return do_telemetry(c, resp);
    case VMHOST__AGENT__V1__REQUEST__BODY_EXEC:
      return do_exec(c, req->exec, resp);
    case VMHOST__AGENT__V1__REQUEST__BODY_FILE_READ:
      return do_file_read(c, req->file_read, resp);
    case VMHOST__AGENT__V1__REQUEST__BODY_FILE_WRITE:
      return do_file_write(c, req->file_write, resp);
    case VMHOST__AGENT__V1__REQUEST__BODY_FREEZE:
      return do_freeze(c, req->freeze, resp);
    case VMHOST__AGENT__V1__REQUEST__BODY_THAW:
      return do_thaw(resp);
    case VMHOST__AGENT__V1__REQUEST__BODY_SHUTDOWN:
      return do_shutdown(c, req->shutdown, resp);
    case VMHOST__AGENT__V1__REQUEST__BODY_TIME_SYNC:
      return do_time_sync(c, req->time_sync, resp);
    default:
      return agent_error(resp, VMHOST__AGENT__V1__ERROR_CODE__ERROR_UNSUPPORTED,
                         "request kind %d is not known to agent %s",
                         (int)req->body_case, AGENT_VERSION);
  }
}

/* ---- the channel -------------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Answers one request frame.  A frame that does not decode is counted and
 * dropped: without an id there is nobody to answer. */
static int answer(const struct agent_config *c, int fd, const uint8_t *data,
                  uint32_t len) {
  AgentRequest *req = vmhost__agent__v1__request__unpack(NULL, len, data);
  if (req == NULL) {
    agent_log("dropped a frame of %u bytes that is not a request", len);
    return 0;
  }
  AgentResponse *resp = malloc(sizeof *resp);
  if (resp == NULL) {
    vmhost__agent__v1__request__free_unpacked(req, NULL);
    return -1;
  }
  vmhost__agent__v1__response__init(resp);
  resp->id = req->id;
  if (dispatch(c, req, resp) < 0 && resp->error == NULL) {
    /* A handler that ran out of memory: answer a bare error. */
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    resp = malloc(sizeof *resp);
    if (resp == NULL) {
      vmhost__agent__v1__request__free_unpacked(req, NULL);
      return -1;
    }
    vmhost__agent__v1__response__init(resp);
    resp->id = req->id;
    agent_error(resp, VMHOST__AGENT__V1__ERROR_CODE__ERROR_IO, "out of memory");
  } else if (resp->error) {
    /* An error has no body (a handler may have set one before failing). */
    resp->body_case = VMHOST__AGENT__V1__RESPONSE__BODY__NOT_SET;
  }
  vmhost__agent__v1__request__free_unpacked(req, NULL);
  size_t n;
  uint8_t *frame = af_pack(&resp->base, c->max_frame, &n);
  if (frame == NULL) {
    /* Too large for a frame (a handler's caps are below the frame size, so
     * this is a bug; answer it rather than stay silent). */
    uint64_t id = resp->id;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    Vmhost__Agent__V1__Error e = VMHOST__AGENT__V1__ERROR__INIT;
    AgentResponse small = VMHOST__AGENT__V1__RESPONSE__INIT;
    e.code = VMHOST__AGENT__V1__ERROR_CODE__ERROR_TOO_LARGE;
    e.message = "the answer does not fit in a frame";
    small.id = id;
    small.error = &e;
    if ((frame = af_pack(&small.base, c->max_frame, &n)) == NULL)
      return -1;
  } else {
    protobuf_c_message_free_unpacked(&resp->base, NULL);
  }
  int r = write_all(fd, frame, n);
  free(frame);
  return r;
}

/* Opens the channel: a character device, or a unix socket to connect to.
 * -1 (logged once per failure kind by the caller) when it cannot. */
static int open_channel(const char *path, int *is_socket) {
  struct stat st;
  if (stat(path, &st) < 0)
    return -1;
  *is_socket = S_ISSOCK(st.st_mode);
  if (!*is_socket)
    return open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(a.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* Listens on the configured vsock port or unix socket; -1 (errno set)
 * when it cannot. */
static int open_listener(const struct agent_config *c) {
  int fd = -1;
  if (c->transport == TRANSPORT_VSOCK) {
    struct sockaddr_vm a = {.svm_family = AF_VSOCK,
                            .svm_port = c->vsock_port,
                            .svm_cid = VMADDR_CID_ANY};
    fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
      goto fail;
  } else {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(c->device) >= sizeof a.sun_path) {
      errno = ENAMETOOLONG;
      return -1;
    }
    strcpy(a.sun_path, c->device);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* A socket file left by an earlier run: nobody listens on it. */
    struct stat st;
    if (stat(c->device, &st) == 0 && S_ISSOCK(st.st_mode))
      unlink(c->device);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
      goto fail;
  }
  if (fd >= 0 && listen(fd, 4) < 0)
    goto fail;
  return fd;
fail:;
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

/* Serves one opened channel until it is lost (returns 0), the agent is
 * told to stop, or (lfd >= 0: a listening transport) the host makes a new
 * connection (returns 1): a host that reconnects has given up the old
 * one, which may never see an end (a peer gone without a reset). */
static int serve(const struct agent_config *c, struct af_reader *rd, int fd,
                 int is_socket, int lfd) {
  af_reader_reset(rd);
  while (!stopping) {
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
                          {.fd = lfd, .events = POLLIN}};
    if (poll(p, lfd >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (lfd >= 0 && (p[1].revents & POLLIN))
      return 1;
    if (!(p[0].revents & POLLIN)) {
      if (is_socket)
        return 0;
      /* virtio-serial: no host on the other side yet. */
      sleep_ms(500);
      continue;
    }
    size_t room;
    uint8_t *buf = af_reader_space(rd, &room);
    ssize_t n = read(fd, buf, room);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0) {
      if (is_socket)
        return 0;
      sleep_ms(500);
      af_reader_reset(rd);
      continue;
    }
    af_reader_commit(rd, (size_t)n);
    const uint8_t *f;
    uint32_t len;
    while (af_reader_next(rd, &f, &len)) {
      if (answer(c, fd, f, len) < 0)
        return 0;
      if (pending_shutdown) {
        shutdown_now(pending_shutdown);
        pending_shutdown = 0;
      }
    }
  }
  return 0;
}

/* The device transport: open the channel, serve it, again when lost. */
static void run_device(const struct agent_config *c, struct af_reader *rd) {
  int last_errno = 0;
  while (!stopping) {
    int is_socket = 0, fd = open_channel(c->device, &is_socket);
    if (fd < 0) {
      if (errno != last_errno)
        agent_log("cannot open %s: %s; retrying", c->device, strerror(errno));
      last_errno = errno;
      sleep_ms(1000);
      continue;
    }
    last_errno = 0;
    serve(c, rd, fd, is_socket, -1);
    close(fd);
    if (!stopping)
      sleep_ms(200);
  }
}

/* The listening transports: one host connection served at a time, the
 * newest one (the host reconnected) replacing the one served. */
static void run_listener(const struct agent_config *c, struct af_reader *rd,
                         const char *where) {
  int lfd = -1, last_errno = 0;
  while (!stopping && (lfd = open_listener(c)) < 0) {
    if (errno != last_errno)
      agent_log("cannot listen on %s: %s; retrying", where, strerror(errno));
    last_errno = errno;
    sleep_ms(1000);
  }
  while (!stopping) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != ECONNABORTED) {
        agent_log("accept on %s: %s", where, strerror(errno));
        sleep_ms(200);
      }
      continue;
    }
    agent_log("host connected on %s", where);
    while (serve(c, rd, fd, 1, lfd) == 1) {
      /* A newer connection: serve it instead. */
      int nfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
      if (nfd < 0)
        continue;
      close(fd);
      fd = nfd;
      agent_log("host connected again on %s; the older connection closed",
                where);
    }
    close(fd);
  }
  if (lfd >= 0)
    close(lfd);
  if (c->transport == TRANSPORT_UNIX_LISTEN)
    unlink(c->device);
}

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: vmhost-agent [--config FILE] [--device PATH]\n"
          "  --config FILE  the config (default " AGENT_CONFIG
          ")\n"
          "  --device PATH  the channel: a virtio-serial port or a unix "
          "socket\n                 (default: the config's device, "
          "else " AGENT_DEVICE ")\n");
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                       {"device", required_argument, 0, 'd'},
                                       {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},
                                       {0, 0, 0, 0}};
  const char *config_path = AGENT_CONFIG, *device = NULL;
  int config_given = 0, o;
  while ((o = getopt_long(argc, argv, "c:d:hV", opts, NULL)) != -1) {
    switch (o) {
      case 'c':
        config_path = optarg;
        config_given = 1;
        break;
      case 'd':
        device = optarg;
        break;
      case 'h':
        usage(stdout);
        return 0;
      case 'V':
        printf("vmhost-agent %s\n", AGENT_VERSION);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
  }
  if (optind != argc) {
    usage(stderr);
    return 2;
  }
  struct agent_config c;
  if (config_load(&c, config_path, config_given) < 0) {
    config_free(&c);
    return 2;
  }
  if (device) {
    free(c.device);
    if ((c.device = strdup(device)) == NULL)
      return 1;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct af_reader rd;
  if (af_reader_init(&rd, c.max_frame) < 0) {
    agent_log("out of memory");
    return 1;
  }
  char where[64];
  if (c.transport == TRANSPORT_VSOCK)
    snprintf(where, sizeof where, "vsock port %" PRIu32, c.vsock_port);
  agent_log("%s serving %s%s (exec: %zu programs, read: %zu, write: %zu dirs)",
            AGENT_VERSION,
            c.transport == TRANSPORT_UNIX_LISTEN ? "listening on " : "",
            c.transport == TRANSPORT_VSOCK ? where : c.device, c.n_exec_allow,
            c.n_read_dirs, c.n_write_dirs);
  if (c.transport == TRANSPORT_DEVICE)
    run_device(&c, &rd);
  else
    run_listener(&c, &rd, c.transport == TRANSPORT_VSOCK ? where : c.device);
  freeze_release();
  af_reader_free(&rd);
  config_free(&c);
  agent_log("stopped");
  return 0;
}
