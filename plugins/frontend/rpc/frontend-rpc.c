/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* frontend-rpc — the gRPC API (proto/vmhost/v1/node.proto, and the
 * standard grpc.health.v1.Health) on the shared HTTP/2 + TLS server of
 * plugins/frontend/common (h2server).
 *
 * Routes are built at start from protobuf-c's service descriptors: every
 * method of every service gets "/<package.Service>/<Method>"; the table
 * `methods` says how each is served, and a method it lacks answers
 * UNIMPLEMENTED.  So the routes cannot drift from the .proto.
 *
 * A unary request is checked on the I/O thread (POST, content-type,
 * te: trailers, grpc-timeout, grpc-encoding, the one length-prefixed
 * message and its limit, the protobuf), then the core's asynchronous
 * operation is started with a struct call as its reply.  The visitors
 * convert each result to its message (abipb) under the call's lock; done()
 * packs the answer: HEADERS, one DATA message, trailers with grpc-status
 * 0.  Errors before any message are one Trailers-Only HEADERS frame.  A
 * grpc-timeout that passes first answers DEADLINE_EXCEEDED (h2s_watch);
 * whichever comes first answers, once.
 *
 * Streams (WatchEvents, StreamMetrics, Health.Watch) are h2server
 * streamed responses with a bounded buffer: a client that reads too
 * slowly loses its stream; one the server drops at stop ends with
 * UNAVAILABLE in its trailers.
 */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abipb.h"
#include "clusterpb.h"
#include "evhold.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "grpcwire.h"
#include "h2metrics.h"
#include "h2server.h"
#include "hostres.h"
#include "pbcheck.h"
#include "readiness.h"
#include "reflect.h"
#include "rpc.h"
#include "rpcmetrics.h"
#include "vmpage.h"

static const struct vmh_host *host;

struct call;
struct rpc;

/* How a method answers. */
enum shape {
  ONE,    /* the output message is the first result (or empty) */
  LIST,   /* the output's first field is the repeated results */
  STREAM, /* a server stream, handled by the method itself */
  BIDI,   /* a bidirectional stream: the request's messages as they come */
};

struct method {
  const char *service; /* full name, as in the descriptor */
  const char *name;
  enum shape shape;
  /* Start the work; the request message is k->in.  Returns 0, or -1
   * after answering a refusal. */
  int (*start)(struct call *k);
  int role; /* who may: enum auth_role, H2S_OPEN or H2S_METRICS */
};

struct route {
  char *path;
  const ProtobufCMethodDescriptor *md;
  const struct method *m; /* NULL: UNIMPLEMENTED */
};

struct rpc {
  const struct vmh_instance *inst;
  struct h2s_conf conf;
  struct h2s *srv;
  const struct vmh_core *core;
  uint32_t drain_ms;
  uint64_t max_message;
  uint32_t max_streams; /* StreamMetrics threads at once */
  atomic_uint n_metric_streams;
  atomic_bool stopping;
  struct route *routes;
  size_t n_routes;
  struct rpcmetrics *metrics; /* per route (rpcmetrics.h) */
  /* Each VM's Vm message (as a ListVMsResponse field) by its record
   * generation: ListVMs is their concatenation (vmpage.h). */
  struct vmpage_cache *frags;
  struct readiness ready; /* grpc.health.v1 Check (readiness.h) */
};

/* ---- Calls ----------------------------------------------------------------
 */

struct call {
  struct rpc *rpc;
  struct h2s_req *req;
  const struct route *rt;
  ProtobufCMessage *in;    /* the request, unpacked by protobuf-c */
  struct abij_arena arena; /* the answer's messages, the core's arguments */
  struct vmh_reply reply;
  bool vm_status;            /* the vm visitor makes a VmStatusResponse */
  struct vmpage_listing *ls; /* ListVMs */
  struct vmpage_named named; /* ListVolumes, ListSnapshots … */
  bool hide;                 /* the caller is a reader: secrets left out */
  uint32_t async;            /* VMH_ASYNC for the *Async methods, else 0 */
  /* A Get answered from a list: the result named pick, else NOT_FOUND
   * with pick_missing (rpc_pick). */
  const char *pick, *pick_missing;
  bool pick_id; /* an "id" equal to pick wins over a "name" */
  /* How done() answers: the default, or a method's own. */
  void (*finish)(struct call *k, int code, const char *message);
  atomic_uint refs;
  atomic_bool answered;
  pthread_mutex_t lock; /* the results, from the core's workers */
  ProtobufCMessage **res;
  size_t n_res, cap_res;
};

static void call_free(struct call *k) {
  vmpage_listing_free(k->ls);
  if (k->in)
    protobuf_c_message_free_unpacked(k->in, NULL);
  abij_arena_free(&k->arena);
  free(k->res);
  pthread_mutex_destroy(&k->lock);
  free(k);
}

/* Held by the dispatcher until the method's start has returned, by the
 * core's reply until done(), by the watch until its last word. */
static void call_unref(struct call *k) {
  if (atomic_fetch_sub(&k->refs, 1) == 1)
    call_free(k);
}

/* Whoever answers first answers; false for the others. */
static bool take_answer(struct call *k) {
  return !atomic_exchange(&k->answered, true);
}

/* An error as Trailers-Only: one HEADERS frame that ends the stream. */
static void status_only(struct h2s_req *req, int code, const char *message) {
  char st[12];
  snprintf(st, sizeof st, "%d", code);
  h2s_add_header(req, "grpc-status", st);
  if (message && *message) {
    char *enc = grpc_percent_encode(message);
    if (enc)
      h2s_add_header(req, "grpc-message", enc);
    free(enc);
  }
  h2s_add_header(req, "grpc-accept-encoding", "identity,gzip");
  h2s_respond_headers(req, 200, "application/grpc");
}

/* The call's method ended with `code` (calls no method took are not
 * counted: their names are the caller's). */
static void count_end(struct call *k, int code) {
  if (k->rt)
    rpcmetrics_end(k->rpc->metrics, (size_t)(k->rt - k->rpc->routes), code,
                   h2m_since_us(h2s_start_us(k->req)));
}

static void answer_status(struct call *k, int code, const char *message) {
  char shown[1024];
  if (!take_answer(k))
    return;
  message = h2s_caller_message(k->req, message, shown, sizeof shown);
  count_end(k, code);
  status_only(k->req, code, message);
}

/* A core error code as a gRPC status (the core's table). */
static void answer_code(struct call *k, int code, const char *message) {
  answer_status(k, (int)k->rpc->core->grpc_status(code),
                message ? message : k->rpc->core->error_name(code));
}

/* A message as one length-prefixed DATA payload: 0, or -1 (no memory). */
static int frame(const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(GRPC_PREFIX + n);
  if (!b)
    return -1;
  grpc_prefix(b, n);
  protobuf_c_message_pack(m, b + GRPC_PREFIX);
  *ret = b;
  *ret_len = GRPC_PREFIX + n;
  return 0;
}

/* A framed message as the answer (a new reference of its own to b). */
static void answer_body(struct call *k, struct h2s_body *b) {
  if (!take_answer(k))
    return;
  count_end(k, GRPC_OK);
  h2s_add_header(k->req, "grpc-accept-encoding", "identity,gzip");
  h2s_add_trailer(k->req, "grpc-status", "0");
  h2s_respond_body(k->req, 200, "application/grpc", b);
}

/* The message framed as a shared body, or NULL (out of memory). */
static struct h2s_body *framed(const ProtobufCMessage *m) {
  uint8_t *b;
  size_t len;
  if (frame(m, &b, &len) < 0)
    return NULL;
  return h2s_body_take((char *)b, len);
}

