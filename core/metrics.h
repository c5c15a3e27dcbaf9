/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metrics: counters and latency histograms per operation and per plugin
 * instance, rendered in the Prometheus text exposition format (0.0.4).
 * All functions but metrics_free are thread-safe; once a series exists,
 * recording into it takes no lock (atomics only). */
#ifndef VMHOST_CORE_METRICS_H
#define VMHOST_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Record one call of `op` on instance `instance` (NULL: "core") that took
 * `seconds` and returned `code` (0 or VMH_E*; others count as "internal").
 * Feeds
 *   vmhost_plugin_calls_total{instance,op,result}   result = error_name(code)
 *   vmhost_plugin_call_duration_seconds{instance,op} (histogram; buckets
 *     0.0001 … 10 seconds, durations kept to the nanosecond) */
void metrics_observe(const char *instance, const char *op, int code,
                     double seconds);

/* Plugin-defined metrics (host->counter_add / gauge_set):
 *   vmhost_plugin_<name>{instance="…"}
 * (a counter's name gets "_total" appended unless it ends so already).
 * A name that is not [a-z0-9_]{1,63}, or that is already used with the
 * other type, is ignored (the first such call logs a warning). */
void metrics_counter_add(const char *instance, const char *name,
                         uint64_t delta);
void metrics_gauge_set(const char *instance, const char *name, int64_t value);

/* The families a plugin instance renders itself (host->metrics_source):
 * `key` identifies the instance (its struct vmh_instance); fn NULL
 * withdraws.  Once it returns after a withdrawal, fn is no longer being
 * called (a scrape that runs waits for it). */
typedef void (*metrics_write_fn)(void *wopaque, const char *text, size_t len);
typedef void (*metrics_source_fn)(void *opaque, metrics_write_fn write,
                                  void *wopaque);
int metrics_source_set(const void *key, metrics_source_fn fn, void *opaque);

/* Render everything, plus the process metrics (the standard process_*
 * families, vmhost_build_info), into a new NUL-terminated buffer (caller
 * frees); *ret_len (if not NULL) gets its length.  Families and series come
 * in a fixed, sorted order.  Returns NULL on allocation failure. */
char *metrics_render(size_t *ret_len);

/* More families to render after the others: fn writes them into f (the
 * core's resources and VM usage, which metrics must not depend on).  Set
 * once before serving; NULL: none. */
void metrics_set_extra(void (*fn)(FILE *f));

/* Free every series (at exit, to keep valgrind quiet, or between tests).
 * Nothing else may use metrics while it runs. */
void metrics_free(void);

#endif
