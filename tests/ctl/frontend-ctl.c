/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* frontend-ctl — a test-only front-end: newline-delimited JSON over a unix
 * socket, one request object per line, one response object per line.
 *
 * It lets shell and python tests (tests/ctl/vmhctl.py) drive a running
 * vmhostd through the same struct vmh_core a real front-end uses, before
 * (and besides) the REST and gRPC front-ends.  It is never installed.
 *
 * Config (frontends: section):
 *   socket: PATH   required; the unix socket to listen on (a stale socket
 *                  left there by a dead daemon is removed; anything else
 *                  at the path, or a live listener, is refused)
 *   mode: "0600"   octal permissions of the socket
 *
 * Protocol.  A request is {"op": NAME, "flags": N?, ...fields}; "flags" is
 * OR-ed into the flags given to the core.  The fields of each op are in
 * op_table and its op_* functions (field names as in the ABI structs;
 * enums by name or by number; bools for the flag-like options live,
 * no_start, force, shrink).  Only JSON types are checked here: a missing
 * or null field reaches the core as NULL/0, so that tests can check how
 * the core takes it.  Unknown ops and fields, wrong types, malformed JSON
 * and lines over 1 MiB are answered with invalid_argument without calling
 * the core.  The response is {"code", "error", "http", "message"} plus the
 * results that arrived: "vms", "snapshots", "pools", "volumes", "images",
 * "networks", "checks", "plugins" (arrays), "console", "host" (objects),
 * "text" (metrics).  {"op":"ready"} answers {"ready": bool} (code
 * try_again when not ready, like /readyz); {"op":"errors"} answers
 * {"errors": [...]}, the core's code table.  {"op":"events"} answers once,
 * then streams {"event": {...}} lines, and {"dropped": N} when the
 * subscriber's queue overflowed, until the client closes the connection.
 *
 * Design: simple over clever.  One thread accepts; each connection gets its
 * own thread, which reads a line, calls the core, waits for done() and
 * writes the response.  The core's visitors may run on worker threads, so
 * results are collected under a mutex.  Every wait also watches an eventfd
 * that stop() makes readable, so stop() only has to signal it and join;
 * a request still in the core at that point answers from done() itself
 * (see struct call).
 *
 * Being a test tool, it also checks the core's side of the contract where
 * that is cheap: arguments are freed as soon as a core call returns (the
 * ABI says the core copies them), so a core that keeps a borrowed pointer
 * shows up under ASan or MALLOC_PERTURB_; a done() called twice or a
 * visitor after done() is logged as an error ("core bug: ...").
 */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include "abijson.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A request line may hold this many bytes, not counting its newline. */
#define LINE_MAX_BYTES (1024 * 1024)
/* The buffer never holds more than one maximal line and its newline. */
#define LINE_LIMIT (LINE_MAX_BYTES + 1)
/* Events queued per subscriber before new ones are dropped (and counted). */
#define EVENT_QUEUE_MAX 1024

static const struct vmh_host *host;

/* ---- Instances and connections -------------------------------------------
 */

struct conn;

struct ctl {
  const struct vmh_instance *inst;
  const char *path; /* borrowed from the config */
  mode_t mode;
  const struct vmh_core *core; /* from start() */
  bool running;
  int listen_fd;
  /* Readable once stop() has begun; never read, so it stays readable and
   * every poll() in every thread sees it. */
  int stop_fd;
  atomic_bool stopping;
  dev_t sock_dev; /* the socket file we made, so that stop() unlinks only */
  ino_t sock_ino; /* ours and not one another daemon made since */
  pthread_t acceptor;
  pthread_mutex_t lock; /* guards conns and each conn's finished flag */
  struct conn *conns;
};

struct conn {
  struct ctl *ctl;
  int fd; /* closed by the connection's own thread when it ends */
  pthread_t thread;
  bool finished; /* the thread has ended and may be joined */
  struct conn *next;
  /* The read buffer: [0, len) holds data; the line handed out last ends at
   * consumed; [0, scanned) is known to hold no newline. */
  char *buf;
  size_t len, cap, consumed, scanned;
  bool discarding; /* inside a line that is too long */
};

/* ---- JSON helpers --------------------------------------------------------
 */

/* Ownership of v passes to o; a NULL v (out of memory) just leaves the key
 * out. */
static void set(json_t *o, const char *key, json_t *v) {
  json_object_set_new(o, key, v);
}

/* ---- Responses -----------------------------------------------------------
 */

/* {"code", "error", "http", "message"} first, for whoever reads the line,
 * then the results in res (whose reference it takes). */
static json_t *response(const struct vmh_core *core, json_t *res, int code,
                        const char *message) {
  json_t *o = json_object();
  if (o) {
    set(o, "code", json_integer(code));
    set(o, "error", abij_str(core->error_name(code)));
    set(o, "http", json_integer(core->http_status(code)));
    set(o, "message", abij_str(message));
    if (res)
      json_object_update_missing(o, res);
  }
  json_decref(res);
  return o;
}

/* o as one line, newline included, in *ret (to free); takes the
 * reference.  Out of memory, a fixed line: still a valid answer. */
static const char oom_line[] =
    "{\"code\":-11,\"error\":\"no_memory\",\"http\":503,"
    "\"message\":\"out of memory\"}\n";

static size_t dump_line(json_t *o, char **ret) {
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  size_t len = s ? strlen(s) : 0;
  char *line = s ? realloc(s, len + 2) : NULL;
  if (!line) {
    free(s);
    *ret = NULL;
    return 0;
  }
  line[len++] = '\n';
  line[len] = '\0';
  *ret = line;
  return len;
}

/* ---- Calls ---------------------------------------------------------------
 *
 * A request in flight.  Two parties hold it: the connection thread, which
 * waits for done(), and the core, until it has called done().  Normally
 * the connection thread writes the response.  When stop() begins first,
 * the connection thread hands the connection over to the call and goes;
 * done() then writes the response itself (without blocking) and closes the
 * connection.  stop() does not wait for the core: the core drains its
 * workers after stopping the front-ends, within its drain deadline, which
 * a front-end is not told.
 */