static void answer_message(struct call *k, const ProtobufCMessage *m) {
  struct h2s_body *b = framed(m);
  if (!b) {
    answer_status(k, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  answer_body(k, b);
  h2s_body_unref(b);
}

/* A new, empty message of the type desc (in the arena). */
static ProtobufCMessage *empty(struct call *k,
                               const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *m = abij_arena_alloc(&k->arena, desc->sizeof_message);
  if (m)
    desc->message_init(m);
  return m;
}

/* A list of named objects (vmpage.h) cut to its page: v[0..*n) sorted by
 * their `name` and cut after the token's, and the output m's
 * next_page_token set when there is more.  0, or -1 (out of memory or no
 * token). */
static int page_by_name(struct call *k, ProtobufCMessage *m,
                        ProtobufCMessage **v, size_t *n) {
  const ProtobufCFieldDescriptor *nf =
      *n ? protobuf_c_message_descriptor_get_field_by_name(v[0]->descriptor,
                                                           "name")
         : NULL;
  const ProtobufCFieldDescriptor *tf =
      protobuf_c_message_descriptor_get_field_by_name(m->descriptor,
                                                      "next_page_token");
  const char **names = abij_arena_alloc(&k->arena, (*n + 1) * sizeof *names);
  size_t *order = abij_arena_alloc(&k->arena, (*n + 1) * sizeof *order);
  char *token = abij_arena_alloc(&k->arena, VMPAGE_NAMED_TOKEN_LEN + 1);
  ProtobufCMessage **page = abij_arena_alloc(&k->arena, (*n + 1) * sizeof *v);
  bool more;
  if (!names || !order || !token || !page)
    return -1;
  for (size_t i = 0; i < *n; i++)
    names[i] = nf ? *(const char **)((const char *)v[i] + nf->offset) : NULL;
  size_t got = vmpage_named_select(&k->named, names, *n, order, &more);
  for (size_t i = 0; i < got; i++)
    page[i] = v[order[i]];
  memcpy(v, page, got * sizeof *v);
  if (more) {
    if (!tf || vmpage_named_token(&k->named, names[order[got - 1]], token) < 0)
      return -1;
    *(char **)((char *)m + tf->offset) = token;
  }
  *n = got;
  return 0;
}

/* The output's repeated message field (the first) points at the results
 * of its type (a named list's page of them). */
static ProtobufCMessage *list_of(struct call *k,
                                 const ProtobufCMessageDescriptor *out) {
  const ProtobufCFieldDescriptor *f = NULL;
  for (unsigned i = 0; i < out->n_fields && !f; i++)
    if (out->fields[i].label == PROTOBUF_C_LABEL_REPEATED &&
        out->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
      f = &out->fields[i];
  ProtobufCMessage *m = empty(k, out);
  if (!m || !f)
    return m;
  size_t n = 0;
  ProtobufCMessage **v =
      abij_arena_alloc(&k->arena, (k->n_res + 1) * sizeof *v);
  if (!v)
    return NULL;
  for (size_t i = 0; i < k->n_res; i++)
    if (k->res[i]->descriptor == f->descriptor)
      v[n++] = k->res[i];
  if (k->named.kind && page_by_name(k, m, v, &n) < 0)
    return NULL;
  *(size_t *)((char *)m + f->quantifier_offset) = n;
  *(ProtobufCMessage ***)((char *)m + f->offset) = v;
  return m;
}

/* Whether m is the result rpc_pick asked for (its string field, "name" or
 * "id", equal to it); any result when nothing was asked. */
static bool picked(struct call *k, const ProtobufCMessage *m,
                   const char *field) {
  if (!k->pick)
    return true;
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(m->descriptor, field);
  if (!f || f->type != PROTOBUF_C_TYPE_STRING)
    return false;
  const char *name = *(const char *const *)((const char *)m + f->offset);
  return name && !strcmp(name, k->pick);
}

/* The first result of type out that picked() takes by field, or NULL. */
static ProtobufCMessage *pick_by(struct call *k,
                                 const ProtobufCMessageDescriptor *out,
                                 const char *field) {
  for (size_t i = 0; i < k->n_res; i++)
    if (k->res[i]->descriptor == out && picked(k, k->res[i], field))
      return k->res[i];
  return NULL;
}

static void finish_default(struct call *k, int code, const char *message) {
  if (code) {
    answer_code(k, code, message);
    return;
  }
  const ProtobufCMessageDescriptor *out = k->rt->md->output;
  ProtobufCMessage *m = NULL;
  if (k->rt->m->shape == LIST) {
    m = list_of(k, out);
  } else {
    if (k->pick_id)
      m = pick_by(k, out, "id");
    if (!m)
      m = pick_by(k, out, "name");
    if (!m && k->pick) {
      answer_code(k, VMH_ENOENT, k->pick_missing);
      return;
    }
    if (!m)
      m = empty(k, out);
  }
  if (!m) {
    answer_status(k, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  answer_message(k, m);
}

static void add(struct call *k, void *m) {
  if (!m) {
    host->log(k->rpc->inst, VMH_LOG_WARN, "a result lost (no memory)");
    return;
  }
  if (k->n_res == k->cap_res) {
    size_t cap = k->cap_res ? 2 * k->cap_res : 8;
    ProtobufCMessage **v = realloc(k->res, cap * sizeof *v);
    if (!v) {
      host->log(k->rpc->inst, VMH_LOG_WARN, "a result lost (no memory)");
      return;
    }
    k->res = v;
    k->cap_res = cap;
  }
  k->res[k->n_res++] = m;
}

/* The visitors: each converts its result under the call's lock. */
#define VISITOR(fn, type, enc)                    \
  static void fn(void *o, const struct type *v) { \
    struct call *k = o;                           \
    pthread_mutex_lock(&k->lock);                 \
    add(k, enc(&k->arena, v));                    \
    pthread_mutex_unlock(&k->lock);               \
  }
VISITOR(on_snapshot, vmh_snapshot_info, abipb_snapshot)
VISITOR(on_console, vmh_console_info, abipb_console)
VISITOR(on_pool, vmh_pool_info, abipb_pool)
VISITOR(on_volume, vmh_volume_info, abipb_volume)
VISITOR(on_image, vmh_image_info, abipb_image)
VISITOR(on_network, vmh_network_info, abipb_network)
VISITOR(on_host, vmh_host_info, abipb_host)
VISITOR(on_check, vmh_health_check, abipb_check)
VISITOR(on_plugin, vmh_plugin_info, abipb_plugin)
VISITOR(on_agent, vmh_agent_result, abipb_agent)
#undef VISITOR

/* What a reader is not shown: a VM's user_data (cloud-init often carries
 * passwords and keys). */
static char hidden[] = "(hidden: the operator role is needed)";

static void on_vm(void *o, const struct vmh_vm_record *v) {
  struct call *k = o;
  pthread_mutex_lock(&k->lock);
  if (k->vm_status) {
    add(k, abipb_vm_status(&k->arena, v));
  } else {
    Vmhost__V1__Vm *m = abipb_vm(&k->arena, v);
    if (m && k->hide && m->spec && m->spec->user_data && m->spec->user_data[0])
      m->spec->user_data = hidden;
    add(k, m);
  }
  pthread_mutex_unlock(&k->lock);
}

static void on_operation(void *o, const struct vmh_operation *v) {
  struct call *k = o;
  pthread_mutex_lock(&k->lock);
  add(k, abipb_operation(&k->arena, v, k->rpc->core->error_name));
  pthread_mutex_unlock(&k->lock);
}

/* Append to a NUL-terminated text (a piece is lost when out of memory). */
static void append(char **text, size_t *text_len, const char *d, size_t n) {
  char *t = realloc(*text, *text_len + n + 1);
  if (!t)
    return;
  memcpy(t + *text_len, d, n);
  *text_len += n;
  t[*text_len] = '\0';
  *text = t;
}

static void on_done(void *o, int code, const char *message) {
  struct call *k = o;
  k->finish(k, code, message);
  call_unref(k); /* the reply's */
}

static struct call *call_new(struct rpc *rpc, struct h2s_req *req) {
  struct call *k = calloc(1, sizeof *k);
  if (!k)
    return NULL;
  k->rpc = rpc;
  k->req = req;
  k->finish = finish_default;
  atomic_init(&k->refs, 1);
  atomic_init(&k->answered, false);
  pthread_mutex_init(&k->lock, NULL);
  k->reply = (struct vmh_reply){
      .struct_size = sizeof k->reply,
      .opaque = k,
      .vm = on_vm,
      .snapshot = on_snapshot,
      .console = on_console,
      .pool = on_pool,
      .volume = on_volume,
      .image = on_image,
      .network = on_network,
      .host = on_host,
      .check = on_check,
      .plugin = on_plugin,
      .done = on_done,
      .operation = on_operation,
      .agent = on_agent,
  };
  return k;
}

/* The reply for a core call: it holds the call until done(). */
static const struct vmh_reply *reply(struct call *k) {
  atomic_fetch_add(&k->refs, 1);
  return &k->reply;
}

/* ---- Request checks -------------------------------------------------------
 */

/* A refusal before the core: INVALID_ARGUMENT, and -1. */
static int bad(struct call *k, const char *fmt, ...)
    __attribute__((__format__(__printf__, 2, 3)));
static int bad(struct call *k, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  answer_status(k, GRPC_INVALID_ARGUMENT, msg);
  return -1;
}

/* After a failed abipb decoder. */
static int refused(struct call *k, int r, const char *err) {
  if (r == VMH_EINVAL)
    return bad(k, "%s", err);
  answer_code(k, r, err);
  return -1;
}

static int ref(struct call *k, const char *what, const char *s, bool uuid) {
  char err[256];
  int r = abipb_ref(what, s, uuid, err, sizeof err);
  return r ? refused(k, r, err) : 0;
}

#define IN(k, type) ((const type *)(k)->in)
#define CORE(k) ((k)->rpc->core)

/* A compressed message inflated (gzip, the only encoding we take; the
 * request's grpc-encoding was checked): GRPC_OK with msg pointing at
 * *plain (the caller frees it; NULL when msg was not compressed), or a
 * status and *why. */
static int inflate_msg(struct rpc *rpc, struct h2s_req *req,
                       struct grpc_msg *msg, uint8_t **plain,
                       const char **why) {
  const char *enc = h2s_header(req, "grpc-encoding");
  *plain = NULL;
  if (!msg->compressed)
    return GRPC_OK;
  if (!enc || !strcmp(enc, "identity")) {
    *why = "a compressed message without grpc-encoding";
    return GRPC_INTERNAL;
  }
  int code =
      grpc_gunzip(msg->data, msg->len, rpc->max_message, plain, &msg->len);
  if (code) {
    *why = code == GRPC_RESOURCE_EXHAUSTED
               ? "the message inflates past the server's limit"
               : "the message is not valid gzip";
    return code;
  }
  msg->data = *plain;
  return GRPC_OK;
}

/* ---- Methods: VMs ---------------------------------------------------------
 */

static int vm_create(struct call *k) {
  const Vmhost__V1__CreateVMRequest *m = IN(k, Vmhost__V1__CreateVMRequest);
  struct vmh_vm_spec spec;
  char err[512];
  int r = abipb_spec_in(&k->arena, m->spec, &spec, err, sizeof err);
  if (r)
    return refused(k, r, err);
  CORE(k)->vm_create(&spec, reply(k),
                     k->async | (m->no_start ? VMH_CREATE_NO_START : 0));
  return 0;
}

static int vm_get(struct call *k) {
  const Vmhost__V1__VmRequest *m = IN(k, Vmhost__V1__VmRequest);
  if (ref(k, "vm", m->vm, true) < 0)
    return -1;
  CORE(k)->vm_get(m->vm, reply(k), m->live ? VMH_READ_LIVE : 0);
  return 0;
}

static int vm_status(struct call *k) {
  const Vmhost__V1__VmRequest *m = IN(k, Vmhost__V1__VmRequest);
  if (ref(k, "vm", m->vm, true) < 0)
    return -1;
  k->vm_status = true;
  CORE(k)->vm_get(m->vm, reply(k), VMH_READ_LIVE);
  return 0;
}

/* ListVMs: the core's vm_query, each VM from the fragment cache, the
 * answer their concatenation (a vmpage_listing); with page_size (or
 * page_token) a page and the token of the next one.  Encoded by hand: a
 * ListVMsResponse is its `vms` fields (1) one after the other, then
 * next_page_token (2); the listing's buffer starts with GRPC_PREFIX bytes,
 * filled at the end. */

/* A protobuf length-delimited field's key and length into p: its size. */
static size_t field_head(uint8_t *p, unsigned field, size_t len) {
  size_t n = 0;
  p[n++] = (uint8_t)(field << 3 | 2);
  do {
    p[n++] = (uint8_t)((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
    len >>= 7;
  } while (len);
  return n;
}

/* The fragment cache's encoder: field 1 of a ListVMsResponse, as GetVM
 * would answer the VM. */
static char *vm_fragment(const struct vmh_vm_record *rec, bool hide,
                         size_t *len) {
  struct abij_arena a = {0};
  char *out = NULL;
  Vmhost__V1__Vm *m = abipb_vm(&a, rec);
  if (m && hide && m->spec && m->spec->user_data && m->spec->user_data[0])
    m->spec->user_data = hidden;
  if (m) {
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    if ((out = malloc(n + 11))) {
      size_t h = field_head((uint8_t *)out, 1, n);
      protobuf_c_message_pack(&m->base, (uint8_t *)out + h);
      *len = h + n;
    }
  }
  abij_arena_free(&a);
  return out;
}

static void on_list_vm(void *o, const struct vmh_vm_record *rec) {
  struct call *k = o;
  vmpage_listing_add(k->ls, rec, k->hide, NULL);
}

static void finish_vm_list(struct call *k, int code, const char *message) {
  struct vmpage_listing *ls = k->ls;
  char token[VMPAGE_TOKEN_LEN + 1];
  if (code) {
    answer_code(k, code, message);
    return;
  }
  if (vmpage_listing_end(ls, token) < 0) {
    answer_code(k, VMH_EINTERNAL, "cannot make a page token");
    return;
  }
  if (*token) {
    uint8_t head[12];
    vmpage_buf_add(&ls->out, head, field_head(head, 2, strlen(token)));
    vmpage_buf_add(&ls->out, token, strlen(token));
  }
  if (!ls->out.failed)
    grpc_prefix((uint8_t *)ls->out.data, ls->out.len - GRPC_PREFIX);
  struct h2s_body *b = vmpage_buf_body(&ls->out);
  if (!b) {
    answer_status(k, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  answer_body(k, b);
  h2s_body_unref(b);
  vmpage_cache_trim(k->rpc->frags);
}

/* The request's filter and page into ls: 0, or -1 after refusing it. */
static int list_request(struct call *k, struct vmpage_listing *ls) {
  const Vmhost__V1__ListVMsRequest *m = IN(k, Vmhost__V1__ListVMsRequest);
  char err[256];
  if (m->page_size < 0)
    return bad(k, "page_size must be 0 (every VM) or more");
  for (size_t i = 0; i < m->n_states; i++) {
    uint32_t st = (uint32_t)m->states[i];
    if (st > VMH_VM_CRASHED)
      return bad(k, "states[%zu]: unknown VM state %" PRIu32, i, st);
    ls->q.states |= VMH_VM_STATE_BIT(st);
  }
  if (m->n_labels + m->n_label_selectors > VMPAGE_MAX_LABELS)
    return bad(k, "at most %d labels to select on", VMPAGE_MAX_LABELS);
  for (size_t i = 0; i < m->n_labels; i++) {
    const char *key = m->labels[i]->key, *value = m->labels[i]->value;
    if (vmpage_label_check(key, value, err, sizeof err) < 0)
      return bad(k, "labels: %s", err);
    ls->labels[ls->q.n_labels++] = (struct vmh_keyval){key, value};
  }
  for (size_t i = 0; i < m->n_label_selectors; i++) {
    /* As REST's ?label=, cut in a copy. */
    size_t len = strlen(m->label_selectors[i]);
    char *sel = abij_arena_alloc(&k->arena, len + 1);
    if (!sel) {
      answer_status(k, GRPC_RESOURCE_EXHAUSTED, "out of memory");
      return -1;
    }
    memcpy(sel, m->label_selectors[i], len);
    if (vmpage_listing_select(ls, sel, err, sizeof err) < 0)
      return bad(k, "label_selectors[%zu]: %s", i, err);
  }
  if (vmpage_listing_begin(ls, (uint32_t)m->page_size, m->page_token, err,
                           sizeof err) < 0)
    return bad(k, "%s", err);
  return 0;
}

static int vm_list(struct call *k) {
  const Vmhost__V1__ListVMsRequest *m = IN(k, Vmhost__V1__ListVMsRequest);
  static const uint8_t prefix[GRPC_PREFIX];
  struct vmpage_listing *ls = vmpage_listing_new(k->rpc->frags);
  if (!ls) {
    answer_status(k, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return -1;
  }
  k->ls = ls;
  if (list_request(k, ls) < 0)
    return -1;
  vmpage_buf_add(&ls->out, prefix, GRPC_PREFIX); /* filled at the end */
  k->reply.vm = on_list_vm;
  k->finish = finish_vm_list;
  CORE(k)->vm_query(&ls->q, reply(k), m->live ? VMH_READ_LIVE : 0);
  return 0;
}

static int vm_delete(struct call *k) {
  const Vmhost__V1__VmRequest *m = IN(k, Vmhost__V1__VmRequest);
  if (ref(k, "vm", m->vm, true) < 0)
    return -1;
  CORE(k)->vm_delete(m->vm, reply(k), k->async);
  return 0;
}

static int action(struct call *k, uint32_t act, uint32_t timeout,
                  uint32_t flags) {
  const Vmhost__V1__VmRequest *m = IN(k, Vmhost__V1__VmRequest);
  if (ref(k, "vm", m->vm, true) < 0)
    return -1;
  CORE(k)->vm_action(m->vm, act, timeout, reply(k), k->async | flags);
  return 0;
}
static int vm_start(struct call *k) {
  return action(k, VMH_ACTION_START, 0, 0);
}
static int vm_force_stop(struct call *k) {
  return action(k, VMH_ACTION_STOP, 0, VMH_ACTION_FORCE);
}
static int vm_reboot(struct call *k) {
  return action(k, VMH_ACTION_REBOOT, 0, 0);
}
static int vm_pause(struct call *k) {
  return action(k, VMH_ACTION_PAUSE, 0, 0);
}
static int vm_resume(struct call *k) {
  return action(k, VMH_ACTION_RESUME, 0, 0);
}

static int vm_stop(struct call *k) {
  const Vmhost__V1__StopVMRequest *m = IN(k, Vmhost__V1__StopVMRequest);
  if (ref(k, "vm", m->vm, true) < 0)
    return -1;
  if (m->timeout_s > 3600)
    return bad(k, "'timeout_s' must be 0 to 3600");
  CORE(k)->vm_action(m->vm, VMH_ACTION_STOP, m->timeout_s, reply(k),
                     k->async | (m->force ? VMH_ACTION_FORCE : 0));
  return 0;
}

static int vm_console(struct call *k) {
  const Vmhost__V1__VmRequest *m = IN(k, Vmhost__V1__VmRequest);
  if (ref(k, "vm", m->vm, true) < 0)
    return -1;
  CORE(k)->vm_console(m->vm, reply(k), 0);
  return 0;
}

/* ---- For the methods in other files (rpc.h) ------------------------------ */

const ProtobufCMessage *rpc_in(struct call *k) {
  return k->in;
}
struct abij_arena *rpc_arena(struct call *k) {
  return &k->arena;
}
const struct vmh_core *rpc_core(struct call *k) {
  return CORE(k);
}
const struct vmh_reply *rpc_reply(struct call *k) {
  return reply(k);
}
int rpc_bad(struct call *k, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return bad(k, "%s", msg);
}
int rpc_code(struct call *k, int code, const char *message) {
  answer_code(k, code, message);
  return -1;
}
int rpc_ref(struct call *k, const char *what, const char *s, bool uuid) {
  return ref(k, what, s, uuid);
}
uint32_t rpc_async(struct call *k) {
  return k->async;
}
static int vpick(struct call *k, const char *name, bool by_id, const char *fmt,
                 va_list ap) {
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  char *kept = abij_arena_alloc(&k->arena, strlen(msg) + 1);
  if (!kept)
    return rpc_code(k, VMH_ENOMEM, "out of memory");
  k->pick = name;
  k->pick_id = by_id;
  k->pick_missing = strcpy(kept, msg);
  return 0;
}

int rpc_pick(struct call *k, const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = vpick(k, name, false, fmt, ap);
  va_end(ap);
  return r;
}

int rpc_pick_id(struct call *k, const char *key, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = vpick(k, key, true, fmt, ap);
  va_end(ap);
  return r;
}

/* ---- Methods: snapshots, disks -------------------------------------------
 */

static int snap_create(struct call *k) {
  const Vmhost__V1__CreateSnapshotRequest *m =
      IN(k, Vmhost__V1__CreateSnapshotRequest);
  if (ref(k, "vm", m->vm, true) < 0)
    return -1;
  if (!*m->name)
    return bad(k, "'name' is required: the snapshot's name, unique per VM");
  if (ref(k, "name", m->name, false) < 0)
    return -1;
  uint32_t flags;
  if (rpc_quiesce_flags(k, m->quiesce, &flags) < 0)
    return -1;
  CORE(k)->snapshot_create(m->vm, m->name, reply(k), k->async | flags);
  return 0;
}

/* A named list's page_size and page_token (pages by name, vmpage.h):
 * 0, or -1 after refusing them. */
static int named_begin(struct call *k, enum vmpage_kind kind, const char *scope,
                       int32_t page_size, const char *page_token) {
  char err[256];
  if (page_size < 0)
    return bad(k, "page_size must be 0 (every one) or more");
  if (vmpage_named_begin(&k->named, kind, scope, (uint32_t)page_size,
                         page_token, err, sizeof err) < 0)
    return bad(k, "%s", err);
  return 0;
}

static int snap_list(struct call *k) {
  const Vmhost__V1__ListSnapshotsRequest *m =
      IN(k, Vmhost__V1__ListSnapshotsRequest);
  if (ref(k, "vm", m->vm, true) < 0 ||
      named_begin(k, VMPAGE_SNAPSHOTS, m->vm, m->page_size, m->page_token) < 0)
    return -1;
  CORE(k)->snapshot_list(m->vm, reply(k), 0);
  return 0;
}

int rpc_snap_id(struct call *k, const char *id) {
  size_t n = strlen(id);
  if (!n || n > 128 ||
      strspn(id,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
             "-_.") != n)
    return bad(k, "'snapshot_id' is not a snapshot id");
  return 0;
}

static int snap_revert(struct call *k) {
  const Vmhost__V1__SnapshotRequest *m = IN(k, Vmhost__V1__SnapshotRequest);
  if (ref(k, "vm", m->vm, true) < 0 || rpc_snap_id(k, m->snapshot_id) < 0)
    return -1;
  CORE(k)->snapshot_revert(m->vm, m->snapshot_id, reply(k), k->async);
  return 0;
}

static int snap_delete(struct call *k) {
  const Vmhost__V1__SnapshotRequest *m = IN(k, Vmhost__V1__SnapshotRequest);
  if (ref(k, "vm", m->vm, true) < 0 || rpc_snap_id(k, m->snapshot_id) < 0)
    return -1;
  CORE(k)->snapshot_delete(m->vm, m->snapshot_id, reply(k), k->async);
  return 0;
}

static int disk_attach(struct call *k) {
  const Vmhost__V1__AttachDiskRequest *m = IN(k, Vmhost__V1__AttachDiskRequest);
  struct vmh_disk d;
  char err[512];
  if (ref(k, "vm", m->vm, true) < 0)
    return -1;
  int r = abipb_disk_in(&k->arena, m->disk, "disk.", &d, err, sizeof err);
  if (r)
    return refused(k, r, err);
  CORE(k)->disk_attach(m->vm, &d, reply(k), k->async);
  return 0;
}

static int disk_detach(struct call *k) {
  const Vmhost__V1__DetachDiskRequest *m = IN(k, Vmhost__V1__DetachDiskRequest);
  if (ref(k, "vm", m->vm, true) < 0 || ref(k, "disk", m->disk, false) < 0)
    return -1;
  CORE(k)->disk_detach(m->vm, m->disk, reply(k), k->async);
  return 0;
}

/* ---- Methods: storage, networks -------------------------------------------
 */

static int pool_list(struct call *k) {
  const Vmhost__V1__ListPoolsRequest *m = IN(k, Vmhost__V1__ListPoolsRequest);
  if (named_begin(k, VMPAGE_POOLS, NULL, m->page_size, m->page_token) < 0)
    return -1;
  CORE(k)->pool_list(reply(k), 0);
  return 0;
}

static int pool_get(struct call *k) {
  const Vmhost__V1__PoolRequest *m = IN(k, Vmhost__V1__PoolRequest);
  if (ref(k, "pool", m->pool, false) < 0)
    return -1;
  CORE(k)->pool_get(m->pool, reply(k), 0);
  return 0;
}

static int vol_list(struct call *k) {
  const Vmhost__V1__ListVolumesRequest *m =
      IN(k, Vmhost__V1__ListVolumesRequest);
  if (ref(k, "pool", m->pool, false) < 0 ||
      named_begin(k, VMPAGE_VOLUMES, m->pool, m->page_size, m->page_token) < 0)
    return -1;
  CORE(k)->volume_list(m->pool, reply(k), 0);
  return 0;
}

static int vol_get(struct call *k) {
  const Vmhost__V1__VolumeRequest *m = IN(k, Vmhost__V1__VolumeRequest);
  if (ref(k, "pool", m->pool, false) < 0 ||
      ref(k, "volume", m->volume, false) < 0)
    return -1;
  CORE(k)->volume_get(m->pool, m->volume, reply(k), 0);
  return 0;
}

static int vol_create(struct call *k) {
  const Vmhost__V1__CreateVolumeRequest *m =
      IN(k, Vmhost__V1__CreateVolumeRequest);
  struct vmh_volume_spec spec;
  char err[512];
  if (ref(k, "pool", m->pool, false) < 0)
    return -1;
  int r = abipb_volume_spec_in(&k->arena, m, &spec, err, sizeof err);
  if (r)
    return refused(k, r, err);
  CORE(k)->volume_create(m->pool, &spec, reply(k), k->async);
  return 0;
}

static int vol_resize(struct call *k) {
  const Vmhost__V1__ResizeVolumeRequest *m =
      IN(k, Vmhost__V1__ResizeVolumeRequest);
  if (ref(k, "pool", m->pool, false) < 0 ||
      ref(k, "volume", m->volume, false) < 0)
    return -1;
  if (m->size == 0 || m->size > INT64_MAX)
    return bad(k, "'size' is required: the new size in bytes, above 0");
  CORE(k)->volume_resize(m->pool, m->volume, m->size, reply(k),
                         k->async | (m->shrink ? VMH_RESIZE_SHRINK : 0));
  return 0;
}

static int vol_delete(struct call *k) {
  const Vmhost__V1__VolumeRequest *m = IN(k, Vmhost__V1__VolumeRequest);
  if (ref(k, "pool", m->pool, false) < 0 ||
      ref(k, "volume", m->volume, false) < 0)
    return -1;
  CORE(k)->volume_delete(m->pool, m->volume, reply(k), k->async);
  return 0;
}

/* ---- Methods: operations ---------------------------------------------------
 */

static int op_id(struct call *k, const char *id) {
  if (strlen(id) == VMH_ID_LEN && strspn(id, "0123456789abcdef-") == VMH_ID_LEN)
    return 0;
  return bad(k, "'id' must be an operation id (a lower-case UUID)");
}

static int op_list(struct call *k) {
  const Vmhost__V1__ListOperationsRequest *m =
      IN(k, Vmhost__V1__ListOperationsRequest);
  if (*m->vm && ref(k, "vm", m->vm, true) < 0)
    return -1;
  if (m->status > VMHOST__V1__OPERATION_STATUS__OPERATION_STATUS_CANCELLED)
    return bad(k, "'status' %d is not an OperationStatus", (int)m->status);
  if (m->limit > 100000)
    return bad(k, "'limit' must be 0 to 100000");
  CORE(k)->operation_list(*m->vm ? m->vm : NULL, (uint32_t)m->status, m->limit,
                          reply(k), 0);
  return 0;
}

static int op_get(struct call *k) {
  const Vmhost__V1__OperationRequest *m = IN(k, Vmhost__V1__OperationRequest);
  if (op_id(k, m->id) < 0)
    return -1;
  CORE(k)->operation_get(m->id, reply(k), 0);
  return 0;
}

static int op_wait(struct call *k) {
  const Vmhost__V1__WaitOperationRequest *m =
      IN(k, Vmhost__V1__WaitOperationRequest);
  if (op_id(k, m->id) < 0)
    return -1;
  if (m->timeout_s > 3600)
    return bad(k, "'timeout_s' must be 0 to 3600");
  CORE(k)->operation_wait(m->id, (m->timeout_s ? m->timeout_s : 30) * 1000,
                          reply(k), 0);
  return 0;
}

static int op_cancel(struct call *k) {
  const Vmhost__V1__OperationRequest *m = IN(k, Vmhost__V1__OperationRequest);
  if (op_id(k, m->id) < 0)
    return -1;
  CORE(k)->operation_cancel(m->id, reply(k), 0);
  return 0;
}

static int net_list(struct call *k) {
  const Vmhost__V1__ListNetworksRequest *m =
      IN(k, Vmhost__V1__ListNetworksRequest);
  if (named_begin(k, VMPAGE_NETWORKS, NULL, m->page_size, m->page_token) < 0)
    return -1;
  CORE(k)->network_list(reply(k), 0);
  return 0;
}

static int net_get(struct call *k) {
  const Vmhost__V1__NetworkRequest *m = IN(k, Vmhost__V1__NetworkRequest);
  if (ref(k, "network", m->network, false) < 0)
    return -1;
  CORE(k)->network_get(m->network, reply(k), 0);
  return 0;
}

/* ---- Methods: bearer tokens (admin) ----------------------------------------
 * As the REST front-end's: the store is a small file (authtoken.h). */

static int token_list(struct call *k) {
  struct auth_token *t = NULL;
  size_t n = 0;
  char err[512];
  int r = auth_token_list(h2s_tokens(k->rpc->srv), &t, &n, err, sizeof err);
  if (r < 0) {
    answer_code(k, r, err);
    return -1;
  }
  Vmhost__V1__ListTokensResponse m = VMHOST__V1__LIST_TOKENS_RESPONSE__INIT;
  Vmhost__V1__Token *items = calloc(n ? n : 1, sizeof *items);
  Vmhost__V1__Token **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  if (!items || !ptrs) {
    free(items);
    free(ptrs);
    free(t);
    answer_status(k, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    vmhost__v1__token__init(&items[i]);
    items[i].name = t[i].name;
    items[i].role = (char *)auth_role_name(t[i].role);
    items[i].created = t[i].created;
    ptrs[i] = &items[i];
  }
  m.n_tokens = n;
  m.tokens = ptrs;
  answer_message(k, &m.base);
  free(items);
  free(ptrs);
  free(t);
  return 0;
}

static int token_create(struct call *k) {
  const Vmhost__V1__CreateTokenRequest *m =
      IN(k, Vmhost__V1__CreateTokenRequest);
  char err[512], secret[AUTH_SECRET_LEN];
  int role = auth_role_parse(m->role);
  if (role < 0) {
    snprintf(err, sizeof err, "role: reader, operator or admin, not '%.64s'",
             m->role);
    answer_status(k, GRPC_INVALID_ARGUMENT, err);
    return -1;
  }
  int r = auth_token_create(h2s_tokens(k->rpc->srv), m->name, role, secret, err,
                            sizeof err);
  if (r < 0) {
    answer_code(k, r, err);
    return -1;
  }
  host->log(k->rpc->inst, VMH_LOG_INFO, "token '%s' (%s) created by %s",
            m->name, m->role, h2s_who(k->req));
  Vmhost__V1__Token t = VMHOST__V1__TOKEN__INIT;
  t.name = m->name;
  t.role = m->role;
  t.created = (int64_t)time(NULL);
  t.token = secret;
  answer_message(k, &t.base);
  return 0;
}

static int token_revoke(struct call *k) {
  const Vmhost__V1__TokenRequest *m = IN(k, Vmhost__V1__TokenRequest);
  char err[512];
  int r = auth_token_revoke(h2s_tokens(k->rpc->srv), m->name, err, sizeof err);
  if (r < 0) {
    answer_code(k, r, err);
    return -1;
  }
  host->log(k->rpc->inst, VMH_LOG_INFO, "token '%s' revoked by %s", m->name,
            h2s_who(k->req));
  Vmhost__V1__RevokeTokenResponse out = VMHOST__V1__REVOKE_TOKEN_RESPONSE__INIT;
  answer_message(k, &out.base);
  return 0;
}

/* ---- Methods: node, plugins, health ---------------------------------------
 */

/* NodeInfo: the host record, with the resources and the newest sample. */
static void finish_node_info(struct call *k, int code, const char *message) {
  for (size_t i = 0; code == 0 && i < k->n_res; i++) {
    if (k->res[i]->descriptor != &vmhost__v1__node_info__descriptor)
      continue;
    Vmhost__V1__NodeInfo *m = (Vmhost__V1__NodeInfo *)k->res[i];
    m->resources = rpc_host_resources(CORE(k), &k->arena);
    m->sample = rpc_host_sample(CORE(k), &k->arena);
  }
  finish_default(k, code, message);
}

static int node_info(struct call *k) {
  k->finish = finish_node_info;
  CORE(k)->host_info(reply(k), 0);
  return 0;
}

static int plugin_list(struct call *k) {
  CORE(k)->plugin_list(reply(k), 0);
  return 0;
}

/* GetClusterStatus: the cluster plugin's document, through the core (it
 * answers from memory, before plugin_status returns). */
struct status_text {
  char *text;
  size_t len;
  int code;
  char message[512];
};

static void status_on_text(void *o, const char *text, size_t len) {
  struct status_text *t = o;
  if (t->text == NULL) /* the first instance's: the node's */
    append(&t->text, &t->len, text, len);
}

static void status_on_done(void *o, int code, const char *message) {
  struct status_text *t = o;
  t->code = code;
  snprintf(t->message, sizeof t->message, "%s", message ? message : "");
}

static int cluster_status(struct call *k) {
  if (!VMH_HAS_FIELD(CORE(k), plugin_status)) {
    answer_code(k, VMH_ENOTSUP, "this vmhostd cannot report a cluster status");
    return -1;
  }
  struct status_text t = {.code = VMH_EINTERNAL};
  struct vmh_reply r = {.struct_size = sizeof r,
                        .opaque = &t,
                        .text = status_on_text,
                        .done = status_on_done};
  CORE(k)->plugin_status("cluster", &r, 0);
  json_t *o = t.code ? NULL : json_loadb(t.text ? t.text : "", t.len, 0, NULL);
  free(t.text);
  Vmhost__V1__ClusterStatus m;
  if (t.code)
    answer_code(k, t.code, t.message);
  else if (clusterpb_from_json(o, &k->arena, &m) < 0)
    answer_code(k, VMH_EINTERNAL, "the cluster status is not a document");
  else
    answer_message(k, &m.base);
  json_decref(o);
  return t.code ? -1 : 0;
}

/* vmhost.v1 HealthCheck: every check, and the worst as the whole.  A
 * failing check is an answer, not an error of the request. */
static void finish_health(struct call *k, int code, const char *message) {
  if (!k->n_res) {
    answer_code(k, code ? code : VMH_EINTERNAL, message);
    return;
  }
  Vmhost__V1__HealthCheckResponse *m =
      (Vmhost__V1__HealthCheckResponse *)list_of(k, k->rt->md->output);
  if (!m) {
    answer_status(k, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  for (size_t i = 0; i < m->n_checks; i++)
    if (m->checks[i]->status > m->status)
      m->status = m->checks[i]->status;
  answer_message(k, &m->base);
}

static int health(struct call *k) {
  k->finish = finish_health;
  CORE(k)->health(reply(k), 0);
  return 0;
}

/* grpc.health.v1: "" and our service name are the node; others unknown. */
static bool health_service_known(const char *name) {
  return !*name || !strcmp(name, vmhost__v1__node_service__descriptor.name) ||
         !strcmp(name, grpc__health__v1__health__descriptor.name);
}

static void answer_std_health(struct call *k, bool serving) {
  Grpc__Health__V1__HealthCheckResponse m =
      GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  m.status =
      serving
          ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
          : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
  answer_message(k, &m.base);
}

static void finish_std_health(struct call *k, int code, const char *message) {
  (void)message;
  bool serving = !code && CORE(k)->ready();
  readiness_note(&k->rpc->ready, serving);
  answer_std_health(k, serving);
}

static int std_health_check(struct call *k) {
  const Grpc__Health__V1__HealthCheckRequest *m =
      IN(k, Grpc__Health__V1__HealthCheckRequest);
  if (!health_service_known(m->service)) {
    answer_status(k, GRPC_NOT_FOUND, "unknown service");
    return -1;
  }
  /* Within a second of a check that said serving: that answer, without a
   * core worker per probe (readiness.h). */
  if (readiness_known(&k->rpc->ready, CORE(k))) {
    answer_std_health(k, true);
    return 0;
  }
  k->finish = finish_std_health;
  CORE(k)->health(reply(k), 0);
  return 0;
}

/* ---- Streams --------------------------------------------------------------
 */

/* A server stream: the request, what ends it, how many messages went. */
struct stream {
  struct rpc *rpc;
  struct h2s_req *req;
  const struct route *rt; /* the method, for its metrics */
  atomic_bool closed;     /* deliver nothing more */
  atomic_uint_fast64_t seq;
  uint64_t sub_id;
  bool subscribed;
  /* StreamMetrics: its thread, woken early by close. */
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  uint32_t interval_ms;
  /* Health.Watch: the service watched, the status last sent. */
  bool known_service;
  int last_status;
  void (*on_close)(struct stream *st);
  /* The h2 stream's, and one per core call in flight (Health.Watch). */
  atomic_uint refs;
  /* BIDI: the request's bytes not yet a whole message (I/O thread). */
  uint8_t *in;
  size_t in_len;
  /* WatchEvents: the replay, held while it subscribes (evhold.h). */
  struct evhold *hold;
};

static void stream_unref(struct stream *st) {
  if (atomic_fetch_sub(&st->refs, 1) != 1)
    return;
  pthread_mutex_destroy(&st->lock);
  pthread_cond_destroy(&st->cond);
  free(st->in);
  if (st->hold)
    evhold_fini(st->hold);
  free(st->hold);
  free(st);
}

/* Send one message on the stream: 0, or -1 when it is closed (a reader
 * too slow overflows its buffer: h2server then closes it). */
static int stream_push(struct stream *st, uint8_t *b, size_t len);

static int stream_send(struct stream *st, const ProtobufCMessage *m) {
  uint8_t *b;
  size_t len;
  if (atomic_load(&st->closed) || frame(m, &b, &len) < 0)
    return -1;
  return stream_push(st, b, len);
}

/* Send a framed message (taking b): 0 or -1 as stream_send. */
static int stream_push(struct stream *st, uint8_t *b, size_t len) {
  /* Under the lock: once closed is set there, the request may go. */
  int r = -1;
  pthread_mutex_lock(&st->lock);
  if (!atomic_load(&st->closed))
    r = h2s_stream_send(st->req, (const char *)b, len);
  if (r < 0)
    atomic_store(&st->closed, true);
  pthread_mutex_unlock(&st->lock);
  free(b);
  return r;
}

/* End the stream with its status in the trailers, and free it. */
static void stream_end(struct stream *st, int code, const char *message) {
  char s[12];
  snprintf(s, sizeof s, "%d", code);
  h2s_add_trailer(st->req, "grpc-status", s);
  rpcmetrics_end(st->rpc->metrics, (size_t)(st->rt - st->rpc->routes), code,
                 h2m_since_us(h2s_start_us(st->req)));
  if (message) {
    char *enc = grpc_percent_encode(message);
    if (enc)
      h2s_add_trailer(st->req, "grpc-message", enc);
    free(enc);
  }
  host->log(st->rpc->inst, VMH_LOG_DEBUG, "%s: stream ended with status %d",
            h2s_request_id(st->req), code);
  h2s_stream_end(st->req);
  stream_unref(st);
}

/* h2server's close (I/O thread): the client went, the reader was too
 * slow, or the server stops.  The method's own teardown, then the end. */
static void stream_closed(void *opaque) {
  struct stream *st = opaque;
  pthread_mutex_lock(&st->lock);
  atomic_store(&st->closed, true);
  pthread_mutex_unlock(&st->lock);
  st->on_close(st);
  bool stopping = atomic_load(&st->rpc->stopping);
  stream_end(st, stopping ? GRPC_UNAVAILABLE : GRPC_CANCELLED,
             stopping ? "the server is stopping" : NULL);
}

/* Take the request over from the call as a stream. */
static struct stream *stream_begin(struct call *k,
                                   void (*on_close)(struct stream *)) {
  struct stream *st = calloc(1, sizeof *st);
  if (!st) {
    answer_status(k, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  if (!take_answer(k)) {
    free(st);
    return NULL;
  }
  st->rpc = k->rpc;
  st->req = k->req;
  st->rt = k->rt;
  st->on_close = on_close;
  atomic_init(&st->closed, false);
  atomic_init(&st->refs, 1);
  st->last_status = -1;
  pthread_mutex_init(&st->lock, NULL);
  pthread_cond_init(&st->cond, NULL);
  h2s_add_header(st->req, "grpc-accept-encoding", "identity,gzip");
  h2s_stream_begin(st->req, 200, "application/grpc", stream_closed, st);
  return st;
}

/* WatchEvents.  On a core thread (or the subscribing one, for the
 * replay): must not block. */
static void send_event(struct stream *st, const struct vmh_event *ev) {
  struct abij_arena a = {0};
  Vmhost__V1__Event *m = abipb_event(&a, ev, st->rpc->core->error_name);
  uint8_t *b = NULL;
  size_t len = 0;
  if (m) {
    m->seq = (uint64_t)atomic_fetch_add(&st->seq, 1) + 1;
    if (frame(&m->base, &b, &len) < 0)
      b = NULL;
  }
  if (b && evhold_add(st->hold, ev->id, b, len) == 1)
    stream_push(st, b, len);
  else
    free(b);
  abij_arena_free(&a);
}

static void on_event(void *opaque, const struct vmh_event *ev) {
  struct stream *st = opaque;
  if (!atomic_load(&st->closed))
    send_event(st, ev);
}

static int flush_send(void *o, const void *data, size_t len) {
  uint8_t *b = malloc(len);
  if (!b)
    return -1;
  memcpy(b, data, len);
  return stream_push(o, b, len);
}

/* The replay did not fit the hold (evhold.h): a reset, as the core says
 * one it cannot make. */
static int flush_reset(void *o, const char *last_id) {
  struct stream *st = o;
  char why[256];
  struct vmh_event ev;
  evhold_reset_event(st->hold, host->instance_name(st->rpc->inst), last_id, why,
                     sizeof why, &ev);
  struct abij_arena a = {0};
  Vmhost__V1__Event *m = abipb_event(&a, &ev, st->rpc->core->error_name);
  if (m) {
    m->seq = (uint64_t)atomic_fetch_add(&st->seq, 1) + 1;
    stream_send(st, &m->base);
  }
  abij_arena_free(&a);
  return 0;
}

static void events_closed(struct stream *st) {
  /* After unsubscribe() no delivery is in flight (core.h). */
  if (st->subscribed)
    st->rpc->core->unsubscribe(st->sub_id);
}

/* The request's filter into f (its strings borrowed from m). */
static int watch_filter(struct call *k, const Vmhost__V1__WatchEventsRequest *m,
                        struct vmh_event_filter *f) {
  *f = (struct vmh_event_filter){.struct_size = sizeof *f};
  f->since = m->since && *m->since ? m->since : NULL;
  f->vm = m->vm && *m->vm ? m->vm : NULL;
  for (size_t i = 0; i < m->n_types; i++) {
    int t = (int)m->types[i];
    if (t <= 0 || t >= VMH_EVENT_RESET)
      return bad(k,
                 "types[%zu]: %d is not an event type to watch (1 to 8: "
                 "EVENT_TYPE_VM_STATE … EVENT_TYPE_OPERATION_UPDATED)",
                 i, t);
    f->types |= VMH_EVENT_TYPE_BIT((uint32_t)t);
  }
  return 0;
}

static int watch_events(struct call *k) {
  struct vmh_event_filter f;
  if (watch_filter(k, IN(k, Vmhost__V1__WatchEventsRequest), &f) < 0)
    return -1;
  struct evhold *hold = malloc(sizeof *hold);
  if (!hold) {
    answer_status(k, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return -1;
  }
  evhold_init(hold, k->rpc->conf.stream_buffer / 2);
  struct stream *st = stream_begin(k, events_closed);
  if (!st) {
    evhold_fini(hold);
    free(hold);
    return -1;
  }
  st->hold = hold;
  /* Subscribed on the I/O thread: stream_closed cannot run meanwhile.  The
   * replay comes before subscribe returns, held until it is known good. */
  int r = CORE(k)->subscribe_events(&f, on_event, st, &st->sub_id, 0);
  if (r) {
    /* Ended here, on the I/O thread: stream_closed never comes. */
    atomic_store(&st->closed, true);
    stream_end(st, (int)CORE(k)->grpc_status(r), CORE(k)->error_message());
    return 0;
  }
  st->subscribed = true;
  evhold_flush(st->hold, flush_send, flush_reset, st);
  return 0;
}

/* StreamMetrics: a thread per stream samples the host and the counters
 * (the core's calls answer on its workers; the thread waits for them). */
struct sample {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  struct vmh_host_info host;
  bool have_host;
  char *text;
  size_t text_len;
};

static void sample_host(void *o, const struct vmh_host_info *h) {
  struct sample *s = o;
  pthread_mutex_lock(&s->lock);
  memset(&s->host, 0, sizeof s->host);
  memcpy(&s->host, h,
         h->struct_size < sizeof s->host ? h->struct_size : sizeof s->host);
  s->host.hostname = s->host.os_name = s->host.os_version = NULL;
  s->host.kernel = s->host.arch = s->host.cpu_model = NULL;
  s->have_host = true;
  pthread_mutex_unlock(&s->lock);
}

static void sample_text(void *o, const char *text, size_t len) {
  struct sample *s = o;
  pthread_mutex_lock(&s->lock);
  append(&s->text, &s->text_len, text, len);
  pthread_mutex_unlock(&s->lock);
}

static void sample_done(void *o, int code, const char *message) {
  (void)code, (void)message;
  struct sample *s = o;
  pthread_mutex_lock(&s->lock);
  s->done = true;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->lock);
}

/* Wait for the core to answer r (on this, a plain thread, waiting is
 * fine). */
static void sample_wait(struct sample *s) {
  pthread_mutex_lock(&s->lock);
  while (!s->done)
    pthread_cond_wait(&s->cond, &s->lock);
  s->done = false;
  pthread_mutex_unlock(&s->lock);
}

static int send_sample(struct stream *st) {
  const struct vmh_core *core = st->rpc->core;
  struct sample s = {.done = false};
  pthread_mutex_init(&s.lock, NULL);
  pthread_cond_init(&s.cond, NULL);
  struct vmh_reply r = {.struct_size = sizeof r,
                        .opaque = &s,
                        .host = sample_host,
                        .text = sample_text,
                        .done = sample_done};
  core->host_info(&r, 0);
  sample_wait(&s);
  core->metrics(&r, 0);
  sample_wait(&s);
  Vmhost__V1__MetricsSample m = VMHOST__V1__METRICS_SAMPLE__INIT;
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  m.time_us = (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
  m.memory_total = s.host.memory_total;
  m.memory_available = s.host.memory_available;
  m.uptime_s = s.host.uptime_s;
  m.n_vms = s.host.n_vms;
  m.cpu_threads = s.host.cpu_threads;
  m.prometheus = s.text ? s.text : (char *)protobuf_c_empty_string;
  struct abij_arena arena = {0};
  m.resources = rpc_host_resources(core, &arena);
  m.sample = rpc_host_sample(core, &arena);
  int ret = stream_send(st, &m.base);
  abij_arena_free(&arena);
  free(s.text);
  pthread_mutex_destroy(&s.lock);
  pthread_cond_destroy(&s.cond);
  return ret;
}

static void *metrics_loop(void *arg) {
  struct stream *st = arg;
  while (send_sample(st) == 0) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    uint64_t ns = (uint64_t)t.tv_nsec + (uint64_t)st->interval_ms * 1000000;
    t.tv_sec += (time_t)(ns / 1000000000);
    t.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&st->lock);
    while (!atomic_load(&st->closed) &&
           pthread_cond_timedwait(&st->cond, &st->lock, &t) != ETIMEDOUT)
      ;
    pthread_mutex_unlock(&st->lock);
    if (atomic_load(&st->closed))
      break;
  }
  return NULL;
}

/* I/O thread: stop the sampler before the stream ends. */
static void metrics_closed(struct stream *st) {
  pthread_mutex_lock(&st->lock);
  pthread_cond_signal(&st->cond);
  pthread_mutex_unlock(&st->lock);
  pthread_join(st->thread, NULL);
  atomic_fetch_sub(&st->rpc->n_metric_streams, 1);
}

static int stream_metrics(struct call *k) {
  const Vmhost__V1__StreamMetricsRequest *m =
      IN(k, Vmhost__V1__StreamMetricsRequest);
  uint32_t iv = m->interval_ms ? m->interval_ms : 1000;
  if (iv < 100 || iv > 3600000)
    return bad(k, "'interval_ms' must be 100 to 3600000");
  if (atomic_fetch_add(&k->rpc->n_metric_streams, 1) >= k->rpc->max_streams) {
    atomic_fetch_sub(&k->rpc->n_metric_streams, 1);
    answer_status(k, GRPC_RESOURCE_EXHAUSTED, "too many metrics streams");
    return -1;
  }
  struct stream *st = stream_begin(k, metrics_closed);
  if (!st) {
    atomic_fetch_sub(&k->rpc->n_metric_streams, 1);
    return -1;
  }
  st->interval_ms = iv;
  int r = pthread_create(&st->thread, NULL, metrics_loop, st);
  if (r) {
    /* Ended here, on the I/O thread: stream_closed never comes. */
    atomic_store(&st->closed, true);
    atomic_fetch_sub(&k->rpc->n_metric_streams, 1);
    host->log(k->rpc->inst, VMH_LOG_WARN, "cannot start a metrics stream: %s",
              strerror(r));
    stream_end(st, GRPC_RESOURCE_EXHAUSTED, "cannot start a sampler thread");
    return 0;
  }
  return 0;
}

/* Health.Watch: the status now, then again on every change.  A change
 * shows as a plugin event, after which the core's health is asked again;
 * each such call holds a reference on the stream. */
struct health_ask {
  struct vmh_reply reply;
  struct stream *st;
};

static void watch_done(void *o, int code, const char *message) {
  (void)message;
  struct health_ask *h = o;
  struct stream *st = h->st;
  int status =
      !st->known_service
          ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
      : code || !st->rpc->core->ready()
          ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
          : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  pthread_mutex_lock(&st->lock);
  bool changed = status != st->last_status;
  st->last_status = status;
  pthread_mutex_unlock(&st->lock);
  if (changed) {
    Grpc__Health__V1__HealthCheckResponse m =
        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    m.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    stream_send(st, &m.base);
  }
  free(h);
  stream_unref(st);
}

static void watch_ask(struct stream *st) {
  struct health_ask *h = calloc(1, sizeof *h);
  if (!h)
    return;
  h->st = st;
  h->reply = (struct vmh_reply){
      .struct_size = sizeof h->reply, .opaque = h, .done = watch_done};
  atomic_fetch_add(&st->refs, 1);
  st->rpc->core->health(&h->reply, 0);
}

static void on_health_event(void *opaque, const struct vmh_event *ev) {
  struct stream *st = opaque;
  if (ev->type == VMH_EVENT_PLUGIN && !atomic_load(&st->closed))
    watch_ask(st);
}

static int std_health_watch(struct call *k) {
  const Grpc__Health__V1__HealthCheckRequest *m =
      IN(k, Grpc__Health__V1__HealthCheckRequest);
  struct stream *st = stream_begin(k, events_closed);
  if (!st)
    return -1;
  st->known_service = health_service_known(m->service);
  int r = CORE(k)->subscribe(on_health_event, st, &st->sub_id, 0);
  st->subscribed = r == 0;
  watch_ask(st);
  return 0;
}

/* ServerReflectionInfo: each request message as it arrives (on the I/O
 * thread, from h2server), answered at once and in order; the client's end
 * of the stream ends ours. */
/* The services served (the route table is built from them). */
static const ProtobufCServiceDescriptor *const services[] = {
    &vmhost__v1__node_service__descriptor,
    &grpc__health__v1__health__descriptor,
    &grpc__reflection__v1alpha__server_reflection__descriptor,
};
#define N_SERVICES (sizeof services / sizeof services[0])

/* End the stream now (I/O thread): no more data, no close to come. */
static void reflect_end(struct stream *st, int code, const char *why) {
  h2s_on_data(st->req, NULL, NULL);
  pthread_mutex_lock(&st->lock);
  atomic_store(&st->closed, true);
  pthread_mutex_unlock(&st->lock);
  stream_end(st, code, why);
}

/* Answer one request message: GRPC_OK or a status with *why. */
static int reflect_one(struct stream *st, struct grpc_msg *msg,
                       const char **why) {
  uint8_t *plain, *out;
  size_t len;
  int code = inflate_msg(st->rpc, st->req, msg, &plain, why);
  if (code)
    return code;
  int r = reflect_answer(services, N_SERVICES, msg->data, msg->len, &out, &len);
  free(plain);
  if (r < 0) {
    *why = "the request message does not parse";
    return GRPC_INTERNAL;
  }
  uint8_t *b = malloc(GRPC_PREFIX + len);
  if (b) {
    grpc_prefix(b, len);
    memcpy(b + GRPC_PREFIX, out, len);
    stream_push(st, b, GRPC_PREFIX + len);
  }
  free(out);
  return GRPC_OK;
}

static void reflect_data(void *opaque, const char *d, size_t n, int end) {
  struct stream *st = opaque;
  const char *why = NULL;
  int code = GRPC_OK;
  if (n) {
    uint8_t *in = realloc(st->in, st->in_len + n);
    if (!in) {
      reflect_end(st, GRPC_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    memcpy(in + st->in_len, d, n);
    st->in = in;
    st->in_len += n;
  }
  size_t off = 0, used;
  struct grpc_msg msg;
  while (!code) {
    code = grpc_msg_next(st->in + off, st->in_len - off, st->rpc->max_message,
                         &msg, &used, &why);
    if (code || !used)
      break;
    code = reflect_one(st, &msg, &why);
    off += used;
  }
  if (code) {
    reflect_end(st, code, why);
    return;
  }
  memmove(st->in, st->in + off, st->in_len - off);
  st->in_len -= off;
  if (end)
    reflect_end(st, st->in_len ? GRPC_INTERNAL : GRPC_OK,
                st->in_len ? "the stream ends inside a message" : NULL);
}

static void reflect_closed(struct stream *st) {
  h2s_on_data(st->req, NULL, NULL);
}

static int reflect_info(struct call *k) {
  struct stream *st = stream_begin(k, reflect_closed);
  if (!st)
    return -1;
  if (h2s_body_done(k->req)) {
    /* It came whole, so empty (HEADERS with END_STREAM): no questions. */
    reflect_end(st, GRPC_OK, NULL);
    return 0;
  }
  h2s_on_data(k->req, reflect_data, st);
  return 0;
}

/* ---- Dispatch -------------------------------------------------------------
 */

#define NODE "vmhost.v1.NodeService"
static const struct method methods[] = {
    {NODE, "HealthCheck", LIST, health, AUTH_READER},
    {NODE, "GetNodeInfo", ONE, node_info, AUTH_READER},
    {NODE, "ListPlugins", LIST, plugin_list, AUTH_READER},
    {NODE, "CreateVM", ONE, vm_create, AUTH_OPERATOR},
    {NODE, "GetVM", ONE, vm_get, AUTH_READER},
    {NODE, "GetVMStatus", ONE, vm_status, AUTH_READER},
    {NODE, "ListVMs", LIST, vm_list, AUTH_READER},
    {NODE, "UpdateVMLabels", ONE, rpc_vm_update_labels, AUTH_OPERATOR},
    {NODE, "StartVM", ONE, vm_start, AUTH_OPERATOR},
    {NODE, "StopVM", ONE, vm_stop, AUTH_OPERATOR},
    {NODE, "ForceStopVM", ONE, vm_force_stop, AUTH_OPERATOR},
    {NODE, "RebootVM", ONE, vm_reboot, AUTH_OPERATOR},
    {NODE, "PauseVM", ONE, vm_pause, AUTH_OPERATOR},
    {NODE, "ResumeVM", ONE, vm_resume, AUTH_OPERATOR},
    {NODE, "DeleteVM", ONE, vm_delete, AUTH_OPERATOR},
    {NODE, "GetConsole", ONE, vm_console, AUTH_OPERATOR},
    {NODE, "CreateSnapshot", ONE, snap_create, AUTH_OPERATOR},
    {NODE, "ListSnapshots", LIST, snap_list, AUTH_READER},
    {NODE, "RevertSnapshot", ONE, snap_revert, AUTH_OPERATOR},
    {NODE, "GetSnapshot", ONE, rpc_snapshot_get, AUTH_READER},
    {NODE, "DeleteSnapshot", ONE, snap_delete, AUTH_OPERATOR},
    {NODE, "GetAgent", ONE, rpc_agent_get, AUTH_READER},
    {NODE, "AgentPing", ONE, rpc_agent_ping, AUTH_READER},
    {NODE, "AgentExec", ONE, rpc_agent_exec, AUTH_ADMIN},
    {NODE, "AgentReadFile", ONE, rpc_agent_read_file, AUTH_ADMIN},
    {NODE, "AgentWriteFile", ONE, rpc_agent_write_file, AUTH_ADMIN},
    {NODE, "AgentTimeSync", ONE, rpc_agent_time_sync, AUTH_OPERATOR},
    {NODE, "AttachDisk", ONE, disk_attach, AUTH_OPERATOR},
    {NODE, "DetachDisk", ONE, disk_detach, AUTH_OPERATOR},
    {NODE, "ListPools", LIST, pool_list, AUTH_READER},
    {NODE, "GetPool", ONE, pool_get, AUTH_READER},
    {NODE, "ListVolumes", LIST, vol_list, AUTH_READER},
    {NODE, "GetVolume", ONE, vol_get, AUTH_READER},
    {NODE, "CreateVolume", ONE, vol_create, AUTH_OPERATOR},
    {NODE, "ResizeVolume", ONE, vol_resize, AUTH_OPERATOR},
    {NODE, "DeleteVolume", ONE, vol_delete, AUTH_OPERATOR},
    {NODE, "ListImages", LIST, rpc_image_list, AUTH_READER},
    {NODE, "GetImage", ONE, rpc_image_get, AUTH_READER},
    {NODE, "ImportImage", ONE, rpc_image_import, AUTH_OPERATOR},
    {NODE, "DeleteImage", ONE, rpc_image_delete, AUTH_OPERATOR},
    {NODE, "ListNetworks", LIST, net_list, AUTH_READER},
    {NODE, "GetNetwork", ONE, net_get, AUTH_READER},
    {NODE, "StreamMetrics", STREAM, stream_metrics, H2S_METRICS},
    {NODE, "WatchEvents", STREAM, watch_events, AUTH_READER},
    {NODE, "ListTokens", ONE, token_list, AUTH_ADMIN},
    {NODE, "CreateToken", ONE, token_create, AUTH_ADMIN},
    {NODE, "RevokeToken", ONE, token_revoke, AUTH_ADMIN},
    {NODE, "GetClusterStatus", ONE, cluster_status, AUTH_READER},
    {NODE, "ListOperations", LIST, op_list, AUTH_READER},
    {NODE, "GetOperation", ONE, op_get, AUTH_READER},
    {NODE, "WaitOperation", ONE, op_wait, AUTH_READER},
    {NODE, "CancelOperation", ONE, op_cancel, AUTH_OPERATOR},
    {NODE, "CreateVMAsync", ONE, vm_create, AUTH_OPERATOR},
    {NODE, "DeleteVMAsync", ONE, vm_delete, AUTH_OPERATOR},
    {NODE, "StartVMAsync", ONE, vm_start, AUTH_OPERATOR},
    {NODE, "StopVMAsync", ONE, vm_stop, AUTH_OPERATOR},
    {NODE, "RebootVMAsync", ONE, vm_reboot, AUTH_OPERATOR},
    {NODE, "CreateSnapshotAsync", ONE, snap_create, AUTH_OPERATOR},
    {NODE, "RevertSnapshotAsync", ONE, snap_revert, AUTH_OPERATOR},
    {NODE, "CreateVolumeAsync", ONE, vol_create, AUTH_OPERATOR},
    {NODE, "ResizeVolumeAsync", ONE, vol_resize, AUTH_OPERATOR},
    {NODE, "ForceStopVMAsync", ONE, vm_force_stop, AUTH_OPERATOR},
    {NODE, "PauseVMAsync", ONE, vm_pause, AUTH_OPERATOR},
    {NODE, "ResumeVMAsync", ONE, vm_resume, AUTH_OPERATOR},
    {NODE, "DeleteSnapshotAsync", ONE, snap_delete, AUTH_OPERATOR},
    {NODE, "AttachDiskAsync", ONE, disk_attach, AUTH_OPERATOR},
    {NODE, "DetachDiskAsync", ONE, disk_detach, AUTH_OPERATOR},
    {NODE, "DeleteVolumeAsync", ONE, vol_delete, AUTH_OPERATOR},
    {NODE, "ImportImageAsync", ONE, rpc_image_import, AUTH_OPERATOR},
    {NODE, "UpdateVMLabelsAsync", ONE, rpc_vm_update_labels, AUTH_OPERATOR},
    {"grpc.health.v1.Health", "Check", ONE, std_health_check, H2S_OPEN},
    {"grpc.health.v1.Health", "Watch", STREAM, std_health_watch, H2S_OPEN},
    {"grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo", BIDI,
     reflect_info, AUTH_READER},
};
#define N_METHODS (sizeof methods / sizeof methods[0])

static const struct method *method_for(const char *service, const char *name) {
  for (size_t i = 0; i < N_METHODS; i++)
    if (!strcmp(methods[i].service, service) && !strcmp(methods[i].name, name))
      return &methods[i];
  return NULL;
}

static void routes_free(struct rpc *rpc) {
  rpcmetrics_free(rpc->metrics);
  rpc->metrics = NULL;
  for (size_t i = 0; i < rpc->n_routes; i++)
    free(rpc->routes[i].path);
  free(rpc->routes);
  rpc->routes = NULL;
  rpc->n_routes = 0;
}

static void route_names(const void *opaque, size_t i, const char **service,
                        const char **method, const char **type) {
  static const char *const types[] = {[ONE] = "unary",
                                      [LIST] = "unary",
                                      [STREAM] = "server_stream",
                                      [BIDI] = "bidi_stream"};
  const struct route *rt = &((const struct rpc *)opaque)->routes[i];
  *service = rt->m ? rt->m->service : "";
  *method = rt->md->name;
  *type = rt->m ? types[rt->m->shape] : "unary";
}

/* One route per method of every service; a method of our table that no
 * service has is a bug (the .proto and this file disagree). */
static int routes_build(struct rpc *rpc) {
  size_t n = 0, found = 0;
  for (size_t s = 0; s < N_SERVICES; s++)
    n += services[s]->n_methods;
  if (!(rpc->routes = calloc(n, sizeof *rpc->routes)))
    return VMH_ENOMEM;
  for (size_t s = 0; s < N_SERVICES; s++)
    for (unsigned i = 0; i < services[s]->n_methods; i++) {
      const ProtobufCMethodDescriptor *md = &services[s]->methods[i];
      struct route *rt = &rpc->routes[rpc->n_routes++];
      rt->md = md;
      rt->m = method_for(services[s]->name, md->name);
      found += rt->m != NULL;
      if (asprintf(&rt->path, "/%s/%s", services[s]->name, md->name) < 0) {
        rt->path = NULL;
        return VMH_ENOMEM;
      }
      if (!rt->m)
        host->log(rpc->inst, VMH_LOG_DEBUG, "%s: not implemented", rt->path);
    }
  if (found != N_METHODS) {
    host->error("the method table names a method the .proto lacks");
    return VMH_EINTERNAL;
  }
  if (!(rpc->metrics = rpcmetrics_new(rpc->n_routes, route_names, rpc)))
    return VMH_ENOMEM;
  return 0;
}

static const struct route *route_find(struct rpc *rpc, const char *path) {
  for (size_t i = 0; i < rpc->n_routes; i++)
    if (!strcmp(rpc->routes[i].path, path))
      return &rpc->routes[i];
  return NULL;
}

/* h2server's refusals, in gRPC's terms (its HTTP-to-gRPC mapping). */
static int refusal_code(int status) {
  switch (status) {
    case 413:
    case 431:
      return GRPC_RESOURCE_EXHAUSTED;
    case 429:
    case 503:
      return GRPC_UNAVAILABLE;
    default:
      return GRPC_INTERNAL;
  }
}

/* Whether ct is application/grpc, alone or +proto / ;params. */
static bool grpc_ctype(const char *ct) {
  static const char g[] = "application/grpc";
  return ct && !strncmp(ct, g, sizeof g - 1) &&
         (!ct[sizeof g - 1] || ct[sizeof g - 1] == '+' ||
          ct[sizeof g - 1] == ';');
}

/* The one request message, decompressed when it must be, unpacked. */
static int unpack(struct call *k) {
  struct rpc *rpc = k->rpc;
  size_t len;
  const uint8_t *body = (const uint8_t *)h2s_body(k->req, &len);
  struct grpc_msg msg;
  const char *why;
  uint8_t *plain;
  int code = grpc_msg_one(body, len, rpc->max_message, &msg, &why);
  if (!code)
    code = inflate_msg(rpc, k->req, &msg, &plain, &why);
  if (code) {
    answer_status(k, code, why);
    return -1;
  }
  k->in = protobuf_c_message_unpack(k->rt->md->input, NULL, msg.len, msg.data);
  bool nul = k->in && pb_string_has_nul(k->rt->md->input, msg.data, msg.len);
  free(plain);
  if (!k->in) {
    answer_status(k, GRPC_INTERNAL, "the request message does not parse");
    return -1;
  }
  if (nul) {
    answer_status(k, GRPC_INVALID_ARGUMENT,
                  "a string field holds a NUL byte (not allowed in names, "
                  "paths or any other string)");
    return -1;
  }
  return 0;
}

/* h2server's watch (I/O thread): the deadline, then the request's end. */
static void on_watch(void *opaque, enum h2s_watch_event ev) {
  struct call *k = opaque;
  if (ev == H2S_WATCH_DEADLINE) {
    answer_status(k, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
    /* Its work, if still queued, is cancelled (core.h, caller_gone). */
    k->rpc->core->caller_gone(&k->reply);
    return;
  }
  if (ev == H2S_WATCH_GONE) {
    host->counter_add(k->rpc->inst, "cancelled", 1);
    k->rpc->core->caller_gone(&k->reply);
  }
  call_unref(k); /* the watch's */
}

/* The checks of the gRPC protocol before a method runs: -1 once answered
 * (an HTTP status for what is not gRPC at all, else a gRPC status). */
static int protocol_checks(struct call *k, uint64_t *deadline_us) {
  struct h2s_req *req = k->req;
  const char *proto = h2s_proto(req);
  *deadline_us = 0;
  if (strcmp(proto, "h2") && strcmp(proto, "h2c")) {
    static const char msg[] = "gRPC needs HTTP/2\n";
    take_answer(k);
    h2s_respond(req, 505, "text/plain", msg, sizeof msg - 1);
    return -1;
  }
  if (h2s_error_status(req)) {
    answer_status(k, refusal_code(h2s_error_status(req)),
                  h2s_error_message(req));
    return -1;
  }
  if (strcmp(h2s_method(req), "POST")) {
    static const char msg[] = "gRPC requests are POST\n";
    take_answer(k);
    h2s_add_header(req, "allow", "POST");
    h2s_respond(req, 405, "text/plain", msg, sizeof msg - 1);
    return -1;
  }
  if (!grpc_ctype(h2s_header(req, "content-type"))) {
    static const char msg[] = "content-type must be application/grpc\n";
    take_answer(k);
    h2s_respond(req, 415, "text/plain", msg, sizeof msg - 1);
    return -1;
  }
  const char *te = h2s_header(req, "te");
  if (!te || !strstr(te, "trailers")) {
    answer_status(k, GRPC_INTERNAL, "'te: trailers' is required");
    return -1;
  }
  const char *enc = h2s_header(req, "grpc-encoding");
  if (enc && strcmp(enc, "identity") && strcmp(enc, "gzip")) {
    answer_status(k, GRPC_UNIMPLEMENTED,
                  "grpc-encoding: only identity and gzip");
    return -1;
  }
  const char *to = h2s_header(req, "grpc-timeout");
  uint64_t us;
  if (to && grpc_timeout_us(to, &us) < 0) {
    answer_status(k, GRPC_INTERNAL, "malformed grpc-timeout");
    return -1;
  }
  if (to) {
    if (us == 0) {
      answer_status(k, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
      return -1;
    }
    *deadline_us = h2s_start_us(req) + us;
  }
  return 0;
}

static void route(struct call *k) {
  uint64_t deadline;
  if (protocol_checks(k, &deadline) < 0)
    return;
  const struct route *rt = route_find(k->rpc, h2s_path(k->req));
  if (!rt || !rt->m) {
    char msg[300];
    snprintf(msg, sizeof msg, "unknown method %.256s", h2s_path(k->req));
    answer_status(k, GRPC_UNIMPLEMENTED, msg);
    return;
  }
  k->rt = rt;
  rpcmetrics_start(k->rpc->metrics, (size_t)(rt - k->rpc->routes));
  h2s_set_route(k->req, rt->path);
  char why[512];
  int denied = h2s_authorize(k->req, rt->m->role, why, sizeof why);
  if (denied) {
    answer_status(
        k, denied == 401 ? GRPC_UNAUTHENTICATED : GRPC_PERMISSION_DENIED, why);
    return;
  }
  k->hide = h2s_role(k->req) < AUTH_OPERATOR;
  /* StartVMAsync is StartVM answering with its operation. */
  size_t nl = strlen(rt->m->name);
  k->async = nl > 5 && !strcmp(rt->m->name + nl - 5, "Async") ? VMH_ASYNC : 0;
  if (rt->m->shape != BIDI && unpack(k) < 0)
    return;
  if (rt->m->shape == ONE || rt->m->shape == LIST) {
    atomic_fetch_add(&k->refs, 1); /* the watch's */
    h2s_watch(k->req, deadline, on_watch, k);
  }
  rt->m->start(k);
}

/* h2server asks (I/O thread): bidirectional streams take their request's
 * messages as they come. */
static int early(void *opaque, const char *path) {
  const struct route *rt = route_find(opaque, path);
  return rt && rt->m && rt->m->shape == BIDI;
}

static void on_request(void *opaque, struct h2s_req *req) {
  struct rpc *rpc = opaque;
  struct call *k = call_new(rpc, req);
  if (!k) {
    status_only(req, GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  route(k);
  call_unref(k); /* the dispatcher's */
}

/* ---- Plugin ---------------------------------------------------------------
 */

static int rpc_load(const struct vmh_host *h) {
  host = h;
  return 0;
}

static void rpc_free(struct rpc *rpc) {
  h2s_conf_free(&rpc->conf);
  routes_free(rpc);
  vmpage_cache_free(rpc->frags);
  free(rpc);
}

static int rpc_open(const struct vmh_host *h, const struct vmh_instance *inst,
                    const struct vmh_config *cfg, void **ret, uint32_t flags) {
  int64_t drain, streams;
  uint64_t max;
  if (vmh_check_flags(h, "open", flags, VMH_OPEN_CHECK_ONLY) < 0)
    return VMH_EINVAL;
  struct rpc *rpc = calloc(1, sizeof *rpc);
  if (!rpc)
    return VMH_ENOMEM;
  rpc->inst = inst;
  atomic_init(&rpc->n_metric_streams, 0);
  atomic_init(&rpc->stopping, false);
  int r = h2s_conf_read(h, cfg, &rpc->conf);
  if (r == 0)
    r = h->config_int(cfg, "drain_timeout", 0, 3600, 5, &drain, 0);
  if (r == 0)
    r = h->config_size(cfg, "max_message_size", 1024, 1u << 30, 4u << 20, &max,
                       0);
  if (r == 0)
    r = h->config_int(cfg, "max_metrics_streams", 1, 1024, 16, &streams, 0);
  if (r < 0) {
    rpc_free(rpc);
    return r;
  }
  if (flags & VMH_OPEN_CHECK_ONLY) {
    rpc_free(rpc);
    *ret = NULL;
    return 0;
  }
  rpc->drain_ms = (uint32_t)drain * 1000;
  rpc->max_message = max;
  rpc->max_streams = (uint32_t)streams;
  if (!(rpc->frags = vmpage_cache_new(vm_fragment))) {
    rpc_free(rpc);
    return VMH_ENOMEM;
  }
  /* A request is one message: the body limit is the message's, and one
   * such body must fit in what a connection may hold. */
  rpc->conf.max_body_size = max + GRPC_PREFIX;
  if (rpc->conf.max_conn_buffer < rpc->conf.max_body_size)
    rpc->conf.max_conn_buffer = rpc->conf.max_body_size;
  *ret = rpc;
  return 0;
}

static int rpc_start(void *handle, const struct vmh_core *core,
                     uint32_t flags) {
  struct rpc *rpc = handle;
  int rc = vmh_check_flags(host, "start", flags, 0);
  if (rc < 0)
    return rc;
  if (core->struct_size < sizeof *core) {
    host->error("the core's service table is older than this plugin");
    return VMH_ENOTSUP;
  }
  rpc->core = core;
  int r = routes_build(rpc);
  if (r == 0)
    r = vmpage_cache_follow(rpc->frags, host, core);
  if (r < 0) {
    routes_free(rpc);
    return r;
  }
  rpc->srv = h2s_new(host, rpc->inst, &rpc->conf, on_request, rpc);
  if (!rpc->srv) {
    vmpage_cache_unfollow(rpc->frags);
    routes_free(rpc);
    host->error("out of memory");
    return VMH_ENOMEM;
  }
  h2s_set_early(rpc->srv, early);
  r = h2s_start(rpc->srv);
  if (r == 0)
    rpcmetrics_publish(rpc->metrics, host, rpc->inst);
  if (r < 0) {
    h2s_free(rpc->srv);
    rpc->srv = NULL;
    vmpage_cache_unfollow(rpc->frags);
    routes_free(rpc);
  }
  return r;
}

static void rpc_stop(void *handle, uint32_t flags) {
  (void)flags;
  struct rpc *rpc = handle;
  h2m_withdraw(host, rpc->inst);
  atomic_store(&rpc->stopping, true);
  if (rpc->srv)
    h2s_stop(rpc->srv, rpc->drain_ms);
  vmpage_cache_unfollow(rpc->frags);
}

static void rpc_close(void *handle) {
  struct rpc *rpc = handle;
  if (!rpc)
    return;
  h2s_free(rpc->srv);
  rpc_free(rpc);
}

static struct vmh_frontend_ops ops = {
    .open = rpc_open,
    .close = rpc_close,
    .start = rpc_start,
    .stop = rpc_stop,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_FRONTEND,
    .name = "rpc",
    .version = PACKAGE_VERSION,
    .description = "gRPC API over HTTP/2, TLS and mTLS (protobuf-c)",
    .load = rpc_load,
    .frontend = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
