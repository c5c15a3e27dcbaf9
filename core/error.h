/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Errors inside the core: the thread-local message that goes with a VMH_E*
 * code, and the one table that maps codes to HTTP and gRPC statuses. */
#ifndef VMHOST_CORE_ERROR_H
#define VMHOST_CORE_ERROR_H

#include <stdarg.h>
#include <stdint.h>
#include <vmhost/common.h>

/* Longest message kept, in bytes with the NUL; longer ones are cut at a
 * UTF-8 character boundary. */
#define ERROR_MSG_MAX 1024

/* Set this thread's error message (also the host->error service).  Returns
 * nothing; callers return their code themselves.  The arguments may include
 * error_get() itself, to prefix context: error_set("%s: %s", path,
 * error_get()). */
void error_set(const char *fmt, ...) VMH_PRINTF(1, 2);

/* error_set with a va_list (also the host->verror service). */
void error_vset(const char *fmt, va_list ap) VMH_PRINTF(1, 0);

/* Set the message and return code, for `return error_code(VMH_EINVAL, …)`. */
int error_code(int code, const char *fmt, ...) VMH_PRINTF(2, 3);

/* This thread's last message; "" if none.  Valid until the next error_set
 * on this thread. */
const char *error_get(void);

/* Forget this thread's message (before calling into a plugin). */
void error_clear(void);

/* The problems of a config found in one run: every mistake of the file
 * and of each instance's keys is kept and reported together
 * (--check-config and a start that cannot go on), so that seven mistakes
 * take one run, not eight.  Startup is one thread; not thread-safe.
 * problem_keep(r): a VMH_EINVAL result is a problem of the config: its
 * message (this thread's) is kept and 0 returned so the caller goes on;
 * any other result is returned as is. */
int problem_keep(int r);
size_t problems_count(void);
/* The i-th problem, in the order found; NULL past the end. */
const char *problem_at(size_t i);
void problems_clear(void);

/* The mapping table.  Unknown codes (positive, or below VMH_ERROR_LOWEST) map
 * like VMH_EINTERNAL.  Names are stable identifiers ("ok", "not_found", …):
 * the REST error code, the metrics result label. */
uint32_t error_http_status(int code);
uint32_t error_grpc_status(int code);
const char *error_name(int code);

/* The inverse of error_name: the code (0 or a VMH_E*), or 1 when name is
 * NULL or no code has that name. */
int error_from_name(const char *name);

#endif
