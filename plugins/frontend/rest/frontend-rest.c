/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* frontend-rest — the REST/JSON API over HTTP/2 (and HTTP/1.1), TLS and
 * mTLS, on the shared server of plugins/frontend/common (h2server).
 *
 * Routes are the table `routes` below (and openapi.yaml beside this file).
 * Each request is matched on the I/O thread, its body and query checked
 * (strictly: unknown fields, wrong types, out of range, bad names, bad
 * JSON are 400 naming the field), then the core's asynchronous operation
 * is started with a struct call as its reply.  The reply's visitors run on
 * core workers and collect JSON under the call's lock; done() formats the
 * answer and hands it to h2s_respond(), which wakes the I/O thread.
 *
 * Errors: {"error":{"code":"NOT_FOUND","message":"…","request_id":"…"}},
 * with the status from the core's table.  Every answer carries
 * x-request-id (h2server adds it) and ends in one access-log line.
 *
 * Events: GET /api/v1/events is a text/event-stream (events.c); every
 * subscriber has a bounded buffer in h2server, and one that cannot keep up
 * is dropped (it resumes with Last-Event-ID).
 */
#include <config.h>

#define VMH_THREAD_MODEL VMH_THREAD_PARALLEL
#include <vmhost/vmhost-plugin.h>

#include <inttypes.h>
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abijson.h"
#include "agentdist.h"
#include "h2metrics.h"
#include "h2server.h"
#include "query.h"
#include "readiness.h"
#include "resources.h"
#include "rest.h"
#include "restevents.h"
#include "restmetrics.h"
#include "restops.h"
#include "vmpage.h"

static const struct vmh_host *host;
const struct vmh_host *rest_host;

/* ---- Routes and their metrics --------------------------------------------
 */

struct call;
typedef int (*route_fn)(struct call *k);

struct route {
  const char *method;
  const char *pattern; /* "{}" is a path parameter */
  route_fn fn;
  int role; /* who may: enum auth_role, H2S_OPEN or H2S_METRICS */
};

#include "rest.h"

/* Items of an answer past which freeing it gives memory back to the
 * system (malloc_trim): the tree of a list of thousands of VMs is tens of
 * MiB of small blocks that glibc would otherwise keep in the arena of the
 * core's worker thread that made them. */
#define TRIM_AFTER_ITEMS 1000

static void call_free(struct call *k) {
  bool big =
      json_is_array(k->res) && json_array_size(k->res) > TRIM_AFTER_ITEMS;
  vmpage_listing_free(k->ls);
  abij_arena_free(&k->in.arena);
  free(k->path);
  json_decref(k->body);
  json_decref(k->res);
  free(k->text);
  free(k->upload);
  pthread_mutex_destroy(&k->lock);
  free(k);
  if (big)
    malloc_trim(0);
}

/* Two hold a call: the dispatcher until the route function has returned
 * (the core may answer inline, before its operation returns, and still
 * read the arguments), and the answer. */
static void call_unref(struct call *k) {
  if (atomic_fetch_sub(&k->refs, 1) == 1)
    call_free(k);
}

/* Count the answer in the route's metrics. */
static void account(struct call *k, int status) {
  restmetrics_count(k->rest->metrics, k->route, status,
                    h2m_since_us(h2s_start_us(k->req)));
}

/* The answer when there is no memory for one. */
static const char oom_body[] =
    "{\"error\":{\"code\":\"NO_MEMORY\",\"message\":\"out of memory\"}}";

/* Answer with a JSON value (taking the reference) and free the call. */
static void answer_json(struct call *k, int status, json_t *v) {
  char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(v);
  account(k, status);
  if (s) {
    h2s_respond(k->req, status, "application/json", s, strlen(s));
  } else if (v == NULL && status == 204) {
    h2s_respond(k->req, 204, NULL, NULL, 0);
  } else {
    h2s_respond(k->req, 503, "application/json", oom_body, sizeof oom_body - 1);
  }
  free(s);
  call_unref(k);
}

/* "not_found" → "NOT_FOUND". */
static void upper(char *dst, size_t len, const char *src) {
  size_t i = 0;
  for (; src && src[i] && i + 1 < len; i++)
    dst[i] = src[i] >= 'a' && src[i] <= 'z' ? (char)(src[i] - 32) : src[i];
  dst[i] = '\0';
}

static void answer_error(struct call *k, int status, const char *code,
                         const char *message) {
  char name[64], shown[1024];
  upper(name, sizeof name, code);
  message = h2s_caller_message(k->req, message, shown, sizeof shown);
  json_t *e = json_pack("{s:{s:s,s:o,s:s}}", "error", "code", name, "message",
                        abij_str(message ? message : ""), "request_id",
                        h2s_request_id(k->req));
  answer_json(k, status, e);
}

/* A core error code as HTTP. */
static void answer_code(struct call *k, int code, const char *message) {
  const struct vmh_core *core = k->rest->core;
  answer_error(k, (int)core->http_status(code), core->error_name(code),
               message);
}

static void finish_default(struct call *k, int code, const char *message) {
  if (code) {
    answer_code(k, code, message);
    return;
  }
  json_t *v = NULL;
  if (k->shape == LIST) {
    v = json_object();
    json_object_set(v, k->key, k->res);
  } else if (k->shape == ONE) {
    v = json_incref(json_array_get(k->res, 0));
  } else {
    account(k, 200);
    h2s_respond(k->req, 200, "text/plain; version=0.0.4; charset=utf-8",
                k->text ? k->text : "", k->text_len);
    call_unref(k);
    return;
  }
  answer_json(k, v ? k->ok_status : 204, v);
}

/* What a reader is not shown: a VM's user_data (cloud-init often carries
 * passwords and keys), wherever it sits in a result. */
#define HIDDEN "(hidden: the operator role is needed)"
static void hide_secrets(json_t *v) {
  const char *key;
  json_t *x;
  size_t i;
  if (json_is_object(v)) {
    json_object_foreach(v, key, x) {
      if (!strcmp(key, "user_data") && json_is_string(x))
        json_object_set_new(v, key, json_string(HIDDEN));
      else
        hide_secrets(x);
    }
  } else if (json_is_array(v)) {
    json_array_foreach(v, i, x) hide_secrets(x);
  }
}

static void add(struct call *k, json_t *v) {
  if (k->hide)
    hide_secrets(v);
  pthread_mutex_lock(&k->lock);
  if (json_array_append_new(k->res, v) < 0)
    host->log(k->rest->inst, VMH_LOG_WARN, "a result lost (no memory)");
  pthread_mutex_unlock(&k->lock);
}

static void on_result(void *o, const char *key, json_t *v) {
  (void)key; /* a route knows what it asked for */
  add(o, v);
}

static void on_text(void *o, const char *text, size_t len) {
  struct call *k = o;
  pthread_mutex_lock(&k->lock);
  char *t = realloc(k->text, k->text_len + len + 1);
  if (t) {
    memcpy(t + k->text_len, text, len);
    k->text_len += len;
    t[k->text_len] = '\0';
    k->text = t;
  }
  pthread_mutex_unlock(&k->lock);
}

static void on_done(void *o, int code, const char *message) {
  struct call *k = o;
  /* The visitors have all returned (they come before done()). */
  k->finish(k, code, message);
}

static struct call *call_new(struct rest *rest, struct h2s_req *req) {
  struct call *k = calloc(1, sizeof *k);
  if (!k)
    return NULL;
  k->rest = rest;
  k->req = req;
  k->in.flags = ABIJ_STRICT;
  k->ok_status = 200;
  k->finish = finish_default;
  k->res = json_array();
  atomic_init(&k->refs, 2);
  pthread_mutex_init(&k->lock, NULL);
  if (!k->res) {
    call_free(k);
    return NULL;
  }
  abij_reply_init(&k->reply, k, on_result, on_text, on_done);
  return k;
}

