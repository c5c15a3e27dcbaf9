/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ch-api — one VMM's REST API over its unix socket (libcurl).
 *
 * HTTP/1.1 on the API socket, GET and PUT only, JSON bodies.  Success is
 * 200 (with a body) or 204; an error is a status (400, 404, 405, 409, 429,
 * 500) with a JSON array of messages, outermost first.  One easy handle per
 * VMM keeps its connection open between calls; the caller serializes calls
 * on one handle. */
#ifndef VMH_CH_API_H
#define VMH_CH_API_H

#include <stddef.h>

struct cha;

/* A client of the API at sock_path; every call gives up after timeout_ms.
 * NULL when out of memory. */
struct cha *cha_new(const char *sock_path, long timeout_ms);
void cha_free(struct cha *a);

/* METHOD /api/v1/ENDPOINT with body (JSON, NULL: none).  Returns 0 on a
 * 2xx answer, with its body in *resp (malloc'ed, NUL-terminated, possibly
 * empty; resp may be NULL).  Otherwise a VMH_E* code with a message in
 * err that starts with `what`: VMH_ETIMEDOUT (no answer in time), VMH_EIO
 * (no VMM on the socket, connection lost), or the code for the VMM's error
 * status followed by its messages. */
int cha_call(struct cha *a, const char *method, const char *endpoint,
             const char *body, char **resp, const char *what, char *err,
             size_t errlen);

/* Whether the last call failed because nothing listens on the socket (no
 * socket file, or connection refused), as opposed to a VMM that took the
 * connection and did not answer. */
int cha_refused(const struct cha *a);

#endif
