/* The worker pool: runs the core's operations off the callers' threads.
 *
 * Work submitted with the same key runs one at a time, in submission order
 * (the core keys every operation on a VM by the VM's id); work with different
 * keys, or with no key, runs in parallel on up to N threads.  A task waiting
 * for its key never occupies a thread. */
#ifndef VMHOST_CORE_WORKERS_H
#define VMHOST_CORE_WORKERS_H

typedef void (*work_fn)(void *arg);

/* Start n threads (1..256).  Returns 0 or a VMH_E* code. */
int workers_start(unsigned n);

/* Queue fn(arg).  key may be NULL; it is copied.  Returns 0, or VMH_EAGAIN
 * when the pool is draining or stopped (fn is then not called and arg stays
 * the caller's). */
int workers_submit(const char *key, work_fn fn, void *arg);

/* Refuse new work, wait up to timeout_ms for queued and running work to
 * finish, then stop the threads.  Returns the number of tasks that had not
 * finished by the deadline (their threads are left detached and still
 * running; queued ones are dropped without being called). */
unsigned workers_drain(unsigned timeout_ms);

/* Tasks queued or running now (for metrics and readiness). */
unsigned workers_pending(void);

#endif