struct call {
  const struct vmh_core *core;
  uint32_t flags;          /* the request's "flags" */
  struct abij_in in;       /* the arguments, freed once the core has them, and
                              why the request was refused before the core */
  struct abij_reply reply; /* must outlive done(): not on a stack */
  int efd;                 /* eventfd: done() has been called */
  bool want_text;          /* "text" in the answer even if none came */

  pthread_mutex_t lock; /* guards everything below */
  unsigned refs;
  const struct vmh_instance *inst; /* for logs; NULL once handed over */
  int fd;                          /* >= 0: handed over; done() answers on it */
  bool done;
  int code;
  char *message;
  json_t *res; /* results, added as they arrive */
  char *text;  /* metrics text, in the pieces it came in */
  size_t text_len;
  bool text_oom;
};

static void call_free(struct call *k) {
  abij_arena_free(&k->in.arena);
  if (k->efd >= 0)
    close(k->efd);
  pthread_mutex_destroy(&k->lock);
  free(k->message);
  free(k->text);
  json_decref(k->res);
  free(k);
}

/* Drop one holder's reference; the last frees. */
static void call_unref(struct call *k) {
  pthread_mutex_lock(&k->lock);
  bool last = --k->refs == 0;
  pthread_mutex_unlock(&k->lock);
  if (last)
    call_free(k);
}

/* The answer to a call done(): results, text, status.  Under k->lock. */
static json_t *call_response(struct call *k) {
  json_t *res = k->res;
  k->res = NULL;
  if (res && k->text)
    set(res, "text", abij_str(k->text));
  else if (res && k->want_text)
    set(res, "text", json_string(""));
  if (k->text_oom)
    host->log(k->inst, VMH_LOG_WARN, "metrics text lost (no memory)");
  return response(k->core, res, k->code, k->message);
}

/* Every visitor checks this first: results after done() break the
 * contract (core.h), and the answer may have gone already. */
static bool late(struct call *k, const char *what) {
  if (!k->done)
    return false;
  host->log(k->inst, VMH_LOG_ERROR,
            "core bug: %s result delivered after done()", what);
  return true;
}

static void add_result(struct call *k, const char *key, json_t *v) {
  pthread_mutex_lock(&k->lock);
  if (late(k, key) || !k->res) {
    json_decref(v);
  } else {
    json_t *a = json_object_get(k->res, key);
    if (!json_is_array(a)) {
      a = json_array();
      set(k->res, key, a);
    }
    if (json_array_append_new(a, v) < 0)
      host->log(k->inst, VMH_LOG_WARN, "a %s result lost (no memory)", key);
  }
  pthread_mutex_unlock(&k->lock);
}

static void set_result(struct call *k, const char *key, json_t *v) {
  pthread_mutex_lock(&k->lock);
  if (late(k, key) || !k->res)
    json_decref(v);
  else
    set(k->res, key, v);
  pthread_mutex_unlock(&k->lock);
}

/* One object each for the console and the host, arrays for the rest. */
static void on_result(void *opaque, const char *key, json_t *v) {
  if (!strcmp(key, "console") || !strcmp(key, "host"))
    set_result(opaque, key, v);
  else
    add_result(opaque, key, v);
}

static void on_text(void *opaque, const char *text, size_t len) {
  struct call *k = opaque;
  pthread_mutex_lock(&k->lock);
  if (!late(k, "text") && text && len) {
    char *t = realloc(k->text, k->text_len + len + 1);
    if (t) {
      memcpy(t + k->text_len, text, len);
      k->text_len += len;
      t[k->text_len] = '\0';
      k->text = t;
    } else {
      k->text_oom = true;
    }
  }
  pthread_mutex_unlock(&k->lock);
}

/* Write what the socket takes now, never waiting: this runs on a core
 * worker, after stop(), for a client that may not be reading. */
static void send_nowait(int fd, const char *data, size_t len) {
  while (len) {
    ssize_t n = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    data += n;
    len -= (size_t)n;
  }
}

static void on_done(void *opaque, int code, const char *message) {
  struct call *k = opaque;
  pthread_mutex_lock(&k->lock);
  if (k->done) {
    /* Its reference is gone already: nothing more to drop. */
    host->log(k->inst, VMH_LOG_ERROR,
              "core bug: done() called twice (first %d, then %d: %s)", k->code,
              code, message ? message : "(no message)");
    pthread_mutex_unlock(&k->lock);
    return;
  }
  k->done = true;
  k->code = code;
  /* Copied: the message is only valid during the call. */
  k->message = message ? strdup(message) : NULL;
  if (code && !message)
    host->log(k->inst, VMH_LOG_WARN, "core returned %d without a message",
              code);
  if (k->fd >= 0) {
    char *line;
    size_t len = dump_line(call_response(k), &line);
    if (line)
      send_nowait(k->fd, line, len);
    else
      send_nowait(k->fd, oom_line, sizeof oom_line - 1);
    free(line);
    close(k->fd);
    k->fd = -1;
  } else {
    eventfd_write(k->efd, 1);
  }
  bool last = --k->refs == 0;
  pthread_mutex_unlock(&k->lock);
  if (last)
    call_free(k);
}

static struct call *call_new(struct ctl *ctl, uint32_t flags) {
  struct call *k = calloc(1, sizeof *k);
  if (!k)
    return NULL;
  k->core = ctl->core;
  k->inst = ctl->inst;
  k->flags = flags;
  k->fd = -1;
  k->refs = 1;
  k->res = json_object();
  k->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_mutex_init(&k->lock, NULL);
  if (!k->res || k->efd < 0) {
    call_free(k);
    return NULL;
  }
  abij_reply_init(&k->reply, k, on_result, on_text, on_done);
  return k;
}

