/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest front-end: vmhostd's end of the guest channel
 * (proto/vmhost/agent/v1/agent.proto, agent/frame.h).
 *
 * One connection per running VM that has a channel (the unix socket its
 * hypervisor plugin reports in the VM's info; for a vsock channel that
 * socket is a bridge, asked "CONNECT <port>" first), made and dropped as
 * the core's VM events say, retried while nobody answers.  After every connect
 * and after an answer timeout the connection re-synchronises: a Sync with
 * a random id, every frame before its answer discarded; then a Hello
 * (version, capabilities), then pings and telemetry at the configured
 * intervals.
 *
 * The guest is untrusted.  Everything it sends is bounded: the frame size
 * (the reader holds at most one frame), the frame rate (a token bucket),
 * the requests in flight, the time to answer, answers with ids nobody
 * asked for, garbage.  A guest over a bound is cut off: disconnected,
 * counted in the metrics (vmhost_plugin_guest_cutoffs_total and the
 * counter of its reason) and left alone for `cutoff` before the next try.
 * One I/O thread serves every VM with non-blocking sockets, so a stalled
 * or flooding guest costs the others nothing but its share of the loop.
 *
 * Config keys: etc/plugins/guest.yaml. */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <vmhost/vmhost-plugin.h>

#include "frame.h"
#include "framepb.h"
#include "ptrvec.h"
#include "vmhost/agent/v1/agent.pb-c.h"

typedef Vmhost__Agent__V1__Request Request;
typedef Vmhost__Agent__V1__Response Response;

#define MAX_PENDING_CAP 64
/* Timeouts in a row (no frame answered in between) before a cut-off. */
#define MAX_TIMEOUTS 3

static const struct vmh_host *host;

struct gconf {
  int64_t retry_ms;     /* between connect attempts */
  int64_t timeout_ms;   /* for an answer */
  int64_t ping_ms;      /* between pings */
  int64_t telemetry_ms; /* between telemetry requests */
  int64_t cutoff_ms;    /* a cut-off guest is left alone this long */
  int64_t rescan_ms;    /* VM list re-read even without events */
  uint64_t max_frame;
  int64_t rate;  /* frames per second a guest may send, sustained */
  int64_t burst; /* and in a burst */
  int64_t max_pending;
  int64_t max_stray;       /* answers to no request, before a cut-off */
  int64_t exec_timeout_ms; /* an API exec's timeout when it gives none */
};

enum cstate {
  C_IDLE = 0, /* not connected: next try at next_at */
  C_VSOCK,    /* vsock bridge: waiting for "OK <port>" until next_at */
  C_SYNC,     /* waiting for the answer to sync_id */
  C_HELLO,    /* waiting for the Hello answer */
  C_READY,    /* connected */
};

/* K_THAW: a thaw owed since a connection was lost (conn.thaw_owed). */
enum kind { K_SYNC = 1, K_HELLO, K_PING, K_TELEMETRY, K_JOB, K_THAW };

/* A request of the API (vmh_core.vm_agent), copied from the core's
 * thread; answered exactly once through r, then freed. */
struct job {
  struct job *next;
  char *vm_id, *vm_name;
  vmh_reply_t *r;
  uint32_t op;
  uint32_t timeout_ms, max_output, max_bytes, mode;
  char **argv;
  size_t argc;
  char *path;
  uint64_t offset;
  uint8_t *data;
  size_t len;
};

struct pending {
  uint64_t id;
  int kind;
  int64_t deadline; /* ms, monotonic */
  struct job *job;  /* K_JOB */
};

/* One VM's channel.  Owned by the I/O thread (the list of them too). */
struct conn {
  char *vm_id;
  char *path;
  uint32_t vsock_port; /* 0: a plain unix socket */
  char line[32];       /* the vsock bridge's answer, so far */
  size_t line_len;
  int fd;
  int state;
  bool listed;            /* seen in the last VM list */
  int64_t next_at;        /* C_IDLE: next connect; C_READY: next ping */
  int64_t next_telemetry; /* C_READY */
  struct af_reader rd;
  uint8_t *out; /* frames not yet written */
  size_t out_len, out_off;
  struct pending pend[MAX_PENDING_CAP];
  size_t n_pend;
  uint64_t sync_id;
  double tokens; /* the frame-rate bucket */
  int64_t tokens_at;
  uint32_t timeouts, stray;
  char *version; /* the agent's, once connected */
  bool ever_ready;
  Response *hello;     /* the last Hello answer (capabilities) */
  Response *telemetry; /* the last telemetry answer, and when it came */
  int64_t telemetry_us;
  char *cut_off;   /* why it was cut off last; NULL once connected again */
  uint64_t pushed; /* a hash of what the core was told last */
  /* A thaw that did not reach the agent (its connection dropped, or it
   * was not connected): sent again after every handshake until the agent
   * answers it.  The agent's own freeze timeout thaws meanwhile; this
   * ends a freeze as soon as the host can. */
  bool thaw_owed;
};

/* What the VM list answered: id + channel of each running VM with one. */
struct listed {
  char *vm_id;
  char *path;
  uint32_t vsock_port; /* 0: a plain unix socket */
};

struct guest {
  const struct vmh_instance *inst;
  struct gconf c;
  const struct vmh_core *core;
  int epfd, evfd;
  pthread_t thread;
  bool running;
  atomic_bool stopping;
  uint64_t sub_id;
  bool subscribed;
  struct ptrvec conns; /* struct conn *, I/O thread only */
  uint64_t next_id;
  int64_t next_rescan;

