/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM records: the in-memory table, reads served from it, lifecycle events
 * that keep it current, and reconciliation with the hypervisors. */
#include <config.h>

#include "operations.h"
#include "vm.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "error.h"
#include "events.h"
#include "instance.h"
#include "log.h"
#include "resources.h"
#include "state.h"
#include "strmap.h"
#include "workers.h"

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static atomic_uint_fast64_t generation = 1;
/* The generation of the last write that may have changed any record
 * (vms_wrlock): every record counts as changed then.  Guarded by lock. */
static uint64_t all_gen = 1;
static uint64_t event_sub; /* our subscription to the event bus, 0: none */

void vms_rdlock(void) {
  pthread_rwlock_rdlock(&lock);
}

/* The write lock, counted once it is held: a reader that sees the new
 * number and then takes the lock sees this writer's change too; one that
 * saw the old number sees a newer one next time.  Every writer counts,
 * changed or not: a cached answer is at worst encoded once more. */
static uint64_t wrlock_counted(void) {
  pthread_rwlock_wrlock(&lock);
  return atomic_fetch_add(&generation, 1) + 1;
}

void vms_wrlock(void) {
  all_gen = wrlock_counted();
}

void vms_wrlock_vm(struct vm *vm) {
  vm->gen = wrlock_counted();
}

void vms_wrlock_record(void) {
  wrlock_counted();
}

void vm_touch(struct vm *vm) {
  vm->gen = atomic_load(&generation);
}

uint64_t vms_generation(void) {
  /* A VM's transitional state (operations.h) is part of its record. */
  return atomic_load(&generation) + ops_generation();
}
void vms_unlock(void) {
  pthread_rwlock_unlock(&lock);
}

/* What vm's record generation is (lock held). */
static uint64_t record_gen(const struct vm *vm) {
  return vm->gen > all_gen ? vm->gen : all_gen;
}

/* The generation of what vm_reply_record shows of vm: its record's, or a
 * newer one drawn from the same counter when the state its operations make
 * it show (ops_vm_state) has changed since: an operation that begins or
 * ends changes what a VM shows without a write to its record, and a
 * front-end's encoding kept under the old number must not be served.
 * Callers hold only the read lock, hence the atomics. */