/* ---- Operations ----------------------------------------------------------
 *
 * Each parses its fields, then calls the core (returning 0: done() will
 * come) or refuses (a VMH_E* code, k->in.err set, the core not called).
 */

/* Whether the core's table has op: the table may be older (smaller) than
 * these headers, and a missing operation reads as not supported. */
#define CORE_HAS(core, fn)                                   \
  ((core)->struct_size >=                                    \
       offsetof(struct vmh_core, fn) + sizeof((core)->fn) && \
   (core)->fn != NULL)

#define CORE_CALL(k, fn, ...)                                \
  (CORE_HAS((k)->core, fn) ? ((k)->core->fn(__VA_ARGS__), 0) \
                           : not_supported((k), #fn))

static int not_supported(struct call *k, const char *fn) {
  snprintf(k->in.err, sizeof k->in.err, "the core has no %s operation", fn);
  return VMH_ENOTSUP;
}

#define KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Most operations name a VM (and maybe a second string); these cover them. */
static int parse_vm(struct call *k, json_t *q, const char *const *keys,
                    const char **vm) {
  int r = abij_only_keys(&k->in, q, "", keys);
  return r < 0 ? r : abij_string(&k->in, q, "", "vm", vm);
}

static int op_vm_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  uint32_t live;
  int r;
  if ((r = abij_only_keys(&k->in, q, "", KEYS("live"))) < 0 ||
      (r = abij_bool(&k->in, q, "", "live", &live)) < 0)
    return r;
  return CORE_CALL(k, vm_list, rp, k->flags | (live ? VMH_READ_LIVE : 0));
}

static int op_vm_get(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  uint32_t live;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "live"), &vm)) < 0 ||
      (r = abij_bool(&k->in, q, "", "live", &live)) < 0)
    return r;
  return CORE_CALL(k, vm_get, vm, rp, k->flags | (live ? VMH_READ_LIVE : 0));
}

static int op_vm_create(struct call *k, json_t *q, vmh_reply_t *rp) {
  json_t *so;
  uint32_t no_start;
  struct vmh_vm_spec spec;
  int r;
  if ((r = abij_only_keys(&k->in, q, "", KEYS("spec", "no_start"))) < 0 ||
      (r = abij_bool(&k->in, q, "", "no_start", &no_start)) < 0 ||
      (r = abij_object(&k->in, q, "", "spec", &so)) < 0 ||
      (so && (r = abij_spec_in(&k->in, so, "spec.", &spec)) < 0))
    return r;
  return CORE_CALL(k, vm_create, so ? &spec : NULL, rp,
                   k->flags | (no_start ? VMH_CREATE_NO_START : 0));
}

static int op_vm_delete(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  int r = parse_vm(k, q, KEYS("vm"), &vm);
  return r < 0 ? r : CORE_CALL(k, vm_delete, vm, rp, k->flags);
}

static int op_vm_action(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  uint32_t action, timeout, force;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "action", "timeout", "force"), &vm)) < 0 ||
      (r = abij_enum(&k->in, q, "", "action", &abij_actions, &action)) < 0 ||
      (r = abij_u32(&k->in, q, "", "timeout", &timeout)) < 0 ||
      (r = abij_bool(&k->in, q, "", "force", &force)) < 0)
    return r;
  return CORE_CALL(k, vm_action, vm, action, timeout, rp,
                   k->flags | (force ? VMH_ACTION_FORCE : 0));
}

static int op_vm_console(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  int r = parse_vm(k, q, KEYS("vm"), &vm);
  return r < 0 ? r : CORE_CALL(k, vm_console, vm, rp, k->flags);
}

static int op_snapshot_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  int r = parse_vm(k, q, KEYS("vm"), &vm);
  return r < 0 ? r : CORE_CALL(k, snapshot_list, vm, rp, k->flags);
}

static int op_snapshot_create(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm, *name;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "name"), &vm)) < 0 ||
      (r = abij_string(&k->in, q, "", "name", &name)) < 0)
    return r;
  return CORE_CALL(k, snapshot_create, vm, name, rp, k->flags);
}

static int op_snapshot_revert(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm, *id;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "id"), &vm)) < 0 ||
      (r = abij_string(&k->in, q, "", "id", &id)) < 0)
    return r;
  return CORE_CALL(k, snapshot_revert, vm, id, rp, k->flags);
}

static int op_snapshot_delete(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm, *id;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "id"), &vm)) < 0 ||
      (r = abij_string(&k->in, q, "", "id", &id)) < 0)
    return r;
  return CORE_CALL(k, snapshot_delete, vm, id, rp, k->flags);
}

static int op_disk_attach(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm;
  json_t *dobj;
  struct vmh_disk disk;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "disk"), &vm)) < 0 ||
      (r = abij_object(&k->in, q, "", "disk", &dobj)) < 0 ||
      (dobj && (r = abij_disk_in(&k->in, dobj, "disk.", &disk)) < 0))
    return r;
  return CORE_CALL(k, disk_attach, vm, dobj ? &disk : NULL, rp, k->flags);
}

static int op_disk_detach(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *vm, *disk;
  int r;
  if ((r = parse_vm(k, q, KEYS("vm", "disk"), &vm)) < 0 ||
      (r = abij_string(&k->in, q, "", "disk", &disk)) < 0)
    return r;
  return CORE_CALL(k, disk_detach, vm, disk, rp, k->flags);
}

static int op_pool_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = abij_only_keys(&k->in, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, pool_list, rp, k->flags);
}

/* pool, volume, image: the name fields of the storage operations. */
static int parse_pool(struct call *k, json_t *q, const char *const *keys,
                      const char **pool) {
  int r = abij_only_keys(&k->in, q, "", keys);
  return r < 0 ? r : abij_string(&k->in, q, "", "pool", pool);
}