/* ---- Request checks ------------------------------------------------------
 */

/* A refusal before the core: the route answers it and returns -1. */
static int bad(struct call *k, const char *fmt, ...)
    __attribute__((__format__(__printf__, 2, 3)));
static int bad(struct call *k, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  answer_error(k, 400, "invalid_argument", msg);
  return -1;
}

/* After a failed abij_* decoder. */
static int refused(struct call *k, int r) {
  if (r == VMH_EINVAL)
    return bad(k, "%s", k->in.err);
  answer_code(k, r, k->in.err);
  return -1;
}

/* The body as a JSON object (an empty body reads as {} when allowed). */
static int need_body(struct call *k, bool optional) {
  size_t len;
  const char *b = h2s_body(k->req, &len);
  if (!len) {
    if (optional) {
      k->body = json_object();
      return k->body ? 0 : refused(k, VMH_ENOMEM);
    }
    return bad(k, "a JSON body is required");
  }
  json_error_t e;
  k->body = json_loadb(b, len, JSON_REJECT_DUPLICATES, &e);
  if (!k->body)
    return bad(k, "malformed JSON at line %d, column %d: %s", e.line, e.column,
               e.text);
  if (!json_is_object(k->body))
    return bad(k, "the body must be a JSON object");
  return 0;
}

/* Query parameters: only `allowed` ones; "live" is a boolean. */
static int query_live(struct call *k, uint32_t *flags) {
  const char *q = h2s_query(k->req);
  *flags = 0;
  if (!q || !*q)
    return 0;
  if (!strcmp(q, "live=true") || !strcmp(q, "live=1")) {
    *flags = VMH_READ_LIVE;
    return 0;
  }
  if (!strcmp(q, "live=false") || !strcmp(q, "live=0"))
    return 0;
  return bad(k, "unknown query '%.100s' (only live=true|false)", q);
}

static int no_query(struct call *k) {
  const char *q = h2s_query(k->req);
  if (q && *q)
    return bad(k, "this resource takes no query parameters");
  return 0;
}

/* An operation's answer to ?wait=false: 202, its Location, itself. */
static void finish_accepted(struct call *k, int code, const char *message) {
  if (code) {
    answer_code(k, code, message);
    return;
  }
  json_t *op = json_incref(json_array_get(k->res, 0));
  char loc[128];
  restops_location(loc, sizeof loc,
                   json_string_value(json_object_get(op, "id")));
  h2s_add_header(k->req, "location", loc);
  answer_json(k, 202, op);
}

/* ?wait=true|false of a call that changes something: *flags gets
 * VMH_ASYNC for false, and the call answers 202 with its operation. */
static int wait_query(struct call *k, uint32_t *flags) {
  char err[256];
  *flags = 0;
  if (restops_wait_query(h2s_query(k->req), flags, err, sizeof err) < 0)
    return bad(k, "%s", err);
  if (*flags & VMH_ASYNC)
    k->finish = finish_accepted;
  return 0;
}

/* The path parameters are names, or VM ids (UUIDs). */
static int check_param(struct call *k, int i, const char *what, bool uuid) {
  const char *p = k->params[i];
  if (vmh_name_valid(p))
    return 0;
  if (uuid && strlen(p) == VMH_ID_LEN &&
      strspn(p, "0123456789abcdefABCDEF-") == VMH_ID_LEN)
    return 0;
  return bad(k, "'%s' in the path must be a name%s", what,
             uuid ? " or an id" : "");
}

/* ---- Routes: VMs ---------------------------------------------------------
 */

/* A VM's JSON as GET /api/v1/vms/{id} answers it (the fragment cache's
 * encoder). */
static char *vm_fragment(const struct vmh_vm_record *rec, bool hide,
                         size_t *len) {
  json_t *v = abij_vm(rec);
  if (v && hide)
    hide_secrets(v);
  char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
  json_decref(v);
  if (s)
    *len = strlen(s);
  return s;
}

/* GET /api/v1/vms: the core's vm_query, each VM's JSON from the
 * fragment cache, the answer their concatenation (a vmpage_listing); with
 * `limit` (or `page_token`), a page and the token of the next one. */

/* On a core thread, each VM in order. */
static void on_list_vm(void *o, const struct vmh_vm_record *rec) {
  struct call *k = ((struct abij_reply *)o)->opaque;
  vmpage_listing_add(k->ls, rec, k->hide, ",");
}

static void finish_vm_list(struct call *k, int code, const char *message) {
  struct vmpage_listing *ls = k->ls;
  if (code) {
    answer_code(k, code, message);
    return;
  }
  char token[VMPAGE_TOKEN_LEN + 1];
  if (vmpage_listing_end(ls, token) < 0) {
    answer_code(k, VMH_EINTERNAL, "cannot make a page token");
    return;
  }
  vmpage_buf_add(&ls->out, "]", 1);
  if (ls->page) {
    static const char key[] = ",\"next_page_token\":\"";
    vmpage_buf_add(&ls->out, key, sizeof key - 1);
    vmpage_buf_add(&ls->out, token, strlen(token));
    vmpage_buf_add(&ls->out, "\"", 1);
  }
  vmpage_buf_add(&ls->out, "}", 1);
  struct h2s_body *b = vmpage_buf_body(&ls->out);
  if (!b) {
    answer_json(k, 200, NULL); /* the out-of-memory answer */
    return;
  }
  account(k, 200);
  h2s_respond_body(k->req, 200, "application/json", b);
  h2s_body_unref(b);
  vmpage_cache_trim(k->rest->frags);
  call_unref(k);
}

/* ?live=, limit=, page_token=, state= (repeated or a comma list), label=
 * (k=v, k: the key with any value, k!=v, !k; repeated: all of them). */
static int list_query(struct call *k, struct vmpage_listing *ls,
                      uint32_t *flags) {
  const char *q = h2s_query(k->req), *token = NULL;
  char *cur, *key, *val, err[256];
  int r;
  uint32_t page = 0;
  if (!(ls->text = strdup(q ? q : "")))
    return refused(k, VMH_ENOMEM);
  cur = ls->text;
  while ((r = query_next(&cur, &key, &val)) != 0) {
    if (r < 0)
      return bad(k, "bad %%-escape in the query at '%.60s'", key);
    if (!strcmp(key, "live")) {
      if (strcmp(val, "true") && strcmp(val, "1") && strcmp(val, "false") &&
          strcmp(val, "0"))
        return bad(k, "'live' must be true or false");
      *flags = !strcmp(val, "true") || !strcmp(val, "1") ? VMH_READ_LIVE : 0;
    } else if (!strcmp(key, "limit")) {
      if (rest_page_limit(k, val, &page) < 0)
        return -1;
    } else if (!strcmp(key, "page_token")) {
      token = val;
    } else if (!strcmp(key, "state")) {
      for (char *st = val, *next; st; st = next) {
        if ((next = strchr(st, ',')))
          *next++ = '\0';
        uint32_t bit = vmpage_state_bit(st);
        if (!bit)
          return bad(k, "unknown state '%.40s' (one of: %s)", st,
                     vmpage_state_names());
        ls->q.states |= bit;
      }
    } else if (!strcmp(key, "label")) {
      if (vmpage_listing_select(ls, val, err, sizeof err) < 0)
        return bad(k, "%s", err);
    } else {
      return bad(k,
                 "unknown query parameter '%.60s' (live, limit, page_token, "
                 "state, label)",
                 key);
    }
  }
  if (vmpage_listing_begin(ls, page, token, err, sizeof err) < 0)
    return bad(k, "%s", err);
  return 0;
}

