/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The worker pool.
 *
 * Runnable tasks wait in one FIFO (`ready`).  A keyless task is runnable at
 * once.  A keyed task is runnable only when no other task of its key is
 * runnable or running: the key then has a record (`struct keyq`) in a hash
 * table, and later tasks of the key wait in that record's own FIFO, taking
 * no thread.  When the key's task ends, the next one moves to `ready`; when
 * none is left, the record is freed.
 *
 * A drain whose deadline passes leaves the threads still running a task
 * behind.  Those threads keep using their pool, so each start makes a new
 * pool object, counted by reference: one per thread plus one for the
 * start/drain side.  The last to let go frees it, and a new pool can start
 * while an old one still has threads finishing.  All pools share one mutex:
 * only one is current, the others have nothing left but those threads. */
#include <config.h>

#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "error.h"
#include "log.h"
#include "operations.h"

#define WORKERS_MAX 256
#define BUCKETS_MIN 64

struct task {
  struct task *next;
  work_fn fn;
  void *arg;
  struct keyq *kq;  /* NULL: no key */
  int64_t ready_ms; /* when it became runnable (CLOCK_MONOTONIC) */
};

/* A key with a task runnable or running; `head` are its tasks waiting. */
struct keyq {
  struct keyq *next; /* hash chain */
  struct task *head, *tail;
  uint64_t hash;
  char key[];
};

struct worker {
  pthread_t tid;
  struct pool *pool;
  bool busy;     /* inside a task's fn */
  bool detached; /* abandoned by a drain */
};

struct pool {
  pthread_cond_t work_cv; /* a task became runnable, or stop */
  pthread_cond_t idle_cv; /* pending reached 0 while draining */
  bool draining;          /* refuse submissions */
  bool stop;              /* threads exit */
  unsigned refs;
  unsigned pending; /* ready + waiting + running */
  struct task *ready_head, *ready_tail;
  struct keyq **buckets;
  size_t n_buckets, n_keys;
  unsigned n_workers;
  struct worker workers[];
};

/* Guards every pool, `current` and `abandoned`. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool *current;
static unsigned abandoned;
/* Serializes workers_start and workers_drain (taken before `lock`). */
static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- keys -------------------------------------------------------------- */

/* FNV-1a: keys are the core's own ids, not attacker-chosen strings. */
static uint64_t key_hash(const char *key) {
  uint64_t h = 0xcbf29ce484222325u;

  for (const unsigned char *p = (const unsigned char *)key; *p; p++)
    h = (h ^ *p) * 0x100000001b3u;
  return h;
}

static struct keyq *keyq_find(struct pool *p, const char *key, uint64_t h) {
  for (struct keyq *kq = p->buckets[h & (p->n_buckets - 1)]; kq; kq = kq->next)
    if (kq->hash == h && strcmp(kq->key, key) == 0)
      return kq;
  return NULL;
}

/* Double the table when it is fuller than one key per bucket.  Failing to
 * grow only makes chains longer. */
static void keys_grow(struct pool *p) {
  size_t n = p->n_buckets * 2;
  struct keyq **b;

  if (p->n_keys <= p->n_buckets)
    return;
  b = calloc(n, sizeof *b);
  if (!b)
    return;
  for (size_t i = 0; i < p->n_buckets; i++) {
    struct keyq *kq, *next;

    for (kq = p->buckets[i]; kq; kq = next) {
      next = kq->next;
      kq->next = b[kq->hash & (n - 1)];
      b[kq->hash & (n - 1)] = kq;
    }
  }
  free(p->buckets);
  p->buckets = b;
  p->n_buckets = n;
}

static struct keyq *keyq_add(struct pool *p, const char *key, uint64_t h) {
  size_t len = strlen(key);
  struct keyq *kq = malloc(sizeof *kq + len + 1);
  struct keyq **slot;