static int op_pool_get(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool;
  int r = parse_pool(k, q, KEYS("pool"), &pool);
  return r < 0 ? r : CORE_CALL(k, pool_get, pool, rp, k->flags);
}

static int op_volume_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool;
  int r = parse_pool(k, q, KEYS("pool"), &pool);
  return r < 0 ? r : CORE_CALL(k, volume_list, pool, rp, k->flags);
}

static int op_volume_get(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool, *vol;
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "volume"), &pool)) < 0 ||
      (r = abij_string(&k->in, q, "", "volume", &vol)) < 0)
    return r;
  return CORE_CALL(k, volume_get, pool, vol, rp, k->flags);
}

static int op_volume_create(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool;
  json_t *vo;
  struct vmh_volume_spec s;
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "volume"), &pool)) < 0 ||
      (r = abij_object(&k->in, q, "", "volume", &vo)) < 0 ||
      (vo && (r = abij_volume_spec_in(&k->in, vo, "volume.", &s)) < 0))
    return r;
  return CORE_CALL(k, volume_create, pool, vo ? &s : NULL, rp, k->flags);
}

static int op_volume_resize(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool, *vol;
  uint64_t size;
  uint32_t shrink;
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "volume", "size", "shrink"), &pool)) <
          0 ||
      (r = abij_string(&k->in, q, "", "volume", &vol)) < 0 ||
      (r = abij_uint(&k->in, q, "", "size", INT64_MAX, &size)) < 0 ||
      (r = abij_bool(&k->in, q, "", "shrink", &shrink)) < 0)
    return r;
  return CORE_CALL(k, volume_resize, pool, vol, size, rp,
                   k->flags | (shrink ? VMH_RESIZE_SHRINK : 0));
}

static int op_volume_delete(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool, *vol;
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "volume"), &pool)) < 0 ||
      (r = abij_string(&k->in, q, "", "volume", &vol)) < 0)
    return r;
  return CORE_CALL(k, volume_delete, pool, vol, rp, k->flags);
}

static int op_image_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool;
  int r = parse_pool(k, q, KEYS("pool"), &pool);
  return r < 0 ? r : CORE_CALL(k, image_list, pool, rp, k->flags);
}

static int op_image_import(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool;
  json_t *io;
  struct vmh_image_spec s;
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "image"), &pool)) < 0 ||
      (r = abij_object(&k->in, q, "", "image", &io)) < 0 ||
      (io && (r = abij_image_spec_in(&k->in, io, "image.", &s)) < 0))
    return r;
  return CORE_CALL(k, image_import, pool, io ? &s : NULL, rp, k->flags);
}

static int op_image_delete(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *pool, *image;
  int r;
  if ((r = parse_pool(k, q, KEYS("pool", "image"), &pool)) < 0 ||
      (r = abij_string(&k->in, q, "", "image", &image)) < 0)
    return r;
  return CORE_CALL(k, image_delete, pool, image, rp, k->flags);
}

static int op_network_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = abij_only_keys(&k->in, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, network_list, rp, k->flags);
}

static int op_network_get(struct call *k, json_t *q, vmh_reply_t *rp) {
  const char *net;
  int r;
  if ((r = abij_only_keys(&k->in, q, "", KEYS("network"))) < 0 ||
      (r = abij_string(&k->in, q, "", "network", &net)) < 0)
    return r;
  return CORE_CALL(k, network_get, net, rp, k->flags);
}

static int op_host_info(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = abij_only_keys(&k->in, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, host_info, rp, k->flags);
}

static int op_health(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = abij_only_keys(&k->in, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, health, rp, k->flags);
}

static int op_plugin_list(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = abij_only_keys(&k->in, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, plugin_list, rp, k->flags);
}

static int op_metrics(struct call *k, json_t *q, vmh_reply_t *rp) {
  int r = abij_only_keys(&k->in, q, "", KEYS(NULL));
  return r < 0 ? r : CORE_CALL(k, metrics, rp, k->flags);
}

struct op_desc {
  const char *name;
  /* The array results go to, present (maybe empty) in every answer, so
   * that a test can take len() of it; NULL: none expected. */
  const char *results;
  int (*call)(struct call *k, json_t *q, vmh_reply_t *rp);
};

static const struct op_desc op_table[] = {
    {"vm_list", "vms", op_vm_list},
    {"vm_get", "vms", op_vm_get},
    {"vm_create", "vms", op_vm_create},
    {"vm_delete", NULL, op_vm_delete},
    {"vm_action", NULL, op_vm_action},
    {"vm_console", NULL, op_vm_console},
    {"snapshot_list", "snapshots", op_snapshot_list},
    {"snapshot_create", NULL, op_snapshot_create},
    {"snapshot_revert", NULL, op_snapshot_revert},
    {"snapshot_delete", NULL, op_snapshot_delete},
    {"disk_attach", NULL, op_disk_attach},
    {"disk_detach", NULL, op_disk_detach},
    {"pool_list", "pools", op_pool_list},
    {"pool_get", "pools", op_pool_get},
    {"volume_list", "volumes", op_volume_list},
    {"volume_get", "volumes", op_volume_get},
    {"volume_create", "volumes", op_volume_create},
    {"volume_resize", "volumes", op_volume_resize},
    {"volume_delete", NULL, op_volume_delete},
    {"image_list", "images", op_image_list},
    {"image_import", NULL, op_image_import},
    {"image_delete", NULL, op_image_delete},
    {"network_list", "networks", op_network_list},
    {"network_get", "networks", op_network_get},
    {"host_info", NULL, op_host_info},
    {"health", "checks", op_health},
    {"plugin_list", "plugins", op_plugin_list},
    {"metrics", NULL, op_metrics},
};

/* ---- Connection I/O ------------------------------------------------------
 */