  /* Shared with the core's threads, under lock. */
  pthread_mutex_t lock;
  bool rescan_wanted;
  bool list_in_flight;
  bool list_done;
  struct ptrvec list; /* struct listed * from the answer in flight */
  struct vmh_reply reply;
  bool accepting;   /* agent_call may queue jobs */
  struct job *jobs; /* queued by agent_call, newest first */
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(struct guest *g) {
  eventfd_write(g->evfd, 1);
}

static void count(struct guest *g, const char *name, uint64_t n) {
  host->counter_add(g->inst, name, n);
}

/* Tells the API's event subscribers what became of a VM's agent. */
static void emit(struct guest *g, const char *vm_id, const char *reason,
                 const char *message) {
  struct vmh_event ev = {.struct_size = sizeof ev,
                         .type = VMH_EVENT_PLUGIN,
                         .vm_id = vm_id,
                         .reason = reason,
                         .message = message};
  host->emit(g->inst, &ev);
}

/* ---- API jobs ---------------------------------------------------------- */

static void job_free(struct job *j) {
  if (!j)
    return;
  for (size_t i = 0; i < j->argc; i++)
    free(j->argv[i]);
  free(j->argv);
  free(j->path);
  free(j->data);
  free(j->vm_id);
  free(j->vm_name);
  free(j);
}

/* Answers j with an error and frees it. */
static void job_fail(struct job *j, int code, const char *fmt, ...)
    __attribute__((__format__(__printf__, 3, 4)));
static void job_fail(struct job *j, int code, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  j->r->done(j->r->opaque, code, msg);
  job_free(j);
}

/* Answers every job pending on c (they can no longer be answered).  A
 * freeze or thaw in flight leaves a thaw owed: the guest may be frozen. */
static void fail_jobs(struct conn *c, int code, const char *why) {
  for (size_t i = 0; i < c->n_pend; i++) {
    struct job *j = c->pend[i].job;
    if (c->pend[i].kind == K_THAW ||
        (j && (j->op == VMH_AGENT_THAW || j->op == VMH_AGENT_FREEZE)))
      c->thaw_owed = true;
    if (!j)
      continue;
    c->pend[i].job = NULL;
    job_fail(j, code, "agent on vm '%s': %s%s", j->vm_name, why,
             j->op == VMH_AGENT_THAW
                 ? " (the thaw is sent again when the agent reconnects)"
                 : "");
  }
}

static bool job_pending(const struct conn *c) {
  for (size_t i = 0; i < c->n_pend; i++)
    if (c->pend[i].job)
      return true;
  return false;
}

/* ---- what the core shows of each agent --------------------------------- */

#define MAX_IPS 64

static uint32_t agent_state(const struct conn *c) {
  if (c->state == C_READY)
    return VMH_AGENT_CONNECTED;
  return c->cut_off ? VMH_AGENT_CUT_OFF : VMH_AGENT_ABSENT;
}

/* The addresses of c's last telemetry, as text without the prefix
 * length, checked (the guest says what it likes): loopback and link-local
 * ones left out.  Returns how many were written to buf/ips. */
static uint32_t telemetry_ips(const struct conn *c,
                              char buf[MAX_IPS][INET6_ADDRSTRLEN],
                              const char *ips[MAX_IPS]) {
  uint32_t n = 0;
  if (!c->telemetry || !c->telemetry->telemetry)
    return 0;
  const Vmhost__Agent__V1__TelemetryResponse *t = c->telemetry->telemetry;
  for (size_t i = 0; i < t->n_nics && n < MAX_IPS; i++)
    for (size_t k = 0; k < t->nics[i]->n_addresses && n < MAX_IPS; k++) {
      char a[INET6_ADDRSTRLEN];
      const char *s = t->nics[i]->addresses[k];
      size_t len = strcspn(s, "/");
      if (len >= sizeof a)
        continue;
      memcpy(a, s, len);
      a[len] = 0;
      uint8_t bin[16];
      if (inet_pton(AF_INET, a, bin) == 1) {
        if (bin[0] == 127 || (bin[0] == 169 && bin[1] == 254))
          continue;
        inet_ntop(AF_INET, bin, buf[n], INET6_ADDRSTRLEN);
      } else if (inet_pton(AF_INET6, a, bin) == 1) {
        static const uint8_t lo[16] = {[15] = 1};
        if (!memcmp(bin, lo, 16) || (bin[0] == 0xfe && (bin[1] & 0xc0) == 0x80))
          continue;
        inet_ntop(AF_INET6, bin, buf[n], INET6_ADDRSTRLEN);
      } else {
        continue;
      }
      ips[n] = buf[n];
      n++;
    }
  return n;
}

/* FNV-1a over a string and its NUL. */
static uint64_t fnv(uint64_t h, const char *s) {
  do {
    h = (h ^ (uint8_t)*s) * UINT64_C(0x100000001b3);
  } while (*s++);
  return h;
}

/* Tells the core what became of c's agent (shown in the VM's info). */
static void push_status(struct guest *g, struct conn *c) {
  if (!VMH_HAS_FIELD(g->core, agent_status) || !g->core->agent_status)
    return;
  char buf[MAX_IPS][INET6_ADDRSTRLEN];
  const char *ips[MAX_IPS];
  uint32_t st = agent_state(c);
  struct vmh_agent_status status = {
      .struct_size = sizeof status,
      .state = st,
      .version = st == VMH_AGENT_CONNECTED ? c->version : NULL,
      .ips = ips,
      .n_ips = st == VMH_AGENT_CONNECTED ? telemetry_ips(c, buf, ips) : 0,
  };
  /* Each change of the core's records invalidates the API's cached VM
   * list: tell only what changed (telemetry mostly repeats itself). */
  char n[16];
  snprintf(n, sizeof n, "%" PRIu32, st);
  uint64_t h = fnv(UINT64_C(0xcbf29ce484222325), n);
  h = fnv(h, status.version ? status.version : "");
  for (uint32_t i = 0; i < status.n_ips; i++)
    h = fnv(h, ips[i]);
  if (h == c->pushed)
    return;
  c->pushed = h;
  /* VMH_ENOENT: the VM went meanwhile; nothing to keep. */
  g->core->agent_status(c->vm_id, &status, 0);
}

/* ---- the VM list (core threads) --------------------------------------- */

static void on_vm(void *opaque, const struct vmh_vm_record *vm) {
  struct guest *g = opaque;
  const struct vmh_vm_info *i = vm->info;
  /* A VM being stopped still runs (its agent may see the shutdown
   * through; the core shows it `stopping` meanwhile, core.h), and a paused
   * VM keeps its channel (QEMU runs on; a snapshot pauses the VM for a
   * moment, with the guest frozen for it): stay connected. */
  bool runs = i && (i->state == VMH_VM_RUNNING || i->state == VMH_VM_STOPPING ||
                    i->state == VMH_VM_PAUSED);
  if (i == NULL || vm->status != VMH_STATUS_READY || !runs ||
      i->channel_path == NULL || i->id == NULL)
    return;
  if (i->channel_type != VMH_CHANNEL_UNIX &&
      (i->channel_type != VMH_CHANNEL_VSOCK || i->channel_port == 0))
    return;
  struct listed *l = calloc(1, sizeof *l);
  if (l)
    l->vsock_port = i->channel_type == VMH_CHANNEL_VSOCK ? i->channel_port : 0;
  if (l == NULL || (l->vm_id = strdup(i->id)) == NULL ||
      (l->path = strdup(i->channel_path)) == NULL ||
      ptrvec_push(&g->list, l) < 0) {
    /* Out of memory: this VM waits for the next rescan. */
    if (l) {
      free(l->vm_id);
      free(l->path);
    }
    free(l);
  }
}

static void on_list_done(void *opaque, int code, const char *message) {
  struct guest *g = opaque;
  if (code)
    host->log(g->inst, VMH_LOG_WARN, "listing the VMs failed: %s",
              message ? message : "?");
  pthread_mutex_lock(&g->lock);
  g->list_done = true;
  pthread_mutex_unlock(&g->lock);
  wake(g);
}

static void on_event(void *opaque, const struct vmh_event *ev) {
  struct guest *g = opaque;
  if (ev->type != VMH_EVENT_VM_STATE && ev->type != VMH_EVENT_VM_CREATED &&
      ev->type != VMH_EVENT_VM_DELETED)
    return;
  pthread_mutex_lock(&g->lock);
  g->rescan_wanted = true;
  pthread_mutex_unlock(&g->lock);
  wake(g);
}

/* Asks the core for the VM list unless an answer is still coming. */
static void rescan(struct guest *g) {
  pthread_mutex_lock(&g->lock);
  bool go = !g->list_in_flight;
  if (go) {
    g->list_in_flight = true;
    g->rescan_wanted = false;
  }
  pthread_mutex_unlock(&g->lock);
  if (!go)
    return;
  g->next_rescan = now_ms() + g->c.rescan_ms;
  /* Served from memory; may complete inline. */
  g->core->vm_list(&g->reply, 0);
}

/* ---- connections (I/O thread) ----------------------------------------- */

static void conn_close_fd(struct guest *g, struct conn *c) {
  fail_jobs(c, atomic_load(&g->stopping) ? VMH_ECANCELED : VMH_EIO,
            atomic_load(&g->stopping)
                ? "vmhostd is stopping"
                : "the agent disconnected before it answered");
  if (c->fd >= 0) {
    epoll_ctl(g->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
  if (c->state == C_READY)
    host->gauge_set(g->inst, "agents_connected", 0);
  c->state = C_IDLE;
  c->line_len = 0;
  c->n_pend = 0;
  c->out_len = c->out_off = 0;
  af_reader_reset(&c->rd);
}

static int connected_count(struct guest *g) {
  int n = 0;
  for (size_t i = 0; i < g->conns.n; i++)
    n += ((struct conn *)g->conns.v[i])->state == C_READY;
  return n;
}

static void update_gauge(struct guest *g) {
  host->gauge_set(g->inst, "agents_connected", connected_count(g));
}

/* Disconnects; the next try after `after_ms`. */
static void drop(struct guest *g, struct conn *c, int64_t after_ms) {
  bool was_ready = c->state == C_READY;
  conn_close_fd(g, c);
  c->next_at = now_ms() + after_ms;
  if (was_ready) {
    host->log(g->inst, VMH_LOG_INFO, "vm %s: agent disconnected", c->vm_id);
    emit(g, c->vm_id, VMH_REASON_AGENT_DISCONNECTED, NULL);
    update_gauge(g);
  }
  if (was_ready || c->cut_off)
    push_status(g, c);
}

/* A guest over one of its bounds. */
static void cut_off(struct guest *g, struct conn *c, const char *counter,
                    const char *why) {
  host->log(g->inst, VMH_LOG_WARN,
            "vm %s: guest cut off for %" PRId64 " ms: %s", c->vm_id,
            g->c.cutoff_ms, why);
  count(g, "cutoffs_total", 1);
  count(g, counter, 1);
  free(c->cut_off);
  c->cut_off = strdup(why);
  emit(g, c->vm_id, VMH_REASON_AGENT_CUT_OFF, why);
  drop(g, c, g->c.cutoff_ms);
}

static void conn_free(struct guest *g, struct conn *c) {
  bool was_ready = c->state == C_READY;
  conn_close_fd(g, c);
  if (was_ready) {
    host->log(g->inst, VMH_LOG_INFO, "vm %s: agent disconnected (VM gone)",
              c->vm_id);
    emit(g, c->vm_id, VMH_REASON_AGENT_DISCONNECTED, "the VM stopped");
  }
  if (was_ready || c->cut_off) {
    free(c->cut_off);
    c->cut_off = NULL;
    push_status(g, c); /* absent */
  }
  if (c->hello)
    vmhost__agent__v1__response__free_unpacked(c->hello, NULL);
  if (c->telemetry)
    vmhost__agent__v1__response__free_unpacked(c->telemetry, NULL);
  free(c->cut_off);
  af_reader_free(&c->rd);
  free(c->out);
  free(c->vm_id);
  free(c->path);
  free(c->version);
  free(c);
}

static struct conn *conn_new(struct guest *g, const struct listed *l) {
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->fd = -1;
  c->vm_id = strdup(l->vm_id);
  c->path = strdup(l->path);
  c->vsock_port = l->vsock_port;
  if (c->vm_id == NULL || c->path == NULL ||
      af_reader_init(&c->rd, (uint32_t)g->c.max_frame) < 0 ||
      (c->out = malloc(2 * (g->c.max_frame + AF_HEADER))) == NULL) {
    af_reader_free(&c->rd);
    free(c->vm_id);
    free(c->path);
    free(c->out);
    free(c);
    return NULL;
  }
  return c;
}

static int want_write(struct guest *g, struct conn *c, bool on) {
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                           .data.ptr = c};
  return epoll_ctl(g->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush(struct guest *g, struct conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      want_write(g, c, true);
      return;
    }
    if (n < 0) {
      drop(g, c, g->c.retry_ms);
      return;
    }
    c->out_off += (size_t)n;
  }
  c->out_len = c->out_off = 0;
  want_write(g, c, false);
}

/* ---- API requests to the agent ----------------------------------------- */

static bool send_request(struct guest *g, struct conn *c, int kind,
                         struct job *job);
static size_t find_conn(struct guest *g, const char *vm_id);

/* The bodies a job's request points at (on the caller's stack). */
struct job_bodies {
  Vmhost__Agent__V1__PingRequest ping;
  Vmhost__Agent__V1__TelemetryRequest tel;
  Vmhost__Agent__V1__ExecRequest exec;
  Vmhost__Agent__V1__FileReadRequest fread;
  Vmhost__Agent__V1__FileWriteRequest fwrite;
  Vmhost__Agent__V1__TimeSyncRequest tsync;
  Vmhost__Agent__V1__FreezeRequest freeze;
  Vmhost__Agent__V1__ThawRequest thaw;
};

static int64_t wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Fills req's body from job; returns how much longer than timeout_ms the
 * answer may take (an exec's or a freeze's own time). */
static int64_t job_request(struct guest *g, struct job *j, Request *req,
                           struct job_bodies *b) {
  switch (j->op) {
    case VMH_AGENT_PING:
      vmhost__agent__v1__ping_request__init(&b->ping);
      req->body_case = VMHOST__AGENT__V1__REQUEST__BODY_PING;
      req->ping = &b->ping;
      return 0;
    case VMH_AGENT_TELEMETRY:
      vmhost__agent__v1__telemetry_request__init(&b->tel);
      req->body_case = VMHOST__AGENT__V1__REQUEST__BODY_TELEMETRY;
      req->telemetry = &b->tel;
      return 0;
    case VMH_AGENT_EXEC:
      vmhost__agent__v1__exec_request__init(&b->exec);
      b->exec.argv = j->argv;
      b->exec.n_argv = j->argc;
      b->exec.timeout_ms =
          j->timeout_ms ? j->timeout_ms : (uint32_t)g->c.exec_timeout_ms;
      b->exec.max_output = j->max_output;
      b->exec.stdin.data = j->data;
      b->exec.stdin.len = j->len;
      req->body_case = VMHOST__AGENT__V1__REQUEST__BODY_EXEC;
      req->exec = &b->exec;
      return b->exec.timeout_ms;
    case VMH_AGENT_FILE_READ:
      vmhost__agent__v1__file_read_request__init(&b->fread);
      b->fread.path = j->path;
      b->fread.offset = j->offset;
      b->fread.max_bytes = j->max_bytes;
      req->body_case = VMHOST__AGENT__V1__REQUEST__BODY_FILE_READ;
      req->file_read = &b->fread;
      return 0;
    case VMH_AGENT_FILE_WRITE:
      vmhost__agent__v1__file_write_request__init(&b->fwrite);
      b->fwrite.path = j->path;
      b->fwrite.data.data = j->data;
      b->fwrite.data.len = j->len;
      b->fwrite.mode = j->mode;
      req->body_case = VMHOST__AGENT__V1__REQUEST__BODY_FILE_WRITE;
      req->file_write = &b->fwrite;
      return 0;
    case VMH_AGENT_TIME_SYNC:
      vmhost__agent__v1__time_sync_request__init(&b->tsync);
      b->tsync.unix_ns = wall_us() * 1000;
      req->body_case = VMHOST__AGENT__V1__REQUEST__BODY_TIME_SYNC;
      req->time_sync = &b->tsync;
      return 0;
    case VMH_AGENT_FREEZE:
      vmhost__agent__v1__freeze_request__init(&b->freeze);
      b->freeze.timeout_s = (j->timeout_ms + 999) / 1000;
      req->body_case = VMHOST__AGENT__V1__REQUEST__BODY_FREEZE;
      req->freeze = &b->freeze;
      /* FIFREEZE waits for dirty data to reach the disk. */
      return 4 * g->c.timeout_ms;
    default:
      vmhost__agent__v1__thaw_request__init(&b->thaw);
      req->body_case = VMHOST__AGENT__V1__REQUEST__BODY_THAW;
      req->thaw = &b->thaw;
      return 0;
  }
}

/* Keeps r in *slot (freeing what was there); returns NULL (now owned). */
static Response *keep(Response **slot, Response *r) {
  if (*slot)
    vmhost__agent__v1__response__free_unpacked(*slot, NULL);
  *slot = r;
  return NULL;
}

/* A guest's string, made printable and short, for a message. */
static void printable(char *dst, size_t len, const char *src) {
  size_t n = 0;
  for (; src && *src && n + 1 < len; src++)
    dst[n++] = *src >= 0x20 && *src < 0x7f ? *src : '?';
  dst[n] = 0;
}

/* Telemetry as the ABI's struct, handed to fn. */
static void with_telemetry(const Vmhost__Agent__V1__TelemetryResponse *t,
                           int64_t time_us, struct vmh_agent_result *res,
                           vmh_reply_t *r) {
  size_t nf = t ? t->n_filesystems : 0, nn = t ? t->n_nics : 0;
  struct vmh_agent_fs *fs = calloc(nf ? nf : 1, sizeof *fs);
  struct vmh_agent_nic *nics = calloc(nn ? nn : 1, sizeof *nics);
  struct vmh_agent_telemetry tel = {.struct_size = sizeof tel};
  if (t && fs && nics) {
    for (size_t i = 0; i < nf; i++) {
      const Vmhost__Agent__V1__Filesystem *f = t->filesystems[i];
      fs[i] = (struct vmh_agent_fs){.struct_size = sizeof fs[i],
                                    .mountpoint = f->mountpoint,
                                    .device = f->device,
                                    .type = f->type,
                                    .size = f->size,
                                    .used = f->used,
                                    .read_only = f->read_only};
    }
    for (size_t i = 0; i < nn; i++) {
      const Vmhost__Agent__V1__Nic *n = t->nics[i];
      nics[i] =
          (struct vmh_agent_nic){.struct_size = sizeof nics[i],
                                 .name = n->name,
                                 .mac = n->mac,
                                 .addresses = (const char *const *)n->addresses,
                                 .n_addresses = (uint32_t)n->n_addresses};
    }
    tel = (struct vmh_agent_telemetry){.struct_size = sizeof tel,
                                       .time_us = time_us,
                                       .os_name = t->os_name,
                                       .os_version = t->os_version,
                                       .kernel = t->kernel,
                                       .hostname = t->hostname,
                                       .arch = t->arch,
                                       .uptime_s = t->uptime_s,
                                       .cpus = t->cpus,
                                       .cpu_use = t->cpu_use,
                                       .memory_total = t->memory_total,
                                       .memory_available = t->memory_available,
                                       .filesystems = fs,
                                       .n_filesystems = (uint32_t)nf,
                                       .nics = nics,
                                       .n_nics = (uint32_t)nn};
    res->telemetry = &tel;
  }
  r->agent(r->opaque, res);
  free(fs);
  free(nics);
}

/* The agent's error as the core's code, and its message. */
static void job_agent_error(struct job *j, const Vmhost__Agent__V1__Error *e) {
  static const struct {
    int agent, code;
    const char *what;
  } map[] = {
      {VMHOST__AGENT__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT, VMH_EINVAL,
       "refused the request"},
      {VMHOST__AGENT__V1__ERROR_CODE__ERROR_PERMISSION_DENIED, VMH_EPERM,
       "refused by its config"},
      {VMHOST__AGENT__V1__ERROR_CODE__ERROR_NOT_FOUND, VMH_ENOENT, "not found"},
      {VMHOST__AGENT__V1__ERROR_CODE__ERROR_TOO_LARGE, VMH_EINVAL,
       "over a cap of the agent"},
      {VMHOST__AGENT__V1__ERROR_CODE__ERROR_UNSUPPORTED, VMH_ENOTSUP,
       "not supported by the agent"},
      {VMHOST__AGENT__V1__ERROR_CODE__ERROR_BUSY, VMH_EBUSY, "busy"},
  };
  int code = VMH_EIO;
  const char *what = "failed in the guest";
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if ((int)e->code == map[i].agent) {
      code = map[i].code;
      what = map[i].what;
    }
  char msg[300];
  printable(msg, sizeof msg, e->message);
  job_fail(j, code, "agent on vm '%s': %s: %s", j->vm_name, what, msg);
}

/* The body case an op's answer must have. */
static int answer_case(uint32_t op) {
  switch (op) {
    case VMH_AGENT_PING:
      return VMHOST__AGENT__V1__RESPONSE__BODY_PING;
    case VMH_AGENT_TELEMETRY:
      return VMHOST__AGENT__V1__RESPONSE__BODY_TELEMETRY;
    case VMH_AGENT_EXEC:
      return VMHOST__AGENT__V1__RESPONSE__BODY_EXEC;
    case VMH_AGENT_FILE_READ:
      return VMHOST__AGENT__V1__RESPONSE__BODY_FILE_READ;
    case VMH_AGENT_FILE_WRITE:
      return VMHOST__AGENT__V1__RESPONSE__BODY_FILE_WRITE;
    case VMH_AGENT_TIME_SYNC:
      return VMHOST__AGENT__V1__RESPONSE__BODY_TIME_SYNC;
    case VMH_AGENT_FREEZE:
      return VMHOST__AGENT__V1__RESPONSE__BODY_FREEZE;
    default:
      return VMHOST__AGENT__V1__RESPONSE__BODY_THAW;
  }
}

/* The agent answered job j with r: to the API, then j is freed. */
static void job_answer(struct guest *g, struct conn *c, struct job *j,
                       const Response *r) {
  if (r->error) {
    job_agent_error(j, r->error);
    return;
  }
  if ((int)r->body_case != answer_case(j->op)) {
    count(g, "protocol_errors_total", 1);
    job_fail(j, VMH_EIO, "agent on vm '%s' answered with something else",
             j->vm_name);
    return;
  }
  struct vmh_agent_result res = {
      .struct_size = sizeof res, .op = j->op, .state = VMH_AGENT_CONNECTED};
  switch (j->op) {
    case VMH_AGENT_TELEMETRY:
      /* What SHOW says, with this telemetry (kept as the last one). */
      res.version = c->version;
      if (c->hello && c->hello->hello) {
        res.capabilities = (const char *const *)c->hello->hello->capabilities;
        res.n_capabilities = (uint32_t)c->hello->hello->n_capabilities;
      }
      with_telemetry(r->telemetry, wall_us(), &res, j->r);
      j->r->done(j->r->opaque, 0, NULL);
      job_free(j);
      return;
    case VMH_AGENT_EXEC: {
      const Vmhost__Agent__V1__ExecResponse *x = r->exec;
      res.exit_status = x->exit_status;
      res.signal = x->signal;
      res.timed_out = x->timed_out;
      res.out = x->stdout.data;
      res.out_len = x->stdout.len;
      res.err = x->stderr.data;
      res.err_len = x->stderr.len;
      res.out_truncated = x->stdout_truncated;
      res.err_truncated = x->stderr_truncated;
      break;
    }
    case VMH_AGENT_FILE_READ:
      res.data = r->file_read->data.data;
      res.len = r->file_read->data.len;
      res.size = r->file_read->size;
      res.eof = r->file_read->eof;
      break;
    case VMH_AGENT_FILE_WRITE:
      res.size = r->file_write->size;
      break;
    case VMH_AGENT_TIME_SYNC:
      res.offset_ns = r->time_sync->offset_ns;
      break;
    case VMH_AGENT_FREEZE:
      res.frozen = (const char *const *)r->freeze->frozen;
      res.n_frozen = (uint32_t)r->freeze->n_frozen;
      break;
    case VMH_AGENT_THAW:
      res.n_frozen = r->thaw->thawed;
      break;
    default:
      break;
  }
  j->r->agent(j->r->opaque, &res);
  j->r->done(j->r->opaque, 0, NULL);
  job_free(j);
}

/* SHOW, from what this front-end keeps (c NULL: no channel). */
static void job_show(struct conn *c, struct job *j) {
  struct vmh_agent_result res = {.struct_size = sizeof res,
                                 .op = VMH_AGENT_SHOW,
                                 .state = c ? agent_state(c) : 0};
  if (c && c->state == C_READY) {
    res.version = c->version;
    if (c->hello && c->hello->hello) {
      res.capabilities = (const char *const *)c->hello->hello->capabilities;
      res.n_capabilities = (uint32_t)c->hello->hello->n_capabilities;
    }
  }
  if (c) {
    res.message = c->cut_off;
    res.thaw_pending = c->thaw_owed;
  }
  if (c && c->telemetry)
    with_telemetry(c->telemetry->telemetry, c->telemetry_us, &res, j->r);
  else
    j->r->agent(j->r->opaque, &res);
  j->r->done(j->r->opaque, 0, NULL);
  job_free(j);
}

/* A job taken from the queue (I/O thread). */
static void job_start(struct guest *g, struct job *j) {
  size_t at = find_conn(g, j->vm_id);
  struct conn *c = at < g->conns.n ? g->conns.v[at] : NULL;
  if (j->op == VMH_AGENT_SHOW) {
    job_show(c, j);
    return;
  }
  if (!c || c->state != C_READY) {
    /* A thaw must not be lost: the guest may be frozen. */
    bool owe = c && j->op == VMH_AGENT_THAW;
    if (owe)
      c->thaw_owed = true;
    job_fail(j, VMH_ESTATE, "agent not connected on vm '%s'%s%s%s", j->vm_name,
             c && c->cut_off ? ": cut off for " : "",
             c && c->cut_off ? c->cut_off : "",
             owe ? " (the thaw is sent when the agent reconnects)" : "");
    return;
  }
  if (job_pending(c)) {
    /* One at a time: the agent serves requests in order, and an API
     * caller must not make a guest's channel its queue. */
    job_fail(j, VMH_EBUSY,
             "agent on vm '%s' is busy with another request; try again",
             j->vm_name);
    return;
  }
  if (!send_request(g, c, K_JOB, j))
    job_fail(j, VMH_EAGAIN,
             "agent on vm '%s': too many requests in flight; try again",
             j->vm_name);
}

static void run_jobs(struct guest *g) {
  pthread_mutex_lock(&g->lock);
  struct job *list = g->jobs, *rev = NULL;
  g->jobs = NULL;
  pthread_mutex_unlock(&g->lock);
  while (list) { /* oldest first */
    struct job *n = list->next;
    list->next = rev;
    rev = list;
    list = n;
  }
  while (rev) {
    struct job *n = rev->next;
    job_start(g, rev);
    rev = n;
  }
}

/* Queues a request; false when it cannot (too many in flight, the guest
 * does not read what we send, or it does not pack). */
static bool send_request(struct guest *g, struct conn *c, int kind,
                         struct job *job) {
  Request req = VMHOST__AGENT__V1__REQUEST__INIT;
  struct job_bodies jb;
  int64_t extra_ms = 0;
  Vmhost__Agent__V1__SyncRequest sync = VMHOST__AGENT__V1__SYNC_REQUEST__INIT;
  Vmhost__Agent__V1__HelloRequest hello =
      VMHOST__AGENT__V1__HELLO_REQUEST__INIT;
  Vmhost__Agent__V1__PingRequest ping = VMHOST__AGENT__V1__PING_REQUEST__INIT;
  Vmhost__Agent__V1__TelemetryRequest tel =
      VMHOST__AGENT__V1__TELEMETRY_REQUEST__INIT;
  Vmhost__Agent__V1__ThawRequest thaw = VMHOST__AGENT__V1__THAW_REQUEST__INIT;
  if (c->n_pend >= (size_t)g->c.max_pending)
    return false;
  switch (kind) {
    case K_SYNC:
      /* A random id: an agent that restarted mid-stream cannot answer it
       * by accident. */
      if (getrandom(&req.id, sizeof req.id, 0) != sizeof req.id)
        req.id = ++g->next_id ^ (uint64_t)now_ms() << 20;
      c->sync_id = req.id;
      req.body_case = VMHOST__AGENT__V1__REQUEST__BODY_SYNC;
      req.sync = &sync;
      break;
    case K_HELLO:
      req.id = ++g->next_id;
      req.body_case = VMHOST__AGENT__V1__REQUEST__BODY_HELLO;
      hello.version = VMHOST__AGENT__V1__VERSION__VERSION_1;
      req.hello = &hello;
      break;
    case K_PING:
      req.id = ++g->next_id;
      req.body_case = VMHOST__AGENT__V1__REQUEST__BODY_PING;
      req.ping = &ping;
      break;
    case K_JOB:
      req.id = ++g->next_id;
      extra_ms = job_request(g, job, &req, &jb);
      break;
    case K_THAW:
      req.id = ++g->next_id;
      req.body_case = VMHOST__AGENT__V1__REQUEST__BODY_THAW;
      req.thaw = &thaw;
      break;
    default:
      req.id = ++g->next_id;
      req.body_case = VMHOST__AGENT__V1__REQUEST__BODY_TELEMETRY;
      req.telemetry = &tel;
      break;
  }
  size_t n;
  uint8_t *f = af_pack(&req.base, (uint32_t)g->c.max_frame, &n);
  if (f == NULL)
    return false;
  size_t room = 2 * (g->c.max_frame + AF_HEADER);
  if (c->out_off && c->out_off == c->out_len)
    c->out_len = c->out_off = 0;
  if (c->out_len + n > room) {
    free(f);
    return false;
  }
  memcpy(c->out + c->out_len, f, n);
  c->out_len += n;
  free(f);
  c->pend[c->n_pend++] = (struct pending){
      req.id, kind, now_ms() + g->c.timeout_ms + extra_ms, job};
  count(g, "requests_total", 1);
  flush(g, c);
  return true;
}

static void resync(struct guest *g, struct conn *c) {
  fail_jobs(c, VMH_ETIMEDOUT, "no answer in time; re-synchronising");
  c->n_pend = 0;
  c->state = C_SYNC;
  if (!send_request(g, c, K_SYNC, NULL))
    cut_off(g, c, "stalls_total", "it does not read what the host sends");
}

static void try_connect(struct guest *g, struct conn *c) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(c->path) >= sizeof a.sun_path) {
    c->next_at = INT64_MAX; /* cannot ever work; said once */
    host->log(g->inst, VMH_LOG_ERROR, "vm %s: channel path too long: %s",
              c->vm_id, c->path);
    return;
  }
  strcpy(a.sun_path, c->path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    /* A unix socket connects at once or fails: nobody there yet. */
    if (fd >= 0)
      close(fd);
    c->next_at = now_ms() + g->c.retry_ms;
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    close(fd);
    c->next_at = now_ms() + g->c.retry_ms;
    return;
  }
  c->fd = fd;
  c->tokens = (double)g->c.burst;
  c->tokens_at = now_ms();
  c->timeouts = c->stray = 0;
  af_reader_reset(&c->rd);
  count(g, "connects_total", 1);
  if (c->vsock_port == 0) {
    resync(g, c);
    return;
  }
  /* A vsock bridge (Cloud Hypervisor's): ask for the agent's port; the
   * frames start after its "OK <port>" line. */
  int n = snprintf((char *)c->out, 32, "CONNECT %" PRIu32 "\n", c->vsock_port);
  c->out_len = (size_t)n;
  c->out_off = 0;
  c->state = C_VSOCK;
  c->next_at = now_ms() + g->c.timeout_ms;
  flush(g, c);
}

