/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A URL query read pair by pair (see query.h). */
#include <config.h>

#include "query.h"

#include <string.h>

static int hex(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int query_decode(char *s) {
  char *o = s;
  for (; *s; s++) {
    if (*s == '+') {
      *o++ = ' ';
    } else if (*s == '%') {
      int h = hex(s[1]), l = h < 0 ? -1 : hex(s[2]);
      if (l < 0 || (h == 0 && l == 0))
        return -1;
      *o++ = (char)(h << 4 | l);
      s += 2;
    } else {
      *o++ = *s;
    }
  }
  *o = '\0';
  return 0;
}

int query_next(char **cursor, char **key, char **value) {
  char *p = *cursor;
  while (p && *p == '&')
    p++;
  if (!p || !*p)
    return 0;
  char *end = strchr(p, '&');
  if (end)
    *end++ = '\0';
  *cursor = end;
  *key = p;
  char *eq = strchr(p, '=');
  *value = eq ? eq + 1 : p + strlen(p);
  if (eq)
    *eq = '\0';
  if (query_decode(*key) < 0 || query_decode(*value) < 0) {
    if (eq)
      *eq = '=';
    return -1;
  }
  return 1;
}