static uint64_t shown_gen(struct vm *vm, uint32_t shown) {
  uint32_t last = __atomic_load_n(&vm->shown_state, __ATOMIC_ACQUIRE);
  if (last != shown &&
      __atomic_compare_exchange_n(&vm->shown_state, &last, shown, false,
                                  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    __atomic_store_n(&vm->shown_gen, atomic_fetch_add(&generation, 1) + 1,
                     __ATOMIC_RELEASE);
  uint64_t g = record_gen(vm);
  uint64_t s = __atomic_load_n(&vm->shown_gen, __ATOMIC_ACQUIRE);
  return s > g ? s : g;
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the table ---------------------------------------------------------- */

/* The records in the order lists show them, by creation (created, then
 * id: a stable order a page can resume in), and two indexes into them:
 * every record by id, and by name (ids, names and creation times never
 * change while a record is in the table). */
static struct vm **table;
static size_t n_table, cap_table;
static struct strmap by_id, by_name;

struct vm *vms_lookup(const char *key) {
  if (!key)
    return NULL;
  struct vm *vm = strmap_get(&by_id, key);
  return vm ? vm : strmap_get(&by_name, key);
}

/* When vm was created, in µs (a record of an older vmhostd has seconds
 * only). */
static int64_t created_us(const struct vm *vm) {
  return vm->created_us ? vm->created_us : vm->created * 1000000;
}

/* The order of the table: <0, 0, >0. */
static int order(int64_t created, const char *id, const struct vm *vm) {
  int64_t c = created_us(vm);
  if (created != c)
    return created < c ? -1 : 1;
  return strcmp(id, vm->id);
}

static int order_cmp(const void *a, const void *b) {
  const struct vm *x = *(struct vm *const *)a;
  return order(created_us(x), x->id, *(struct vm *const *)b);
}

/* The index of the first record after (created, id). */
static size_t first_after(int64_t created, const char *id) {
  size_t lo = 0, hi = n_table;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (order(created, id, table[mid]) >= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Add vm to the table (at its place when sorted, else at the end, sorted
 * later by table_sort) and the indexes: all or nothing.  A second record
 * with a name already taken (records edited by hand) is reachable by id
 * only, and said so. */
static int table_add(struct vm *vm, bool sorted) {
  if (n_table == cap_table) {
    size_t cap = cap_table ? cap_table * 2 : 64;
    struct vm **t = realloc(table, cap * sizeof *t);
    if (!t)
      return error_code(VMH_ENOMEM, "out of memory");
    table = t;
    cap_table = cap;
  }
  if (strmap_reserve(&by_id, n_table + 1) < 0 ||
      strmap_reserve(&by_name, n_table + 1) < 0)
    return error_code(VMH_ENOMEM, "out of memory");
  const struct vm *o = strmap_get(&by_name, vm->name);
  if (o)
    log_warn("VM %s is named '%s' like VM %s: reach it by its id", vm->id,
             vm->name, o->id);
  else
    strmap_put(&by_name, vm->name, vm);
  strmap_put(&by_id, vm->id, vm);
  /* A new record is nearly always the newest: the move is short. */
  size_t at = sorted ? first_after(created_us(vm), vm->id) : n_table;
  memmove(table + at + 1, table + at, (n_table - at) * sizeof *table);
  table[at] = vm;
  n_table++;
  vm->gen = atomic_load(&generation);
  resources_vm_added(vm);
  return 0;
}

static void table_sort(void) {
  if (n_table > 1)
    qsort(table, n_table, sizeof *table, order_cmp);
}

int vms_insert(struct vm *vm) {
  int r;
  /* The table changes, no record in it: they keep their generations. */
  wrlock_counted();
  const struct vm *o = strmap_get(&by_name, vm->name);
  if (o)
    r = error_code(VMH_EEXIST, "a VM named '%s' already exists (id %s)",
                   vm->name, o->id);
  else if ((r = resources_admit_vm(vm)) == 0)
    r = table_add(vm, true);
  vms_unlock();
  return r;
}

void vms_remove(struct vm *vm) {
  wrlock_counted();
  strmap_remove(&by_id, vm->id);
  if (strmap_get(&by_name, vm->name) == vm)
    strmap_remove(&by_name, vm->name);
  /* Found by its place in the order (ids are unique), kept in order. */
  size_t i = first_after(created_us(vm), vm->id);
  if (i > 0 && table[i - 1] == vm) {
    memmove(table + i - 1, table + i, (n_table - i) * sizeof *table);
    n_table--;
    resources_vm_removed(vm);
  }
  vms_unlock();
  vm_free(vm);
}

size_t vms_count(void) {
  vms_rdlock();
  size_t n = n_table;
  vms_unlock();
  return n;
}

int vms_volume_in_use(const char *pool, const char *volume) {
  int used = 0;
  vms_rdlock();
  for (size_t i = 0; i < n_table && !used; i++)
    for (size_t j = 0; j < table[i]->n_disks && !used; j++)
      used = strcmp(table[i]->disks[j].pool, pool) == 0 &&
             strcmp(table[i]->disks[j].volume, volume) == 0;
  vms_unlock();
  return used;
}

char *volume_key(const char *pool, const char *volume) {
  char *key;
  return asprintf(&key, "volume:%s/%s", pool ? pool : "",
                  volume ? volume : "") < 0
             ? NULL
             : key;
}

/* ---- record → ABI structs ---------------------------------------------- */

void vm_reply_record(const struct vm *vm, vmh_reply_t *r) {
  struct vm_view view;
  if (!r->vm || vm_view_init(&view, vm) < 0)
    return;
  uint32_t shown = ops_vm_state(vm->id, r);
  if (shown)
    view.info.state = shown;
  uint64_t gen = shown_gen((struct vm *)vm, shown);
  struct vmh_vm_record rec = {
      .struct_size = sizeof rec,
      .spec = &view.spec,
      .info = &view.info,
      .status = vm->status,
      .created = vm->created,
      .updated_us = vm->updated_us,
      .error = vm->error,
      .agent_state = vm->agent_state,
      .agent_version = vm->agent_version,
      .generation = gen,
      .created_us = created_us(vm),
  };
  /* The agent's addresses when the hypervisor (and the networks) know
   * none. */
  if (!view.info.n_ips && vm->n_agent_ips) {
    view.info.ips = (const char *const *)vm->agent_ips;
    view.info.n_ips = (uint32_t)vm->n_agent_ips;
  }
  r->vm(r->opaque, &rec);
  vm_view_free(&view);
}

void reply_done(vmh_reply_t *r, int code) {
  r->done(r->opaque, code, code ? error_get() : NULL);
}

int reply_check_flags(vmh_reply_t *r, uint32_t flags, uint32_t known) {
  if (!(flags & ~known))
    return 0;
  error_set("unknown flags 0x%" PRIx32, flags & ~known);
  reply_done(r, VMH_EINVAL);
  return -1;
}

/* ---- live state ------------------------------------------------------- */

static void set_str(char **dst, const char *src) {
  char *copy = src ? strdup(src) : NULL;
  free(*dst);
  *dst = copy;
}
#define SET_STR(dst, src) set_str(&(dst), (src))
#define SET_U32(dst, src) ((dst) = (src))
#define SET_U64(dst, src) ((dst) = (src))
#define SET_FIELD(type, name) SET_##type(vm->name, info.name);

void vm_set_info(struct vm *vm, const struct vmh_vm_info *in) {
  struct vmh_vm_info info = {0};
  memcpy(&info, in,
         in->struct_size < sizeof info ? in->struct_size : sizeof info);
  VM_LIVE(SET_FIELD)
  vm->state = info.state;
  char **ips = info.n_ips ? calloc(info.n_ips, sizeof *ips) : NULL;
  size_t n = 0;
  for (uint32_t i = 0; ips && i < info.n_ips; i++)
    if (info.ips[i] && (ips[n] = strdup(info.ips[i])))
      n++;
  vm_strv_free(vm->ips, vm->n_ips);
  vm->ips = ips;
  vm->n_ips = n;
  vm->updated_us = now_us();
}

static int refresh_cb(void *opaque, const struct vmh_vm_info *info) {
  struct vm *vm = opaque;
  vms_wrlock_vm(vm);
  vm_set_info(vm, info);
  vms_unlock();
  return 0;
}

static int address_cb(void *opaque, const char *address) {
  struct vm *vm = opaque;
  if (!address || !*address)
    return 0;
  for (size_t i = 0; i < vm->n_ips; i++)
    if (strcmp(vm->ips[i], address) == 0)
      return 0;
  char **ips = realloc(vm->ips, (vm->n_ips + 1) * sizeof *ips);
  if (!ips)
    return 0;
  vm->ips = ips;
  if ((ips[vm->n_ips] = strdup(address)))
    vm->n_ips++;
  return 0;
}

/* Addresses the networks know for vm's NICs (DHCP leases), for a VM whose
 * hypervisor reports none.  Collected outside the lock into a scratch
 * record, then moved in. */
static void network_addresses(struct vm *vm) {
  struct vm scratch = {0};
  for (size_t i = 0; i < vm->n_nics; i++) {
    struct vm_nic *n = &vm->nics[i];
    struct vmh_instance *net =
        n->bound ? instance_find(VMH_KIND_NETWORK, n->network) : NULL;
    if (net && net->plugin->ops.network.port_addresses)
      INSTANCE_CALL(net, network, port_addresses, vm->id, n->name, address_cb,
                    &scratch, 0);
  }
  vms_wrlock_vm(vm);
  if (!vm->n_ips) {
    vm->ips = scratch.ips;
    vm->n_ips = scratch.n_ips;
    scratch.ips = NULL;
    scratch.n_ips = 0;
  }
  vms_unlock();
  vm_strv_free(scratch.ips, scratch.n_ips);
}

int vm_refresh(struct vm *vm) {
  struct vmh_instance *hv = instance_find(VMH_KIND_HYPERVISOR, vm->hypervisor);
  if (!hv)
    return VMH_EIO;
  int r = INSTANCE_CALL(hv, hypervisor, get, vm->id, refresh_cb, vm, 0);
  if (r == 0 && !vm->n_ips)
    network_addresses(vm);
  return r;
}

/* ---- volumes that vanish under VMs -------------------------------------- */

/* A storage instance said a volume vanished or is back (storage.h). */
struct volume_news {
  char *pool, *volume, *message;
  bool vanished;
};

static void volume_news_free(struct volume_news *n) {
  free(n->pool);
  free(n->volume);
  free(n->message);
  free(n);
}

/* What the core says on one VM that uses the volume. */
struct vm_notice {
  char id[VMH_ID_LEN + 1];
  char name[VMH_NAME_MAX + 1];
  uint32_t state;
  char *text;
};

/* The start of the error a vanished volume sets on a VM whose disk d uses
 * it; its return clears an error that starts so, and no other. */
static char *vanished_error(const struct vm_disk *d) {
  char *s;
  return asprintf(&s, "disk %s: volume %s/%s vanished", d->name, d->pool,
                  d->volume) < 0
             ? NULL
             : s;
}

/* Marks vm, whose disk d uses the volume (lock held, exclusive): sets or
 * clears its error and queues its save (the caller waits for it with
 * state_sync once the lock is released).  Returns what to tell of it (the
 * caller frees), NULL when out of memory. */
static char *mark_vm(struct vm *vm, const struct vm_disk *d,
                     const struct volume_news *n) {
  _cleanup_free_ char *prefix = vanished_error(d);
  char *text;
  if (!prefix)
    return NULL;
  if (n->vanished) {
    char *error;
    if (asprintf(&error, "%s: %s", prefix,
                 n->message ? n->message : "its pool says so") < 0)
      return NULL;
    free(vm->error);
    vm->error = error;
  } else if (vm->error && strncmp(vm->error, prefix, strlen(prefix)) == 0) {
    free(vm->error);
    vm->error = NULL;
  }
  if (state_queue(vm, NULL) < 0)
    log_warn("VM '%s': %s", vm->name, error_get());
  if (asprintf(&text, "VM '%s': disk %s: volume %s/%s %s", vm->name, d->name,
               d->pool, d->volume,
               n->vanished ? "vanished from its pool" : "is back") < 0)
    return NULL;
  return text;
}

/* Marks every VM that uses the volume, then tells (events are emitted
 * without the lock: a subscriber may take it). */
static void volume_news_task(void *arg) {
  struct volume_news *n = arg;
  struct vm_notice *notes = NULL;
  size_t n_notes = 0;

  wrlock_counted();
  for (size_t i = 0; i < n_table && !workers_cancelled(); i++) {
    struct vm *vm = table[i];
    for (size_t j = 0; j < vm->n_disks; j++) {
      const struct vm_disk *d = &vm->disks[j];
      if (strcmp(d->pool, n->pool) != 0 || strcmp(d->volume, n->volume) != 0)
        continue;
      vm_touch(vm);
      struct vm_notice *more = realloc(notes, (n_notes + 1) * sizeof *notes);
      if (!more)
        break;
      notes = more;
      snprintf(notes[n_notes].id, sizeof notes[n_notes].id, "%s", vm->id);
      snprintf(notes[n_notes].name, sizeof notes[n_notes].name, "%s", vm->name);
      notes[n_notes].state = vm->state;
      if ((notes[n_notes].text = mark_vm(vm, d, n)))
        n_notes++;
    }
  }
  vms_unlock();
  /* Durable before anyone is told; the table was not locked meanwhile. */
  if (n_notes && state_sync() < 0)
    log_warn("%s", error_get());
  for (size_t i = 0; i < n_notes; i++) {
    struct vmh_event ev = {
        .struct_size = sizeof ev,
        .type = VMH_EVENT_VM_STATE,
        .vm_id = notes[i].id,
        .vm_name = notes[i].name,
        .state = notes[i].state,
        .reason =
            n->vanished ? VMH_REASON_VOLUME_VANISHED : VMH_REASON_VOLUME_BACK,
        .message = notes[i].text,
    };
    log_msg("core", n->vanished ? VMH_LOG_ERROR : VMH_LOG_INFO, "%s",
            notes[i].text);
    events_emit("core", &ev);
    free(notes[i].text);
  }
  free(notes);
  volume_news_free(n);
}

/* A storage instance's volume event: queued, in the volume's order (the
 * records are written on a worker, never on the emitting thread). */
static void on_volume_event(const struct vmh_event *ev) {
  bool vanished = strcmp(ev->reason, VMH_REASON_VOLUME_VANISHED) == 0;
  if (!vanished && strcmp(ev->reason, VMH_REASON_VOLUME_BACK) != 0)
    return;
  if (!ev->object || !instance_find(VMH_KIND_STORAGE, ev->source))
    return;
  struct volume_news *n = calloc(1, sizeof *n);
  _cleanup_free_ char *key = volume_key(ev->source, ev->object);
  if (!n || !key || !(n->pool = strdup(ev->source)) ||
      !(n->volume = strdup(ev->object)) ||
      (ev->message && !(n->message = strdup(ev->message)))) {
    log_warn("%s: volume %s: out of memory: its VMs are not marked", ev->source,
             ev->object);
  } else {
    n->vanished = vanished;
    if (workers_submit(key, volume_news_task, n) == 0)
      return;
  }
  if (n)
    volume_news_free(n);
}

int vms_name_of(const char *id, char *buf, size_t len) {
  vms_rdlock();
  const struct vm *vm = id ? strmap_get(&by_id, id) : NULL;
  if (vm)
    snprintf(buf, len, "%s", vm->name);
  vms_unlock();
  return vm ? 0 : -1;
}

/* An operation that showed a transitional state (operations.h) has ended:
 * say what the VM's state is now, since a failed one leaves it where it
 * was and no hypervisor says so (a VM deleted meanwhile: its vm_deleted
 * said it).  Emitted from here, a subscriber: it follows the end. */
static void on_operation_end(const struct vmh_event *ev) {
  if (!ev->vm_id || !ev->object || !ev->reason ||
      !ops_transitional_state(ev->object) || !strcmp(ev->reason, "cancelled"))
    return;
  char name[VMH_NAME_MAX + 1];
  uint32_t state = 0;
  vms_rdlock();
  const struct vm *vm = strmap_get(&by_id, ev->vm_id);
  bool found = vm != NULL;
  if (found) {
    snprintf(name, sizeof name, "%s", vm->name);
    state = vm->state;
  }
  vms_unlock();
  if (!found)
    return;
  struct vmh_event back = {.struct_size = sizeof back,
                           .type = VMH_EVENT_VM_STATE,
                           .vm_id = ev->vm_id,
                           .vm_name = name,
                           .state = state,
                           .reason = ev->object,
                           .operation = ev->operation,
                           .message = ev->code ? ev->message : NULL};
  events_emit("core", &back);
}

/* Events that change records (subscribed by vms_init): a hypervisor
 * instance's VM states, a storage instance's vanished volumes; and the
 * ends of operations, answered with the VM's state. */
static void on_event(void *opaque, const struct vmh_event *ev) {
  (void)opaque;
  if (ev->type == VMH_EVENT_PLUGIN && ev->reason && ev->source) {
    on_volume_event(ev);
    return;
  }
  if (ev->type == VMH_EVENT_OPERATION && !strcmp(ev->source, "core")) {
    on_operation_end(ev);
    return;
  }
  if (ev->type != VMH_EVENT_VM_STATE || !ev->vm_id || !ev->source)
    return;
  wrlock_counted();
  struct vm *vm = vms_lookup(ev->vm_id);
  if (vm && strcmp(vm->id, ev->vm_id) == 0 &&
      strcmp(vm->hypervisor, ev->source) == 0) {
    vm_touch(vm);
    vm->state = ev->state;
    if (ev->state != VMH_VM_RUNNING && ev->state != VMH_VM_PAUSED)
      vm->uptime_s = 0;
    vm->updated_us = now_us();
  }
  vms_unlock();
}

/* ---- reads -------------------------------------------------------------- */

struct read_task {
  char *vm; /* NULL: all */
  vmh_reply_t *r;
};

/* A vm_query, copied: a live one outlives the call. */
struct query {
  uint32_t limit, states;
  int64_t after_created_us;
  char *after_id; /* NULL: from the first */
  struct vmh_keyval *labels, *labels_not;
  uint32_t n_labels, n_labels_not;
  vmh_reply_t *r;
};

static void kvs_free(struct vmh_keyval *kv, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    free((char *)kv[i].key);
    free((char *)kv[i].value);
  }
  free(kv);
}

static void query_free(struct query *q) {
  if (!q)
    return;
  kvs_free(q->labels, q->n_labels);
  kvs_free(q->labels_not, q->n_labels_not);
  free(q->after_id);
  free(q);
}

/* A copy of in[0..n) into *out (*n_out counts what is copied, to free):
 * 0, or -1 (out of memory). */
static int kvs_copy(const struct vmh_keyval *in, uint32_t n,
                    struct vmh_keyval **out, uint32_t *n_out) {
  if (n && !(*out = calloc(n, sizeof **out)))
    return -1;
  for (; *n_out < n; (*n_out)++) {
    const struct vmh_keyval *kv = &in[*n_out];
    struct vmh_keyval *to = &(*out)[*n_out];
    if (!(to->key = strdup(kv->key)) ||
        (kv->value && !(to->value = strdup(kv->value)))) {
      free((char *)to->key);
      return -1;
    }
  }
  return 0;
}

/* Each of n selectors has a key: 0, or -1 with the error set. */
static int kvs_check(const struct vmh_keyval *kv, uint32_t n,
                     const char *what) {
  for (uint32_t i = 0; i < n; i++)
    if (!kv || !kv[i].key || !*kv[i].key) {
      error_set("%s %" PRIu32 " of the query has no key", what, i);
      return -1;
    }
  return 0;
}

#define ALL_STATES (VMH_VM_STATE_BIT(VMH_VM_CRASHED + 1) - 1)

/* A copy of in (read within its struct_size), checked; NULL with the
 * error set (and the code in *code) when it is refused. */
static struct query *query_copy(const struct vmh_vm_query *in, int *code) {
  struct vmh_vm_query q = {0};
  memcpy(&q, in, in->struct_size < sizeof q ? in->struct_size : sizeof q);
  *code = VMH_EINVAL;
  if (q.states & ~ALL_STATES) {
    error_set("unknown VM state bits 0x%" PRIx32, q.states & ~ALL_STATES);
    return NULL;
  }
  if (kvs_check(q.labels, q.n_labels, "label") < 0 ||
      kvs_check(q.labels_not, q.n_labels_not, "excluded label") < 0)
    return NULL;
  *code = VMH_ENOMEM;
  struct query *c = calloc(1, sizeof *c);
  if (!c || (q.after_id && !(c->after_id = strdup(q.after_id))) ||
      kvs_copy(q.labels, q.n_labels, &c->labels, &c->n_labels) < 0 ||
      kvs_copy(q.labels_not, q.n_labels_not, &c->labels_not, &c->n_labels_not) <
          0) {
    query_free(c);
    error_set("out of memory");
    return NULL;
  }
  c->limit = q.limit;
  c->states = q.states;
  c->after_created_us = q.after_created_us;
  *code = 0;
  return c;
}

static bool has_label(const struct vm *vm, const struct vmh_keyval *want) {
  for (size_t i = 0; i < vm->n_metadata; i++)
    if (strcmp(vm->metadata[i].key, want->key) == 0)
      return !want->value || strcmp(vm->metadata[i].value, want->value) == 0;
  return false;
}

static bool selected(const struct vm *vm, const struct query *q) {
  if (q->states && !(q->states & VMH_VM_STATE_BIT(vm->state)))
    return false;
  for (uint32_t i = 0; i < q->n_labels; i++)
    if (!has_label(vm, &q->labels[i]))
      return false;
  for (uint32_t i = 0; i < q->n_labels_not; i++)
    if (has_label(vm, &q->labels_not[i]))
      return false;
  return true;
}

/* Answer q from the records, and free it. */
static void answer_query(struct query *q) {
  vms_rdlock();
  size_t i = q->after_id ? first_after(q->after_created_us, q->after_id) : 0;
  for (uint32_t n = 0; i < n_table && (!q->limit || n < q->limit); i++)
    if (selected(table[i], q)) {
      vm_reply_record(table[i], q->r);
      n++;
    }
  vms_unlock();
  reply_done(q->r, 0);
  query_free(q);
}

/* A live read: ask every hypervisor, then answer from the records. */
static void live_query(void *arg) {
  struct query *q = arg;
  if (workers_cancelled()) {
    error_set("vmhostd stopped before the read could run");
    reply_done(q->r, VMH_ECANCELED);
    query_free(q);
    return;
  }
  vms_reconcile();
  answer_query(q);
}

void vm_query(const struct vmh_vm_query *in, vmh_reply_t *r, uint32_t flags) {
  int code;
  if (reply_check_flags(r, flags, VMH_READ_LIVE) < 0)
    return;
  if (!in) {
    error_set("no query");
    reply_done(r, VMH_EINVAL);
    return;
  }
  struct query *q = query_copy(in, &code);
  if (!q) {
    reply_done(r, code);
    return;
  }
  q->r = r;
  if (!(flags & VMH_READ_LIVE)) {
    answer_query(q);
    return;
  }
  if (workers_submit(NULL, live_query, q) < 0) {
    query_free(q);
    error_set("vmhostd is shutting down");
    reply_done(r, VMH_EAGAIN);
  }
}

void vm_list(vmh_reply_t *r, uint32_t flags) {
  struct vmh_vm_query all = {.struct_size = sizeof all};
  vm_query(&all, r, flags);
}

static void live_get(void *arg) {
  struct read_task *t = arg;
  int code = 0;
  vms_rdlock();
  struct vm *vm = workers_cancelled() ? NULL : vms_lookup(t->vm);
  vms_unlock();
  /* Only this task's key touches the record's life, so vm stays valid. */
  if (workers_cancelled())
    code = error_code(VMH_ECANCELED, "vmhostd stopped before the read ran");
  else if (!vm)
    code = error_code(VMH_ENOENT, "no VM '%s'", t->vm);
  else if ((code = vm_refresh(vm)) == 0) {
    vms_rdlock();
    vm_reply_record(vm, t->r);
    vms_unlock();
  }
  reply_done(t->r, code);
  free(t->vm);
  free(t);
}

void vm_get(const char *key, vmh_reply_t *r, uint32_t flags) {
  if (reply_check_flags(r, flags, VMH_READ_LIVE) < 0)
    return;
  vms_rdlock();
  struct vm *vm = vms_lookup(key);
  if (vm && !(flags & VMH_READ_LIVE)) {
    vm_reply_record(vm, r);
    vms_unlock();
    reply_done(r, 0);
    return;
  }
  char id[VMH_ID_LEN + 1];
  if (vm)
    snprintf(id, sizeof id, "%s", vm->id);
  vms_unlock();
  if (!vm) {
    error_set("no VM '%s'", key ? key : "");
    reply_done(r, VMH_ENOENT);
    return;
  }
  struct read_task *t = calloc(1, sizeof *t);
  if (!t || !(t->vm = strdup(id))) {
    free(t);
    error_set("out of memory");
    reply_done(r, VMH_ENOMEM);
    return;
  }
  t->r = r;
  if (workers_submit(id, live_get, t) < 0) {
    free(t->vm);
    free(t);
    error_set("vmhostd is shutting down");
    reply_done(r, VMH_EAGAIN);
  }
}

/* ---- reconciliation ----------------------------------------------------- */

struct seen {
  char (*ids)[VMH_ID_LEN + 1];
  size_t n;
  const struct vmh_instance *hv;
  int startup;
};

static int reconcile_cb(void *opaque, const struct vmh_vm_info *in) {
  struct seen *s = opaque;
  if (!in->id)
    return 0;
  wrlock_counted();
  struct vm *vm = vms_lookup(in->id);
  if (vm && strcmp(vm->id, in->id) == 0) {
    vm_touch(vm);
    vm_set_info(vm, in);
    if (vm->status == VMH_STATUS_MISSING) {
      log_warn("VM '%s' (%s) is back on hypervisor '%s'", vm->name, vm->id,
               s->hv->name);
      vm->status = VMH_STATUS_READY;
    }
    void *ids = realloc(s->ids, (s->n + 1) * sizeof *s->ids);
    if (ids) {
      s->ids = ids;
      snprintf(s->ids[s->n++], VMH_ID_LEN + 1, "%s", in->id);
    }
  } else {
    log_msg("core", s->startup ? VMH_LOG_WARN : VMH_LOG_DEBUG,
            "hypervisor '%s' has a VM vmhostd did not make: '%s' (%s); "
            "left alone",
            s->hv->name, in->name ? in->name : "?", in->id);
  }
  vms_unlock();
  return 0;
}

static int was_seen(const struct seen *s, const char *id) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->ids[i], id) == 0)
      return 1;
  return 0;
}

static void reconcile_hypervisor(struct vmh_instance *hv, int startup) {
  struct seen s = {.hv = hv, .startup = startup};
  if (INSTANCE_CALL(hv, hypervisor, list, reconcile_cb, &s, 0) < 0) {
    log_warn("reconcile: cannot list the VMs of hypervisor '%s': %s", hv->name,
             error_get());
    free(s.ids);
    return;
  }
  wrlock_counted();
  for (size_t i = 0; i < n_table; i++) {
    struct vm *vm = table[i];
    if (strcmp(vm->hypervisor, hv->name) != 0 || !vm->defined ||
        vm->status != VMH_STATUS_READY || was_seen(&s, vm->id))
      continue;
    vm_touch(vm);
    log_warn("VM '%s' (%s) is recorded but hypervisor '%s' does not know it",
             vm->name, vm->id, hv->name);
    vm->status = VMH_STATUS_MISSING;
    vm->state = VMH_VM_UNKNOWN;
  }
  vms_unlock();
  free(s.ids);
}

void vms_reconcile(void) {
  for (size_t i = 0; i < instances_count(); i++) {
    struct vmh_instance *inst = instance_at(i);
    if (inst->kind == VMH_KIND_HYPERVISOR && inst->is_open)
      reconcile_hypervisor(inst, 0);
  }
}

/* Ports a network has: each should belong to a recorded NIC. */
struct port_seen {
  const struct vmh_instance *net;
  size_t matched;
};

static int port_cb(void *opaque, const char *vm_id, const char *nic_name,
                   const struct vmh_nic_binding *b) {
  struct port_seen *s = opaque;
  (void)b;
  int known = 0;
  vms_rdlock();
  struct vm *vm = vm_id ? vms_lookup(vm_id) : NULL;
  for (size_t i = 0; vm && nic_name && i < vm->n_nics && !known; i++)
    known = strcmp(vm->nics[i].name, nic_name) == 0 &&
            strcmp(vm->nics[i].network, s->net->name) == 0;
  vms_unlock();
  if (known)
    s->matched++;
  else
    log_warn(
        "network '%s' has a port for VM %s NIC %s that vmhostd did not "
        "make; left alone",
        s->net->name, vm_id ? vm_id : "?", nic_name ? nic_name : "?");
  return 0;
}

/* At start: report ports no record knows and bound NICs whose port is
 * gone.  Nothing is removed. */
static void reconcile_network(struct vmh_instance *net) {
  struct port_seen s = {.net = net};
  if (INSTANCE_CALL(net, network, port_list, port_cb, &s, 0) < 0) {
    log_warn("reconcile: cannot list the ports of network '%s': %s", net->name,
             error_get());
    return;
  }
  size_t bound = 0;
  vms_rdlock();
  for (size_t i = 0; i < n_table; i++)
    for (size_t j = 0; j < table[i]->n_nics; j++)
      bound += table[i]->nics[j].bound &&
               strcmp(table[i]->nics[j].network, net->name) == 0;
  vms_unlock();
  if (bound > s.matched)
    log_warn(
        "network '%s' lacks %zu port%s that VM records say are bound "
        "(list them with a live VM read; delete and re-create to repair)",
        net->name, bound - s.matched, bound - s.matched == 1 ? "" : "s");
}

/* A record found in CREATING or DELETING at start: the daemon died in the
 * middle.  Say what exists; the user finishes with a delete. */
static void report_interrupted(struct vm *vm) {
  const char *what = vm->status == VMH_STATUS_CREATING ? "create" : "delete";
  log_warn("VM '%s' (%s): the %s was interrupted by a restart", vm->name,
           vm->id, what);
  for (size_t i = 0; i < vm->n_disks; i++)
    if (vm->disks[i].created)
      log_warn("VM '%s': volume %s/%s was created", vm->name, vm->disks[i].pool,
               vm->disks[i].volume);
  for (size_t i = 0; i < vm->n_nics; i++)
    if (vm->nics[i].bound)
      log_warn("VM '%s': NIC %s is bound on network %s", vm->name,
               vm->nics[i].name, vm->nics[i].network);
  if (vm->defined)
    log_warn("VM '%s': defined on hypervisor %s", vm->name, vm->hypervisor);
  free(vm->error);
  if (asprintf(&vm->error,
               "the %s was interrupted by a restart of vmhostd; delete the VM "
               "to remove what was made",
               what) < 0)
    vm->error = NULL;
  vm->status = VMH_STATUS_FAILED;
  state_save(vm);
}

static void load_cb(void *opaque, struct vm *vm) {
  (void)opaque;
  if (vm->status == VMH_STATUS_CREATING || vm->status == VMH_STATUS_DELETING)
    report_interrupted(vm);
  if (table_add(vm, false) < 0)
    vm_free(vm);
}

int vms_init(const char *state_dir) {
  int r = state_init(state_dir);
  if (r < 0)
    return r;
  if ((r = events_subscribe(on_event, NULL, &event_sub, 0)) < 0)
    return r;
  r = state_load(load_cb, NULL);
  if (r < 0)
    return r;
  table_sort();
  log_info("loaded %d VM record%s from %s/vms.journal", r, r == 1 ? "" : "s",
           state_dir);
  for (size_t i = 0; i < n_table; i++)
    if (!instance_find(VMH_KIND_HYPERVISOR, table[i]->hypervisor))
      log_warn("VM '%s' (%s) is on hypervisor '%s', which is not configured",
               table[i]->name, table[i]->id, table[i]->hypervisor);
  for (size_t i = 0; i < instances_count(); i++) {
    struct vmh_instance *inst = instance_at(i);
    if (inst->kind == VMH_KIND_HYPERVISOR && inst->is_open)
      reconcile_hypervisor(inst, 1);
    if (inst->kind == VMH_KIND_NETWORK && inst->is_open &&
        inst->plugin->ops.network.port_list)
      reconcile_network(inst);
  }
  return 0;
}

void vms_free(void) {
  if (event_sub)
    events_unsubscribe(event_sub);
  event_sub = 0;
  for (size_t i = 0; i < n_table; i++)
    vm_free(table[i]);
  free(table);
  table = NULL;
  n_table = cap_table = 0;
  strmap_free(&by_id);
  strmap_free(&by_name);
  state_close();
}