static int vm_list(struct call *k) {
  uint32_t f = 0;
  struct vmpage_listing *ls = vmpage_listing_new(k->rest->frags);
  if (!ls)
    return refused(k, VMH_ENOMEM);
  k->ls = ls;
  if (list_query(k, ls, &f) < 0)
    return -1;
  vmpage_buf_add(&ls->out, "{\"vms\":[", 8);
  k->reply.reply.vm = on_list_vm;
  k->finish = finish_vm_list;
  k->rest->core->vm_query(&ls->q, &k->reply.reply, f);
  return 0;
}

static int vm_create(struct call *k) {
  struct vmh_vm_spec spec;
  uint32_t f;
  int r;
  if (wait_query(k, &f) < 0 || need_body(k, false) < 0)
    return -1;
  /* "start" (default true) is ours, not the spec's. */
  json_t *st = json_object_get(k->body, "start");
  if (st && !json_is_boolean(st))
    return bad(k, "'start' must be true or false");
  bool start = !st || json_is_true(st);
  json_t *spec_obj = json_deep_copy(k->body);
  if (!spec_obj)
    return refused(k, VMH_ENOMEM);
  json_object_del(spec_obj, "start");
  if ((r = abij_spec_in(&k->in, spec_obj, "", &spec)) < 0) {
    json_decref(spec_obj);
    return refused(k, r);
  }
  k->shape = ONE;
  k->ok_status = 201;
  k->rest->core->vm_create(&spec, &k->reply.reply,
                           f | (start ? 0 : VMH_CREATE_NO_START));
  json_decref(spec_obj);
  return 0;
}