  if (!kq)
    return NULL;
  memcpy(kq->key, key, len + 1);
  kq->hash = h;
  kq->head = kq->tail = NULL;
  slot = &p->buckets[h & (p->n_buckets - 1)];
  kq->next = *slot;
  *slot = kq;
  p->n_keys++;
  keys_grow(p);
  return kq;
}

static void keyq_remove(struct pool *p, struct keyq *kq) {
  struct keyq **pp = &p->buckets[kq->hash & (p->n_buckets - 1)];

  while (*pp != kq)
    pp = &(*pp)->next;
  *pp = kq->next;
  p->n_keys--;
  free(kq);
}

/* Move a key's waiting tasks to *out (or free them when out is NULL);
 * returns how many. */
static unsigned keyq_drop_waiting(struct keyq *kq, struct task **out) {
  unsigned n = 0;
  struct task *t;

  while ((t = kq->head)) {
    kq->head = t->next;
    if (out) {
      t->next = *out;
      *out = t;
    } else {
      free(t);
    }
    n++;
  }
  kq->tail = NULL;
  return n;
}

/* ---- the pool ---------------------------------------------------------- */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void push_ready(struct pool *p, struct task *t) {
  t->next = NULL;
  t->ready_ms = mono_ms();
  if (p->ready_tail)
    p->ready_tail->next = t;
  else
    p->ready_head = t;
  p->ready_tail = t;
  pthread_cond_signal(&p->work_cv);
}

static struct task *pop_ready(struct pool *p) {
  struct task *t = p->ready_head;

  p->ready_head = t->next;
  if (!p->ready_head)
    p->ready_tail = NULL;
  return t;
}

/* With `lock` held: t has run; let its key's next task run. */
static void task_done(struct pool *p, struct task *t) {
  struct keyq *kq = t->kq;

  free(t);
  if (kq) {
    struct task *next = kq->head;

    if (next) {
      kq->head = next->next;
      if (!kq->head)
        kq->tail = NULL;
      push_ready(p, next);
    } else {
      keyq_remove(p, kq);
    }
  }
  if (--p->pending == 0 && p->draining)
    pthread_cond_broadcast(&p->idle_cv);
}

/* With `lock` held: take every task not started out of p into *out;
 * returns how many. */
static unsigned drop_queued(struct pool *p, struct task **out) {
  unsigned n = 0;
  struct task *t;

  /* A runnable keyed task means nothing of its key runs: the key goes. */
  while ((t = p->ready_head)) {
    p->ready_head = t->next;
    if (t->kq) {
      n += keyq_drop_waiting(t->kq, out);
      keyq_remove(p, t->kq);
    }
    t->next = *out;
    *out = t;
    n++;
  }
  p->ready_tail = NULL;
  /* The keys left have a running task, which still needs its record. */
  for (size_t i = 0; i < p->n_buckets; i++)
    for (struct keyq *kq = p->buckets[i]; kq; kq = kq->next)
      n += keyq_drop_waiting(kq, out);
  p->pending -= n;
  return n;
}

static __thread bool cancelling;

bool workers_cancelled(void) {
  return cancelling;
}

/* Call each dropped task once, told that it is cancelled, so that it can
 * answer its caller and free its argument. */
static void cancel_tasks(struct task *list) {
  cancelling = true;
  while (list) {
    struct task *t = list;
    list = t->next;
    t->fn(t->arg);
    ops_send_events(); /* what the task's operations said, at once */
    free(t);
  }
  cancelling = false;
}

static void pool_free(struct pool *p) {
  for (size_t i = 0; i < p->n_buckets; i++) {
    struct keyq *kq, *next;

    for (kq = p->buckets[i]; kq; kq = next) {
      next = kq->next;
      keyq_drop_waiting(kq, NULL);
      free(kq);
    }
  }
  free(p->buckets);
  pthread_cond_destroy(&p->work_cv);
  pthread_cond_destroy(&p->idle_cv);
  free(p);
}

/* With `lock` held; true when that was the last reference. */
static bool pool_unref(struct pool *p) {
  return --p->refs == 0;
}

