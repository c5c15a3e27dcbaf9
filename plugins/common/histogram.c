/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Prometheus text format and latency histograms: see histogram.h. */
#include <config.h>

#include "histogram.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

void hist_observe(struct hist *h, const struct hist_layout *l, uint64_t v) {
  size_t b = 0;
  while (b < l->n_bounds && v > l->bounds[b])
    b++;
  atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

uint64_t hist_count(const struct hist *h, const struct hist_layout *l) {
  uint64_t n = 0;
  for (size_t b = 0; b <= l->n_bounds; b++)
    n += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
  return n;
}

/* Backslash and newline escaped, and the double quote when `quote`. */
static void put_escaped(FILE *f, const char *s, bool quote) {
  for (s = s ? s : ""; *s; s++) {
    if (*s == '\\')
      fputs("\\\\", f);
    else if (*s == '\n')
      fputs("\\n", f);
    else if (*s == '"' && quote)
      fputs("\\\"", f);
    else
      fputc(*s, f);
  }
}

void prom_put_label(FILE *f, const char *value) {
  put_escaped(f, value, true);
}

size_t prom_escape(char *dst, size_t size, const char *value) {
  size_t n = 0;
  if (size == 0)
    return 0;
  for (const char *s = value ? value : ""; *s; s++) {
    const char *e = *s == '\\'   ? "\\\\"
                    : *s == '"'  ? "\\\""
                    : *s == '\n' ? "\\n"
                                 : NULL;
    size_t len = e ? 2 : 1;
    if (n + len >= size)
      break;
    if (e)
      memcpy(dst + n, e, 2);
    else
      dst[n] = *s;
    n += len;
  }
  dst[n] = '\0';
  return n;
}

void prom_put_family(FILE *f, const char *name, const char *type,
                     const char *help) {
  fprintf(f, "# HELP %s ", name);
  put_escaped(f, help, false);
  fprintf(f, "\n# TYPE %s %s\n", name, type);
}

void hist_put_seconds(FILE *f, uint64_t v, uint64_t per_second) {
  char frac[24];
  int n = 0;

  fprintf(f, "%" PRIu64, v / per_second);
  if (v % per_second == 0)
    return;
  /* As many digits as a unit has below the second, trailing zeros cut. */
  for (uint64_t p = per_second; p > 1; p /= 10)
    n++;
  n = snprintf(frac, sizeof frac, "%0*" PRIu64, n, v % per_second);
  while (n > 0 && frac[n - 1] == '0')
    frac[--n] = '\0';
  fprintf(f, ".%s", frac);
}

static void put_line(FILE *f, const char *family, const char *suffix,
                     void (*put_labels)(FILE *f, const void *opaque),
                     const void *opaque) {
  fprintf(f, "%s%s{", family, suffix);
  put_labels(f, opaque);
}

void hist_write(FILE *f, const char *family,
                void (*put_labels)(FILE *f, const void *opaque),
                const void *opaque, const struct hist *h,
                const struct hist_layout *l) {
  uint64_t cumulative = 0;

  for (size_t b = 0; b <= l->n_bounds; b++) {
    cumulative += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
    put_line(f, family, "_bucket", put_labels, opaque);
    fputs(",le=\"", f);
    if (b < l->n_bounds)
      hist_put_seconds(f, l->bounds[b], l->per_second);
    else
      fputs("+Inf", f);
    fprintf(f, "\"} %" PRIu64 "\n", cumulative);
  }
  put_line(f, family, "_sum", put_labels, opaque);
  fputs("} ", f);
  hist_put_seconds(f, atomic_load_explicit(&h->sum, memory_order_relaxed),
                   l->per_second);
  fputc('\n', f);
  /* _count is the +Inf bucket as read above, so the two always agree. */
  put_line(f, family, "_count", put_labels, opaque);
  fprintf(f, "} %" PRIu64 "\n", cumulative);
}
