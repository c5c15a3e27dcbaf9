/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Operations: every call of struct vmh_core that changes something runs as
 * one (struct vmh_operation, core.h) — an id, a kind, a target, a status
 * (queued → running → succeeded | failed, or cancelled while queued), a
 * progress and an end, kept in memory for daemon.operations_retention
 * seconds after it ends, and no more than daemon.operations_max of them.
 *
 * How a call becomes one: service.c wraps each changing call —
 *
 *     vmh_reply_t *w = ops_open("vm.start", &target, r, flags);
 *     if (w) { vm_action(vm, …, w, flags & ~VMH_ASYNC); ops_close(w, NULL); }
 *
 * The work answers w (the operation's own reply, which forwards results to
 * the caller while the caller waits); a refusal answered inline, on the
 * calling thread, before ops_close (bad arguments, no such VM) is not an
 * operation: it reaches the caller as it is and the operation is dropped.
 * The work calls ops_begin(w) on its worker before touching a backend: a
 * cancelled operation stops there.
 *
 * Locks: the registry's own mutex; it never calls into the VM table (the
 * caller resolves the target), so the VM table's lock (vm.h) may be held
 * when calling in (vm_reply_record does, for ops_vm_state).
 * Reply visitors of front-ends run under the registry's mutex: they must
 * not call the core (core.h says so); events are sent without it
 * (ops_send_events). */
#ifndef VMHOST_CORE_OPERATIONS_H
#define VMHOST_CORE_OPERATIONS_H

#include <stdint.h>
#include <vmhost/core.h>

/* Start the registry's timer thread (waits' timeouts, retention).
 * retention_s 1..; max 1...  0, or a VMH_E* code with the message set. */
int ops_init(unsigned retention_s, unsigned max);
/* Answer every operation_wait still waiting (with the operation as it is):
 * before the front-ends stop. */
void ops_release_waiters(void);
/* Stop the thread, free every operation.  After the workers are drained. */
void ops_free(void);

/* What an operation works on ("" / NULL where it does not apply). */
struct ops_target {
  char vm_id[VMH_ID_LEN + 1];
  char vm_name[VMH_NAME_MAX + 1];
  const char *pool, *object;
};

/* Begin an operation of kind (a static string) for the caller r on t
 * (copied).  Returns the reply to give the work, or NULL when r was
 * answered (out of memory, too many operations in progress). */
vmh_reply_t *ops_open(const char *kind, const struct ops_target *t,
                      vmh_reply_t *r, uint32_t flags);
/* After the work's call returned: the operation becomes visible (or is
 * dropped when the work refused inline); a VMH_ASYNC caller is answered
 * with it now.  vm_id: the VM a create made (NULL: as opened).  Its events
 * so far are queued now, in order — created, running, the VM's
 * transitional state, its end — even when it ended before it was visible
 * (sent as ops_send_events says). */
void ops_close(vmh_reply_t *w, const char *vm_id);

/* On the worker, before any backend is touched: 0 (the operation, if w is
 * one, is running now) or VMH_ECANCELED with the message set (it was
 * cancelled while queued: answer w with that and do nothing). */
int ops_begin(vmh_reply_t *w);

/* Send the operation events queued so far (created, running, ended …) on
 * this thread, unless another thread is sending them.  Call holding no
 * lock (a subscriber may take any of the core's): workers call it between
 * tasks.  Events nobody sends this way go out from the timer within 20 ms. */
void ops_send_events(void);
/* What the work is at: done of total (0: unknown) and a message.  No-op
 * when w is not an operation's. */
void ops_progress(vmh_reply_t *w, uint64_t done, uint64_t total,
                  const char *message);

/* A backend's VMH_EVENT_PROGRESS (instance, object "NAME" or "image/NAME",
 * bytes done of total) becomes the progress of the running operation on
 * that pool and object, if there is one (an image import, say). */
void ops_backend_progress(const char *instance, const char *object,
                          uint64_t done, uint64_t total);

/* The state a VM shows while its first operation (the running one, else
 * the oldest queued) is a create, start, stop or delete (VMH_VM_CREATING
 * …), or 0.  0 too when that operation is the one answering through r: its
 * own result shows what it made. */
uint32_t ops_vm_state(const char *vm_id, vmh_reply_t *r);
/* The state an operation of this kind shows its VM while it runs
 * (VMH_VM_CREATING for "vm.create" …), or 0 for the kinds that show none. */
uint32_t ops_transitional_state(const char *kind);
/* Changes whenever such a state may have changed (vm_generation adds it). */
uint64_t ops_generation(void);

/* struct vmh_core's operation calls. */
void ops_list(const char *vm, uint32_t status, uint32_t limit, vmh_reply_t *r,
              uint32_t flags);
void ops_get(const char *id, vmh_reply_t *r, uint32_t flags);
void ops_wait(const char *id, uint32_t timeout_ms, vmh_reply_t *r,
              uint32_t flags);
void ops_cancel(const char *id, vmh_reply_t *r, uint32_t flags);
void ops_caller_gone(vmh_reply_t *r);

#endif
