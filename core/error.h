/* Errors inside the core: the thread-local message that goes with a VMH_E*
 * code, and the one table that maps codes to HTTP and gRPC statuses. */
#ifndef VMHOST_CORE_ERROR_H
#define VMHOST_CORE_ERROR_H

#include <stdint.h>
#include <vmhost/common.h>

/* Set this thread's error message (also the host->error service).  Returns
 * nothing; callers return their code themselves. */
void error_set(const char *fmt, ...) VMH_PRINTF(1, 2);

/* Set the message and return code, for `return error_code(VMH_EINVAL, …)`. */
int error_code(int code, const char *fmt, ...) VMH_PRINTF(2, 3);

/* This thread's last message; "" if none.  Valid until the next error_set
 * on this thread. */
const char *error_get(void);

/* Forget this thread's message (before calling into a plugin). */
void error_clear(void);

/* The mapping table.  Unknown codes map like VMH_EINTERNAL. */
uint32_t error_http_status(int code);
uint32_t error_grpc_status(int code);
const char *error_name(int code);

#endif
