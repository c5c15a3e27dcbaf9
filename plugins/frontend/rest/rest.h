/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What frontend-rest.c gives the route handlers kept in other files of the
 * plugin (agentdist.c): the request of a call and ways to answer it.
 *
 * A route function gets a call on the I/O thread and answers it exactly
 * once, at once or later from any thread, with one of rest_answer_*();
 * the answer counts it in the route's metrics and releases the call. */
#ifndef VMH_REST_H
#define VMH_REST_H

#include <stddef.h>

#include "h2server.h"

struct call;

struct h2s_req *rest_req(const struct call *k);
/* The route's path parameter i (0…2), cut at its slash. */
const char *rest_param(const struct call *k, int i);
/* The instance's agent distribution (agentdist.h). */
struct agentdist *rest_agentdist(const struct call *k);

/* The message of the last failure on this thread (the host's error set
 * by vmh_fail and the toolkit), for a handler on its own thread. */
const char *rest_error_message(const struct call *k);

/* {"error":{"code":CODE,…}} with that status (code in lower case, as the
 * core's names). */
void rest_answer_error(struct call *k, int status, const char *code,
                       const char *message);
/* A VMH_E* code as its status and name. */
void rest_answer_code(struct call *k, int code, const char *message);
/* A body (a new reference is taken), or none when b is NULL. */
void rest_answer_body(struct call *k, int status, const char *content_type,
                      struct h2s_body *b);

#endif