/* Wait until fd is ready for `events` or stop() has begun (false). */
static bool wait_fd(struct conn *c, short events) {
  struct pollfd p[2] = {{.fd = c->fd, .events = events},
                        {.fd = c->ctl->stop_fd, .events = POLLIN}};
  for (;;) {
    int n = poll(p, 2, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 || p[1].revents)
      return false;
    if (p[0].revents)
      return true;
  }
}

static int send_all(struct conn *c, const char *data, size_t len) {
  while (len) {
    /* Try first: a response to a request that was in flight when stop()
     * began still goes out if the socket takes it. */
    ssize_t n = send(c->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      data += n;
      len -= (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_fd(c, POLLOUT))
        return -1;
    } else {
      return -1;
    }
  }
  return 0;
}

/* Write o as one line; takes the reference. */
static int send_json(struct conn *c, json_t *o) {
  char *line;
  size_t len = dump_line(o, &line);
  int r = line ? send_all(c, line, len)
               : send_all(c, oom_line, sizeof oom_line - 1);
  free(line);
  return r;
}

static int respond(struct conn *c, json_t *res, int code, const char *message) {
  return send_json(c, response(c->ctl->core, res, code, message));
}

static int respond_invalid(struct conn *c, const char *message) {
  host->log(c->ctl->inst, VMH_LOG_DEBUG, "invalid request: %s", message);
  return respond(c, NULL, VMH_EINVAL, message);
}

enum { LINE_OK, LINE_END, LINE_TOO_LONG };

/* The next line (NUL-terminated, in c->buf, valid until the next call). */
static int read_line(struct conn *c, char **ret, size_t *ret_len) {
  if (c->consumed) {
    memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
    c->len -= c->consumed;
    c->consumed = 0;
    c->scanned = 0;
  }
  for (;;) {
    /* (memchr on the NULL buffer of a new connection would be undefined
     * even with a length of 0.) */
    char *nl = c->len > c->scanned
                   ? memchr(c->buf + c->scanned, '\n', c->len - c->scanned)
                   : NULL;
    if (nl) {
      size_t n = (size_t)(nl - c->buf);
      c->consumed = n + 1;
      if (c->discarding) {
        c->discarding = false;
        return LINE_TOO_LONG;
      }
      *nl = '\0';
      *ret = c->buf;
      *ret_len = n;
      return LINE_OK;
    }
    c->scanned = c->len;
    if (c->len >= LINE_LIMIT) {
      /* Drop what we have and keep dropping up to the newline; answer
       * once, when the line ends, so responses stay one per line. */
      c->discarding = true;
      c->len = 0;
      c->scanned = 0;
    }
    if (c->len == c->cap) {
      size_t cap = c->cap ? c->cap * 2 : 4096;
      if (cap > LINE_LIMIT)
        cap = LINE_LIMIT;
      char *b = realloc(c->buf, cap);
      if (!b)
        return LINE_END;
      c->buf = b;
      c->cap = cap;
    }
    if (!wait_fd(c, POLLIN))
      return LINE_END;
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
      continue;
    if (n <= 0)
      return LINE_END;
    c->len += (size_t)n;
  }
}

/* ---- Events --------------------------------------------------------------
 */

struct sub {
  struct ctl *ctl;
  int efd; /* readable while the queue has news */
  pthread_mutex_t lock;
  char *queue[EVENT_QUEUE_MAX]; /* lines, with their newline */
  size_t n;
  uint64_t dropped; /* since the last {"dropped":N} line */
};

/* On the emitting thread, under the core's event lock: no blocking. */
static void on_event(void *opaque, const struct vmh_event *ev) {
  struct sub *s = opaque;
  json_t *o = json_object();
  if (o)
    set(o, "event", abij_event(ev));
  char *line;
  dump_line(o, &line);
  pthread_mutex_lock(&s->lock);
  /* An event that cannot be queued (full, or out of memory) is counted
   * so that the client learns it missed some. */
  if (line && s->n < EVENT_QUEUE_MAX) {
    s->queue[s->n++] = line;
    line = NULL;
  } else {
    s->dropped++;
  }
  pthread_mutex_unlock(&s->lock);
  free(line);
  /* Non-blocking eventfd: a write can only fail with a counter near
   * 2^64, and then it is readable anyway. */
  eventfd_write(s->efd, 1);
}

/* Send what is queued; -1 when the connection is gone. */
static int flush_events(struct conn *c, struct sub *s) {
  char *lines[EVENT_QUEUE_MAX];
  eventfd_t v;
  eventfd_read(s->efd, &v);
  pthread_mutex_lock(&s->lock);
  size_t n = s->n;
  uint64_t dropped = s->dropped;
  memcpy(lines, s->queue, n * sizeof *lines);
  s->n = 0;
  s->dropped = 0;
  pthread_mutex_unlock(&s->lock);
  /* Drops happen only while the queue is full, so every queued event came
   * before every dropped one: the dropped line goes last. */
  int r = 0;
  for (size_t i = 0; i < n; i++) {
    if (r == 0)
      r = send_all(c, lines[i], strlen(lines[i]));
    free(lines[i]);
  }
  if (r == 0 && dropped) {
    json_t *o = json_pack("{sI}", "dropped", (json_int_t)dropped);
    r = send_json(c, o);
  }
  return r;
}

/* {"op":"events"}: answer, then stream until the client goes or stop()
 * begins.  The connection ends with it. */