/* The vsock bridge's answer: "OK <port>\n", then the stream.  Anything
 * else (the bridge closes when nothing listens on the port in the guest)
 * means: try again later. */
static void on_vsock_line(struct guest *g, struct conn *c) {
  ssize_t n = recv(c->fd, c->line + c->line_len, sizeof c->line - c->line_len,
                   MSG_DONTWAIT | MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    drop(g, c, g->c.retry_ms);
    return;
  }
  char *nl = memchr(c->line + c->line_len, '\n', (size_t)n);
  /* Take the line only: what follows it is the agent's, for the reader. */
  size_t take = nl ? (size_t)(nl - (c->line + c->line_len)) + 1 : (size_t)n;
  if (recv(c->fd, c->line + c->line_len, take, MSG_DONTWAIT) != (ssize_t)take) {
    drop(g, c, g->c.retry_ms);
    return;
  }
  c->line_len += take;
  if (nl == NULL) {
    if (c->line_len == sizeof c->line)
      cut_off(g, c, "protocol_errors_total", "a vsock answer without end");
    return;
  }
  if (c->line_len < 3 || memcmp(c->line, "OK ", 3)) {
    drop(g, c, g->c.retry_ms);
    return;
  }
  c->line_len = 0;
  resync(g, c);
}

static struct pending *find_pending(struct conn *c, uint64_t id) {
  for (size_t i = 0; i < c->n_pend; i++)
    if (c->pend[i].id == id)
      return &c->pend[i];
  return NULL;
}

