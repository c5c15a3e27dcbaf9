/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The REST front-end's insides shared by its source files
 * (frontend-rest.c: server, dispatch, most routes; agent.c: the guest
 * agent's routes; agentdist.c: the agent's downloads; restops.c:
 * operations; images.c: image caches; events.c: the event stream).  Not
 * part of any ABI. */
#ifndef VMH_REST_H
#define VMH_REST_H

#include <vmhost/vmhost-plugin.h>

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "abijson.h"
#include "h2server.h"
#include "histogram.h"
#include "readiness.h"
#include "vmpage.h"

extern const struct vmh_host *rest_host;

struct restmetrics;

struct rest;

struct rest {
  const struct vmh_instance *inst;
  struct h2s_conf conf;
  struct h2s *srv;
  const struct vmh_core *core;
  uint32_t drain_ms;
  struct restmetrics *metrics; /* per route, and "no route" */
  /* Each VM's JSON by its record generation: a list is their
   * concatenation (vmpage.h). */
  struct vmpage_cache *frags;
  struct agentdist *agent;    /* the agent downloads (agentdist.h) */
  struct rest_events *events; /* GET /api/v1/events (restevents.h) */
  struct readiness ready;     /* /readyz (readiness.h) */
};

/* ---- Calls ---------------------------------------------------------------
 */

enum shape {
  ONE,  /* the first result object, or 204 when none came */
  LIST, /* {"<key>": [results]} */
  TEXT, /* text/plain from the text visitor */
};

struct call {
  struct rest *rest;
  struct h2s_req *req;
  size_t route; /* index in routes, or N_ROUTES */
  char *path;   /* the request's path, cut at its slashes: params point in */
  const char *params[3];
  json_t *body; /* the request's JSON, when it has one */
  struct abij_in in;
  struct abij_reply reply;
  enum shape shape;
  int ok_status;             /* 200, 201 */
  const char *key;           /* LIST */
  struct vmpage_listing *ls; /* GET /api/v1/vms */
  struct vmpage_named named; /* lists of volumes, snapshots … (pages.c) */
  bool paged;                /* … asked for with limit or page_token */
  bool hide;                 /* the caller is a reader: secrets left out */
  atomic_uint refs;
  /* How done() answers: the default, or a route's own (health, host). */
  void (*finish)(struct call *k, int code, const char *message);
  pthread_mutex_t lock;
  json_t *res; /* results so far */
  char *text;
  size_t text_len;
  /* PUT …/agent/files taken as it comes (HTTP/2, agent.c): the body so
   * far, where it goes, and how far it got (I/O thread only). */
  uint8_t *upload;
  size_t upload_len;
  const char *upload_path; /* in the call's arena */
  uint32_t upload_mode;
  bool upload_started, upload_answered;
};
/* A call is made and freed for every request: below 1,000 bytes its block
 * stays in glibc's small bins (a large-bin request first consolidates the
 * fast bins every request fills: ~3% of a small request). */
_Static_assert(sizeof(struct call) <= 1000,
               "struct call outgrew the small "
               "bins: keep it under 1,000 bytes");

/* A route's handler: answers (or starts the core call that will) and
 * returns 0, or answers a refusal and returns -1. */
int rest_bad(struct call *k, const char *fmt, ...)
    __attribute__((__format__(__printf__, 2, 3)));
int rest_refused(struct call *k, int r);
int rest_need_body(struct call *k, bool optional);
int rest_no_query(struct call *k);
/* ?wait=true|false of a call that changes something: VMH_ASYNC for
 * false, and the call then answers 202 with its operation. */
int rest_wait_query(struct call *k, uint32_t *flags);
/* ?live=true|false as VMH_READ_LIVE (or 0). */
int rest_query_live(struct call *k, uint32_t *flags);
int rest_check_param(struct call *k, int i, const char *what, bool uuid);
void rest_answer_error(struct call *k, int status, const char *code,
                       const char *message);
void rest_answer_code(struct call *k, int code, const char *message);
void rest_answer_json(struct call *k, int status, json_t *v);
/* Answers a body of another type (e.g. application/octet-stream). */
void rest_answer_bytes(struct call *k, int status, const char *type,
                       const void *data, size_t len);
void rest_add(struct call *k, json_t *v);
/* Count the answer in the route's metrics (a stream, when it begins). */
void rest_account(struct call *k, int status);
/* Another holder of the call (a watch), and its release. */
void rest_call_ref(struct call *k);
void rest_call_unref(struct call *k);
/* Whether h2server hands a request to this path over before its body
 * (h2s_set_early): PUT …/agent/files, which bounds the body itself. */
int rest_early(void *opaque, const char *path);

/* For handlers on their own threads (agentdist.c). */
struct h2s_req *rest_req(const struct call *k);
/* The route's path parameter i (0…2), cut at its slash. */
const char *rest_param(const struct call *k, int i);
/* The instance's agent distribution (agentdist.h). */
struct agentdist *rest_agentdist(const struct call *k);
/* The message of the last failure on this thread (the host's error set
 * by vmh_fail and the toolkit), for a handler on its own thread. */
const char *rest_error_message(const struct call *k);
/* A body (a new reference is taken), or none when b is NULL. */
void rest_answer_body(struct call *k, int status, const char *content_type,
                      struct h2s_body *b);

/* pages.c: ?limit= as a page size (1…), or -1 (answered). */
int rest_page_limit(struct call *k, const char *val, uint32_t *page);
/* pages.c: a list of named objects of kind (its answer's key, scope: the
 * pool or VM it lists), in name order, in pages by ?limit= and
 * ?page_token=.  0, then the route calls the core; or -1 (answered). */
int rest_named_list(struct call *k, enum vmpage_kind kind, const char *key,
                    const char *scope);

/* labels.c: PATCH /api/v1/vms/{vm}. */
int rest_vm_patch(struct call *k);

/* agent.c's routes. */
int rest_agent_show(struct call *k);
int rest_agent_ping(struct call *k);
int rest_agent_exec(struct call *k);
int rest_agent_file_get(struct call *k);
int rest_agent_file_put(struct call *k);
int rest_agent_time_sync(struct call *k);
/* images.c's routes: a pool's image cache. */
int rest_image_list(struct call *k);
int rest_image_get(struct call *k);
int rest_image_import(struct call *k);
int rest_image_delete(struct call *k);
/* The {snapshot} of the path (an id or a name): 0, or -1 (answered). */
int rest_snap_id(struct call *k);
/* snapshots.c: GET /api/v1/vms/{vm}/snapshots/{snapshot}. */
int rest_snap_get(struct call *k);
/* Snapshot create's "quiesce" field: the core's flags, or -1 (answered). */
int rest_quiesce_flags(struct call *k, uint32_t *flags);

#endif
