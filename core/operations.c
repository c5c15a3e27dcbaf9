/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The registry of operations (operations.h).  One mutex guards it all:
 * operations are few (bounded by daemon.operations_max) and every change
 * is a handful of field writes, so a lock per operation would buy nothing
 * but lock-ordering rules.  A timer thread answers waits whose timeout
 * passed and forgets operations past their retention. */
#include <config.h>

#include "operations.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "events.h"
#include "log.h"
#include "validate.h"

struct operation {
  struct operation *next, *prev;   /* all, newest first */
  struct operation *anext, *aprev; /* active (not ended), newest first */
  struct operation *enext, *eprev; /* ended, in the order they ended */
  char id[VMH_ID_LEN + 1];
  const char *kind;
  uint32_t status;   /* enum vmh_op_status */
  uint32_t vm_state; /* what its VM shows meanwhile, 0: nothing */
  char *vm_id, *vm_name, *pool, *object;
  uint64_t done, total;
  char *message;
  int32_t code;
  char *error;
  int64_t created_us, updated_us;
  int64_t ended_mono_us;
  /* What the work answered last (struct vmh_operation's result_*):
   * shown once it succeeded.  res_kind is a static string. */
  const char *res_kind;
  char *res_id, *res_name;
  bool visible;  /* ops_close has run: listed, and its events sent */
  bool in_call;  /* the call that opened it has not returned */
  bool refused;  /* the work refused inline: never an operation */
  bool async;    /* the caller was answered with the operation */
  bool began;    /* its work passed ops_begin */
  bool linked;   /* in the registry */
  bool in_ended; /* in the ended list */
  pthread_t opener;
  vmh_reply_t *caller; /* waiting for the work's answer; NULL: none */
  struct vmh_reply w;  /* the work's reply */
  unsigned refs;       /* registry, work, opener */
};