static void *worker_main(void *opaque) {
  struct worker *w = opaque;
  struct pool *p = w->pool;
  bool last;

  prctl(PR_SET_NAME, "vmh-worker", 0, 0, 0);
  pthread_mutex_lock(&lock);
  for (;;) {
    struct task *t;

    while (!p->stop && !p->ready_head)
      pthread_cond_wait(&p->work_cv, &lock);
    if (p->stop)
      break;
    t = pop_ready(p);
    w->busy = true;
    pthread_mutex_unlock(&lock);

    t->fn(t->arg);
    ops_send_events(); /* what the task's operations said, at once */

    pthread_mutex_lock(&lock);
    w->busy = false;
    task_done(p, t);
  }
  if (w->detached)
    abandoned--;
  last = pool_unref(p);
  pthread_mutex_unlock(&lock);
  if (last)
    pool_free(p);
  return NULL;
}

static struct pool *pool_new(unsigned n) {
  struct pool *p = calloc(1, sizeof *p + n * sizeof p->workers[0]);
  pthread_condattr_t attr;

  if (!p)
    return NULL;
  p->buckets = calloc(BUCKETS_MIN, sizeof *p->buckets);
  if (!p->buckets) {
    free(p);
    return NULL;
  }
  p->n_buckets = BUCKETS_MIN;
  pthread_cond_init(&p->work_cv, NULL);
  /* The drain deadline is on the monotonic clock. */
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&p->idle_cv, &attr);
  pthread_condattr_destroy(&attr);
  p->refs = 1;
  return p;
}

/* Stop the threads of p that are not busy and join them; detach (abandon)
 * the busy ones.  Drops the caller's reference.  With ctl_lock held and
 * `lock` held on entry; releases `lock`. */
static void pool_stop(struct pool *p) {
  bool last;

  p->stop = true;
  pthread_cond_broadcast(&p->work_cv);
  for (unsigned i = 0; i < p->n_workers; i++) {
    struct worker *w = &p->workers[i];

    if (w->busy) {
      w->detached = true;
      abandoned++;
      pthread_detach(w->tid);
    }
  }
  pthread_mutex_unlock(&lock);

  /* p stays alive: we hold a reference; only we write `detached`. */
  for (unsigned i = 0; i < p->n_workers; i++)
    if (!p->workers[i].detached)
      pthread_join(p->workers[i].tid, NULL);

  pthread_mutex_lock(&lock);
  last = pool_unref(p);
  pthread_mutex_unlock(&lock);
  if (last)
    pool_free(p);
}

