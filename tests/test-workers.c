/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The worker pool: per-key order, parallelism across keys, drain.
 *
 * Ordering and overlap are proven with synchronization, never with clocks:
 * every wait has a generous timeout that only a deadlock reaches, so a
 * broken pool fails instead of hanging. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "core-unit.h"
#include "workers.h"

/* One lock for all the tests' shared state (helgrind-friendly: no C11
 * atomics), and one condition broadcast on every change. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;

static void test_init(void) {
  pthread_condattr_t attr;

  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&cv, &attr);
  pthread_condattr_destroy(&attr);
}

static struct timespec deadline_in(unsigned ms) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  return ts;
}

/* Wait (mu held) until *v >= want; false on timeout. */
static bool wait_at_least(const int *v, int want) {
  struct timespec dl = deadline_in(UNIT_TIMEOUT_MS);

  while (*v < want)
    if (pthread_cond_timedwait(&cv, &mu, &dl) == ETIMEDOUT)
      return *v >= want;
  return true;
}

/* Add to a shared counter and wake every waiter. */
static void bump(int *v) {
  pthread_mutex_lock(&mu);
  (*v)++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

/* Bump *v, then wait until it reaches want (a barrier of `want` tasks). */
static bool meet(int *v, int want) {
  bool ok;

  pthread_mutex_lock(&mu);
  (*v)++;
  pthread_cond_broadcast(&cv);
  ok = wait_at_least(v, want);
  pthread_mutex_unlock(&mu);
  return ok;
}

static void wait_for(int *v, int want) {
  bool ok;

  pthread_mutex_lock(&mu);
  ok = wait_at_least(v, want);
  pthread_mutex_unlock(&mu);
  CHECK(ok);
}

static int get(const int *v) {
  int n;

  pthread_mutex_lock(&mu);
  n = *v;
  pthread_mutex_unlock(&mu);
  return n;
}

/* workers_drain with a far deadline, in a thread: a drain that misses the
 * moment its work is done (a lost wake-up) fails here instead of sitting
 * out its deadline. */
static int drain_returned;
static unsigned drain_result;

static void *drain_thread(void *arg) {
  unsigned r = workers_drain(20 * UNIT_TIMEOUT_MS);

  (void)arg;
  pthread_mutex_lock(&mu);
  drain_result = r;
  drain_returned = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  return NULL;
}

static unsigned drain(void) {
  pthread_t t;

  drain_returned = 0;
  CHECK_INT(pthread_create(&t, NULL, drain_thread, NULL), ==, 0);
  wait_for(&drain_returned, 1);
  pthread_join(t, NULL);
  return drain_result;
}

/* ---- same key: one at a time, in order -------------------------------- */

#define ORDER_N 200

static int order[ORDER_N];
static int order_len, inside_a, max_inside_a, others_ran;

static void key_a_task(void *arg) {
  int i = (int)(intptr_t)arg;

  pthread_mutex_lock(&mu);
  order[order_len++] = i;
  if (++inside_a > max_inside_a)
    max_inside_a = inside_a;
  pthread_mutex_unlock(&mu);

  /* Give another thread every chance to start a second task of the key. */
  for (int k = 0; k < 20; k++)
    sched_yield();

  pthread_mutex_lock(&mu);
  inside_a--;
  pthread_mutex_unlock(&mu);
}

static void other_task(void *arg) {
  (void)arg;
  for (int k = 0; k < 5; k++)
    sched_yield();
  bump(&others_ran);
}

static void test_same_key_order(void) {
  char key[16];

  CHECK_INT(workers_start(4), ==, 0);
  for (int i = 0; i < ORDER_N; i++) {
    CHECK_INT(workers_submit("vm-a", key_a_task, (void *)(intptr_t)i), ==, 0);
    /* Other keys and keyless work in between keep the other threads busy. */
    snprintf(key, sizeof key, "vm-%d", i % 7);
    CHECK_INT(workers_submit(key, other_task, NULL), ==, 0);
    CHECK_INT(workers_submit(NULL, other_task, NULL), ==, 0);
  }
  CHECK_INT(drain(), ==, 0);

  CHECK_INT(order_len, ==, ORDER_N);
  for (int i = 0; i < ORDER_N; i++)
    CHECK_INT(order[i], ==, i);
  CHECK_INT(max_inside_a, ==, 1);
  CHECK_INT(others_ran, ==, 2 * ORDER_N);
}

/* ---- different keys, and no key, run at the same time ----------------- */

static int met_keys, met_keyless, met_keys_failed, met_keyless_failed;

static void meet_keys_task(void *arg) {
  (void)arg;
  if (!meet(&met_keys, 2))
    bump(&met_keys_failed);
}

static void meet_keyless_task(void *arg) {
  (void)arg;
  if (!meet(&met_keyless, 2))
    bump(&met_keyless_failed);
}

static void test_keys_overlap(void) {
  CHECK_INT(workers_start(2), ==, 0);
  CHECK_INT(workers_submit("vm-a", meet_keys_task, NULL), ==, 0);
  CHECK_INT(workers_submit("vm-b", meet_keys_task, NULL), ==, 0);
  wait_for(&met_keys, 2);
  CHECK_INT(workers_submit(NULL, meet_keyless_task, NULL), ==, 0);
  CHECK_INT(workers_submit(NULL, meet_keyless_task, NULL), ==, 0);
  wait_for(&met_keyless, 2);
  CHECK_INT(drain(), ==, 0);
  CHECK_INT(met_keys_failed, ==, 0);
  CHECK_INT(met_keyless_failed, ==, 0);
}

/* ---- a key's backlog takes no thread ---------------------------------- */

static int a_started, a_release, a_done, b_ran, a_release_timeout;

static void slow_a_task(void *arg) {
  (void)arg;
  bump(&a_started);
  pthread_mutex_lock(&mu);
  if (!wait_at_least(&a_release, 1))
    a_release_timeout = 1;
  pthread_mutex_unlock(&mu);
  bump(&a_done);
}

static void b_task(void *arg) {
  (void)arg;
  bump(&b_ran);
}

static void test_backlog(void) {
  CHECK_INT(workers_start(2), ==, 0);
  for (int i = 0; i < 10; i++)
    CHECK_INT(workers_submit("vm-a", slow_a_task, NULL), ==, 0);
  wait_for(&a_started, 1);
  /* One thread holds vm-a's first task, nine more wait behind it: the
   * other thread must still be free for vm-b and for keyless work. */
  CHECK_INT(workers_submit("vm-b", b_task, NULL), ==, 0);
  wait_for(&b_ran, 1);
  CHECK_INT(workers_submit(NULL, b_task, NULL), ==, 0);
  wait_for(&b_ran, 2);
  CHECK_INT(get(&a_started), ==, 1);
  CHECK_INT(workers_pending(), >=, 10);

  bump(&a_release);
  wait_for(&a_done, 10);
  CHECK_INT(drain(), ==, 0);
  CHECK_INT(a_release_timeout, ==, 0);
  CHECK_INT(workers_pending(), ==, 0);
}

/* ---- drain waits for running and queued work -------------------------- */

static int drainer_running, drainer_saw_eagain, drainer_done;
static int noops_submitted, noops_ran;

static void noop_task(void *arg) {
  (void)arg;
  bump(&noops_ran);
}

/* Runs until the pool refuses work, i.e. until workers_drain has begun,
 * then finishes: drain must not return before it. */
static void drainer_task(void *arg) {
  struct timespec dl = deadline_in(UNIT_TIMEOUT_MS), now;
  const struct timespec ms = {0, 1000000};

  (void)arg;
  bump(&drainer_running);
  for (;;) {
    int rc = workers_submit(NULL, noop_task, NULL);

    if (rc == VMH_EAGAIN) {
      bump(&drainer_saw_eagain);
      break;
    }
    CHECK_INT(rc, ==, 0);
    bump(&noops_submitted);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > dl.tv_sec)
      break;
    nanosleep(&ms, NULL);
  }
  for (int k = 0; k < 100; k++)
    sched_yield();
  bump(&drainer_done);
}

