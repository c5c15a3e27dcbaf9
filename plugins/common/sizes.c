/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sizes — see sizes.h. */
#include <config.h>

#include "sizes.h"

#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

enum num num_parse(const char *s, const char **end, uint64_t *ret) {
  if (*s < '0' || *s > '9')
    return NUM_BAD;
  if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
    return NUM_BAD;
  uint64_t v = 0;
  enum num r = NUM_OK;
  for (; *s >= '0' && *s <= '9'; s++) {
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      r = NUM_OVERFLOW;
    else
      v = v * 10 + d;
  }
  *end = s;
  *ret = v;
  return r;
}

static const struct {
  const char *name;
  uint64_t mult;
} units[] = {
    {"B", 1},
    {"K", UINT64_C(1) << 10},
    {"KiB", UINT64_C(1) << 10},
    {"KB", UINT64_C(1000)},
    {"M", UINT64_C(1) << 20},
    {"MiB", UINT64_C(1) << 20},
    {"MB", UINT64_C(1000000)},
    {"G", UINT64_C(1) << 30},
    {"GiB", UINT64_C(1) << 30},
    {"GB", UINT64_C(1000000000)},
    {"T", UINT64_C(1) << 40},
    {"TiB", UINT64_C(1) << 40},
    {"TB", UINT64_C(1000000000000)},
};

enum num size_parse(const char *s, uint64_t *ret) {
  const char *end;
  uint64_t n;
  enum num k = num_parse(s, &end, &n);
  if (k == NUM_BAD)
    return NUM_BAD;
  while (*end == ' ')
    end++;
  uint64_t mult = 1;
  if (*end) {
    size_t i = 0;
    for (; i < sizeof units / sizeof units[0]; i++)
      if (strcasecmp(end, units[i].name) == 0)
        break;
    if (i == sizeof units / sizeof units[0])
      return NUM_BAD;
    mult = units[i].mult;
  }
  if (k == NUM_OVERFLOW || n > UINT64_MAX / mult)
    return NUM_OVERFLOW;
  *ret = n * mult;
  return NUM_OK;
}

const char *size_format(uint64_t v, char *buf, size_t size) {
  static const char *names[2][4] = {{"KiB", "MiB", "GiB", "TiB"},
                                    {"KB", "MB", "GB", "TB"}};
  uint64_t best = v;
  const char *unit = "";
  uint64_t bin = 1, dec = 1;
  for (int i = 0; i < 4 && v; i++) {
    bin <<= 10;
    dec *= 1000;
    if (v % bin == 0 && v / bin < best) {
      best = v / bin;
      unit = names[0][i];
    }
    if (v % dec == 0 && v / dec < best) {
      best = v / dec;
      unit = names[1][i];
    }
  }
  snprintf(buf, size, "%" PRIu64 "%s", best, unit);
  return buf;
}