static void forget_pending(struct conn *c, struct pending *p) {
  *p = c->pend[--c->n_pend];
}

static void on_hello(struct guest *g, struct conn *c, const Response *r) {
  if (r->body_case != VMHOST__AGENT__V1__RESPONSE__BODY_HELLO) {
    cut_off(g, c, "protocol_errors_total", "no Hello in the Hello answer");
    return;
  }
  const Vmhost__Agent__V1__HelloResponse *h = r->hello;
  if (h->version != VMHOST__AGENT__V1__VERSION__VERSION_1) {
    host->log(g->inst, VMH_LOG_WARN,
              "vm %s: agent speaks protocol version %" PRIu32
              ", not 1; retrying later",
              c->vm_id, h->version);
    drop(g, c, g->c.cutoff_ms);
    return;
  }
  char v[64];
  /* The guest's string, printable ASCII only and short, before it goes in
   * a log line. */
  size_t n = 0;
  for (const char *s = h->agent_version; *s && n < sizeof v - 1; s++)
    v[n++] = *s >= 0x20 && *s < 0x7f ? *s : '?';
  v[n] = 0;
  free(c->version);
  c->version = strdup(v);
  free(c->cut_off);
  c->cut_off = NULL;
  c->state = C_READY;
  c->next_at = now_ms(); /* ping now */
  c->next_telemetry = now_ms();
  c->ever_ready = true;
  host->log(g->inst, VMH_LOG_INFO, "vm %s: agent %s connected", c->vm_id, v);
  emit(g, c->vm_id, VMH_REASON_AGENT_CONNECTED, v);
  update_gauge(g);
  push_status(g, c);
  if (c->thaw_owed) {
    host->log(g->inst, VMH_LOG_INFO,
              "vm %s: sending the thaw the last connection lost", c->vm_id);
    if (!send_request(g, c, K_THAW, NULL))
      cut_off(g, c, "stalls_total", "it does not read what the host sends");
  }
}