static void test_drain_waits(void) {
  CHECK_INT(workers_start(2), ==, 0);
  CHECK_INT(workers_submit("vm-a", drainer_task, NULL), ==, 0);
  wait_for(&drainer_running, 1);
  CHECK_INT(drain(), ==, 0);
  /* Everything done before drain returned, not after. */
  CHECK_INT(get(&drainer_saw_eagain), ==, 1);
  CHECK_INT(get(&drainer_done), ==, 1);
  CHECK_INT(get(&noops_ran), ==, get(&noops_submitted));
  CHECK_INT(workers_submit(NULL, noop_task, NULL), ==, VMH_EAGAIN);
  CHECK_INT(workers_pending(), ==, 0);
}

/* ---- drain deadline: cancel the queue, abandon the running -------------- */

static int stuck_running, stuck_release, stuck_done, dropped_ran,
    cancelled_ran;
static int fresh_ran;

static void stuck_task(void *arg) {
  (void)arg;
  bump(&stuck_running);
  pthread_mutex_lock(&mu);
  CHECK(wait_at_least(&stuck_release, 1));
  pthread_mutex_unlock(&mu);
  bump(&stuck_done);
}

/* Queued work past the deadline is called once, told it is cancelled, so it
 * can answer its caller; it must not do its work. */
static void must_not_run(void *arg) {
  (void)arg;
  bump(workers_cancelled() ? &cancelled_ran : &dropped_ran);
}

static void fresh_task(void *arg) {
  (void)arg;
  bump(&fresh_ran);
}

