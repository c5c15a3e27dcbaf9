/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The worker pool: runs the core's operations off the callers' threads.
 *
 * Work submitted with the same key runs one at a time, in submission order
 * (the core keys every operation on a VM by the VM's id); work with different
 * keys, or with no key, runs in parallel on up to N threads.  A task waiting
 * for its key never occupies a thread.  Runnable work is taken in FIFO order;
 * when a keyed task ends, the next task of its key queues at the back.
 *
 * Worker threads block the asynchronous signals (SIGTERM, SIGHUP, …), so the
 * thread that handles them never has to compete with the pool. */
#ifndef VMHOST_CORE_WORKERS_H
#define VMHOST_CORE_WORKERS_H

#include <stdbool.h>
#include <stdint.h>
#include <vmhost/common.h>

typedef void (*work_fn)(void *arg);

/* Start n threads (1..256).  Returns 0 or a VMH_E* code with the error
 * message set: VMH_EINVAL (n), VMH_EBUSY (already started; drain first),
 * VMH_EAGAIN (no threads).  Starting again after workers_drain works, even
 * while threads abandoned by that drain are still running. */
int workers_start(unsigned n);

/* Queue fn(arg).  key may be NULL; it is copied.  Returns 0, or VMH_EAGAIN
 * when the pool is draining or stopped, or VMH_ENOMEM (fn is then not called
 * and arg stays the caller's).  Callable from any thread, tasks included. */
int workers_submit(const char *key, work_fn fn, void *arg);

/* Refuse new work, wait up to timeout_ms for queued and running work to
 * finish, then stop the threads.  Returns the number of tasks that had not
 * finished by the deadline: running ones (their threads are left detached
 * and still running; they end once their task returns) plus queued ones,
 * which are called once more on the draining thread with
 * workers_cancelled() true, so they answer their callers and free their
 * arguments without doing their work.  No-op (0)
 * when the pool is not running.  Must not be called from a task. */
unsigned workers_drain(unsigned timeout_ms);

/* True inside a task called by workers_drain to be cancelled. */
bool workers_cancelled(void);

/* Tasks queued or running now (for metrics and readiness). */
unsigned workers_pending(void);

/* Whether the pool answers (liveness): a task that could run but has
 * waited long for a thread means every thread is stuck in a backend. */
struct workers_state {
  unsigned threads;        /* of the running pool */
  unsigned busy;           /* inside a task */
  unsigned runnable;       /* waiting for a thread (not for their key) */
  uint64_t oldest_wait_ms; /* how long the first of those has; 0: none */
};
/* Fills *st; false (all 0) when no pool runs.  Cheap, any thread. */
bool workers_liveness(struct workers_state *st);

/* Threads left running by a drain's deadline that have not ended yet. */
unsigned workers_abandoned(void);

#endif
