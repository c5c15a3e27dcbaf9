/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Prometheus text exposition format (version 0.0.4) for libvmhutil's
 * users (the core, the front-ends): label values escaped, family headers,
 * and latency histograms (lock-free counting, cumulative buckets when
 * written). */
#ifndef VMHOST_UTIL_HISTOGRAM_H
#define VMHOST_UTIL_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HIST_MAX_BOUNDS 15

/* The bucket layout of a family: upper bounds in `unit`s (integers, so a
 * value lands in a bucket by integer comparison, whatever floating point
 * makes of 0.001), ascending; `per_second` units make a second (1e9 for
 * ns, 1e6 for µs).  Static and shared by every histogram of the family. */
struct hist_layout {
  uint64_t per_second;
  size_t n_bounds; /* at most HIST_MAX_BOUNDS; +Inf comes on top */
  uint64_t bounds[HIST_MAX_BOUNDS];
};

/* One histogram; zero-initialised is empty. */
struct hist {
  _Atomic uint64_t bucket[HIST_MAX_BOUNDS + 1]; /* not cumulative */
  _Atomic uint64_t sum;                         /* in units */
};

/* Count value v (in units).  Thread-safe, lock-free. */
void hist_observe(struct hist *h, const struct hist_layout *l, uint64_t v);

/* How many values were counted (the +Inf bucket). */
uint64_t hist_count(const struct hist *h, const struct hist_layout *l);

/* Write the _bucket, _sum and _count lines of one histogram of `family`:
 * `family`_bucket{LABELS,le="0.001"} N …  put_labels writes LABELS (escaped,
 * without braces) to f.  le and the sum are in seconds, shortest exact
 * decimal. */
void hist_write(FILE *f, const char *family,
                void (*put_labels)(FILE *f, const void *opaque),
                const void *opaque, const struct hist *h,
                const struct hist_layout *l);

/* A label value as the exposition format wants it: backslash, double quote
 * and newline escaped (\\, \", \n); everything else as it is (UTF-8). */
void prom_put_label(FILE *f, const char *value);

/* prom_put_label into dst (NUL-terminated, cut to fit `size`); returns
 * the length written.  For a label written many times: escape it once. */
size_t prom_escape(char *dst, size_t size, const char *value);

/* A family's "# HELP name help" and "# TYPE name type" lines.  `help` is
 * written with backslash and newline escaped. */
void prom_put_family(FILE *f, const char *name, const char *type,
                     const char *help);

/* A duration in units as seconds, shortest exact decimal ("0.0015", "2"). */
void hist_put_seconds(FILE *f, uint64_t v, uint64_t per_second);

#endif
