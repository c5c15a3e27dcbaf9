/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "url.h"

static int kept(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || strchr("-._~/:", c) != NULL;
}

char *url_path(const char *base, const char *path) {
  static const char hex[] = "0123456789ABCDEF";
  size_t blen = strlen(base), n = blen;
  for (const char *s = path; *s; s++)
    n += kept((unsigned char)*s) ? 1 : 3;
  char *url = malloc(n + 1);
  if (!url)
    return NULL;
  memcpy(url, base, blen);
  char *d = url + blen;
  for (const unsigned char *s = (const unsigned char *)path; *s; s++) {
    if (kept(*s)) {
      *d++ = (char)*s;
    } else {
      *d++ = '%';
      *d++ = hex[*s >> 4];
      *d++ = hex[*s & 15];
    }
  }
  *d = '\0';
  return url;
}
