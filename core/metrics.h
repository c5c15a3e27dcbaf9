/* Metrics: counters and latency histograms per operation and per plugin
 * instance, rendered in the Prometheus text exposition format.  All
 * functions are thread-safe; the hot path (observe) takes no global lock. */
#ifndef VMHOST_CORE_METRICS_H
#define VMHOST_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Record one call of `op` on instance `instance` (or "core") that took
 * `seconds` and returned `code` (0 or VMH_E*).  Feeds
 *   vmhost_operations_total{instance,op,result}
 *   vmhost_operation_duration_seconds{instance,op} (histogram) */
void metrics_observe(const char *instance, const char *op, int code,
                     double seconds);

/* Plugin-defined metrics (host->counter_add / gauge_set):
 *   vmhost_plugin_<name>{instance="…"} */
void metrics_counter_add(const char *instance, const char *name,
                         uint64_t delta);
void metrics_gauge_set(const char *instance, const char *name, int64_t value);

/* Render everything, plus the process metrics (vmhost_up, start time,
 * resident memory, open fds), into a new NUL-terminated buffer (caller
 * frees).  Returns NULL on allocation failure. */
char *metrics_render(size_t *ret_len);

/* Free everything (at exit, to keep valgrind quiet). */
void metrics_free(void);

#endif