/* The agent answered the thaw owed since a connection was lost. */
static void on_owed_thaw(struct guest *g, struct conn *c, const Response *r) {
  c->thaw_owed = false;
  count(g, "thaws_resent_total", 1);
  if (r->error || r->body_case != VMHOST__AGENT__V1__RESPONSE__BODY_THAW) {
    char msg[300];
    printable(msg, sizeof msg, r->error ? r->error->message : "no Thaw body");
    host->log(g->inst, VMH_LOG_WARN,
              "vm %s: the agent refused the re-sent thaw: %s", c->vm_id, msg);
    return;
  }
  host->log(g->inst, VMH_LOG_INFO,
            "vm %s: re-sent thaw: the agent thawed %" PRIu32 " filesystems",
            c->vm_id, r->thaw->thawed);
}

/* One frame from the guest. */
static void on_frame(struct guest *g, struct conn *c, const uint8_t *data,
                     uint32_t len) {
  count(g, "frames_total", 1);
  Response *r = vmhost__agent__v1__response__unpack(NULL, len, data);
  if (r == NULL) {
    count(g, "bad_frames_total", 1);
    if (++c->stray > (uint32_t)g->c.max_stray)
      cut_off(g, c, "protocol_errors_total", "frames that do not decode");
    return;
  }
  if (c->state == C_SYNC && r->id != c->sync_id) {
    /* Before the sync answer everything is stale by design. */
    count(g, "discarded_total", 1);
  } else if (c->state == C_SYNC) {
    c->n_pend = 0; /* whatever was asked before the sync is forgotten */
    c->state = C_HELLO;
    c->timeouts = 0;
    if (!send_request(g, c, K_HELLO, NULL))
      cut_off(g, c, "stalls_total", "it does not read what the host sends");
  } else {
    struct pending *p = find_pending(c, r->id);
    if (p == NULL) {
      count(g, "stray_answers_total", 1);
      if (++c->stray > (uint32_t)g->c.max_stray)
        cut_off(g, c, "protocol_errors_total", "answers to no request");
    } else {
      int kind = p->kind;
      struct job *job = p->job;
      forget_pending(c, p);
      c->timeouts = 0;
      if (r->error)
        count(g, "agent_errors_total", 1);
      if (kind == K_HELLO) {
        on_hello(g, c, r);
        if (c->state == C_READY)
          r = keep(&c->hello, r);
      } else if (kind == K_TELEMETRY && !r->error &&
                 r->body_case == VMHOST__AGENT__V1__RESPONSE__BODY_TELEMETRY) {
        count(g, "telemetry_total", 1);
        r = keep(&c->telemetry, r);
        c->telemetry_us = wall_us();
        push_status(g, c);
      } else if (kind == K_THAW) {
        on_owed_thaw(g, c, r);
      } else if (kind == K_JOB) {
        if (job->op == VMH_AGENT_THAW && !r->error)
          c->thaw_owed = false; /* an API thaw did it */
        job_answer(g, c, job, r);
        if (!r->error &&
            r->body_case == VMHOST__AGENT__V1__RESPONSE__BODY_TELEMETRY) {
          r = keep(&c->telemetry, r);
          c->telemetry_us = wall_us();
          push_status(g, c);
        }
      }
    }
  }
  if (r)
    vmhost__agent__v1__response__free_unpacked(r, NULL);
}