static void serve_events(struct conn *c, uint32_t flags) {
  struct ctl *ctl = c->ctl;
  const struct vmh_core *core = ctl->core;
  struct sub *s = calloc(1, sizeof *s);
  if (!s) {
    respond(c, NULL, VMH_ENOMEM, "out of memory");
    return;
  }
  s->ctl = ctl;
  pthread_mutex_init(&s->lock, NULL);
  s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  uint64_t id = 0;
  int code;
  if (s->efd < 0) {
    respond(c, NULL, VMH_EIO, "eventfd failed");
    goto out;
  }
  if (!CORE_HAS(core, subscribe) || !CORE_HAS(core, unsubscribe)) {
    respond(c, NULL, VMH_ENOTSUP, "the core has no subscribe operation");
    goto out;
  }
  code = core->subscribe(on_event, s, &id, flags);
  if (code) {
    /* subscribe() answers no reply: its message is the core's, read back
     * through error_message (ABI 1.2). */
    respond(c, NULL, code,
            CORE_HAS(core, error_message) ? core->error_message()
                                          : "subscribe failed");
    goto out;
  }
  host->log(ctl->inst, VMH_LOG_DEBUG, "subscriber %" PRIu64 " on fd %d", id,
            c->fd);
  if (respond(c, NULL, 0, NULL) == 0) {
    char scratch[4096];
    for (;;) {
      struct pollfd p[3] = {{.fd = c->fd, .events = POLLIN},
                            {.fd = s->efd, .events = POLLIN},
                            {.fd = ctl->stop_fd, .events = POLLIN}};
      int n = poll(p, 3, -1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 || p[2].revents)
        break;
      if (p[0].revents) {
        /* The client has nothing to say on this connection: whatever it
         * sends is ignored; end of file ends the stream. */
        ssize_t got = recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN &&
                         errno != EWOULDBLOCK))
          break;
      }
      if (p[1].revents && flush_events(c, s) < 0)
        break;
    }
  }
  core->unsubscribe(id);
  host->log(ctl->inst, VMH_LOG_DEBUG, "subscriber %" PRIu64 " gone", id);
out:
  /* After unsubscribe() returns no delivery is in flight (core.h). */
  for (size_t i = 0; i < s->n; i++)
    free(s->queue[i]);
  if (s->efd >= 0)
    close(s->efd);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* ---- Requests ------------------------------------------------------------
 */

static bool blank(const char *s) {
  return s[strspn(s, " \t\r")] == '\0';
}

/* Handle one line; -1 ends the connection. */
/* {"errors": [{"code", "name", "http", "grpc"}...]}: every VMH_E* code as
 * the core's table maps it, for the test that holds openapi.yaml to it. */
static json_t *error_table(const struct vmh_core *core) {
  json_t *a = json_array();
  for (int code = -1; a && code >= VMH_ERROR_LOWEST; code--)
    json_array_append_new(a, json_pack("{si,ss,si,si}", "code", code, "name",
                                       core->error_name(code), "http",
                                       (int)core->http_status(code), "grpc",
                                       (int)core->grpc_status(code)));
  return json_pack("{so*}", "errors", a);
}

static int handle_line(struct conn *c, const char *line, size_t len) {
  struct ctl *ctl = c->ctl;
  json_error_t jerr;
  /* Duplicate keys are refused: which one would count is a guess. */
  json_t *q = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!q) {
    char msg[300];
    snprintf(msg, sizeof msg, "malformed JSON at column %d: %s", jerr.column,
             jerr.text);
    return respond_invalid(c, msg);
  }
  if (!json_is_object(q)) {
    json_decref(q);
    return respond_invalid(c, "a request must be a JSON object");
  }
  json_t *opv = json_object_get(q, "op"), *fv = json_object_get(q, "flags");
  if (!json_is_string(opv)) {
    json_decref(q);
    return respond_invalid(c, "'op' must be a string naming the operation");
  }
  if (fv && (!json_is_integer(fv) || json_integer_value(fv) < 0 ||
             json_integer_value(fv) > UINT32_MAX)) {
    json_decref(q);
    return respond_invalid(c,
                           "'flags' must be an integer from 0 to "
                           "4294967295");
  }
  uint32_t flags = fv ? (uint32_t)json_integer_value(fv) : 0;
  char op[64];
  snprintf(op, sizeof op, "%s", json_string_value(opv));

  if (!strcmp(op, "events")) {
    int r = json_object_size(q) > (fv ? 2u : 1u)
                ? respond_invalid(c, "'events' takes no fields but flags")
                : (serve_events(c, flags), -1);
    json_decref(q);
    return r;
  }
  if (!strcmp(op, "ready")) {
    size_t n = json_object_size(q);
    json_decref(q);
    if (flags || n > (fv ? 2u : 1u))
      return respond_invalid(c, "'ready' takes no fields and no flags");
    int ready = CORE_HAS(ctl->core, ready) && ctl->core->ready();
    json_t *res = json_pack("{sb}", "ready", ready);
    /* Like /readyz: a shell test can loop on the exit status. */
    return respond(c, res, ready ? 0 : VMH_EAGAIN,
                   ready ? NULL : "not ready: starting or draining");
  }

  if (!strcmp(op, "errors")) {
    size_t n = json_object_size(q);
    json_decref(q);
    if (flags || n > (fv ? 2u : 1u))
      return respond_invalid(c, "'errors' takes no fields and no flags");
    return respond(c, error_table(ctl->core), 0, NULL);
  }

  const struct op_desc *d = NULL;
  for (size_t i = 0; i < sizeof op_table / sizeof op_table[0] && !d; i++)
    if (!strcmp(op, op_table[i].name))
      d = &op_table[i];
  if (!d) {
    char msg[128];
    snprintf(msg, sizeof msg, "unknown op '%.64s'", json_string_value(opv));
    json_decref(q);
    return respond_invalid(c, msg);
  }

  struct call *k = call_new(ctl, flags);
  if (!k) {
    json_decref(q);
    return respond(c, NULL, VMH_ENOMEM, "out of memory");
  }
  /* The operation's own fields are what is left. */
  json_object_del(q, "op");
  json_object_del(q, "flags");
  if (d->results)
    set(k->res, d->results, json_array());
  k->want_text = !strcmp(op, "metrics");
  /* The core's reference, dropped by done(); given back at once if the
   * request is refused before the core is called. */
  k->refs++;
  int r = d->call(k, q, &k->reply.reply);
  /* The core has copied the arguments (core.h): free them now, so that a
   * core that kept a pointer reads freed memory under ASan. */
  abij_arena_free(&k->in.arena);
  json_decref(q);
  if (r < 0) {
    k->refs--;
    host->log(ctl->inst, VMH_LOG_DEBUG, "%s refused: %s", op, k->in.err);
    r = respond(c, NULL, r, k->in.err);
    call_unref(k);
    return r;
  }

  /* Wait for done(), or hand the connection over if stop() comes first. */
  struct pollfd p[2] = {{.fd = k->efd, .events = POLLIN},
                        {.fd = ctl->stop_fd, .events = POLLIN}};
  for (;;) {
    pthread_mutex_lock(&k->lock);
    if (k->done)
      break;
    if (p[1].revents) {
      k->fd = c->fd;
      c->fd = -1;
      k->inst = NULL; /* the instance may be closed before done() */
      pthread_mutex_unlock(&k->lock);
      host->log(ctl->inst, VMH_LOG_DEBUG,
                "%s still running at stop; done() will answer", op);
      call_unref(k);
      return -1;
    }
    pthread_mutex_unlock(&k->lock);
    if (poll(p, 2, -1) < 0 && errno != EINTR)
      p[1].revents = POLLIN; /* cannot wait: treat as stop */
  }
  json_t *res = call_response(k);
  host->log(ctl->inst, VMH_LOG_DEBUG, "%s: %d%s%s", op, k->code,
            k->message ? " " : "", k->message ? k->message : "");
  pthread_mutex_unlock(&k->lock);
  call_unref(k);
  return send_json(c, res);
}