int workers_start(unsigned n) {
  sigset_t block, old;
  struct pool *p;
  int ret = 0, err = 0;

  if (n < 1 || n > WORKERS_MAX)
    return error_code(VMH_EINVAL, "workers: %u threads is not in 1..%d", n,
                      WORKERS_MAX);

  pthread_mutex_lock(&ctl_lock);
  pthread_mutex_lock(&lock);
  p = current;
  pthread_mutex_unlock(&lock);
  if (p) {
    ret = error_code(VMH_EBUSY, "workers: the pool is already running");
    goto out;
  }
  p = pool_new(n);
  if (!p) {
    ret = error_code(VMH_ENOMEM, "workers: out of memory");
    goto out;
  }

  /* Threads inherit the mask: keep asynchronous signals for the thread that
   * handles them; leave the synchronous ones deliverable (a fault in a task
   * must still kill the process, or reach a sanitizer). */
  sigfillset(&block);
  sigdelset(&block, SIGSEGV);
  sigdelset(&block, SIGBUS);
  sigdelset(&block, SIGFPE);
  sigdelset(&block, SIGILL);
  sigdelset(&block, SIGTRAP);
  sigdelset(&block, SIGABRT);
  sigdelset(&block, SIGSYS);
  pthread_sigmask(SIG_BLOCK, &block, &old);

  pthread_mutex_lock(&lock);
  for (; p->n_workers < n; p->n_workers++) {
    struct worker *w = &p->workers[p->n_workers];

    w->pool = p;
    err = pthread_create(&w->tid, NULL, worker_main, w);
    if (err)
      break;
    p->refs++;
  }
  if (err) {
    pool_stop(p); /* none is busy: this joins them all and frees p */
    errno = err;
    ret = error_code(VMH_EAGAIN, "workers: cannot start %u threads: %m", n);
  } else {
    current = p;
    pthread_mutex_unlock(&lock);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
out:
  pthread_mutex_unlock(&ctl_lock);
  return ret;
}

int workers_submit(const char *key, work_fn fn, void *arg) {
  struct task *t;
  struct pool *p;
  int ret = 0;

  if (!fn)
    return error_code(VMH_EINVAL, "workers: no function to run");
  t = malloc(sizeof *t);
  if (!t)
    return error_code(VMH_ENOMEM, "workers: out of memory");
  *t = (struct task){.fn = fn, .arg = arg};

  pthread_mutex_lock(&lock);
  p = current;
  if (!p || p->draining) {
    ret = error_code(VMH_EAGAIN, "workers: the pool is %s",
                     p ? "draining" : "not running");
    goto out;
  }
  if (key) {
    uint64_t h = key_hash(key);
    struct keyq *kq = keyq_find(p, key, h);

    if (kq) { /* the key is busy: wait behind it, taking no thread */
      t->kq = kq;
      if (kq->tail)
        kq->tail->next = t;
      else
        kq->head = t;
      kq->tail = t;
      goto queued;
    }
    t->kq = keyq_add(p, key, h);
    if (!t->kq) {
      ret = error_code(VMH_ENOMEM, "workers: out of memory");
      goto out;
    }
  }
  push_ready(p, t);
queued:
  p->pending++;
  t = NULL;
out:
  pthread_mutex_unlock(&lock);
  free(t);
  return ret;
}

unsigned workers_drain(unsigned timeout_ms) {
  struct timespec deadline;
  unsigned running = 0, dropped = 0;
  struct pool *p;

  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
  if (deadline.tv_nsec >= 1000000000) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000;
  }

  pthread_mutex_lock(&ctl_lock);
  pthread_mutex_lock(&lock);
  p = current;
  if (!p) {
    pthread_mutex_unlock(&lock);
    pthread_mutex_unlock(&ctl_lock);
    return 0;
  }
  p->draining = true;
  while (p->pending > 0)
    if (pthread_cond_timedwait(&p->idle_cv, &lock, &deadline) == ETIMEDOUT)
      break;
  struct task *cancelled = NULL;
  if (p->pending > 0) {
    dropped = drop_queued(p, &cancelled);
    running = p->pending; /* what is left has started */
  }
  current = NULL;
  pool_stop(p);
  pthread_mutex_unlock(&ctl_lock);
  cancel_tasks(cancelled);
  if (running + dropped > 0)
    log_warn(
        "workers: drain deadline passed: %u running task(s) abandoned, "
        "%u queued dropped",
        running, dropped);
  return running + dropped;
}

unsigned workers_pending(void) {
  unsigned n;

  pthread_mutex_lock(&lock);
  n = current ? current->pending : 0;
  pthread_mutex_unlock(&lock);
  return n;
}

bool workers_liveness(struct workers_state *st) {
  *st = (struct workers_state){0};
  pthread_mutex_lock(&lock);
  struct pool *p = current;
  if (p) {
    st->threads = p->n_workers;
    for (unsigned i = 0; i < p->n_workers; i++)
      st->busy += p->workers[i].busy;
    for (struct task *t = p->ready_head; t; t = t->next)
      st->runnable++;
    if (p->ready_head) {
      int64_t waited = mono_ms() - p->ready_head->ready_ms;
      st->oldest_wait_ms = waited > 0 ? (uint64_t)waited : 0;
    }
  }
  pthread_mutex_unlock(&lock);
  return p != NULL;
}

unsigned workers_abandoned(void) {
  unsigned n;

  pthread_mutex_lock(&lock);
  n = abandoned;
  pthread_mutex_unlock(&lock);
  return n;
}