struct waiter {
  struct waiter *next;
  struct operation *op;
  vmh_reply_t *r;
  int64_t deadline_mono_us;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tick;
static pthread_t timer;
static bool inited, timer_running, stopping;
static struct operation *all, *all_tail, *active;
/* Ended operations, first ended first: the next to pass its retention is
 * the head, so neither an end nor the timer walks the registry. */
static struct operation *ended_head, *ended_tail;
static size_t n_all, n_active, n_transitional;
static struct waiter *waiters;
/* The timer was signalled and has not waited since: a request that ends
 * many operations or queues many events wakes it once. */
static bool kicked;
static unsigned retention_s = 3600, max_ops = 1000;
static atomic_uint_fast64_t generation;

/* Events are queued under the lock (so in its order) and sent without it:
 * a subscriber may take the VM table's lock, whose holders ask
 * ops_vm_state for the lock here (vm.c's records).  They are sent by a
 * thread known to hold no lock — a worker beginning an operation and
 * after each task (ops_send_events) — and what no such thread sent within
 * EVENT_DELAY_US by the timer: one timer wake-up per burst of events
 * rather than one per event.  One sender at a time (`sending`), which
 * sends until the queue is empty, keeps the order. */
struct queued_event {
  struct queued_event *next;
  struct vmh_event *ev; /* events_dup's */
};
static struct queued_event *ev_head, **ev_tail = &ev_head;
#define EVENT_DELAY_US 20000
static bool sending;
/* When the timer sends what is queued (0: nothing queued, or a sender is
 * at work and will take it). */
static int64_t send_by_us;
/* What the timer waits for: -1 awake (it looks at the queue before it
 * waits), 0 nothing but a signal, else a monotonic time. */
static int64_t timer_until_us = -1;

/* ---- time, small helpers ------------------------------------------------ */

/* Wake the timer (under lock): it sends queued events, then reconsiders
 * its deadline.  The signal goes out in unlock(): a timer woken while the
 * lock is still held would only block on it again (two more context
 * switches per request on a busy CPU). */
static bool signal_due;
static void kick(void) {
  if (!kicked) {
    kicked = true;
    signal_due = true;
  }
}

/* Release the registry's lock, then wake the timer if kick() asked.  (It
 * cannot miss the signal: it checks for work under the lock, and waits
 * with kicked false, so a later kick signals again.) */
static void unlock(void) {
  bool due = signal_due;
  signal_due = false;
  pthread_mutex_unlock(&lock);
  if (due)
    pthread_cond_signal(&tick);
}

/* Answer r with code and this thread's error message. */
static void answer(vmh_reply_t *r, int code) {
  r->done(r->opaque, code, code ? error_get() : NULL);
}

static int64_t now_us(clockid_t clk) {
  struct timespec t;
  clock_gettime(clk, &t);
  return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static const char *const status_names[] = {[VMH_OP_QUEUED] = "queued",
                                           [VMH_OP_RUNNING] = "running",
                                           [VMH_OP_SUCCEEDED] = "succeeded",
                                           [VMH_OP_FAILED] = "failed",
                                           [VMH_OP_CANCELLED] = "cancelled"};

static bool ended(const struct operation *op) {
  return op->status >= VMH_OP_SUCCEEDED;
}

static void op_free(struct operation *op) {
  free(op->vm_id);
  free(op->vm_name);
  free(op->pool);
  free(op->object);
  free(op->message);
  free(op->error);
  free(op->res_id);
  free(op->res_name);
  free(op);
}

/* Under lock. */
static void unref(struct operation *op) {
  if (--op->refs == 0)
    op_free(op);
}

static void view(const struct operation *op, struct vmh_operation *v) {
  *v = (struct vmh_operation){
      .struct_size = sizeof *v,
      .id = op->id,
      .kind = op->kind,
      .status = op->status,
      .vm_id = op->vm_id,
      .vm_name = op->vm_name,
      .pool = op->pool,
      .object = op->object,
      .progress = op->status == VMH_OP_SUCCEEDED ? 100
                  : op->total ? (int32_t)(op->done * 100 / op->total)
                              : -1,
      .done = op->done,
      .total = op->total,
      .message = op->message,
      .code = op->code,
      .error = op->error,
      .created_us = op->created_us,
      .updated_us = op->updated_us,
  };
  if (op->status == VMH_OP_SUCCEEDED && op->res_kind) {
    v->result_kind = op->res_kind;
    v->result_id = op->res_id;
    v->result_name = op->res_name;
  }
}

/* Give op to r (under lock). */
static void reply_op(vmh_reply_t *r, const struct operation *op) {
  struct vmh_operation v;
  view(op, &v);
  if (VMH_HAS_FIELD(r, operation) && r->operation)
    r->operation(r->opaque, &v);
}

/* Queue ev to be sent by the timer thread (under lock).  Out of memory,
 * the event is lost: the operation itself is still right. */
static void queue_event(const struct vmh_event *ev) {
  struct queued_event *q = calloc(1, sizeof *q);
  if (!q || !(q->ev = events_dup(ev))) {
    log_warn("operations: out of memory: an event is lost");
    free(q);
    return;
  }
  *ev_tail = q;
  ev_tail = &q->next;
  if (!sending && !send_by_us) {
    send_by_us = now_us(CLOCK_MONOTONIC) + EVENT_DELAY_US;
    /* A timer already due by then needs no wake-up: while workers send
     * the events, it wakes once per EVENT_DELAY_US at most. */
    if (timer_until_us == 0 || timer_until_us > send_by_us)
      kick();
  }
}

/* Send the queued events in their order, the lock released meanwhile (held
 * on entry and on return); nothing when another thread is sending (it
 * takes these too before it stops). */
static void send_queued(void) {
  if (sending)
    return;
  sending = true;
  while (ev_head) {
    struct queued_event *q = ev_head;
    ev_head = NULL;
    ev_tail = &ev_head;
    send_by_us = 0;
    unlock();
    while (q) {
      struct queued_event *next = q->next;
      events_emit("core", q->ev);
      free(q->ev);
      free(q);
      q = next;
    }
    pthread_mutex_lock(&lock);
  }
  sending = false;
}

void ops_send_events(void) {
  pthread_mutex_lock(&lock);
  if (inited)
    send_queued();
  unlock();
}

/* An operation event saying status (under lock, once visible). */
static void emit_as(const struct operation *op, uint32_t type,
                    uint32_t status) {
  if (!op->visible)
    return;
  struct vmh_event ev = {
      .struct_size = sizeof ev,
      .type = type,
      .vm_id = op->vm_id,
      .vm_name = op->vm_name,
      .reason = status_names[status],
      .operation = op->id,
      .object = op->kind,
      .pool = op->pool,
      .target = op->object,
      .code = op->code,
      .message = op->error ? op->error : op->message,
      .done = op->done,
      .total = op->total,
  };
  queue_event(&ev);
}

static void emit(const struct operation *op, uint32_t type) {
  emit_as(op, type, op->status);
}

/* The VM's transitional state, as an event (under lock). */
static void emit_vm_state(const struct operation *op) {
  if (!op->visible || !op->vm_state || !op->vm_id)
    return;
  struct vmh_event ev = {.struct_size = sizeof ev,
                         .type = VMH_EVENT_VM_STATE,
                         .vm_id = op->vm_id,
                         .vm_name = op->vm_name,
                         .state = op->vm_state,
                         .reason = op->kind,
                         .operation = op->id,
                         .message = op->vm_name};
  queue_event(&ev);
}

/* Any change of an operation on a VM may change the state the VM shows
 * (ops_vm_state). */
static void touch(struct operation *op) {
  op->updated_us = now_us(CLOCK_REALTIME);
  if (op->vm_id)
    atomic_fetch_add(&generation, 1);
}

/* ---- the registry (under lock) ----------------------------------------- */

static void link_op(struct operation *op) {
  op->next = all;
  op->prev = NULL;
  if (all)
    all->prev = op;
  else
    all_tail = op;
  all = op;
  n_all++;
  op->anext = active;
  op->aprev = NULL;
  if (active)
    active->aprev = op;
  active = op;
  n_active++;
  if (op->vm_state)
    n_transitional++;
  op->linked = true;
}

static void unlink_active(struct operation *op) {
  if (op->aprev)
    op->aprev->anext = op->anext;
  else if (active == op)
    active = op->anext;
  if (op->anext)
    op->anext->aprev = op->aprev;
  op->anext = op->aprev = NULL;
  n_active--;
  if (op->vm_state)
    n_transitional--;
}

/* Only ended operations leave the registry: none is in the active list. */
static void unlink_op(struct operation *op) {
  if (op->prev)
    op->prev->next = op->next;
  else
    all = op->next;
  if (op->next)
    op->next->prev = op->prev;
  else
    all_tail = op->prev;
  n_all--;
  op->linked = false;
  if (op->in_ended) {
    if (op->eprev)
      op->eprev->enext = op->enext;
    else
      ended_head = op->enext;
    if (op->enext)
      op->enext->eprev = op->eprev;
    else
      ended_tail = op->eprev;
    op->in_ended = false;
  }
  unref(op);
}

/* op ended now: the newest of the ended list (its end times never go
 * back: the monotonic clock, read under the lock). */
static void append_ended(struct operation *op) {
  op->enext = NULL;
  op->eprev = ended_tail;
  if (ended_tail)
    ended_tail->enext = op;
  else
    ended_head = op;
  ended_tail = op;
  op->in_ended = true;
}

/* Forget the oldest ended operations past the count, and those past their
 * retention; returns the monotonic time the next one expires (0: none).
 * Touches only what it forgets, and the running operations older than
 * them (few: each holds a worker or a caller). */
static int64_t prune(int64_t now) {
  int64_t keep_us = (int64_t)retention_s * 1000000;
  for (struct operation *op = all_tail, *prev; op && n_all > max_ops;
       op = prev) {
    prev = op->prev;
    if (ended(op))
      unlink_op(op);
  }
  while (ended_head && now - ended_head->ended_mono_us >= keep_us)
    unlink_op(ended_head);
  return ended_head ? ended_head->ended_mono_us + keep_us : 0;
}

static struct operation *find(const char *id) {
  for (struct operation *op = all; op && id; op = op->next)
    if (op->visible && !strcmp(op->id, id))
      return op;
  return NULL;
}

/* Answer and drop every wait on op (it ended). */
static void release_waiters_of(const struct operation *op) {
  for (struct waiter **p = &waiters, *w; (w = *p);) {
    if (op && w->op != op) {
      p = &w->next;
      continue;
    }
    *p = w->next;
    reply_op(w->r, w->op);
    w->r->done(w->r->opaque, 0, NULL);
    free(w);
  }
}

/* op ends with code (its status from the code, unless cancelled already). */
static void end(struct operation *op, int code, const char *message) {
  if (ended(op))
    return;
  op->status = code == 0               ? VMH_OP_SUCCEEDED
               : code == VMH_ECANCELED ? VMH_OP_CANCELLED
                                       : VMH_OP_FAILED;
  op->code = code;
  free(op->error);
  op->error = code ? strdup(message && *message ? message : "failed") : NULL;
  if (code == 0 && op->total)
    op->done = op->total;
  op->ended_mono_us = now_us(CLOCK_MONOTONIC);
  touch(op);
  unlink_active(op);
  /* The first in the list sets the timer's next deadline; a later one
   * expires after it. */
  bool first = !ended_head;
  if (op->linked)
    append_ended(op);
  release_waiters_of(op);
  emit(op, VMH_EVENT_OPERATION);
  prune(op->ended_mono_us);
  if (first)
    kick();
}

/* Cancel a queued op: it ends now; its work, when it comes to run, finds
 * it cancelled (ops_begin) and touches nothing.  A caller still waiting
 * gets the cancellation. */
static void cancel_queued(struct operation *op, const char *why) {
  char msg[256];
  snprintf(msg, sizeof msg, "operation %s (%s) was cancelled before it ran: %s",
           op->id, op->kind, why);
  end(op, VMH_ECANCELED, msg);
  if (op->caller) {
    vmh_reply_t *c = op->caller;
    op->caller = NULL;
    c->done(c->opaque, VMH_ECANCELED, msg);
  }
  log_info("%s", msg);
}

/* ---- the work's reply: forwarded to a waiting caller -------------------- */

static struct operation *of(vmh_reply_t *w);

/* Keep kind, id and name as op's result (under lock).  Out of memory the
 * operation keeps no result: it still ends as it should. */
static void keep_result(struct operation *op, const char *kind, const char *id,
                        const char *name) {
  size_t n = strlen(op->kind);
  if (n > 7 && !strcmp(op->kind + n - 7, ".delete"))
    return; /* what a delete answers is gone */
  free(op->res_id);
  free(op->res_name);
  op->res_id = dup_or_null(id);
  op->res_name = dup_or_null(name);
  op->res_kind = (!id || op->res_id) && (!name || op->res_name) ? kind : NULL;
}

/* The references each kind of answer leaves (struct vmh_operation). */
static void result_vm(struct operation *op, const struct vmh_vm_record *v) {
  const char *id = v->info ? v->info->id : NULL;
  const char *name = v->info ? v->info->name : NULL;
  if (v->spec) {
    id = id ? id : v->spec->id;
    name = name ? name : v->spec->name;
  }
  keep_result(op, "vm", id, name);
}
static void result_snapshot(struct operation *op,
                            const struct vmh_snapshot_info *v) {
  keep_result(op, "snapshot", v->id, v->name);
}
static void result_volume(struct operation *op,
                          const struct vmh_volume_info *v) {
  keep_result(op, "volume", NULL, v->name);
}
static void result_image(struct operation *op, const struct vmh_image_info *v) {
  keep_result(op, "image", NULL, v->name);
}
#define result_none(op, v) ((void)(op), (void)(v))

#define FORWARD(field, type, keep)                     \
  static void fwd_##field(void *o, const type *v) {    \
    struct operation *op = o;                          \
    pthread_mutex_lock(&lock);                         \
    keep(op, v);                                       \
    if (op->caller && !op->async && op->caller->field) \
      op->caller->field(op->caller->opaque, v);        \
    unlock();                                          \
  }
FORWARD(vm, struct vmh_vm_record, result_vm)
FORWARD(snapshot, struct vmh_snapshot_info, result_snapshot)
FORWARD(console, struct vmh_console_info, result_none)
FORWARD(pool, struct vmh_pool_info, result_none)
FORWARD(volume, struct vmh_volume_info, result_volume)
FORWARD(image, struct vmh_image_info, result_image)
FORWARD(network, struct vmh_network_info, result_none)
FORWARD(host, struct vmh_host_info, result_none)
FORWARD(check, struct vmh_health_check, result_none)
FORWARD(plugin, struct vmh_plugin_info, result_none)
#undef FORWARD

static void fwd_text(void *o, const char *text, size_t len) {
  struct operation *op = o;
  pthread_mutex_lock(&lock);
  if (op->caller && !op->async && op->caller->text)
    op->caller->text(op->caller->opaque, text, len);
  unlock();
}

static void fwd_done(void *o, int code, const char *message) {
  struct operation *op = o;
  pthread_mutex_lock(&lock);
  if (op->in_call && pthread_equal(op->opener, pthread_self()) && !ended(op)) {
    /* Refused before any work was queued: the caller's answer, not an
     * operation (ops_close drops it). */
    op->refused = true;
    vmh_reply_t *c = op->caller;
    op->caller = NULL;
    if (c)
      c->done(c->opaque, code, message);
  } else {
    end(op, code, message);
    if (op->caller && !op->async) {
      vmh_reply_t *c = op->caller;
      op->caller = NULL;
      c->done(c->opaque, code, message);
    }
  }
  unref(op); /* the work's */
  unlock();
}

static struct operation *of(vmh_reply_t *w) {
  if (!w || w->done != fwd_done)
    return NULL;
  return (struct operation *)((char *)w - offsetof(struct operation, w));
}

/* ---- opening and closing ------------------------------------------------ */

uint32_t ops_transitional_state(const char *kind) {
  static const struct {
    const char *kind;
    uint32_t state;
  } t[] = {{"vm.create", VMH_VM_CREATING},
           {"vm.start", VMH_VM_STARTING},
           {"vm.stop", VMH_VM_STOPPING},
           {"vm.delete", VMH_VM_DELETING}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(kind, t[i].kind))
      return t[i].state;
  return 0;
}

vmh_reply_t *ops_open(const char *kind, const struct ops_target *t,
                      vmh_reply_t *r, uint32_t flags) {
  struct operation *op = calloc(1, sizeof *op);
  if (!op || (t->vm_id[0] && !(op->vm_id = strdup(t->vm_id))) ||
      (t->vm_name[0] && !(op->vm_name = strdup(t->vm_name))) ||
      (t->pool && !(op->pool = strdup(t->pool))) ||
      (t->object && !(op->object = strdup(t->object)))) {
    if (op)
      op_free(op);
    error_set("out of memory");
    answer(r, VMH_ENOMEM);
    return NULL;
  }
  core_uuid_v4(op->id);
  op->kind = kind;
  op->status = VMH_OP_QUEUED;
  op->vm_state = ops_transitional_state(kind);
  op->created_us = op->updated_us = now_us(CLOCK_REALTIME);
  op->in_call = true;
  op->async = (flags & VMH_ASYNC) != 0;
  op->opener = pthread_self();
  op->caller = r;
  op->refs = 3;
  op->w = (struct vmh_reply){.struct_size = sizeof op->w,
                             .opaque = op,
                             .vm = fwd_vm,
                             .snapshot = fwd_snapshot,
                             .console = fwd_console,
                             .pool = fwd_pool,
                             .volume = fwd_volume,
                             .image = fwd_image,
                             .network = fwd_network,
                             .host = fwd_host,
                             .check = fwd_check,
                             .plugin = fwd_plugin,
                             .text = fwd_text,
                             .done = fwd_done};
  pthread_mutex_lock(&lock);
  if (n_active >= max_ops) {
    unlock();
    op_free(op);
    error_set(
        "%zu operations are in progress, the most daemon."
        "operations_max allows; try again when some have ended",
        (size_t)max_ops);
    answer(r, VMH_EAGAIN);
    return NULL;
  }
  link_op(op);
  unlock();
  return &op->w;
}

/* op ended having deleted its VM: its vm_deleted went out already, and no
 * state follows its end (vm.c's on_operation_end), so a transitional state
 * shown now would be the VM's last word. */
static bool gone_with(const struct operation *op) {
  return op->status == VMH_OP_SUCCEEDED && op->vm_state == VMH_VM_DELETING;
}

void ops_close(vmh_reply_t *w, const char *vm_id) {
  struct operation *op = of(w);
  if (!op)
    return;
  char *id = vm_id && *vm_id ? strdup(vm_id) : NULL;
  pthread_mutex_lock(&lock);
  op->in_call = false;
  if (op->refused) {
    unlink_active(op);
    unlink_op(op);
    free(id);
  } else {
    if (!op->vm_id)
      op->vm_id = id;
    else
      free(id);
    op->visible = true;
    atomic_fetch_add(&generation, 1);
    /* What happened before it was visible, in the order it happened:
     * every operation's events read created, running, …, ended. */
    emit_as(op, VMH_EVENT_OPERATION_CREATED, VMH_OP_QUEUED);
    if (op->began) {
      emit_as(op, VMH_EVENT_OPERATION_UPDATED, VMH_OP_RUNNING);
      if (!ended(op) || !gone_with(op))
        emit_vm_state(op);
    }
    if (ended(op))
      emit(op, VMH_EVENT_OPERATION);
    if (op->async && op->caller) {
      vmh_reply_t *c = op->caller;
      op->caller = NULL;
      reply_op(c, op);
      c->done(c->opaque, 0, NULL);
    }
  }
  unref(op); /* the opener's */
  unlock();
}

int ops_begin(vmh_reply_t *w) {
  struct operation *op = of(w);
  if (!op)
    return 0;
  int r = 0;
  pthread_mutex_lock(&lock);
  if (op->status == VMH_OP_CANCELLED) {
    r = error_code(VMH_ECANCELED, "%s", op->error ? op->error : "cancelled");
  } else if (op->status == VMH_OP_QUEUED) {
    op->status = VMH_OP_RUNNING;
    op->began = true;
    touch(op);
    emit(op, VMH_EVENT_OPERATION_UPDATED);
    emit_vm_state(op);
  }
  send_queued(); /* a worker before its work: it holds no lock */
  unlock();
  return r;
}

void ops_progress(vmh_reply_t *w, uint64_t done, uint64_t total,
                  const char *message) {
  struct operation *op = of(w);
  if (!op)
    return;
  char *m = dup_or_null(message);
  pthread_mutex_lock(&lock);
  if (!ended(op)) {
    op->done = done;
    op->total = total;
    free(op->message);
    op->message = m;
    m = NULL;
    touch(op);
    emit(op, VMH_EVENT_OPERATION_UPDATED);
  }
  unlock();
  free(m);
}

static bool same_object(const char *event_object, const char *op_object) {
  if (!strncmp(event_object, "image/", 6))
    event_object += 6;
  return !strcmp(event_object, op_object);
}

void ops_backend_progress(const char *instance, const char *object,
                          uint64_t done, uint64_t total) {
  if (!instance || !object)
    return;
  pthread_mutex_lock(&lock);
  for (struct operation *op = active; op; op = op->anext) {
    if (op->status != VMH_OP_RUNNING || !op->pool || !op->object ||
        strcmp(op->pool, instance) || !same_object(object, op->object))
      continue;
    op->done = done;
    op->total = total;
    free(op->message);
    op->message = strdup("bytes");
    touch(op);
    emit(op, VMH_EVENT_OPERATION_UPDATED);
    break;
  }
  unlock();
}

uint32_t ops_vm_state(const char *vm_id, vmh_reply_t *r) {
  struct operation *head = NULL;
  pthread_mutex_lock(&lock);
  /* The VM's first operation decides: the one running, else the oldest
   * queued (the active list is newest first). */
  for (struct operation *op = n_transitional ? active : NULL; op;
       op = op->anext) {
    if (!op->vm_id || strcmp(op->vm_id, vm_id))
      continue;
    head = op;
    if (op->status == VMH_OP_RUNNING)
      break;
  }
  /* An operation's own answer shows what it made. */
  uint32_t state = head && &head->w != r ? head->vm_state : 0;
  unlock();
  return state;
}

uint64_t ops_generation(void) {
  return atomic_load(&generation);
}

/* ---- the front-ends' calls ---------------------------------------------- */

static int check_flags(vmh_reply_t *r, uint32_t flags) {
  if (!flags)
    return 0;
  error_set("unknown flags 0x%" PRIx32, flags);
  answer(r, VMH_EINVAL);
  return -1;
}

static int check_id(const char *id, vmh_reply_t *r) {
  if (id && strlen(id) == VMH_ID_LEN &&
      strspn(id, "0123456789abcdef-") == VMH_ID_LEN)
    return 0;
  error_set("'%.64s' is not an operation id (a lower-case UUID)", id ? id : "");
  answer(r, VMH_EINVAL);
  return -1;
}

static void not_found(const char *id, vmh_reply_t *r) {
  error_set(
      "no operation %s (it may have ended more than daemon."
      "operations_retention ago)",
      id);
  answer(r, VMH_ENOENT);
}

void ops_list(const char *vm, uint32_t status, uint32_t limit, vmh_reply_t *r,
              uint32_t flags) {
  if (check_flags(r, flags) < 0)
    return;
  if (status > VMH_OP_CANCELLED) {
    error_set("unknown operation status %" PRIu32, status);
    return answer(r, VMH_EINVAL);
  }
  uint32_t n = 0;
  pthread_mutex_lock(&lock);
  for (struct operation *op = all; op && (!limit || n < limit); op = op->next) {
    if (!op->visible || (status && op->status != status))
      continue;
    if (vm && !(op->vm_id && !strcmp(op->vm_id, vm)) &&
        !(op->vm_name && !strcmp(op->vm_name, vm)))
      continue;
    reply_op(r, op);
    n++;
  }
  unlock();
  answer(r, 0);
}

void ops_get(const char *id, vmh_reply_t *r, uint32_t flags) {
  if (check_flags(r, flags) < 0 || check_id(id, r) < 0)
    return;
  pthread_mutex_lock(&lock);
  struct operation *op = find(id);
  if (op)
    reply_op(r, op);
  unlock();
  if (!op)
    return not_found(id, r);
  answer(r, 0);
}

#define MAX_WAIT_MS (3600u * 1000)

void ops_wait(const char *id, uint32_t timeout_ms, vmh_reply_t *r,
              uint32_t flags) {
  if (check_flags(r, flags) < 0 || check_id(id, r) < 0)
    return;
  if (timeout_ms > MAX_WAIT_MS) {
    error_set("timeout %" PRIu32 " ms is out of range 0..%u", timeout_ms,
              MAX_WAIT_MS);
    return answer(r, VMH_EINVAL);
  }
  struct waiter *w = calloc(1, sizeof *w);
  if (!w) {
    error_set("out of memory");
    return answer(r, VMH_ENOMEM);
  }
  pthread_mutex_lock(&lock);
  struct operation *op = find(id);
  if (!op) {
    unlock();
    free(w);
    return not_found(id, r);
  }
  if (ended(op) || timeout_ms == 0 || stopping) {
    reply_op(r, op);
    unlock();
    free(w);
    return answer(r, 0);
  }
  w->op = op;
  w->r = r;
  w->deadline_mono_us = now_us(CLOCK_MONOTONIC) + (int64_t)timeout_ms * 1000;
  w->next = waiters;
  waiters = w;
  kick();
  unlock();
}

void ops_cancel(const char *id, vmh_reply_t *r, uint32_t flags) {
  if (check_flags(r, flags) < 0 || check_id(id, r) < 0)
    return;
  pthread_mutex_lock(&lock);
  struct operation *op = find(id);
  int code = 0;
  if (!op) {
    unlock();
    return not_found(id, r);
  }
  if (op->status == VMH_OP_QUEUED) {
    cancel_queued(op, "cancelled by a client");
    reply_op(r, op);
  } else if (op->status == VMH_OP_RUNNING) {
    code = error_code(VMH_ESTATE,
                      "operation %s (%s) is running: its backend cannot "
                      "stop it now; wait for its end",
                      op->id, op->kind);
  } else {
    code = error_code(VMH_ESTATE, "operation %s (%s) has already %s", op->id,
                      op->kind, status_names[op->status]);
  }
  unlock();
  answer(r, code);
}

void ops_caller_gone(vmh_reply_t *r) {
  pthread_mutex_lock(&lock);
  for (struct operation *op = active; op; op = op->anext) {
    if (op->caller != r)
      continue;
    if (op->status == VMH_OP_QUEUED) {
      cancel_queued(op, "its caller went away");
    } else {
      char msg[160];
      snprintf(msg, sizeof msg,
               "the caller went away; operation %s goes on to its end", op->id);
      op->caller = NULL;
      r->done(r->opaque, VMH_ECANCELED, msg);
      log_info("operation %s (%s): %s", op->id, op->kind,
               "its caller went away while it ran; it goes on");
    }
    break;
  }
  for (struct waiter **p = &waiters, *w; (w = *p); p = &w->next) {
    if (w->r != r)
      continue;
    *p = w->next;
    r->done(r->opaque, VMH_ECANCELED, "the caller went away");
    free(w);
    break;
  }
  unlock();
}

/* ---- the timer ---------------------------------------------------------- */

static void *timer_main(void *arg) {
  (void)arg;
  /* Events and expiries are background work: woken, the timer waits for
   * the CPU rather than preempting the worker that woke it, which then
   * finishes its request and lets the timer take every event at once
   * (SCHED_BATCH: no wake-up preemption; an idle CPU runs it at once). */
  pthread_setschedparam(pthread_self(), SCHED_BATCH,
                        &(struct sched_param){.sched_priority = 0});
  pthread_mutex_lock(&lock);
  while (!stopping) {
    int64_t now = now_us(CLOCK_MONOTONIC);
    if (ev_head && send_by_us && send_by_us <= now)
      send_queued();
    now = now_us(CLOCK_MONOTONIC);
    int64_t next = prune(now);
    if (ev_head && send_by_us && (!next || send_by_us < next))
      next = send_by_us;
    for (struct waiter **p = &waiters, *w; (w = *p);) {
      if (w->deadline_mono_us <= now) {
        *p = w->next;
        reply_op(w->r, w->op);
        w->r->done(w->r->opaque, 0, NULL);
        free(w);
        continue;
      }
      if (!next || w->deadline_mono_us < next)
        next = w->deadline_mono_us;
      p = &w->next;
    }
    if (stopping || (ev_head && send_by_us && send_by_us <= now))
      continue;
    kicked = signal_due = false;
    timer_until_us = next;
    if (!next) {
      pthread_cond_wait(&tick, &lock);
    } else {
      struct timespec ts = {.tv_sec = next / 1000000,
                            .tv_nsec = (next % 1000000) * 1000};
      pthread_cond_timedwait(&tick, &lock, &ts);
    }
    timer_until_us = -1;
  }
  unlock();
  return NULL;
}

int ops_init(unsigned retention, unsigned max) {
  retention_s = retention ? retention : 1;
  max_ops = max ? max : 1;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&tick, &ca);
  pthread_condattr_destroy(&ca);
  inited = true;
  stopping = false;
  kicked = false;
  /* The timer needs none of the signals the main thread takes. */
  sigset_t all_sigs, old;
  sigfillset(&all_sigs);
  pthread_sigmask(SIG_BLOCK, &all_sigs, &old);
  int e = pthread_create(&timer, NULL, timer_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e)
    return error_code(VMH_EAGAIN, "cannot start the operations' timer: %s",
                      strerror(e));
  timer_running = true;
  return 0;
}

void ops_release_waiters(void) {
  pthread_mutex_lock(&lock);
  stopping = true; /* waits from now on answer at once */
  release_waiters_of(NULL);
  unlock();
}

void ops_free(void) {
  if (!inited)
    return;
  pthread_mutex_lock(&lock);
  stopping = true;
  release_waiters_of(NULL);
  pthread_cond_signal(&tick);
  unlock();
  if (timer_running) {
    pthread_join(timer, NULL);
    timer_running = false;
  }
  pthread_mutex_lock(&lock);
  send_queued();
  /* Work still holding an operation (abandoned by a drain) keeps it. */
  while (all) {
    struct operation *op = all;
    if (!ended(op))
      unlink_active(op);
    unlink_op(op);
  }
  inited = false;
  unlock();
  pthread_cond_destroy(&tick);
}