static void test_drain_deadline(void) {
  const struct timespec ms = {0, 1000000};
  struct timespec dl;

  CHECK_INT(workers_start(1), ==, 0);
  CHECK_INT(workers_submit("vm-a", stuck_task, NULL), ==, 0);
  wait_for(&stuck_running, 1);
  /* Queued behind it: 2 waiting on vm-a (whose task runs), vm-b runnable
   * with 2 waiting, 2 keyless. */
  CHECK_INT(workers_submit("vm-a", must_not_run, NULL), ==, 0);
  CHECK_INT(workers_submit("vm-a", must_not_run, NULL), ==, 0);
  CHECK_INT(workers_submit("vm-b", must_not_run, NULL), ==, 0);
  CHECK_INT(workers_submit("vm-b", must_not_run, NULL), ==, 0);
  CHECK_INT(workers_submit("vm-b", must_not_run, NULL), ==, 0);
  CHECK_INT(workers_submit(NULL, must_not_run, NULL), ==, 0);
  CHECK_INT(workers_submit(NULL, must_not_run, NULL), ==, 0);
  CHECK_INT(workers_pending(), ==, 8);

  CHECK_INT(workers_drain(10), ==, 8); /* 1 abandoned + 7 cancelled */
  CHECK_INT(cancelled_ran, ==, 7);
  CHECK(!workers_cancelled());
  CHECK_INT(workers_abandoned(), ==, 1);
  CHECK_INT(workers_pending(), ==, 0);
  CHECK_INT(workers_submit(NULL, must_not_run, NULL), ==, VMH_EAGAIN);

  /* A new pool starts while the abandoned thread still runs, and is not
   * disturbed when that thread finishes. */
  CHECK_INT(workers_start(2), ==, 0);
  CHECK_INT(workers_submit("vm-a", fresh_task, NULL), ==, 0);
  wait_for(&fresh_ran, 1);
  bump(&stuck_release);
  wait_for(&stuck_done, 1);
  dl = deadline_in(UNIT_TIMEOUT_MS);
  for (;;) { /* the abandoned thread ends soon after its task */
    struct timespec now;

    if (workers_abandoned() == 0)
      break;
    clock_gettime(CLOCK_MONOTONIC, &now);
    CHECK(now.tv_sec <= dl.tv_sec);
    nanosleep(&ms, NULL);
  }
  CHECK_INT(workers_submit("vm-a", fresh_task, NULL), ==, 0);
  CHECK_INT(workers_submit("vm-b", fresh_task, NULL), ==, 0);
  CHECK_INT(drain(), ==, 0);
  CHECK_INT(fresh_ran, ==, 3);
  CHECK_INT(dropped_ran, ==, 0);
  CHECK_INT(cancelled_ran, ==, 7);
}

/* ---- many keys: order per key, records freed --------------------------- */

#define MANY_KEYS 3000
#define PER_KEY 3

static int next_seq[MANY_KEYS];
static int seq_errors, many_ran;

struct many_arg {
  int key;
  int seq;
};
static struct many_arg many_args[MANY_KEYS][PER_KEY];

static void many_task(void *arg) {
  struct many_arg *a = arg;

  pthread_mutex_lock(&mu);
  if (next_seq[a->key] != a->seq)
    seq_errors++;
  next_seq[a->key] = a->seq + 1;
  many_ran++;
  pthread_mutex_unlock(&mu);
}

static void test_many_keys(void) {
  char key[32];

  CHECK_INT(workers_start(8), ==, 0);
  for (int s = 0; s < PER_KEY; s++) {
    for (int k = 0; k < MANY_KEYS; k++) {
      many_args[k][s] = (struct many_arg){k, s};
      snprintf(key, sizeof key, "%08x-vm", (unsigned)k * 2654435761u);
      CHECK_INT(workers_submit(key, many_task, &many_args[k][s]), ==, 0);
    }
  }
  CHECK_INT(drain(), ==, 0);
  CHECK_INT(many_ran, ==, MANY_KEYS * PER_KEY);
  CHECK_INT(seq_errors, ==, 0);
}

/* ---- arguments and states ---------------------------------------------- */

static void test_states(void) {
  CHECK_INT(workers_submit(NULL, noop_task, NULL), ==, VMH_EAGAIN);
  CHECK_INT(workers_drain(0), ==, 0);
  CHECK_INT(workers_start(0), ==, VMH_EINVAL);
  CHECK_INT(workers_start(257), ==, VMH_EINVAL);
  CHECK_INT(workers_start(1), ==, 0);
  CHECK_INT(workers_start(1), ==, VMH_EBUSY);
  CHECK_INT(workers_submit(NULL, NULL, NULL), ==, VMH_EINVAL);
  CHECK_INT(drain(), ==, 0);
}

int main(void) {
  test_init();
  test_states();
  test_same_key_order();
  test_keys_overlap();
  test_backlog();
  test_drain_waits();
  test_drain_deadline();
  test_many_keys();
  return 0;
}