/* The frame-rate bucket: false when the guest is over its rate. */
static bool take_token(struct guest *g, struct conn *c) {
  int64_t now = now_ms();
  c->tokens += (double)(now - c->tokens_at) * (double)g->c.rate / 1000.0;
  if (c->tokens > (double)g->c.burst)
    c->tokens = (double)g->c.burst;
  c->tokens_at = now;
  if (c->tokens < 1)
    return false;
  c->tokens -= 1;
  return true;
}

static void on_readable(struct guest *g, struct conn *c) {
  if (c->state == C_VSOCK) {
    on_vsock_line(g, c);
    return;
  }
  uint64_t before_garbage = c->rd.garbage_bytes,
           before_oversize = c->rd.oversize;
  /* One read per wake-up: a flooding guest gets its turn like the others
   * and no more. */
  size_t room;
  uint8_t *buf = af_reader_space(&c->rd, &room);
  ssize_t n = recv(c->fd, buf, room, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    drop(g, c, g->c.retry_ms);
    return;
  }
  count(g, "bytes_total", (uint64_t)n);
  af_reader_commit(&c->rd, (size_t)n);
  const uint8_t *f;
  uint32_t len;
  while (c->fd >= 0 && af_reader_next(&c->rd, &f, &len)) {
    if (!take_token(g, c)) {
      cut_off(g, c, "rate_limited_total", "over its frame rate");
      return;
    }
    on_frame(g, c, f, len);
  }
  if (c->fd < 0)
    return;
  if (c->rd.garbage_bytes > before_garbage)
    count(g, "garbage_bytes_total", c->rd.garbage_bytes - before_garbage);
  if (c->rd.oversize > before_oversize)
    count(g, "oversize_frames_total", c->rd.oversize - before_oversize);
  /* Garbage costs a read each; a guest that sends only garbage is a flood
   * too. */
  if (c->rd.lost && c->rd.garbage_bytes - before_garbage > 0 &&
      !take_token(g, c))
    cut_off(g, c, "rate_limited_total", "a flood of garbage");
}

/* Timers of one connection: connect retries, answer timeouts, pings. */
static void tick(struct guest *g, struct conn *c, int64_t now) {
  if (c->fd < 0) {
    if (now >= c->next_at)
      try_connect(g, c);
    return;
  }
  if (c->state == C_VSOCK) {
    if (now >= c->next_at) {
      count(g, "timeouts_total", 1);
      drop(g, c, g->c.retry_ms);
    }
    return;
  }
  for (size_t i = 0; i < c->n_pend; i++)
    if (now >= c->pend[i].deadline) {
      count(g, "timeouts_total", 1);
      /* An agent that is not (yet) running in the guest sends nothing and
       * is asked again and again; a guest that answered and stopped, or
       * stalls in the middle of a frame, is cut off. */
      if (++c->timeouts >= MAX_TIMEOUTS &&
          (c->state != C_SYNC || c->rd.len > 0)) {
        cut_off(g, c, "stalls_total", "answers stopped coming");
        return;
      }
      bool was_ready = c->state == C_READY;
      resync(g, c);
      if (was_ready && c->fd >= 0) {
        host->log(g->inst, VMH_LOG_INFO,
                  "vm %s: agent stopped answering; re-synchronising", c->vm_id);
        emit(g, c->vm_id, VMH_REASON_AGENT_DISCONNECTED, "stopped answering");
        update_gauge(g);
        push_status(g, c);
      }
      return;
    }
  /* The agent answers one request at a time: while an API request runs
   * (a long exec), pings would only wait behind it and time out. */
  if (c->state != C_READY || job_pending(c))
    return;
  if (now >= c->next_at) {
    c->next_at = now + g->c.ping_ms;
    send_request(g, c, K_PING, NULL);
  }
  if (c->fd >= 0 && g->c.telemetry_ms && now >= c->next_telemetry) {
    c->next_telemetry = now + g->c.telemetry_ms;
    send_request(g, c, K_TELEMETRY, NULL);
  }
}