static void *conn_main(void *arg) {
  struct conn *c = arg;
  struct ctl *ctl = c->ctl;
  for (;;) {
    char *line = NULL;
    size_t len = 0;
    int r = read_line(c, &line, &len);
    /* Lines already buffered are not served once stop() has begun: after
     * it returns the front-end makes no more core calls (frontend.h). */
    if (r == LINE_END || atomic_load(&ctl->stopping))
      break;
    if (r == LINE_TOO_LONG) {
      if (respond_invalid(c, "request line longer than 1 MiB") < 0)
        break;
      continue;
    }
    if (blank(line))
      continue;
    if (handle_line(c, line, len) < 0)
      break;
  }
  if (c->fd >= 0) {
    host->log(ctl->inst, VMH_LOG_DEBUG, "connection on fd %d closed", c->fd);
    close(c->fd);
  }
  free(c->buf);
  c->buf = NULL;
  pthread_mutex_lock(&ctl->lock);
  c->finished = true;
  pthread_mutex_unlock(&ctl->lock);
  return NULL;
}

/* ---- Listener ------------------------------------------------------------
 */

/* Join the connections whose threads have ended (all of them with
 * `all`, once no new one can come). */
static void reap(struct ctl *ctl, bool all) {
  for (;;) {
    struct conn *done = NULL;
    pthread_mutex_lock(&ctl->lock);
    for (struct conn **pp = &ctl->conns; *pp; pp = &(*pp)->next) {
      if (all || (*pp)->finished) {
        done = *pp;
        *pp = done->next;
        break;
      }
    }
    pthread_mutex_unlock(&ctl->lock);
    if (!done)
      return;
    pthread_join(done->thread, NULL);
    free(done);
  }
}

static void *accept_main(void *arg) {
  struct ctl *ctl = arg;
  for (;;) {
    struct pollfd p[2] = {{.fd = ctl->listen_fd, .events = POLLIN},
                          {.fd = ctl->stop_fd, .events = POLLIN}};
    int n = poll(p, 2, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 || p[1].revents)
      break;
    reap(ctl, false);
    int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
        continue;
      host->log(ctl->inst, VMH_LOG_WARN, "accept on %s: %s", ctl->path,
                strerror(errno));
      /* Out of descriptors, say: wait a little instead of spinning. */
      if (poll(&p[1], 1, 100) > 0)
        break;
      continue;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->ctl = ctl;
    c->fd = fd;
    /* Listed before the thread starts, so that its end finds it. */
    pthread_mutex_lock(&ctl->lock);
    c->next = ctl->conns;
    ctl->conns = c;
    int r = pthread_create(&c->thread, NULL, conn_main, c);
    if (r) {
      ctl->conns = c->next;
      pthread_mutex_unlock(&ctl->lock);
      host->log(ctl->inst, VMH_LOG_WARN, "cannot start a connection thread: %s",
                strerror(r));
      close(fd);
      free(c);
      continue;
    }
    pthread_mutex_unlock(&ctl->lock);
    host->log(ctl->inst, VMH_LOG_DEBUG, "connection on fd %d", fd);
  }
  return NULL;
}

/* ---- Plugin operations ---------------------------------------------------
 */

static int ctl_load(const struct vmh_host *h) {
  host = h;
  return 0;
}

static int ctl_open(const struct vmh_host *h, const struct vmh_instance *inst,
                    const struct vmh_config *config, void **ret_handle,
                    uint32_t flags) {
  const char *path, *mode;
  int r;
  if (flags & ~VMH_OPEN_CHECK_ONLY) {
    h->error("unknown flags 0x%" PRIx32, flags & ~VMH_OPEN_CHECK_ONLY);
    return VMH_EINVAL;
  }
  if ((r = h->config_string(config, "socket", NULL, &path, VMH_CFG_REQUIRED)) <
          0 ||
      (r = h->config_string(config, "mode", "0600", &mode, 0)) < 0)
    return r;
  struct sockaddr_un sun;
  if (!path[0] || strlen(path) >= sizeof sun.sun_path) {
    h->error("%s: socket path must have 1 to %zu bytes",
             h->config_where(config), sizeof sun.sun_path - 1);
    return VMH_EINVAL;
  }
  /* Octal digits only, as chmod(1) takes them; no file-type bits. */
  char *end;
  errno = 0;
  unsigned long m = strtoul(mode, &end, 8);
  if (!mode[0] || *end || errno || mode[0] == '-' || mode[0] == '+' ||
      mode[0] == ' ' || m > 07777) {
    h->error("%s: mode '%s' must be octal permissions such as 0660",
             h->config_where(config), mode);
    return VMH_EINVAL;
  }
  struct ctl *ctl = calloc(1, sizeof *ctl);
  if (!ctl) {
    h->error("out of memory");
    return VMH_ENOMEM;
  }
  ctl->inst = inst;
  ctl->path = path;
  ctl->mode = (mode_t)m;
  ctl->listen_fd = -1;
  ctl->stop_fd = -1;
  pthread_mutex_init(&ctl->lock, NULL);
  *ret_handle = ctl;
  return 0;
}

