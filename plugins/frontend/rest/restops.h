/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The REST front-end's operations (core.h, struct vmh_operation): the
 * query parameters of /api/v1/operations and of ?wait= on every call that
 * changes something.  Each parser takes the query after '?' (NULL: none)
 * and returns 0, or -1 with err (len bytes) saying what to fix. */
#ifndef VMHOST_REST_OPS_H
#define VMHOST_REST_OPS_H

#include <stddef.h>
#include <stdint.h>

/* ?wait=true (the default) | false: false adds VMH_ASYNC to *flags (the
 * answer is 202 and the operation).  No other parameter is taken. */
int restops_wait_query(const char *query, uint32_t *flags, char *err,
                       size_t len);

/* GET /api/v1/operations?vm=NAME|ID&status=NAME&limit=N. */
struct restops_filter {
  char vm[64];     /* "" : any */
  uint32_t status; /* enum vmh_op_status, 0: any */
  uint32_t limit;  /* 0: all */
};
int restops_list_query(const char *query, struct restops_filter *ret, char *err,
                       size_t len);

/* GET /api/v1/operations/{id}/wait?timeout=SECONDS (0..3600, default 30). */
int restops_wait_timeout(const char *query, uint32_t *timeout_ms, char *err,
                         size_t len);

/* The Location of an operation: "/api/v1/operations/ID" into buf. */
void restops_location(char *buf, size_t len, const char *id);

#endif