static int64_t next_deadline(struct guest *g) {
  int64_t t = g->next_rescan;
  for (size_t i = 0; i < g->conns.n; i++) {
    struct conn *c = g->conns.v[i];
    if (c->fd < 0 || c->state == C_VSOCK) {
      if (c->next_at < t)
        t = c->next_at;
      continue;
    }
    for (size_t j = 0; j < c->n_pend; j++)
      if (c->pend[j].deadline < t)
        t = c->pend[j].deadline;
    if (c->state == C_READY && !job_pending(c)) {
      if (c->next_at < t)
        t = c->next_at;
      if (g->c.telemetry_ms && c->next_telemetry < t)
        t = c->next_telemetry;
    }
  }
  return t;
}

/* The index of vm_id's connection, or g->conns.n. */
static size_t find_conn(struct guest *g, const char *vm_id) {
  size_t i;
  for (i = 0; i < g->conns.n; i++)
    if (!strcmp(((struct conn *)g->conns.v[i])->vm_id, vm_id))
      break;
  return i;
}

/* Brings the connections in line with the VM list that just came. */
static void apply_list(struct guest *g) {
  struct ptrvec list;
  pthread_mutex_lock(&g->lock);
  list = g->list;
  memset(&g->list, 0, sizeof g->list);
  g->list_in_flight = false;
  g->list_done = false;
  pthread_mutex_unlock(&g->lock);

  for (size_t i = 0; i < g->conns.n; i++)
    ((struct conn *)g->conns.v[i])->listed = false;
  for (size_t i = 0; i < list.n; i++) {
    struct listed *l = list.v[i];
    size_t at = find_conn(g, l->vm_id);
    struct conn *c = at < g->conns.n ? g->conns.v[at] : NULL;
    if (c && (strcmp(c->path, l->path) || c->vsock_port != l->vsock_port)) {
      /* The channel moved (redefined): start over. */
      conn_free(g, ptrvec_remove(&g->conns, at));
      c = NULL;
    }
    if (c == NULL && (c = conn_new(g, l)) != NULL &&
        ptrvec_push(&g->conns, c) < 0) {
      conn_free(g, c);
      c = NULL;
    }
    if (c)
      c->listed = true;
    free(l->vm_id);
    free(l->path);
    free(l);
  }
  ptrvec_free(&list);
  for (size_t i = g->conns.n; i-- > 0;) {
    struct conn *c = g->conns.v[i];
    if (!c->listed)
      conn_free(g, ptrvec_remove(&g->conns, i));
  }
  update_gauge(g);
}

static void *io_main(void *arg) {
  struct guest *g = arg;
  rescan(g);
  while (!atomic_load(&g->stopping)) {
    int64_t now = now_ms(), t = next_deadline(g);
    struct epoll_event evs[32];
    int n =
        epoll_wait(g->epfd, evs, 32,
                   t <= now ? 0 : (t - now > 60000 ? 60000 : (int)(t - now)));
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) {
        eventfd_t v;
        eventfd_read(g->evfd, &v);
        continue;
      }
      struct conn *c = evs[i].data.ptr;
      if (c->fd < 0)
        continue; /* dropped earlier in this batch */
      if (evs[i].events & EPOLLOUT)
        flush(g, c);
      if (c->fd >= 0 && evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        on_readable(g, c);
    }
    pthread_mutex_lock(&g->lock);
    bool done = g->list_done, want = g->rescan_wanted;
    pthread_mutex_unlock(&g->lock);
    if (done)
      apply_list(g);
    run_jobs(g);
    now = now_ms();
    if (want || now >= g->next_rescan)
      rescan(g);
    for (size_t i = 0; i < g->conns.n; i++)
      tick(g, g->conns.v[i], now);
  }
  return NULL;
}

/* ---- plugin operations ------------------------------------------------ */

static int guest_load(const struct vmh_host *h) {
  host = h;
  return 0;
}

static int read_config(const struct vmh_host *h,
                       const struct vmh_config *config, struct gconf *c) {
  int r;
  if ((r = h->config_int(config, "retry_ms", 10, 3600000, 1000, &c->retry_ms,
                         0)) < 0 ||
      (r = h->config_int(config, "timeout_ms", 10, 3600000, 5000,
                         &c->timeout_ms, 0)) < 0 ||
      (r = h->config_int(config, "ping_ms", 10, 3600000, 10000, &c->ping_ms,
                         0)) < 0 ||
      (r = h->config_int(config, "telemetry_ms", 0, 86400000, 60000,
                         &c->telemetry_ms, 0)) < 0 ||
      (r = h->config_int(config, "cutoff_ms", 10, 86400000, 60000,
                         &c->cutoff_ms, 0)) < 0 ||
      (r = h->config_int(config, "rescan_ms", 100, 3600000, 30000,
                         &c->rescan_ms, 0)) < 0 ||
      (r = h->config_size(config, "max_frame", 4096, AF_MAX_FRAME, AF_MAX_FRAME,
                          &c->max_frame, 0)) < 0 ||
      (r = h->config_int(config, "rate", 1, 1000000, 100, &c->rate, 0)) < 0 ||
      (r = h->config_int(config, "burst", 1, 1000000, 200, &c->burst, 0)) < 0 ||
      (r = h->config_int(config, "max_pending", 2, MAX_PENDING_CAP, 16,
                         &c->max_pending, 0)) < 0 ||
      (r = h->config_int(config, "max_stray", 0, 1000000, 16, &c->max_stray,
                         0)) < 0 ||
      (r = h->config_int(config, "exec_timeout_ms", 100, 3600000, 30000,
                         &c->exec_timeout_ms, 0)) < 0)
    return r;
  return 0;
}

static int guest_open(const struct vmh_host *h, const struct vmh_instance *inst,
                      const struct vmh_config *config, void **ret_handle,
                      uint32_t flags) {
  int r;
  if ((r = vmh_check_flags(h, "open", flags, VMH_OPEN_CHECK_ONLY)) < 0)
    return r;
  struct guest *g = calloc(1, sizeof *g);
  if (g == NULL)
    return vmh_fail(h, VMH_ENOMEM, "out of memory");
  if ((r = read_config(h, config, &g->c)) < 0) {
    free(g);
    return r;
  }
  g->inst = inst;
  g->epfd = g->evfd = -1;
  pthread_mutex_init(&g->lock, NULL);
  g->reply.struct_size = sizeof g->reply;
  g->reply.opaque = g;
  g->reply.vm = on_vm;
  g->reply.done = on_list_done;
  *ret_handle = g;
  return 0;
}

static void close_fds(struct guest *g) {
  if (g->epfd >= 0)
    close(g->epfd);
  if (g->evfd >= 0)
    close(g->evfd);
  g->epfd = g->evfd = -1;
}

static int guest_start(void *handle, const struct vmh_core *core,
                       uint32_t flags) {
  struct guest *g = handle;
  int r;
  if ((r = vmh_check_flags(host, "start", flags, 0)) < 0)
    return r;
  if (g->running)
    return vmh_fail(host, VMH_ESTATE, "already started");
  g->core = core;
  atomic_store(&g->stopping, false);
  g->epfd = epoll_create1(EPOLL_CLOEXEC);
  g->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (g->epfd < 0 || g->evfd < 0 ||
      epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->evfd, &ev) < 0) {
    r = vmh_fail(host, VMH_EIO, "epoll/eventfd: %s", strerror(errno));
    close_fds(g);
    return r;
  }
  if ((r = core->subscribe(on_event, g, &g->sub_id, 0)) < 0) {
    close_fds(g);
    return vmh_fail(host, r, "cannot follow the VM events: %s",
                    core->error_message());
  }
  g->subscribed = true;
  if ((r = pthread_create(&g->thread, NULL, io_main, g)) != 0) {
    core->unsubscribe(g->sub_id);
    g->subscribed = false;
    close_fds(g);
    return vmh_fail(host, VMH_EIO, "cannot start the I/O thread: %s",
                    strerror(r));
  }
  g->running = true;
  pthread_mutex_lock(&g->lock);
  g->accepting = true;
  pthread_mutex_unlock(&g->lock);
  host->gauge_set(g->inst, "agents_connected", 0);
  host->log(g->inst, VMH_LOG_INFO, "following the VMs' guest channels");
  return 0;
}

