/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness: the validators of names, MACs, UTF-8 and the URL
 * builder (core/validate.c, vmh_name_valid, plugins/common/url.c) on any
 * bytes.  They must not crash, read past the input or disagree with
 * themselves.  Built and run by tests/test-fuzz.sh. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <vmhost/common.h>

#include "url.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  size_t len = strlen(s);
  (void)valid_device_name(s);
  (void)valid_mac(s);
  /* A UUID is a name too (which is why VM names of that form are
   * refused), and has exactly its length. */
  if (valid_uuid(s) && (len != VMH_ID_LEN || !strchr(s, '-')))
    abort();
  int utf8 = valid_utf8(s, len);
  size_t t = utf8_trim(s, len);
  if (t > len)
    abort();
  /* A valid string stays valid cut where utf8_trim says. */
  if (utf8 && !valid_utf8(s, t))
    abort();
  if (vmh_name_valid(s) && (len == 0 || len > VMH_NAME_MAX))
    abort();
  char *u = url_path("file://", s);
  free(u);
  free(s);
  return 0;
}
