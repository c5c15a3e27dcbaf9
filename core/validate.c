/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Checks on names and strings that come from outside. */
#include <config.h>

#include "validate.h"

#include <vmhost/common.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* s matches [first][rest]{0,max-1} where first and rest are byte sets. */
static int match(const char *s, const char *first, const char *rest,
                 size_t max) {
  size_t len = s ? strlen(s) : 0;
  if (len == 0 || len > max || !strchr(first, s[0]))
    return 0;
  return strspn(s + 1, rest) == len - 1;
}

#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define DIGIT "0123456789"

int valid_device_name(const char *s) {
  return match(s, LOWER, LOWER DIGIT, 16);
}

int valid_uuid(const char *s) {
  if (!s || strlen(s) != VMH_ID_LEN)
    return 0;
  for (int i = 0; i < VMH_ID_LEN; i++)
    if (i == 8 || i == 13 || i == 18 || i == 23
            ? s[i] != '-'
            : !isxdigit((unsigned char)s[i]))
      return 0;
  return 1;
}

int valid_mac(const char *s) {
  if (!s || strlen(s) != 17)
    return 0;
  for (int i = 0; i < 17; i++) {
    if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
      return 0;
  }
  unsigned first = (unsigned)(isdigit((unsigned char)s[1])
                                  ? s[1] - '0'
                                  : (tolower((unsigned char)s[1]) - 'a' + 10));
  return (first & 1) == 0;
}

int valid_utf8(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n;
    uint32_t cp;
    if (c == 0)
      return 0;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    for (size_t k = 1; k <= n; k++) {
      if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += n + 1;
  }
  return 1;
}

size_t utf8_trim(const char *s, size_t len) {
  size_t lead = len;
  unsigned need;
  unsigned char c;

  /* Step back over at most 3 continuation bytes to the lead byte. */
  while (lead > 0 && len - lead < 3 &&
         ((unsigned char)s[lead - 1] & 0xC0) == 0x80)
    lead--;
  if (lead == 0)
    return len;
  c = (unsigned char)s[lead - 1];
  if (c < 0xC0)
    return len; /* ASCII, or stray continuation bytes: nothing to trim */
  need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  return len - (lead - 1) < need ? lead - 1 : len;
}

void core_uuid_v4(char *out) {
  uint8_t b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n > 0)
      got += (size_t)n;
  }
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
  snprintf(
      out, VMH_ID_LEN + 1,
      "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
      b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
      b[12], b[13], b[14], b[15]);
}

static bool alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9');
}

/* s[0..n) of alnum and the characters of `inner`, beginning and ending
 * with alnum. */
static bool label_part(const char *s, size_t n, const char *inner) {
  if (!n || !alnum(s[0]) || !alnum(s[n - 1]))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!alnum(s[i]) && !strchr(inner, s[i]))
      return false;
  return true;
}

static bool dns_subdomain(const char *s, size_t n) {
  if (!n || n > 253)
    return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] >= 'A' && s[i] <= 'Z')
      return false;
  /* Each dot-separated part: lower case alnum and '-' inside. */
  for (size_t start = 0; start <= n;) {
    const char *dot = memchr(s + start, '.', n - start);
    size_t end = dot ? (size_t)(dot - s) : n;
    if (!label_part(s + start, end - start, "-"))
      return false;
    start = end + 1;
  }
  return true;
}

int valid_label_key(const char *s) {
  if (!s)
    return 0;
  const char *slash = strchr(s, '/');
  const char *name = slash ? slash + 1 : s;
  size_t n = strlen(name);
  if (slash && !dns_subdomain(s, (size_t)(slash - s)))
    return 0;
  return n <= 63 && label_part(name, n, "-_.");
}
