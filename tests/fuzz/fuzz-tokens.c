/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness: the bearer-token store (plugins/common/authtoken.c):
 * any bytes as its tokens file, listed and checked against a token; any
 * bytes as a presented token.  Built and run by tests/test-fuzz.sh. */
#include <config.h>

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authtoken.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static struct auth_store *st;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[96], err[256], name[AUTH_NAME_MAX];
  if (!st) {
    snprintf(dir, sizeof dir, "/tmp/fuzz-tokens.XXXXXX");
    if (!mkdtemp(dir) || !(st = auth_store_new(dir)))
      abort();
  }
  snprintf(path, sizeof path, "%s/tokens", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write(fd, data, size) != (ssize_t)size)
    abort();
  close(fd);
  struct auth_token *t = NULL;
  size_t n = 0;
  if (auth_token_list(st, &t, &n, err, sizeof err) == 0)
    for (size_t i = 0; i < n; i++)
      if (t[i].role < AUTH_READER || t[i].role > AUTH_ADMIN ||
          strlen(t[i].name) >= AUTH_NAME_MAX)
        abort();
  free(t);
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  (void)auth_token_check(st, s, name);
  (void)auth_role_parse(s);
  free(s);
  return 0;
}
