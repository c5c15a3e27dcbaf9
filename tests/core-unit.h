/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A tiny assertion kit for the core's C unit tests: a failed check prints
 * where and why, and exits 1 (from any thread); a test that returns from
 * main passed. */
#ifndef VMHOST_TESTS_CORE_UNIT_H
#define VMHOST_TESTS_CORE_UNIT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noreturn, format(printf, 3, 4))) static inline void unit_fail(
    const char *file, int line, const char *fmt, ...) {
  va_list ap;

  fprintf(stderr, "%s:%d: FAIL: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

#define CHECK(cond)                               \
  do {                                            \
    if (!(cond))                                  \
      unit_fail(__FILE__, __LINE__, "%s", #cond); \
  } while (0)

/* Integer comparison that shows both values. */
#define CHECK_INT(a, op, b)                                                 \
  do {                                                                      \
    long long a_ = (long long)(a), b_ = (long long)(b);                     \
    if (!(a_ op b_))                                                        \
      unit_fail(__FILE__, __LINE__, "%s %s %s (%lld vs %lld)", #a, #op, #b, \
                a_, b_);                                                    \
  } while (0)

#define CHECK_STR(a, b)                                                    \
  do {                                                                     \
    const char *a_ = (a), *b_ = (b);                                       \
    if (!a_ || !b_ || strcmp(a_, b_) != 0)                                 \
      unit_fail(__FILE__, __LINE__, "%s == %s (\"%s\" vs \"%s\")", #a, #b, \
                a_ ? a_ : "(null)", b_ ? b_ : "(null)");                   \
  } while (0)

/* hay contains needle (or, with CHECK_LACKS, does not). */
#define CHECK_HAS(hay, needle)                                           \
  do {                                                                   \
    const char *h_ = (hay), *n_ = (needle);                              \
    if (!h_ || !strstr(h_, n_))                                          \
      unit_fail(__FILE__, __LINE__, "%s lacks \"%s\" in:\n%s", #hay, n_, \
                h_ ? h_ : "(null)");                                     \
  } while (0)
#define CHECK_LACKS(hay, needle)                                       \
  do {                                                                 \
    const char *h_ = (hay), *n_ = (needle);                            \
    if (!h_ || strstr(h_, n_))                                         \
      unit_fail(__FILE__, __LINE__, "%s has \"%s\" in:\n%s", #hay, n_, \
                h_ ? h_ : "(null)");                                   \
  } while (0)

/* Generous: only a deadlock takes this long, even under valgrind. */
#define UNIT_TIMEOUT_MS 60000

#endif
