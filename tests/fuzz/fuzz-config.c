/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness: the config loader (core/conftree.c over libyaml) on
 * any bytes as a config file: it loads or refuses with a message, and a
 * loaded tree answers the accessors the core uses.  Built and run by
 * tests/test-fuzz.sh. */
#include <config.h>

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "conftree.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static int visit(void *opaque, const char *key,
                 const struct vmh_config *value) {
  (void)opaque;
  (void)key;
  (void)config_where(value);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!path[0]) {
    snprintf(path, sizeof path, "/tmp/fuzz-config.XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
      abort();
    close(fd);
  }
  int fd = open(path, O_WRONLY | O_TRUNC);
  if (fd < 0 || write(fd, data, size) != (ssize_t)size)
    abort();
  close(fd);
  struct vmh_config *root = NULL;
  if (config_load(path, &root) < 0) {
    if (!*error_get())
      abort(); /* a refusal always says why */
    return 0;
  }
  const struct vmh_config *d, *list;
  uint32_t n;
  char *s = NULL;
  int64_t i;
  (void)config_keys(root, visit, NULL);
  if (config_map(root, "daemon", &d, 0) == 0) {
    (void)config_int(d, "workers", 1, 256, 8, &i, 0);
    if (config_path(d, "state_dir", NULL, &s, 0) == 0)
      free(s);
  }
  if (config_list(root, "storage", &list, &n, 0) == 0)
    for (uint32_t k = 0; k < n; k++) {
      const struct vmh_config *el;
      if (config_at(list, k, &el) == 0)
        (void)config_keys(el, visit, NULL);
    }
  config_free(root);
  return 0;
}