static int vm_get(struct call *k) {
  uint32_t f;
  if (check_param(k, 0, "vm", true) < 0 || query_live(k, &f) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->vm_get(k->params[0], &k->reply.reply, f);
  return 0;
}

static int vm_delete(struct call *k) {
  uint32_t f;
  if (check_param(k, 0, "vm", true) < 0 || wait_query(k, &f) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->vm_delete(k->params[0], &k->reply.reply, f);
  return 0;
}

static int vm_action(struct call *k, uint32_t action) {
  static const char *const stop_keys[] = {"force", "timeout_s", NULL};
  static const char *const none[] = {NULL};
  uint32_t force = 0, timeout = 0, f;
  int r;
  if (check_param(k, 0, "vm", true) < 0 || wait_query(k, &f) < 0 ||
      need_body(k, true) < 0)
    return -1;
  bool stop = action == VMH_ACTION_STOP;
  if ((r = abij_only_keys(&k->in, k->body, "", stop ? stop_keys : none)) < 0 ||
      (r = abij_bool(&k->in, k->body, "", "force", &force)) < 0 ||
      (r = abij_u32(&k->in, k->body, "", "timeout_s", &timeout)) < 0)
    return refused(k, r);
  if (timeout > 3600)
    return bad(k, "'timeout_s' must be an integer from 0 to 3600");
  k->shape = ONE;
  k->rest->core->vm_action(k->params[0], action, timeout, &k->reply.reply,
                           f | (force ? VMH_ACTION_FORCE : 0));
  return 0;
}

static int vm_start(struct call *k) {
  return vm_action(k, VMH_ACTION_START);
}
static int vm_stop(struct call *k) {
  return vm_action(k, VMH_ACTION_STOP);
}
static int vm_reboot(struct call *k) {
  return vm_action(k, VMH_ACTION_REBOOT);
}
static int vm_pause(struct call *k) {
  return vm_action(k, VMH_ACTION_PAUSE);
}
static int vm_resume(struct call *k) {
  return vm_action(k, VMH_ACTION_RESUME);
}

static int vm_console(struct call *k) {
  if (check_param(k, 0, "vm", true) < 0 || no_query(k) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->vm_console(k->params[0], &k->reply.reply, 0);
  return 0;
}

static int snap_list(struct call *k) {
  if (check_param(k, 0, "vm", true) < 0 ||
      rest_named_list(k, VMPAGE_SNAPSHOTS, "snapshots", k->params[0]) < 0)
    return -1;
  k->rest->core->snapshot_list(k->params[0], &k->reply.reply, 0);
  return 0;
}

static int snap_create(struct call *k) {
  static const char *const keys[] = {"name", "quiesce", NULL};
  const char *name;
  uint32_t f, quiesce;
  int r;
  if (check_param(k, 0, "vm", true) < 0 || wait_query(k, &f) < 0 ||
      need_body(k, true) < 0)
    return -1;
  if ((r = abij_only_keys(&k->in, k->body, "", keys)) < 0 ||
      (r = abij_name(&k->in, k->body, "", "name", &name)) < 0)
    return refused(k, r);
  if (rest_quiesce_flags(k, &quiesce) < 0)
    return -1;
  k->shape = ONE;
  k->ok_status = 201;
  k->rest->core->snapshot_create(k->params[0], name, &k->reply.reply,
                                 f | quiesce);
  return 0;
}

int rest_snap_id(struct call *k) {
  const char *p = k->params[1];
  if (!*p || strlen(p) > 128 ||
      strspn(p,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
             "-_.") != strlen(p))
    return bad(k, "'snapshot' in the path is not a snapshot id");
  return 0;
}

static int snap_revert(struct call *k) {
  uint32_t f;
  if (check_param(k, 0, "vm", true) < 0 || rest_snap_id(k) < 0 ||
      wait_query(k, &f) < 0 || need_body(k, true) < 0)
    return -1;
  if (json_object_size(k->body))
    return bad(k, "unknown field '%s'",
               json_object_iter_key(json_object_iter(k->body)));
  k->shape = ONE;
  k->rest->core->snapshot_revert(k->params[0], k->params[1], &k->reply.reply,
                                 f);
  return 0;
}

static int snap_delete(struct call *k) {
  uint32_t f;
  if (check_param(k, 0, "vm", true) < 0 || rest_snap_id(k) < 0 ||
      wait_query(k, &f) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->snapshot_delete(k->params[0], k->params[1], &k->reply.reply,
                                 f);
  return 0;
}

static int disk_attach(struct call *k) {
  struct vmh_disk d;
  uint32_t f;
  int r;
  if (check_param(k, 0, "vm", true) < 0 || wait_query(k, &f) < 0 ||
      need_body(k, false) < 0)
    return -1;
  if ((r = abij_disk_in(&k->in, k->body, "", &d)) < 0)
    return refused(k, r);
  k->shape = ONE;
  k->rest->core->disk_attach(k->params[0], &d, &k->reply.reply, f);
  return 0;
}

static int disk_detach(struct call *k) {
  uint32_t f;
  if (check_param(k, 0, "vm", true) < 0 ||
      check_param(k, 1, "disk", false) < 0 || wait_query(k, &f) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->disk_detach(k->params[0], k->params[1], &k->reply.reply, f);
  return 0;
}

/* ---- Routes: storage and networks ----------------------------------------
 */

static int pool_list(struct call *k) {
  if (rest_named_list(k, VMPAGE_POOLS, "pools", NULL) < 0)
    return -1;
  k->rest->core->pool_list(&k->reply.reply, 0);
  return 0;
}

static int pool_get(struct call *k) {
  if (check_param(k, 0, "pool", false) < 0 || no_query(k) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->pool_get(k->params[0], &k->reply.reply, 0);
  return 0;
}

static int vol_list(struct call *k) {
  if (check_param(k, 0, "pool", false) < 0 ||
      rest_named_list(k, VMPAGE_VOLUMES, "volumes", k->params[0]) < 0)
    return -1;
  k->rest->core->volume_list(k->params[0], &k->reply.reply, 0);
  return 0;
}

static int vol_create(struct call *k) {
  struct vmh_volume_spec spec;
  uint32_t f;
  int r;
  if (check_param(k, 0, "pool", false) < 0 || wait_query(k, &f) < 0 ||
      need_body(k, false) < 0)
    return -1;
  if ((r = abij_volume_spec_in(&k->in, k->body, "", &spec)) < 0)
    return refused(k, r);
  k->shape = ONE;
  k->ok_status = 201;
  k->rest->core->volume_create(k->params[0], &spec, &k->reply.reply, f);
  return 0;
}

static int vol_get(struct call *k) {
  if (check_param(k, 0, "pool", false) < 0 ||
      check_param(k, 1, "volume", false) < 0 || no_query(k) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->volume_get(k->params[0], k->params[1], &k->reply.reply, 0);
  return 0;
}

static int vol_resize(struct call *k) {
  static const char *const keys[] = {"size", "shrink", NULL};
  uint64_t size;
  uint32_t shrink, f;
  int r;
  if (check_param(k, 0, "pool", false) < 0 ||
      check_param(k, 1, "volume", false) < 0 || wait_query(k, &f) < 0 ||
      need_body(k, false) < 0)
    return -1;
  if ((r = abij_only_keys(&k->in, k->body, "", keys)) < 0 ||
      (r = abij_size(&k->in, k->body, "", "size", 0, INT64_MAX, &size)) < 0 ||
      (r = abij_bool(&k->in, k->body, "", "shrink", &shrink)) < 0)
    return refused(k, r);
  if (!json_object_get(k->body, "size") || size == 0)
    return bad(k, "'size' is required: the new size in bytes, above 0");
  k->shape = ONE;
  k->rest->core->volume_resize(k->params[0], k->params[1], size,
                               &k->reply.reply,
                               f | (shrink ? VMH_RESIZE_SHRINK : 0));
  return 0;
}

static int vol_delete(struct call *k) {
  uint32_t f;
  if (check_param(k, 0, "pool", false) < 0 ||
      check_param(k, 1, "volume", false) < 0 || wait_query(k, &f) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->volume_delete(k->params[0], k->params[1], &k->reply.reply, f);
  return 0;
}

/* ---- Routes: operations (restops.h) ---------------------------------------
 */

static int check_op_id(struct call *k) {
  const char *p = k->params[0];
  if (strlen(p) == VMH_ID_LEN && strspn(p, "0123456789abcdef-") == VMH_ID_LEN)
    return 0;
  return bad(k,
             "'operation' in the path must be an operation id (a "
             "lower-case UUID)");
}

static int op_list(struct call *k) {
  struct restops_filter f;
  char err[256];
  if (restops_list_query(h2s_query(k->req), &f, err, sizeof err) < 0)
    return bad(k, "%s", err);
  k->shape = LIST;
  k->key = "operations";
  k->rest->core->operation_list(f.vm[0] ? f.vm : NULL, f.status, f.limit,
                                &k->reply.reply, 0);
  return 0;
}

static int op_get(struct call *k) {
  if (check_op_id(k) < 0 || no_query(k) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->operation_get(k->params[0], &k->reply.reply, 0);
  return 0;
}

static int op_wait(struct call *k) {
  uint32_t ms;
  char err[256];
  if (check_op_id(k) < 0)
    return -1;
  if (restops_wait_timeout(h2s_query(k->req), &ms, err, sizeof err) < 0)
    return bad(k, "%s", err);
  k->shape = ONE;
  k->rest->core->operation_wait(k->params[0], ms, &k->reply.reply, 0);
  return 0;
}

static int op_cancel(struct call *k) {
  if (check_op_id(k) < 0 || no_query(k) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->operation_cancel(k->params[0], &k->reply.reply, 0);
  return 0;
}

static int net_list(struct call *k) {
  if (rest_named_list(k, VMPAGE_NETWORKS, "networks", NULL) < 0)
    return -1;
  k->rest->core->network_list(&k->reply.reply, 0);
  return 0;
}

static int net_get(struct call *k) {
  if (check_param(k, 0, "network", false) < 0 || no_query(k) < 0)
    return -1;
  k->shape = ONE;
  k->rest->core->network_get(k->params[0], &k->reply.reply, 0);
  return 0;
}

/* ---- Routes: host, daemon ------------------------------------------------
 */

/* GET /api/v1/host itself: the record written as text straight from the
 * core's struct (abij_host_text, the bytes the tree would give), or into
 * the tree when the text cannot be. */
static void on_host_text(void *o, const struct vmh_host_info *h) {
  struct call *k = ((struct abij_reply *)o)->opaque;
  if (k->text || abij_host_text(h, &k->text, &k->text_len) < 0)
    add(k, abij_host(h));
}

static void finish_host(struct call *k, int code, const char *message) {
  if (code || !k->text) {
    finish_default(k, code, message);
    return;
  }
  rest_answer_bytes(k, 200, "application/json", k->text, k->text_len);
}

static int host_get(struct call *k) {
  if (no_query(k) < 0)
    return -1;
  k->shape = ONE;
  if (k->finish == finish_default) { /* not hardware, metrics */
    k->reply.reply.host = on_host_text;
    k->finish = finish_host;
  }
  k->rest->core->host_info(&k->reply.reply, 0);
  return 0;
}

/* /host/hardware and /host/metrics: parts of the host record. */
static void finish_host_part(struct call *k, int code, const char *message,
                             const char *const *keys) {
  if (code) {
    answer_code(k, code, message);
    return;
  }
  json_t *h = json_array_get(k->res, 0), *o = json_object();
  for (size_t i = 0; o && h && keys[i]; i++)
    json_object_set(o, keys[i], json_object_get(h, keys[i]));
  answer_json(k, 200, o);
}

static void finish_hardware(struct call *k, int code, const char *message) {
  static const char *const keys[] = {"arch",      "cpu_model",   "cpu_sockets",
                                     "cpu_cores", "cpu_threads", "memory_total",
                                     NULL};
  finish_host_part(k, code, message, keys);
}

static void finish_host_metrics(struct call *k, int code, const char *message) {
  static const char *const keys[] = {
      "memory_total", "memory_available", "uptime_s", "n_vms",
      "cpu_threads",  "sample",           "history",  NULL};
  json_t *h = json_array_get(k->res, 0);
  /* The telemetry joins the host record, whose keys are then taken. */
  if (code == 0 && h && (code = rest_host_samples(k->rest->core, h)) != 0)
    message = "cannot read the host samples";
  finish_host_part(k, code, message, keys);
}

/* (finish is set before the core call: the answer may come inline.) */
static int host_hardware(struct call *k) {
  k->finish = finish_hardware;
  return host_get(k);
}

static int host_metrics(struct call *k) {
  k->finish = finish_host_metrics;
  return host_get(k);
}

/* GET /api/v1/cluster: the cluster plugin's status document, through the
 * core (vmh_core.plugin_status), so that this front-end knows nothing of
 * that plugin but its name. */
static void finish_cluster(struct call *k, int code, const char *message) {
  if (code) {
    answer_code(k, code, message);
    return;
  }
  /* One document per cluster instance: the first is the node's. */
  json_t *v = json_loadb(k->text ? k->text : "", k->text_len,
                         JSON_DISABLE_EOF_CHECK, NULL);
  if (!json_is_object(v)) {
    json_decref(v);
    answer_code(k, VMH_EINTERNAL, "the cluster status is not a JSON object");
    return;
  }
  answer_json(k, 200, v);
}

static int cluster_get(struct call *k) {
  if (no_query(k) < 0)
    return -1;
  if (!VMH_HAS_FIELD(k->rest->core, plugin_status)) {
    answer_code(k, VMH_ENOTSUP, "this vmhostd cannot report a cluster status");
    return -1;
  }
  k->shape = TEXT;
  k->finish = finish_cluster;
  k->rest->core->plugin_status("cluster", &k->reply.reply, 0);
  return 0;
}

static int host_resources(struct call *k) {
  if (no_query(k) < 0)
    return -1;
  int code;
  json_t *v = rest_host_resources(k->rest->core, &code);
  if (v)
    answer_json(k, 200, v);
  else
    answer_code(k, code,
                code == VMH_ENOTSUP ? "the core has no host_resources"
                                    : "out of memory");
  return 0;
}

/* The worst check's status names the whole. */
static json_t *health_json(struct call *k) {
  static const char *const order[] = {"ok", "degraded", "failed"};
  size_t worst = 0, i;
  json_t *c;
  json_array_foreach(k->res, i, c) {
    const char *st = json_string_value(json_object_get(c, "status"));
    for (size_t j = worst + 1; st && j < 3; j++)
      if (!strcmp(st, order[j]))
        worst = j;
  }
  return json_pack("{s:s,s:O}", "status", order[worst], "checks", k->res);
}

static void finish_health(struct call *k, int code, const char *message) {
  /* A failing check is an answer, not an error of the request. */
  if (!json_array_size(k->res)) {
    answer_code(k, code ? code : VMH_EINTERNAL, message);
    return;
  }
  answer_json(k, 200, health_json(k));
}

/* Readiness: the core serves (not starting or draining) and no instance it
 * needs has failed.  The core's health answers an error exactly then; a
 * degraded optional instance leaves the node ready.  The detail is behind
 * the reader role (GET /api/v1/host/health). */
static void answer_readyz(struct call *k, bool ready) {
  static const char yes[] = "{\"status\":\"ready\"}",
                    no[] = "{\"status\":\"not_ready\"}";
  rest_answer_bytes(k, ready ? 200 : 503, "application/json", ready ? yes : no,
                    ready ? sizeof yes - 1 : sizeof no - 1);
}

static void finish_readyz(struct call *k, int code, const char *message) {
  (void)message;
  bool ready = code == 0 && k->rest->core->ready();
  readiness_note(&k->rest->ready, ready);
  answer_readyz(k, ready);
}

static int start_health(struct call *k) {
  if (no_query(k) < 0)
    return -1;
  k->rest->core->health(&k->reply.reply, 0);
  return 0;
}

static int health(struct call *k) {
  k->finish = finish_health;
  return start_health(k);
}

/* Liveness: this front-end's loop answers and the core's worker pool
 * takes work, whatever the backends do (a probe that restarts vmhostd
 * cannot bring libvirtd back, but can unstick a wedged pool). */
static void finish_healthz(struct call *k, int code, const char *message) {
  if (!code) {
    answer_json(k, 200, json_pack("{s:s}", "status", "alive"));
    return;
  }
  answer_json(k, 503,
              json_pack("{s:s,s:s}", "status", "not_alive", "reason",
                        message ? message : k->rest->core->error_name(code)));
}

static int healthz(struct call *k) {
  if (no_query(k) < 0)
    return -1;
  k->finish = finish_healthz;
  k->rest->core->health(&k->reply.reply, VMH_HEALTH_LIVENESS);
  return 0;
}

/* A probe within a second of a check that said ready is answered from
 * that (readiness.h): no core worker per probe. */
static int readyz(struct call *k) {
  if (no_query(k) < 0)
    return -1;
  if (readiness_known(&k->rest->ready, k->rest->core)) {
    answer_readyz(k, true);
    return 0;
  }
  k->finish = finish_readyz;
  return start_health(k);
}

static int plugin_list(struct call *k) {
  if (no_query(k) < 0)
    return -1;
  k->shape = LIST;
  k->key = "plugins";
  k->rest->core->plugin_list(&k->reply.reply, 0);
  return 0;
}

/* The core's metrics (with ours, restmetrics.c, among the plugins'). */
static void finish_metrics(struct call *k, int code, const char *message) {
  if (code) {
    answer_code(k, code, message);
    return;
  }
  account(k, 200);
  h2s_respond(k->req, 200, "text/plain; version=0.0.4; charset=utf-8",
              k->text ? k->text : "", k->text ? k->text_len : 0);
  call_unref(k);
}

static int metrics(struct call *k) {
  if (no_query(k) < 0)
    return -1;
  k->shape = TEXT;
  k->finish = finish_metrics;
  k->rest->core->metrics(&k->reply.reply, 0);
  return 0;
}

/* ---- Routes: certificates ------------------------------------------------
 */

static json_t *cert_json(const struct h2s_cert_info *ci) {
  return json_pack("{s:o,s:o,s:o,s:s,s:I,s:I,s:b,s:o}", "subject",
                   abij_str(ci->subject), "issuer", abij_str(ci->issuer),
                   "names", abij_str(ci->names), "sha256", ci->sha256,
                   "not_before", (json_int_t)ci->not_before, "not_after",
                   (json_int_t)ci->not_after, "self_signed", ci->self_signed,
                   "path", abij_str(ci->cert_path));
}

static int answer_cert(struct call *k) {
  struct h2s_cert_info ci;
  int r = h2s_cert_info(k->rest->srv, &ci);
  if (r == VMH_ENOENT)
    answer_error(k, 404, "not_found", "no TLS listener: no certificate");
  else if (r)
    answer_code(k, r, "cannot read the certificate");
  else
    answer_json(k, 200, cert_json(&ci));
  return 0;
}

static int cert_get(struct call *k) {
  if (no_query(k) < 0)
    return -1;
  return answer_cert(k);
}

static int cert_generate(struct call *k) {
  char err[512];
  if (no_query(k) < 0 || need_body(k, true) < 0)
    return -1;
  if (json_object_size(k->body))
    return bad(k, "this request takes no fields");
  int r = h2s_cert_generate(k->rest->srv, err, sizeof err);
  if (r == VMH_ENOENT)
    answer_error(k, 404, "not_found", err);
  else if (r)
    answer_code(k, r, err);
  else
    answer_cert(k);
  return 0;
}

static int cert_upload(struct call *k) {
  static const char *const keys[] = {"cert", "key", NULL};
  const char *cert, *key;
  char err[512];
  int r;
  if (no_query(k) < 0 || need_body(k, false) < 0)
    return -1;
  if ((r = abij_only_keys(&k->in, k->body, "", keys)) < 0 ||
      (r = abij_string(&k->in, k->body, "", "cert", &cert)) < 0 ||
      (r = abij_string(&k->in, k->body, "", "key", &key)) < 0)
    return refused(k, r);
  if (!cert || !key)
    return bad(k, "'cert' and 'key' (PEM text) are required");
  r = h2s_cert_install(k->rest->srv, cert, strlen(cert), key, strlen(key), err,
                       sizeof err);
  if (r == VMH_EINVAL)
    return bad(k, "%s", err);
  if (r == VMH_ENOENT)
    answer_error(k, 404, "not_found", err);
  else if (r)
    answer_code(k, r, err);
  else
    answer_cert(k);
  return 0;
}

static int cert_restore(struct call *k) {
  char err[512];
  if (no_query(k) < 0 || need_body(k, true) < 0)
    return -1;
  if (json_object_size(k->body))
    return bad(k, "this request takes no fields");
  int r = h2s_cert_restore(k->rest->srv, err, sizeof err);
  if (r == VMH_EINVAL)
    return bad(k, "%s", err);
  if (r == VMH_ENOENT)
    answer_error(k, 404, "not_found", err);
  else if (r)
    answer_code(k, r, err);
  else
    answer_cert(k);
  return 0;
}

/* ---- Routes: bearer tokens (admin) -----------------------------------------
 * The store is a small file (authtoken.h); its writes are rare and
 * admin-only, done here like the certificate's. */

static json_t *token_json(const struct auth_token *t) {
  return json_pack("{s:s,s:s,s:I}", "name", t->name, "role",
                   auth_role_name(t->role), "created", (json_int_t)t->created);
}

static int token_list(struct call *k) {
  struct auth_token *t = NULL;
  size_t n = 0;
  char err[512];
  if (no_query(k) < 0)
    return -1;
  int r = auth_token_list(h2s_tokens(k->rest->srv), &t, &n, err, sizeof err);
  if (r < 0) {
    answer_code(k, r, err);
    return 0;
  }
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++)
    json_array_append_new(a, token_json(&t[i]));
  free(t);
  answer_json(k, 200, a ? json_pack("{s:o}", "tokens", a) : NULL);
  return 0;
}

static int token_create(struct call *k) {
  static const char *const keys[] = {"name", "role", NULL};
  const char *name, *role_name;
  char err[512], secret[AUTH_SECRET_LEN];
  int r;
  if (no_query(k) < 0 || need_body(k, false) < 0)
    return -1;
  if ((r = abij_only_keys(&k->in, k->body, "", keys)) < 0 ||
      (r = abij_string(&k->in, k->body, "", "name", &name)) < 0 ||
      (r = abij_string(&k->in, k->body, "", "role", &role_name)) < 0)
    return refused(k, r);
  if (!name || !role_name)
    return bad(k, "'name' and 'role' (reader, operator, admin) are required");
  int role = auth_role_parse(role_name);
  if (role < 0)
    return bad(k, "role: reader, operator or admin, not '%s'", role_name);
  r = auth_token_create(h2s_tokens(k->rest->srv), name, role, secret, err,
                        sizeof err);
  if (r == VMH_EINVAL)
    return bad(k, "%s", err);
  if (r < 0) {
    answer_code(k, r, err);
    return 0;
  }
  struct auth_token t = {.role = role, .created = (int64_t)time(NULL)};
  snprintf(t.name, sizeof t.name, "%s", name);
  json_t *o = token_json(&t);
  if (o)
    json_object_set_new(o, "token", json_string(secret));
  host->log(k->rest->inst, VMH_LOG_INFO, "token '%s' (%s) created by %s", name,
            role_name, h2s_who(k->req));
  answer_json(k, 201, o);
  return 0;
}

static int token_revoke(struct call *k) {
  char err[512];
  if (no_query(k) < 0)
    return -1;
  int r = auth_token_revoke(h2s_tokens(k->rest->srv), k->params[0], err,
                            sizeof err);
  if (r < 0) {
    answer_code(k, r, err);
    return 0;
  }
  host->log(k->rest->inst, VMH_LOG_INFO, "token '%s' revoked by %s",
            k->params[0], h2s_who(k->req));
  answer_json(k, 204, NULL);
  return 0;
}

/* ---- Routes: events (events.c) ---------------------------------------------
 */

static int events(struct call *k) {
  return rest_events(k, k->rest->events);
}

/* ---- For the routes in other files (rest.h) ----------------------------- */

int rest_bad(struct call *k, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return bad(k, "%s", msg);
}
int rest_refused(struct call *k, int r) {
  return refused(k, r);
}
int rest_need_body(struct call *k, bool optional) {
  return need_body(k, optional);
}
int rest_wait_query(struct call *k, uint32_t *flags) {
  return wait_query(k, flags);
}
int rest_no_query(struct call *k) {
  return no_query(k);
}
int rest_query_live(struct call *k, uint32_t *flags) {
  return query_live(k, flags);
}
int rest_check_param(struct call *k, int i, const char *what, bool uuid) {
  return check_param(k, i, what, uuid);
}
void rest_answer_error(struct call *k, int status, const char *code,
                       const char *message) {
  answer_error(k, status, code, message);
}
void rest_answer_code(struct call *k, int code, const char *message) {
  answer_code(k, code, message);
}
void rest_answer_json(struct call *k, int status, json_t *v) {
  answer_json(k, status, v);
}
void rest_answer_bytes(struct call *k, int status, const char *type,
                       const void *data, size_t len) {
  account(k, status);
  h2s_respond(k->req, status, type, data, len);
  call_unref(k);
}
void rest_add(struct call *k, json_t *v) {
  add(k, v);
}
void rest_call_ref(struct call *k) {
  atomic_fetch_add(&k->refs, 1);
}
void rest_call_unref(struct call *k) {
  call_unref(k);
}
void rest_account(struct call *k, int status) {
  account(k, status);
}

/* ---- Dispatch ------------------------------------------------------------
 */

static const struct route routes[] = {
    {"GET", "/api/v1/host", host_get, AUTH_READER},
    {"GET", "/api/v1/host/health", health, AUTH_READER},
    {"GET", "/api/v1/host/metrics", host_metrics, AUTH_READER},
    {"GET", "/api/v1/host/hardware", host_hardware, AUTH_READER},
    {"GET", "/api/v1/host/resources", host_resources, AUTH_READER},
    {"GET", "/api/v1/plugins", plugin_list, AUTH_READER},
    {"GET", "/api/v1/cluster", cluster_get, AUTH_READER},
    {"GET", "/api/v1/vms", vm_list, AUTH_READER},
    {"POST", "/api/v1/vms", vm_create, AUTH_OPERATOR},
    {"GET", "/api/v1/vms/{}", vm_get, AUTH_READER},
    {"DELETE", "/api/v1/vms/{}", vm_delete, AUTH_OPERATOR},
    {"PATCH", "/api/v1/vms/{}", rest_vm_patch, AUTH_OPERATOR},
    {"POST", "/api/v1/vms/{}/start", vm_start, AUTH_OPERATOR},
    {"POST", "/api/v1/vms/{}/stop", vm_stop, AUTH_OPERATOR},
    {"POST", "/api/v1/vms/{}/reboot", vm_reboot, AUTH_OPERATOR},
    {"POST", "/api/v1/vms/{}/pause", vm_pause, AUTH_OPERATOR},
    {"POST", "/api/v1/vms/{}/resume", vm_resume, AUTH_OPERATOR},
    {"GET", "/api/v1/vms/{}/console", vm_console, AUTH_OPERATOR},
    {"GET", "/api/v1/vms/{}/snapshots", snap_list, AUTH_READER},
    {"POST", "/api/v1/vms/{}/snapshots", snap_create, AUTH_OPERATOR},
    {"POST", "/api/v1/vms/{}/snapshots/{}/revert", snap_revert, AUTH_OPERATOR},
    {"GET", "/api/v1/vms/{}/snapshots/{}", rest_snap_get, AUTH_READER},
    {"DELETE", "/api/v1/vms/{}/snapshots/{}", snap_delete, AUTH_OPERATOR},
    {"POST", "/api/v1/vms/{}/disks", disk_attach, AUTH_OPERATOR},
    {"DELETE", "/api/v1/vms/{}/disks/{}", disk_detach, AUTH_OPERATOR},
    {"GET", "/api/v1/vms/{}/agent", rest_agent_show, AUTH_READER},
    {"POST", "/api/v1/vms/{}/agent/ping", rest_agent_ping, AUTH_READER},
    {"POST", "/api/v1/vms/{}/agent/exec", rest_agent_exec, AUTH_ADMIN},
    {"GET", "/api/v1/vms/{}/agent/files", rest_agent_file_get, AUTH_ADMIN},
    {"PUT", "/api/v1/vms/{}/agent/files", rest_agent_file_put, AUTH_ADMIN},
    {"POST", "/api/v1/vms/{}/agent/time-sync", rest_agent_time_sync,
     AUTH_OPERATOR},
    {"GET", "/api/v1/storage/pools", pool_list, AUTH_READER},
    {"GET", "/api/v1/storage/pools/{}", pool_get, AUTH_READER},
    {"GET", "/api/v1/storage/pools/{}/volumes", vol_list, AUTH_READER},
    {"POST", "/api/v1/storage/pools/{}/volumes", vol_create, AUTH_OPERATOR},
    {"GET", "/api/v1/storage/pools/{}/volumes/{}", vol_get, AUTH_READER},
    {"PATCH", "/api/v1/storage/pools/{}/volumes/{}", vol_resize, AUTH_OPERATOR},
    {"DELETE", "/api/v1/storage/pools/{}/volumes/{}", vol_delete,
     AUTH_OPERATOR},
    {"GET", "/api/v1/storage/pools/{}/images", rest_image_list, AUTH_READER},
    {"POST", "/api/v1/storage/pools/{}/images", rest_image_import,
     AUTH_OPERATOR},
    {"GET", "/api/v1/storage/pools/{}/images/{}", rest_image_get, AUTH_READER},
    {"DELETE", "/api/v1/storage/pools/{}/images/{}", rest_image_delete,
     AUTH_OPERATOR},
    {"GET", "/api/v1/operations", op_list, AUTH_READER},
    {"GET", "/api/v1/operations/{}", op_get, AUTH_READER},
    {"GET", "/api/v1/operations/{}/wait", op_wait, AUTH_READER},
    {"DELETE", "/api/v1/operations/{}", op_cancel, AUTH_OPERATOR},
    {"GET", "/api/v1/networks", net_list, AUTH_READER},
    {"GET", "/api/v1/networks/{}", net_get, AUTH_READER},
    {"GET", "/api/v1/events", events, AUTH_READER},
    {"GET", "/api/v1/settings/certificates", cert_get, AUTH_READER},
    {"POST", "/api/v1/settings/certificates/generate", cert_generate,
     AUTH_ADMIN},
    {"POST", "/api/v1/settings/certificates/upload", cert_upload, AUTH_ADMIN},
    {"POST", "/api/v1/settings/certificates/restore", cert_restore, AUTH_ADMIN},
    {"GET", "/api/v1/settings/tokens", token_list, AUTH_ADMIN},
    {"POST", "/api/v1/settings/tokens", token_create, AUTH_ADMIN},
    {"DELETE", "/api/v1/settings/tokens/{}", token_revoke, AUTH_ADMIN},
    {"GET", "/api/v1/agent/version", agent_version, H2S_OPEN},
    {"GET", "/api/v1/agent/install.sh", agent_script, H2S_OPEN},
    {"GET", "/api/v1/agent/linux/{}.deb", agent_deb, H2S_OPEN},
    {"GET", "/api/v1/agent/linux/{}", agent_binary, H2S_OPEN},
    {"GET", "/metrics", metrics, H2S_METRICS},
    {"GET", "/healthz", healthz, H2S_OPEN},
    {"GET", "/readyz", readyz, H2S_OPEN},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* The length of each pattern's literal head (up to its first "{}"): a
 * path that does not start with it cannot match, and a pattern that is
 * all head matches only itself.  Made at load. */
static size_t heads[N_ROUTES];
static bool match(const char *pattern, char *buf, const char **params);

static void heads_init(void) {
  for (size_t i = 0; i < N_ROUTES; i++)
    heads[i] = strcspn(routes[i].pattern, "{");
}

/* match() for route i, after the cheap test of its head. */
static bool match_route(size_t i, char *path, const char **params) {
  const char *p = routes[i].pattern;
  if (strncmp(p, path, heads[i]))
    return false;
  if (!p[heads[i]])
    return !path[heads[i]];
  return match(p, path, params);
}

static void route_names(size_t i, const char **method, const char **pattern) {
  *method = routes[i].method;
  *pattern = routes[i].pattern;
}

/* Whether path matches pattern; the {} segments go to params (pointing
 * into buf, a copy of path split at its slashes).  "{}SUFFIX" takes a
 * segment that ends in SUFFIX after at least one character; the param
 * keeps the suffix. */
static bool match(const char *pattern, char *buf, const char **params) {
  const char *p = pattern;
  char *s = buf;
  int np = 0;
  while (*p && *s) {
    if (*p != '/' || *s != '/')
      return false;
    p++, s++;
    char *end = strchr(s, '/');
    size_t slen = end ? (size_t)(end - s) : strlen(s);
    if (!strncmp(p, "{}", 2)) {
      const char *pe = strchr(p + 2, '/');
      size_t sufl = pe ? (size_t)(pe - p - 2) : strlen(p + 2);
      if (slen <= sufl || np == 3 || strncmp(s + slen - sufl, p + 2, sufl))
        return false;
      params[np++] = s;
      p += 2 + sufl;
    } else {
      const char *pe = strchr(p, '/');
      size_t plen = pe ? (size_t)(pe - p) : strlen(p);
      if (plen != slen || strncmp(p, s, slen))
        return false;
      p += plen;
    }
    s += slen;
  }
  return !*p && !*s;
}

/* End each param at its slash. */
static void cut(char *buf, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (buf[i] == '/')
      buf[i] = '\0';
}

/* h2server's watch (I/O thread): the request's end. */
static void on_watch(void *opaque, enum h2s_watch_event ev) {
  struct call *k = opaque;
  if (ev == H2S_WATCH_GONE)
    k->rest->core->caller_gone(&k->reply.reply);
  if (ev != H2S_WATCH_DEADLINE)
    call_unref(k); /* the watch's */
}

/* Match the request to a route and run it; every path answers. */
static void route(struct call *k) {
  struct h2s_req *req = k->req;
  k->route = N_ROUTES;
  int refusal = h2s_error_status(req);
  if (refusal) {
    static const struct {
      int status;
      const char *code;
    } names[] = {{400, "invalid_argument"},
                 {413, "payload_too_large"},
                 {429, "rate_limited"},
                 {431, "headers_too_large"},
                 {503, "unavailable"}};
    const char *code = "error";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      if (names[i].status == refusal)
        code = names[i].code;
    if (refusal == 429 || refusal == 503)
      h2s_add_header(req, "retry-after", "1");
    {
      answer_error(k, refusal, code, h2s_error_message(req));
      return;
    }
  }
  /* HEAD is GET without the body, which h2server leaves out. */
  const char *method = h2s_method(req);
  if (!strcmp(method, "HEAD"))
    method = "GET";
  if (!(k->path = strdup(h2s_path(req)))) {
    answer_code(k, VMH_ENOMEM, "out of memory");
    return;
  }
  char allow[64] = ""; /* the methods of the path, for a 405 */
  size_t found = N_ROUTES, o = 0;
  for (size_t i = 0; i < N_ROUTES && found == N_ROUTES; i++) {
    const char *params[3] = {0};
    if (!match_route(i, k->path, params))
      continue;
    if (strcmp(routes[i].method, method)) {
      if (o < sizeof allow)
        o += (size_t)snprintf(allow + o, sizeof allow - o, "%s%s%s",
                              o ? ", " : "", routes[i].method,
                              strcmp(routes[i].method, "GET") ? "" : ", HEAD");
      continue;
    }
    found = i;
    memcpy(k->params, params, sizeof params);
  }
  if (found == N_ROUTES) {
    if (allow[0]) {
      h2s_add_header(req, "allow", allow);
      answer_error(k, 405, "method_not_allowed",
                   "method not allowed on this resource");
    } else {
      answer_error(k, 404, "not_found", "no such resource");
    }
    return;
  }
  cut(k->path, strlen(k->path));
  h2s_set_route(req, routes[found].pattern);
  k->route = found;
  char why[512];
  int denied = h2s_authorize(req, routes[found].role, why, sizeof why);
  if (denied == 401) {
    answer_error(k, 401, "unauthenticated", why);
    return;
  }
  if (denied) {
    answer_error(k, 403, "permission_denied", why);
    return;
  }
  k->hide = h2s_role(req) < AUTH_OPERATOR;
  /* A body must be JSON (but a file's bytes, and a merge patch, which
   * those routes check). */
  size_t blen;
  h2s_body(req, &blen);
  const char *ct = h2s_header(req, "content-type");
  if (blen && routes[found].fn != rest_agent_file_put &&
      routes[found].fn != rest_vm_patch &&
      (!ct || strncmp(ct, "application/json", 16) ||
       (ct[16] && ct[16] != ';' && ct[16] != ' '))) {
    answer_error(k, 415, "unsupported_media_type",
                 "the body must be application/json");
    return;
  }
  /* A client that goes before its answer: the core cancels its work if
   * still queued (core.h, caller_gone).  Streams, and a file upload taken
   * as it comes (agent.c), watch for themselves: one watch per request. */
  if (routes[found].fn != events && routes[found].fn != rest_agent_file_put) {
    atomic_fetch_add(&k->refs, 1); /* the watch's */
    h2s_watch(req, 0, on_watch, k);
  }
  routes[found].fn(k);
}

/* ---- For the handlers of other files (rest.h) ------------------------------
 */

struct h2s_req *rest_req(const struct call *k) {
  return k->req;
}

const char *rest_param(const struct call *k, int i) {
  return k->params[i];
}

struct agentdist *rest_agentdist(const struct call *k) {
  return k->rest->agent;
}

const char *rest_error_message(const struct call *k) {
  return k->rest->core->error_message();
}

void rest_answer_body(struct call *k, int status, const char *content_type,
                      struct h2s_body *b) {
  account(k, status);
  if (b)
    h2s_respond_body(k->req, status, content_type, b);
  else
    h2s_respond(k->req, status, content_type, NULL, 0);
  call_unref(k);
}

static void on_request(void *opaque, struct h2s_req *req) {
  struct call *k = call_new(opaque, req);
  if (!k) {
    h2s_respond(req, 503, "application/json", oom_body, sizeof oom_body - 1);
    return;
  }
  route(k);
  call_unref(k);
}

/* ---- Plugin --------------------------------------------------------------
 */

static int rest_load(const struct vmh_host *h) {
  host = h;
  rest_host = h;
  heads_init();
  return agentdist_load(h);
}

static int rest_open(const struct vmh_host *h, const struct vmh_instance *inst,
                     const struct vmh_config *cfg, void **ret, uint32_t flags) {
  int64_t drain;
  if (vmh_check_flags(h, "open", flags, VMH_OPEN_CHECK_ONLY) < 0)
    return VMH_EINVAL;
  struct rest *rest = calloc(1, sizeof *rest);
  if (!rest)
    return VMH_ENOMEM;
  rest->inst = inst;
  int r = h2s_conf_read(h, cfg, &rest->conf);
  if (r == 0)
    r = h->config_int(cfg, "drain_timeout", 0, 3600, 5, &drain, 0);
  if (r < 0) {
    h2s_conf_free(&rest->conf);
    free(rest);
    return r;
  }
  rest->drain_ms = (uint32_t)drain * 1000;
  r = agentdist_open(h, inst, cfg, flags & VMH_OPEN_CHECK_ONLY, &rest->agent);
  if (r == 0 && (r = rest_events_open(h, inst, cfg, rest->conf.stream_buffer,
                                      &rest->events)) < 0)
    agentdist_free(rest->agent);
  if (r < 0) {
    h2s_conf_free(&rest->conf);
    free(rest);
    return r;
  }
  if (flags & VMH_OPEN_CHECK_ONLY) {
    rest_events_free(rest->events);
    h2s_conf_free(&rest->conf);
    free(rest);
    *ret = NULL;
    return 0;
  }
  rest->metrics = restmetrics_new(N_ROUTES, route_names);
  if (!rest->metrics) {
    rest_events_free(rest->events);
    agentdist_free(rest->agent);
    h2s_conf_free(&rest->conf);
    free(rest);
    return VMH_ENOMEM;
  }
  rest->frags = vmpage_cache_new(vm_fragment);
  if (!rest->frags) {
    rest_events_free(rest->events);
    agentdist_free(rest->agent);
    restmetrics_free(rest->metrics);
    h2s_conf_free(&rest->conf);
    free(rest);
    return VMH_ENOMEM;
  }
  *ret = rest;
  return 0;
}

static int rest_start(void *handle, const struct vmh_core *core,
                      uint32_t flags) {
  struct rest *rest = handle;
  int rc = vmh_check_flags(host, "start", flags, 0);
  if (rc < 0)
    return rc;
  /* Every operation is called directly: the core must have them all. */
  if (core->struct_size < sizeof *core) {
    host->error("the core's service table is older than this plugin");
    return VMH_ENOTSUP;
  }
  rest->core = core;
  int r = vmpage_cache_follow(rest->frags, host, core);
  if (r < 0)
    return r;
  rest->srv = h2s_new(host, rest->inst, &rest->conf, on_request, rest);
  if (rest->srv)
    h2s_set_early(rest->srv, rest_early);
  r = rest->srv ? agentdist_start(rest->agent) : VMH_ENOMEM;
  if (r == 0 && (r = rest_events_start(rest->events, core)) < 0)
    agentdist_stop(rest->agent);
  if (r == 0 && (r = h2s_start(rest->srv)) < 0) {
    rest_events_stop(rest->events);
    agentdist_stop(rest->agent);
  }
  if (r == 0)
    restmetrics_publish(rest->metrics, host, rest->inst);
  if (r < 0) {
    if (!rest->srv)
      host->error("out of memory");
    h2s_free(rest->srv);
    rest->srv = NULL;
    vmpage_cache_unfollow(rest->frags);
  }
  return r;
}

static void rest_stop(void *handle, uint32_t flags) {
  (void)flags;
  struct rest *rest = handle;
  h2m_withdraw(host, rest->inst);
  rest_events_stop(rest->events);
  if (rest->srv)
    h2s_stop(rest->srv, rest->drain_ms);
  /* After the server: downloads in flight had the drain to finish. */
  agentdist_stop(rest->agent);
  vmpage_cache_unfollow(rest->frags);
}

static void rest_close(void *handle) {
  struct rest *rest = handle;
  if (!rest)
    return;
  agentdist_stop(rest->agent);
  h2s_free(rest->srv);
  rest_events_free(rest->events);
  agentdist_free(rest->agent);
  h2s_conf_free(&rest->conf);
  restmetrics_free(rest->metrics);
  vmpage_cache_free(rest->frags);
  free(rest);
}

static struct vmh_frontend_ops ops = {
    .open = rest_open,
    .close = rest_close,
    .start = rest_start,
    .stop = rest_stop,
};

static struct vmh_plugin plugin = {
    .kind = VMH_KIND_FRONTEND,
    .name = "rest",
    .version = PACKAGE_VERSION,
    .description = "REST/JSON API over HTTP/2 and HTTP/1.1, TLS and mTLS",
    .load = rest_load,
    .frontend = &ops,
};

VMH_PLUGIN_REGISTER(plugin)