/* Close the listener and remove its socket file, if it is still ours. */
static void unlisten(struct ctl *ctl) {
  struct stat st;
  if (ctl->listen_fd >= 0) {
    close(ctl->listen_fd);
    ctl->listen_fd = -1;
    if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->sock_dev &&
        st.st_ino == ctl->sock_ino)
      unlink(ctl->path);
  }
  if (ctl->stop_fd >= 0) {
    close(ctl->stop_fd);
    ctl->stop_fd = -1;
  }
}

/* A socket file left by a daemon that died is removed; anything else at
 * the path is refused rather than deleted. */
static int clear_stale(const struct ctl *ctl) {
  struct stat st;
  if (lstat(ctl->path, &st) < 0) {
    if (errno == ENOENT)
      return 0;
    host->error("%s: %s", ctl->path, strerror(errno));
    return VMH_EIO;
  }
  if (!S_ISSOCK(st.st_mode)) {
    host->error(
        "%s exists and is not a socket; remove it or choose "
        "another path",
        ctl->path);
    return VMH_EEXIST;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, ctl->path, strlen(ctl->path) + 1);
    int live = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
    close(fd);
    if (live) {
      host->error("%s: another process is listening on it", ctl->path);
      return VMH_EBUSY;
    }
  }
  if (unlink(ctl->path) < 0 && errno != ENOENT) {
    host->error("cannot remove the stale socket %s: %s", ctl->path,
                strerror(errno));
    return VMH_EIO;
  }
  return 0;
}

static int ctl_start(void *handle, const struct vmh_core *core,
                     uint32_t flags) {
  struct ctl *ctl = handle;
  struct stat st;
  int r;
  if (flags) {
    host->error("unknown flags 0x%" PRIx32, flags);
    return VMH_EINVAL;
  }
  if (ctl->running) {
    host->error("already started");
    return VMH_ESTATE;
  }
  if (!core || !CORE_HAS(core, error_name) || !CORE_HAS(core, http_status)) {
    host->error("the core table lacks error_name or http_status");
    return VMH_EINVAL;
  }
  ctl->core = core;
  atomic_store(&ctl->stopping, false);
  ctl->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (ctl->stop_fd < 0) {
    host->error("eventfd: %s", strerror(errno));
    return VMH_EIO;
  }
  if ((r = clear_stale(ctl)) < 0)
    goto fail;
  ctl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ctl->listen_fd < 0) {
    host->error("socket: %s", strerror(errno));
    r = VMH_EIO;
    goto fail;
  }
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  memcpy(sun.sun_path, ctl->path, strlen(ctl->path) + 1);
  if (bind(ctl->listen_fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
    host->error("cannot bind %s: %s", ctl->path, strerror(errno));
    close(ctl->listen_fd);
    ctl->listen_fd = -1;
    r = VMH_EIO;
    goto fail;
  }
  /* chmod before listen: until listen() nobody can connect, so there is
   * no window with the wrong permissions. */
  if (lstat(ctl->path, &st) < 0 || chmod(ctl->path, ctl->mode) < 0 ||
      listen(ctl->listen_fd, SOMAXCONN) < 0) {
    host->error("cannot listen on %s: %s", ctl->path, strerror(errno));
    r = VMH_EIO;
    goto fail_unlink;
  }
  ctl->sock_dev = st.st_dev;
  ctl->sock_ino = st.st_ino;
  if ((r = pthread_create(&ctl->acceptor, NULL, accept_main, ctl)) != 0) {
    host->error("cannot start the accept thread: %s", strerror(r));
    r = VMH_EIO;
    goto fail_unlink;
  }
  ctl->running = true;
  host->log(ctl->inst, VMH_LOG_INFO, "listening on %s (mode %04o)", ctl->path,
            (unsigned)ctl->mode);
  return 0;

fail_unlink:
  close(ctl->listen_fd);
  ctl->listen_fd = -1;
  unlink(ctl->path);
fail:
  unlisten(ctl);
  return r;
}

static void ctl_stop(void *handle, uint32_t flags) {
  struct ctl *ctl = handle;
  (void)flags; /* none defined, and stop() cannot refuse */
  if (!ctl->running)
    return;
  atomic_store(&ctl->stopping, true);
  eventfd_write(ctl->stop_fd, 1);
  /* The acceptor first, so that the list of connections stops growing;
   * then every connection, each of which finishes the core call it may
   * be waiting on (the core drains its workers only after stop()). */
  pthread_join(ctl->acceptor, NULL);
  reap(ctl, true);
  unlisten(ctl);
  ctl->running = false;
  host->log(ctl->inst, VMH_LOG_INFO, "stopped");
}

static void ctl_close(void *handle) {
  struct ctl *ctl = handle;
  if (!ctl)
    return;
  ctl_stop(ctl, 0);
  pthread_mutex_destroy(&ctl->lock);
  free(ctl);
}

static struct vmh_frontend_ops ops = {
    .open = ctl_open,
    .close = ctl_close,
    .start = ctl_start,
    .stop = ctl_stop,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_FRONTEND,
    .name = "ctl",
    .version = "1.0",
    .description = "test-only control socket: newline-delimited JSON",
    .load = ctl_load,
    .frontend = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