static void guest_stop(void *handle, uint32_t flags) {
  struct guest *g = handle;
  (void)flags; /* none defined, and stop() cannot refuse */
  if (!g->running)
    return;
  /* Events first, so nothing new comes; then the thread. */
  g->core->unsubscribe(g->sub_id);
  g->subscribed = false;
  pthread_mutex_lock(&g->lock);
  g->accepting = false;
  pthread_mutex_unlock(&g->lock);
  atomic_store(&g->stopping, true);
  wake(g);
  pthread_join(g->thread, NULL);
  /* A VM list may still be answering: wait for its done(). */
  for (;;) {
    pthread_mutex_lock(&g->lock);
    bool busy = g->list_in_flight && !g->list_done;
    pthread_mutex_unlock(&g->lock);
    if (!busy)
      break;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  /* Every job gets its answer: those queued, then those in flight. */
  while (g->jobs) {
    struct job *j = g->jobs;
    g->jobs = j->next;
    job_fail(j, VMH_ECANCELED, "agent on vm '%s': vmhostd is stopping",
             j->vm_name);
  }
  while (g->conns.n)
    conn_free(g, ptrvec_remove(&g->conns, g->conns.n - 1));
  ptrvec_free(&g->conns);
  for (size_t i = 0; i < g->list.n; i++) {
    struct listed *l = g->list.v[i];
    free(l->vm_id);
    free(l->path);
    free(l);
  }
  ptrvec_free(&g->list);
  g->list_in_flight = g->list_done = false;
  close_fds(g);
  g->running = false;
  host->log(g->inst, VMH_LOG_INFO, "stopped");
}

static void guest_close(void *handle) {
  struct guest *g = handle;
  if (g == NULL)
    return;
  guest_stop(g, 0);
  pthread_mutex_destroy(&g->lock);
  free(g);
}

/* ---- agent_call (core threads) ------------------------------------------ */

#define MAX_ARGS 256
#define MAX_PATH 4096

/* What a request's answer or body may hold at most: a frame, less room
 * for the rest of the message. */
static uint64_t data_cap(const struct guest *g) {
  /* max_frame is at least 4096 (read_config). */
  return g->c.max_frame > 16384 ? g->c.max_frame - 8192 : g->c.max_frame / 2;
}

/* Checks req and copies it into j; 0 or a message in why. */
static int job_copy(const struct guest *g, struct job *j,
                    const struct vmh_agent_request *in, char *why,
                    size_t why_len) {
  struct vmh_agent_request q = {0};
  memcpy(&q, in, in->struct_size < sizeof q ? in->struct_size : sizeof q);
  j->op = q.op;
  if (q.op < VMH_AGENT_SHOW || q.op > VMH_AGENT_THAW)
    return snprintf(why, why_len, "unknown agent operation %u", (unsigned)q.op);
  size_t total = 0;
  if (q.op == VMH_AGENT_EXEC) {
    if (q.argc < 1 || q.argc > MAX_ARGS || !q.argv)
      return snprintf(why, why_len, "exec needs 1 to %d arguments", MAX_ARGS);
    if (!q.argv[0] || q.argv[0][0] != '/')
      return snprintf(why, why_len,
                      "exec: argv[0] must be an absolute path (no shell)");
    if (!(j->argv = calloc(q.argc + 1, sizeof *j->argv)))
      return snprintf(why, why_len, "out of memory");
    for (uint32_t i = 0; i < q.argc; i++) {
      if (!q.argv[i])
        return snprintf(why, why_len, "exec: argv[%u] is missing", i);
      total += strlen(q.argv[i]) + 8;
      if (!(j->argv[i] = strdup(q.argv[i])))
        return snprintf(why, why_len, "out of memory");
      j->argc = i + 1;
    }
    if (q.max_output > data_cap(g) / 2)
      return snprintf(why, why_len, "exec: max_output must be at most %" PRIu64,
                      data_cap(g) / 2);
    j->timeout_ms = q.timeout_ms;
    /* 0: as much as the answer's frame carries (stdout and stderr both);
     * the agent lowers it to its own cap. */
    j->max_output = q.max_output ? q.max_output : (uint32_t)(data_cap(g) / 2);
  }
  if (q.op == VMH_AGENT_FILE_READ || q.op == VMH_AGENT_FILE_WRITE) {
    if (!q.path || q.path[0] != '/' || strlen(q.path) > MAX_PATH)
      return snprintf(why, why_len,
                      "the file path must be absolute, at most %d bytes",
                      MAX_PATH);
    if (!(j->path = strdup(q.path)))
      return snprintf(why, why_len, "out of memory");
    total += strlen(q.path);
    if (q.max_bytes > data_cap(g))
      return snprintf(why, why_len, "max_bytes must be at most %" PRIu64,
                      data_cap(g));
    j->offset = q.offset;
    j->max_bytes = q.max_bytes ? q.max_bytes : (uint32_t)data_cap(g);
    j->mode = q.mode;
    if (q.mode > 07777)
      return snprintf(why, why_len, "mode must be permission bits (0..07777)");
  }
  if (q.op == VMH_AGENT_FREEZE)
    j->timeout_ms = q.timeout_ms;
  if ((q.op == VMH_AGENT_EXEC || q.op == VMH_AGENT_FILE_WRITE) && q.len) {
    if (q.len + total > data_cap(g))
      return snprintf(why, why_len,
                      "the data is %zu bytes; the guest channel carries at "
                      "most %" PRIu64,
                      q.len, data_cap(g) - total);
    if (!q.data || !(j->data = malloc(q.len)))
      return snprintf(why, why_len, "out of memory");
    memcpy(j->data, q.data, q.len);
    j->len = q.len;
  }
  return 0;
}

static void guest_agent_call(void *handle, const char *vm_id,
                             const char *vm_name,
                             const struct vmh_agent_request *req,
                             vmh_reply_t *r, uint32_t flags) {
  struct guest *g = handle;
  char why[256] = "";
  if (flags) {
    r->done(r->opaque, VMH_EINVAL, "agent_call: unknown flags");
    return;
  }
  struct job *j = calloc(1, sizeof *j);
  if (!j || !(j->vm_id = strdup(vm_id)) ||
      !(j->vm_name = strdup(vm_name ? vm_name : vm_id))) {
    if (j)
      free(j->vm_id);
    free(j);
    r->done(r->opaque, VMH_ENOMEM, "out of memory");
    return;
  }
  j->r = r;
  if (job_copy(g, j, req, why, sizeof why) > 0) {
    job_fail(j, strstr(why, "out of memory") ? VMH_ENOMEM : VMH_EINVAL, "%s",
             why);
    return;
  }
  pthread_mutex_lock(&g->lock);
  bool ok = g->accepting;
  if (ok) {
    j->next = g->jobs;
    g->jobs = j;
  }
  pthread_mutex_unlock(&g->lock);
  if (!ok) {
    job_fail(j, VMH_ECANCELED,
             "agent on vm '%s': the guest front-end is not "
             "running",
             j->vm_name);
    return;
  }
  wake(g);
}

static struct vmh_frontend_ops ops = {
    .open = guest_open,
    .close = guest_close,
    .start = guest_start,
    .stop = guest_stop,
    .agent_call = guest_agent_call,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_FRONTEND,
    .name = "guest",
    .version = "0.1",
    .description = "the guest channel: vmhost-agent in every running VM",
    .load = guest_load,
    .frontend = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
